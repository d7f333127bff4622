package probe_test

// Probes against real RTSP servers: the rtsptest relay with ffmpeg publishing (another
// implementation than simcam) and simcam for RTSPS. Stills are made by viewer's ffmpeg
// FrameDecoder and decoded with image/jpeg (cmd/townwatch's test checks them with ffprobe).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"image/jpeg"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/ingest/internal/rtsptest"
	"github.com/townwatch/townwatch/ingest/probe"
	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/viewer"
)

// canary is a password that must never appear in a result or a log line.
const canary = "Kanárek-7f3a9c!"

// relay runs an rtsptest relay requiring user/canary with ffmpeg publishing p on "cam".
func relay(t *testing.T, p rtsptest.Publish) *rtsptest.Server {
	t.Helper()
	srv := rtsptest.NewServer(t, rtsptest.ServerOptions{Username: "admin", Password: canary})
	rtsptest.StartFFmpeg(t, srv.URL("cam"), p)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv.WaitFlowing(ctx, t, "cam")
	return srv
}

// prober returns a Prober with the real ffmpeg stills and a log that the test reads.
func prober(t *testing.T) (*probe.Prober, *bytes.Buffer) {
	t.Helper()
	frames, err := viewer.NewFrameDecoder("")
	if err != nil {
		t.Fatalf("stills need ffmpeg: %v", err)
	}
	var log bytes.Buffer
	return &probe.Prober{Snapshots: frames, Log: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))}, &log
}

// run probes req and fails the test on a request error; it also checks that the canary
// appears neither in the result nor in the log.
func run(t *testing.T, p *probe.Prober, log *bytes.Buffer, req probe.Request) probe.Result {
	t.Helper()
	res, err := p.Run(context.Background(), req)
	if err != nil {
		t.Fatalf("Run(%+v): %v", req.URL, err)
	}
	out, _ := json.Marshal(res)
	if strings.Contains(string(out), canary) || strings.Contains(log.String(), canary) {
		t.Errorf("the password appears in the result or the log:\n%s\n%s", out, log)
	}
	return res
}

// jpegSize decodes a JPEG's header and returns its picture size.
func jpegSize(t *testing.T, pic []byte) (int, int) {
	t.Helper()
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(pic))
	if err != nil {
		t.Fatalf("the snapshot is no JPEG: %v", err)
	}
	return cfg.Width, cfg.Height
}

func TestProbeReportsTheStream(t *testing.T) {
	t.Parallel()
	srv := relay(t, rtsptest.Publish{Width: 640, Height: 360, FPS: 15, Audio: rtsptest.AAC})
	p, log := prober(t)
	res := run(t, p, log, probe.Request{URL: srv.URL("cam"), Username: "admin", Password: canary})
	t.Logf("probe: ok=%v first keyframe %d ms, whole probe %d ms, %.1f fps, %.0f bit/s, %s %s",
		res.OK, res.FirstKeyframeMS, res.ElapsedMS, res.FPS, res.Bitrate, res.Profile, res.Level)
	if !res.OK || res.Failure != "" {
		t.Fatalf("probe failed: %s: %s", res.Failure, res.Reason)
	}
	if res.Codec != ingest.CodecH264 || res.Width != 640 || res.Height != 360 {
		t.Errorf("codec %s %dx%d, want H264 640x360", res.Codec, res.Width, res.Height)
	}
	if res.FPS < 14.5 || res.FPS > 15.5 {
		t.Errorf("fps %.2f, want 15", res.FPS)
	}
	if res.Profile == "" || res.Level == "" || res.Bitrate <= 0 {
		t.Errorf("profile %q level %q bitrate %.0f: want all three", res.Profile, res.Level, res.Bitrate)
	}
	if res.Audio == nil || res.Audio.Codec != ingest.CodecAAC || res.Audio.ClockRate != 48000 {
		t.Errorf("audio %+v, want AAC at 48000 Hz", res.Audio)
	}
	if res.Transport != "TCP" {
		t.Errorf("transport %q, want TCP (the default)", res.Transport)
	}
	if res.URL != "rtsp://admin:***@"+srv.Addr()+"/cam" {
		t.Errorf("url %q, want the redacted URL", res.URL)
	}
	if res.SnapshotError != "" {
		t.Fatalf("no snapshot: %s", res.SnapshotError)
	}
	if w, h := jpegSize(t, res.SnapshotJPEG); w != 640 || h != 360 {
		t.Errorf("snapshot is %dx%d, want 640x360", w, h)
	}
}

func TestProbeH265OverAuto(t *testing.T) {
	t.Parallel()
	srv := relay(t, rtsptest.Publish{Video: rtsptest.H265, Width: 320, Height: 240, FPS: 25})
	p, log := prober(t)
	res := run(t, p, log, probe.Request{URL: srv.URL("cam"), Username: "admin", Password: canary, Transport: configs.TransportAuto})
	if !res.OK || res.Codec != ingest.CodecH265 || res.Width != 320 || res.Height != 240 || res.Profile != "Main" {
		t.Fatalf("result %+v, want H265 Main 320x240", res)
	}
	if res.Transport != "UDP" {
		t.Errorf("transport %q, want UDP (auto tries it first and the relay serves it)", res.Transport)
	}
	if res.Audio != nil {
		t.Errorf("audio %+v on a stream without any", res.Audio)
	}
	if w, h := jpegSize(t, res.SnapshotJPEG); w != 320 || h != 240 {
		t.Errorf("snapshot is %dx%d, want 320x240", w, h)
	}
}

