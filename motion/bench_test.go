package motion

import (
	"slices"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/motion/internal/testclip"
)

// benchCPU feeds units through an analyser b.N times and reports the CPU time (user +
// system, the whole process) per second of footage as cpu_%_of_core: the share of one
// core a live camera of this kind costs. Targets (issue 5): sub stream <= 2 %, main
// keyframes <= 0.5 %.
func benchCPU(b *testing.B, cam configs.Camera, units []*ingest.Unit) {
	footage := units[len(units)-1].Wall.Sub(units[0].Wall) + units[1].Wall.Sub(units[0].Wall)
	var cpu time.Duration
	var frames uint64
	for b.Loop() {
		before := cpuTime(b)
		r := analyse(b, cam, units, nil)
		cpu += cpuTime(b) - before
		frames += r.stats.AnalyzedFrames
	}
	b.ReportMetric(100*cpu.Seconds()/(footage.Seconds()*float64(b.N)), "cpu_%_of_core")
	b.ReportMetric(float64(frames)/float64(b.N)/footage.Seconds(), "analysed_fps")
}

// BenchmarkAnalyzeSub: a 640×360 15 fps sub stream (the motion clip re-encoded, 60 s)
// decoded fully and analysed at 5 fps.
func BenchmarkAnalyzeSub(b *testing.B) {
	clip := testclip.Make(b, "-i", bundledClip(simcam.ClipMotion), "-r", "15", "-c:v", "libx264", "-preset", "veryfast",
		"-profile:v", "main", "-b:v", "400k", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-bf", "0", "-f", "h264")
	benchCPU(b, testCamera(nil), loadLoops(b, clip, 15, 1))
}

// BenchmarkAnalyzeMainKeyframes: a 1080p 4 Mbit/s main stream with a keyframe every 2 s
// (the motion clip scaled up, 60 s), keyframes only.
func BenchmarkAnalyzeMainKeyframes(b *testing.B) {
	clip := testclip.Make(b, "-i", bundledClip(simcam.ClipMotion), "-vf", "scale=1920:1080", "-c:v", "libx264", "-preset", "veryfast",
		"-profile:v", "high", "-b:v", "4M", "-maxrate", "4M", "-bufsize", "8M",
		"-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-bf", "0", "-f", "h264")
	benchCPU(b, testCamera(func(c *configs.Camera) { c.Sub = nil }), loadLoops(b, clip, 25, 1))
}

// BenchmarkEventStartLatency reports, over three loops of the motion clip, how long after
// the true start of motion (ground truth) each event was confirmed, in footage time: the
// delay before OnEvent reports a start. The event's Start itself is the first moving frame.
func BenchmarkEventStartLatency(b *testing.B) {
	const loops = 3
	units := loadLoops(b, bundledClip(simcam.ClipMotion), simcam.FrameRate, loops)
	cam := testCamera(nil)
	var latency []time.Duration
	for b.Loop() {
		_, _, latency = score(analyse(b, cam, units, nil), motionTruth(loops), time.Duration(cam.Motion.Cooldown))
	}
	if len(latency) == 0 {
		b.Fatal("no event found")
	}
	slices.Sort(latency)
	b.ReportMetric(float64(latency[len(latency)/2].Milliseconds()), "median_ms")
	b.ReportMetric(float64(latency[len(latency)-1].Milliseconds()), "max_ms")
}

// BenchmarkDetectorFrame is the detector's own cost per analysed frame (no decoding, no
// events): 320×180 frames of a still scene with sensor noise, as the default settings
// see them. It isolates what a change to the detector costs from the decoding that
// dominates BenchmarkAnalyzeSub; cpu_µs/frame is CPU time (the process's), steadier than
// ns/op on a shared machine.
func BenchmarkDetectorFrame(b *testing.B) {
	p, err := newParams(testCamera(nil))
	if err != nil {
		b.Fatal(err)
	}
	d := newDetector(p, newRunningAverage(p.sensitivity, backgroundTau))
	defer d.close()
	var frames [4]gocv.Mat
	for i := range frames {
		frames[i] = gocv.NewMatWithSize(180, 320, gocv.MatTypeCV8U)
		defer frames[i].Close()
		gocv.RandN(&frames[i], gocv.NewScalar(110, 0, 0, 0), gocv.NewScalar(4, 0, 0, 0))
	}
	at := epoch
	before := cpuTime(b)
	for i := 0; b.Loop(); i++ {
		at = at.Add(200 * time.Millisecond)
		if res, err := d.analyse(frames[i%len(frames)], at); err != nil || res.Moving {
			b.Fatalf("still frame: %+v, %v", res, err)
		}
	}
	b.ReportMetric(float64((cpuTime(b)-before).Microseconds())/float64(b.N), "cpu_µs/frame")
}
