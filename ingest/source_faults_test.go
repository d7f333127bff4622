package ingest

// Fault tests of Source: what a dispatcher sees, and how the Source retries, when a camera
// goes away and comes back, hangs, rejects the password, does not exist, talks nonsense or
// sends a codec townwatch cannot record; and how the fan-out treats a slow consumer on a
// live camera. Every test is bounded by explicit deadlines and polls instead of sleeping,
// except where a camera must stay down (or be watched) for a set time.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"go.uber.org/goleak"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest/internal/rtsptest"
	"github.com/townwatch/townwatch/ingest/simcam"
)

// TestMain fails the package if any goroutine is still running after every test has
// stopped its Sources, cameras, relays and ffmpeg processes, or if anything wrote to the
// standard logger: gortsplib does for every callback left at its default, and townwatch
// must override them all (DESIGN.md §7).
func TestMain(m *testing.M) {
	stdlog := &logBuffer{}
	log.SetOutput(stdlog)
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: goroutines left running after the tests:\n%v\n", err)
			code = 1
		}
	}
	if out := stdlog.String(); out != "" {
		fmt.Fprintf(os.Stderr, "the standard logger was written to (a gortsplib default callback?):\n%s", out)
		code = 1
	}
	os.Exit(code)
}

// TestSourceStopsWithoutLeaks stops Sources in the middle of streaming, over TCP and UDP,
// and checks that nothing they started is left running. It does not run in parallel, so
// the goroutines it sees are its own.
func TestSourceStopsWithoutLeaks(t *testing.T) {
	// What runs now (the paused parallel tests, the test runner) is not ours. The check is
	// registered first, so it runs last: after the Sources and the camera have stopped.
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	cam := startSimcam(t, simcam.Config{Cameras: []simcam.CameraSpec{{Path: "leak", Clip: simcam.ClipStatic}}})
	hub := NewHub()
	for _, transport := range []string{configs.TransportTCP, configs.TransportUDP} {
		src := startSource(t, hub, "leak-"+transport, configs.Stream{
			URL: cam.URL("leak"), Transport: transport, StallTimeout: testStallTimeout,
		})
		waitState(t, src, 10*time.Second, "streaming", isStreaming)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := hub.Wait(ctx, src.Camera(), StreamMain)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		r := st.NewReader("test", 100)
		_, _ = readUntil(ctx, t, r, func(v []received) bool { return len(v) >= 5 })
		cancel()
		src.stop()
		// The Reader outlives the Source's session and says why it ended.
		if _, _, err := r.Read(context.Background()); !errors.Is(err, ErrStreamEnded) {
			// Units still queued come first; drain them.
			for err == nil {
				_, _, err = r.Read(context.Background())
			}
			if !errors.Is(err, ErrStreamEnded) {
				t.Errorf("%s: Read after stop = %v, want ErrStreamEnded", transport, err)
			}
		}
		r.Close()
		if cur := hub.Current(src.Camera(), StreamMain); cur != nil {
			t.Errorf("%s: Hub still has a live Stream after the Source stopped", transport)
		}
	}
	cam.stop()
}

