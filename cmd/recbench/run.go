package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/townwatch/townwatch/cmd/internal/benchkit"
)

// Bounds on the harness's own waits. Generous: on a healthy machine each
// takes a second or two; they exist so a broken build fails the run
// instead of hanging it.
const (
	startTimeout = 60 * time.Second // simcam parsing the clip; every camera connected
	pollInterval = 250 * time.Millisecond
	// settleQuiet is how long the recorded-frame total must stay unchanged
	// after simcam stopped for every recorder to count as having closed its
	// segment (flushing the fragment in flight takes one write and fsync).
	settleQuiet   = 3 * time.Second
	settleTimeout = 30 * time.Second
)

// Metric names read from townwatch's /metrics.
const (
	mUp             = "townwatch_camera_up"
	mReceivedFrames = "townwatch_camera_received_frames_total"
	mReceivedBytes  = "townwatch_camera_received_bytes_total"
	mReconnects     = "townwatch_camera_reconnects_total"
	mLostPackets    = "townwatch_camera_lost_packets_total"
	mRecordedFrames = "townwatch_recorded_frames_total"
	mRecordedBytes  = "townwatch_recorded_bytes_total"
	mSegments       = "townwatch_segments_total"
	mGaps           = "townwatch_recording_gaps_total"
)

// runConfig is what one run needs.
type runConfig struct {
	bin      string // townwatch binary
	clip     string
	work     string // this run's directory: config, storage, logs
	n        int
	warmup   time.Duration
	duration time.Duration
	tck      float64 // clock ticks per second
	mediamtx string  // MediaMTX binary recording the same cameras side by side; "" for none
	logf     func(string, ...any)
}

// result is one run's figures. Figures that come from metrics townwatch
// may not expose yet are optional (the *OK flags).
type result struct {
	n   int
	run int           // 1.. among the runs of this N
	dur time.Duration // measured window, wall time

	cpuSec, simcamCPUSec float64
	cpuSysSec            float64 // the kernel's share of cpuSec (stime)
	hostBusy             float64 // fraction of all CPUs busy over the window
	peakRSS              uint64  // VmHWM of townwatch, bytes

	// MediaMTX recording the same cameras in the same window (-mediamtx): its CPU over
	// the window and its peak RSS, as townwatch's are measured.
	ref        bool
	refCPUSec  float64
	refPeakRSS uint64

	inBytes    float64 // media bytes received in the window (metric)
	diskBytes  float64 // growth of the storage directory in the window
	recBytes   float64 // townwatch_recorded_bytes_total in the window
	recBytesOK bool

	// Totals over the whole run, read after simcam stopped and every
	// recorder closed its segment.
	received, recorded float64
	recordedOK         bool
	pktsLost           float64            // RTP packets lost between simcam and townwatch (townwatch's count)
	lossByCamera       map[string]float64 // received - recorded, cameras where it is not 0

	notes []string
}

func (r *result) cpuPerStreamHour() float64 {
	return r.cpuSec / (float64(r.n) * r.dur.Hours())
}

func (r *result) pctCore() float64 { return 100 * r.cpuSec / r.dur.Seconds() }

func (r *result) lost() float64 { return r.received - r.recorded }

