package main

import (
	"fmt"
	"maps"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseHostStat(t *testing.T) {
	const stat = "cpu  100 5 50 800 40 3 2 0 7 0\ncpu0 50 2 25 400 20 1 1 0 0 0\n"
	got, err := parseHostStat([]byte(stat))
	// busy: user+nice+system+irq+softirq+steal = 160; total adds idle and iowait;
	// guest (already in user) is not counted twice.
	if err != nil || got != (hostCPU{busy: 160, total: 1000}) {
		t.Errorf("parseHostStat = %+v, %v; want busy 160 of 1000", got, err)
	}
	if _, err := parseHostStat([]byte("intr 1 2 3\n")); err == nil {
		t.Error("no error for a file without the cpu line")
	}
}

// metricsText is a piece of a townwatch scrape, with what the text format
// allows around the figures recbench reads.
const metricsText = `# HELP townwatch_camera_received_frames_total Video access units received and published.
# TYPE townwatch_camera_received_frames_total counter
townwatch_camera_received_frames_total{camera="cam1"} 1500
townwatch_camera_received_frames_total{camera="cam2"} 1.5e+03
townwatch_recorded_frames_total{camera="cam1"} 1500
townwatch_recorded_frames_total{camera="cam2"} 1475
townwatch_recorded_bytes_total{camera="cam1"} 3.0357780e+07 1700000000000
townwatch_recorder_dropped_units_total{camera="cam2"} 25
townwatch_viewer_dropped_units_total{camera="cam2"} 3
townwatch_retention_deleted_bytes_total{camera="cam1",reason="age"} 0
weird{camera="a \"quoted\" \\ name\nx", other = "}"} NaN
townwatch_fragment_write_seconds_bucket{le="+Inf"} 42
go_goroutines 37
`

func TestParseMetrics(t *testing.T) {
	m, err := parseMetrics(metricsText)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 11 {
		t.Fatalf("%d samples, want 11", len(m))
	}
	for name, want := range map[string]float64{
		"townwatch_camera_received_frames_total": 3000,
		"townwatch_recorded_frames_total":        2975,
		"townwatch_recorded_bytes_total":         30357780,
		"go_goroutines":                          37,
	} {
		if got, ok := m.sum(name); !ok || got != want {
			t.Errorf("sum(%s) = %v, %v; want %v", name, got, ok, want)
		}
	}
	if _, ok := m.sum("townwatch_segments_total"); ok {
		t.Error("sum of an absent metric reported as present")
	}
	if got := m.byCamera("townwatch_recorded_frames_total"); !maps.Equal(got, map[string]float64{"cam1": 1500, "cam2": 1475}) {
		t.Errorf("byCamera = %v", got)
	}
	if got := m.sumMatching("townwatch_", "_dropped_units_total"); got != 28 {
		t.Errorf("dropped units = %v, want 28", got)
	}
	w := m[8]
	if w.name != "weird" || w.labels["camera"] != "a \"quoted\" \\ name\nx" || w.labels["other"] != "}" || !math.IsNaN(w.value) {
		t.Errorf("escaped labels: %+v", w)
	}
	if b := m[9]; b.labels["le"] != "+Inf" || b.value != 42 {
		t.Errorf("bucket: %+v", b)
	}

	for _, bad := range []string{
		"townwatch_x{camera=\"cam1\"}",       // no value
		"townwatch_x{camera=\"cam1} 3",       // unterminated label value
		"townwatch_x{camera=cam1} 3",         // unquoted label value
		"townwatch_x 3 4 5",                  // too many fields
		"townwatch_x{camera=\"cam1\"} three", // not a number
	} {
		if _, err := parseMetrics(bad + "\n"); err == nil || !strings.HasPrefix(err.Error(), "metrics line 1: ") {
			t.Errorf("parseMetrics(%q): err %v, want a line-1 error", bad, err)
		}
	}
}

func TestFigures(t *testing.T) {
	// 16 streams for 60 s using 11.8 % of one core is the reference's
	// 26.55 CPU-s per stream-hour.
	r := &result{n: 16, dur: time.Minute, cpuSec: 0.118 * 60, received: 24000, recorded: 23990}
	if got := r.cpuPerStreamHour(); math.Abs(got-refCPUPerStreamHour) > 1e-9 || math.Abs(got-26.55) > 1e-9 {
		t.Errorf("CPU-s/stream-h = %v, want 26.55", got)
	}
	if got := r.pctCore(); math.Abs(got-11.8) > 1e-9 {
		t.Errorf("%% of one core = %v, want 11.8", got)
	}
	if r.lost() != 10 {
		t.Errorf("lost = %v, want 10", r.lost())
	}
}

func TestConfigYAMLAndNs(t *testing.T) {
	y := configYAML("/tmp/x y/storage", 8080, "/tmp/x y/metrics.token", []string{"rtsp://127.0.0.1:1/cam1", "rtsp://127.0.0.1:1/cam2"})
	for _, want := range []string{"  path: \"/tmp/x y/storage\"\n", "  listen: 127.0.0.1:8080\n",
		"metrics:\n  token_file: \"/tmp/x y/metrics.token\"\n", "webrtc: {udp_port: 0, tcp_port: 0}\n",
		"  - id: cam2\n    main:\n      url: \"rtsp://127.0.0.1:1/cam2\"\n      transport: tcp\n    record:\n      mode: continuous\n"} {
		if !strings.Contains(y, want) {
			t.Errorf("config lacks %q:\n%s", want, y)
		}
	}
	if got := sortedCameras(map[string]float64{"cam10": 1, "cam2": 1, "cam1": 1}); strings.Join(got, ",") != "cam1,cam2,cam10" {
		t.Errorf("sortedCameras = %v", got)
	}
}

func TestReport(t *testing.T) {
	const mb = 1 << 20
	// N=16 twice: 10 and 12 CPU-s/stream-h (median 11, under the 13.3
	// target), 70 and 80 MiB (median 75); then N=1 without the recorder's
	// metrics.
	cpuFor := func(perStreamHour float64) float64 { return perStreamHour * 16 * time.Minute.Hours() }
	results := []*result{
		{n: 16, run: 1, dur: time.Minute, cpuSec: cpuFor(10), cpuSysSec: 1, peakRSS: 70 * mb, received: 100, recorded: 100, recordedOK: true},
		// Recorded all it received, but 3 packets never arrived.
		{n: 16, run: 2, dur: time.Minute, cpuSec: cpuFor(12), cpuSysSec: 1, peakRSS: 80 * mb, received: 100, recorded: 100, recordedOK: true,
			pktsLost: 3, lossByCamera: map[string]float64{"cam3": 1}},
		{n: 1, run: 1, dur: time.Minute, cpuSec: 1, peakRSS: 20 * mb, received: 1500, notes: []string{"something odd"}},
	}
	var b strings.Builder
	printReport(&b, "HEADER", results)
	out := b.String()
	for _, want := range []string{
		"HEADER\n",
		"median of 2  16",
		"result: N=16 (median of 2 runs; frames: the worst run): 11.0 CPU-s/stream-h: meets the target; " +
			"peak RSS 75.0 MiB: meets the target; frames lost 0, RTP packets lost 3: MISSES the target\n",
		"  N=16 #2: cam3: 1 frames received but not recorded\n",
		"  N=1: something odd\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	rows := 0
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		switch {
		case len(f) > 2 && f[0] == "townwatch" && f[1] == "1":
			rows++
			if f[9] != "n/a" || f[11] != "n/a" || f[12] != "n/a" {
				t.Errorf("N=1 row without recorder metrics: %q, want n/a for rec MB/s, frames rec and lost", line)
			}
		case strings.HasPrefix(strings.TrimSpace(line), "MediaMTX"):
			rows++
			if f[3] != "16" || f[6] != "11.8" || f[7] != "26.6" || f[8] != "88" {
				t.Errorf("reference row: %q", line)
			}
		}
	}
	if rows != 2 {
		t.Errorf("found %d of the N=1 and reference rows:\n%s", rows, out)
	}
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median = %v, want 2", got)
	}
}

