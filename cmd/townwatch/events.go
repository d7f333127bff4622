package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/townwatch/townwatch/motion/report"
	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// eventWriteTimeout bounds one catalog write of an event. The analyser waits for it, and
// while it waits its reader may drop frames; a catalog slower than this is logged and the
// event's row catches up on its next notification.
const eventWriteTimeout = 5 * time.Second

// eventSink takes one camera's motion events to where they matter: the motion-mode
// recorder first (it must never wait for the catalog: footage is at stake), then the
// catalog row officers search, then the snapshot.
type eventSink struct {
	camera  string
	writer  *recorder.Writer // nil when the camera does not record in motion mode
	storage *recorder.Storage
	catalog *catalog.Catalog
	// writes is the context of each catalog write: on a node, fenced by the camera's
	// lease (system.cameraWrites).
	writes func() context.Context
	log    *slog.Logger

	// The snapshot stored for the event going on: an end without a new picture (its
	// encoding failed, or its write did) keeps it instead of clearing the row's path,
	// which would leave the file behind, unlisted and never expired.
	snapshotEvent, snapshotPath string
}

// onEvent is motion.Options.OnEvent: called on an event's start (End zero) and end.
func (s *eventSink) onEvent(e report.Event) {
	if s.writer != nil {
		if e.End.IsZero() {
			s.writer.MotionStarted(e.Start)
		} else {
			s.writer.MotionEnded(e.End)
		}
	}
	ctx, cancel := context.WithTimeout(s.writes(), eventWriteTimeout)
	defer cancel()
	row := catalog.Event{ID: e.ID, Camera: s.camera, Start: e.Start, End: e.End, Score: e.Score,
		Box: catalog.Box{X: e.Box.X, Y: e.Box.Y, W: e.Box.W, H: e.Box.H}, Zones: e.Zones}
	if s.snapshotEvent == e.ID {
		row.Snapshot = s.snapshotPath
	}
	if len(e.Snapshot) > 0 {
		if rel, err := s.storage.WriteSnapshot(s.camera, e.ID, e.Snapshot); err != nil {
			// The event still counts without its picture; the footage has it.
			s.log.Warn("event snapshot not saved", "event", e.ID, "err", err)
		} else {
			row.Snapshot = rel
			s.snapshotEvent, s.snapshotPath = e.ID, rel
		}
	}
	var err error
	if e.End.IsZero() {
		err = s.catalog.InsertEvent(ctx, row)
	} else if err = s.catalog.UpdateEvent(ctx, row); errors.Is(err, catalog.ErrNotFound) {
		// The start was not stored (catalog busy or full then): store the whole event now.
		err = s.catalog.InsertEvent(ctx, row)
	}
	if err != nil {
		s.log.Error("motion event not stored", "event", e.ID, "start", e.Start, "err", err)
		return
	}
	if e.End.IsZero() {
		s.log.Info("motion event started", "event", e.ID, "zones", e.Zones)
	} else {
		s.log.Info("motion event ended", "event", e.ID, "duration", e.End.Sub(e.Start).Round(100*time.Millisecond), "score", e.Score)
	}
}