func (r *result) notef(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// snapshot is the state sampled at each end of the measured window.
type snapshot struct {
	at         time.Time
	serve, cam benchkit.ProcCPU
	host       hostCPU
	disk       uint64
	m          metrics
}

func takeSnapshot(ctx context.Context, a *access, storage string, serve, cam *benchkit.Child) (snapshot, error) {
	var s snapshot
	var errs [5]error
	s.m, errs[0] = scrape(ctx, a)
	s.at = time.Now()
	s.serve, errs[1] = benchkit.ReadProcCPU(serve.Pid())
	s.cam, errs[2] = benchkit.ReadProcCPU(cam.Pid())
	s.host, errs[3] = readHostCPU()
	s.disk, errs[4] = dirBytes(storage)
	return s, errors.Join(errs[:]...)
}

// recordingSetup is what startRecording needs: both kinds of run record the same way.
type recordingSetup struct {
	bin, clip string
	work      string // the run's directory: config, storage, logs
	n         int
	// The account made before serve starts (a fresh install answers nothing without one)
	// and its role (and cameras), as `townwatch user add` arguments.
	account     string
	accountArgs []string
	serveArgs   []string // added to serve's command line
	mediamtx    string   // MediaMTX binary to record the same cameras beside townwatch; "" for none
}

// recording is simcam serving n copies of the clip and townwatch serve recording them.
type recording struct {
	cam, serve *benchkit.Child
	ref        *benchkit.Child // MediaMTX recording the same cameras, or nil
	api        *access
	storage    string
	password   string        // the account's
	streamed   time.Duration // from serve's start until every camera streamed
}

// startRecording starts simcam, writes townwatch's configuration for its cameras, makes
// the account, starts townwatch serve and waits until every camera streams. On success
// the caller defers rec.stop; on error what it started is stopped already.
func startRecording(ctx context.Context, rs recordingSetup) (_ *recording, err error) {
	rec := &recording{storage: filepath.Join(rs.work, "storage")}
	rec.cam, err = benchkit.StartChild("simcam", rs.bin, []string{"simcam", "-listen", "127.0.0.1:0", "-clip", rs.clip,
		"-cameras", strconv.Itoa(rs.n), "-log-format", "json"},
		filepath.Join(rs.work, "simcam.out"), filepath.Join(rs.work, "simcam.log"))
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			rec.stop(true, nil)
		}
	}()
	urls, err := waitURLs(ctx, rec.cam, filepath.Join(rs.work, "simcam.out"), rs.n)
	if err != nil {
		return nil, err
	}
	if rs.mediamtx != "" {
		// The side-by-side run, in one window on the same cameras: MediaMTX records
		// them as fMP4 and does nothing else.
		setup := benchkit.MediaMTXSetup{RecordDir: filepath.Join(rs.work, "mediamtx")}
		if rec.ref, err = benchkit.StartMediaMTX(rs.mediamtx, rs.work, setup, urls); err != nil {
			return nil, err
		}
	}
	port, err := benchkit.FreePort()
	if err != nil {
		return nil, err
	}
	if rec.api, err = newAccess(rs.work, "http://127.0.0.1:"+strconv.Itoa(port)); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(rs.work, "townwatch.yaml")
	if err := os.WriteFile(cfgPath, []byte(configYAML(rec.storage, port, rec.api.tokenFile, urls)), 0o644); err != nil {
		return nil, err
	}
	if rec.password, err = benchkit.AddAccount(ctx, rs.bin, cfgPath, rs.work, rs.account, rs.accountArgs...); err != nil {
		return nil, err
	}
	rec.serve, err = benchkit.StartChild("townwatch serve", rs.bin, append([]string{"serve", "-config", cfgPath, "-log-format", "json"}, rs.serveArgs...),
		filepath.Join(rs.work, "serve.out"), filepath.Join(rs.work, "serve.log"))
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := waitStreaming(ctx, rec.api, rs.n, rec.serve, rec.cam); err != nil {
		return nil, err
	}
	rec.streamed = time.Since(t0)
	return rec, nil
}

// stop stops townwatch serve, then simcam; a run defers it, and may have stopped either
// itself before (child.stop is idempotent). Simcam's error goes to notef unless the run
// failed, whose own error says more.
func (rec *recording) stop(runFailed bool, notef func(string, ...any)) {
	if rec.serve != nil {
		_ = rec.serve.Stop()
	}
	if rec.ref != nil {
		_ = rec.ref.Stop()
	}
	if err := rec.cam.Stop(); err != nil && !runFailed {
		notef("%v", err)
	}
}

// refCPU reads MediaMTX's CPU counters; zero when there is none.
func refCPU(ref *benchkit.Child) (benchkit.ProcCPU, error) {
	if ref == nil {
		return benchkit.ProcCPU{}, nil
	}
	return benchkit.ReadProcCPU(ref.Pid())
}

