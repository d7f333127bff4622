package viewer

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/viewer/access"
	"github.com/townwatch/townwatch/viewer/live"
)

// fakeHolder plays the holder node's side of the relay protocol on loopback, recording
// what the asking node sent. The real holder (a second townwatch serve -node) is in
// cmd/townwatch's TestLiveViewIsRelayedToTheNodeHoldingTheCamera.
type fakeHolder struct {
	t   *testing.T
	srv *httptest.Server
	fx  *accessFixture

	mu          sync.Mutex
	requests    []string          // method and path of each request
	headers     http.Header       // of the offer
	offer       string            // its body
	startRows   int               // live.start rows in the catalog when the offer arrived
	open        map[string]bool   // sessions "open" on the holder
	ended       map[string]string // why the others ended
	patchStatus int
	deleteFails bool // the holder answers a DELETE with 500 and keeps the session
}

func newFakeHolder(t *testing.T, fx *accessFixture) *fakeHolder {
	h := &fakeHolder{t: t, fx: fx, open: map[string]bool{}, ended: map[string]string{}}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *fakeHolder) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests = append(h.requests, r.Method+" "+r.URL.Path)
	if r.Header.Get(NodeTokenHeader) != rigNodeToken || r.Header.Get(NodeNameHeader) != rigNode {
		http.Error(w, "node token required", http.StatusUnauthorized)
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/api/node/cameras/most/whep":
		body, _ := io.ReadAll(r.Body)
		h.headers, h.offer = r.Header.Clone(), string(body)
		h.startRows = len(h.fx.auditRows(h.t, access.AuditLiveStart))
		if r.URL.Query().Get("stream") != "main" {
			http.Error(w, "stream "+r.URL.Query().Get("stream"), http.StatusBadRequest)
			return
		}
		h.open["REMOTE1"] = true
		w.Header().Set("Content-Type", "application/sdp")
		w.Header().Set("Location", "/api/node/cameras/most/whep/REMOTE1")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "v=0\r\no=holder-answer\r\n")
	case r.Method == http.MethodPatch:
		w.Header().Set("Allow", "DELETE")
		http.Error(w, "trickle ICE is not supported", http.StatusMethodNotAllowed)
	case r.Method == http.MethodDelete && r.URL.Path == "/api/node/cameras/most/whep/REMOTE1":
		if h.deleteFails {
			http.Error(w, "busy", http.StatusInternalServerError)
			return
		}
		delete(h.open, "REMOTE1")
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet && r.URL.Path == "/api/node/cameras":
		writeJSON(w, http.StatusOK, map[string]streamStatus{"most": {Main: ingest.Status{Camera: "most", Stream: "main", State: ingest.StateStreaming, Width: 1920}}})
	case r.Method == http.MethodGet && r.URL.Path == "/api/node/live":
		list := nodeLiveList{Open: []string{}, Ended: h.ended}
		for id := range h.open {
			list.Open = append(list.Open, id)
		}
		writeJSON(w, http.StatusOK, list)
	default:
		http.NotFound(w, r)
	}
}

func (h *fakeHolder) sent() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.requests...)
}

