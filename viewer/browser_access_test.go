package viewer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/townwatch/townwatch/viewer/access"
)

// trackPeerConnections makes the page keep every RTCPeerConnection it creates in
// window.__townwatchPCs, so the test can read their states; the wall's own code is not
// changed for the test.
var trackPeerConnections = chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
	_, err := chromedp.Call(ctx, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: `
		window.__townwatchPCs = [];
		const Native = window.RTCPeerConnection;
		window.RTCPeerConnection = function (...args) {
			const pc = new Native(...args);
			window.__townwatchPCs.push(pc);
			return pc;
		};
		window.RTCPeerConnection.prototype = Native.prototype;
	`})
	return err
})

// peerView is what the page shows of its WebRTC sessions.
type peerView struct {
	Path   string   `json:"path"`
	States []string `json:"states"`
}

// peers reads the page's peer connections; ok is false while the page is navigating
// (its old document, and every connection in it, is gone).
func (p *page) peers() (v peerView, ok bool) {
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[peerView](
		`({path: location.pathname, states: (window.__townwatchPCs || []).map((pc) => pc.connectionState)})`))
	return v, err == nil
}

// TestDisablingAUserEndsTheirLiveView: a dispatcher watches a camera; an administrator
// disables the account. Within 5 s the dispatcher's WebRTC session is closed on the
// server and in the browser, the page then lands on the login page, and the access log
// says why the view ended.
func TestDisablingAUserEndsTheirLiveView(t *testing.T) {
	cam := demoCameras[1]
	rig := newWallRig(t, 4, cam)
	rig.fx.addUser(t, "dispecer", []access.Role{access.Dispatcher}, false, cam.id)
	wall := openPage(t, rig.browser(t, "dispecer"), rig.url, trackPeerConnections)
	wall.waitTiles("the granted camera decoding", time.Now().Add(15*time.Second), func(tiles map[string]tileStats) bool {
		return tiles[cam.id].decoding()
	})
	before, _ := wall.peers()
	live := slices.Index(before.States, "connected")
	if live < 0 || len(rig.live.Sessions(cam.id)) != 1 {
		t.Fatalf("before: browser peer connections %v, server sessions %d; want one connected", before.States, len(rig.live.Sessions(cam.id)))
	}

	disabled := time.Now()
	if err := rig.fx.cat.SetDisabled(t.Context(), "dispecer", true, disabled); err != nil {
		t.Fatal(err)
	}
	var serverClosed, browserClosed time.Duration
	for serverClosed == 0 || browserClosed == 0 {
		since := time.Since(disabled)
		if since > 5*time.Second {
			now, _ := wall.peers()
			t.Fatalf("5 s after disabling: server sessions %d, browser connections %v (path %s); want both closed",
				len(rig.live.Sessions(cam.id)), now.States, now.Path)
		}
		if serverClosed == 0 && len(rig.live.Sessions(cam.id)) == 0 {
			serverClosed = since
		}
		// The connection that was playing is closed, or the page that held it is gone.
		if v, ok := wall.peers(); browserClosed == 0 && (!ok || v.Path != before.Path || len(v.States) <= live ||
			v.States[live] == "closed" || v.States[live] == "failed") {
			browserClosed = since
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("after disabling: server session closed in %v, browser connection in %v", serverClosed.Round(time.Millisecond), browserClosed.Round(time.Millisecond))

	// The page finds its session gone (401) and sends the person to log in again.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if v, ok := wall.peers(); ok && v.Path == "/login" {
			break
		}
		if time.Now().After(deadline) {
			v, _ := wall.peers()
			t.Fatalf("the page is still at %q 20 s after the account was disabled; want the login page", v.Path)
		}
	}
	stops := rig.fx.auditRows(t, access.AuditLiveStop)
	if len(stops) != 1 || stops[0].Actor != "dispecer" || stops[0].Camera != cam.id {
		t.Fatalf("live.stop rows %+v; want one for dispecer's view", stops)
	}
	var d struct{ Reason string }
	if json.Unmarshal(stops[0].Details, &d); !strings.Contains(d.Reason, "disabled") {
		t.Errorf("live.stop gives the reason %q; want it to say the account was disabled", d.Reason)
	}
}

