// Command recbench is townwatch's recording benchmark (`make bench`): it
// serves N copies of a 1080p, 25 fps, ~4 Mbit/s H.264 clip from `townwatch
// simcam` on loopback, records them with `townwatch serve`, and prints for
// each N the CPU time townwatch spends per stream-hour, its peak RSS, the
// write rate, and frames received versus frames recorded, next to the
// target the recorder issue sets.
//
// Usage (from the repository):
//
//	go run ./cmd/recbench [-n 1,4,16] [-duration 60s] [-warmup 10s] [-townwatch BIN] [-cache DIR] [-keep]
//	go run ./cmd/recbench -playload [-n 16] [-duration 10m] [-page-warmup 30s] [-export-range 1h] [-profile FILE]
//
// With -playload it measures, instead, the load of officers on a recording townwatch
// (the officer-workstation issue): 4 headless Chromium pages each playing 4 cameras'
// recorded footage on /playback, and an evidence export job of an hour, against the same
// recording without them (see playload.go).
//
// The clip is generated once with ffmpeg (before anything is timed) and
// cached. Each N runs in its own pair of processes with fresh storage.
// recbench reads townwatch as a production Prometheus does: /metrics with
// the bearer token of metrics.token_file, after making the account a fresh
// install needs with `townwatch user add` (secrets in 0600 files, never on
// a command line; the recording runs never log in, see access.go).
// Figures that miss their target are reported, not failed: recbench exits
// non-zero only when the harness itself fails (a build, ffmpeg, a process
// that dies, a camera that never streams). It stops every process it
// started, also on Ctrl+C, and removes its temporary directory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/townwatch/townwatch/cmd/internal/benchkit"
)

// playloadFlags are the flags of a -playload run.
type playloadFlags struct {
	n                            string
	duration, warmup, pageWarmup time.Duration
	exportRange                  time.Duration
	profile, bin, cache          string
	keep                         bool
}

// runPlayload is run for -playload: the same harness, one run.
func runPlayload(ctx context.Context, f playloadFlags, stdout, stderr io.Writer) int {
	ns, err := benchkit.ParseCounts(f.n, "camera")
	switch {
	case err != nil:
	case len(ns) != 1:
		err = fmt.Errorf("-n takes one camera count with -playload, not %q", f.n)
	case f.duration <= 0 || f.warmup < 0 || f.pageWarmup < 0 || f.exportRange < time.Minute:
		err = errors.New("-duration must be > 0, -warmup and -page-warmup >= 0, -export-range >= 1m")
	}
	if err != nil {
		fmt.Fprintln(stderr, "recbench:", err)
		return 2
	}
	logf := progress(stderr)
	work, done, err := workDir("recbench-playload-", f.keep, logf)
	if err != nil {
		fmt.Fprintln(stderr, "recbench:", err)
		return 1
	}
	defer done()
	pc := playloadConfig{n: ns[0], window: f.duration, warmup: f.warmup, pageWarmup: f.pageWarmup, exportRange: f.exportRange,
		profile: f.profile, bin: f.bin, cache: f.cache, work: work, logf: logf}
	if f.duration < 10*time.Minute {
		logf("note: -duration %v is shorter than the 10 min the officer-workstation issue asks for", f.duration)
	}
	if pc.bin == "" {
		if pc.bin, err = benchkit.BuildTownwatch(ctx, work, logf); err != nil {
			logf("%v", err)
			return 1
		}
	}
	tck, err := benchkit.ClockTicks(ctx)
	if err != nil {
		logf("%v", err)
		return 1
	}
	pc.tck = float64(tck)
	load0 := loadAverage()
	r, err := playload(ctx, pc)
	if r != nil && len(r.windows) > 0 {
		header := fmt.Sprintf("playback and export load: %d simulated cameras (clip %s %d fps, %sbit/s) recorded by townwatch serve; %v per window;\n"+
			"host: %d CPUs, CLK_TCK %d; load average at the start %s, at the end %s",
			pc.n, benchkit.ClipSize, benchkit.ClipFPS, benchkit.ClipBitrate, pc.window, runtime.NumCPU(), tck, load0, loadAverage())
		printPlayload(stdout, pc, r, header)
	}
	if f.profile != "" && r != nil && len(r.windows) >= 2 {
		// After the run: the first `go tool pprof` builds the tool, which must not load the
		// measured machine.
		out, perr := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=25", pc.bin, f.profile).Output()
		if perr != nil {
			logf("go tool pprof -top %s: %v", f.profile, perr)
		} else {
			fmt.Fprintf(stdout, "\nwhere townwatch serve's CPU goes while the pages play (%d s profile after the measured window, %s):\n%s",
				pprofSeconds, f.profile, out)
		}
	}
	return exitCode(ctx, err, logf)
}

