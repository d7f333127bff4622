package main

// The footprint issue's side-by-side run for viewers: the real `townwatch serve` and
// MediaMTX pull the same simulated camera at the same time, N pion WHEP viewers watch
// each, and both processes' CPU time and peak RSS are read from /proc over the same
// window. Neither records (townwatch's camera has record mode off, MediaMTX record: no), so
// what is compared is ingest plus serving the viewers.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/townwatch/townwatch/cmd/internal/benchkit"
)

// sideBySideRSSTarget is the target: townwatch's peak RSS serving the viewers at
// most this share of MediaMTX's, measured side by side.
const sideBySideRSSTarget = 0.8

// sbsAccount is the account livebench makes in townwatch's fresh storage; its viewers
// share one login, as the tiles of one dispatcher's wall do.
const sbsAccount = "livebench"

// readyTimeout bounds a server's start until a first viewer of it gets a frame.
const readyTimeout = 60 * time.Second

type sbsConfig struct {
	ns               []int
	duration, warmup time.Duration
	cache, clip      string
	townwatch        string // binary; "" builds ./cmd/townwatch
	mediamtx         string // binary
	work             string // configs, storage, logs
}

// sbsServer is one of the two servers the run measures, and how a viewer reaches its camera.
type sbsServer struct {
	name   string
	proc   *benchkit.Child
	client *http.Client // townwatch's carries the session cookie
	origin string       // http://127.0.0.1:port
	whep   string       // path of the camera's WHEP endpoint
}

// sbsRow is one server's figures for one viewer count.
type sbsRow struct {
	server, n   int // index into the servers, viewers
	cpuSec      float64
	peakRSS     uint64 // VmHWM, reset after login and the readiness probe: connects, warm-up, window
	endRSS      uint64 // VmRSS at the end of the window
	fps, mbps   float64
	firstFrame  []time.Duration
	noFrame     int    // viewers that had no frame by the end of the warm-up
	startupPeak uint64 // VmHWM before the reset: start, login, first viewer
}

func benchSideBySide(ctx context.Context, sc sbsConfig, logf func(string, ...any)) (names []string, rows []sbsRow, err error) {
	bin := sc.townwatch
	if bin == "" {
		if bin, err = benchkit.BuildTownwatch(ctx, sc.work, logf); err != nil {
			return nil, nil, err
		}
	}
	tck, err := benchkit.ClockTicks(ctx)
	if err != nil {
		return nil, nil, err
	}
	camURL, stopCam, err := startCamera(ctx, sc.cache, sc.clip, logf)
	if err != nil {
		return nil, nil, err
	}
	defer stopCam()

	tw, err := startTownwatch(ctx, bin, sc.work, camURL)
	if err != nil {
		return nil, nil, err
	}
	defer tw.proc.Stop()
	mtx, err := startMediaMTX(sc.mediamtx, sc.work, camURL)
	if err != nil {
		return nil, nil, err
	}
	defer mtx.proc.Stop()
	servers := []*sbsServer{tw, mtx}
	for _, s := range servers {
		names = append(names, s.name)
		if err := waitServing(ctx, s); err != nil {
			return names, nil, err
		}
	}
	// The peak so far is start-up, townwatch's login (an Argon2id check: 19 MiB, once per
	// dispatcher, not per viewer) and the probe viewer. Kept as its own figure, then reset
	// (proc(5), clear_refs 5) so that the window's peak is what serving the viewers takes.
	// The reset sets it to the RSS of the moment: what a server holds then counts in the
	// window's peak.
	startup := make([]uint64, len(servers))
	for i, s := range servers {
		if startup[i], err = benchkit.ReadStatusKB(s.proc.Pid(), "VmHWM"); err != nil {
			return names, nil, err
		}
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", s.proc.Pid()), []byte("5"), 0); err != nil {
			return names, nil, fmt.Errorf("reset %s's peak RSS: %w", s.name, err)
		}
	}
	for _, n := range sc.ns {
		logf("%d viewers of each server: connecting, %v warm-up, %v measured ...", n, sc.warmup, sc.duration)
		got, err := measureSideBySide(ctx, servers, n, sc, float64(tck))
		if err != nil {
			return names, rows, fmt.Errorf("%d viewers: %w", n, err)
		}
		for i := range got {
			got[i].startupPeak = startup[got[i].server]
		}
		rows = append(rows, got...)
	}
	return names, rows, nil
}

