package main

// The -playload run measures two checks of the officer-workstation issue against a real
// `townwatch serve` recording n simulated cameras:
//
//   - 4 pages × 4 playing tiles raise townwatch's CPU by at most 5 % of one core, and the
//     recorder drops nothing: a window with the recording alone, then a window of the same
//     length with 4 headless Chromium pages each playing 4 cameras' recorded footage on
//     /playback, as an officer who gave a reason;
//   - the browser export job's I/O never makes the recorder fall behind: the histogram
//     townwatch_fragment_write_seconds while an export of an hour of one camera runs
//     (POST /api/exports), against a window of the same length without it. The export's
//     own time is held to the 60 s for the hour, pro rata for another -export-range.
//
// The footage the pages play is what this run recorded; the exported hour is built
// before townwatch starts, as copies of one encoded 60 s segment (recorder/archivetest)
// whose pages are then dropped from the page cache, so the export reads the disk.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/townwatch/townwatch/cmd/internal/benchkit"
	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/recorder/archivetest"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// The target for the pages, and their shape.
const (
	targetPagesPctCore = 5.0
	pages              = 4
	tilesPerPage       = 4
	// targetExportPerHour is the time for an export of an hour of one camera; a
	// run exporting another length (-export-range) is held to it pro rata.
	targetExportPerHour = 60 * time.Second
)

// exportTarget is the target time for an export of rng of one camera.
func exportTarget(rng time.Duration) time.Duration {
	return time.Duration(float64(targetExportPerHour) * rng.Hours())
}

const (
	mFragWrite    = "townwatch_fragment_write_seconds"
	mRecorderDrop = "townwatch_recorder_dropped_units_total"
	mLostSeconds  = "townwatch_recording_lost_seconds_total"
	// pprofSeconds is the length of the CPU profile -profile takes while the pages play.
	pprofSeconds = 30
)

type playloadConfig struct {
	n                  int
	window             time.Duration // each measured window: recording alone, with the pages
	warmup, pageWarmup time.Duration
	exportRange        time.Duration
	profile            string // where to write a CPU profile of serve while the pages play; "" none
	bin, cache, work   string
	tck                float64
	logf               func(string, ...any)
}

// window is a measured stretch between two snapshots, with the CPU of townwatch's
// children (its motion worker) at each end.
type window struct {
	name         string
	s0, s1       snapshot
	kids0, kids1 benchkit.ProcCPU
}

func (w window) dur() time.Duration { return w.s1.at.Sub(w.s0.at) }

// pctCore is townwatch's CPU over the window in % of one core.
func (w window) pctCore(tck float64) float64 {
	return 100 * float64(w.s1.serve.Total()-w.s0.serve.Total()) / tck / w.dur().Seconds()
}

// workerPctCore is the CPU of townwatch's children over the window in % of one core.
func (w window) workerPctCore(tck float64) float64 {
	return 100 * (float64(w.kids1.Total()) - float64(w.kids0.Total())) / tck / w.dur().Seconds()
}

// hostPct is how busy all of the host's CPUs were, in %.
func (w window) hostPct() float64 {
	if dt := w.s1.host.total - w.s0.host.total; dt > 0 {
		return 100 * float64(w.s1.host.busy-w.s0.host.busy) / float64(dt)
	}
	return math.NaN()
}

func (w window) delta(name string) float64 { return delta(w.s0.m, w.s1.m, name) }

func (w window) frag() []bucket { return histogramDelta(w.s0.m, w.s1.m, mFragWrite) }

// playloadResult is what the run measured.
type playloadResult struct {
	n       int
	windows []window // recording alone, with the pages, export running, after the export
	rates   []float64
	states  map[string]int // the tiles' states at the end of the pages' window

	exportBytes, bundleBytes float64
	exportTook               time.Duration
	exportState, exportErr   string

	// Totals over the whole run (page start-up included), read after every recorder
	// closed its segment.
	received, recorded float64
	drops, gaps        float64
	lossByCamera       map[string]float64
	notes              []string
}