// An offer for a camera another node holds is authorized and audited here, then relayed
// to the holder's node route with the node token, this node's name and the viewer's;
// the holder's answer comes back with a Location on this node, whose PATCH and DELETE
// go to the holder's session. One live.start row before the offer left, one live.stop
// row at the end, also when the holder ended it or the account was disabled; a holder
// that does not answer gives 502 naming it.
func TestLiveOfferForACameraHeldElsewhereIsRelayed(t *testing.T) {
	rig := newRouteRig(t)
	h := rig.server.Handler()
	holder := newFakeHolder(t, rig.fx)
	rig.server.opt.Peers.Holder = func(camera string) (string, string) {
		if camera == "most" {
			return "uzel-b", holder.srv.URL
		}
		return rigNode, ""
	}
	rig.fx.addUser(t, "dispecer", []access.Role{access.Dispatcher}, true)
	user := withCookie(h, login(t, h, "dispecer"))
	do := func(method, path, contentType, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		rec := httptest.NewRecorder()
		user.ServeHTTP(rec, req)
		return rec
	}

	// The wall waits for a camera's stream to be up: for most, the holder says so. The
	// states are asked in the background, so the list never waits on the holder: the first
	// answer may not have them yet.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		rec := do("GET", "/api/cameras/most", "", "")
		if rec.Code == http.StatusOK && strings.Contains(rec.Body.String(), `"width":1920`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/api/cameras/most: %d %s; want the holder's stream state within 5 s", rec.Code, rec.Body)
		}
	}

	rec := do("POST", "/api/cameras/most/whep", "application/sdp", "v=0\r\no=browser-offer\r\n")
	location := rec.Header().Get("Location")
	if rec.Code != http.StatusCreated || rec.Body.String() != "v=0\r\no=holder-answer\r\n" || !strings.HasPrefix(location, "/api/cameras/most/whep/") ||
		strings.HasSuffix(location, "REMOTE1") {
		t.Fatalf("relayed offer: %d %q Location %q; want 201, the holder's answer and a session of this node", rec.Code, rec.Body, location)
	}
	if holder.offer != "v=0\r\no=browser-offer\r\n" || holder.headers.Get(NodeViewerHeader) != "dispecer" || holder.headers.Get("Cookie") != "" {
		t.Errorf("the holder got offer %q, viewer %q, cookie %q; want the browser's offer, the viewer's name and no cookie",
			holder.offer, holder.headers.Get(NodeViewerHeader), holder.headers.Get("Cookie"))
	}
	if holder.startRows != 1 {
		t.Errorf("live.start rows when the offer reached the holder: %d, want 1 (audit before the offer leaves)", holder.startRows)
	}
	starts := rig.fx.auditRows(t, access.AuditLiveStart)
	if len(starts) != 1 || starts[0].Actor != "dispecer" || starts[0].Camera != "most" || !strings.Contains(string(starts[0].Details), `"node":"uzel-b"`) {
		t.Errorf("live.start rows %+v; want one by dispecer for most naming node uzel-b", starts)
	}

	// PATCH goes to the holder's session and its answer comes back; another user's
	// session cannot reach it.
	if rec := do("PATCH", location, "application/sdp", "a=candidate"); rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "DELETE" {
		t.Errorf("PATCH: %d %v; want the holder's 405", rec.Code, rec.Header())
	}
	rig.fx.addUser(t, "jiny", []access.Role{access.Dispatcher}, true)
	other := withCookie(h, login(t, h, "jiny"))
	req := httptest.NewRequest("DELETE", location, nil)
	rec = httptest.NewRecorder()
	other.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound {
		t.Errorf("another user's DELETE: %d, want 404", rec.Code)
	}
	if rec := do("DELETE", location, "", ""); rec.Code != http.StatusNoContent {
		t.Errorf("DELETE: %d %s, want 204", rec.Code, rec.Body)
	}
	sent := holder.sent()
	if want := []string{"GET /api/node/cameras", "POST /api/node/cameras/most/whep", "PATCH /api/node/cameras/most/whep/REMOTE1", "DELETE /api/node/cameras/most/whep/REMOTE1"}; strings.Join(sent, "|") != strings.Join(want, "|") {
		t.Errorf("the holder got %q, want %q", sent, want)
	}
	stops := rig.fx.auditRows(t, access.AuditLiveStop)
	if len(stops) != 1 || !strings.Contains(string(stops[0].Details), "DELETE") || !strings.Contains(string(stops[0].Details), `"node":"uzel-b"`) {
		t.Errorf("live.stop rows %+v; want one saying the viewer hung up", stops)
	}

	// A session the holder ended by itself (the browser vanished) gets its stop row at
	// the next sweep, with the holder's reason.
	if rec := do("POST", "/api/cameras/most/whep", "application/sdp", "v=0\r\n"); rec.Code != http.StatusCreated {
		t.Fatalf("second offer: %d %s", rec.Code, rec.Body)
	}
	holder.mu.Lock()
	delete(holder.open, "REMOTE1")
	holder.ended["REMOTE1"] = "connection failed or the viewer went silent"
	holder.mu.Unlock()
	rig.server.sweepLive(context.Background())
	stops = rig.fx.auditRows(t, access.AuditLiveStop)
	if len(stops) != 2 || !strings.Contains(string(stops[1].Details), "went silent") {
		t.Errorf("live.stop rows after the holder ended the session: %+v; want a second naming the holder's reason", stops)
	}

	// The viewer's account disabled (by the CLI, say): the sweep ends the view on the
	// holder and names why.
	if rec := do("POST", "/api/cameras/most/whep", "application/sdp", "v=0\r\n"); rec.Code != http.StatusCreated {
		t.Fatalf("third offer: %d %s", rec.Code, rec.Body)
	}
	if err := rig.fx.cat.SetDisabled(context.Background(), "dispecer", true, rig.fx.clock.Now()); err != nil {
		t.Fatal(err)
	}
	// The holder fails the first DELETE: the video may still flow, so no stop row yet, and
	// the next sweep asks again.
	holder.mu.Lock()
	holder.deleteFails = true
	holder.mu.Unlock()
	rig.server.sweepLive(context.Background())
	if stops = rig.fx.auditRows(t, access.AuditLiveStop); len(stops) != 2 {
		t.Errorf("after a DELETE the holder refused: %d stop rows, want still 2 (the view is not known to have stopped)", len(stops))
	}
	holder.mu.Lock()
	holder.deleteFails = false
	holder.mu.Unlock()
	before := len(holder.sent())
	rig.server.sweepLive(context.Background())
	stops = rig.fx.auditRows(t, access.AuditLiveStop)
	if sent := holder.sent()[before:]; len(stops) != 3 || !strings.Contains(string(stops[2].Details), "account disabled") || !slices.Contains(sent, "DELETE /api/node/cameras/most/whep/REMOTE1") {
		t.Errorf("after the account was disabled: stop rows %+v, the holder got %q; want the view ended there naming it", stops, sent)
	}
	rig.server.sweepLive(context.Background())
	if n := len(rig.fx.auditRows(t, access.AuditLiveStop)); n != 3 {
		t.Errorf("%d stop rows after one more sweep, want 3: one per view", n)
	}
	if err := rig.fx.cat.SetDisabled(context.Background(), "dispecer", false, rig.fx.clock.Now()); err != nil {
		t.Fatal(err)
	}
	user = withCookie(h, login(t, h, "dispecer"))

	// A holder that does not answer: 502 naming it, and the view never started.
	holder.srv.Close()
	rec = do("POST", "/api/cameras/most/whep", "application/sdp", "v=0\r\n")
	var answer liveElsewhereJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil || rec.Code != http.StatusBadGateway || answer.Node != "uzel-b" || !strings.Contains(answer.Error, `"uzel-b"`) {
		t.Errorf("offer with the holder down: %d %s; want 502 naming uzel-b", rec.Code, rec.Body)
	}
	stops = rig.fx.auditRows(t, access.AuditLiveStop)
	if len(stops) != 4 || !strings.Contains(string(stops[3].Details), "not started") {
		t.Errorf("live.stop rows after the holder was down: %+v; want a fourth saying it never started", stops)
	}
	got := rig.server.opt.Peers.Relayed()["uzel-b"]
	if want := (RelayStats{Sessions: 3, Open: 0, Failures: 1}); got != want {
		t.Errorf("relay counters for uzel-b: %+v, want %+v", got, want)
	}

	// A camera this node holds is not relayed.
	if rec := do("POST", "/api/cameras/namesti/whep", "application/sdp", "v=0\r\n"); rec.Code == http.StatusBadGateway || rec.Code == http.StatusCreated {
		t.Errorf("offer for namesti (held here): %d %s; want the local WHEP handler's answer", rec.Code, rec.Body)
	}
}

