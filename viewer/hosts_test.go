package viewer

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// A request addressed to a name the server does not answer to is refused before any
// handler, whatever its method or path (DNS rebinding); the server's own names pass in
// any spelling a browser may send.
func TestOnlyAllowedHostNamesAreServed(t *testing.T) {
	h := allowedHosts([]string{"kamery.stribro.cz", "127.0.0.1", "::1", "localhost"},
		http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	for host, want := range map[string]int{
		"attacker.example":          http.StatusMisdirectedRequest,
		"attacker.example:8080":     http.StatusMisdirectedRequest,
		"kamery.stribro.cz.evil.cz": http.StatusMisdirectedRequest,
		"192.168.1.10:8080":         http.StatusMisdirectedRequest,
		"":                          http.StatusMisdirectedRequest,
		"kamery.stribro.cz":         http.StatusTeapot,
		"KAMERY.Stribro.cz.:8443":   http.StatusTeapot,
		"127.0.0.1:8080":            http.StatusTeapot,
		"[::1]:8080":                http.StatusTeapot,
		"localhost":                 http.StatusTeapot,
	} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			req := httptest.NewRequest(method, "/api/cameras/namesti/whep", nil)
			req.Host = host
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != want {
				t.Errorf("%s with Host %q: %d, want %d", method, host, rec.Code, want)
			}
		}
	}
}
