package recorder

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest"
)

// fakeClock is the Writer's wall clock in these tests: it moves only when told.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

// cameraWall maps a camera's PTS to Unit.Wall the way ingest's session clock does: the
// local clock at the first unit plus the camera's time since, re-anchored when that strays
// more than 5 s from the local clock. Units from a camera with a wrong clock get the wall
// times ingest would give them.
type cameraWall struct {
	anchored  bool
	wall      time.Time
	pts       time.Duration
	tolerance time.Duration
}

func (c *cameraWall) at(pts time.Duration, now time.Time) time.Time {
	w := c.wall.Add(pts - c.pts)
	if !c.anchored || absDur(w.Sub(now)) > c.tolerance {
		c.anchored, c.wall, c.pts = true, now, pts
		return now
	}
	return w
}

// wallFeed drives a continuous-mode Writer's recording directly, unit by unit, with the
// Writer's clock under the test's control.
type wallFeed struct {
	t      *testing.T
	fx     *footage
	w      *Writer
	rc     *recording
	clock  *fakeClock
	cam    cameraWall
	video  *ingest.Track
	params *ingest.VideoParams
}

func newWallFeed(t *testing.T, clip *testClip) *wallFeed {
	t.Helper()
	fx := newFootage(t)
	w, err := NewWriter(testCamera(time.Hour), fx.st, fx.cat, ingest.NewHub(), nil, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: exportT0}
	w.now = clock.Now
	return &wallFeed{t: t, fx: fx, w: w, rc: w.newRecording(), clock: clock, cam: cameraWall{tolerance: 5 * time.Second},
		video:  &ingest.Track{Kind: ingest.KindVideo, Codec: ingest.CodecH264, ClockRate: 90000},
		params: &ingest.VideoParams{SPS: clip.sps, PPS: clip.pps, Width: clip.width, Height: clip.height}}
}

// feed hands the Writer one video unit with camera time pts, received now.
func (f *wallFeed) feed(pts time.Duration, key bool, payload [][]byte) {
	u := &ingest.Unit{Track: f.video, PTS: pts, DTS: pts, Wall: f.cam.at(pts, f.clock.t), Key: key, Payload: payload, Params: f.params}
	f.rc.received(u, false, nil)
}

