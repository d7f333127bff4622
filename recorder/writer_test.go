package recorder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// checkPlayable fails the test unless ffprobe and a full ffmpeg decode of path report no
// error at all: that is what "the recording plays" means for a court or an officer.
func checkPlayable(t *testing.T, path string) {
	t.Helper()
	for _, args := range [][]string{
		{"ffprobe", "-v", "error", path},
		{"ffmpeg", "-nostdin", "-v", "error", "-i", path, "-f", "null", "-"},
	} {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("%s on %s: %v\n%s", args[0], filepath.Base(path), err, out)
		}
	}
}

// probeFrames counts the video frames ffprobe finds in path.
func probeFrames(t *testing.T, path string) int64 {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatalf("ffprobe frame count %q: %v", out, err)
	}
	return n
}

// recorderRig is a camera (simcam), its ingest Source, a catalog and storage in a temp dir.
type recorderRig struct {
	cam     *simcam.Server
	hub     *ingest.Hub
	source  *ingest.Source
	storage *Storage
	catalog *catalog.Catalog
	dir     string
}

func newRecorderRig(t *testing.T) *recorderRig {
	t.Helper()
	dir := t.TempDir()
	cam, err := simcam.New(simcam.Config{Listen: "127.0.0.1:0", Cameras: []simcam.CameraSpec{{Path: "cam", Clip: simcam.ClipMotion}}})
	if err != nil {
		t.Fatal(err)
	}
	st, cat := openStore(t, dir)
	return &recorderRig{cam: cam, hub: ingest.NewHub(), storage: st, catalog: cat, dir: dir}
}

// startCamera runs the rig's simulated camera until the test ends.
func (r *recorderRig) startCamera(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.cam.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-r.cam.Ready()
}

// writerAndSource builds a Writer recording the rig's camera in segments of the given
// length, and the Source that feeds it.
func (r *recorderRig) writerAndSource(t *testing.T, segment time.Duration) (*Writer, *ingest.Source) {
	t.Helper()
	return r.writerAndSourceFor(t, testCamera(segment))
}

