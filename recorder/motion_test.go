package recorder

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// clipGOP is the keyframe interval of the bundled simcam clips.
const clipGOP = 2 * time.Second

// clockSlack absorbs the difference between the test's idea of when the clip started and
// the wall time the Source gave its first frame (loopback latency, scheduling).
const clockSlack = 500 * time.Millisecond

func motionCamera(segment, preRoll, postRoll time.Duration) configs.Camera {
	c := testCamera(segment)
	c.Record.Mode = configs.RecordMotion
	c.Record.PreRoll, c.Record.PostRoll = configs.Duration(preRoll), configs.Duration(postRoll)
	return c
}

// motionRun runs a Writer and its Source until stop, which is also a test cleanup.
type motionRun struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

func runWriter(t *testing.T, w *Writer, src *ingest.Source) *motionRun {
	ctx, cancel := context.WithCancel(context.Background())
	r := &motionRun{cancel: cancel}
	r.wg.Add(2)
	go func() { defer r.wg.Done(); w.Run(ctx) }()
	go func() { defer r.wg.Done(); src.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

// stop ends the Writer (which closes its segment) and the Source, and waits for both.
func (r *motionRun) stop() {
	r.once.Do(func() {
		r.cancel()
		r.wg.Wait()
	})
}

// leakLabel is the pprof label key noLeaks marks a test's goroutines with.
const leakLabel = "recorder-test"

// noLeaks checks, after every other cleanup of the test (camera, writer, source), that
// no goroutine the test started is still running. It gives the test's goroutine a pprof
// label naming the test; a goroutine inherits its creator's labels, so every goroutine
// the test starts, itself or through the Writer, Source and camera, carries it. The check
// looks only at goroutines with that label, so tests that call it may run in parallel
// with each other and with any other test, whose goroutines carry no such label. A test
// calls it first thing after t.Parallel, before it starts anything. The one goroutine it
// cannot see is a time.AfterFunc callback's, which the scheduler starts without labels;
// the recorder, ingest and simcam use none (context.AfterFunc's are started by the
// cancelling goroutine and carry its labels).
func noLeaks(t *testing.T) {
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels(leakLabel, t.Name())))
	t.Cleanup(func() {
		// The test's own goroutine runs this cleanup; it is not a leak.
		pprof.SetGoroutineLabels(context.Background())
		var left []string
		// Goroutines that were told to stop may take a moment to return.
		if !waitFor(5*time.Second, func() bool { left = goroutinesOf(t.Name()); return len(left) == 0 }) {
			t.Errorf("goroutines started by the test still running after it ended:\n\n%s", strings.Join(left, "\n\n"))
		}
	})
}

// goroutinesOf returns the stacks of the running goroutines that noLeaks labelled with
// test, one entry per distinct stack (as the goroutine profile groups them, with their
// count).
func goroutinesOf(test string) []string {
	var b strings.Builder
	if err := pprof.Lookup("goroutine").WriteTo(&b, 1); err != nil {
		panic(err) // a strings.Builder does not fail
	}
	// debug=1 prints one block per stack and label set, blocks separated by a blank line:
	// "<count> @ <pcs>", then "# labels: {...}" for labelled goroutines, then the frames.
	label := fmt.Sprintf("%q:%q", leakLabel, test)
	var stacks []string
	for _, block := range strings.Split(b.String(), "\n\n") {
		lines := strings.SplitN(block, "\n", 3)
		if len(lines) > 1 && strings.HasPrefix(lines[1], "# labels: {") && strings.Contains(lines[1], label) {
			stacks = append(stacks, block)
		}
	}
	return stacks
}

// sleepUntil waits for the camera's clip to reach a point: the camera sends in real time.
func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

