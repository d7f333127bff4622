package motion

import (
	"context"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/motion/internal/cmalloc"
	"github.com/townwatch/townwatch/motion/report"
)

// analyzerCycles is how many Analyzers TestAnalyzerCyclesLeaveNothingBehind starts and
// stops.
const analyzerCycles = 100

// memory is what a leak would show in: goroutines, the live Go heap, open gocv Mats and C
// heap in use.
type memory struct {
	goroutines int
	heap       uint64
	mats       int
	c          uint64
}

func measure() memory {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mats, _ := openMats()
	return memory{goroutines: runtime.NumGoroutine(), heap: ms.HeapAlloc, mats: mats, c: cmalloc.InUse()}
}

// A camera whose motion detection is switched on and off a hundred times (each time an
// Analyzer starts on the live stream, decodes and analyses frames, and stops) leaves
// nothing behind: no goroutine, no Hub reader, no Go heap, no gocv Mat and no C heap that
// grows with the cycles. The decoder (libavcodec) and the Mats (OpenCV) live in C memory,
// which the Go heap does not see; it is measured with glibc's own count of the bytes it
// has handed out (mallinfo2, motion/internal/cmalloc) rather than the resident set, which
// moves with the Go heap and keeps what malloc holds on to after a free, so it could only
// be asserted with a bound too loose to catch a leaked Mat. Bounded by cycles, not time.
func TestAnalyzerCyclesLeaveNothingBehind(t *testing.T) {
	units := loadLoops(t, bundledClip(simcam.ClipMotion), 25, 1)[:25] // 1 s, from a keyframe
	if !units[0].Key {
		t.Fatal("the clip does not start with a keyframe")
	}
	hub := ingest.NewHub()
	st := hub.Start("town-hall", ingest.StreamSub, []*ingest.Track{units[0].Track})
	defer st.End(nil)
	readers := st.Readers()
	cam := testCamera(nil)
	var running memory // measured in the first cycle, while the analyser holds its memory
	cycle := func(i int) {
		t.Helper()
		thumbs := 0
		a, err := NewAnalyzer(cam, hub, nil, Options{OnEvent: func(report.Event) {}, OnThumbnail: func(report.Thumbnail) { thumbs++ }})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		waitUntil(t, "the analyser to attach to the stream", func() bool { return st.Readers() == readers+1 })
		// Fewer units than the analyser's queue holds: none is dropped, every one decoded.
		for _, u := range units {
			st.Publish(u)
		}
		waitUntil(t, "the analyser to decode every unit", func() bool { return a.Stats().DecodedFrames == uint64(len(units)) })
		if i == 0 {
			running = measure()
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("cycle %d: Run: %v", i, err)
		}
		if s := a.Stats(); s.AnalyzedFrames == 0 || s.DecodeErrors != 0 || thumbs == 0 {
			t.Fatalf("cycle %d: the analyser did not really work: %+v, %d thumbnails", i, s, thumbs)
		}
		if got := st.Readers(); got != readers {
			t.Fatalf("cycle %d: %d readers on the stream after the analyser stopped, want %d", i, got, readers)
		}
	}
	ignore := goleak.IgnoreCurrent()
	idle := measure()
	cycle(0) // the first one initialises what lives on (libavcodec's and OpenCV's tables)
	before := measure()
	for i := 1; i <= analyzerCycles; i++ {
		cycle(i)
	}
	after := measure()
	if err := goleak.Find(ignore); err != nil {
		t.Errorf("goroutines left after %d analysers: %v", analyzerCycles, err)
	}
	heap := int64(after.heap) - int64(before.heap)
	c := int64(after.c) - int64(before.c)
	held := int64(running.c) - int64(idle.c)
	t.Logf("%d analysers: goroutines %d → %d, Go heap %d KiB → %d KiB (%+d KiB), C heap %d KiB → %d KiB (%+d KiB; one running analyser holds %d KiB), gocv Mats %d → %d (%d while one ran)",
		analyzerCycles, before.goroutines, after.goroutines, before.heap>>10, after.heap>>10, heap>>10,
		before.c>>10, after.c>>10, c>>10, held>>10, before.mats, after.mats, running.mats)
	if _, counted := openMats(); counted {
		if running.mats <= idle.mats {
			t.Errorf("gocv counted %d Mats while an analyser ran, %d before: the count does not see them", running.mats, idle.mats)
		}
		if after.mats != before.mats {
			t.Errorf("%d gocv Mats open after %d analysers, %d before", after.mats, analyzerCycles, before.mats)
		}
	}
	// The bounds are 2 MiB, far below what the cycles would leave if each left its
	// analyser's memory behind (one running analyser holds some 4 MiB of C heap) or even
	// one grey picture at the analysis width (about 60 KiB, 6 MiB in all: leaving
	// a.gray open fails here). What is allowed is what libavcodec and OpenCV keep once, and
	// does not grow with the cycles (+0.3 MiB after 100 cycles, +0.4 MiB after 300).
	if held < 2<<20 {
		t.Errorf("one running analyser held only %d KiB of C heap: the measure does not see the decoder and the Mats", held>>10)
	}
	if heap > 2<<20 {
		t.Errorf("Go heap grew by %d KiB over %d analysers", heap>>10, analyzerCycles)
	}
	if c > 2<<20 {
		t.Errorf("C heap grew by %d KiB over %d analysers", c>>10, analyzerCycles)
	}
}

// waitUntil polls cond until it holds; a minute means the analyser is stuck.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s", what)
		}
	}
}