// progress is recbench's log of what it is doing, on stderr.
func progress(stderr io.Writer) func(string, ...any) {
	return func(format string, args ...any) {
		fmt.Fprintf(stderr, "recbench: "+format+"\n", args...)
	}
}

// workDir makes a run's temporary directory (configs, logs, recordings); done, deferred by
// the run, removes it or, with keep, says where it was kept.
func workDir(prefix string, keep bool, logf func(string, ...any)) (dir string, done func(), err error) {
	if dir, err = os.MkdirTemp("", prefix); err != nil {
		return "", nil, err
	}
	if keep {
		return dir, func() { logf("work directory kept: %s", dir) }, nil
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// exitCode is a run's exit status, after saying why it did not end well: 130 when
// interrupted, 1 when the harness failed (err), 0 otherwise.
func exitCode(ctx context.Context, err error, logf func(string, ...any)) int {
	switch {
	case ctx.Err() != nil:
		logf("interrupted; every process it started is stopped")
		return 130
	case err != nil:
		logf("%v", err)
		return 1
	}
	return 0
}

// loadAverage is the first three fields of /proc/loadavg (what uptime prints), or "n/a".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "n/a"
}

// The target from the recorder issue: MediaMTX v1.20.1 recording the same
// 16 streams as fMP4 used 11.8 % of one core and 88 MiB peak RSS;
// townwatch must use at most half that CPU, under 100 MiB, losing nothing.
const (
	refName       = "MediaMTX v1.20.1"
	refStreams    = 16
	refPctCore    = 11.8
	refRSSMiB     = 88
	targetCPUFrac = 0.5
	targetRSSMiB  = 100
)

// refCPUPerStreamHour is the reference in CPU-seconds per stream-hour:
// 0.118 × 3600 / 16 ≈ 26.6.
const refCPUPerStreamHour = refPctCore / 100 * 3600 / refStreams

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("recbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nList := fs.String("n", "1,4,16", "comma-separated numbers of simultaneous streams, one run each")
	duration := fs.Duration("duration", 60*time.Second, "measured time per run, after the warm-up (the issue asks for at least 60s)")
	warmup := fs.Duration("warmup", 10*time.Second, "time after every camera streams before measuring")
	bin := fs.String("townwatch", "", "townwatch binary to benchmark (default: go build ./cmd/townwatch)")
	cache := fs.String("cache", benchkit.DefaultCacheDir(), "directory where the generated clip is kept between runs")
	count := fs.Int("count", 1, "runs per N (not with -playload); with more than one, the table adds each N's median (timings on a shared host are noisy)")
	keep := fs.Bool("keep", false, "keep the work directory (configs, logs, recordings) and print its path")
	playloadMode := fs.Bool("playload", false, "instead of the recording runs: the playback and export load run (one -n, default 16; -duration per window, default 10m)")
	pageWarmup := fs.Duration("page-warmup", 30*time.Second, "-playload: time after every tile plays before measuring")
	exportRange := fs.Duration("export-range", time.Hour, "-playload: length of the footage the export job bundles")
	mediamtx := fs.String("mediamtx", "", "MediaMTX binary to run side by side: it records the same cameras as fMP4 in the same window, and the table adds its CPU and peak RSS and the ratios")
	profile := fs.String("profile", "", "-playload: write a CPU profile of townwatch, taken while the pages play after the measured window, to this file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := modeFlags(set, *playloadMode); err != nil {
		fmt.Fprintln(stderr, "recbench:", err)
		return 2
	}
	if *playloadMode {
		if !set["n"] {
			*nList = "16"
		}
		if !set["duration"] {
			*duration = 10 * time.Minute
		}
		return runPlayload(ctx, playloadFlags{n: *nList, duration: *duration, warmup: *warmup, pageWarmup: *pageWarmup,
			exportRange: *exportRange, profile: *profile, bin: *bin, cache: *cache, keep: *keep}, stdout, stderr)
	}
	ns, err := benchkit.ParseCounts(*nList, "stream")
	if err == nil && (*duration <= 0 || *warmup < 0 || *count < 1) {
		err = errors.New("-duration must be > 0, -warmup >= 0 and -count >= 1")
	}
	if err != nil {
		fmt.Fprintln(stderr, "recbench:", err)
		return 2
	}
	logf := progress(stderr)
	work, done, err := workDir("recbench-", *keep, logf)
	if err != nil {
		fmt.Fprintln(stderr, "recbench:", err)
		return 1
	}
	defer done()

	results, header, err := bench(ctx, benchConfig{ns: ns, count: *count, duration: *duration, warmup: *warmup,
		bin: *bin, cache: *cache, work: work, mediamtx: *mediamtx}, logf)
	if len(results) > 0 {
		printReport(stdout, header, results)
	}
	return exitCode(ctx, err, logf)
}

// playloadOnly and recordingOnly are the flags that apply to one mode only.
var (
	playloadOnly  = []string{"page-warmup", "export-range", "profile"}
	recordingOnly = []string{"count", "mediamtx"}
)

// modeFlags refuses a flag that was set but does not apply to the mode chosen: ignored,
// it would let a run measure something else than its command line says.
func modeFlags(set map[string]bool, playload bool) error {
	if playload {
		for _, name := range recordingOnly {
			if set[name] {
				return fmt.Errorf("-%s applies to the recording runs only, not with -playload", name)
			}
		}
		return nil
	}
	for _, name := range playloadOnly {
		if set[name] {
			return fmt.Errorf("-%s applies with -playload only", name)
		}
	}
	return nil
}

type benchConfig struct {
	ns               []int
	count            int // runs per N
	duration, warmup time.Duration
	bin, cache, work string
	mediamtx         string // MediaMTX binary to run side by side, or ""
}

// bench prepares (clip, binary) and runs every N; it returns the results
// of the runs that completed.
func bench(ctx context.Context, bc benchConfig, logf func(string, ...any)) ([]*result, string, error) {
	if bc.duration < 60*time.Second {
		logf("note: -duration %v is shorter than the 60 s the recorder issue asks for", bc.duration)
	}
	clip, err := benchkit.EnsureClip(ctx, bc.cache, logf)
	if err != nil {
		return nil, "", err
	}
	bin := bc.bin
	if bin == "" {
		if bin, err = benchkit.BuildTownwatch(ctx, bc.work, logf); err != nil {
			return nil, "", err
		}
	}
	tck, err := benchkit.ClockTicks(ctx)
	if err != nil {
		return nil, "", err
	}
	fi, err := os.Stat(clip)
	if err != nil {
		return nil, "", err
	}
	header := fmt.Sprintf("recording benchmark: clip %s %d fps, GOP %d, no B-frames, %.2f Mbit/s (%s), pulled over RTSP/TCP on loopback,\n"+
		"recorded continuously; %v measured per run after a %v warm-up; host: %d CPUs, CLK_TCK %d",
		benchkit.ClipSize, benchkit.ClipFPS, benchkit.ClipGOP, float64(fi.Size())*8/benchkit.ClipSeconds/1e6, filepath.Base(clip), bc.duration, bc.warmup,
		runtime.NumCPU(), tck)

	var results []*result
	for _, n := range bc.ns {
		for k := range bc.count {
			dir := filepath.Join(bc.work, fmt.Sprintf("n%d-%d", n, k+1))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return results, header, err
			}
			r, err := runOne(ctx, runConfig{bin: bin, clip: clip, work: dir, n: n, warmup: bc.warmup,
				duration: bc.duration, tck: float64(tck), mediamtx: bc.mediamtx, logf: logf})
			if err != nil {
				return results, header, fmt.Errorf("N=%d: %w", n, err)
			}
			r.run = k + 1
			logf("N=%d: %.1f%% of one core, %.1f CPU-s/stream-h, peak RSS %.1f MiB", n, r.pctCore(),
				r.cpuPerStreamHour(), benchkit.MiB(r.peakRSS))
			results = append(results, r)
		}
	}
	return results, header, nil
}