// Two scrapes of the fragment-write histogram: between them 100 writes, 50 within 5 ms,
// 49 more within 10 ms, one within 50 ms.
func TestFragmentWriteQuantiles(t *testing.T) {
	scrape := func(b5, b10, b50, inf float64) metrics {
		m, err := parseMetrics(fmt.Sprintf(`# TYPE townwatch_fragment_write_seconds histogram
townwatch_fragment_write_seconds_bucket{le="0.01"} %v
townwatch_fragment_write_seconds_bucket{le="0.005"} %v
townwatch_fragment_write_seconds_bucket{le="0.05"} %v
townwatch_fragment_write_seconds_bucket{le="+Inf"} %v
townwatch_fragment_write_seconds_sum 1.5
townwatch_fragment_write_seconds_count %v
`, b10, b5, b50, inf, inf))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a := scrape(10, 10, 10, 10)
	b := scrape(60, 109, 110, 110)
	d := histogramDelta(a, b, "townwatch_fragment_write_seconds")
	if len(d) != 4 || d[0].le != 0.005 || !math.IsInf(d[3].le, 1) || total(d) != 100 {
		t.Fatalf("delta buckets %+v: want 4 by le, 100 writes", d)
	}
	for _, c := range []struct{ q, want float64 }{{0.5, 0.005}, {0.25, 0.0025}, {0.99, 0.01}, {0.995, 0.03}} {
		if got := quantile(d, c.q); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if got := maxBound(d); got != 0.05 {
		t.Errorf("slowest within %v, want 0.05", got)
	}
	// One write beyond the last bound: the slowest is unbounded, a quantile there is the
	// highest finite bound.
	e := histogramDelta(a, scrape(60, 109, 109, 110), "townwatch_fragment_write_seconds")
	if got := maxBound(e); !math.IsInf(got, 1) {
		t.Errorf("slowest within %v, want +Inf", got)
	}
	if got := quantile(e, 1); got != 0.05 {
		t.Errorf("quantile(1) = %v, want 0.05", got)
	}
	if none := histogramDelta(a, a, "townwatch_fragment_write_seconds"); !math.IsNaN(quantile(none, 0.5)) || !math.IsNaN(maxBound(none)) {
		t.Error("quantiles of no writes are not NaN")
	}
	if m := (metrics{}); m.histogram("townwatch_fragment_write_seconds") != nil {
		t.Error("histogram of a scrape without it is not nil")
	}
}

func TestUnrecorded(t *testing.T) {
	m, err := parseMetrics(metricsText)
	if err != nil {
		t.Fatal(err)
	}
	if got := unrecorded(m); !maps.Equal(got, map[string]float64{"cam2": 25}) {
		t.Errorf("unrecorded = %v, want cam2 25", got)
	}
}

func TestParsePPid(t *testing.T) {
	if got, err := parsePPid([]byte("4242 (town (watch) x) S 17 4242 4242 0 -1\n")); err != nil || got != 17 {
		t.Errorf("parsePPid = %d, %v; want 17", got, err)
	}
	for _, bad := range []string{"", "4242 (townwatch) S", "4242 (townwatch) S x"} {
		if _, err := parsePPid([]byte(bad)); err == nil {
			t.Errorf("parsePPid(%q): no error", bad)
		}
	}
}

// A flag that does not apply to the mode chosen is refused, naming it, before anything
// is built or started.
func TestFlagsOfTheOtherModeAreRefused(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"-export-range", "30m"}, "-export-range"},
		{[]string{"-n", "1,4", "-page-warmup", "1s"}, "-page-warmup"},
		{[]string{"-profile", "cpu.pprof"}, "-profile"},
		{[]string{"-playload", "-count", "3"}, "-count"},
		{[]string{"-playload", "-mediamtx", "/usr/bin/mediamtx"}, "-mediamtx"},
		{[]string{"-playload", "-n", "4,16"}, "-n"},
	} {
		var stdout, stderr strings.Builder
		if code := run(t.Context(), tc.args, &stdout, &stderr); code != 2 || stdout.Len() != 0 ||
			!strings.HasPrefix(stderr.String(), "recbench: "+tc.flag+" ") {
			t.Errorf("recbench %s: exit %d, stdout %q, stderr %q; want 2 and an error naming %s", strings.Join(tc.args, " "), code,
				stdout.String(), stderr.String(), tc.flag)
		}
	}
}

