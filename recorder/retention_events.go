package recorder

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
)

// eventKeep is a camera's event retention (see Retention): footage overlapping an event's
// span is kept for retention instead of the camera's record.retention.
type eventKeep struct {
	retention         time.Duration // record.event_retention, longer than record.retention
	preRoll, postRoll time.Duration // the span around an event that is kept
}

// eventSpan is the footage an event keeps: [from, to].
type eventSpan struct{ from, to time.Time }

// eventSpans are one camera's event spans, merged and ordered, loaded once per sweep on
// first need.
type eventSpans struct {
	keep   eventKeep
	loaded bool
	spans  []eventSpan
}

// covers reports whether segment s overlaps an event span. The first call loads the spans
// that may overlap footage from s.Start to to: the age rule walks segments oldest first,
// so no later candidate starts earlier.
func (es *eventSpans) covers(pl *planner, camera string, s catalog.Segment, to time.Time) (bool, error) {
	if !es.loaded {
		spans, err := pl.eventSpans(camera, es.keep, s.Start, to)
		if err != nil {
			return false, err
		}
		es.spans, es.loaded = spans, true
	}
	// The first span that does not end before the segment starts.
	i := sort.Search(len(es.spans), func(i int) bool { return !es.spans[i].to.Before(s.Start) })
	return i < len(es.spans) && es.spans[i].from.Before(s.End), nil
}

// eventSpans returns camera's event spans that may overlap footage in [from, to), merged
// and ordered. An event still going on reaches to now.
func (pl *planner) eventSpans(camera string, keep eventKeep, from, to time.Time) ([]eventSpan, error) {
	q := catalog.EventQuery{Camera: camera, From: from.Add(-keep.postRoll), To: to.Add(keep.preRoll), Limit: catalog.MaxEventLimit}
	seen := map[string]bool{}
	var spans []eventSpan
	for {
		events, err := pl.r.cat.Events(pl.ctx, q)
		if err != nil {
			return nil, err
		}
		fresh := 0
		for _, e := range events {
			if seen[e.ID] {
				continue
			}
			seen[e.ID], fresh = true, fresh+1
			end := e.End
			if end.IsZero() {
				end = pl.now
			}
			spans = append(spans, eventSpan{from: e.Start.Add(-keep.preRoll), to: end.Add(keep.postRoll)})
		}
		if len(events) < q.Limit || fresh == 0 {
			break
		}
		// Newest first: the next page ends at this one's oldest start. Events starting at
		// that very instant come again and are skipped above.
		q.To = events[len(events)-1].Start.Add(time.Nanosecond)
	}
	slices.SortFunc(spans, func(a, b eventSpan) int { return a.from.Compare(b.from) })
	merged := spans[:0]
	for _, sp := range spans {
		if n := len(merged); n > 0 && !sp.from.After(merged[n-1].to) {
			if sp.to.After(merged[n-1].to) {
				merged[n-1].to = sp.to
			}
			continue
		}
		merged = append(merged, sp)
	}
	return merged, nil
}

// expireEvents deletes the events, and their snapshots, that are older than their camera's
// footage may be (the longer of record.retention and record.event_retention; for a camera
// no longer configured, the longest retention configured): an event
// and its picture are personal data like the footage, and a search must not offer events
// whose footage is gone. Failures are collected in errs; the next sweep tries again.
func (r *Retention) expireEvents(ctx context.Context, now time.Time, errs *[]error) {
	// Every camera with events, also one removed from the config: its events go with its
	// footage (retentionOf gives such a camera the longest configured retention).
	cameras, err := r.cat.EventCameras(ctx)
	if err != nil {
		*errs = append(*errs, err)
		return
	}
	for _, camera := range cameras {
		keep := r.retentionOf(camera)
		if ev, ok := r.events[camera]; ok {
			keep = max(keep, ev.retention)
		}
		gone, err := r.cat.DeleteEventsBefore(ctx, camera, now.Add(-keep))
		if err != nil {
			*errs = append(*errs, err)
			continue
		}
		for _, e := range gone {
			if err := r.st.RemoveSnapshot(e.Snapshot); err != nil {
				*errs = append(*errs, fmt.Errorf("event %s: %w", e.ID, err))
			}
		}
		if len(gone) > 0 {
			r.log.Info("retention: expired motion events", "camera", camera, "events", len(gone), "before", now.Add(-keep))
		}
	}
}
