package motion

import (
	"bytes"
	"image"
	"image/jpeg"
	"path/filepath"
	"testing"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/motion/internal/testclip"
	"github.com/townwatch/townwatch/motion/report"
)

// epoch is the wall time of the first frame of every clip fed offline.
var epoch = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)

// bundledClip is the path of a simcam clip file, the same bytes a simcam camera serves.
func bundledClip(c simcam.Clip) string {
	return filepath.Join("..", "ingest", "simcam", "clips", string(c)+".h264")
}

// testCamera is a camera with motion enabled and every motion setting at its configs
// default, analysing a sub stream; edit applies a test's changes.
func testCamera(edit func(*configs.Camera)) configs.Camera {
	cam := configs.Camera{
		ID:   "town-hall",
		Main: configs.Stream{URL: "rtsp://127.0.0.1:1/main"},
		Sub:  &configs.Stream{URL: "rtsp://127.0.0.1:1/sub"},
		Motion: configs.Motion{
			Enabled:     true,
			Analyze:     configs.DefaultAnalyze,
			FPS:         configs.DefaultMotionFPS,
			Width:       configs.DefaultMotionWidth,
			Sensitivity: configs.DefaultSensitivity,
			MinArea:     configs.DefaultMinArea,
			Cooldown:    configs.DefaultCooldown,
		},
	}
	if edit != nil {
		edit(&cam)
	}
	return cam
}

// loadLoops returns the units of an H.264 file played loops times back to back from
// epoch, as a camera looping it would send them.
func loadLoops(t testing.TB, path string, fps, loops int) []*ingest.Unit {
	t.Helper()
	var all []*ingest.Unit
	start := epoch
	for range loops {
		units, err := testclip.Load(path, ingest.CodecH264, fps, start)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, units...)
		last := units[len(units)-1]
		start = last.Wall.Add(time.Second / time.Duration(fps))
	}
	return all
}

// run is what an analyser reported over a clip.
type run struct {
	starts, ends []report.Event
	// confirmed[i] is the wall time of the frame that confirmed starts[i].
	confirmed []time.Time
	stats     report.Stats
	analysis  time.Duration       // total of what ObserveAnalysis received
	grids     []report.GridMinute // what OnGridMinute received
}

// analyse feeds units through an analyser's offline core at full speed, as Run would
// after a Hub.Wait, and ends an ongoing event at the end like Run does when its Stream
// ends. bg, if not nil, replaces the production background model.
func analyse(t testing.TB, cam configs.Camera, units []*ingest.Unit, bg func(*params) background) run {
	return analyseGaps(t, cam, units, nil, bg)
}

// analyseGaps is analyse with the units in gapBefore delivered with gap=true, as a Reader
// does after dropping units.
func analyseGaps(t testing.TB, cam configs.Camera, units []*ingest.Unit, gapBefore map[*ingest.Unit]bool, bg func(*params) background) run {
	t.Helper()
	return analyseCalling(t, cam, units, gapBefore, bg, nil)
}

// analyseCalling is analyseGaps calling before, if not nil, ahead of each unit, with the
// analyser (to reconfigure it mid-stream, as another goroutine would during Run).
func analyseCalling(t testing.TB, cam configs.Camera, units []*ingest.Unit, gapBefore map[*ingest.Unit]bool, bg func(*params) background, before func(*Analyzer, *ingest.Unit)) run {
	t.Helper()
	p, err := newParams(cam)
	if err != nil {
		t.Fatal(err)
	}
	var r run
	var now time.Time
	a := newAnalyzer(p, ingest.NewHub(), nil, Options{OnEvent: func(ev report.Event) {
		if ev.End.IsZero() {
			r.starts = append(r.starts, ev)
			r.confirmed = append(r.confirmed, now)
		} else {
			r.ends = append(r.ends, ev)
		}
	}, ObserveAnalysis: func(d time.Duration) { r.analysis += d },
		OnGridMinute: func(g report.GridMinute) { r.grids = append(r.grids, g) }})
	a.open()
	if bg != nil {
		a.det.close()
		a.det = newDetector(p, bg(p))
	}
	if err := a.startStream(units[0].Track.Codec); err != nil {
		t.Fatal(err)
	}
	for _, u := range units {
		now = u.Wall
		if before != nil {
			before(a, u)
		}
		a.process(u, gapBefore[u])
	}
	a.close()
	r.stats = a.Stats()
	return r
}

// truth is one true motion interval in footage time.
type truth struct{ start, end time.Time }

// motionTruth lists simcam.MotionIntervals over loops loops of the motion clip.
func motionTruth(loops int) []truth {
	var ts []truth
	for l := range loops {
		base := epoch.Add(time.Duration(l) * time.Minute)
		for _, iv := range simcam.MotionIntervals {
			ts = append(ts, truth{base.Add(iv.Start), base.Add(iv.End)})
		}
	}
	return ts
}

// score matches events to true intervals: an interval is found when an event starts
// within 1 s of its start; an event is false when it starts outside every interval
// (from 1 s before its start to cooldown after its end). latency holds, per found
// interval, the confirmation time minus the true start.
func score(r run, ts []truth, cooldown time.Duration) (found int, falseEvents []report.Event, latency []time.Duration) {
	for _, tr := range ts {
		for i, ev := range r.starts {
			if d := ev.Start.Sub(tr.start); d >= -time.Second && d <= time.Second {
				found++
				latency = append(latency, r.confirmed[i].Sub(tr.start))
				break
			}
		}
	}
	for _, ev := range r.starts {
		inside := false
		for _, tr := range ts {
			if !ev.Start.Before(tr.start.Add(-time.Second)) && ev.Start.Before(tr.end.Add(cooldown)) {
				inside = true
			}
		}
		if !inside {
			falseEvents = append(falseEvents, ev)
		}
	}
	return found, falseEvents, latency
}

// checkEvent asserts what every finished event must satisfy: a UUIDv7 id with its start's
// millisecond, Start < End, a box inside the picture, a JPEG snapshot of the expected size.
func checkEvent(t *testing.T, ev report.Event, camera string, snapshotSize image.Point) {
	t.Helper()
	if !uuidV7Pattern.MatchString(ev.ID) {
		t.Errorf("event id %q is not a UUIDv7", ev.ID)
	} else if ms := uuidMillis(t, ev.ID); ms != ev.Start.UnixMilli() {
		t.Errorf("event %s: id carries %d ms, start is %d ms", ev.ID, ms, ev.Start.UnixMilli())
	}
	if ev.Camera != camera {
		t.Errorf("event %s: camera %q, want %q", ev.ID, ev.Camera, camera)
	}
	if !ev.Start.Before(ev.End) {
		t.Errorf("event %s: start %v not before end %v", ev.ID, ev.Start, ev.End)
	}
	b := ev.Box
	if b.W <= 0 || b.H <= 0 || b.X < 0 || b.Y < 0 || b.X+b.W > 1 || b.Y+b.H > 1 {
		t.Errorf("event %s: box %+v not a non-empty rectangle inside 0..1", ev.ID, b)
	}
	if ev.Score <= 0 || ev.Score > 1 {
		t.Errorf("event %s: score %g outside (0, 1]", ev.ID, ev.Score)
	}
	img, err := jpeg.Decode(bytes.NewReader(ev.Snapshot))
	if err != nil {
		t.Errorf("event %s: snapshot (%d bytes) does not decode: %v", ev.ID, len(ev.Snapshot), err)
		return
	}
	if got := img.Bounds().Size(); got != snapshotSize {
		t.Errorf("event %s: snapshot is %v, want %v", ev.ID, got, snapshotSize)
	}
}