// The export's verdict holds a range other than an hour to 60 s per hour of footage, and
// the line says so.
func TestExportTargetScalesWithTheRange(t *testing.T) {
	for _, tc := range []struct {
		rng, took time.Duration
		want      string
	}{
		{time.Hour, 59 * time.Second, "(target <= 1m0s, 1m0s per hour of footage: meets the target)"},
		{30 * time.Minute, 35 * time.Second, "(target <= 30s, 1m0s per hour of footage: MISSES the target)"},
		{30 * time.Minute, 29 * time.Second, "(target <= 30s, 1m0s per hour of footage: meets the target)"},
		{2 * time.Hour, 110 * time.Second, "(target <= 2m0s, 1m0s per hour of footage: meets the target)"},
	} {
		var b strings.Builder
		printPlayload(&b, playloadConfig{exportRange: tc.rng}, &playloadResult{exportState: "done", exportTook: tc.took,
			exportBytes: 900e6, bundleBytes: 900e6}, "HEADER")
		var line string
		for l := range strings.Lines(b.String()) {
			if strings.HasPrefix(l, "export: ") {
				line = l
			}
		}
		if !strings.HasPrefix(line, "export: "+tc.rng.String()+" of cam1") || !strings.HasSuffix(line, tc.want+"\n") {
			t.Errorf("export of %v in %v: %q, want it to end %q", tc.rng, tc.took, line, tc.want)
		}
	}
}

// The side-by-side verdict holds townwatch's peak RSS to 0.8 × MediaMTX's.
func TestSideBySideVerdict(t *testing.T) {
	for _, tc := range []struct {
		rss, refRSS uint64
		want        string
	}{
		{60 << 20, 86 << 20, "= 0.70× (target <= 0.8×: meets the target)"},
		{80 << 20, 90 << 20, "= 0.89× (target <= 0.8×: MISSES the target)"},
	} {
		r := &result{n: 16, run: 1, peakRSS: tc.rss, ref: true, refPeakRSS: tc.refRSS, cpuSec: 3.4, refCPUSec: 4.6}
		if got := sideBySide(r); !strings.Contains(got, tc.want) || !strings.Contains(got, "CPU 3.40/4.60 s = 0.74×") {
			t.Errorf("sideBySide(%d vs %d MiB) = %q, want it to contain %q and the CPU ratio", tc.rss>>20, tc.refRSS>>20, got, tc.want)
		}
	}
}
