package viewer

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/townwatch/townwatch/viewer/access"
)

// What the authorization chokepoint costs per request. Every benchmark sends the same
// kind of request (httptest.NewRequest, one cookie, a fresh ResponseRecorder) through a
// handler stack that ends in the same cheap handler, so the differences between them are
// the guard's. Nothing is asserted about the numbers; compare
//
//	go test ./viewer/ -run '^$' -bench 'Guard|Unguarded' -benchmem -count 5
//
// BenchmarkGuardAuthorizedRequest − BenchmarkUnguardedMux is the guard's added cost
// for a logged-in user.
//
// Steady state: the fixture's clock does not move, so every request finds its session
// seen "now" — less than touchEvery ago — and principal does no TouchSession write. What
// is measured is the read path every request pays: cookie parse, token check and hash,
// one catalog read of session and account, the principal, the access decision. The touch
// (one catalog write with an fsync per session per minute) is left out on purpose: at
// any request rate where the guard's cost matters it is amortized to nothing.

// benchGet sends GET path with cookie c (nil: none) to h, b.N times, and fails on any
// status but want.
func benchGet(b *testing.B, h http.Handler, path string, c *http.Cookie, want int) {
	b.Helper()
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if c != nil {
			req.AddCookie(c)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			b.Fatalf("GET %s: %d %s, want %d", path, rec.Code, rec.Body, want)
		}
	}
}

// BenchmarkGuardAuthorizedRequest is a logged-in supervisor on cheap authorized routes,
// through the server's whole handler (cross-origin check, mux, guard, handler).
func BenchmarkGuardAuthorizedRequest(b *testing.B) {
	s, fx := newGuardServer(b)
	fx.addUser(b, "velitel", []access.Role{access.Supervisor}, true)
	h := s.Handler()
	c := login(b, h, "velitel")
	b.Run("camera", func(b *testing.B) { benchGet(b, h, "/api/cameras/namesti", c, http.StatusOK) })
	b.Run("me", func(b *testing.B) { benchGet(b, h, "/api/me", c, http.StatusOK) })
}

// BenchmarkUnguardedMux is the baseline: the same handlers behind the same cross-origin
// check and a mux with the same patterns, without the guard. /api/me's handler needs a
// principal; it gets one made once, as the guard would have found it. The request
// carries the same cookie, unread.
func BenchmarkUnguardedMux(b *testing.B) {
	s, fx := newGuardServer(b)
	fx.addUser(b, "velitel", []access.Role{access.Supervisor}, true)
	c := login(b, s.Handler(), "velitel")
	p, err := s.auth.principal(func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/api/me", nil)
		r.AddCookie(c)
		return r
	}())
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/cameras/{id}", s.handleCamera)
	mux.HandleFunc("GET /api/me", func(w http.ResponseWriter, r *http.Request) {
		s.handleMe(w, r.WithContext(context.WithValue(r.Context(), principalKey, p)))
	})
	h := http.NewCrossOriginProtection().Handler(mux)
	b.Run("camera", func(b *testing.B) { benchGet(b, h, "/api/cameras/namesti", c, http.StatusOK) })
	b.Run("me", func(b *testing.B) { benchGet(b, h, "/api/me", c, http.StatusOK) })
	// A public route through the real stack: the guard's shortest path (accounts exist,
	// the route is public), for reference.
	b.Run("healthz-public", func(b *testing.B) { benchGet(b, s.Handler(), "/healthz", c, http.StatusOK) })
}

// BenchmarkGuardDenied is the guard refusing, through the server's whole handler:
//   - ungranted-camera: a dispatcher granted "namesti" asks for "most": 404, and the
//     refusal is written to the audit log (an HMAC-chained catalog write) before the answer;
//   - unknown-token: a well-formed token with no session: one catalog read, 401;
//   - no-cookie: 401 before any catalog access.
func BenchmarkGuardDenied(b *testing.B) {
	s, fx := newGuardServer(b)
	fx.addUser(b, "dispecer", []access.Role{access.Dispatcher}, false, "namesti")
	h := s.Handler()
	c := login(b, h, "dispecer")
	b.Run("ungranted-camera", func(b *testing.B) { benchGet(b, h, "/api/cameras/most", c, http.StatusNotFound) })
	forged := &http.Cookie{Name: c.Name, Value: fuzzLiveToken} // the right form, no such session here
	b.Run("unknown-token", func(b *testing.B) { benchGet(b, h, "/api/cameras/namesti", forged, http.StatusUnauthorized) })
	b.Run("no-cookie", func(b *testing.B) { benchGet(b, h, "/api/cameras/namesti", nil, http.StatusUnauthorized) })
}