// The holder's node route for an offer serves only cameras this node holds, and only to a
// node that names itself: never asked on to a third node.
func TestNodeLiveRouteServesOnlyCamerasHeldHere(t *testing.T) {
	rig := newRouteRig(t)
	h := rig.server.Handler()
	offer := func(camera, node string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/api/node/cameras/"+camera+"/whep", strings.NewReader("v=0\r\n"))
		req.Header.Set("Content-Type", "application/sdp")
		req.Header.Set(NodeTokenHeader, rigNodeToken)
		if node != "" {
			req.Header.Set(NodeNameHeader, node)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := offer("most", "uzel-c"); rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "not held by node") {
		t.Errorf("offer for most (held by uzel-b) on uzel-a's node route: %d %s; want 409, not relayed on", rec.Code, rec.Body)
	}
	if rec := offer("namesti", ""); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), NodeNameHeader) {
		t.Errorf("offer without the asking node's name: %d %s; want 400 naming %s", rec.Code, rec.Body, NodeNameHeader)
	}
	// namesti is held here: the WHEP handler answers (and refuses the rig's empty offer).
	if rec := offer("namesti", "uzel-c"); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "SDP offer") {
		t.Errorf("offer for namesti on the node route: %d %s; want the WHEP handler's 400 about the offer", rec.Code, rec.Body)
	}
}

