package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/webrtc/v4"

	"github.com/townwatch/townwatch/cmd/internal/benchkit"
	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/viewer/live/whepclient"
)

type benchConfig struct {
	ns               []int
	duration, warmup time.Duration
	cache, clip      string
}

// row is one measurement.
type row struct {
	n              int
	cpuSec, rssMiB float64
	peakRSSMiB     float64 // the server's peak since it started: viewer counts run in the order given
	rxMbps         float64 // average per viewer
	firstFrame     []time.Duration
	received       uint64 // frames the Source published, whole run so far
	recorded       uint64 // frames the recorder stand-in read
	recDrops       uint64
	dropped        uint64 // live packets dropped for slow viewers during the window
}

func bench(ctx context.Context, bc benchConfig, logf func(string, ...any)) ([]row, error) {
	camURL, stopCam, err := startCamera(ctx, bc.cache, bc.clip, logf)
	if err != nil {
		return nil, err
	}
	defer stopCam()

	srv, base, err := startServer(ctx, camURL)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	if err := waitStreaming(ctx, base); err != nil {
		return nil, err
	}
	var rows []row
	for _, n := range append([]int{0}, bc.ns...) {
		logf("%d viewers: connecting, %v warm-up, %v measured ...", n, bc.warmup, bc.duration)
		r, err := measure(ctx, base, n, bc)
		if err != nil {
			return rows, fmt.Errorf("%d viewers: %w", n, err)
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// startCamera serves the clip (clip, or the generated one cached in cache) as camera
// "cam" of a simcam in this process, and returns its URL and what stops it.
func startCamera(ctx context.Context, cache, clip string, logf func(string, ...any)) (url string, stop func(), err error) {
	if clip == "" {
		if clip, err = benchkit.EnsureClip(ctx, cache, logf); err != nil {
			return "", nil, err
		}
	}
	cam, err := simcam.New(simcam.Config{Listen: "127.0.0.1:0", Cameras: []simcam.CameraSpec{{Path: "cam", File: clip}}})
	if err != nil {
		return "", nil, err
	}
	camCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { cam.Run(camCtx) })
	<-cam.Ready()
	return cam.URL("cam"), func() { cancel(); wg.Wait() }, nil
}

// server is the server child process.
type server struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

func startServer(ctx context.Context, rtspURL string) (*server, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(self, "-serve", rtspURL)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, "", err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	s := &server{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		s.stop()
		return nil, "", fmt.Errorf("server process did not start: %w", err)
	}
	return s, strings.TrimSpace(line), nil
}

// stop closes the server's stdin (it exits cleanly) and waits for it.
func (s *server) stop() {
	s.stdin.Close()
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

func stats(ctx context.Context, base string) (serverStats, error) {
	var st serverStats
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/stats", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

func waitStreaming(ctx context.Context, base string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if st, err := stats(ctx, base); err == nil && st.ReceivedFrames > 0 {
			return nil
		}
		if err := benchkit.Sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("the camera never streamed to the server")
}

// measure connects n viewers, warms up, measures the server over the duration, and
// disconnects them.
func measure(ctx context.Context, base string, n int, bc benchConfig) (row, error) {
	r := row{n: n}
	var viewers []*viewer
	defer func() {
		for _, v := range viewers {
			v.close()
		}
	}()
	for range n {
		v, err := dial(http.DefaultClient, base, "/api/cameras/cam/whep")
		if err != nil {
			return r, err
		}
		viewers = append(viewers, v)
	}
	if err := benchkit.Sleep(ctx, bc.warmup); err != nil {
		return r, err
	}
	for _, v := range viewers {
		if t := v.firstFrame.Load(); t != nil {
			r.firstFrame = append(r.firstFrame, t.(time.Time).Sub(v.posted))
		}
	}
	a, err := stats(ctx, base)
	if err != nil {
		return r, err
	}
	var rx0 uint64
	for _, v := range viewers {
		rx0 += v.bytes.Load()
	}
	if err := benchkit.Sleep(ctx, bc.duration); err != nil {
		return r, err
	}
	b, err := stats(ctx, base)
	if err != nil {
		return r, err
	}
	var rx1 uint64
	for _, v := range viewers {
		rx1 += v.bytes.Load()
	}
	r.cpuSec = b.CPUSeconds - a.CPUSeconds
	r.rssMiB = float64(b.RSSBytes) / (1 << 20)
	r.peakRSSMiB = float64(b.PeakRSSBytes) / (1 << 20)
	if n > 0 {
		r.rxMbps = float64(rx1-rx0) * 8 / bc.duration.Seconds() / 1e6 / float64(n)
	}
	r.received, r.recorded, r.recDrops = b.ReceivedFrames, b.RecorderFrames, b.RecorderDrops
	r.dropped = b.Live.DroppedPackets - a.Live.DroppedPackets
	return r, nil
}

// viewer is a pion WHEP client that counts what it receives.
type viewer struct {
	pc         *webrtc.PeerConnection
	client     *http.Client // carries the session cookie where the server wants one
	origin     string       // the server's http://host:port
	location   string       // the session's resource, a path on origin
	posted     time.Time
	firstFrame atomic.Value // time.Time of the first complete keyframe: the first the viewer can decode
	bytes      atomic.Uint64
	frames     atomic.Uint64 // complete frames
	done       chan struct{}
	gotTrack   atomic.Bool
}

// dial posts a WHEP offer to origin+whepPath with client and starts counting what arrives.
func dial(client *http.Client, origin, whepPath string) (*viewer, error) {
	api, err := whepclient.API(false, false)
	if err != nil {
		return nil, err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	v := &viewer{pc: pc, client: client, origin: origin, done: make(chan struct{})}
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		pc.Close()
		return nil, err
	}
	dec := &rtph264.Decoder{PacketizationMode: 1} // the viewer's one video track
	if err := dec.Init(); err != nil {
		pc.Close()
		return nil, err
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		v.gotTrack.Store(true)
		defer close(v.done)
		// Frames are counted as the depacketizer completes them: a frame missing a packet
		// is not one. A server without a GOP cache starts a viewer on whatever frame comes
		// next, which it cannot decode before the next keyframe: the first frame that
		// counts is the first keyframe.
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			v.bytes.Add(uint64(pkt.MarshalSize()))
			au, err := dec.Decode(pkt)
			if err != nil {
				continue // more packets needed, or a frame broken by a lost one
			}
			v.frames.Add(1)
			if h264.IsRandomAccess(au) && v.firstFrame.Load() == nil {
				v.firstFrame.Store(time.Now())
			}
		}
	})
	v.location, err = whepclient.ExchangeWith(client, pc, origin+whepPath, whepclient.Hooks{Posting: func() { v.posted = time.Now() }})
	if err != nil {
		v.close() // a refused offer has no location: only the connection is closed
		return nil, fmt.Errorf("WHEP offer: %w", err)
	}
	return v, nil
}

// close ends the session (DELETE of its resource) and the connection.
func (v *viewer) close() {
	if v.location != "" {
		req, _ := http.NewRequest(http.MethodDelete, v.origin+v.location, nil)
		if resp, err := v.client.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	v.pc.Close()
	if v.gotTrack.Load() {
		<-v.done
	}
}

// printReport prints one line per viewer count.
func printReport(w io.Writer, rows []row, d time.Duration) {
	base := rows[0] // no viewers
	fmt.Fprintf(w, "\nlive view benchmark: one 1080p 25 fps ~4 Mbit/s H.264 camera, %v measured per viewer count, pion viewers over UDP on loopback\n\n", d)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	io.WriteString(tw, "viewers\tCPU s\t%core\tCPU-s/viewer-h\tadded CPU-s/viewer-h\tRSS MiB\tpeak RSS MiB\tRSS/viewer MiB\tMbit/s/viewer\tfirst frame p50\tp95\tlive drops\trecorder frames\tsource frames\trecorder lost\t\n")
	for _, r := range rows {
		perH, addH, rssPer, p50, p95 := "-", "-", "-", "-", "-"
		if r.n > 0 {
			hours := float64(r.n) * d.Hours()
			perH = fmt.Sprintf("%.1f", r.cpuSec/hours)
			addH = fmt.Sprintf("%.1f", (r.cpuSec-base.cpuSec)/hours)
			rssPer = fmt.Sprintf("%.2f", (r.rssMiB-base.rssMiB)/float64(r.n))
			if len(r.firstFrame) > 0 {
				slices.Sort(r.firstFrame)
				p50 = r.firstFrame[len(r.firstFrame)/2].Round(time.Millisecond).String()
				p95 = r.firstFrame[(len(r.firstFrame)*95)/100].Round(time.Millisecond).String()
			}
		}
		fmt.Fprintf(tw, "%d\t%.2f\t%.1f\t%s\t%s\t%.1f\t%.1f\t%s\t%.2f\t%s\t%s\t%d\t%d\t%d\t%d\t\n", r.n, r.cpuSec, 100*r.cpuSec/d.Seconds(),
			perH, addH, r.rssMiB, r.peakRSSMiB, rssPer, r.rxMbps, p50, p95, r.dropped, r.recorded, r.received, r.recDrops)
	}
	tw.Flush()
	fmt.Fprintln(w, "\n(CPU: the server process's user+system time over the window; CPU-s/viewer-h = CPU s / (viewers x hours), 'added' subtracts the\n"+
		"no-viewer run (ingest + recorder stand-in); RSS: at the end of the window, peak RSS: the server's VmHWM since it started (so it\n"+
		"covers the earlier, smaller viewer counts too); RSS/viewer = (RSS - RSS with no viewer) / viewers; first frame: offer posted to first\n"+
		"complete keyframe (the first a viewer can decode), every viewer starts from the stream's latest keyframe; recorder lost:\n"+
		"frames the recorder stand-in (the recorder's Hub queue) dropped, must be 0; recorder frames trail source frames only by the\n"+
		"frames before it joined.)")
}
