package viewer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// testClock is an injected wall clock the tests step.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// accessFixture is the access side of a test server: a real catalog file holding the
// accounts, sessions and the audit log, keyed like production.
type accessFixture struct {
	cat   *catalog.Catalog
	audit *access.AuditLog
	clock *testClock
	opts  AccessOptions
}

func newAccessFixture(tb testing.TB) *accessFixture {
	tb.Helper()
	dir := tb.TempDir()
	cat, err := catalog.Open(context.Background(), filepath.Join(dir, "catalog.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cat.Close() })
	key, err := access.LoadAuditKey(filepath.Join(dir, "audit.key"), true)
	if err != nil {
		tb.Fatal(err)
	}
	log, err := access.NewAuditLog(cat, key)
	if err != nil {
		tb.Fatal(err)
	}
	f := &accessFixture{cat: cat, audit: log, clock: &testClock{now: time.Now()}}
	f.opts = AccessOptions{Users: cat, Audit: log, Now: f.clock.Now}
	return f
}

// testPassword is every fixture account's password: long enough for the rules and on no
// common list.
const testPassword = "spravne-heslo-pro-testy-42"

// hashOnce caches the one Argon2 hash every fixture account shares, so a test making a
// hundred accounts does not spend its time hashing.
var hashOnce = sync.OnceValues(func() (string, error) { return access.HashPassword(testPassword) })

// addUser makes an account with roles and camera grant (all, or the listed ids).
func (f *accessFixture) addUser(tb testing.TB, name string, roles []access.Role, all bool, cameras ...string) {
	tb.Helper()
	hash, err := hashOnce()
	if err != nil {
		tb.Fatal(err)
	}
	if cameras == nil {
		cameras = []string{}
	}
	now := f.clock.Now()
	if _, err := f.cat.CreateUser(context.Background(), catalog.User{Name: name, PasswordHash: hash,
		Roles: access.RoleStrings(roles), AllCameras: all, Cameras: cameras, Created: now, Changed: now}); err != nil {
		tb.Fatal(err)
	}
}

var loginAddresses atomic.Int64

// login logs name in through POST /api/login on h and returns the session cookie.
func login(tb testing.TB, h http.Handler, name string) *http.Cookie {
	tb.Helper()
	// Each login from its own address: the tests log in far more often than the per-address
	// throttle lets one address.
	n := loginAddresses.Add(1)
	rec := postLogin(h, name, testPassword, fmt.Sprintf("198.51.%d.%d:4000", n/250%250, n%250+1))
	if rec.Code != http.StatusOK {
		tb.Fatalf("login %s: %d %s", name, rec.Code, rec.Body)
	}
	for _, c := range rec.Result().Cookies() {
		if c.Name == "townwatch_session" {
			return c
		}
	}
	tb.Fatalf("login %s: no session cookie in %v", name, rec.Result().Cookies())
	return nil
}

func postLogin(h http.Handler, name, password, remote string) *httptest.ResponseRecorder {
	body, _ := json.Marshal(loginRequest{Username: name, Password: password})
	req := httptest.NewRequest(http.MethodPost, "/api/login", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = remote
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// withCookie sends every request to h with the session cookie c, as a logged-in browser.
func withCookie(h http.Handler, c *http.Cookie) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.AddCookie(c)
		h.ServeHTTP(w, r)
	})
}

// auditRows returns every audit row of action (all rows for "").
func (f *accessFixture) auditRows(tb testing.TB, action string) []catalog.AuditEntry {
	tb.Helper()
	rows, err := f.cat.AuditEntries(context.Background(), catalog.AuditQuery{Action: action, Limit: catalog.MaxAuditLimit})
	if err != nil {
		tb.Fatal(err)
	}
	return rows
}
