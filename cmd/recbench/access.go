package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
)

// Nothing of a `townwatch serve` but /healthz answers without access, so recbench comes
// in as a production Prometheus does: it reads /metrics (and nothing else) with the bearer
// token of metrics.token_file. Until an account exists townwatch answers everything but
// /healthz with 503, the token notwithstanding, so each run first makes one with
// `townwatch user add`, as the operator of a fresh install does. The recording runs never
// log in with it: a login costs the measured process an Argon2id check (19 MiB), which
// would show in its peak RSS. The -playload run does (playload.go): it plays footage in
// the browser as an officer and reports no peak RSS.

// benchAccount is the account recbench makes in each run's fresh storage.
const benchAccount = "recbench"

// errAccess marks a refusal that waiting will not cure (a wrong token, no account): the
// run fails at once instead of polling until its timeout.
var errAccess = errors.New("townwatch refused recbench's access")

// access is how one run reaches its townwatch serve.
type access struct {
	base      string // http://127.0.0.1:port, no trailing slash
	tokenFile string // metrics.token_file
	token     string
}

// newAccess writes a random metrics token into dir (0600; townwatch reads it from the
// file, it never appears on a command line) for a server at base.
func newAccess(dir, base string) (*access, error) {
	a := &access{base: base, tokenFile: filepath.Join(dir, "metrics.token"), token: rand.Text() + rand.Text()}
	if err := os.WriteFile(a.tokenFile, []byte(a.token+"\n"), 0o600); err != nil {
		return nil, err
	}
	return a, nil
}

// scrape reads townwatch's /metrics with the bearer token, as Prometheus does.
func scrape(ctx context.Context, a *access) (metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return parseMetrics(string(body))
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusServiceUnavailable:
		return nil, fmt.Errorf("%w: GET /metrics: %s %s", errAccess, resp.Status, bytes.TrimSpace(body))
	}
	return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
}
