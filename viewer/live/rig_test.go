package live

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/viewer/live/whepclient"
)

// TestMain fails the package if a test leaves a goroutine behind: Run promises that every
// goroutine it started (sessions, feeds, writers, pion's) has exited when it returns.
//
// Tests that mostly wait on the camera's real-time frames call t.Parallel. Two kinds must
// not: those that count goroutines or the Go heap (churn_test.go), and those that check
// that every frame a UDP viewer got is intact (whep_test.go, the fast viewer of
// isolation_test.go), which on a starved CPU lose datagrams in the kernel's receive
// buffer. go test runs every test without t.Parallel first, one at a time, before the
// parallel ones start.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// runOwned runs fn until the test ends, then cancels it and waits for it to return.
func runOwned(t testing.TB, fn func(ctx context.Context)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); fn(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// rig is a simulated camera "cam" (main stream only) pulled into a Hub by a Source, a
// Manager serving it, and an HTTP server with the Manager's routes.
type rig struct {
	cam  *simcam.Server
	hub  *ingest.Hub
	src  *ingest.Source
	m    *Manager
	http *httptest.Server
}

func newRig(t testing.TB, opt Options, cams ...Camera) *rig {
	t.Helper()
	return newRigFrom(t, simcam.CameraSpec{Path: "cam", Clip: simcam.ClipMotion}, opt, cams...)
}

// newRigFrom is newRig with the camera "cam" serving spec (a clip of the test's choice).
func newRigFrom(t testing.TB, spec simcam.CameraSpec, opt Options, cams ...Camera) *rig {
	t.Helper()
	if len(cams) == 0 {
		cams = []Camera{{ID: "cam"}}
	}
	sc, err := simcam.New(simcam.Config{Listen: "127.0.0.1:0", Cameras: []simcam.CameraSpec{spec}})
	if err != nil {
		t.Fatal(err)
	}
	runOwned(t, func(ctx context.Context) { sc.Run(ctx) })
	<-sc.Ready()
	r := &rig{cam: sc, hub: ingest.NewHub()}
	src, err := ingest.NewSource("cam", ingest.StreamMain, configs.Stream{URL: sc.URL("cam"), Transport: configs.TransportTCP,
		StallTimeout: configs.Duration(5 * time.Second)}, r.hub, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.src = src
	runOwned(t, func(ctx context.Context) { src.Run(ctx) })
	if opt.ListenHost == "" {
		opt.ListenHost = "127.0.0.1"
	}
	if r.m, err = New(r.hub, cams, opt); err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	runOwned(t, func(ctx context.Context) { runErr <- r.m.Run(ctx) })
	select {
	case <-r.m.Ready():
	case err := <-runErr:
		t.Fatalf("Run: %v", err)
	}
	mux := http.NewServeMux()
	r.m.Register(mux)
	r.http = httptest.NewServer(mux)
	t.Cleanup(r.http.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := r.hub.Wait(ctx, "cam", ingest.StreamMain)
	if err != nil {
		t.Fatalf("the camera never streamed: %v", err)
	}
	// Like a camera that has been streaming for a while when a dispatcher opens it: wait
	// for its first keyframe, so the Stream holds a group of pictures to start from.
	first := st.NewReader("rig", 1)
	_, _, err = first.Read(ctx)
	first.Close()
	if err != nil {
		t.Fatalf("no keyframe from the camera: %v", err)
	}
	return r
}

// rxFrame is one access unit a test viewer reassembled from RTP.
type rxFrame struct {
	annexB []byte
	ts     uint32
	at     time.Time
	broken bool // a sequence number was missing inside or just before it
}

// isKey reports whether the frame is an IDR picture preceded by SPS and PPS.
func (f rxFrame) isKey() bool {
	var sps, pps, idr bool
	for _, n := range bytes.Split(f.annexB, []byte{0, 0, 0, 1}) {
		if len(n) == 0 {
			continue
		}
		switch n[0] & 0x1f {
		case 7:
			sps = true
		case 8:
			pps = true
		case 5:
			idr = sps && pps
		}
	}
	return idr
}

// viewer is a pion WHEP client, as a browser would be.
type viewer struct {
	pc          *webrtc.PeerConnection
	location    string
	posted      time.Time
	frames      chan rxFrame
	track       chan struct{} // closed when the read loop ends
	got         chan struct{} // closed when a track arrived
	once        sync.Once
	connectedAt atomic.Value     // time.Time
	packets     chan *rtp.Packet // viewerOpts.packets
}

type viewerOpts struct {
	tcpOnly bool
	query   string
	// rewriteAnswer, if set, edits the answer before the client applies it (the slow
	// viewer test routes ICE-TCP through a proxy it controls).
	rewriteAnswer func(string) string
	// editOffer, if set, edits the offer before it is posted.
	editOffer func(string) string
	// patient keeps the client's ICE up through a long silence (the stalled viewer hears
	// nothing while its connection is blocked).
	patient bool
	// acceptReplays keeps the client's SRTP from dropping a packet it has had already: a
	// browser asks again (NACK) only for packets it lost, the NACK test for some it has.
	acceptReplays bool
	// packets, if set, gets a copy of every RTP packet received, besides the frames
	// reassembled from them; a packet is dropped while it is full.
	packets chan *rtp.Packet
}

// dialWHEP offers a receive-only video session to base+/api/cameras/{camera}/whep. The
// viewer is closed (DELETE, then the PeerConnection) when the test ends unless closed
// before.
func dialWHEP(t testing.TB, base, camera string, o viewerOpts) (*viewer, error) {
	t.Helper()
	var tune []func(*webrtc.SettingEngine)
	if o.acceptReplays {
		tune = append(tune, func(se *webrtc.SettingEngine) { se.DisableSRTPReplayProtection(true) })
	}
	api, err := whepclient.API(o.tcpOnly, o.patient, tune...)
	if err != nil {
		return nil, err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	v := &viewer{pc: pc, frames: make(chan rxFrame, 512), track: make(chan struct{}), got: make(chan struct{}), packets: o.packets}
	t.Cleanup(func() { v.close(t, base) })
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		return nil, err
	}
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			v.connectedAt.Store(time.Now())
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		v.once.Do(func() { close(v.got) })
		defer close(v.track)
		v.read(tr)
	})
	v.location, err = whepclient.Exchange(pc, base+"/api/cameras/"+camera+"/whep"+o.query, whepclient.Hooks{
		Offer: o.editOffer, Answer: o.rewriteAnswer, Posting: func() { v.posted = time.Now() }})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// read reassembles H.264 access units from RTP until the connection closes.
func (v *viewer) read(tr *webrtc.TrackRemote) {
	var depack codecs.H264Packet
	var cur rxFrame
	var last uint16
	first := true
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		if v.packets != nil {
			select {
			case v.packets <- pkt.Clone():
			default:
			}
		}
		if !first && pkt.SequenceNumber != last+1 {
			cur.broken = true
		}
		first, last = false, pkt.SequenceNumber
		if len(cur.annexB) > 0 && pkt.Timestamp != cur.ts {
			v.emit(cur) // a frame whose marker packet was lost
			cur = rxFrame{broken: true}
		}
		cur.ts = pkt.Timestamp
		data, err := depack.Unmarshal(pkt.Payload)
		if err != nil {
			cur.broken = true
			continue
		}
		cur.annexB = append(cur.annexB, data...)
		if pkt.Marker {
			cur.at = time.Now()
			v.emit(cur)
			cur = rxFrame{}
		}
	}
}

func (v *viewer) emit(f rxFrame) {
	select {
	case v.frames <- f:
	default: // the test stopped consuming; it no longer looks at frames
	}
}

// hangUp sends the WHEP DELETE and returns its status.
func (v *viewer) hangUp(t testing.TB, base string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, base+v.location, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("DELETE %s: %v", v.location, err)
		return 0
	}
	resp.Body.Close()
	v.location = ""
	return resp.StatusCode
}

// close hangs up (if not done) and closes the PeerConnection, waiting for its read loop.
func (v *viewer) close(t testing.TB, base string) {
	if v.pc == nil {
		return
	}
	if v.location != "" {
		v.hangUp(t, base)
	}
	v.pc.Close()
	select {
	case <-v.got:
		<-v.track
	default:
	}
	// Drop what was received: the test's cleanup list keeps the viewer itself alive.
	v.pc, v.frames = nil, nil
}

// nextFrame waits for the viewer's next frame.
func (v *viewer) nextFrame(t testing.TB, within time.Duration) rxFrame {
	t.Helper()
	select {
	case f := <-v.frames:
		return f
	case <-time.After(within):
		t.Fatalf("no frame within %v", within)
		return rxFrame{}
	}
}

// checkDecodes fails unless ffmpeg decodes the Annex-B stream without a single error.
func checkDecodes(t testing.TB, annexB []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rx.h264")
	if err := os.WriteFile(path, annexB, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-xerror", "-f", "h264", "-i", path, "-f", "null", "-").CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("ffmpeg decoding what the viewer received: %v\n%s", err, out)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
