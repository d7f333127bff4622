package motion

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/townwatch/townwatch/ingest/simcam"
	// MOG2 lives in OpenCV's video module, which townwatch does not link.
	_ "github.com/townwatch/townwatch/motion/internal/videolink"
)

// mog2 is OpenCV's Gaussian-mixture background subtraction behind the detector's
// background interface, kept here only to compare it with runningAverage (the
// production model) in BenchmarkBackgroundModels.
type mog2 struct {
	history int
	varThr  float64
	sub     gocv.BackgroundSubtractorMOG2
}

func newMOG2(history int, varThr float64) *mog2 {
	return &mog2{history: history, varThr: varThr, sub: gocv.NewBackgroundSubtractorMOG2WithParams(history, varThr, false)}
}

func (m *mog2) apply(frame gocv.Mat, _ time.Duration, fg *gocv.Mat) { m.sub.Apply(frame, fg) }

// relearn starts a new model: gocv 0.31 has no Apply with a learning rate of 1.
func (m *mog2) relearn(frame gocv.Mat) {
	m.sub.Close()
	m.sub = gocv.NewBackgroundSubtractorMOG2WithParams(m.history, m.varThr, false)
	fg := gocv.NewMat()
	defer fg.Close()
	m.sub.Apply(frame, &fg)
}

// setSensitivity keeps MOG2's variance threshold: the comparison runs at one setting and
// never reconfigures.
func (m *mog2) setSensitivity(int) {}

func (m *mog2) close() { m.sub.Close() }

// BenchmarkBackgroundModels compares the background models on the bundled clips (3 loops
// of the motion clip, 3 of the static one), decoding included: share of true intervals
// found within 1 s, false events (motion clip and static clip), CPU per analysed frame
// (decoding the four frames in between included) and the analysis alone (wall time). The figures that chose runningAverage are in the package documentation.
func BenchmarkBackgroundModels(b *testing.B) {
	const loops = 3
	motionUnits := loadLoops(b, bundledClip(simcam.ClipMotion), simcam.FrameRate, loops)
	staticUnits := loadLoops(b, bundledClip(simcam.ClipStatic), simcam.FrameRate, loops)
	cam := testCamera(nil)
	models := []struct {
		name string
		new  func(*params) background
	}{
		{"running-average", func(p *params) background { return newRunningAverage(p.sensitivity, backgroundTau) }},
		{"mog2-history25", func(*params) background { return newMOG2(25, 16) }},
		{"mog2-history100", func(*params) background { return newMOG2(100, 16) }},
	}
	for _, m := range models {
		b.Run(m.name, func(b *testing.B) {
			var found, falses, frames int
			var cpu, analysis time.Duration
			for b.Loop() {
				before := cpuTime(b)
				r := analyse(b, cam, motionUnits, m.new)
				s := analyse(b, cam, staticUnits, m.new)
				cpu += cpuTime(b) - before
				f, fe, _ := score(r, motionTruth(loops), time.Duration(cam.Motion.Cooldown))
				found, falses = f, len(fe)+len(s.starts)
				analysis += r.analysis + s.analysis
				frames += int(r.stats.AnalyzedFrames + s.stats.AnalyzedFrames)
			}
			b.ReportMetric(100*float64(found)/float64(len(motionTruth(loops))), "found_%")
			b.ReportMetric(float64(falses), "false_events")
			b.ReportMetric(float64(cpu.Microseconds())/float64(frames), "cpu_µs/frame")
			b.ReportMetric(float64(analysis.Microseconds())/float64(frames), "analysis_µs/frame")
		})
	}
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(fmt.Errorf("getrusage: %w", err))
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
