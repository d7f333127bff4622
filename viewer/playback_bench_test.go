package viewer

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder/archivetest"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// The benchmarks' archive: 16 cameras × 24 h of the 1080p25 4 Mbit/s template (GOP 2 s)
// in 60 s segments, 23 040 segments. It is built once per process, into a temporary
// directory that TestMain removes: each segment is a hard link and two catalog commits,
// about a minute on the 2-core CI machine.
const benchCameras = 16

var (
	benchDay     time.Time // the archive's day: Prague midnight, set when it is built
	benchArchive = sync.OnceValues(buildBenchArchive)
	benchDirMu   sync.Mutex
	benchDir     string
)

func buildBenchArchive() (*archive, error) {
	zone, err := time.LoadLocation("Europe/Prague")
	if err != nil {
		return nil, err
	}
	benchDay = time.Date(2026, 11, 23, 0, 0, 0, 0, zone)
	dir, err := os.MkdirTemp("", "townwatch-playback-bench-")
	if err != nil {
		return nil, err
	}
	benchDirMu.Lock()
	benchDir = dir
	benchDirMu.Unlock()
	var cams []string
	for i := 1; i <= benchCameras; i++ {
		cams = append(cams, fmt.Sprintf("cam%02d", i))
	}
	arch, took, err := buildArchive(context.Background(), dir, archivetest.Spec{Cameras: cams, From: benchDay, Duration: 24 * time.Hour})
	if err != nil {
		return nil, err
	}
	// Each benchmark opens its own handle: an open database/sql pool has a goroutine
	// the leak check at the end would count.
	arch.catalog.Close()
	arch.catalog = nil
	fmt.Fprintf(os.Stderr, "playback benchmarks: archive of %d cameras × 24 h (%d segments) built in %s\n",
		len(cams), len(cams)*len(arch.segs[cams[0]]), took.Round(time.Second))
	return arch, nil
}

// removeBenchArchive deletes the benchmarks' archive, if one was built (TestMain).
func removeBenchArchive() {
	benchDirMu.Lock()
	defer benchDirMu.Unlock()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
}