// TestSourceReconnectsWhenCameraReturns kills the camera, keeps it away long enough for the
// backoff to grow past the acceptance bound, and brings it back on the same address: the
// Source must be streaming again within 3 s of the camera listening again, because it
// probes the port while the camera is unreachable instead of sleeping out its backoff.
func TestSourceReconnectsWhenCameraReturns(t *testing.T) {
	t.Parallel()
	spec := []simcam.CameraSpec{{Path: "gate", Clip: simcam.ClipStatic}}
	cam := startSimcam(t, simcam.Config{Cameras: spec})
	addr := cam.Addr()
	src := startSource(t, NewHub(), "returning", configs.Stream{
		URL: cam.URL("gate"), Transport: configs.TransportTCP, StallTimeout: testStallTimeout,
	})
	frames := waitState(t, src, 10*time.Second, "frames", hasFrames).ReceivedFrames

	cam.stop()
	killed := time.Now()
	st := waitState(t, src, 10*time.Second, "camera unreachable", func(st Status) bool {
		return st.State == StateBackoff && strings.HasPrefix(st.Reason, "camera unreachable: ")
	})
	if st.Reason != "camera unreachable: connection refused" {
		t.Errorf("reason %q, want camera unreachable: connection refused", st.Reason)
	}
	if !st.RetryAt.After(st.Since) {
		t.Errorf("RetryAt %v not after Since %v", st.RetryAt, st.Since)
	}

	// Stay away 5 s: by then the backoff has grown to 4 s (1 s, 2 s, 4 s), more than the
	// 3 s in which the camera's return must be noticed.
	time.Sleep(time.Until(killed.Add(5 * time.Second)))
	reconnects := src.Status().Reconnects
	if reconnects < 2 {
		t.Errorf("%d reconnect attempts in the 5 s outage, want at least 2", reconnects)
	}
	startSimcam(t, simcam.Config{Listen: addr, Cameras: spec})
	back := time.Now() // startSimcam returns once the new camera is Ready
	waitState(t, src, 3*time.Second, "streaming within 3 s of the camera's return", isStreaming)
	t.Logf("streaming again %v after the camera returned (%d reconnect attempts)", time.Since(back).Round(time.Millisecond), src.Status().Reconnects)
	// Frames are published from the first keyframe, at most one GOP (2 s) later.
	waitState(t, src, 3*time.Second+simcamGOP*frameInterval, "frames after the camera's return", func(st Status) bool {
		return st.ReceivedFrames > frames
	})
	t.Logf("frames again %v after the camera returned", time.Since(back).Round(time.Millisecond))
}

func hasFrames(st Status) bool { return st.State == StateStreaming && st.ReceivedFrames > 0 }

