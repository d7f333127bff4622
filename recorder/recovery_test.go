package recorder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
)

// recordSome records a few 2 s segments from simcam and returns them, closed.
func recordSome(t *testing.T, rig *recorderRig, d time.Duration) []catalog.Segment {
	t.Helper()
	rig.startCamera(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	w, src := rig.writerAndSource(t, 2*time.Second)
	wg.Add(2)
	go func() { defer wg.Done(); w.Run(ctx) }()
	go func() { defer wg.Done(); src.Run(ctx) }()
	time.Sleep(d)
	cancel()
	wg.Wait()
	segs, err := rig.catalog.AllSegments(context.Background())
	if err != nil || len(segs) < 2 {
		t.Fatalf("recorded %d segments (%v), want at least 2", len(segs), err)
	}
	return segs
}

func fileSHA(t *testing.T, path string) (int64, string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return int64(len(b)), hex.EncodeToString(s[:])
}

func TestRecoverReconcilesFilesAndCatalog(t *testing.T) {
	t.Parallel()
	rig := newRecorderRig(t)
	segs := recordSome(t, rig, 7*time.Second)
	ctx := context.Background()
	abs := func(rel string) string { return filepath.Join(rig.dir, filepath.FromSlash(rel)) }

	// 1. A deletion interrupted after the catalog recorded it but before the file went.
	deleted := segs[0]
	if _, err := rig.catalog.DeleteSegment(ctx, deleted.ID, "age", time.Now()); err != nil {
		t.Fatal(err)
	}
	// 2. A file the catalog never heard of (a crash between file and row, or a restore
	// from backup): it must be adopted, not ignored.
	stray := SegmentPath("cam", segs[1].Start.Add(time.Hour))
	data, err := os.ReadFile(abs(segs[1].Path))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(abs(stray)), 0o750)
	if err := os.WriteFile(abs(stray), data, 0o640); err != nil {
		t.Fatal(err)
	}
	// 3. An open row whose file never appeared, and 4. one whose file holds only the init.
	missing := catalog.Segment{Camera: "cam", Stream: "main", Start: segs[1].Start.Add(2 * time.Hour), Path: SegmentPath("cam", segs[1].Start.Add(2*time.Hour)), Codec: "H264"}
	if _, err := rig.catalog.CreateSegment(ctx, missing); err != nil {
		t.Fatal(err)
	}
	noInit := catalog.Segment{Camera: "cam", Stream: "main", Start: segs[1].Start.Add(4 * time.Hour), Path: SegmentPath("cam", segs[1].Start.Add(4*time.Hour)), Codec: "H264"}
	if _, err := rig.catalog.CreateSegment(ctx, noInit); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(abs(noInit.Path)), 0o750)
	if err := os.WriteFile(abs(noInit.Path), data[:10], 0o640); err != nil { // a torn header
		t.Fatal(err)
	}
	initOnly := catalog.Segment{Camera: "cam", Stream: "main", Start: segs[1].Start.Add(3 * time.Hour), Path: SegmentPath("cam", segs[1].Start.Add(3*time.Hour)), Codec: "H264"}
	if _, err := rig.catalog.CreateSegment(ctx, initOnly); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(abs(segs[1].Path))
	layout, err := scanSegment(f, int64(len(data)))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(abs(initOnly.Path)), 0o750)
	if err := os.WriteFile(abs(initOnly.Path), data[:layout.InitEnd], 0o640); err != nil {
		t.Fatal(err)
	}

	rep, err := Recover(ctx, rig.storage, rig.catalog, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Finished) != 1 || rep.Finished[0] != deleted.Path {
		t.Errorf("finished deletions %v, want %s", rep.Finished, deleted.Path)
	}
	if _, err := os.Stat(abs(deleted.Path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file of a recorded deletion still there: %v", err)
	}
	if len(rep.Adopted) != 1 || rep.Adopted[0] != stray {
		t.Errorf("adopted %v, want %s", rep.Adopted, stray)
	}
	got, err := rig.catalog.SegmentByPath(ctx, stray)
	if err != nil {
		t.Fatal(err)
	}
	size, sum := fileSHA(t, abs(stray))
	if got.Open || got.Bytes != size || got.SHA256 != sum || got.Frames != segs[1].Frames ||
		got.Width != 640 || got.Codec != "H264" || !got.GapBefore || got.End.Sub(got.Start) != segs[1].End.Sub(segs[1].Start) {
		t.Errorf("adopted row %+v, want it to describe the file like the original %+v", got, segs[1])
	}
	if len(rep.Dropped) != 3 {
		t.Errorf("dropped %v, want the missing, the header-less and the init-only segment", rep.Dropped)
	}
	for _, p := range []string{missing.Path, noInit.Path, initOnly.Path} {
		if _, err := rig.catalog.SegmentByPath(ctx, p); !errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("row of %s: %v, want it gone", p, err)
		}
		if d, err := rig.catalog.DeletionByPath(ctx, p); err != nil || d.Reason == "" {
			t.Errorf("deletion of %s not recorded: %+v %v", p, d, err)
		}
	}
	for _, p := range []string{noInit.Path, initOnly.Path} {
		if _, err := os.Stat(abs(p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there: %v", p, err)
		}
	}
	if len(rep.Mismatched) != 0 {
		t.Errorf("mismatched %v", rep.Mismatched)
	}
	// A second run finds nothing to do.
	again, err := Recover(ctx, rig.storage, rig.catalog, nil)
	if err != nil || len(again.Finished)+len(again.Adopted)+len(again.Dropped)+len(again.Completed)+len(again.Mismatched) != 0 {
		t.Errorf("second recovery %+v, %v; want nothing", again, err)
	}
}