// fillerNALU is an H.264 filler-data NAL unit of n bytes: it makes a frame as large as a
// busy scene's without changing what it decodes to.
func fillerNALU(n int) []byte {
	b := make([]byte, n)
	b[0] = 12 // nal_unit_type 12, filler data
	for i := 1; i < n-1; i++ {
		b[i] = 0xff
	}
	b[n-1] = 0x80 // rbsp trailing bits
	return b
}

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestWriterFlushesOnTheWallClock is issue 14's wrong-clock camera: one keyframe, then
// thousands of large P-frames whose timestamps advance one 90 kHz tick each while 25 of
// them arrive every second. The camera's timestamps say 22 ms went by; the wall clock says
// 80 s. Footage must reach the disk on the wall clock (a crash loses at most about a
// second), memory must stay bounded, and the camera must be reported as sending no
// keyframes, with the segment closed and playable.
//
// It measures the process's heap, so it does not call t.Parallel: go test runs it alone,
// before the parallel tests, whose allocations would otherwise count as its own.
func TestWriterFlushesOnTheWallClock(t *testing.T) {
	const (
		frames    = 2000 // 80 s at 25 fps
		frameSize = 64 << 10
		interval  = 40 * time.Millisecond
	)
	clip := makeClip(t, "160x90", frames, frames) // one keyframe, then P-frames only
	f := newWallFeed(t, clip)

	base := heapInUse()
	var maxHeap uint64
	arrived := make([]time.Time, 0, frames)
	var maxBehind time.Duration
	var faultAt time.Duration
	fedBeforeFault := 0
	for i := range frames {
		f.clock.t = exportT0.Add(time.Duration(i) * interval)
		arrived = append(arrived, f.clock.t)
		payload := append(slices.Clone(clip.aus[i]), fillerNALU(frameSize)) // each frame its own memory, as from ingest
		f.feed(time.Duration(i)*time.Second/90000, i == 0, payload)
		if faultAt == 0 && f.w.Stats().State == StateNoKeyframes {
			faultAt = f.clock.t.Sub(exportT0)
			fedBeforeFault = i
		}
		if seg := f.rc.seg; seg != nil {
			// The oldest frame not yet durable on disk.
			if written := int(seg.frames); written < len(arrived) {
				maxBehind = max(maxBehind, f.clock.t.Sub(arrived[written]))
			}
			if fi, err := os.Stat(filepath.Join(f.fx.dir, filepath.FromSlash(seg.path))); err != nil || fi.Size() != seg.bytes {
				t.Fatalf("frame %d: file on disk %v (err %v), segment says %d bytes synced", i, fi.Size(), err, seg.bytes)
			}
		}
		if i%200 == 199 {
			maxHeap = max(maxHeap, heapInUse()-min(base, heapInUse()))
		}
	}
	t.Logf("wall time %s, camera time %s: footage on disk at most %s behind the wall clock; heap growth at most %.1f MiB; no_keyframes after %s",
		time.Duration(frames)*interval, time.Duration(frames)*time.Second/90000, maxBehind, float64(maxHeap)/(1<<20), faultAt)
	if maxBehind > 1500*time.Millisecond {
		t.Errorf("footage reached the disk up to %s after it arrived; want at most about a second", maxBehind)
	}
	if maxHeap > 32<<20 {
		t.Errorf("heap grew by %.1f MiB while recording 64 KiB frames; want it bounded by a few fragments", float64(maxHeap)/(1<<20))
	}
	st := f.w.Stats()
	if st.State != StateNoKeyframes || !strings.Contains(st.Reason, "keyframe") {
		t.Fatalf("after %s without a keyframe the recorder is %q (%q); want %q with a reason", time.Duration(frames)*interval, st.State, st.Reason, StateNoKeyframes)
	}
	if faultAt > time.Minute+6*time.Second {
		t.Errorf("no_keyframes raised after %s; want within noKeyframeMax plus ingest's 5 s re-anchoring", faultAt)
	}
	// The segment was closed when the fault was raised: indexed, and playable to its end.
	segs := closedSegments(t, f.fx.cat)
	if len(segs) != 1 {
		t.Fatalf("%d closed segments, want 1", len(segs))
	}
	checkRecorded(t, f.fx.dir, segs[0])
	if segs[0].Frames != int64(fedBeforeFault) {
		t.Errorf("segment has %d frames; %d were received before the fault", segs[0].Frames, fedBeforeFault)
	}
	f.rc.close("test over")
}

// TestWriterNoKeyframesFollowsTheObservedGOP: a camera with a 1 s group of pictures that
// stops sending keyframes is reported after noKeyframeMin (four GOPs would be too eager),
// and once keyframes come back recording resumes in a new segment that follows a gap.
func TestWriterNoKeyframesFollowsTheObservedGOP(t *testing.T) {
	t.Parallel()
	clip := makeClip(t, "160x90", 50, 25)
	f := newWallFeed(t, clip)
	frame := func(n int, key bool) {
		pts := time.Duration(n) * time.Second / 25
		f.clock.t = exportT0.Add(pts)
		f.feed(pts, key, clip.aus[n%len(clip.aus)])
	}
	n := 0
	for ; n < 10*25; n++ { // 10 s with a keyframe every second
		frame(n, n%25 == 0)
	}
	lastKey := time.Duration(n-25) * time.Second / 25
	var faultAt time.Duration
	for ; n < 40*25; n++ { // then none for 30 s
		frame(n, false)
		if faultAt == 0 && f.w.Stats().State == StateNoKeyframes {
			faultAt = time.Duration(n)*time.Second/25 - lastKey
		}
	}
	if faultAt < noKeyframeMin || faultAt > noKeyframeMin+time.Second {
		t.Errorf("no_keyframes raised %s after the last keyframe; want noKeyframeMin (%s)", faultAt, noKeyframeMin)
	}
	if f.rc.seg != nil {
		t.Errorf("a segment is still open with no keyframe for 30 s")
	}
	for ; n < 42*25; n++ { // keyframes again
		frame(n, n%25 == 0)
	}
	if st := f.w.Stats(); st.State != StateRecording {
		t.Errorf("recorder is %q (%q) once keyframes are back; want recording", st.State, st.Reason)
	}
	f.rc.close("test over")
	segs := closedSegments(t, f.fx.cat)
	if len(segs) != 2 || !segs[1].GapBefore || f.w.Stats().Gaps != 1 {
		t.Fatalf("segments %+v, gaps %d; want the one before the fault and a new one after a counted gap", segs, f.w.Stats().Gaps)
	}
	for _, s := range segs {
		checkRecorded(t, f.fx.dir, s)
	}
}
