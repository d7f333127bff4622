package motion

import (
	"image"
	"slices"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/motion/report"
)

// TestMotionClipGroundTruth runs the bundled motion clip three times over (3 minutes of
// footage) through decoder and detector: at least 95 % of the true motion intervals must
// produce an event starting within 1 s of the true start, and no event may start outside
// motion (and its cooldown).
func TestMotionClipGroundTruth(t *testing.T) {
	const loops = 3
	cam := testCamera(nil)
	units := loadLoops(t, bundledClip(simcam.ClipMotion), simcam.FrameRate, loops)
	r := analyse(t, cam, units, nil)
	ts := motionTruth(loops)
	found, falseEvents, latency := score(r, ts, time.Duration(cam.Motion.Cooldown))
	if found*100 < 95*len(ts) {
		t.Errorf("%d of %d true motion intervals found (want >= 95%%); events: %v", found, len(ts), summarize(r.starts))
	}
	if len(falseEvents) > 0 {
		t.Errorf("%d events outside motion: %v", len(falseEvents), summarize(falseEvents))
	}
	if len(r.ends) != len(r.starts) {
		t.Fatalf("%d events started, %d ended", len(r.starts), len(r.ends))
	}
	for _, ev := range r.ends {
		checkEvent(t, ev, cam.ID, image.Pt(640, 360))
	}
	slices.Sort(latency)
	if len(latency) > 0 {
		t.Logf("start confirmed after the true start: median %v, max %v (footage time)", latency[len(latency)/2], latency[len(latency)-1])
	}
	t.Logf("stats %+v", r.stats)
}

// summarize shows events relative to epoch, for messages.
func summarize(evs []report.Event) []string {
	var s []string
	for _, ev := range evs {
		end := "open"
		if !ev.End.IsZero() {
			end = ev.End.Sub(epoch).String()
		}
		s = append(s, ev.Start.Sub(epoch).String()+"–"+end)
	}
	return s
}

// TestGapKeepsEvent: units dropped in the middle of the first motion interval (the
// Reader resumes at the next keyframe and reports a gap) neither end the event nor start
// a second one.
func TestGapKeepsEvent(t *testing.T) {
	units := loadLoops(t, bundledClip(simcam.ClipMotion), simcam.FrameRate, 1)
	var kept []*ingest.Unit
	gaps := make(map[*ingest.Unit]bool)
	dropping := false
	for _, u := range units {
		off := u.Wall.Sub(epoch)
		if off >= 13*time.Second && off < 13500*time.Millisecond {
			dropping = true // the queue overflowed here
			continue
		}
		if dropping {
			if !u.Key {
				continue // resync at the next keyframe, 14 s
			}
			gaps[u], dropping = true, false
		}
		kept = append(kept, u)
	}
	if len(gaps) != 1 {
		t.Fatalf("want one gap, made %d", len(gaps))
	}
	r := analyseGaps(t, testCamera(nil), kept, gaps, nil)
	found, falseEvents, _ := score(r, motionTruth(1), 10*time.Second)
	if len(r.ends) != 3 || found != 3 || len(falseEvents) != 0 {
		t.Fatalf("with a 1 s gap at 13 s: events %v, want one per true interval", summarize(r.ends))
	}
	if first := r.ends[0]; first.End.Sub(epoch) < 17*time.Second {
		t.Errorf("first event ends at %v, the motion goes on until 18 s", first.End.Sub(epoch))
	}
}

// TestMainKeyframesOnly analyses only the keyframes (one every 2 s) of a camera without a
// sub stream: every true interval still raises an event, none is false, and only
// keyframes are decoded.
func TestMainKeyframesOnly(t *testing.T) {
	const loops = 3
	units := loadLoops(t, bundledClip(simcam.ClipMotion), simcam.FrameRate, loops)
	cam := testCamera(func(c *configs.Camera) { c.Sub = nil })
	r := analyse(t, cam, units, nil)
	// A keyframe every 2 s bounds how early a start can be seen.
	ts := motionTruth(loops)
	found := 0
	for _, tr := range ts {
		for _, ev := range r.starts {
			if d := ev.Start.Sub(tr.start); d >= 0 && d <= 2*time.Second {
				found++
				break
			}
		}
	}
	_, falseEvents, _ := score(r, ts, time.Duration(cam.Motion.Cooldown))
	if found != len(ts) || len(falseEvents) != 0 {
		t.Errorf("keyframes only: %d of %d intervals found within 2 s, %d false; events %v", found, len(ts), len(falseEvents), summarize(r.ends))
	}
	keyframes := 0
	for _, u := range units {
		if u.Key {
			keyframes++
		}
	}
	if r.stats.DecodedFrames != uint64(keyframes) || r.stats.AnalyzedFrames != uint64(keyframes) {
		t.Errorf("decoded %d, analysed %d frames, want the %d keyframes", r.stats.DecodedFrames, r.stats.AnalyzedFrames, keyframes)
	}
}

// TestDetectorSteadyStateAllocs: analysing still frames allocates nothing on the Go heap
// (every Mat is reused), so a camera costs no garbage collection while nothing moves.
func TestDetectorSteadyStateAllocs(t *testing.T) {
	p, err := newParams(testCamera(func(c *configs.Camera) {
		c.Motion.Zones = []configs.Zone{{Name: "gate", Points: leftHalf}}
		c.Motion.Masks = []configs.Zone{{Points: [][]float64{{0, 0}, {0.2, 0}, {0, 0.2}}}}
	}))
	if err != nil {
		t.Fatal(err)
	}
	d := newDetector(p, newRunningAverage(p.sensitivity, backgroundTau))
	defer d.close()
	frame := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(90, 0, 0, 0), 180, 320, gocv.MatTypeCV8U)
	defer frame.Close()
	at := epoch
	step := func() {
		at = at.Add(200 * time.Millisecond)
		if res, err := d.analyse(frame, at); err != nil || res.Moving {
			t.Fatalf("still frame: %+v, %v", res, err)
		}
	}
	step() // learns the background and rasterises the zones
	if n := testing.AllocsPerRun(100, step); n != 0 {
		t.Errorf("%v allocations per still frame, want 0", n)
	}
}
