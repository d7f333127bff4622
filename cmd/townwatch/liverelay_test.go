package main

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pion/webrtc/v4"

	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer"
	"github.com/townwatch/townwatch/viewer/live/whepclient"
)

// relayViewer is a WebRTC client (pion, loopback only) watching one camera through a
// node's WHEP endpoint with a logged-in HTTP client, counting the video it receives.
type relayViewer struct {
	pc       *webrtc.PeerConnection
	location string
	answer   string
	bytes    atomic.Int64
	state    atomic.Value // webrtc.PeerConnectionState
}

func watchLive(t *testing.T, c *http.Client, url string) (*relayViewer, error) {
	t.Helper()
	api, err := whepclient.API(false, false)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	v := &relayViewer{pc: pc}
	v.state.Store(webrtc.PeerConnectionStateNew)
	t.Cleanup(func() { pc.Close() })
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) { v.state.Store(s) })
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			v.bytes.Add(int64(len(pkt.Payload)))
		}
	})
	v.location, err = whepclient.ExchangeWith(c, pc, url, whepclient.Hooks{Answer: func(sdp string) string { v.answer = sdp; return sdp }})
	return v, err
}

// waitFor polls cond every 100 ms until it holds or limit passes, then fails naming what.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool, logs ...*serveProc) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			var tails strings.Builder
			for _, p := range logs {
				tails.WriteString(tailLines(p.stderr.String(), 30) + "\n---\n")
			}
			t.Fatalf("after %s: %s\n%s", limit, what, tails.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// iceUDPPort is the ICE UDP port a node logged at start.
func iceUDPPort(t *testing.T, p *serveProc) string {
	t.Helper()
	m := regexp.MustCompile(`"webrtc listening".*"udp":"127\.0\.0\.1:(\d+)"`).FindStringSubmatch(p.stderr.String())
	if m == nil {
		t.Fatalf("no ICE UDP port in the node's log:\n%s", tailLines(p.stderr.String(), 30))
	}
	return m[1]
}

// A dispatcher logged in on node b watches live a camera recorded by node a: b checks and
// audits the offer and relays it to a, a answers from its own feed with its own ICE
// candidates, and the video flows from a to the client. One live.start row (b's); a
// refuses its node route without the token; b's wall in Chromium decodes a's camera;
// logging out on b ends the session on a, with b's live.stop row naming the logout. With a killed, an offer for its camera gives 502
// naming a; once b holds a moved camera, its live view is b's own.
func TestLiveViewIsRelayedToTheNodeHoldingTheCamera(t *testing.T) {
	t.Parallel()
	url, cfgs := nodeSetup(t, "", "a", "b")
	addAccount(t, cfgs["a"], "dispecer", "dispatcher", "-cameras", "all")
	addAccount(t, cfgs["a"], "operator", "dispatcher", "-cameras", "pinned") // the wall in Chromium
	a := startNodeProc(t, cfgs["a"], "a")
	b := startNodeProc(t, cfgs["b"], "b")
	procs := map[string]*serveProc{"a": a, "b": b}
	waitNodes(t, 60*time.Second, "the nodes do not record the shared cameras 2/2 and the pinned one on a", procs, func(v map[string]map[string]clusterCamera) bool {
		ha, _ := holders(v["b"])
		return recordsShare(v, "a", 2) && recordsShare(v, "b", 2) && ha["pinned"] == "a"
	})
	ctx := context.Background()
	cat, err := catalog.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	dispecer := loginClient(t, b.base, "dispecer", accountPassword)
	since := time.Now().Add(-time.Second)

	// The camera pinned to a, watched through b.
	var v *relayViewer
	waitFor(t, 30*time.Second, "no relayed live session of the pinned camera through b", func() bool {
		// a's camera may not stream yet (503, Retry-After): ask again, as the wall does.
		v, err = watchLive(t, dispecer, b.base+"api/cameras/pinned/whep")
		if err != nil {
			t.Logf("offer through b: %v", err)
			time.Sleep(time.Second)
		}
		return err == nil
	}, a, b)
	if !strings.HasPrefix(v.location, "/api/cameras/pinned/whep/") {
		t.Errorf("session Location %q; want one on b's own WHEP route", v.location)
	}
	aPort, bPort := iceUDPPort(t, a), iceUDPPort(t, b)
	if !strings.Contains(v.answer, " "+aPort+" typ host") || strings.Contains(v.answer, " "+bPort+" typ host") {
		t.Errorf("the answer's candidates are not a's (ICE port %s; b's is %s):\n%s", aPort, bPort, v.answer)
	}
	waitFor(t, 30*time.Second, "no video from a through the relayed session", func() bool { return v.bytes.Load() > 50_000 }, a, b)
	sentOn := func(p *serveProc) float64 {
		return metricValue(p.client, p.base, regexp.MustCompile(`townwatch_webrtc_sent_bytes_total\{camera="pinned"\} (\S+)`))
	}
	if sa, sb := sentOn(a), sentOn(b); sa <= 0 || sb != 0 {
		t.Errorf("video of pinned sent by a: %v bytes, by b: %v; want it all from a", sa, sb)
	}
	if got := metricValue(b.client, b.base, regexp.MustCompile(`townwatch_node_relayed_live_sessions\{holder="a",node="b"\} (\S+)`)); got != 1 {
		t.Errorf("b's open relayed sessions to a: %v, want 1", got)
	}
	liveRows := func(action string) []catalog.AuditEntry {
		rows, err := cat.AuditEntries(ctx, catalog.AuditQuery{From: since, To: time.Now().Add(time.Hour), Actor: "dispecer", Action: action, Limit: catalog.MaxAuditLimit})
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	if rows := liveRows("live.start"); len(rows) != 1 || rows[0].Actor != "dispecer" || rows[0].Camera != "pinned" || !strings.Contains(string(rows[0].Details), `"node":"a"`) {
		t.Errorf("live.start rows: %+v; want exactly one, by dispecer on b, for pinned, naming node a", rows)
	}

	// a's node route for live view takes the node token and nothing else.
	anon := &http.Client{Timeout: 10 * time.Second}
	for name, token := range map[string]string{"no token": "", "wrong token": "falesny-token-0123456789abcdef"} {
		for _, r := range [][2]string{{"POST", "api/node/cameras/pinned/whep"}, {"GET", "api/node/live"}} {
			req, _ := http.NewRequest(r[0], a.base+r[1], strings.NewReader("v=0\r\n"))
			req.Header.Set("Content-Type", "application/sdp")
			req.Header.Set(viewer.NodeNameHeader, "b")
			if token != "" {
				req.Header.Set(viewer.NodeTokenHeader, token)
			}
			resp, err := anon.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("a's %s /%s with %s: %d, want 401", r[0], r[1], name, resp.StatusCode)
			}
		}
	}
	if status, _, body := e2eDo(t, dispecer, "POST", a.base+"api/node/cameras/pinned/whep", "application/sdp", "v=0\r\n"); status != http.StatusUnauthorized {
		t.Errorf("a's node route with dispecer's session: %d %s, want 401", status, body)
	}

	sessionsOn := func(p *serveProc) float64 {
		return metricValue(p.client, p.base, regexp.MustCompile(`townwatch_webrtc_sessions\{camera="pinned"\} (\S+)`))
	}

	// The wall on b in Chromium, its JavaScript as for a local camera: the pinned camera's
	// tile decodes a's video. Its user's logout ends that view on a, and only that one.
	wall := loginClient(t, b.base, "operator", accountPassword)
	pg := openAdminPage(t, b.base, wall)
	pg.do(chromedp.Navigate(b.base))
	for deadline := time.Now().Add(45 * time.Second); !evalJS[bool](pg, `window.townwatch !== undefined && window.townwatch.tiles().then(ts => ts.some(t => t.id === "pinned" && t.state === "live" && t.framesDecoded > 0 && t.videoWidth > 0))`); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the pinned camera's tile on b's wall does not decode a's video within 45 s; tiles: %s\n%s\n---\n%s",
				evalJS[string](pg, `window.townwatch ? window.townwatch.tiles().then(ts => JSON.stringify(ts)) : "no wall"`),
				tailLines(b.stderr.String(), 20), tailLines(a.stderr.String(), 20))
		}
	}
	if got := sessionsOn(a); got != 2 {
		t.Errorf("sessions of pinned on a with the wall open: %v, want 2 (the client's and the wall's)", got)
	}
	if status, _, body := e2eDo(t, wall, "POST", b.base+"api/logout", "application/json", "{}"); status != http.StatusNoContent {
		t.Fatalf("the wall user's logout on b: %d %s", status, body)
	}
	waitFor(t, 5*time.Second, "the wall's session on a did not end after its user's logout on b", func() bool { return sessionsOn(a) == 1 }, a, b)
	rows, err := cat.AuditEntries(ctx, catalog.AuditQuery{From: since, To: time.Now().Add(time.Hour), Actor: "operator", Camera: "pinned", Limit: catalog.MaxAuditLimit})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, r := range rows {
		if strings.HasPrefix(r.Action, "live.") {
			actions = append(actions, r.Action)
		}
	}
	if strings.Join(actions, ",") != "live.start,live.stop" {
		t.Errorf("the wall user's live rows: %v, want one live.start and one live.stop", actions)
	}

	// Logging out on b ends the client's view on a.
	if status, _, body := e2eDo(t, dispecer, "POST", b.base+"api/logout", "application/json", "{}"); status != http.StatusNoContent {
		t.Fatalf("logout on b: %d %s", status, body)
	}
	waitFor(t, 5*time.Second, "the session on a did not end after the logout on b", func() bool { return sessionsOn(a) == 0 }, a, b)
	waitFor(t, 10*time.Second, "the client's connection did not close", func() bool {
		s := v.state.Load().(webrtc.PeerConnectionState)
		return s == webrtc.PeerConnectionStateClosed || s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateDisconnected
	}, a, b)
	if rows := liveRows("live.stop"); len(rows) != 1 || rows[0].Actor != "dispecer" || !strings.Contains(string(rows[0].Details), "logged out") {
		t.Errorf("live.stop rows: %+v; want exactly one, naming the logout", rows)
	}
	if rows := liveRows("live.start"); len(rows) != 1 {
		t.Errorf("live.start rows after the session: %d, want still one (a wrote none)", len(rows))
	}

	// a killed: its cameras' offers on b fail naming a until b holds them, then b serves
	// them itself.
	dispecer = loginClient(t, b.base, "dispecer", accountPassword)
	ha, _ := holders(nodeView(b.client, b.base))
	var moved string
	for _, id := range cluster4 {
		if ha[id] == "a" {
			moved = id
		}
	}
	a.cmd.Process.Kill()
	<-a.exited
	if _, err := watchLive(t, dispecer, b.base+"api/cameras/"+moved+"/whep"); err == nil || !strings.Contains(err.Error(), "HTTP 502") || !strings.Contains(err.Error(), `\"a\"`) {
		t.Errorf("offer for %s right after a was killed: %v; want 502 naming a", moved, err)
	}
	waitNodes(t, 40*time.Second, "b does not record all four shared cameras", map[string]*serveProc{"b": b}, func(v map[string]map[string]clusterCamera) bool {
		return recordsShare(v, "b", 4)
	})
	relayedBefore := metricValue(b.client, b.base, regexp.MustCompile(`townwatch_node_relayed_live_sessions_total\{holder="a",node="b"\} (\S+)`))
	var local *relayViewer
	waitFor(t, 30*time.Second, "no live session of the moved camera on b", func() bool {
		local, err = watchLive(t, dispecer, b.base+"api/cameras/"+moved+"/whep")
		if err != nil {
			time.Sleep(time.Second)
		}
		return err == nil
	}, b)
	waitFor(t, 30*time.Second, "no video of the moved camera from b", func() bool { return local.bytes.Load() > 50_000 }, b)
	if !strings.Contains(local.answer, " "+bPort+" typ host") {
		t.Errorf("the moved camera's answer does not carry b's candidates (port %s):\n%s", bPort, local.answer)
	}
	if got := metricValue(b.client, b.base, regexp.MustCompile(`townwatch_node_relayed_live_sessions_total\{holder="a",node="b"\} (\S+)`)); got != relayedBefore {
		t.Errorf("b relayed the moved camera (relayed sessions %v → %v); want it served locally", relayedBefore, got)
	}
}
