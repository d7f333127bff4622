package recorder

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
)

// TestWriterKeepsRecordingWhenTheCatalogFails: when every catalog write fails (here the
// catalog is closed under the Writer, as a damaged or unwritable file would make it),
// the Writer goes on writing segments to disk, counts the failures and stays in the
// recording state; the next start's Recover indexes every file with its size and SHA-256.
func TestWriterKeepsRecordingWhenTheCatalogFails(t *testing.T) {
	t.Parallel()
	rig := newRecorderRig(t)
	rig.startCamera(t)
	ctx := context.Background()
	// The Writer's own catalog, so that closing it does not touch the rig's.
	cat, err := catalog.Open(ctx, filepath.Join(rig.dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	cam := testCamera(time.Second)
	cam.Main.URL = rig.cam.URL("cam")
	w, err := NewWriter(cam, rig.storage, cat, rig.hub, nil, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, src := rig.writerAndSourceFor(t, cam)
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); w.Run(runCtx) }()
	go func() { defer wg.Done(); src.Run(runCtx) }()
	defer func() { stop(); wg.Wait() }()

	deadline := time.Now().Add(15 * time.Second)
	for w.Stats().Segments < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if err := cat.Close(); err != nil {
		t.Fatal(err)
	}
	before := w.Stats()
	// Two more segments and two more seconds of frames show that recording goes on. On the
	// camera's clock that is 4 s (2 s GOPs cut the 1 s segments); a busy machine may deliver
	// it later, so wait for it with a bound rather than look at one instant.
	var after WriterStats
	waitFor(15*time.Second, func() bool {
		after = w.Stats()
		return after.Segments >= before.Segments+2 && after.RecordedFrames >= before.RecordedFrames+50
	})
	t.Logf("before the fault %+v; after %+v", before, after)
	if after.State != StateRecording {
		t.Errorf("state %s (%s) with a failing catalog; want recording", after.State, after.Reason)
	}
	if after.Segments < before.Segments+2 || after.RecordedFrames < before.RecordedFrames+50 {
		t.Errorf("recording stopped with the catalog: %d → %d segments, %d → %d frames in 15 s", before.Segments, after.Segments, before.RecordedFrames, after.RecordedFrames)
	}
	if after.CatalogFailures == 0 {
		t.Errorf("no catalog failure counted")
	}
	stop()
	wg.Wait()

	// The next start: Recover indexes every file on disk.
	if _, err := Recover(ctx, rig.storage, rig.catalog, nil); err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{}
	if err := rig.storage.walkSegments(func(rel string, _ int64) error { files[rel] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	segs := closedSegments(t, rig.catalog)
	if len(segs) != len(files) {
		t.Errorf("%d segments indexed after recovery, %d files on disk", len(segs), len(files))
	}
	for _, s := range segs {
		if !files[s.Path] {
			t.Errorf("indexed %s has no file", s.Path)
		}
		checkRecorded(t, rig.dir, s)
	}
}