// A stopping node ends its relayed views all at once under one deadline: several views
// on a holder that takes their DELETEs and never answers are all asked before that
// deadline ends (asked one after another, the first alone would reach the holder before
// it), the view on a node that is down fails by itself, each failure is logged naming the
// view and its node, and every view gets its stop row.
func TestStoppingEndsRelaysUnderOneDeadline(t *testing.T) {
	rig := newRouteRig(t)
	const hanging = 3
	// The shared deadline, which the holder brings forward to the moment it has every
	// DELETE: the views end by this context, not by a timeout of their own.
	ctx, deadline := context.WithTimeout(t.Context(), relayCheckTimeout)
	defer deadline()
	var mu sync.Mutex
	var deletes []string
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		deletes = append(deletes, r.Method+" "+r.URL.Path)
		all := len(deletes) == hanging
		mu.Unlock()
		if all {
			deadline()
		}
		<-r.Context().Done()
	}))
	t.Cleanup(slow.Close)
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()

	add := func(id, holder, base string) {
		rig.server.relays.mu.Lock()
		defer rig.server.relays.mu.Unlock()
		rig.server.relays.out[id] = &relay{info: live.SessionInfo{ID: id, Camera: "most", Stream: "main", Started: time.Now()},
			holder: holder, base: base, remote: "R" + id}
	}
	var want []string
	for _, id := range []string{"V1", "V2", "V3"} {
		add(id, "uzel-b", slow.URL)
		want = append(want, "DELETE /api/node/cameras/most/whep/R"+id)
	}
	add("V4", "uzel-c", down.URL)

	rig.server.endAllRelays(ctx, "server stopping")

	mu.Lock()
	got := slices.Sorted(slices.Values(deletes))
	mu.Unlock()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("the slow holder got %q before the deadline, want %q: every DELETE at once", got, want)
	}
	logs := rig.logs.String()
	for id, node := range map[string]string{"V1": "uzel-b", "V2": "uzel-b", "V3": "uzel-b", "V4": "uzel-c"} {
		found := false
		for line := range strings.Lines(logs) {
			if strings.Contains(line, "ending a session on its holder at shutdown") && strings.Contains(line, "session="+id+" ") &&
				strings.Contains(line, "node="+node+" ") && (node != "uzel-b" || strings.Contains(line, "context canceled")) {
				found = true
			}
		}
		if !found {
			t.Errorf("no warning naming session %s and node %s (the slow holder's by the shared deadline); log:\n%s", id, node, logs)
		}
	}
	if left := rig.server.relays.all(); len(left) != 0 {
		t.Errorf("%d relays left after the shutdown, want none", len(left))
	}
	stops := rig.fx.auditRows(t, access.AuditLiveStop)
	if len(stops) != 4 {
		t.Fatalf("%d live.stop rows, want 4: one per view", len(stops))
	}
	for _, row := range stops {
		if !strings.Contains(string(row.Details), "server stopping") {
			t.Errorf("live.stop row %s; want the reason server stopping", row.Details)
		}
	}
}