// printReport prints the table (a row per run and, when an N ran more than
// once, its median), the target and whether townwatch meets it at N=16.
func printReport(w io.Writer, header string, results []*result) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, header)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	io.WriteString(tw, "recorder\tN\tCPU s\tsys%\t%core\tCPU-s/stream-h\tRSS MiB\tin MB/s\tdisk MB/s\trec MB/s\tframes in\tframes rec\tlost\tpkts lost\tsimcam %core\thost %\t\n")
	groups := groupByN(results)
	for _, g := range groups {
		for _, r := range g {
			secs := r.dur.Seconds()
			recMB, recFrames, lost := "n/a", "n/a", "n/a"
			if r.recBytesOK {
				recMB = fmt.Sprintf("%.2f", r.recBytes/secs/1e6)
			}
			if r.recordedOK {
				recFrames = fmt.Sprintf("%.0f", r.recorded)
				lost = fmt.Sprintf("%.0f", r.lost())
			}
			name := "townwatch"
			if len(g) > 1 {
				name = fmt.Sprintf("townwatch #%d", r.run)
			}
			fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.0f\t%.1f\t%.1f\t%.1f\t%.2f\t%.2f\t%s\t%.0f\t%s\t%s\t%.0f\t%.1f\t%.0f\t\n",
				name, r.n, r.cpuSec, 100*r.cpuSysSec/r.cpuSec, r.pctCore(), r.cpuPerStreamHour(), benchkit.MiB(r.peakRSS),
				r.inBytes/secs/1e6, r.diskBytes/secs/1e6, recMB, r.received, recFrames, lost, r.pktsLost,
				100*r.simcamCPUSec/secs, 100*r.hostBusy)
			if r.ref {
				fmt.Fprintf(tw, "MediaMTX, same run\t%d\t%.2f\t-\t%.1f\t%.1f\t%.1f\t-\t-\t-\t-\t-\t-\t-\t-\t-\t\n",
					r.n, r.refCPUSec, 100*r.refCPUSec/secs, r.refCPUSec/(float64(r.n)*r.dur.Hours()), benchkit.MiB(r.refPeakRSS))
			}
		}
		if len(g) > 1 {
			m := summarize(g)
			lost := "n/a"
			if m.lostOK {
				lost = fmt.Sprintf("%.0f", m.maxLost)
			}
			fmt.Fprintf(tw, "median of %d\t%d\t-\t-\t%.1f\t%.1f\t%.1f\t-\t-\t-\t-\t-\tmax %s\tmax %.0f\t-\t-\t\n",
				len(g), g[0].n, m.pctCore, m.cpuPerStreamHour, m.rssMiB, lost, m.maxPktsLost)
		}
	}
	fmt.Fprintf(tw, "%s (reference)\t%d\t-\t-\t%.1f\t%.1f\t%d\t-\t-\t-\t-\t-\t-\t-\t-\t-\t\n",
		refName, refStreams, refPctCore, refCPUPerStreamHour, refRSSMiB)
	fmt.Fprintf(tw, "target (half the CPU)\t%d\t-\t-\t<= %.1f\t<= %.1f\t< %d\t-\t-\t-\t-\t-\t0\t0\t-\t-\t\n",
		refStreams, targetCPUFrac*refPctCore, targetCPUFrac*refCPUPerStreamHour, targetRSSMiB)
	tw.Flush()

	maxCPU := targetCPUFrac * refCPUPerStreamHour
	fmt.Fprintf(w, "\ntarget: %s recording %d such streams as fMP4 used %.1f%% of one core (%.1f CPU-s/stream-h) and %d MiB peak RSS;\n"+
		"        townwatch at N=%d must use <= %.1f CPU-s/stream-h (%.1f%% of one core), < %d MiB peak RSS, and lose 0 frames.\n",
		refName, refStreams, refPctCore, refCPUPerStreamHour, refRSSMiB, refStreams, maxCPU, targetCPUFrac*refPctCore, targetRSSMiB)
	for _, g := range groups {
		if g[0].n != refStreams {
			continue
		}
		m := summarize(g)
		of := ""
		if len(g) > 1 {
			of = fmt.Sprintf(" (median of %d runs; frames: the worst run)", len(g))
		}
		lost := fmt.Sprintf("frames lost: n/a (townwatch_recorded_frames_total not exposed), RTP packets lost %.0f", m.maxPktsLost)
		if m.lostOK {
			lost = fmt.Sprintf("frames lost %.0f, RTP packets lost %.0f: %s", m.maxLost, m.maxPktsLost,
				verdict(m.maxLost == 0 && m.maxPktsLost == 0))
		}
		fmt.Fprintf(w, "result: N=%d%s: %.1f CPU-s/stream-h: %s; peak RSS %.1f MiB: %s; %s\n", refStreams, of,
			m.cpuPerStreamHour, verdict(m.cpuPerStreamHour <= maxCPU), m.rssMiB, verdict(m.rssMiB < targetRSSMiB), lost)
	}

	for _, r := range results {
		if r.ref && r.n == refStreams {
			fmt.Fprintln(w, sideBySide(r))
		}
	}

	runs := map[int]int{}
	for _, r := range results {
		runs[r.n]++
	}
	var notes []string
	for _, r := range results {
		tag := fmt.Sprintf("N=%d", r.n)
		if runs[r.n] > 1 {
			tag += fmt.Sprintf(" #%d", r.run)
		}
		for _, c := range sortedCameras(r.lossByCamera) {
			notes = append(notes, fmt.Sprintf("%s: %s: %.0f frames received but not recorded", tag, c, r.lossByCamera[c]))
		}
		for _, n := range r.notes {
			notes = append(notes, fmt.Sprintf("%s: %s", tag, n))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range notes {
			fmt.Fprintln(w, "  "+n)
		}
	}
	fmt.Fprintf(w, "\n(%.0f s measured per run. CPU s, %%core: utime+stime of the townwatch process over the window, sys%%: the kernel's share;\n"+
		"CPU-s/stream-h = CPU s / (N x hours); RSS: its peak resident set (VmHWM); in: media received (metric); disk: growth of the\n"+
		"storage directory; rec: townwatch_recorded_bytes_total; frames: totals over the whole run, read after simcam stopped and every\n"+
		"recorder closed its segment (lost = in - rec); pkts lost: RTP packets townwatch saw missing (townwatch_camera_lost_packets_total),\n"+
		"frames that never reached it; simcam %%core: the camera simulator's CPU on the same host; host %%: all CPUs busy, all processes:\n"+
		"well above townwatch + simcam means other load competed with the run.)\n", results[0].dur.Seconds())
}

