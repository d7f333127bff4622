package simcam

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// Generous bounds for anything that waits on real time over loopback: far
// above what a healthy run needs, so they fail only when something hangs.
const (
	readyTimeout = 10 * time.Second
	frameTimeout = 5 * time.Second // > one GOP (2 s) plus slack
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startServer runs a Server with cams on 127.0.0.1:0. prepare, if not nil,
// may adjust it between New and Run. stop cancels Run and returns its
// error; it is idempotent and also runs when the test ends.
func startServer(t *testing.T, cams []CameraSpec, prepare func(*Server)) (s *Server, stop func() error) {
	t.Helper()
	return startServerConfig(t, Config{Cameras: cams}, prepare)
}

// startServerConfig is startServer for a whole Config; Listen and Logger
// are set for the test.
func startServerConfig(t *testing.T, cfg Config, prepare func(*Server)) (s *Server, stop func() error) {
	t.Helper()
	cfg.Listen, cfg.Logger = "127.0.0.1:0", testLogger(t)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if prepare != nil {
		prepare(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(readyTimeout):
		t.Fatal("server not ready") // leaks Run; goleak will say so
	}
	stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(readyTimeout):
			return errors.New("Run did not return after cancel")
		}
	})
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s, stop
}

// shorten makes the camera at path loop its first n frames, so tests cross
// the loop point within seconds.
func shorten(path string, n int) func(*Server) {
	return func(s *Server) { s.cameras[path].frames = s.cameras[path].frames[:n] }
}

// receivedAU is one access unit as a reader depacketized it.
type receivedAU struct {
	nalus             [][]byte
	ts                uint32
	pts               int64 // PacketPTS2: unwrapped, in 90 kHz ticks
	arrival           time.Time
	firstSeq, lastSeq uint16
}

// player is a gortsplib client playing one simcam path.
type player struct {
	c       *gortsplib.Client
	medi    *description.Media
	forma   *format.H264
	aus     chan receivedAU
	waitErr chan error // receives once the client has stopped

	overflow, decodeErrors, lost atomic.Uint64
}

func newClient(u *base.URL, transport gortsplib.Transport) *gortsplib.Client {
	return &gortsplib.Client{
		Scheme:    u.Scheme,
		Host:      u.Host,
		Transport: &transport,
		// Keep gortsplib off the standard logger; failures show up as
		// errors from the calls or in the checks below.
		OnTransportSwitch: func(error) {},
		OnPacketsLost:     func(uint64) {},
		OnDecodeError:     func(error) {},
	}
}

// describe runs OPTIONS+DESCRIBE against rawURL and returns the H.264
// format or the error.
func describe(t *testing.T, rawURL string) (*format.H264, error) {
	t.Helper()
	u, err := base.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(u, gortsplib.TransportTCP)
	if err := c.Start2(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	desc, _, err := c.Describe(u)
	if err != nil {
		return nil, err
	}
	var forma *format.H264
	if desc.FindFormat(&forma) == nil {
		t.Fatalf("no H264 in %+v", desc)
	}
	return forma, nil
}

// play DESCRIBEs, SETUPs and PLAYs rawURL over transport and collects
// access units until the test ends.
func play(t *testing.T, rawURL string, transport gortsplib.Transport) *player {
	t.Helper()
	return playTLS(t, rawURL, transport, nil)
}

// playTLS is play with the client's TLS configuration for rtsps URLs (nil:
// system roots).
func playTLS(t *testing.T, rawURL string, transport gortsplib.Transport, tlsConf *tls.Config) *player {
	t.Helper()
	u, err := base.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	p := &player{aus: make(chan receivedAU, 4096), waitErr: make(chan error, 1)}
	p.c = newClient(u, transport)
	p.c.TLSConfig = tlsConf
	p.c.OnPacketsLost = func(n uint64) { p.lost.Add(n) }
	p.c.OnDecodeError = func(error) { p.decodeErrors.Add(1) }
	if err := p.c.Start2(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.c.Close()
		<-p.waitErr
	})
	go func() { p.waitErr <- p.c.Wait() }()

	desc, _, err := p.c.Describe(u)
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	p.medi = desc.FindFormat(&p.forma)
	medi := p.medi
	if medi == nil {
		t.Fatalf("no H264 in %+v", desc)
	}
	dec, err := p.forma.CreateDecoder()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		t.Fatalf("setup: %v", err)
	}

	var firstSeq uint16
	inAU := false
	p.c.OnPacketRTP(medi, p.forma, func(pkt *rtp.Packet) {
		if !inAU {
			firstSeq, inAU = pkt.SequenceNumber, true
		}
		pts, ptsOK := p.c.PacketPTS2(medi, pkt)
		nalus, err := dec.Decode(pkt)
		switch {
		case errors.Is(err, rtph264.ErrMorePacketsNeeded):
			return
		case err != nil || !ptsOK:
			// Joined mid-frame, or a packet went missing: not a frame.
			inAU = false
			p.decodeErrors.Add(1)
			return
		}
		inAU = false
		au := receivedAU{
			nalus: nalus, ts: pkt.Timestamp, pts: pts, arrival: time.Now(),
			firstSeq: firstSeq, lastSeq: pkt.SequenceNumber,
		}
		select {
		case p.aus <- au:
		default:
			p.overflow.Add(1)
		}
	})
	if _, err := p.c.Play(nil); err != nil {
		t.Fatalf("play: %v", err)
	}
	return p
}