// checkRecorded checks a closed segment as a user would: its file matches the catalog
// row (size, SHA-256, frame count), ffprobe and a full decode find no error, and it
// starts with a keyframe.
func checkRecorded(t *testing.T, dir string, s catalog.Segment) {
	t.Helper()
	if s.Open {
		t.Errorf("segment %s still open", s.Path)
		return
	}
	file := filepath.Join(dir, filepath.FromSlash(s.Path))
	if size, sum := fileSHA(t, file); size != s.Bytes || sum != s.SHA256 {
		t.Errorf("%s: catalog says %d bytes sha %s, file has %d bytes sha %s", s.Path, s.Bytes, s.SHA256, size, sum)
	}
	checkPlayable(t, file)
	if got := probeFrames(t, file); got != s.Frames {
		t.Errorf("%s: ffprobe counts %d frames, catalog %d", s.Path, got, s.Frames)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#1",
		"-show_entries", "frame=key_frame", "-of", "csv=p=0", file).Output()
	// The hugeGOP clip's frames carry side data, which csv prints as empty fields.
	if first, _, _ := strings.Cut(string(out), ","); err != nil || strings.TrimSpace(first) != "1" {
		t.Errorf("%s: first frame key_frame=%q (%v), want 1", s.Path, out, err)
	}
}

// closedSegments returns the catalog's segments, failing on an open one.
func closedSegments(t *testing.T, cat *catalog.Catalog) []catalog.Segment {
	t.Helper()
	segs, err := cat.AllSegments(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		if s.Open {
			t.Errorf("segment %s still open after the writer stopped", s.Path)
		}
	}
	return segs
}