// runOne starts simcam serving rc.n copies of the clip and townwatch
// recording them, measures, and stops both. It returns an error only for a
// harness failure (a process that would not start or died, a camera that
// never streamed, an unreadable metric endpoint); everything townwatch does
// wrong while running is a figure or a note.
func runOne(ctx context.Context, rc runConfig) (_ *result, err error) {
	r := &result{n: rc.n}
	rec, err := startRecording(ctx, recordingSetup{bin: rc.bin, clip: rc.clip, work: rc.work, n: rc.n,
		account: benchAccount, accountArgs: []string{"-role", "supervisor"}, mediamtx: rc.mediamtx})
	if err != nil {
		return nil, err
	}
	defer func() { rec.stop(err != nil, r.notef) }()
	cam, serve, api, storage := rec.cam, rec.serve, rec.api, rec.storage
	alive := []*benchkit.Child{serve, cam}
	if rec.ref != nil {
		alive = append(alive, rec.ref)
		rc.logf("N=%d: MediaMTX records the same cameras side by side", rc.n)
	}
	rc.logf("N=%d: %d cameras streaming after %.1f s; warming up %v, then measuring %v", rc.n, rc.n,
		rec.streamed.Seconds(), rc.warmup, rc.duration)
	if err := sleepAlive(ctx, rc.warmup, alive...); err != nil {
		return nil, err
	}

	s0, err := takeSnapshot(ctx, api, storage, serve, cam)
	if err != nil {
		return nil, err
	}
	ref0, err := refCPU(rec.ref)
	if err != nil {
		return nil, err
	}
	if err := sleepAlive(ctx, rc.duration, alive...); err != nil {
		return nil, err
	}
	s1, err := takeSnapshot(ctx, api, storage, serve, cam)
	if err != nil {
		return nil, err
	}
	ref1, err := refCPU(rec.ref)
	if err != nil {
		return nil, err
	}
	if rec.ref != nil {
		// Read before simcam stops, while MediaMTX still records: its peak so far is the
		// window's and the warm-up's, as townwatch's is.
		r.ref, r.refCPUSec = true, float64(ref1.Total()-ref0.Total())/rc.tck
		if r.refPeakRSS, err = benchkit.ReadStatusKB(rec.ref.Pid(), "VmHWM"); err != nil {
			return nil, fmt.Errorf("MediaMTX's peak RSS: %w", err)
		}
	}
	r.dur = s1.at.Sub(s0.at)
	r.cpuSec = float64(s1.serve.Total()-s0.serve.Total()) / rc.tck
	r.cpuSysSec = float64(s1.serve.Stime-s0.serve.Stime) / rc.tck
	r.simcamCPUSec = float64(s1.cam.Total()-s0.cam.Total()) / rc.tck
	if dt := s1.host.total - s0.host.total; dt > 0 {
		r.hostBusy = float64(s1.host.busy-s0.host.busy) / float64(dt)
	}
	r.diskBytes = float64(s1.disk) - float64(s0.disk)
	r.inBytes = delta(s0.m, s1.m, mReceivedBytes)
	if _, ok := s1.m.sum(mRecordedBytes); ok {
		r.recBytes, r.recBytesOK = delta(s0.m, s1.m, mRecordedBytes), true
	}
	// simcam skips to the next keyframe when it falls a second behind, as
	// it does on a starved host; townwatch then records less than the clip
	// rate, which is not townwatch's loss but makes the run lighter.
	if fps := delta(s0.m, s1.m, mReceivedFrames) / r.dur.Seconds() / float64(rc.n); fps < 0.99*benchkit.ClipFPS {
		r.notef("received %.2f fps per stream, below the clip's %d: simcam could not keep up (host starved?)", fps, benchkit.ClipFPS)
	}
	if d := delta(s0.m, s1.m, mReconnects); d > 0 {
		r.notef("%.0f reconnects during the measurement", d)
	}

	// Stop the cameras, let every recorder close its segment, then compare
	// what came in with what was recorded, over the whole run.
	rc.logf("N=%d: stopping simcam, waiting for the recorders to close their segments", rc.n)
	if err := cam.Stop(); err != nil {
		r.notef("%v", err)
	}
	if dropped := simcamDrops(cam.LogPath); dropped > 0 {
		r.notef("simcam dropped %d RTP packets because its queue for townwatch's session was full "+
			"(townwatch read too slowly, or the host starved both for seconds)", dropped)
	}
	final, settled, err := settle(ctx, api, serve)
	if err != nil {
		return nil, err
	}
	if !settled {
		r.notef("recorded frames still changing %v after simcam stopped; totals read anyway", settleTimeout)
	}
	r.received, _ = final.sum(mReceivedFrames)
	if rec, ok := final.sum(mRecordedFrames); ok {
		r.recorded, r.recordedOK = rec, true
		r.lossByCamera = unrecorded(final)
	} else {
		r.notef("%s not exposed: frames recorded n/a", mRecordedFrames)
	}
	if !r.recBytesOK {
		r.notef("%s not exposed: recorded MB/s n/a", mRecordedBytes)
	}
	if segs, ok := final.sum(mSegments); ok {
		r.notef("%.0f segments (%.1f per camera)", segs, segs/float64(rc.n))
	}
	if g, _ := final.sum(mGaps); g > 0 {
		r.notef("%.0f recording gaps", g)
	}
	if d := final.sumMatching("townwatch_", "_dropped_units_total"); d > 0 {
		r.notef("%.0f units dropped by slow consumers (townwatch_*_dropped_units_total)", d)
	}
	r.pktsLost, _ = final.sum(mLostPackets)

	if r.peakRSS, err = benchkit.ReadStatusKB(serve.Pid(), "VmHWM"); err != nil {
		return nil, fmt.Errorf("peak RSS: %w", err)
	}
	// What the RSS is made of: file-backed pages are mostly the shared libraries townwatch
	// maps (OpenCV's and FFmpeg's above all), anonymous ones its heaps.
	anon, errAnon := benchkit.ReadStatusKB(serve.Pid(), "RssAnon")
	file, errFile := benchkit.ReadStatusKB(serve.Pid(), "RssFile")
	if err := errors.Join(errAnon, errFile); err != nil {
		return nil, fmt.Errorf("RSS at the end: %w", err)
	}
	r.notef("RSS at the end %.1f MiB: anonymous %.1f MiB, file-backed %.1f MiB", benchkit.MiB(anon+file), benchkit.MiB(anon), benchkit.MiB(file))
	if err := serve.Stop(); err != nil {
		r.notef("%v", err)
	}
	if n, first := logErrors(serve.LogPath); n > 0 {
		r.notef("townwatch logged %d errors, the first: %s", n, first)
	}
	return r, nil
}