// startTownwatch makes the account and starts `townwatch serve` with the camera (record
// mode off, WebRTC on free ports), then logs the viewers' client in.
func startTownwatch(ctx context.Context, bin, work, rtspURL string) (*sbsServer, error) {
	port, err := benchkit.FreePort()
	if err != nil {
		return nil, err
	}
	origin := "http://127.0.0.1:" + strconv.Itoa(port)
	cfgPath := filepath.Join(work, "townwatch.yaml")
	cfg := fmt.Sprintf("# written by cmd/livebench\nstorage:\n  path: %s\nhttp:\n  listen: 127.0.0.1:%d\n"+
		"webrtc: {udp_port: 0, tcp_port: 0}\ncameras:\n  - id: cam\n    main:\n      url: %s\n      transport: tcp\n    record:\n      mode: \"off\"\n",
		strconv.Quote(filepath.Join(work, "storage")), port, strconv.Quote(rtspURL))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	password, err := benchkit.AddAccount(ctx, bin, cfgPath, work, sbsAccount, "-role", "supervisor")
	if err != nil {
		return nil, err
	}
	proc, err := benchkit.StartChild("townwatch serve", bin, []string{"serve", "-config", cfgPath, "-log-format", "json"},
		filepath.Join(work, "serve.out"), filepath.Join(work, "serve.log"))
	if err != nil {
		return nil, err
	}
	jar, _ := cookiejar.New(nil)
	s := &sbsServer{name: "townwatch", proc: proc, client: &http.Client{Jar: jar}, origin: origin, whep: "/api/cameras/cam/whep"}
	deadline := time.Now().Add(readyTimeout)
	for {
		cookies, err := benchkit.Login(ctx, origin, sbsAccount, password)
		if err == nil {
			u, _ := http.NewRequest(http.MethodGet, origin+"/", nil)
			jar.SetCookies(u.URL, cookies)
			return s, nil
		}
		if proc.Exited() || time.Now().After(deadline) || ctx.Err() != nil {
			proc.Stop()
			return nil, fmt.Errorf("townwatch serve: %w\n%s", err, proc.LogTail())
		}
		if err := benchkit.Sleep(ctx, 200*time.Millisecond); err != nil {
			proc.Stop()
			return nil, err
		}
	}
}

// startMediaMTX starts MediaMTX pulling the camera as cam1, serving WHEP on free loopback
// ports and recording nothing.
func startMediaMTX(bin, work, rtspURL string) (*sbsServer, error) {
	httpPort, err := benchkit.FreePort()
	if err != nil {
		return nil, err
	}
	udpPort, err := benchkit.FreePort() // a TCP port free a moment ago; its UDP twin is as likely free
	if err != nil {
		return nil, err
	}
	proc, err := benchkit.StartMediaMTX(bin, work, benchkit.MediaMTXSetup{WebRTCPort: httpPort, WebRTCUDPPort: udpPort}, []string{rtspURL})
	if err != nil {
		return nil, err
	}
	return &sbsServer{name: "MediaMTX", proc: proc, client: &http.Client{}, origin: "http://127.0.0.1:" + strconv.Itoa(httpPort), whep: "/cam1/whep"}, nil
}

// waitServing dials a probe viewer until one gets a frame: the server is up and pulls the
// camera. The probe leaves before anything is measured.
func waitServing(ctx context.Context, s *sbsServer) error {
	deadline := time.Now().Add(readyTimeout)
	var last error
	for time.Now().Before(deadline) {
		if s.proc.Exited() {
			return fmt.Errorf("%s exited (%v):\n%s", s.name, s.proc.Err(), s.proc.LogTail())
		}
		v, err := dial(s.client, s.origin, s.whep)
		if err == nil {
			for range 50 {
				if v.firstFrame.Load() != nil {
					v.close()
					return nil
				}
				if err := benchkit.Sleep(ctx, 100*time.Millisecond); err != nil {
					v.close()
					return err
				}
			}
			v.close()
			err = errors.New("a viewer had no frame within 5 s")
		}
		last = err
		if err := benchkit.Sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("%s did not serve the camera within %v: %v\n%s", s.name, readyTimeout, last, s.proc.LogTail())
}

// measureSideBySide connects n viewers to each server, alternating, warms up, and
// measures both processes over the same window.
func measureSideBySide(ctx context.Context, servers []*sbsServer, n int, sc sbsConfig, tck float64) ([]sbsRow, error) {
	viewers := make([][]*viewer, len(servers))
	defer func() {
		for _, vs := range viewers {
			for _, v := range vs {
				v.close()
			}
		}
	}()
	for range n {
		for i, s := range servers {
			v, err := dial(s.client, s.origin, s.whep)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.name, err)
			}
			viewers[i] = append(viewers[i], v)
		}
	}
	if err := benchkit.Sleep(ctx, sc.warmup); err != nil {
		return nil, err
	}
	rows := make([]sbsRow, len(servers))
	cpu0 := make([]benchkit.ProcCPU, len(servers))
	frames0 := make([]uint64, len(servers))
	bytes0 := make([]uint64, len(servers))
	for i, s := range servers {
		rows[i] = sbsRow{server: i, n: n}
		for _, v := range viewers[i] {
			if t := v.firstFrame.Load(); t != nil {
				rows[i].firstFrame = append(rows[i].firstFrame, t.(time.Time).Sub(v.posted))
			} else {
				rows[i].noFrame++
			}
			frames0[i] += v.frames.Load()
			bytes0[i] += v.bytes.Load()
		}
		var err error
		if cpu0[i], err = benchkit.ReadProcCPU(s.proc.Pid()); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	start := time.Now()
	if err := benchkit.Sleep(ctx, sc.duration); err != nil {
		return nil, err
	}
	window := time.Since(start)
	for i, s := range servers {
		cpu1, err := benchkit.ReadProcCPU(s.proc.Pid())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		r := &rows[i]
		r.cpuSec = float64(cpu1.Total()-cpu0[i].Total()) / tck
		if r.peakRSS, err = benchkit.ReadStatusKB(s.proc.Pid(), "VmHWM"); err != nil {
			return nil, err
		}
		if r.endRSS, err = benchkit.ReadStatusKB(s.proc.Pid(), "VmRSS"); err != nil {
			return nil, err
		}
		var frames, bytes uint64
		for _, v := range viewers[i] {
			frames += v.frames.Load()
			bytes += v.bytes.Load()
		}
		perViewer := window.Seconds() * float64(n)
		r.fps = float64(frames-frames0[i]) / perViewer
		r.mbps = float64(bytes-bytes0[i]) * 8 / 1e6 / perViewer
	}
	return rows, nil
}

