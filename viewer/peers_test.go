package viewer

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/townwatch/townwatch/viewer/access"
)

// The node route is opened by the node token and by nothing else: no token, a wrong one,
// the token as a bearer and any user's session get 401; and the node token opens no other
// route.
func TestNodeRouteTakesOnlyTheNodeToken(t *testing.T) {
	rig := newRouteRig(t)
	h := rig.server.Handler()
	rig.fx.addUser(t, "velitel", []access.Role{access.Supervisor, access.Admin}, true)
	session := login(t, h, "velitel")
	const path = "/api/node/segments/" + segmentNamesti + "/media"
	ask := func(mod func(*http.Request)) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		mod(req)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for name, mod := range map[string]func(*http.Request){
		"no token":          func(*http.Request) {},
		"wrong token":       func(r *http.Request) { r.Header.Set(NodeTokenHeader, "rig-node-token-0123456789abcdeX") },
		"a prefix of it":    func(r *http.Request) { r.Header.Set(NodeTokenHeader, rigNodeToken[:10]) },
		"token as a bearer": func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+rigNodeToken) },
		"token in the URL":  func(r *http.Request) { r.URL.RawQuery = "token=" + rigNodeToken },
		"user session":      func(r *http.Request) { r.AddCookie(session) },
	} {
		if rec := ask(mod); rec.Code != http.StatusUnauthorized || strings.Contains(rec.Body.String(), rigNodeToken) {
			t.Errorf("%s: %d %s; want 401 without the token", name, rec.Code, rec.Body)
		}
	}
	// With the token the guard lets it through: the rig's segment is on no node's disk,
	// which the handler (not the guard) answers.
	rec := ask(func(r *http.Request) { r.Header.Set(NodeTokenHeader, rigNodeToken) })
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "not on this node") {
		t.Errorf("with the node token: %d %s; want the handler's 404 (not on this node)", rec.Code, rec.Body)
	}

	for _, rt := range rig.server.table() {
		if rt.action == access.ActionPublic || rt.action == access.ActionNode {
			continue
		}
		withToken := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Header.Set(NodeTokenHeader, rigNodeToken)
			r.Header.Set("Authorization", "Bearer "+rigNodeToken)
			h.ServeHTTP(w, r)
		})
		if status, body := requestRoute(withToken, rt, "namesti"); status != http.StatusUnauthorized && status != http.StatusSeeOther {
			t.Errorf("%s with the node token: %d %s; want 401 (or the login page)", rt.pattern, status, body)
		}
	}
}

// Live view of a camera another node holds is answered with that node's name and URL;
// a camera this node holds goes on to the WHEP handler.
func TestLiveViewOfACameraHeldElsewhereNamesItsNode(t *testing.T) {
	rig := newRouteRig(t)
	h := rig.server.Handler()
	rig.fx.addUser(t, "dispecer", []access.Role{access.Dispatcher}, true)
	user := withCookie(h, login(t, h, "dispecer"))
	offer := func(camera string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/api/cameras/"+camera+"/whep", strings.NewReader("v=0\r\n"))
		req.Header.Set("Content-Type", "application/sdp")
		rec := httptest.NewRecorder()
		user.ServeHTTP(rec, req)
		return rec
	}
	rec := offer("most")
	var answer liveElsewhereJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil || rec.Code != http.StatusConflict ||
		answer.Node != "uzel-b" || answer.Advertise != "https://uzel-b.example.cz:8443" || !strings.Contains(answer.Error, "uzel-b") {
		t.Errorf("offer for most (held by uzel-b): %d %s; want 409 naming uzel-b and its URL", rec.Code, rec.Body)
	}
	if rec := offer("namesti"); rec.Code == http.StatusConflict {
		t.Errorf("offer for namesti (held here): %d %s; want the WHEP handler's answer", rec.Code, rec.Body)
	}
}