// next returns the next access unit or fails the test.
func (p *player) next(t *testing.T) receivedAU {
	t.Helper()
	select {
	case au := <-p.aus:
		return au
	case err := <-p.waitErr:
		t.Fatalf("client stopped: %v", err)
	case <-time.After(frameTimeout):
		t.Fatal("no frame within", frameTimeout)
	}
	panic("unreachable")
}

func hasNALU(au [][]byte, nalu []byte) bool {
	return slices.ContainsFunc(au, func(n []byte) bool { return bytes.Equal(n, nalu) })
}

// packetsPerLoop is how many RTP packets one pass over frames takes.
func packetsPerLoop(t *testing.T, c *camera) int {
	t.Helper()
	enc, err := c.forma.CreateEncoder()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, au := range c.frames {
		pkts, err := enc.Encode(au.nalus)
		if err != nil {
			t.Fatal(err)
		}
		n += len(pkts)
	}
	return n
}

// TestPlay reads a 1 s loop (25 frames, one IDR) over TCP and UDP and checks
// what an NVR relies on: SPS/PPS in the SDP; an IDR with parameter sets
// first, within a GOP of joining; exactly one frame interval between
// timestamps through loop points and through the RTP timestamp and
// sequence number wraps; frames that are the clip's; real-time pacing.
//
// A client joining at 0 s misses the IDR of frame 0 and, like every
// gortsplib reader, reports nothing before the next one (frame 25, 1 s);
// from there it reads 3 s. Both wraps are placed at 2 s, inside that window.
func TestPlay(t *testing.T) {
	const tsStart = 1<<32 - 2*FrameRate*rtpTicksPerFrame
	for _, tr := range []gortsplib.Transport{gortsplib.TransportTCP, gortsplib.TransportUDP} {
		t.Run(tr.String(), func(t *testing.T) {
			t.Parallel()
			spec := CameraSpec{Path: "cam", Clip: ClipMotion, RTPTimestampStart: tsStart}
			s, _ := startServer(t, []CameraSpec{spec}, func(s *Server) {
				c := s.cameras["cam"]
				c.frames = c.frames[:FrameRate]
				c.spec.SequenceStart = uint16(65536 - 2*packetsPerLoop(t, c))
			})
			clip := s.cameras["cam"].frames
			cd := loadTestClip(t, ClipMotion)

			p := play(t, s.URL("cam"), tr)
			if !bytes.Equal(p.forma.SPS, cd.sps) || !bytes.Equal(p.forma.PPS, cd.pps) || p.forma.PacketizationMode != 1 {
				t.Errorf("SDP format %+v: want the clip's SPS/PPS and packetization mode 1", p.forma)
			}

			const window = 3 * time.Second
			aus := []receivedAU{p.next(t)}
			for aus[len(aus)-1].arrival.Sub(aus[0].arrival) < window {
				aus = append(aus, p.next(t))
			}

			// gortsplib readers report nothing before the first IDR they get
			// (PacketPTS2 needs one), so it must come, complete, within a GOP.
			if !h264.IsRandomAccess(aus[0].nalus) || !hasNALU(aus[0].nalus, cd.sps) || !hasNALU(aus[0].nalus, cd.pps) {
				t.Error("first frame is not an IDR with SPS/PPS in its access unit")
			}
			if ts0 := (aus[0].ts - tsStart) / rtpTicksPerFrame; ts0 > 2*uint32(len(clip)) {
				t.Errorf("first frame is frame %d, want one of the first two GOPs", ts0)
			}

			tsWrapped, seqWrapped, loops := false, false, 0
			for i, au := range aus {
				off := au.ts - tsStart // uint32: frames since start, in ticks
				n := int(off / rtpTicksPerFrame)
				if off%rtpTicksPerFrame != 0 || !slices.EqualFunc(au.nalus, clip[n%len(clip)].nalus, bytes.Equal) {
					t.Fatalf("received frame %d (ts %d): not clip frame %d", i, au.ts, n%len(clip))
				}
				if i == 0 {
					continue
				}
				prev := aus[i-1]
				if d := au.ts - prev.ts; d != rtpTicksPerFrame {
					// Over loopback nothing is lost, not even over UDP.
					t.Errorf("received frame %d: ts advanced %d, want %d", i, d, rtpTicksPerFrame)
				}
				if d := au.pts - prev.pts; d != int64(au.ts-prev.ts) {
					t.Errorf("received frame %d: PTS advanced %d, ts %d", i, d, au.ts-prev.ts)
				}
				if au.firstSeq != prev.lastSeq+1 {
					t.Errorf("received frame %d: seq %d after %d", i, au.firstSeq, prev.lastSeq)
				}
				tsWrapped = tsWrapped || au.ts < prev.ts
				seqWrapped = seqWrapped || au.firstSeq < prev.lastSeq || au.lastSeq < au.firstSeq
				if n%len(clip) == 0 {
					loops++
				}
			}
			if !tsWrapped || !seqWrapped || loops < 2 {
				t.Errorf("crossed: ts wrap %v, seq wrap %v, %d loop points; want both wraps and >= 2 loop points",
					tsWrapped, seqWrapped, loops)
			}

			// Real time: media time over arrival time, and the count.
			last := aus[len(aus)-1]
			media := time.Duration(last.pts-aus[0].pts) * time.Second / rtpClockRate
			wall := last.arrival.Sub(aus[0].arrival)
			if r := media.Seconds() / wall.Seconds(); r < 0.8 || r > 1.25 {
				t.Errorf("%v of media arrived in %v (ratio %.2f), want real time", media, wall, r)
			}
			if want := int(window / frameInterval); len(aus) < want*8/10 || len(aus) > want*12/10 {
				t.Errorf("%d frames in %v, want about %d", len(aus), window, want)
			}
			if n := p.lost.Load() + p.overflow.Load(); n > 0 {
				t.Errorf("%d packets lost, %d frames overflowed", p.lost.Load(), p.overflow.Load())
			}
		})
	}
}