// TestSourceStallDetectedAndRecovered freezes a camera that keeps its connection open: the
// watchdog must end the session within the stall timeout (+1.5 s), say "stalled", end the
// Stream for its consumers, and stream again once the camera sends again.
func TestSourceStallDetectedAndRecovered(t *testing.T) {
	t.Parallel()
	const stall = 2 * time.Second
	cam := startSimcam(t, simcam.Config{Cameras: []simcam.CameraSpec{{Path: "hung", Clip: simcam.ClipMotion}}})
	hub := NewHub()
	src := startSource(t, hub, "hung", configs.Stream{
		URL: cam.URL("hung"), Transport: configs.TransportTCP, StallTimeout: configs.Duration(stall),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := hub.Wait(ctx, "hung", StreamMain)
	if err != nil {
		t.Fatal(err)
	}
	r := stream.NewReader("test", 1000)
	defer r.Close()
	waitState(t, src, 10*time.Second, "frames", hasFrames)

	frozen := time.Now()
	cam.SetFrozen("hung", true)
	st := waitState(t, src, stall+1500*time.Millisecond, "stall detection", func(st Status) bool {
		return st.State != StateStreaming && strings.Contains(st.Reason, "stalled")
	})
	t.Logf("stall detected %v after the camera froze: %s %q", time.Since(frozen).Round(time.Millisecond), st.State, st.Reason)
	if st.State != StateBackoff || !st.RetryAt.After(time.Now().Add(-100*time.Millisecond)) {
		t.Errorf("after a stall: state %s, RetryAt %v; want backoff with a retry ahead", st.State, st.RetryAt)
	}
	// The consumer learns that the session ended, and why.
	for err == nil {
		_, _, err = r.Read(ctx)
	}
	if !errors.Is(err, ErrStreamEnded) || !strings.Contains(err.Error(), "stalled") {
		t.Errorf("reader's end error %v, want ErrStreamEnded mentioning the stall", err)
	}

	frames := src.Status().ReceivedFrames
	cam.SetFrozen("hung", false)
	waitState(t, src, 15*time.Second, "frames after the camera resumed", func(st Status) bool {
		return hasFrames(st) && st.ReceivedFrames > frames
	})
	if n := src.Status().Reconnects; n < 1 {
		t.Errorf("reconnects %d after a stall, want at least 1", n)
	}
	next, err := hub.Wait(ctx, "hung", StreamMain)
	if err != nil || next == stream {
		t.Errorf("Hub.Wait after the stall = %p, %v; want a new Stream", next, err)
	}
}

// TestSourceStallWhileAudioFlows: a camera whose video encoder hangs while its audio goes
// on records nothing, so the watchdog must treat it as stalled even though audio units
// keep arriving.
func TestSourceStallWhileAudioFlows(t *testing.T) {
	t.Parallel()
	const stall = 2 * time.Second
	relay := startRelay(t, rtsptest.Publish{Video: rtsptest.H264, Audio: rtsptest.AAC})
	src := startSource(t, NewHub(), "mute-video", configs.Stream{
		URL: relay.URL("cam"), Transport: configs.TransportTCP, StallTimeout: configs.Duration(stall),
	})
	waitState(t, src, 10*time.Second, "frames", hasFrames)
	relay.SetFrozen("cam", description.MediaTypeVideo, true)
	waitState(t, src, stall+1500*time.Millisecond, "stall detection with audio still flowing", func(st Status) bool {
		return st.State != StateStreaming && strings.Contains(st.Reason, "stalled")
	})
}

// TestSourceZeroStallTimeout: a configs.Stream built in code (the demo, tests) rather than
// parsed has StallTimeout 0. NewSource neither rejects nor defaults it, and the watchdog
// then ends every session at its first check, one second in ("stalled: no media for 0s").
func TestSourceZeroStallTimeout(t *testing.T) {
	t.Parallel()
	cam := startSimcam(t, simcam.Config{Cameras: []simcam.CameraSpec{{Path: "zero", Clip: simcam.ClipStatic}}})
	if _, err := NewSource("zero", StreamMain, configs.Stream{URL: cam.URL("zero")}, NewHub(), nil); err != nil {
		return // rejecting it is a fix
	}
	rs := startSource(t, NewHub(), "zero", configs.Stream{URL: cam.URL("zero"), Transport: configs.TransportTCP})
	waitState(t, rs, 10*time.Second, "streaming", isStreaming)
	// Three watchdog checks later the session must still be up.
	deadline := time.Now().Add(3 * stallCheckInterval)
	for time.Now().Before(deadline) {
		if st := rs.Status(); st.State != StateStreaming {
			t.Fatalf("session ended with StallTimeout 0: %s %q", st.State, st.Reason)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSourceWrongPassword: a camera that rejects the password shows "failed" with an
// authentication reason and a retry time, is retried slowly (not hammered), and neither
// the status, nor the logs, nor the URL ever show the password tried or the real one. The
// right password, for contrast, streams.
func TestSourceWrongPassword(t *testing.T) {
	t.Parallel()
	const (
		user      = "operator"
		rightPass = "R1ght-Pa55-q9"
		wrongPass = "Wr0ng-Pa55-x7"
	)
	cam := startSimcam(t, simcam.Config{Cameras: []simcam.CameraSpec{
		{Path: "door", Clip: simcam.ClipStatic, Username: user, Password: rightPass},
	}})
	passFile := filepath.Join(t.TempDir(), "door.pass")
	if err := os.WriteFile(passFile, []byte(wrongPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  func(addr string) configs.Stream
	}{
		{"in-url", func(addr string) configs.Stream {
			return configs.Stream{URL: "rtsp://" + user + ":" + wrongPass + "@" + addr + "/door"}
		}},
		{"password-file", func(addr string) configs.Stream {
			return configs.Stream{URL: "rtsp://" + addr + "/door", Username: user, PasswordFile: passFile}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Count connections on the camera's side of the wire.
			proxy := rtsptest.NewProxy(t, cam.Addr())
			cfg := tc.cfg(proxy.Addr())
			cfg.Transport, cfg.StallTimeout = configs.TransportTCP, testStallTimeout
			src := startSource(t, NewHub(), "door-"+tc.name, cfg)
			st := waitState(t, src, 10*time.Second, "failed", func(st Status) bool { return st.State == StateFailed })
			if !strings.Contains(st.Reason, "authentication") {
				t.Errorf("reason %q, want it to mention authentication", st.Reason)
			}
			if !st.RetryAt.After(time.Now()) {
				t.Errorf("RetryAt %v is not in the future", st.RetryAt)
			}
			if want := "rtsp://" + user + ":***@" + proxy.Addr() + "/door"; st.URL != want {
				t.Errorf("status URL %q, want %q", st.URL, want)
			}

			// Watch the retries for 5 s: with backoff 1 s, 2 s, 4 s that is at most 3
			// more attempts, each a single connection.
			conns0, reconnects0 := proxy.Connections(), st.Reconnects
			time.Sleep(5 * time.Second)
			st = src.Status()
			if n := proxy.Connections() - conns0; n < 1 || n > 3 {
				t.Errorf("%d connections in 5 s after the first failure, want 1..3 (retried, with backoff)", n)
			}
			if n := st.Reconnects - reconnects0; n < 1 || n > 3 {
				t.Errorf("%d reconnects in 5 s, want 1..3", n)
			}
			if st.State != StateFailed && st.State != StateConnecting {
				t.Errorf("state %s after 5 s, want failed (or connecting for a retry)", st.State)
			}
			if st.ReceivedFrames != 0 || src.hub.Current(src.Camera(), StreamMain) != nil {
				t.Errorf("a rejected session published media: %+v", st)
			}

			src.stop()
			js, _ := json.Marshal(src.Status())
			for _, secret := range []string{wrongPass, rightPass} {
				if strings.Contains(string(js), secret) {
					t.Errorf("status shows a password: %s", js)
				}
				if strings.Contains(src.logs.String(), secret) {
					t.Errorf("logs show a password:\n%s", src.logs.String())
				}
			}
		})
	}
	t.Run("right-password", func(t *testing.T) {
		t.Parallel()
		src := startSource(t, NewHub(), "door-right", configs.Stream{
			URL: "rtsp://" + user + ":" + rightPass + "@" + cam.Addr() + "/door", Transport: configs.TransportTCP, StallTimeout: testStallTimeout,
		})
		st := waitState(t, src, 10*time.Second, "streaming", isStreaming)
		js, _ := json.Marshal(st)
		if strings.Contains(string(js), rightPass) || strings.Contains(src.logs.String(), rightPass) {
			t.Errorf("status or logs show the password: %s\n%s", js, src.logs.String())
		}
	})
}

// TestSourceConnectionRefused: nothing listens on the camera's port.
func TestSourceConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	src := startSource(t, NewHub(), "gone", configs.Stream{URL: "rtsp://" + addr + "/stream1", StallTimeout: testStallTimeout})
	st := waitState(t, src, 10*time.Second, "backoff", func(st Status) bool { return st.State == StateBackoff })
	if st.Reason != "camera unreachable: connection refused" {
		t.Errorf("reason %q, want camera unreachable: connection refused", st.Reason)
	}
	if !st.RetryAt.After(time.Now()) {
		t.Errorf("RetryAt %v is not in the future", st.RetryAt)
	}
	if st.Transport != "" || st.FPS != 0 || st.Bitrate != 0 || !st.LastFrame.IsZero() {
		t.Errorf("a camera that never connected shows media figures: %+v", st)
	}
}

// TestSourceUnknownPath: the camera exists but the path does not.
func TestSourceUnknownPath(t *testing.T) {
	t.Parallel()
	cam := startSimcam(t, simcam.Config{Cameras: []simcam.CameraSpec{{Path: "yard", Clip: simcam.ClipStatic}}})
	src := startSource(t, NewHub(), "typo", configs.Stream{URL: cam.URL("yrad"), StallTimeout: testStallTimeout})
	st := waitState(t, src, 10*time.Second, "failed", func(st Status) bool { return st.State == StateFailed })
	if !strings.Contains(st.Reason, "404") {
		t.Errorf("reason %q, want a 404", st.Reason)
	}
	if !st.RetryAt.After(time.Now()) {
		t.Errorf("RetryAt %v is not in the future", st.RetryAt)
	}
}

// TestSourceGarbageServer points the Source at servers that answer RTSP requests with
// nonsense. The Source must not panic, must never report streaming or publish anything,
// must keep retrying, and must say what went wrong.
func TestSourceGarbageServer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		respond garbageResponder
	}{
		{"random-bytes", func(w *bufio.Writer, _ rtspRequest, rng *rand.Rand) bool {
			b := make([]byte, 4096)
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			w.Write(b)
			return false
		}},
		{"random-after-status-line", func(w *bufio.Writer, req rtspRequest, rng *rand.Rand) bool {
			fmt.Fprintf(w, "RTSP/1.0 200 OK\r\nCSeq: %s\r\n", req.cseq)
			for range 64 {
				w.WriteByte(byte(rng.Uint32()))
			}
			w.WriteString("\r\n\r\n")
			return false
		}},
		{"malformed-status-line", func(w *bufio.Writer, req rtspRequest, _ *rand.Rand) bool {
			fmt.Fprintf(w, "RTSP/1.0 2OO OK\r\nCSeq: %s\r\n\r\n", req.cseq)
			return true
		}},
		{"huge-content-length", func(w *bufio.Writer, req rtspRequest, _ *rand.Rand) bool {
			fmt.Fprintf(w, "RTSP/1.0 200 OK\r\nCSeq: %s\r\nContent-Length: 4000000000\r\n\r\nv=0\r\n", req.cseq)
			return true
		}},
		{"malformed-sdp", func(w *bufio.Writer, req rtspRequest, _ *rand.Rand) bool {
			return answerDescribe(w, req, "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nm=video port RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\x00\xff")
		}},
		{"sdp-without-media", func(w *bufio.Writer, req rtspRequest, _ *rand.Rand) bool {
			return answerDescribe(w, req, "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=empty\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n")
		}},
		{"sdp-h264-then-setup-garbage", func(w *bufio.Writer, req rtspRequest, _ *rand.Rand) bool {
			if req.method == "SETUP" {
				fmt.Fprintf(w, "RTSP/1.0 200 OK\r\nCSeq: %s\r\nTransport: nonsense;;==\r\nSession: \r\n\r\n", req.cseq)
				return true
			}
			return answerDescribe(w, req, "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"+
				"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:trackID=1\r\n")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startGarbageServer(t, tc.respond)
			hub := NewHub()
			src := startSource(t, hub, "garbage-"+tc.name, configs.Stream{
				URL: "rtsp://" + srv.addr + "/cam", Transport: configs.TransportTCP, StallTimeout: testStallTimeout,
			})
			// Watch until the Source has tried three times (1 s + 2 s of backoff).
			seen := map[string]bool{}
			deadline := time.Now().Add(20 * time.Second)
			for srv.conns.Load() < 3 || src.Status().Reconnects < 2 {
				st := src.Status()
				if st.State == StateStreaming {
					t.Fatalf("streaming from a garbage server: %+v", st)
				}
				if st.State == StateBackoff || st.State == StateFailed {
					seen[string(st.State)+": "+st.Reason] = true
				}
				if time.Now().After(deadline) {
					t.Fatalf("only %d connections in 20 s; status %+v", srv.conns.Load(), st)
				}
				time.Sleep(10 * time.Millisecond)
			}
			st := src.Status()
			if st.ReceivedFrames != 0 || st.ReceivedBytes != 0 || hub.Current(src.Camera(), StreamMain) != nil {
				t.Errorf("published media from a garbage server: %+v", st)
			}
			if len(seen) == 0 {
				t.Fatalf("never saw a backoff or failed state with a reason")
			}
			for s := range seen {
				if strings.HasSuffix(s, ": ") || strings.Contains(s, "panic") {
					t.Errorf("unclear state %q", s)
				}
			}
			t.Logf("states seen: %q", slices.Sorted(func(yield func(string) bool) {
				for s := range seen {
					if !yield(s) {
						return
					}
				}
			}))
		})
	}
}

// TestSourceUnsupportedCodec: a camera that sends no H.264/H.265 video is "failed" with a
// reason naming what it offers, which is what the administrator has to change.
func TestSourceUnsupportedCodec(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		publish rtsptest.Publish
		offered string // gortsplib's name of the offered codec
	}{
		{"mjpeg", rtsptest.Publish{Video: rtsptest.MJPEG}, "M-JPEG"},
		{"audio-only", rtsptest.Publish{Video: "none", Audio: rtsptest.AAC}, "MPEG-4 Audio"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			relay := startRelay(t, tc.publish)
			hub := NewHub()
			src := startSource(t, hub, "codec-"+tc.name, configs.Stream{URL: relay.URL("cam"), StallTimeout: testStallTimeout})
			st := waitState(t, src, 10*time.Second, "failed", func(st Status) bool { return st.State == StateFailed })
			if !strings.Contains(st.Reason, tc.offered) || !strings.Contains(st.Reason, "H.264") {
				t.Errorf("reason %q, want it to name the offered %s and what is needed", st.Reason, tc.offered)
			}
			if !st.RetryAt.After(time.Now()) {
				t.Errorf("RetryAt %v is not in the future", st.RetryAt)
			}
			if hub.Current(src.Camera(), StreamMain) != nil || st.ReceivedBytes != 0 {
				t.Errorf("published a stream without supported video: %+v", st)
			}
		})
	}
}

// TestSourceFanOut runs a fast and a deliberately slow consumer on one live camera: the
// fast one gets every frame the Source published, without a hole; the slow one drops, the
// drops are counted, and it resumes only on keyframes.
func TestSourceFanOut(t *testing.T) {
	t.Parallel()
	// Frozen until both readers are attached, so that the fast one sees the first unit.
	cam := startSimcam(t, simcam.Config{Cameras: []simcam.CameraSpec{{Path: "square", Clip: simcam.ClipMotion}}}, "square")
	hub := NewHub()
	src := startSource(t, hub, "square", configs.Stream{
		URL: cam.URL("square"), Transport: configs.TransportTCP, StallTimeout: testStallTimeout,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := hub.Wait(ctx, "square", StreamMain)
	if err != nil {
		t.Fatal(err)
	}
	fast := st.NewReader("fast", 1000)
	slow := st.NewReader("slow", 8)
	defer fast.Close()
	defer slow.Close()
	cam.SetFrozen("square", false)

	var fastUnits, slowUnits []received
	var fastErr, slowErr error
	var wg sync.WaitGroup
	var fastCount atomic.Int64
	wg.Go(func() {
		for {
			u, gap, err := fast.Read(ctx)
			if err != nil {
				fastErr = err
				return
			}
			fastUnits = append(fastUnits, received{u: u, gap: gap})
			fastCount.Add(1)
		}
	})
	wg.Go(func() {
		for {
			u, gap, err := slow.Read(ctx)
			if err != nil {
				slowErr = err
				return
			}
			slowUnits = append(slowUnits, received{u: u, gap: gap})
			time.Sleep(200 * time.Millisecond) // a consumer that cannot keep up
		}
	})
	// 6 s of video: three GOPs for the slow reader to fall behind in and resync.
	for fastCount.Load() < 150 {
		if ctx.Err() != nil {
			t.Fatalf("only %d units in 30 s", fastCount.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	src.stop() // ends the Stream; the readers drain and get ErrStreamEnded
	wg.Wait()
	status := src.Status()

	for name, err := range map[string]error{"fast": fastErr, "slow": slowErr} {
		if !errors.Is(err, ErrStreamEnded) {
			t.Errorf("%s reader ended with %v, want ErrStreamEnded", name, err)
		}
	}
	// The fast reader got every frame the Source counted, in order, without a hole.
	if uint64(len(fastUnits)) != status.ReceivedFrames {
		t.Errorf("fast reader got %d units, Source published %d", len(fastUnits), status.ReceivedFrames)
	}
	if fast.Dropped() != 0 {
		t.Errorf("fast reader dropped %d", fast.Dropped())
	}
	if !fastUnits[0].u.Key {
		t.Errorf("fast reader's first unit is not a keyframe")
	}
	for i := 1; i < len(fastUnits); i++ {
		prev, u := fastUnits[i-1].u, fastUnits[i].u
		if d := u.DTS - prev.DTS; d <= 0 || d > frameInterval*3/2 || fastUnits[i].gap {
			t.Fatalf("fast reader: unit %d DTS step %v gap %v, want contiguous frames", i, d, fastUnits[i].gap)
		}
	}
	// The slow reader dropped, counted it, and resumed only at keyframes; between gaps
	// its frames are contiguous.
	if slow.Dropped() == 0 {
		t.Fatalf("slow reader (queue 8, 200 ms per unit) dropped nothing in %d units", len(fastUnits))
	}
	want := []DropCount{{"square", "fast", 0}, {"square", "slow", slow.Dropped()}}
	if got := hub.DropCounts(); !slices.Equal(got, want) {
		t.Errorf("DropCounts = %+v, want %+v", got, want)
	}
	gaps := 0
	for i, rc := range slowUnits {
		if rc.gap {
			gaps++
			if !rc.u.Key {
				t.Errorf("slow reader: unit %d follows a gap but is not a keyframe", i)
			}
		} else if i > 0 {
			if d := rc.u.DTS - slowUnits[i-1].u.DTS; d != frameInterval {
				t.Errorf("slow reader: unit %d DTS step %v without a reported gap", i, d)
			}
		}
	}
	if gaps == 0 {
		t.Errorf("slow reader dropped %d units but Read never reported a gap", slow.Dropped())
	}
	total := uint64(len(slowUnits)) + slow.Dropped()
	if total != status.ReceivedFrames {
		t.Errorf("slow reader: %d read + %d dropped = %d, want every published frame (%d)",
			len(slowUnits), slow.Dropped(), total, status.ReceivedFrames)
	}
}

// rtspRequest is what the garbage server reads of a request.
type rtspRequest struct {
	method string
	cseq   string
}

// garbageResponder writes a response to one request; it reports whether to keep the
// connection open for the next request.
type garbageResponder func(w *bufio.Writer, req rtspRequest, rng *rand.Rand) bool

type garbageServer struct {
	addr  string
	conns atomic.Int64
}

// answerDescribe answers OPTIONS properly and DESCRIBE with sdp.
func answerDescribe(w *bufio.Writer, req rtspRequest, sdp string) bool {
	switch req.method {
	case "OPTIONS":
		fmt.Fprintf(w, "RTSP/1.0 200 OK\r\nCSeq: %s\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n\r\n", req.cseq)
	case "DESCRIBE":
		fmt.Fprintf(w, "RTSP/1.0 200 OK\r\nCSeq: %s\r\nContent-Type: application/sdp\r\nContent-Base: rtsp://127.0.0.1/cam/\r\nContent-Length: %d\r\n\r\n%s",
			req.cseq, len(sdp), sdp)
	default:
		fmt.Fprintf(w, "RTSP/1.0 454 Session Not Found\r\nCSeq: %s\r\n\r\n", req.cseq)
	}
	return true
}

// startGarbageServer accepts RTSP connections on 127.0.0.1 and answers each request with
// respond, until the test ends.
func startGarbageServer(t *testing.T, respond garbageResponder) *garbageServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &garbageServer{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	wg.Go(func() {
		for seed := uint64(1); ; seed++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			g.conns.Add(1)
			mu.Lock()
			open[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer func() {
					mu.Lock()
					delete(open, c)
					mu.Unlock()
					c.Close()
				}()
				rng := rand.New(rand.NewPCG(seed, 42))
				br, bw := bufio.NewReader(c), bufio.NewWriter(c)
				for {
					c.SetDeadline(time.Now().Add(10 * time.Second))
					req, err := readRTSPRequest(br)
					if err != nil {
						return
					}
					keep := respond(bw, req, rng)
					if bw.Flush() != nil || !keep {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return g
}

// readRTSPRequest reads a request line and headers (clients send no bodies here).
func readRTSPRequest(br *bufio.Reader) (rtspRequest, error) {
	var req rtspRequest
	line, err := br.ReadString('\n')
	if err != nil {
		return req, err
	}
	req.method, _, _ = strings.Cut(strings.TrimSpace(line), " ")
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return req, err
		}
		line = strings.TrimSpace(line)
		if line == "" {
			return req, nil
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "CSeq") {
			req.cseq = strings.TrimSpace(v)
		}
	}
}