// writerAndSourceFor builds a Writer recording the rig's camera with cam's record
// settings, and the Source that feeds it.
func (r *recorderRig) writerAndSourceFor(t *testing.T, cam configs.Camera) (*Writer, *ingest.Source) {
	t.Helper()
	cam.Main.URL = r.cam.URL("cam")
	w, err := NewWriter(cam, r.storage, r.catalog, r.hub, nil, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	src, err := ingest.NewSource("cam", ingest.StreamMain, cam.Main, r.hub, nil)
	if err != nil {
		t.Fatal(err)
	}
	return w, src
}

func testCamera(segment time.Duration) configs.Camera {
	return configs.Camera{ID: "cam", Name: "cam", Main: configs.Stream{Transport: configs.TransportTCP, StallTimeout: configs.Duration(5 * time.Second)},
		Record: configs.Record{Mode: configs.RecordContinuous, Retention: configs.Duration(24 * time.Hour), Segment: configs.Duration(segment)}}
}

// TestWriterRecordsEveryFrameIntoPlayableSegments is the recorder's promise: with a camera
// sending continuously, every frame sent is in a segment, every segment plays, segments
// follow each other without gap or overlap, and every catalog row matches its file.
func TestWriterRecordsEveryFrameIntoPlayableSegments(t *testing.T) {
	t.Parallel()
	rig := newRecorderRig(t)
	rig.startCamera(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	w, src := rig.writerAndSource(t, 2*time.Second)
	// A reference consumer that counts what the camera delivered, attached like the
	// recorder: both join the stream before its first unit.
	sent := make(chan int64, 1)
	srcCtx, stopSource := context.WithCancel(ctx)
	writerCtx, stopWriter := context.WithCancel(ctx)
	wg.Add(3)
	go func() { defer wg.Done(); w.Run(writerCtx) }()
	go func() {
		defer wg.Done()
		st, err := rig.hub.Wait(ctx, "cam", ingest.StreamMain)
		if err != nil {
			sent <- -1
			return
		}
		r := st.NewReader("reference", 100000)
		defer r.Close()
		var n int64
		for {
			u, _, err := r.Read(ctx)
			if err != nil {
				sent <- n
				return
			}
			if u.Track.Kind == ingest.KindVideo {
				n++
			}
		}
	}()
	go func() { defer wg.Done(); src.Run(srcCtx) }()

	time.Sleep(10 * time.Second)
	// Playback reads the open segment's fragments from memory: they must be the file's.
	// Asked at one instant, the segment may be new with no fragment yet (a fragment is a
	// second; on a busy machine the new segment's first can take longer), so the test
	// waits up to a segment's length for one that has fragments.
	var open OpenSegment
	var ok bool
	waitFor(2*time.Second, func() bool {
		open, ok = w.OpenSegment()
		return ok && len(open.Fragments) > 0
	})
	if !ok || len(open.Fragments) == 0 {
		t.Errorf("no open segment with fragments published while recording: %+v, %v", open, ok)
	} else {
		row, err := rig.catalog.Segment(ctx, open.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkFragmentIndex(t, rig.dir, row.Path, open.Fragments, true)
	}
	stopSource() // the stream ends: the writer drains its queue and closes the segment
	want := <-sent
	deadline := time.Now().Add(10 * time.Second)
	for w.Stats().RecordedFrames < uint64(want) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	for w.Stats().State != StateWaiting && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	stopWriter()

	segs, err := rig.catalog.AllSegments(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want < 200 {
		t.Fatalf("the camera delivered only %d frames in 10 s", want)
	}
	if len(segs) < 3 {
		t.Fatalf("%d segments for 10 s of 2 s segments", len(segs))
	}
	var frames int64
	for i, s := range segs {
		checkRecorded(t, rig.dir, s)
		if s.Codec != "H264" || s.Width != 640 || s.Height != 360 || !strings.HasPrefix(s.MIMECodecs, "avc1.") || len(s.MIMECodecs) != 11 {
			t.Errorf("%s: codec %s (%q) %dx%d", s.Path, s.Codec, s.MIMECodecs, s.Width, s.Height)
		}
		frames += s.Frames
		idx, err := rig.catalog.Fragments(ctx, []int64{s.ID})
		if err != nil {
			t.Fatal(err)
		}
		checkFragmentIndex(t, rig.dir, s.Path, idx[s.ID], false)
		// The hash chain: each segment names its predecessor's digest.
		if want := ""; i > 0 {
			want = segs[i-1].SHA256
			if !s.Chained || s.PrevSHA256 != want {
				t.Errorf("segment %d: chain link %q (chained %v), want the previous segment's SHA-256 %s", i, s.PrevSHA256, s.Chained, want)
			}
		} else if !s.Chained || s.PrevSHA256 != "" {
			t.Errorf("first segment: chain link %q (chained %v), want empty and chained", s.PrevSHA256, s.Chained)
		}
		if i > 0 {
			// Continuous footage: the next segment starts where the last ended, within one
			// frame interval (40 ms at 25 fps).
			if d := s.Start.Sub(segs[i-1].End); d < -40*time.Millisecond || d > 40*time.Millisecond {
				t.Errorf("segment %d starts %v after the previous one ends", i, d)
			}
			if s.GapBefore {
				t.Errorf("segment %d is marked as following a gap in continuous footage", i)
			}
		}
	}
	if frames != want {
		t.Errorf("recorded %d frames, the camera sent %d", frames, want)
	}
	if st := w.Stats(); st.RecordedFrames != uint64(want) || st.Gaps != 0 {
		t.Errorf("writer stats %+v, want %d frames and no gaps", st, want)
	}
	cancel()
	wg.Wait()
}

// checkFragmentIndex compares a fragment index with the segment file's own fragments. An
// open segment's published index may lag the file by the fragment being written.
func checkFragmentIndex(t *testing.T, dir, rel string, idx []catalog.Fragment, open bool) {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	layout, err := scanSegment(f, info.Size())
	if err != nil {
		t.Fatal(err)
	}
	_, _, fromFile, err := segmentDuration(f, layout)
	if err != nil {
		t.Fatal(err)
	}
	if open && len(idx) < len(fromFile) {
		fromFile = fromFile[:len(idx)]
	}
	if !reflect.DeepEqual(idx, fromFile) {
		t.Fatalf("%s: fragment index\n%+v\nthe file has\n%+v", rel, idx, fromFile)
	}
	keyed := 0
	for _, fr := range idx {
		if fr.Keyframe >= 0 {
			keyed++
		}
	}
	if len(idx) == 0 || idx[0].Keyframe != 0 {
		t.Errorf("%s: %d fragments (%d with a keyframe), the first not starting with one: a segment starts at a keyframe", rel, len(idx), keyed)
	}
}

// TestRecoverCompletesATornSegment simulates a crash mid-fragment: the open row is closed
// at the last complete fragment, and the file plays.
func TestRecoverCompletesATornSegment(t *testing.T) {
	t.Parallel()
	rig := newRecorderRig(t)
	rig.startCamera(t)
	w, src := rig.writerAndSource(t, time.Minute)
	checkTornSegmentRecovers(t, rig, w, src, func() {})
}

// checkTornSegmentRecovers runs w and src, calls started, lets w record 100 frames into
// one open segment, then leaves that segment as a crash mid-fragment would and checks
// that Recover closes it at its last complete fragment and that it plays.
func checkTornSegmentRecovers(t *testing.T, rig *recorderRig, w *Writer, src *ingest.Source, started func()) {
	t.Helper()
	ctx := context.Background()
	runCtx, stop := context.WithCancel(ctx)
	var running sync.WaitGroup
	running.Add(2)
	go func() { defer running.Done(); w.Run(runCtx) }()
	go func() { defer running.Done(); src.Run(runCtx) }()
	started()
	deadline := time.Now().Add(15 * time.Second)
	for w.Stats().RecordedFrames < 100 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	open, err := rig.catalog.OpenSegments(ctx)
	if err != nil || len(open) != 1 {
		t.Fatalf("open segments %v, %v", open, err)
	}
	// Copy the live file as a crash would leave it, plus half a fragment of garbage.
	path := filepath.Join(rig.dir, filepath.FromSlash(open[0].Path))
	snapshot, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	running.Wait()
	torn := append(snapshot, bytes.Repeat([]byte{0, 0, 0x20, 0, 'm', 'o', 'o', 'f'}, 100)...)
	if err := os.WriteFile(path, torn, 0o640); err != nil {
		t.Fatal(err)
	}
	// The writer closed the row when it stopped; a crashed one never would. Put the row
	// back the way a crash leaves it: open, as created.
	seg, err := rig.catalog.SegmentByPath(ctx, open[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rig.catalog.DeleteSegment(ctx, seg.ID, "test: simulate crash", time.Now()); err != nil {
		t.Fatal(err)
	}
	seg.ID, seg.Open, seg.End, seg.Bytes, seg.Frames, seg.SHA256 = 0, true, seg.Start, 0, 0, ""
	if _, err := rig.catalog.CreateSegment(ctx, seg); err != nil {
		t.Fatal(err)
	}
	rep, err := Recover(ctx, rig.storage, rig.catalog, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Completed) != 1 {
		t.Fatalf("recovery report %+v, want one completed segment", rep)
	}
	got, err := rig.catalog.SegmentByPath(ctx, open[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	sum := sha256.Sum256(data)
	if got.Open || got.Bytes != int64(len(data)) || got.SHA256 != hex.EncodeToString(sum[:]) || got.Frames < 50 {
		t.Fatalf("recovered row %+v does not match the file (%d bytes)", got, len(data))
	}
	if int64(len(data)) > int64(len(snapshot)) {
		t.Fatalf("torn tail not cut: %d bytes, snapshot %d", len(data), len(snapshot))
	}
	// Playback finds the recovered segment's fragments in the catalog like any other's.
	idx, err := rig.catalog.Fragments(ctx, []int64{got.ID})
	if err != nil {
		t.Fatal(err)
	}
	checkFragmentIndex(t, rig.dir, got.Path, idx[got.ID], false)
	checkPlayable(t, path)
}
