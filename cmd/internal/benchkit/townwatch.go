package benchkit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// AddAccount makes the account name with `townwatch user add` and the password in a file,
// as an administrator on the host would: args give its role (and cameras). The password
// is random; it is returned for a run that logs in with it (a browser or WHEP client) and otherwise
// forgotten.
func AddAccount(ctx context.Context, bin, cfgPath, dir, name string, args ...string) (password string, err error) {
	pwFile := filepath.Join(dir, "account.password")
	password = rand.Text()
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		return "", err
	}
	defer os.Remove(pwFile)
	args = append([]string{"user", "add", "-config", cfgPath, "-name", name, "-password-file", pwFile}, args...)
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("townwatch user add %s: %w\n%s", name, err, out)
	}
	return password, nil
}

// BuildTownwatch builds ./cmd/townwatch of the module the benchmark runs in as make build does:
// the server without cgo and, beside it, townwatch-motion with cgo for its motion worker.
func BuildTownwatch(ctx context.Context, work string, logf func(string, ...any)) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the townwatch module (go env GOMOD: %q, %v): run from the repository or pass -townwatch", gomod, err)
	}
	bin := filepath.Join(work, "townwatch")
	logf("building townwatch ...")
	for _, b := range []struct{ out, cgo string }{{bin, "0"}, {filepath.Join(work, "townwatch-motion"), "1"}} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.out, "./cmd/townwatch")
		cmd.Dir = filepath.Dir(gomod)
		cmd.Env = append(os.Environ(), "CGO_ENABLED="+b.cgo)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build ./cmd/townwatch (CGO_ENABLED=%s): %w\n%s", b.cgo, err, out)
		}
	}
	return bin, nil
}

// Login logs name in through POST /api/login and returns the session cookie(s) it sets.
// A connection that fails before an answer is tried twice more, a second apart: on a
// starved host (16 tiles decoding beside the server) one was seen closed with no answer.
func Login(ctx context.Context, base, name, password string) (cookies []*http.Cookie, err error) {
	for range 3 {
		var answered bool
		if cookies, answered, err = loginOnce(ctx, base, name, password); err == nil || answered {
			return cookies, err
		}
		if err := Sleep(ctx, time.Second); err != nil {
			return nil, err
		}
	}
	return nil, err
}

// loginOnce is one login; answered says whether the server answered at all.
func loginOnce(ctx context.Context, base, name, password string) (_ []*http.Cookie, answered bool, _ error) {
	body, err := json.Marshal(map[string]string{"username": name, "password": password})
	if err != nil {
		return nil, true, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/login", bytes.NewReader(body))
	if err != nil {
		return nil, true, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || len(resp.Cookies()) == 0 {
		return nil, true, fmt.Errorf("login as %s: %s %s", name, resp.Status, bytes.TrimSpace(answer))
	}
	return resp.Cookies(), true, nil
}
