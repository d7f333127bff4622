package viewer

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

func do(h http.Handler, method, path, contentType, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// While no account exists, the server answers /healthz and a page naming the command
// that makes the first one — nothing else, and no default password logs in.
func TestNoAccountsServesOnlyHealthAndTheSetupPage(t *testing.T) {
	rig := newRouteRig(t)
	h := rig.server.Handler()
	if rec := do(h, http.MethodGet, "/healthz", "", ""); rec.Code != http.StatusOK {
		t.Fatalf("healthz: %d", rec.Code)
	}
	rec := do(h, http.MethodGet, "/", "", "")
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "townwatch user add") ||
		!strings.Contains(rec.Body.String(), "Zatím neexistuje žádný účet") {
		t.Fatalf("GET / with no accounts: %d %s", rec.Code, rec.Body)
	}
	for _, path := range []string{"/api/cameras", "/metrics", "/api/me", "/login"} {
		if rec := do(h, http.MethodGet, path, "", ""); rec.Code != http.StatusServiceUnavailable {
			t.Errorf("GET %s with no accounts: %d, want 503", path, rec.Code)
		}
	}
	for _, cred := range [][2]string{{"admin", "admin"}, {"admin", "password"}, {"root", "root"}, {"admin", "12345"}} {
		if rec := postLogin(h, cred[0], cred[1], "192.0.2.1:1"); rec.Code == http.StatusOK {
			t.Errorf("login %s/%s worked on a fresh install", cred[0], cred[1])
		}
	}
}

// A login sets an HttpOnly SameSite=Strict cookie; /api/me shows the account; logout ends
// the session so the old cookie gets 401; a wrong password gets 401 without naming which
// part was wrong, and the password is nowhere in the answer or the audit log.
func TestLoginMeLogout(t *testing.T) {
	rig := newRouteRig(t)
	h := rig.server.Handler()
	rig.fx.addUser(t, "novak", []access.Role{access.Officer}, false, "namesti")

	rec := postLogin(h, "novak", "not-the-password-123", "192.0.2.7:1")
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "wrong user name or password") {
		t.Fatalf("wrong password: %d %s", rec.Code, rec.Body)
	}
	if rec := postLogin(h, "nobody", "not-the-password-123", "192.0.2.7:1"); rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "wrong user name or password") {
		t.Fatalf("unknown user: %d %s", rec.Code, rec.Body)
	}
	c := login(t, h, "novak")
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/", c)
	}
	user := withCookie(h, c)
	me := do(user, http.MethodGet, "/api/me", "", "")
	for _, want := range []string{`"name":"novak"`, `"officer"`, `"namesti"`, `"playback"`} {
		if !strings.Contains(me.Body.String(), want) {
			t.Errorf("/api/me lacks %s: %s", want, me.Body)
		}
	}
	if rec := do(user, http.MethodPost, "/api/logout", "application/json", "{}"); rec.Code != http.StatusNoContent {
		t.Fatalf("logout: %d %s", rec.Code, rec.Body)
	}
	if rec := do(user, http.MethodGet, "/api/me", "", ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("old cookie after logout: %d", rec.Code)
	}
	rows := rig.fx.auditRows(t, "")
	var actions []string
	for _, r := range rows {
		actions = append(actions, r.Action)
		for _, field := range []string{string(r.Details), r.Actor, r.Reason} {
			if strings.Contains(field, "not-the-password") || strings.Contains(field, testPassword) {
				t.Errorf("audit row %d holds a password: %+v", r.ID, r)
			}
		}
	}
	if got := strings.Join(actions, ","); got != "login.fail,login.fail,login.ok,logout" {
		t.Errorf("audit actions %s, want login.fail,login.fail,login.ok,logout", got)
	}
	if rows[1].Actor != "unknown" {
		t.Errorf("a failed login for a name that is no account is recorded as %q; the name may be a mistyped password", rows[1].Actor)
	}
}

// Idle and absolute expiry with the injected clock; requests the page makes by itself
// (the wall's poll) do not keep a session alive.
func TestSessionExpiry(t *testing.T) {
	rig := newRouteRig(t)
	h := rig.server.Handler()
	rig.fx.addUser(t, "dispecer", []access.Role{access.Dispatcher}, true)
	clock := rig.fx.clock

	user := withCookie(h, login(t, h, "dispecer"))
	poll := func() int {
		req := httptest.NewRequest(http.MethodGet, "/api/cameras", nil)
		req.Header.Set(pollHeader, "1")
		rec := httptest.NewRecorder()
		user.ServeHTTP(rec, req)
		return rec.Code
	}
	clock.Advance(29 * time.Minute)
	if code := poll(); code != http.StatusOK {
		t.Fatalf("after 29 min idle: %d", code)
	}
	clock.Advance(2 * time.Minute) // 31 min since the last real activity; the poll did not count
	if code := poll(); code != http.StatusUnauthorized {
		t.Fatalf("after 31 min with only polls: %d, want 401", code)
	}

	// Activity every 20 minutes keeps it, until 12 hours after login.
	user = withCookie(h, login(t, h, "dispecer"))
	for elapsed := time.Duration(0); elapsed < 11*time.Hour+40*time.Minute; elapsed += 20 * time.Minute {
		clock.Advance(20 * time.Minute)
		if rec := do(user, http.MethodGet, "/api/me", "", ""); rec.Code != http.StatusOK {
			t.Fatalf("active session at %v: %d", elapsed+20*time.Minute, rec.Code)
		}
	}
	clock.Advance(20 * time.Minute) // 12 h since login
	if rec := do(user, http.MethodGet, "/api/me", "", ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("12 h after login: %d, want 401", rec.Code)
	}
}