// TestFreeze checks the stalled-camera knob: while frozen the session and
// its TCP connection stay up but no frame arrives; after unfreezing, media
// resumes on an IDR with timestamps that advanced by the frozen time and
// no sequence gap.
func TestFreeze(t *testing.T) {
	s, _ := startServer(t, []CameraSpec{{Path: "cam", Clip: ClipStatic}}, shorten("cam", 25))
	p := play(t, s.URL("cam"), gortsplib.TransportTCP)
	last := p.next(t)

	s.SetFrozen("cam", true)
	time.Sleep(300 * time.Millisecond) // let frames already queued arrive
	for drained := false; !drained; {
		select {
		case last = <-p.aus:
		default:
			drained = true
		}
	}
	const frozenFor = 2 * time.Second
	select {
	case au := <-p.aus:
		t.Fatalf("frame (ts %d) arrived while frozen", au.ts)
	case err := <-p.waitErr:
		t.Fatalf("session closed while frozen: %v", err)
	case <-time.After(frozenFor):
	}
	s.SetFrozen("cam", false)

	au := p.next(t)
	if !h264.IsRandomAccess(au.nalus) {
		t.Error("resumed on a non-IDR frame")
	}
	if au.firstSeq != last.lastSeq+1 {
		t.Errorf("resumed with seq %d after %d, want no gap", au.firstSeq, last.lastSeq)
	}
	jump := au.ts - last.ts
	if jump%rtpTicksPerFrame != 0 || time.Duration(jump)*time.Second/rtpClockRate < frozenFor {
		t.Errorf("ts jumped %d ticks over a %v freeze, want a whole number of frames >= the freeze", jump, frozenFor)
	}
	if au.pts-last.pts != int64(jump) {
		t.Errorf("PTS jumped %d, ts %d", au.pts-last.pts, jump)
	}
	if next := p.next(t); next.ts-au.ts != rtpTicksPerFrame {
		t.Errorf("after resume ts advanced %d, want %d", next.ts-au.ts, rtpTicksPerFrame)
	}
}

