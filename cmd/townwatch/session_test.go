package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// accountPassword is the password the tests give the accounts they make with
// `townwatch user add`: long enough and on no common list.
const accountPassword = "zkusebni-heslo-pro-testy-7"

// passwordHashBound is how long the tests let one command or request that hashes or
// checks a password take before they give up on it as hung. Argon2id (19 MiB, two
// passes) in the race-enabled binary took over 10 s per login on a 2-core machine
// shared with other builds, and parallel tests each run a server; the bound only
// catches a hang, it is not what any test measures.
const passwordHashBound = 2 * time.Minute

// addAccount runs `townwatch user add` as an administrator on the host would, with the
// password piped on stdin, and fails the test unless it succeeds.
func addAccount(t *testing.T, cfg, name, roles string, extra ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), passwordHashBound)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"user", "add", "-config", cfg, "-name", name, "-role", roles}, extra...)...)
	cmd.Stdin = strings.NewReader(accountPassword + "\n")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("townwatch user add %s: %v\n%s", name, err, out.String())
	}
}

// loginClient logs in at base (POST /api/login) and returns a client that carries the
// session cookie, as a browser would.
func loginClient(t *testing.T, base, name, password string) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, Timeout: passwordHashBound}
	body, _ := json.Marshal(map[string]string{"username": name, "password": password})
	resp, err := c.Post(base+"api/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("login as %s: %d %s", name, resp.StatusCode, b)
	}
	return c
}

// httpGet fetches url with c and fails the test unless the answer is 200.
func httpGet(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	return string(fetch(t, c, url, "", http.StatusOK))
}