// openBenchArchive is the shared archive with a catalog handle of the benchmark's own.
func openBenchArchive(b *testing.B) *archive {
	b.Helper()
	shared, err := benchArchive()
	if err != nil {
		b.Fatal(err)
	}
	cat, err := catalog.Open(context.Background(), filepath.Join(shared.dir, "catalog.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cat.Close() })
	arch := *shared
	arch.catalog = cat
	return &arch
}

// seeksPerIteration: enough samples for a p95 from one cold page.
const seeksPerIteration = 100

// benchSeekTimeout: how long one seek's frame may take before the benchmark fails. On the
// shared 2-core machine with a load average of 20, four tiles took over 10 s now and then.
const benchSeekTimeout = time.Minute

// BenchmarkPlaybackSeek measures what the officer waits for after a click on the
// timeline: from the seek (window.townwatch.seek, what a click calls) to the first frame
// presented at the target (requestVideoFrameCallback) in the first tile, in headless
// Chromium on a cold page (fresh browser profile, no playlist loaded yet) showing 1 or 4
// cameras of the 16 × 24 h archive, paused. Each of the 100 random seeks over the day is
// followed by one inside what it buffered (0.5–3 s later), the in-buffer figure.
//
//	seek-p50-ms, seek-p95-ms   seeks to a position not buffered (they include fetching
//	                           that hour's playlist the first time)
//	inbuf-p95-ms               seeks inside the buffer
func BenchmarkPlaybackSeek(b *testing.B) {
	rig := servePlayback(b, openBenchArchive(b))
	for _, n := range []int{1, 4} {
		b.Run(fmt.Sprintf("cameras=%d", n), func(b *testing.B) { benchSeeks(b, rig, rig.arch.cameras[:n]) })
	}
}

func benchSeeks(b *testing.B, rig *playbackRig, cameras []string) {
	rnd := rand.New(rand.NewPCG(7, 7))
	var cold, inbuf []float64
	var all [][]seekTrace // per tile, over the iterations' pages
	for i := 0; i < b.N; i++ {
		p := rig.openPlayer(b, "camera="+strings.Join(cameras, ",")+"&t="+benchDay.Add(12*time.Hour).UTC().Format(time.RFC3339))
		p.startPlayback("benchmark")
		eval[bool](p, `(window.townwatch.pause(), true)`)
		first := eval[int](p, `window.townwatch.seeks.length`)
		for range seeksPerIteration {
			target := benchDay.Add(time.Duration(rnd.Int64N(int64(24*time.Hour - 10*time.Second))))
			p.seekAndWaitWithin(target, benchSeekTimeout)
			// Wait for 3 s after the target to be buffered, then seek into it.
			s := target.Sub(benchDay).Seconds()
			waitJS[bool](p, "the buffer after a seek", benchSeekTimeout, fmt.Sprintf(`(() => { const b = document.querySelector("video").buffered;
				for (let i = 0; i < b.length; i++) if (b.start(i) <= %f && b.end(i) >= %f) return true; return false; })()`, s, s+3.1),
				func(v bool) bool { return v })
			p.seekAndWaitWithin(target.Add(500*time.Millisecond+time.Duration(rnd.Int64N(int64(2500*time.Millisecond)))), benchSeekTimeout)
		}
		seeks := eval[[]struct {
			MS   float64 `json:"ms"`
			Kind string  `json:"kind"`
		}](p, fmt.Sprintf(`window.townwatch.seeks.slice(%d)`, first))
		for j, tile := range eval[[]struct {
			Traces []seekTrace `json:"traces"`
		}](p, `window.townwatch.traces()`) {
			if j >= len(all) {
				all = append(all, nil)
			}
			all[j] = append(all[j], tile.Traces...)
		}
		for _, s := range seeks {
			switch s.Kind {
			case "cold":
				cold = append(cold, s.MS)
			case "buffered":
				inbuf = append(inbuf, s.MS)
			}
		}
	}
	if len(cold) == 0 || len(inbuf) == 0 {
		b.Fatalf("measured %d cold and %d in-buffer seeks", len(cold), len(inbuf))
	}
	steps := breakdown(all)
	steps.log(b, len(cold))
	logInBuffer(b, all[0])
	if len(steps.all) > 0 {
		b.ReportMetric(percentile(steps.all, 50), "all-tiles-p50-ms")
		b.ReportMetric(percentile(steps.all, 95), "all-tiles-p95-ms")
	}
	b.ReportMetric(float64(steps.reseeks), "reseeks")
	b.ReportMetric(percentile(cold, 50), "seek-p50-ms")
	b.ReportMetric(percentile(cold, 95), "seek-p95-ms")
	b.ReportMetric(percentile(inbuf, 95), "inbuf-p95-ms")
	b.ReportMetric(float64(len(cold)), "cold-seeks")
}

// playbackAPI is an officer's logged-in handler with playback of every camera started.
func playbackAPI(tb testing.TB, rig *playbackRig) http.Handler {
	tb.Helper()
	return playbackAs(tb, rig, "straznik", rig.arch.cameras...)
}

// playbackAs is user name's logged-in handler with playback of cameras started.
func playbackAs(tb testing.TB, rig *playbackRig, name string, cameras ...string) http.Handler {
	tb.Helper()
	h := withCookie(rig.server.Handler(), login(tb, rig.server.Handler(), name))
	body := `{"cameras":["` + strings.Join(cameras, `","`) + `"],"reason":"kontrola"}`
	req := httptest.NewRequest(http.MethodPost, "/api/playback", bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		tb.Fatalf("POST /api/playback as %s: %d %s", name, rec.Code, rec.Body)
	}
	return h
}

// BenchmarkPlaybackTimeline is the player's first request: GET /api/timeline for all 16
// cameras over the whole day in 60 s buckets (in process, no network).
func BenchmarkPlaybackTimeline(b *testing.B) {
	rig := servePlayback(b, openBenchArchive(b))
	h := playbackAPI(b, rig)
	b.ResetTimer()
	url := fmt.Sprintf("/api/timeline?cameras=%s&from=%s&to=%s&bucket=60s", strings.Join(rig.arch.cameras, ","),
		benchDay.UTC().Format(time.RFC3339), benchDay.Add(24*time.Hour).UTC().Format(time.RFC3339))
	benchGET(b, h, url)
}

// BenchmarkPlaybackPlaylist is two hours of one camera's playlist (120 segments of 60
// fragments with their byte ranges): twice what the player asks for at a time.
func BenchmarkPlaybackPlaylist(b *testing.B) {
	rig := servePlayback(b, openBenchArchive(b))
	h := playbackAPI(b, rig)
	b.ResetTimer()
	url := fmt.Sprintf("/api/cameras/cam01/playlist?from=%s&to=%s",
		benchDay.Add(10*time.Hour).UTC().Format(time.RFC3339), benchDay.Add(12*time.Hour).UTC().Format(time.RFC3339))
	benchGET(b, h, url)
}

func benchGET(b *testing.B, h http.Handler, url string) {
	b.Helper()
	var size int
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
		if rec.Code != http.StatusOK {
			b.Fatalf("GET %s: %d %s", url, rec.Code, rec.Body)
		}
		size = rec.Body.Len()
	}
	b.ReportMetric(float64(size)/1024, "KiB/op")
}

// seekTrace is one tile's trace of a seek (PlaybackTile.traces in pbtile.js).
type seekTrace struct {
	Target   float64  `json:"target"`
	Kind     string   `json:"kind"`
	At       float64  `json:"at"`
	From     *float64 `json:"from"`     // the frame on screen before the seek
	Keyframe *float64 `json:"keyframe"` // the keyframe the browser decodes from
	Steps    [][]any  `json:"steps"`    // [what, ms since At]
}

// seekSteps is where the time of the cold seeks went, tile by tile: for each seek target,
// each step's time since the click (the first of the tiles' traces for that target; a
// tile that seeked again to the same target, as a drift correction does, adds that
// trace's steps). Fragment requests are named by their order in the seek (frag1 is the
// one holding the keyframe), not by segment. all is the time until every tile showed
// the target's frame; reseeks counts the traces beyond the first per tile and target.
type seekSteps struct {
	tiles   []map[string][]float64 // tile index → step → times (ms) over the seeks
	all     []float64
	reseeks int
}

func breakdown(perTile [][]seekTrace) seekSteps {
	out := seekSteps{tiles: make([]map[string][]float64, len(perTile))}
	byTarget := make([]map[float64][]seekTrace, len(perTile))
	for j, traces := range perTile {
		out.tiles[j] = map[string][]float64{}
		byTarget[j] = map[float64][]seekTrace{}
		for _, tr := range traces {
			byTarget[j][tr.Target] = append(byTarget[j][tr.Target], tr)
		}
	}
	for target, first := range byTarget[0] {
		if first[0].Kind != "cold" {
			continue
		}
		t0 := first[0].At
		last := 0.0
		framed := 0
		for j := range perTile {
			seen := map[string]bool{}
			frags := map[string]string{}
			traces := byTarget[j][target]
			out.reseeks += max(0, len(traces)-1)
			for _, tr := range traces {
				t0 = min(t0, tr.At)
			}
			for _, tr := range traces {
				for _, st := range tr.Steps {
					what, _ := st[0].(string)
					ms, _ := st[1].(float64)
					ms += tr.At - t0
					if verb, obj, ok := strings.Cut(what, " "); ok && strings.HasSuffix(obj, ":init") {
						what = verb + " init"
					} else if ok && strings.Contains(obj, ":") { // "segment:fragment"
						if frags[obj] == "" {
							frags[obj] = fmt.Sprintf("frag%d", len(frags)+1)
						}
						what = verb + " " + frags[obj]
					}
					if seen[what] {
						continue
					}
					seen[what] = true
					out.tiles[j][what] = append(out.tiles[j][what], ms)
					if what == "frame" {
						last = max(last, ms)
						framed++
					}
				}
			}
		}
		if framed == len(perTile) {
			out.all = append(out.all, last)
		}
	}
	return out
}

// log writes the steps seen in at least half of the seeks, p50 and p95 per tile, in the
// order of their median.
func (s seekSteps) log(b *testing.B, seeks int) {
	for j, steps := range s.tiles {
		var names []string
		for what, times := range steps {
			if len(times)*2 >= seeks {
				names = append(names, what)
			}
		}
		slices.SortFunc(names, func(x, y string) int { return cmp.Compare(percentile(steps[x], 50), percentile(steps[y], 50)) })
		var line strings.Builder
		for _, what := range names {
			fmt.Fprintf(&line, "  %s %.0f/%.0f", what, percentile(steps[what], 50), percentile(steps[what], 95))
		}
		b.Logf("tile %d, step p50/p95 ms since the click (%d cold seeks):%s", j+1, seeks, line.String())
	}
}

// logInBuffer writes where one tile's in-buffer seeks spent their time: the p50/p95 of
// currentTime set, 'seeked' and the frame since the click; how many seeks had the page
// fetching, appending or removing media before their frame was on screen (work that is
// not the browser decoding); and the time to the frame by the target's distance from the
// keyframe the browser decodes from (GOP 2 s: 0–2 s), split into seeks forward within
// the GOP of the frame on screen and the others.
func logInBuffer(b *testing.B, traces []seekTrace) {
	steps := map[string][]float64{}
	page := map[string]int{}
	type bucket struct{ same, other []float64 }
	var byDistance [5]bucket // by 0.5 s of distance; the last is 2 s or more
	seen := map[float64]bool{}
	n := 0
	for _, tr := range traces {
		// The first trace per target: a later one is the clock correcting a drift.
		if tr.Kind != "buffered" || seen[tr.Target] {
			continue
		}
		seen[tr.Target] = true
		frame := -1.0
		for _, st := range tr.Steps {
			if what, _ := st[0].(string); what == "frame" {
				frame, _ = st[1].(float64)
			}
		}
		if frame < 0 {
			continue
		}
		n++
		counted := map[string]bool{}
		for _, st := range tr.Steps {
			what, _ := st[0].(string)
			ms, _ := st[1].(float64)
			switch verb, _, _ := strings.Cut(what, " "); {
			case what == "time" || what == "seeked" || what == "frame":
				if !counted[what] {
					steps[what] = append(steps[what], ms)
				}
			case ms <= frame && (verb == "busy" || verb == "sent" || verb == "appended" || verb == "removed"):
				if verb != "busy" {
					what = verb
				}
				if !counted[what] {
					page[what]++
				}
			}
			counted[what] = true
		}
		if tr.Keyframe == nil {
			continue
		}
		d := tr.Target - *tr.Keyframe
		bk := &byDistance[min(len(byDistance)-1, int(d/500))]
		if tr.From != nil && *tr.From >= *tr.Keyframe && *tr.From < tr.Target {
			bk.same = append(bk.same, frame)
		} else {
			bk.other = append(bk.other, frame)
		}
	}
	var line strings.Builder
	for _, what := range []string{"time", "seeked", "frame"} {
		if len(steps[what]) > 0 {
			fmt.Fprintf(&line, "  %s %.0f/%.0f", what, percentile(steps[what], 50), percentile(steps[what], 95))
		}
	}
	b.Logf("tile 1, in-buffer seeks, step p50/p95 ms since the click (%d seeks):%s", n, line.String())
	b.Logf("tile 1, in-buffer seeks with the page at work before the frame: %v", page)
	line.Reset()
	for i, bk := range byDistance {
		if len(bk.same)+len(bk.other) == 0 {
			continue
		}
		fmt.Fprintf(&line, "  %.1f–%.1f s:", float64(i)/2, float64(i+1)/2)
		for _, g := range []struct {
			name  string
			times []float64
		}{{"forward in the GOP", bk.same}, {"other", bk.other}} {
			if len(g.times) > 0 {
				fmt.Fprintf(&line, " %s %d × %.0f/%.0f", g.name, len(g.times), percentile(g.times, 50), percentile(g.times, 95))
			}
		}
	}
	// One line: the benchmark's output keeps only its first lines.
	b.Logf("tile 1, in-buffer seeks by the target's distance from its keyframe, seeks × frame p50/p95 ms:%s", line.String())
}
