// Package pgtest gives tests a real, throwaway PostgreSQL server: a cluster made by initdb
// in a temporary directory and run by pg_ctl on 127.0.0.1 (a free port) with a unix
// socket directory of its own, started on first use and stopped when the test binary
// ends. Each caller gets a fresh, empty database, so tests never see each other's rows.
//
// The server is package pgserver's; the shared one is discarded (no shutdown checkpoint)
// when the test binary ends. Use it from TestMain, so the server is stopped even when tests fail:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m.Run)) }
//
// and call URL(t) in a test. When the server cannot start (PostgreSQL not installed:
// run make deps), URL fails the test with the reason; it never skips.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/townwatch/townwatch/recorder/catalog/pgserver"
)

var (
	once     sync.Once
	shared   *pgserver.Server
	startErr error
)

// Main runs the tests (m.Run) and stops the shared server if one was started. It returns
// run's exit code, or 1 if the server could not be stopped cleanly.
func Main(run func() int) int {
	code := run()
	if shared != nil {
		if err := shared.Discard(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// URL returns the postgres:// URL of a new, empty database on the shared server,
// starting the server on first use. It fails t if the server cannot be started.
func URL(t testing.TB) string {
	t.Helper()
	once.Do(func() { shared, startErr = pgserver.Start() })
	if startErr != nil {
		t.Fatalf("pgtest: PostgreSQL is needed for this test and could not be started (make deps installs postgresql-15): %v", startErr)
	}
	u, err := shared.NewDatabase(context.Background())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return u
}