func TestAuth(t *testing.T) {
	s, _ := startServer(t, []CameraSpec{{Path: "cam", Clip: ClipStatic, Username: "straznik", Password: "s3cret"}},
		shorten("cam", 25))
	host := s.Addr()

	p := play(t, "rtsp://straznik:s3cret@"+host+"/cam", gortsplib.TransportTCP)
	p.next(t)

	for name, url := range map[string]string{
		"no credentials": "rtsp://" + host + "/cam",
		"wrong password": "rtsp://straznik:guess@" + host + "/cam",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := describe(t, url)
			if err == nil || !strings.Contains(err.Error(), "401") {
				t.Errorf("describe: %v, want a 401 error", err)
			}
		})
	}
}

func TestPaths(t *testing.T) {
	s, _ := startServer(t, nil, nil) // DefaultCameras
	for _, spec := range DefaultCameras() {
		forma, err := describe(t, s.URL(spec.Path))
		if err != nil {
			t.Errorf("%s: %v", spec.Path, err)
			continue
		}
		if want := loadTestClip(t, spec.Clip); !bytes.Equal(forma.SPS, want.sps) {
			t.Errorf("%s: SPS is not clip %s's", spec.Path, spec.Clip)
		}
	}
	if _, err := describe(t, s.URL("nope")); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("describe unknown path: %v, want a 404 error", err)
	}
	if host, _, _ := net.SplitHostPort(s.Addr()); host != "127.0.0.1" || strings.HasSuffix(s.Addr(), ":0") {
		t.Errorf("Addr() = %q, want 127.0.0.1 with the bound port", s.Addr())
	}
}

func TestRunPortBusy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s, err := New(Config{Listen: ln.Addr().String(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(t.Context()) }()
	select {
	case err := <-done:
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Errorf("Run: %v, want EADDRINUSE", err)
		}
	case <-time.After(readyTimeout):
		t.Fatal("Run did not return on a busy port")
	}
	select {
	case <-s.Ready():
		t.Error("Ready closed although Run failed")
	default:
	}
	if err := s.Run(t.Context()); err == nil || err.Error() != "simcam: Run called twice" {
		t.Errorf("second Run: %v", err)
	}
}

// TestShutdown checks that cancelling Run closes readers' sessions (they
// see the connection end instead of a silent stall) and returns nil.
func TestShutdown(t *testing.T) {
	s, stop := startServer(t, []CameraSpec{{Path: "cam", Clip: ClipStatic}}, shorten("cam", 25))
	p := play(t, s.URL("cam"), gortsplib.TransportTCP)
	p.next(t)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	select {
	case err := <-p.waitErr:
		p.waitErr <- err // for the cleanup
	case <-time.After(frameTimeout):
		t.Fatal("client session still open after Run returned")
	}
}