// TestMotionWriterRecordsEventsWithPreAndPostRoll triggers a motion-mode Writer as the
// detector would (confirmed 1.5 s late, reporting the true start) and checks what an
// officer gets: one recording per event that starts at least pre_roll before the motion
// and ends at least post_roll after it (by no more than one group of pictures), plays,
// starts on a keyframe, nothing in between, and an export of the event's span.
//
// The camera sends in real time, so the test lasts as long as its events, rolls and the
// time between them. The Writer does not look at the pictures (the detector tests use the
// clip's true motion), so the events are as early and the rolls as short as the checks
// allow: the first pre-roll needs footage pre_roll plus a GOP back; post_roll is longer
// than the detector's latency plus a GOP, so that a Writer ignoring it (ending at the
// next keyframe after MotionEnded) always ends too early; and between the recordings
// there must be a hole of at least a GOP plus clockSlack on each side.
func TestMotionWriterRecordsEventsWithPreAndPostRoll(t *testing.T) {
	t.Parallel()
	noLeaks(t)
	const preRoll, postRoll, latency = 3 * time.Second, 4 * time.Second, 1500 * time.Millisecond
	rig := newRecorderRig(t)
	rig.startCamera(t)
	clipStart := time.Now() // the clip's frame 0 is due when the camera is ready
	at := func(d time.Duration) time.Time { return clipStart.Add(d) }
	w, src := rig.writerAndSourceFor(t, motionCamera(time.Minute, preRoll, postRoll))
	run := runWriter(t, w, src)

	// The first recording ends by 9 s + post_roll + a GOP = 15 s; the second starts no
	// earlier than 22 s - pre_roll - a GOP = 17 s.
	events := []simcam.Interval{{Start: 6 * time.Second, End: 9 * time.Second}, {Start: 22 * time.Second, End: 25 * time.Second}}
	for i, ev := range events {
		sleepUntil(at(ev.Start + latency))
		st := w.Stats()
		if st.State != StateWaitingMotion || st.PreRollBytes == 0 {
			t.Errorf("before event %d: state %s, pre-roll %d bytes; want %s with a pre-roll", i, st.State, st.PreRollBytes, StateWaitingMotion)
		}
		if segs := closedSegments(t, rig.catalog); len(segs) != i {
			t.Errorf("before event %d: %d segments recorded, want %d", i, len(segs), i)
		}
		w.MotionStarted(at(ev.Start))
		sleepUntil(at(ev.End + latency))
		if st := w.Stats(); st.State != StateRecording {
			t.Errorf("during event %d: state %s, want %s", i, st.State, StateRecording)
		}
		w.MotionEnded(at(ev.End))
		if !waitFor(postRoll+clipGOP+5*time.Second, func() bool { return w.Stats().State == StateWaitingMotion }) {
			t.Fatalf("after event %d: state %s, want %s", i, w.Stats().State, StateWaitingMotion)
		}
	}
	run.stop()

	segs := closedSegments(t, rig.catalog)
	if len(segs) != len(events) {
		t.Fatalf("%d segments for %d events (segment length 1 min): %+v", len(segs), len(events), segs)
	}
	for i, ev := range events {
		s := segs[i]
		checkRecorded(t, rig.dir, s)
		from, to := at(ev.Start).Add(-preRoll), at(ev.End).Add(postRoll)
		if s.Start.After(from) || s.Start.Before(from.Add(-clipGOP-clockSlack)) {
			t.Errorf("event %d: recording starts %s before the motion, want from %s to %s (pre-roll plus at most one GOP)",
				i, at(ev.Start).Sub(s.Start), preRoll, preRoll+clipGOP)
		}
		if s.End.Before(to) || s.End.After(to.Add(clipGOP+clockSlack)) {
			t.Errorf("event %d: recording ends %s after the motion, want from %s to %s (post-roll plus at most one GOP)",
				i, s.End.Sub(at(ev.End)), postRoll, postRoll+clipGOP)
		}
	}
	if !segs[1].GapBefore || !segs[1].Start.After(segs[0].End) {
		t.Errorf("the second event's segment (%s, gap before %v) does not follow a hole after the first (ends %s)",
			segs[1].Start, segs[1].GapBefore, segs[0].End)
	}
	if st := w.Stats(); st.Gaps != 0 || st.Segments != 2 || st.PreRollDrops != 0 {
		t.Errorf("writer stats %+v: want 2 segments, no gaps (the time between events is not a loss) and no pre-roll drops", st)
	}

	// The export of the first event's span is one clean clip covering it without a gap.
	fx := &footage{dir: rig.dir, st: rig.storage, cat: rig.catalog}
	from, to := at(events[0].Start).Add(-preRoll), at(events[0].End).Add(postRoll)
	res, clip, err := fx.export(t, "cam", from, to)
	if err != nil {
		t.Fatal(err)
	}
	validateClip(t, clip)
	if res.Start.After(from) || res.End.Before(to) || len(res.Gaps) != 0 {
		t.Errorf("export of [%s, %s): clip [%s, %s), gaps %v; want the whole span without a gap", from, to, res.Start, res.End, res.Gaps)
	}
	// Over both events, the hole between them is a hole in the clip.
	res, clip, err = fx.export(t, "cam", segs[0].Start, segs[1].End)
	if err != nil {
		t.Fatal(err)
	}
	validateClip(t, clip)
	if len(res.Gaps) != 1 || !res.Gaps[0].From.Equal(segs[0].End) || !res.Gaps[0].To.Equal(segs[1].Start) {
		t.Errorf("export over both events: gaps %v, want the one between %s and %s", res.Gaps, segs[0].End, segs[1].Start)
	}
}