// Disabling an account, changing its password or withdrawing a grant applies to the very
// next request (roles and grants are read afresh every time).
func TestAccountChangesApplyAtTheNextRequest(t *testing.T) {
	rig := newRouteRig(t)
	h := rig.server.Handler()
	ctx := context.Background()
	rig.fx.addUser(t, "a", []access.Role{access.Dispatcher}, false, "namesti", "most")
	user := withCookie(h, login(t, h, "a"))
	if rec := do(user, http.MethodGet, "/api/cameras/most", "", ""); rec.Code != http.StatusOK {
		t.Fatalf("granted camera: %d", rec.Code)
	}
	if err := rig.fx.cat.SetGrants(ctx, "a", []string{"dispatcher"}, false, []string{"namesti"}, rig.fx.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if rec := do(user, http.MethodGet, "/api/cameras/most", "", ""); rec.Code != http.StatusNotFound {
		t.Fatalf("withdrawn camera: %d, want 404", rec.Code)
	}
	if body := do(user, http.MethodGet, "/api/cameras", "", "").Body.String(); strings.Contains(body, `"most"`) {
		t.Fatalf("withdrawn camera still listed: %s", body)
	}
	if err := rig.fx.cat.SetDisabled(ctx, "a", true, rig.fx.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if rec := do(user, http.MethodGet, "/api/me", "", ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("disabled account: %d, want 401", rec.Code)
	}
	if rec := postLogin(h, "a", testPassword, "192.0.2.99:1"); rec.Code != http.StatusUnauthorized {
		t.Fatalf("disabled account logs in: %d", rec.Code)
	}
}

// 1000 wrong logins in a minute from one address: at most 10 password checks, the rest
// 429 with Retry-After; meanwhile a correct login from another address succeeds.
func TestLoginThrottle(t *testing.T) {
	rig := newRouteRig(t)
	h := rig.server.Handler()
	rig.fx.addUser(t, "dispecer", []access.Role{access.Dispatcher}, true)
	var throttled int
	for i := range 1000 {
		rec := postLogin(h, "dispecer", "wrong-password-000", "203.0.113.5:40000")
		switch rec.Code {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			throttled++
			if rec.Header().Get("Retry-After") == "" {
				t.Fatalf("429 without Retry-After")
			}
		default:
			t.Fatalf("attempt %d: %d %s", i, rec.Code, rec.Body)
		}
		rig.fx.clock.Advance(60 * time.Millisecond) // 1000 attempts in one minute
	}
	checked := len(rig.fx.auditRows(t, access.AuditLoginFail))
	if checked > 10 || throttled < 990 {
		t.Fatalf("%d password checks and %d throttled of 1000; want at most 10 checks", checked, throttled)
	}
	// The guessing run is in the access log with its size: about one row a minute, whose
	// counts add up to every refusal.
	rows := rig.fx.auditRows(t, access.AuditLoginThrottled)
	refused := 0
	for _, row := range rows {
		var d struct{ Refused int }
		json.Unmarshal(row.Details, &d)
		refused += d.Refused
		if row.Client != "203.0.113.5" || row.Outcome != catalog.AuditDenied {
			t.Errorf("throttle row %+v; want the guessing address, denied", row)
		}
	}
	if len(rows) < 1 || len(rows) > 2 || refused < 1 || refused > throttled {
		t.Errorf("%d login.throttled rows counting %d refusals, for %d throttled attempts in a minute; want one or two rows", len(rows), refused, throttled)
	}
	start := time.Now()
	if rec := postLogin(h, "dispecer", testPassword, "198.51.100.20:5000"); rec.Code != http.StatusOK {
		t.Fatalf("the real dispatcher from another address: %d %s", rec.Code, rec.Body)
	}
	t.Logf("1000 wrong logins: %d checked, %d throttled; the real login from elsewhere took %v", checked, throttled, time.Since(start))
}

// X-Forwarded-For is believed only from http.trusted_proxies.
func TestClientAddressHonoursOnlyTrustedProxies(t *testing.T) {
	a := &auth{opt: AccessOptions{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	for _, tt := range []struct{ remote, xff, want string }{
		{"192.0.2.1:1000", "6.6.6.6", "192.0.2.1"},                 // not a proxy: header ignored
		{"10.1.1.1:1000", "198.51.100.7", "198.51.100.7"},          // proxy: its client
		{"10.1.1.1:1000", "6.6.6.6, 198.51.100.7", "198.51.100.7"}, // the nearest untrusted hop, not what the client claims
		{"10.1.1.1:1000", "198.51.100.7, 10.2.2.2", "198.51.100.7"},
		{"10.1.1.1:1000", "", "10.1.1.1"},
		{"10.1.1.1:1000", "garbage", "10.1.1.1"},
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = tt.remote
		if tt.xff != "" {
			req.Header.Set("X-Forwarded-For", tt.xff)
		}
		if got := a.clientAddr(req); got != tt.want {
			t.Errorf("remote %s XFF %q: %s, want %s", tt.remote, tt.xff, got, tt.want)
		}
	}
}

// /metrics: an admin's session or the bearer token, nobody else.
func TestMetricsNeedAdminOrToken(t *testing.T) {
	rig := newRouteRig(t)
	rig.server.auth.opt.MetricsToken = "scrape-token-0123456789"
	h := rig.server.Handler()
	rig.fx.addUser(t, "spravce", []access.Role{access.Admin}, false)
	rig.fx.addUser(t, "velitel", []access.Role{access.Supervisor}, false)
	if rec := do(withCookie(h, login(t, h, "spravce")), http.MethodGet, "/metrics", "", ""); rec.Code != http.StatusOK {
		t.Errorf("admin: %d", rec.Code)
	}
	if rec := do(withCookie(h, login(t, h, "velitel")), http.MethodGet, "/metrics", "", ""); rec.Code != http.StatusForbidden {
		t.Errorf("supervisor: %d, want 403", rec.Code)
	}
	for token, want := range map[string]int{"scrape-token-0123456789": 200, "scrape-token-012345678": 401, "": 401} {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("bearer %q: %d, want %d", token, rec.Code, want)
		}
	}
}

// A cross-site request with a logged-in cookie jar changes nothing: the cross-origin
// check refuses it, and a form-encoded body is refused even from the same site.
func TestCrossSiteRequestsAreRefused(t *testing.T) {
	rig := newRouteRig(t)
	h := rig.server.Handler()
	rig.fx.addUser(t, "velitel", []access.Role{access.Supervisor}, false)
	user := withCookie(h, login(t, h, "velitel"))
	req := httptest.NewRequest(http.MethodPost, "/api/logout", strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://attacker.example")
	rec := httptest.NewRecorder()
	user.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("cross-site logout: %d, want 403", rec.Code)
	}
	if rec := do(user, http.MethodPost, "/api/logout", "text/plain", "{}"); rec.Code != http.StatusUnsupportedMediaType {
		t.Fatalf("text/plain logout: %d, want 415", rec.Code)
	}
	if rec := do(user, http.MethodGet, "/api/me", "", ""); rec.Code != http.StatusOK {
		t.Fatalf("the session survived nothing: %d", rec.Code)
	}
}

// failingAudit is an access log whose writes fail, as on a broken catalog disk.
type failingAudit struct {
	Auditor
	appends atomic.Int64
}

func (f *failingAudit) Append(context.Context, catalog.AuditEntry) (catalog.AuditEntry, error) {
	f.appends.Add(1)
	return catalog.AuditEntry{}, errors.New("disk I/O error")
}

// Audit before media: the snapshot row is committed before the picture is sent; when the
// row cannot be written the picture is withheld (503) and the failure counted.
func TestSnapshotIsAuditedBeforeItLeaves(t *testing.T) {
	rig := newRouteRig(t)
	h := rig.server.Handler()
	rig.fx.addUser(t, "dispecer", []access.Role{access.Dispatcher}, true)
	user := withCookie(h, login(t, h, "dispecer"))
	path := "/api/events/" + eventNamesti + "/snapshot.jpg"
	for range 3 {
		if rec := do(user, http.MethodGet, path, "", ""); rec.Code != http.StatusOK || !strings.HasPrefix(rec.Body.String(), "\xff\xd8") {
			t.Fatalf("snapshot: %d", rec.Code)
		}
	}
	views := rig.fx.auditRows(t, access.AuditSnapshotView)
	if len(views) != 1 || views[0].Actor != "dispecer" || views[0].Camera != "namesti" {
		t.Fatalf("snapshot view rows %+v; want one (per user, camera and hour)", views)
	}
	rig.server.snapshots.flush(context.Background(), rig.server, time.Time{})
	if more := rig.fx.auditRows(t, access.AuditSnapshotViews); len(more) != 1 || !strings.Contains(string(more[0].Details), `"more_views":2`) {
		t.Fatalf("hourly summary rows %+v; want one counting 2 more views", more)
	}

	broken := &failingAudit{Auditor: rig.fx.audit}
	rig.server.opt.Access.Audit = broken
	before := rig.server.AuditFailures()
	rec := do(user, http.MethodGet, "/api/events/"+eventMost+"/snapshot.jpg", "", "")
	if rec.Code != http.StatusServiceUnavailable || strings.Contains(rec.Body.String(), "\xff\xd8") {
		t.Fatalf("snapshot with a broken audit log: %d %q, want 503 without the picture", rec.Code, rec.Body)
	}
	if rig.server.AuditFailures() != before+1 || broken.appends.Load() != 1 {
		t.Fatalf("audit failures %d → %d, appends %d", before, rig.server.AuditFailures(), broken.appends.Load())
	}
}