// TestReaderErrorsCountedNotPrinted sends an undecodable RTCP packet as a
// reader: gortsplib's default would print it to the standard logger (per
// packet); simcam must count it instead and print nothing.
func TestReaderErrorsCountedNotPrinted(t *testing.T) {
	var std bytes.Buffer
	var stdMu sync.Mutex
	log.SetOutput(writerFunc(func(b []byte) (int, error) {
		stdMu.Lock()
		defer stdMu.Unlock()
		return std.Write(b)
	}))
	t.Cleanup(func() { log.SetOutput(os.Stderr) })

	s, _ := startServer(t, []CameraSpec{{Path: "cam", Clip: ClipStatic}}, shorten("cam", 25))
	p := play(t, s.URL("cam"), gortsplib.TransportTCP)
	p.next(t)
	garbage := rtcp.RawPacket{0x00, 0x01, 0x02, 0x03} // RTP version 0
	if err := p.c.WritePacketRTCP(p.medi, &garbage); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(frameTimeout)
	for s.decodeErrors.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s.decodeErrors.Load() == 0 {
		t.Error("decode error not counted")
	}
	stdMu.Lock()
	defer stdMu.Unlock()
	if std.Len() > 0 {
		t.Errorf("standard logger got %q", std.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// TestFFmpegReads has ffmpeg, a client implementation other than
// gortsplib, authenticate, play and decode two seconds of a camera over
// each transport without a single error. The camera is frozen until both
// readers play, so its first frame to them is a keyframe: a reader that
// joins mid-GOP gets P-frames whose references it never had (as from a real
// camera), and ffmpeg reports those as errors or not depending on timing.
func TestFFmpegReads(t *testing.T) {
	ffmpeg := needTool(t, "ffmpeg")
	s, _ := startServer(t, []CameraSpec{{Path: "cam", Clip: ClipMotion, Username: "u", Password: "p"}},
		shorten("cam", 25))
	s.SetFrozen("cam", true)
	transports := []string{"tcp", "udp"}
	outputs := make([]bytes.Buffer, len(transports))
	done := make([]chan error, len(transports))
	for i, tr := range transports {
		cmd := exec.Command(ffmpeg, "-v", "error", "-xerror", "-rtsp_transport", tr,
			"-i", "rtsp://u:p@"+s.Addr()+"/cam", "-frames:v", "50", "-f", "null", "-")
		cmd.Stdout, cmd.Stderr = &outputs[i], &outputs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done[i] = make(chan error, 1)
		go func() { done[i] <- cmd.Wait() }()
		t.Cleanup(func() { cmd.Process.Kill() })
	}
	for deadline := time.Now().Add(frameTimeout); s.plays.Load() < uint64(len(transports)); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d ffmpeg readers playing after %v", s.plays.Load(), len(transports), frameTimeout)
		}
	}
	s.SetFrozen("cam", false)
	for i, tr := range transports {
		if err := <-done[i]; err != nil || outputs[i].Len() != 0 {
			t.Errorf("ffmpeg over %s: %v\n%s", tr, err, outputs[i].String())
		}
	}
}

// TestStart checks that Start returns a listening server whose stop ends Run, and a
// bind failure at once.
func TestStart(t *testing.T) {
	s, err := New(Config{Listen: "127.0.0.1:0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	stop, err := s.Start(t.Context())
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatalf("not listening after Start: %v", err)
	}
	c.Close()
	if err := stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if c, err := net.Dial("tcp", s.Addr()); err == nil {
		c.Close()
		t.Error("still listening after stop")
	}

	busy, err := New(Config{Listen: s.Addr(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if stop, err := busy.Start(t.Context()); !errors.Is(err, syscall.EADDRINUSE) || stop != nil {
		t.Errorf("Start on a busy port: %v", err)
	}
}
