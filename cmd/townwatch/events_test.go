package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/townwatch/townwatch/motion/report"
	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// An event flows from the detector into the catalog and the snapshot folder: inserted on
// its start with its picture, completed on its end. An end that brings no new picture
// keeps the start's, and an end whose start was never stored is stored whole.
func TestEventSinkStoresEventsAndKeepsTheirSnapshot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, err := recorder.OpenStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	cat, err := catalog.Open(ctx, filepath.Join(dir, catalogFile))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	sink := &eventSink{camera: "namesti", storage: st, catalog: cat, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		writes: context.Background}

	t0 := time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC)
	start := report.Event{ID: "0192f5c4-0000-7000-8000-000000000001", Camera: "namesti", Start: t0, Score: 0.1,
		Zones: []string{"vchod"}, Snapshot: []byte("jpeg at the start")}
	sink.onEvent(start)
	end := start
	end.End, end.Score, end.Snapshot = t0.Add(12*time.Second), 0.4, nil // the peak picture could not be encoded
	sink.onEvent(end)

	got, err := cat.Event(ctx, start.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := recorder.SnapshotPath("namesti", start.ID)
	if !got.End.Equal(end.End) || got.Score != 0.4 || got.Snapshot != want {
		t.Errorf("stored event = %+v; want it ended at %v with score 0.4 and snapshot %s", got, end.End, want)
	}
	if b, err := os.ReadFile(filepath.Join(dir, want)); err != nil || string(b) != "jpeg at the start" {
		t.Errorf("snapshot file = %q, %v", b, err)
	}

	// The catalog missed a start (busy or full then): the end stores the whole event.
	lost := report.Event{ID: "0192f5c4-0000-7000-8000-000000000002", Camera: "namesti", Start: t0.Add(time.Minute),
		End: t0.Add(70 * time.Second), Score: 0.2, Snapshot: []byte("peak")}
	sink.onEvent(lost)
	if got, err := cat.Event(ctx, lost.ID); err != nil || got.Snapshot != recorder.SnapshotPath("namesti", lost.ID) || !got.End.Equal(lost.End) {
		t.Errorf("event whose start was lost = %+v, %v; want it stored whole", got, err)
	}
}