func (r *playloadResult) notef(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// playload runs the whole measurement; it returns what it measured so far with an error
// only when the harness itself failed.
func playload(ctx context.Context, pc playloadConfig) (_ *playloadResult, err error) {
	r := &playloadResult{n: pc.n}
	storage := filepath.Join(pc.work, "storage")
	clip, err := benchkit.EnsureClip(ctx, pc.cache, pc.logf)
	if err != nil {
		return nil, err
	}
	archFrom, err := buildExportArchive(ctx, pc, storage)
	if err != nil {
		return nil, err
	}

	var serveArgs []string
	pprofAddr := ""
	if pc.profile != "" {
		pp, err := benchkit.FreePort()
		if err != nil {
			return nil, err
		}
		pprofAddr = "127.0.0.1:" + strconv.Itoa(pp)
		serveArgs = []string{"-pprof", pprofAddr}
	}
	rec, err := startRecording(ctx, recordingSetup{bin: pc.bin, clip: clip, work: pc.work, n: pc.n,
		account: officerAccount, accountArgs: []string{"-role", "officer", "-cameras", "all"}, serveArgs: serveArgs})
	if err != nil {
		return nil, err
	}
	defer func() { rec.stop(err != nil, r.notef) }()
	cam, serve, api, base, password := rec.cam, rec.serve, rec.api, rec.api.base, rec.password
	recStart := time.Now()
	pc.logf("%d cameras streaming; warming up %v, then %v with the recording alone", pc.n, pc.warmup, pc.window)
	measure := func(name string, d time.Duration, during func() error) (window, error) {
		w := window{name: name}
		var err error
		if w.s0, err = takeSnapshot(ctx, api, storage, serve, cam); err != nil {
			return w, err
		}
		if w.kids0, err = childrenCPU(serve.Pid()); err != nil {
			return w, err
		}
		if during != nil {
			err = during()
		} else {
			err = sleepAlive(ctx, d, serve, cam)
		}
		if err != nil {
			return w, err
		}
		if w.s1, err = takeSnapshot(ctx, api, storage, serve, cam); err != nil {
			return w, err
		}
		w.kids1, err = childrenCPU(serve.Pid())
		return w, err
	}
	if err := sleepAlive(ctx, pc.warmup, serve, cam); err != nil {
		return r, err
	}
	alone, err := measure("recording alone", pc.window, nil)
	if err != nil {
		return r, err
	}
	r.windows = append(r.windows, alone)

	// The pages: each plays 4 cameras (the first 16, wrapping when there are fewer) from
	// a few seconds after the recording began, so they play footage recorded minutes
	// before, never reaching the segments being written.
	if err := checkChromium(); err != nil {
		return r, err
	}
	var players []*player
	defer func() {
		for _, p := range players {
			p.cancel()
		}
	}()
	for i := range pages {
		var cams []string
		for k := range tilesPerPage {
			cams = append(cams, "cam"+strconv.Itoa((i*tilesPerPage+k)%pc.n+1))
		}
		cookies, err := benchkit.Login(ctx, base, officerAccount, password)
		if err != nil {
			return r, err
		}
		dir := filepath.Join(pc.work, "browser"+strconv.Itoa(i+1))
		p, note, err := openPlayer(ctx, dir, base, cookies, cams, recStart.Add(5*time.Second))
		if err != nil {
			return r, err
		}
		if note != "" {
			r.notef("%s", note)
		}
		players = append(players, p)
		pc.logf("page %d plays %s", i+1, strings.Join(cams, ","))
	}
	pc.logf("%d pages × %d tiles playing; warming up %v, then %v measured", pages, tilesPerPage, pc.pageWarmup, pc.window)
	if err := sleepAlive(ctx, pc.pageWarmup, serve, cam); err != nil {
		return r, err
	}
	var before, after []pageSample
	withPages, err := measure("+ 4 pages × 4 tiles", pc.window, func() error {
		for _, p := range players {
			s, err := p.sample()
			if err != nil {
				return err
			}
			before = append(before, s)
		}
		if err := sleepAlive(ctx, pc.window, serve, cam); err != nil {
			return err
		}
		for _, p := range players {
			s, err := p.sample()
			if err != nil {
				return err
			}
			after = append(after, s)
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	r.windows = append(r.windows, withPages)
	r.states = map[string]int{}
	for i := range players {
		r.rates = append(r.rates, playRates(before[i], after[i])...)
		for _, t := range after[i].tiles {
			r.states[t.State]++
		}
	}
	if pprofAddr != "" {
		pc.logf("taking a %d s CPU profile of townwatch while the pages still play (outside the measured window)", pprofSeconds)
		if err := takeProfile(ctx, pprofAddr, pc.profile); err != nil {
			r.notef("CPU profile: %v", err)
		}
	}
	for _, p := range players {
		p.cancel()
	}
	players = nil

	// The export, then as long again without it.
	if err := sleepAlive(ctx, 5*time.Second, serve, cam); err != nil {
		return r, err
	}
	cookies, err := benchkit.Login(ctx, base, officerAccount, password)
	if err != nil {
		return r, err
	}
	pc.logf("exporting %v of cam1 (%s)", pc.exportRange, archFrom.Format(time.RFC3339))
	var job exportStatus
	exporting, err := measure("export running", 0, func() error {
		start := time.Now()
		var exportErr error
		job, exportErr = runExport(ctx, base, cookies, archFrom, archFrom.Add(pc.exportRange), serve, cam)
		r.exportTook = time.Since(start)
		return exportErr
	})
	if err != nil {
		return r, err
	}
	r.windows = append(r.windows, exporting)
	r.exportState, r.exportErr, r.exportBytes, r.bundleBytes = job.State, job.Error, float64(job.TotalBytes), float64(job.Bytes)
	if job.Finished != nil {
		r.exportTook = job.Finished.Sub(job.Created) // the server's own account, queue to done
	}
	quiet, err := measure("after the export", exporting.dur(), nil)
	if err != nil {
		return r, err
	}
	r.windows = append(r.windows, quiet)

	pc.logf("stopping simcam, waiting for the recorders to close their segments")
	if err := cam.Stop(); err != nil {
		r.notef("%v", err)
	}
	if dropped := simcamDrops(cam.LogPath); dropped > 0 {
		r.notef("simcam dropped %d RTP packets because its queue for townwatch's session was full", dropped)
	}
	final, settled, err := settle(ctx, api, serve)
	if err != nil {
		return r, err
	}
	if !settled {
		r.notef("recorded frames still changing %v after simcam stopped; totals read anyway", settleTimeout)
	}
	r.received, _ = final.sum(mReceivedFrames)
	r.recorded, _ = final.sum(mRecordedFrames)
	r.lossByCamera = unrecorded(final)
	r.drops, _ = final.sum(mRecorderDrop)
	r.gaps, _ = final.sum(mGaps)
	if err := serve.Stop(); err != nil {
		r.notef("%v", err)
	}
	if n, first := logErrors(serve.LogPath); n > 0 {
		r.notef("townwatch logged %d errors, the first: %s", n, first)
	}
	return r, nil
}

// buildExportArchive writes an hour (pc.exportRange) of cam1 into storage before
// townwatch starts, ending 10 minutes ago: copies of one encoded segment, flushed and then
// dropped from the page cache, so the export reads them from the disk as it would read
// last night's footage. It returns the archive's start.
func buildExportArchive(ctx context.Context, pc playloadConfig, storage string) (time.Time, error) {
	pc.logf("building %v of archive footage for the export (recorder/archivetest, copies) ...", pc.exportRange)
	started := time.Now()
	tpl, err := archivetest.MakeTemplate(ctx, time.Minute)
	if err != nil {
		return time.Time{}, err
	}
	if err := os.MkdirAll(storage, 0o700); err != nil {
		return time.Time{}, err
	}
	cat, err := catalog.Open(ctx, filepath.Join(storage, configs.CatalogFile))
	if err != nil {
		return time.Time{}, err
	}
	from := time.Now().Add(-pc.exportRange - 10*time.Minute).Truncate(time.Minute).UTC()
	segs, err := archivetest.Build(ctx, archivetest.Spec{Dir: storage, Catalog: cat, Template: tpl, Cameras: []string{"cam1"},
		From: from, Duration: pc.exportRange, Copy: true})
	if err := errors.Join(err, cat.Close()); err != nil {
		return time.Time{}, err
	}
	for _, s := range segs["cam1"] {
		if err := dropFromCache(filepath.Join(storage, filepath.FromSlash(s.Path))); err != nil {
			return time.Time{}, err
		}
	}
	pc.logf("archive of %d segments built in %.0f s", len(segs["cam1"]), time.Since(started).Seconds())
	return from, nil
}

// dropFromCache writes the file's dirty pages out and asks the kernel to forget its
// cached ones (posix_fadvise DONTNEED): the next read comes from the disk.
func dropFromCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return fmt.Errorf("fdatasync %s: %w", path, err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("fadvise %s: %w", path, err)
	}
	return nil
}

// exportStatus is the part of GET /api/exports/{id} the run reads.
type exportStatus struct {
	ID         int64      `json:"id"`
	State      string     `json:"state"`
	Error      string     `json:"error"`
	Created    time.Time  `json:"created"`
	Finished   *time.Time `json:"finished"`
	TotalBytes int64      `json:"total_bytes"`
	Bytes      int64      `json:"bytes"`
}

// runExport requests an export of cam1 from..to as the officer and polls it until it
// ends (done, failed or cancelled).
func runExport(ctx context.Context, base string, cookies []*http.Cookie, from, to time.Time, children ...*benchkit.Child) (exportStatus, error) {
	body, _ := json.Marshal(map[string]any{"cameras": []string{"cam1"}, "from": from.Format(time.RFC3339), "to": to.Format(time.RFC3339),
		"reason": playbackReason, "case": "RECBENCH-1/2026", "recipient": "recbench"})
	var job exportStatus
	if err := apiDo(ctx, http.MethodPost, base+"/api/exports", cookies, body, http.StatusAccepted, &job); err != nil {
		return job, err
	}
	for {
		if err := sleepAlive(ctx, 250*time.Millisecond, children...); err != nil {
			return job, err
		}
		if err := apiDo(ctx, http.MethodGet, base+"/api/exports/"+strconv.FormatInt(job.ID, 10), cookies, nil, http.StatusOK, &job); err != nil {
			return job, err
		}
		switch job.State {
		case "done", "failed", "cancelled":
			return job, nil
		}
	}
}

// apiDo sends a request with the session cookies and decodes the JSON answer into out,
// failing unless the status is want.
func apiDo(ctx context.Context, method, url string, cookies []*http.Cookie, body []byte, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s %s", method, url, resp.Status, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, out)
}

// takeProfile saves a CPU profile of serve (its -pprof listener) to path.
func takeProfile(ctx context.Context, addr, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, pprofSeconds), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /debug/pprof/profile: %s", resp.Status)
	}
	return os.WriteFile(path, b, 0o644)
}

// printPlayload prints the figures of the -playload run.
func printPlayload(w io.Writer, pc playloadConfig, r *playloadResult, header string) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, header)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	io.WriteString(tw, "window\ts\ttownwatch %core\tworker %core\thost %\tfragment writes\tp50 ms\tp99 ms\tslowest <= ms\trecorder drops\tgaps\tlost s\tpkts lost\treconnects\t\n")
	ms := func(v float64) string {
		if math.IsNaN(v) {
			return "-"
		}
		if math.IsInf(v, 1) {
			return "+Inf"
		}
		return fmt.Sprintf("%.1f", 1000*v)
	}
	for _, win := range r.windows {
		f := win.frag()
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%.1f\t%.0f\t%.0f\t%s\t%s\t%s\t%.0f\t%.0f\t%.1f\t%.0f\t%.0f\t\n", win.name, win.dur().Seconds(),
			win.pctCore(pc.tck), win.workerPctCore(pc.tck), win.hostPct(), total(f), ms(quantile(f, 0.5)), ms(quantile(f, 0.99)), ms(maxBound(f)),
			win.delta(mRecorderDrop), win.delta(mGaps), win.delta(mLostSeconds), win.delta(mLostPackets), win.delta(mReconnects))
	}
	tw.Flush()

	if len(r.windows) >= 2 {
		rise := r.windows[1].pctCore(pc.tck) - r.windows[0].pctCore(pc.tck)
		mean, lo := 0.0, math.Inf(1)
		for _, v := range r.rates {
			mean += v / float64(len(r.rates))
			lo = min(lo, v)
		}
		fmt.Fprintf(w, "\npages: %d × %d tiles played at %.2f× real time on average (slowest tile %.2f×); tiles at the end: %s\n",
			pages, tilesPerPage, mean, lo, tileStates(r.states))
		workerRise := r.windows[1].workerPctCore(pc.tck) - r.windows[0].workerPctCore(pc.tck)
		rise += workerRise
		fmt.Fprintf(w, "result: the pages raised townwatch's CPU by %.1f %% of one core (serve %.1f, worker %.1f; target <= %.0f %%): %s",
			rise, rise-workerRise, workerRise, targetPagesPctCore, verdict(rise <= targetPagesPctCore))
		if mean > 0 && mean < 0.95 {
			fmt.Fprintf(w, "; at 1× it would be about %.1f %% (scaled by the play rate, an estimate)", rise/mean)
		}
		fmt.Fprintln(w)
	}
	drops, gaps := 0.0, 0.0
	for _, win := range r.windows {
		drops += win.delta(mRecorderDrop)
		gaps += win.delta(mGaps)
	}
	lost := r.received - r.recorded
	fmt.Fprintf(w, "result: recorder drops %.0f, recording gaps %.0f in the windows; over the whole run (pages starting included) drops %.0f, gaps %.0f,\n"+
		"        frames received %.0f, recorded %.0f (%.0f not recorded): %s\n", drops, gaps, r.drops, r.gaps, r.received, r.recorded, lost,
		map[bool]string{true: "drops nothing", false: "DROPS FOOTAGE"}[r.drops == 0 && r.gaps == 0 && lost == 0])
	if r.exportState != "" {
		mbps := r.exportBytes / r.exportTook.Seconds() / 1e6
		target := exportTarget(pc.exportRange)
		fmt.Fprintf(w, "export: %v of cam1, %.0f MB of segments read from the disk, state %s%s: %.1f s (%.1f MB/s), bundle %.0f MB (target <= %v, %v per hour of footage: %s)\n",
			pc.exportRange, r.exportBytes/1e6, r.exportState, errSuffix(r.exportErr), r.exportTook.Seconds(), mbps, r.bundleBytes/1e6,
			target, targetExportPerHour, verdict(r.exportState == "done" && r.exportTook <= target))
	}
	if len(r.windows) >= 4 {
		e, q := r.windows[2].frag(), r.windows[3].frag()
		fmt.Fprintf(w, "result: fragment writes during the export p50 %s / p99 %s ms (slowest <= %s ms), without it p50 %s / p99 %s ms (slowest <= %s ms)\n",
			ms(quantile(e, 0.5)), ms(quantile(e, 0.99)), ms(maxBound(e)), ms(quantile(q, 0.5)), ms(quantile(q, 0.99)), ms(maxBound(q)))
	}
	for _, c := range sortedCameras(r.lossByCamera) {
		r.notef("%s: %.0f frames received but not recorded", c, r.lossByCamera[c])
	}
	if len(r.notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range r.notes {
			fmt.Fprintln(w, "  "+n)
		}
	}
	fmt.Fprintf(w, "\n(%%core: utime+stime of the townwatch serve process over the window; worker: of its children (the motion\n"+
		"worker, which makes the scrub-preview thumbnails); host %%: all CPUs busy, every process (the browsers\n"+
		"included); fragment writes: townwatch_fragment_write_seconds observations in the window (write + fdatasync of\n"+
		"about 1 s of one camera), quantiles interpolated inside its buckets as histogram_quantile does, slowest: the bucket bound\n"+
		"holding every write; drops: %s, gaps: %s, lost s: %s, pkts lost: RTP\n"+
		"packets townwatch saw missing. The play rate is how far each tile's presented frame advanced per wall second.)\n",
		mRecorderDrop, mGaps, mLostSeconds)
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return " (" + e + ")"
}

// tileStates lists the tiles' states as "playing 16" or "playing 15, loading 1".
func tileStates(states map[string]int) string {
	var keys []string
	for k := range states {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, states[k]))
	}
	return strings.Join(parts, ", ")
}
