package recorder

import (
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// motionFeed drives a motion-mode Writer's recording directly, unit by unit, on the
// test's goroutine: the trigger calls land exactly between two units, which is what the
// races between the motion goroutine and the Writer's come down to. The units are a real
// libx264 clip with the footage's wall clock at 25 fps from exportT0, so segments are real
// files that ffprobe checks.
type motionFeed struct {
	t      *testing.T
	fx     *footage
	w      *Writer
	rc     *recording
	clip   *testClip
	video  *ingest.Track
	params *ingest.VideoParams
	next   int // frames fed so far
}

// newMotionFeed makes a Writer for a camera with a gop-frame group of pictures.
func newMotionFeed(t *testing.T, gop int, preRoll, postRoll time.Duration) *motionFeed {
	t.Helper()
	fx := newFootage(t)
	clip := makeClip(t, "160x90", 4*gop, gop)
	w, err := NewWriter(motionCamera(time.Hour, preRoll, postRoll), fx.st, fx.cat, ingest.NewHub(), nil, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &motionFeed{t: t, fx: fx, w: w, rc: w.newRecording(), clip: clip,
		video:  &ingest.Track{Kind: ingest.KindVideo, Codec: ingest.CodecH264, ClockRate: 90000},
		params: &ingest.VideoParams{SPS: clip.sps, PPS: clip.pps, Width: clip.width, Height: clip.height}}
}

// at is the wall time of d into the footage.
func (f *motionFeed) at(d time.Duration) time.Time { return exportT0.Add(d) }

// until feeds the frames captured before d into the footage.
func (f *motionFeed) until(d time.Duration) {
	for ; time.Duration(f.next)*time.Second/25 < d; f.next++ {
		pts := time.Duration(f.next) * time.Second / 25
		u := &ingest.Unit{Track: f.video, PTS: pts, DTS: pts, Wall: exportT0.Add(pts), Key: f.next%f.clip.gop == 0,
			Payload: f.clip.aus[f.next%len(f.clip.aus)], Params: f.params}
		f.rc.received(u, false, nil)
	}
}

// stop ends the recording as Run does when it stops, and returns the closed segments,
// each checked as a user would.
func (f *motionFeed) stop() []catalog.Segment {
	f.t.Helper()
	f.rc.close("test over")
	segs := closedSegments(f.t, f.fx.cat)
	for _, s := range segs {
		checkRecorded(f.t, f.fx.dir, s)
	}
	return segs
}

// covered fails the test unless segs cover [from, to] without a hole.
func covered(t *testing.T, segs []catalog.Segment, from, to time.Time) {
	t.Helper()
	at := from
	for _, s := range segs {
		if s.End.Before(at) {
			continue
		}
		if s.Start.After(at) {
			break
		}
		at = s.End
	}
	if at.Before(to) {
		t.Errorf("footage [%s, %s] recorded only up to %s; segments:", from.Format("05.000"), to.Format("05.000"), at.Format("05.000"))
		for _, s := range segs {
			t.Errorf("  [%s, %s) gap before %v", s.Start.Format("05.000"), s.End.Format("05.000"), s.GapBefore)
		}
	}
}

// TestMotionLongGOPShortEvent: a camera with a 10 s group of pictures and an event of
// one second, started and ended (as the detector reports them) before the next keyframe:
// its footage from pre_roll before to post_roll after is recorded.
func TestMotionLongGOPShortEvent(t *testing.T) {
	t.Parallel()
	const s = time.Second
	for _, tc := range []struct {
		name       string
		start, end time.Duration // the event
		told       time.Duration // when both notifications arrive
		bound      int           // the pre-roll's memory bound; 0 = the default
		pre, post  time.Duration
	}{
		{name: "fits", start: 22 * s, end: 23 * s, told: 24 * s, pre: 2 * s, post: 1 * s},
		{name: "at keyframe", start: 20 * s, end: 21 * s, told: 22 * s, pre: 2 * s, post: 1 * s},
		{name: "before keyframe", start: 19 * s, end: 20 * s, told: 21 * s, pre: 2 * s, post: 1 * s},
		{name: "late", start: 15 * s, end: 16 * s, told: 19 * s, pre: 2 * s, post: 1 * s},
		// A camera without a sub stream: the detector analyses keyframes only and confirms
		// an event at its second moving keyframe, one GOP after the start it reports.
		{name: "keyframe analysis", start: 20 * s, end: 31 * s, told: 30*s + 200*time.Millisecond, pre: 5 * s, post: 1 * s},
		{name: "keyframe analysis short pre-roll", start: 20 * s, end: 31 * s, told: 30*s + 200*time.Millisecond, pre: 1 * s, post: 1 * s},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newMotionFeed(t, 250, tc.pre, tc.post)
			if tc.bound > 0 {
				f.w.preRollMax = tc.bound
				f.rc = f.w.newRecording()
			}
			f.until(tc.told)
			f.w.MotionStarted(f.at(tc.start))
			f.w.MotionEnded(f.at(tc.end))
			f.until(50 * s)
			covered(t, f.stop(), f.at(tc.start-tc.pre), f.at(tc.end+tc.post))
		})
	}
}