// printSideBySide prints a row per server and viewer count, then the verdict per count.
func printSideBySide(w io.Writer, names []string, rows []sbsRow, d time.Duration) {
	fmt.Fprintf(w, "\nlive view side by side: townwatch serve and MediaMTX pull the same 1080p 25 fps ~4 Mbit/s camera (no recording), each\n"+
		"watched by the same number of pion WHEP viewers over UDP on loopback, %v measured in the same window\n\n", d)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	io.WriteString(tw, "server\tviewers\tCPU s\tCPU-s/viewer-h\tpeak RSS MiB\tRSS MiB\tstart-up peak MiB\tfps/viewer\tMbit/s/viewer\tfirst frame p50\tp95\tno frame\t\n")
	for _, r := range rows {
		p50, p95 := "-", "-"
		if ff := slices.Sorted(slices.Values(r.firstFrame)); len(ff) > 0 {
			p50 = ff[len(ff)/2].Round(time.Millisecond).String()
			p95 = ff[(len(ff)*95)/100].Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.2f\t%s\t%s\t%d\t\n", names[r.server], r.n, r.cpuSec,
			r.cpuSec/(float64(r.n)*d.Hours()), benchkit.MiB(r.peakRSS), benchkit.MiB(r.endRSS), benchkit.MiB(r.startupPeak), r.fps, r.mbps, p50, p95, r.noFrame)
	}
	tw.Flush()
	for _, line := range sideBySideVerdicts(rows) {
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w, "\n(CPU: each server process's user+system time over the window; peak RSS: VmHWM from just before the first\n"+
		"viewers connected (reset then) to the end of the window, so it covers the connects, the warm-up and the window, and\n"+
		"the earlier, smaller viewer counts; start-up peak: VmHWM before that reset (start, townwatch's login, one probe\n"+
		"viewer); first frame: offer posted to the first complete keyframe, the first frame a viewer can decode.)")
}

// sideBySideVerdicts compares the servers' rows of each viewer count (server 0 is
// townwatch, 1 MediaMTX).
func sideBySideVerdicts(rows []sbsRow) []string {
	var out []string
	for i := 0; i+1 < len(rows); i += 2 {
		t, m := rows[i], rows[i+1]
		ratio := benchkit.MiB(t.peakRSS) / benchkit.MiB(m.peakRSS)
		verdict := "met"
		if ratio > sideBySideRSSTarget {
			verdict = "NOT met"
		}
		out = append(out, fmt.Sprintf("side by side: %d viewers: townwatch/MediaMTX peak RSS %.1f/%.1f MiB = %.2f× (target <= %.1f×: %s); CPU %.2f/%.2f s = %.2f×",
			t.n, benchkit.MiB(t.peakRSS), benchkit.MiB(m.peakRSS), ratio, sideBySideRSSTarget, verdict, t.cpuSec, m.cpuSec, t.cpuSec/m.cpuSec))
	}
	return out
}