// TestMotionWriterMergesOverlappingEvents: events that overlap, and one that starts
// during another's post-roll, make one recording without a hole; record.segment still
// cuts it; after the last post-roll nothing more is recorded.
func TestMotionWriterMergesOverlappingEvents(t *testing.T) {
	t.Parallel()
	noLeaks(t)
	const preRoll, postRoll, segment = 2 * time.Second, 2 * time.Second, 4 * time.Second
	rig := newRecorderRig(t)
	rig.startCamera(t)
	clipStart := time.Now()
	at := func(d time.Duration) time.Time { return clipStart.Add(d) }
	w, src := rig.writerAndSourceFor(t, motionCamera(segment, preRoll, postRoll))
	run := runWriter(t, w, src)

	const s = time.Second
	steps := []struct {
		when  time.Duration // on the clip's clock
		start bool
		t     time.Duration // the event time reported
	}{
		{6500 * time.Millisecond, true, 6 * s},    // A starts
		{7500 * time.Millisecond, true, 7 * s},    // B starts while A goes on
		{8500 * time.Millisecond, false, 8 * s},   // A ends; B goes on
		{10500 * time.Millisecond, false, 10 * s}, // B ends: post-roll until 12 s
		{11500 * time.Millisecond, true, 11 * s},  // C starts during B's post-roll
		{16500 * time.Millisecond, false, 16 * s}, // C ends: post-roll until 18 s
	}
	for _, st := range steps {
		sleepUntil(at(st.when))
		if st.start {
			w.MotionStarted(at(st.t))
		} else {
			w.MotionEnded(at(st.t))
		}
	}
	if !waitFor(postRoll+clipGOP+5*time.Second, func() bool { return w.Stats().State == StateWaitingMotion }) {
		t.Fatalf("after the last event: state %s, want %s", w.Stats().State, StateWaitingMotion)
	}
	recorded := closedSegments(t, rig.catalog)
	sleepUntil(at(24 * s)) // three more GOPs: none may be recorded
	run.stop()

	segs := closedSegments(t, rig.catalog)
	if len(segs) != len(recorded) {
		t.Errorf("%d segments after the last post-roll ended, %d when it ended", len(segs), len(recorded))
	}
	// Footage from 4 s (6 s - pre-roll) to 18 s (16 s + post-roll) in 4 s segments.
	if len(segs) < 3 {
		t.Fatalf("%d segments for 14 s of footage in 4 s segments: %+v", len(segs), segs)
	}
	for i, sg := range segs {
		checkRecorded(t, rig.dir, sg)
		if i == 0 {
			continue
		}
		if d := sg.Start.Sub(segs[i-1].End); d < -40*time.Millisecond || d > 40*time.Millisecond || sg.GapBefore {
			t.Errorf("segment %d starts %v after the previous one ends (gap before %v): the merged events must be one recording", i, d, sg.GapBefore)
		}
		if d := segs[i-1].End.Sub(segs[i-1].Start); d < segment || d >= segment+clipGOP {
			t.Errorf("segment %d is %v long; record.segment is %v and the GOP %v", i-1, d, segment, clipGOP)
		}
	}
	first, last := segs[0], segs[len(segs)-1]
	if from := at(6 * s).Add(-preRoll); first.Start.After(from) || first.Start.Before(from.Add(-clipGOP-clockSlack)) {
		t.Errorf("recording starts at %s, want within one GOP before %s", first.Start, from)
	}
	if to := at(16 * s).Add(postRoll); last.End.Before(to) || last.End.After(to.Add(clipGOP+clockSlack)) {
		t.Errorf("recording ends at %s, want within one GOP after %s", last.End, to)
	}
	if st := w.Stats(); st.Gaps != 0 {
		t.Errorf("writer stats %+v: want no gaps", st)
	}
}