// targetRefRSS is the footprint issue's target for recording: townwatch's peak RSS at most
// this share of MediaMTX's, measured side by side.
const targetRefRSS = 0.8

// sideBySide is the verdict of a run with MediaMTX beside townwatch: the ratios of their
// peak RSS (the target) and of their CPU over the same window.
func sideBySide(r *result) string {
	rss := float64(r.peakRSS) / float64(r.refPeakRSS)
	return fmt.Sprintf("side by side: N=%d #%d: townwatch/MediaMTX peak RSS %.1f/%.1f MiB = %.2f× (target <= %.1f×: %s); CPU %.2f/%.2f s = %.2f×",
		r.n, r.run, benchkit.MiB(r.peakRSS), benchkit.MiB(r.refPeakRSS), rss, targetRefRSS, verdict(rss <= targetRefRSS),
		r.cpuSec, r.refCPUSec, r.cpuSec/r.refCPUSec)
}

// groupByN groups results by N, in the order the Ns ran.
func groupByN(results []*result) [][]*result {
	var groups [][]*result
	for _, r := range results {
		if i := slices.IndexFunc(groups, func(g []*result) bool { return g[0].n == r.n }); i >= 0 {
			groups[i] = append(groups[i], r)
		} else {
			groups = append(groups, []*result{r})
		}
	}
	return groups
}

// summary is one N's figures over its runs.
type summary struct {
	pctCore, cpuPerStreamHour, rssMiB float64 // medians
	maxLost, maxPktsLost              float64
	lostOK                            bool // every run exposed the recorded-frames metric
}

func summarize(runs []*result) summary {
	var s summary
	var pct, cpu, rss []float64
	s.lostOK = true
	for _, r := range runs {
		pct = append(pct, r.pctCore())
		cpu = append(cpu, r.cpuPerStreamHour())
		rss = append(rss, benchkit.MiB(r.peakRSS))
		s.lostOK = s.lostOK && r.recordedOK
		s.maxLost = max(s.maxLost, r.lost())
		s.maxPktsLost = max(s.maxPktsLost, r.pktsLost)
	}
	s.pctCore, s.cpuPerStreamHour, s.rssMiB = median(pct), median(cpu), median(rss)
	return s
}

// median of a non-empty list; the mean of the middle two for an even count.
func median(v []float64) float64 {
	v = slices.Sorted(slices.Values(v))
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func verdict(ok bool) string {
	if ok {
		return "meets the target"
	}
	return "MISSES the target"
}