func TestProbeFailureClasses(t *testing.T) {
	t.Parallel()
	srv := relay(t, rtsptest.Publish{})
	mjpeg := relay(t, rtsptest.Publish{Video: rtsptest.MJPEG})
	closed := closedPort(t)
	silent := silentPort(t)
	cases := []struct {
		name string
		req  probe.Request
		want ingest.FailureClass
	}{
		{"wrong password", probe.Request{URL: srv.URL("cam"), Username: "admin", Password: canary + "x"}, ingest.FailureAuth},
		{"no credentials", probe.Request{URL: srv.URL("cam")}, ingest.FailureAuth},
		{"password in the url", probe.Request{URL: "rtsp://" + url.UserPassword("admin", "nope-"+canary).String() + "@" + srv.Addr() + "/cam"}, ingest.FailureAuth},
		{"bad path", probe.Request{URL: srv.URL("nothing-here"), Username: "admin", Password: canary}, ingest.FailureNotFound},
		{"closed port", probe.Request{URL: "rtsp://" + closed + "/cam", Username: "admin", Password: canary}, ingest.FailureUnreachable},
		{"unsupported codec", probe.Request{URL: mjpeg.URL("cam"), Username: "admin", Password: canary}, ingest.FailureUnsupportedCodec},
		{"silent camera", probe.Request{URL: "rtsp://" + silent + "/cam"}, ingest.FailureTimeout},
		{"plain rtsp port asked for TLS", probe.Request{URL: "rtsps://" + srv.Addr() + "/cam"}, ingest.FailureTLSMismatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p, log := prober(t)
			p.Timeout = 3 * time.Second // the silent camera waits it out
			res := run(t, p, log, c.req)
			t.Logf("%s: %s", res.Failure, res.Reason)
			if res.OK || res.Failure != c.want || res.Reason == "" {
				t.Errorf("ok=%v failure %q (%s), want %q with a reason", res.OK, res.Failure, res.Reason, c.want)
			}
			if res.SnapshotJPEG != nil {
				t.Error("a failed probe has a snapshot")
			}
		})
	}
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// silentPort accepts connections and never answers, like a hung camera.
func silentPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func TestProbeRTSPS(t *testing.T) {
	t.Parallel()
	cert, _, err := simcam.SelfSignedCert(net.IPv4(127, 0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.Certificate[0])
	fingerprint := hex.EncodeToString(sum[:])
	cam, err := simcam.New(simcam.Config{Listen: "127.0.0.1:0", TLS: &tls.Config{Certificates: []tls.Certificate{cert}},
		Cameras: []simcam.CameraSpec{{Path: "vault", Clip: simcam.ClipStatic, Username: "admin", Password: canary}}})
	if err != nil {
		t.Fatal(err)
	}
	stop, err := cam.Start(context.Background())
	if err != nil {
		t.Fatalf("simcam: %v", err)
	}
	t.Cleanup(func() { _ = stop() })
	p, log := prober(t)

	// Unpinned, a self-signed camera is refused, and the answer shows what it presented.
	res := run(t, p, log, probe.Request{URL: cam.URL("vault"), Username: "admin", Password: canary})
	if res.OK || res.Failure != ingest.FailureTLSMismatch || res.TLSFingerprint != fingerprint {
		t.Fatalf("unpinned: ok=%v failure %q (%s) fingerprint %q, want tls_mismatch showing %s", res.OK, res.Failure, res.Reason, res.TLSFingerprint, fingerprint)
	}
	// Pinned with what the first probe showed, it streams.
	res = run(t, p, log, probe.Request{URL: cam.URL("vault"), Username: "admin", Password: canary, TLSFingerprint: res.TLSFingerprint})
	if !res.OK || res.TLSFingerprint != fingerprint || res.Width == 0 || res.SnapshotJPEG == nil {
		t.Fatalf("pinned: %+v", res)
	}
}

func TestProbeRequestErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		req       probe.Request
		wantField string
	}{
		{probe.Request{}, "url"},
		{probe.Request{URL: "http://cam/x"}, "url"},
		{probe.Request{URL: "rtsp://cam/x", Transport: "sctp"}, "transport"},
		{probe.Request{URL: "rtsp://u:p@cam/x", Username: "admin", Password: canary}, "username"},
		{probe.Request{URL: "rtsp://cam/x", Password: canary}, "username"},
		{probe.Request{URL: "rtsp://cam/x", TLSFingerprint: "abcd"}, "tls_fingerprint"},
	}
	for _, c := range cases {
		_, err := (&probe.Prober{}).Run(context.Background(), c.req)
		var ve *configs.ValidationError
		if !errors.As(err, &ve) || ve.Problems[0].Path != c.wantField {
			t.Errorf("Run(%+v) = %v, want a problem with %s", c.req, err, c.wantField)
			continue
		}
		if strings.Contains(err.Error(), canary) {
			t.Errorf("the error shows the password: %v", err)
		}
	}
	// A bare host means the camera's root path on the default port.
	s, err := probe.Request{URL: "10.0.0.21", Username: "admin", Password: "p@ss:w/rd"}.Stream()
	if err != nil || s.RedactedURL() != "rtsp://admin:***@10.0.0.21/" {
		t.Errorf("bare host: %v %q", err, s.RedactedURL())
	}
}