// TestMotionWriterPreRollMemoryIsBounded: a camera whose group of pictures (one IDR in 4 s
// of noise, about 2 MB) is larger than the pre-roll's memory bound never makes the
// pre-roll hold more than the bound; the drops are counted, and an event is still
// recorded, from a keyframe, playable.
func TestMotionWriterPreRollMemoryIsBounded(t *testing.T) {
	t.Parallel()
	noLeaks(t)
	const bound = 512 << 10 // about 1 s of the clip; a GOP is about 2 MB
	dir := t.TempDir()
	cam, err := simcam.New(simcam.Config{Listen: "127.0.0.1:0", Cameras: []simcam.CameraSpec{{Path: "cam", File: noisyClip(t, 1000)}}})
	if err != nil {
		t.Fatal(err)
	}
	st, cat := openStore(t, dir)
	rig := &recorderRig{cam: cam, hub: ingest.NewHub(), storage: st, catalog: cat, dir: dir}
	rig.startCamera(t)
	w, src := rig.writerAndSourceFor(t, motionCamera(time.Minute, 5*time.Second, 5*time.Second))
	w.preRollMax = bound
	run := runWriter(t, w, src)

	var peak uint64
	if !waitFor(20*time.Second, func() bool {
		s := w.Stats()
		peak = max(peak, s.PreRollBytes)
		return s.PreRollDrops >= 2
	}) {
		t.Fatalf("no pre-roll drops counted with a 2 MB GOP and a %d byte bound: %+v", bound, w.Stats())
	}
	if peak > bound {
		t.Errorf("the pre-roll held %d bytes, over its bound of %d", peak, bound)
	}
	w.MotionStarted(time.Now())
	w.MotionEnded(time.Now())
	// The post-roll (5 s) outlasts one GOP (4 s): the event is recorded from a keyframe.
	if !waitFor(20*time.Second, func() bool { return w.Stats().Segments == 1 && w.Stats().State == StateWaitingMotion }) {
		t.Fatalf("event not recorded: %+v", w.Stats())
	}
	run.stop()
	segs := closedSegments(t, rig.catalog)
	if len(segs) != 1 {
		t.Fatalf("%d segments, want 1", len(segs))
	}
	checkRecorded(t, rig.dir, segs[0])
}

// TestRecoverCompletesATornMotionSegment: a motion-mode segment (pre-roll written, event
// going on) is crash-safe like any other.
func TestRecoverCompletesATornMotionSegment(t *testing.T) {
	t.Parallel()
	noLeaks(t)
	rig := newRecorderRig(t)
	rig.startCamera(t)
	w, src := rig.writerAndSourceFor(t, motionCamera(time.Minute, 2*time.Second, 2*time.Second))
	checkTornSegmentRecovers(t, rig, w, src, func() {
		if !waitFor(15*time.Second, func() bool { return w.Stats().PreRollBytes > 0 }) {
			t.Errorf("no pre-roll buffered: %+v", w.Stats())
		}
		w.MotionStarted(time.Now().Add(-time.Second))
	})
}

func TestNewWriterRejectsNegativeRolls(t *testing.T) {
	st, cat := openStore(t, t.TempDir())
	cam := motionCamera(time.Minute, -time.Second, 0)
	_, err := NewWriter(cam, st, cat, ingest.NewHub(), nil, WriterOptions{})
	if want := "cameras[cam].record: pre_roll -1s and post_roll 0s must not be negative"; err == nil || err.Error() != want {
		t.Errorf("NewWriter with pre_roll -1s: %v, want %q", err, want)
	}
}

