package main

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/townwatch/townwatch/motion/report"
	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// thumbnailQueue holds thumbnails between the motion worker's reader and their writes:
// 16 cameras' worth while an event goes on everywhere, for a disk that stalls a few
// seconds. Beyond it thumbnails are dropped (counted), never waited for.
const thumbnailQueue = 64

// placementDelay is how long a thumbnail waits before its segment is looked up. Keyframes
// start segments, and a thumbnail is often of the very keyframe that starts the next one:
// looked up at once, it would race the recorder opening that segment and land in the
// previous one, or nowhere. The recorder opens a segment as the keyframe arrives, so a
// second is ample.
const placementDelay = time.Second

// queuedThumbnail is a thumbnail and when it arrived.
type queuedThumbnail struct {
	report.Thumbnail
	arrived time.Time
}

// thumbnailSink stores the scrub-preview thumbnails the motion worker makes beside the
// segment recording their moment. It runs on its own goroutine behind a queue: the
// worker's reader (which also delivers motion events) never waits for a disk, and
// recording never waits for a thumbnail.
type thumbnailSink struct {
	storage *recorder.Storage
	catalog *catalog.Catalog
	// open is the segment a camera's recorder is writing (Writer.OpenSegment).
	open func(camera string) (recorder.OpenSegment, bool)
	log  *slog.Logger

	queue            chan queuedThumbnail
	stored, dropped  atomic.Uint64
	unplaced, failed atomic.Uint64
}

func newThumbnailSink(st *recorder.Storage, cat *catalog.Catalog, open func(string) (recorder.OpenSegment, bool), log *slog.Logger) *thumbnailSink {
	return &thumbnailSink{storage: st, catalog: cat, open: open, log: log.With("component", "thumbnails"),
		queue: make(chan queuedThumbnail, thumbnailQueue)}
}

// offer queues a thumbnail, or drops it when the queue is full. It never blocks.
func (s *thumbnailSink) offer(th report.Thumbnail) {
	select {
	case s.queue <- queuedThumbnail{th, time.Now()}:
	default:
		s.dropped.Add(1)
	}
}

// run stores queued thumbnails until ctx ends.
func (s *thumbnailSink) run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case th := <-s.queue:
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Until(th.arrived.Add(placementDelay))):
			}
			s.store(th.Thumbnail)
		}
	}
}

// store appends th beside the segment recording its capture time: the open segment when
// th is not older than its start (nearly always: thumbnails arrive milliseconds after
// their frame), else the catalog's segment covering it. A thumbnail of a moment nothing
// records (motion-mode recording between events, a paused recorder) has no place and is
// counted, not kept.
func (s *thumbnailSink) store(th report.Thumbnail) {
	seg, ok := s.segmentAt(th.Camera, th.Wall)
	if !ok {
		s.unplaced.Add(1)
		return
	}
	err := s.storage.AppendThumbnail(seg, th.Wall, th.JPEG)
	switch {
	case err == nil:
		s.stored.Add(1)
	case errors.Is(err, fs.ErrNotExist):
		s.unplaced.Add(1) // the segment was deleted meanwhile
	default:
		if s.failed.Add(1) == 1 || s.failed.Load()%1000 == 0 {
			s.log.Warn("thumbnail not stored; the footage is not affected", "camera", th.Camera, "segment", seg, "failures", s.failed.Load(), "err", err)
		}
	}
}

func (s *thumbnailSink) segmentAt(camera string, at time.Time) (string, bool) {
	if open, ok := s.open(camera); ok && !at.Before(open.Start) {
		return recorder.SegmentPath(camera, open.Start), true
	}
	segs, err := s.catalog.Segments(context.Background(), camera, at, at.Add(time.Nanosecond))
	if err != nil {
		return "", false
	}
	for _, seg := range segs {
		// On one of several nodes the covering segment may be another node's (the camera
		// moved): its file is not on this disk, and a sidecar here would be beside nothing.
		if seg.Stream == "main" && seg.Node == s.catalog.Node() {
			return seg.Path, true
		}
	}
	return "", false
}

// metrics exposes the sink's counters: thumbnails stored, dropped on a full queue, with no
// segment to go to, and failed writes.
func (s *thumbnailSink) metrics() []prometheus.Collector {
	var out []prometheus.Collector
	for outcome, c := range map[string]*atomic.Uint64{"stored": &s.stored, "dropped": &s.dropped, "unplaced": &s.unplaced, "failed": &s.failed} {
		out = append(out, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "townwatch_thumbnails_total",
			Help:        "Scrub-preview thumbnails by outcome: stored, dropped (queue full), unplaced (no segment records their moment), failed (write error).",
			ConstLabels: prometheus.Labels{"outcome": outcome},
		}, func() float64 { return float64(c.Load()) }))
	}
	return out
}