// statusRecorder remembers the status a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// TestCrossOriginPageCannotChangeAnything: a logged-in supervisor and administrator opens
// a page of another origin, which fires every state-changing route of townwatch at it —
// as simple no-cors requests (the classic CSRF), as JSON/SDP requests, and as a form
// submission. Every one that reaches the server is refused, and nothing changed: the
// session still works, no live view was opened, no logout and no lock happened.
func TestCrossOriginPageCannotChangeAnything(t *testing.T) {
	rig := newRouteRig(t)
	rig.fx.addUser(t, "velitel", []access.Role{access.Supervisor, access.Admin}, false)
	h := rig.server.Handler()
	cookie := login(t, h, "velitel")
	rowsBefore := len(rig.fx.auditRows(t, ""))

	var mu sync.Mutex
	reached := map[string][]int{} // "METHOD /path" → statuses of requests that changed nothing or would have
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions {
			mu.Lock()
			reached[r.Method+" "+r.URL.Path] = append(reached[r.Method+" "+r.URL.Path], rec.status)
			mu.Unlock()
		}
	}))
	defer target.Close()

	type request struct{ Method, Path string }
	var mutating []request
	for _, rt := range rig.server.table() {
		if method, path := concretePath(rt.pattern, "namesti"); method != http.MethodGet && method != http.MethodHead {
			mutating = append(mutating, request{method, path})
		}
	}
	list, _ := json.Marshal(mutating)
	attack := fmt.Sprintf(`<!doctype html><title>attack</title><iframe name="sink"></iframe>
<form id="f" method="post" enctype="text/plain" target="sink" action="%[1]s/api/logout"><input name="a" value="b"></form>
<script>
(async () => {
	const target = %[1]q, requests = %[2]s;
	for (const r of requests) {
		const url = target + r.Path;
		// A simple request: no preflight, the cookie goes along (same-site).
		if (r.Method === "POST") await fetch(url, {method: "POST", mode: "no-cors", credentials: "include",
			headers: {"Content-Type": "text/plain"}, body: "{}"}).catch(() => {});
		// Requests the API would accept by their type: the browser must preflight them.
		for (const type of ["application/json", "application/sdp"]) {
			await fetch(url, {method: r.Method, credentials: "include", headers: {"Content-Type": type}, body: "{}"}).catch(() => {});
		}
	}
	document.getElementById("f").submit();
	await new Promise((done) => document.querySelector("iframe").addEventListener("load", done));
	document.title = "done";
})();
</script>`, strings.TrimSuffix(target.URL, "/"), list)
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, attack)
	}))
	defer attacker.Close()

	browser := newBrowser(t)
	placeCookie(t, browser, target.URL+"/", cookie)
	// Same site, other origin (another port of 127.0.0.1): the browser sends the cookie, so
	// only the server's cross-origin check stands between the page and the API. Then a
	// cross-site origin (localhost).
	for _, origin := range []string{attacker.URL, strings.Replace(attacker.URL, "127.0.0.1", "localhost", 1)} {
		p := openPage(t, browser, origin+"/")
		if _, err := chromedp.Run(p.ctx, chromedp.Poll[bool](`document.title === "done"`, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			t.Fatalf("the attacking page at %s did not finish: %v", origin, err)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	for _, r := range mutating {
		if r.Method == http.MethodPost && len(reached[r.Method+" "+r.Path]) == 0 {
			t.Errorf("%s %s never reached the server: the attack did not test it", r.Method, r.Path)
		}
	}
	for req, statuses := range reached {
		for _, code := range statuses {
			if code != http.StatusForbidden {
				t.Errorf("%s from another origin answered %d, want 403", req, code)
			}
		}
	}
	// Nothing changed: the session is still valid, no view opened, nothing logged but
	// (possibly) refusals.
	if rec := do(withCookie(h, cookie), http.MethodGet, "/api/me", "", ""); rec.Code != http.StatusOK {
		t.Errorf("after the attack /api/me answers %d: the session was changed", rec.Code)
	}
	if n := len(rig.server.opt.Live.Sessions("")); n != 0 {
		t.Errorf("%d live sessions were opened by the other origin", n)
	}
	for _, row := range rig.fx.auditRows(t, "")[rowsBefore:] {
		if row.Outcome == "ok" {
			t.Errorf("the attack left an access-log row %s %s (%s)", row.Action, row.Camera, row.Outcome)
		}
	}
}