// TestPreRollKeepsWholeGOPsCoveringTheWindow checks the buffer's rules on synthetic
// units: it starts at a keyframe, keeps the GOP before the newest keyframe at or before
// window back and everything after, and never holds more than its byte bound.
func TestPreRollKeepsWholeGOPsCoveringTheWindow(t *testing.T) {
	video := &ingest.Track{Kind: ingest.KindVideo, Codec: ingest.CodecH264}
	audio := &ingest.Track{Kind: ingest.KindAudio, Codec: ingest.CodecAAC}
	t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	frame := func(i int, key bool, size int) *ingest.Unit {
		d := time.Duration(i) * time.Second / 25
		return &ingest.Unit{Track: video, PTS: d, DTS: d, Wall: t0.Add(d), Key: key, Payload: [][]byte{make([]byte, size)}}
	}
	check := func(p *preRoll, when string) {
		t.Helper()
		n := 0
		for _, u := range p.units {
			n += u.Size()
		}
		if n != p.bytes || p.bytes > p.max {
			t.Fatalf("%s: %d bytes held, %d counted, bound %d", when, n, p.bytes, p.max)
		}
		if len(p.units) > 0 && (!p.units[0].Key || p.units[0].Track != video || len(p.keys) == 0 || p.keys[0] != 0) {
			t.Fatalf("%s: the buffer does not start at a video keyframe", when)
		}
	}

	p := &preRoll{window: 3 * time.Second, max: 1 << 20}
	p.add(&ingest.Unit{Track: audio, Wall: t0, Key: true, Payload: [][]byte{{1}}})
	p.add(frame(0, false, 100))
	if len(p.units) != 0 {
		t.Fatalf("kept %d units before the first keyframe", len(p.units))
	}
	// 10 s in 1 s GOPs (25 frames), audio between the frames.
	for i := 1; i <= 250; i++ {
		p.add(frame(i, i%25 == 0, 100))
		p.add(&ingest.Unit{Track: audio, Wall: t0.Add(time.Duration(i) * time.Second / 25), Key: true, Payload: [][]byte{{1, 2}}})
		check(p, "steady")
	}
	// The newest frame is at 10 s: the window needs 7 s, whose keyframe is frame 175,
	// and one GOP more (the detector's latency on keyframes).
	if got := p.units[0].Wall.Sub(t0); got != 6*time.Second {
		t.Errorf("buffer starts at %v, want the keyframe at 6s", got)
	}
	if got := p.since(t0.Add(8500 * time.Millisecond)); got[0].Wall.Sub(t0) != 8*time.Second || !got[0].Key {
		t.Errorf("since 8.5s starts at %v, want the keyframe at 8s", got[0].Wall.Sub(t0))
	}
	if got := p.since(t0); got[0] != p.units[0] {
		t.Errorf("since a time before the buffer does not start at its oldest keyframe")
	}

	// High bitrate: the bound (30 frames) bites before the window (3 s, 75 frames).
	p = &preRoll{window: 3 * time.Second, max: 30 * 100}
	drops := 0
	for i := 0; i < 250; i++ {
		_, d := p.add(frame(i, i%25 == 0, 100))
		drops += d
		check(p, "high bitrate")
	}
	if drops == 0 {
		t.Error("no drops counted although the window needs more than the bound")
	}

	// A GOP larger than the bound: the buffer empties and waits for the next keyframe.
	p = &preRoll{window: 3 * time.Second, max: 30 * 100}
	for i := 0; i < 100; i++ {
		_, d := p.add(frame(i, i == 0, 100))
		check(p, "huge GOP")
		if i == 30 && (d != 1 || len(p.units) != 0) {
			t.Fatalf("frame 30 overflows the bound: %d drops, %d units kept; want 1 and none", d, len(p.units))
		}
	}
	if len(p.units) != 0 {
		t.Errorf("%d units kept after an overflow without a new keyframe", len(p.units))
	}
	p.add(frame(100, true, 100))
	if len(p.units) != 1 {
		t.Errorf("the next keyframe does not restart the buffer")
	}
}

// BenchmarkPreRollAdd is the cost per unit of a motion-mode Writer waiting for motion:
// a 25 fps camera with 2 s GOPs of 20 kB frames, the default pre-roll window.
func BenchmarkPreRollAdd(b *testing.B) {
	video := &ingest.Track{Kind: ingest.KindVideo, Codec: ingest.CodecH264}
	t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	const n = 1000 // 40 s of units, reused in a loop with advancing wall times
	payload := [][]byte{make([]byte, 20<<10)}
	p := &preRoll{window: configs.DefaultPreRoll.Std() + detectionMargin, max: preRollMaxBytes}
	units := make([]ingest.Unit, n)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		d := time.Duration(i) * time.Second / 25
		u := &units[i%n]
		*u = ingest.Unit{Track: video, DTS: d, PTS: d, Wall: t0.Add(d), Key: i%50 == 0, Payload: payload}
		p.add(u)
	}
	b.ReportMetric(float64(p.bytes)/(1<<20), "MiB_held")
}