// unrecorded maps each camera whose received and recorded frame totals differ in a scrape
// taken after every recorder closed its segment to the difference (nil when none does).
func unrecorded(final metrics) map[string]float64 {
	var out map[string]float64
	recd := final.byCamera(mRecordedFrames)
	for c, v := range final.byCamera(mReceivedFrames) {
		if d := v - recd[c]; d != 0 {
			if out == nil {
				out = map[string]float64{}
			}
			out[c] = d
		}
	}
	return out
}

// delta is how much the total of metric name grew between two scrapes.
func delta(a, b metrics, name string) float64 {
	va, _ := a.sum(name)
	vb, _ := b.sum(name)
	return vb - va
}

// configYAML is the townwatch configuration for one run: a camera per
// simcam URL (cam1..camN), pulled over TCP as on a real network with a
// mixed camera fleet, recorded continuously; /metrics readable with the
// bearer token in tokenFile, as by a production Prometheus. The WebRTC media ports are
// free ones, so that a run beside another townwatch (a test, a demo) does not fail on
// the default 8189.
func configYAML(storage string, httpPort int, tokenFile string, urls []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# written by cmd/recbench\nstorage:\n  path: %s\nhttp:\n  listen: 127.0.0.1:%d\nmetrics:\n  token_file: %s\n"+
		"webrtc: {udp_port: 0, tcp_port: 0}\ncameras:\n",
		strconv.Quote(storage), httpPort, strconv.Quote(tokenFile))
	for i, u := range urls {
		fmt.Fprintf(&b, "  - id: cam%d\n    main:\n      url: %s\n      transport: tcp\n    record:\n      mode: continuous\n",
			i+1, strconv.Quote(u))
	}
	return b.String()
}

// waitURLs waits for simcam to print its n camera URLs (one per line,
// "URL<TAB>clip") and returns them in the order printed (cam1..camN).
func waitURLs(ctx context.Context, cam *benchkit.Child, outPath string, n int) ([]string, error) {
	deadline := time.Now().Add(startTimeout)
	for {
		b, err := os.ReadFile(outPath)
		if err != nil {
			return nil, err
		}
		var urls []string
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			if u, _, ok := strings.Cut(sc.Text(), "\t"); ok && strings.HasPrefix(u, "rtsp://") {
				urls = append(urls, u)
			}
		}
		if len(urls) == n && strings.HasSuffix(string(b), "\n") {
			return urls, nil
		}
		if cam.Exited() {
			return nil, fmt.Errorf("simcam exited before serving (%v):\n%s", cam.Err(), cam.LogTail())
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("simcam printed %d of %d URLs within %v:\n%s", len(urls), n, startTimeout, cam.LogTail())
		}
		if err := benchkit.Sleep(ctx, pollInterval); err != nil {
			return nil, err
		}
	}
}

// waitStreaming waits until /metrics shows n cameras, all streaming
// (townwatch_camera_up 1: the main stream is streaming).
func waitStreaming(ctx context.Context, a *access, n int, serve, cam *benchkit.Child) error {
	deadline := time.Now().Add(startTimeout)
	last := "no answer from " + a.base
	for {
		if err := checkAlive(serve, cam); err != nil {
			return err
		}
		m, err := scrape(ctx, a)
		if errors.Is(err, errAccess) {
			return err
		}
		if err == nil {
			up := m.byCamera(mUp)
			streaming := 0
			var states []string
			for _, c := range sortedCameras(up) {
				if up[c] == 1 {
					streaming++
				} else {
					states = append(states, c+" down")
				}
			}
			if len(up) == n && streaming == n {
				return nil
			}
			last = fmt.Sprintf("%d of %d cameras streaming %v", streaming, n, states)
		} else if ctx.Err() == nil {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cameras not streaming within %v: %s\n%s", startTimeout, last, serve.LogTail())
		}
		if err := benchkit.Sleep(ctx, pollInterval); err != nil {
			return err
		}
	}
}

// settle polls /metrics after simcam stopped until the recorded-frame total
// (or, without the recorder metric, the received one) has not changed for
// settleQuiet, and returns that scrape; settled is false if it still
// changed at settleTimeout.
func settle(ctx context.Context, a *access, serve *benchkit.Child) (_ metrics, settled bool, _ error) {
	deadline := time.Now().Add(settleTimeout)
	var last metrics
	lastVal, quietSince := math.NaN(), time.Now()
	for {
		if serve.Exited() {
			return nil, false, fmt.Errorf("townwatch exited (%v):\n%s", serve.Err(), serve.LogTail())
		}
		m, err := scrape(ctx, a)
		if err != nil {
			return nil, false, err
		}
		v, ok := m.sum(mRecordedFrames)
		if !ok {
			v, _ = m.sum(mReceivedFrames)
		}
		if v != lastVal {
			lastVal, quietSince = v, time.Now()
		}
		last = m
		if time.Since(quietSince) >= settleQuiet {
			return last, true, nil
		}
		if time.Now().After(deadline) {
			return last, false, nil
		}
		if err := benchkit.Sleep(ctx, pollInterval); err != nil {
			return nil, false, err
		}
	}
}

// sleepAlive waits d, failing as soon as a child exits.
func sleepAlive(ctx context.Context, d time.Duration, children ...*benchkit.Child) error {
	end := time.Now().Add(d)
	for {
		if err := checkAlive(children...); err != nil {
			return err
		}
		left := time.Until(end)
		if left <= 0 {
			return nil
		}
		if err := benchkit.Sleep(ctx, min(left, time.Second)); err != nil {
			return err
		}
	}
}

func checkAlive(children ...*benchkit.Child) error {
	for _, c := range children {
		if c.Exited() {
			return fmt.Errorf("%s exited unexpectedly (%v):\n%s", c.Name, c.Err(), c.LogTail())
		}
	}
	return nil
}

// jsonLogLines decodes each JSON line of a log file, skipping others.
func jsonLogLines(path string) []map[string]any {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []map[string]any
	for line := range strings.Lines(string(b)) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// simcamDrops is what simcam logs on exit as packets dropped for slow
// readers (gortsplib's full per-session write queue).
func simcamDrops(logPath string) int64 {
	var n int64
	for _, m := range jsonLogLines(logPath) {
		if m["msg"] == "packets dropped for slow readers" {
			if v, ok := m["packets"].(float64); ok {
				n += int64(v)
			}
		}
	}
	return n
}

// logErrors counts ERROR lines in townwatch's JSON log and returns the
// first one's message and error.
func logErrors(logPath string) (n int, first string) {
	for _, m := range jsonLogLines(logPath) {
		if m["level"] != "ERROR" {
			continue
		}
		if n == 0 {
			first = fmt.Sprint(m["msg"])
			if e, ok := m["err"]; ok {
				first += ": " + fmt.Sprint(e)
			}
			if c, ok := m["camera"]; ok {
				first += " (camera " + fmt.Sprint(c) + ")"
			}
		}
		n++
	}
	return n, first
}

// sortedCameras lists the cameras of m in cam1, cam2, ... cam10 order.
func sortedCameras(m map[string]float64) []string {
	cams := make([]string, 0, len(m))
	for c := range m {
		cams = append(cams, c)
	}
	slices.SortFunc(cams, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	return cams
}
