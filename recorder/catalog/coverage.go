package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Span is a stretch of time that is either recorded or a gap.
type Span struct {
	Start, End time.Time
	Recorded   bool
}

// Coverage is one camera's recorded spans and gaps, covering the queried range exactly,
// in order, alternating between recorded and gap.
type Coverage struct {
	Camera string
	Spans  []Span
}

// Coverage returns, for each camera, which parts of [from, to) are recorded: the
// timeline the UI draws. Both streams count. Segments whose hole between them is at most
// tolerance merge into one recorded span, so a reconnect or a resync shorter than
// tolerance does not fragment the timeline; GapBefore does not change that, because the
// hole it marks is the time between the segments, which is judged like any other. An
// open segment counts up to its last update. With nil or empty cameras it reports every
// camera that has segments, ordered by id; otherwise the cameras in the order given.
//
// All cameras are read from one snapshot, so the answer is consistent across cameras.
func (c *Catalog) Coverage(ctx context.Context, cameras []string, from, to time.Time, tolerance time.Duration) ([]Coverage, error) {
	out, err := c.coverage(ctx, cameras, from, to, tolerance)
	if err != nil {
		return nil, fmt.Errorf("catalog: coverage: %w", err)
	}
	return out, nil
}

func (c *Catalog) coverage(ctx context.Context, cameras []string, from, to time.Time, tolerance time.Duration) ([]Coverage, error) {
	fromNS, toNS, err := timeRange(from, to)
	if err != nil {
		return nil, err
	}
	if tolerance < 0 {
		return nil, fmt.Errorf("tolerance %s is negative", tolerance)
	}
	tol := int64(tolerance)
	tx, err := c.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if len(cameras) == 0 {
		if cameras, err = camerasWithSegments(ctx, tx); err != nil {
			return nil, err
		}
	}
	out := make([]Coverage, 0, len(cameras))
	for _, camera := range cameras {
		if camera == "" {
			return nil, errors.New("camera is empty")
		}
		// Segments up to tolerance outside the range decide whether a hole that
		// straddles from or to is short enough to merge.
		ivs, err := intervals(ctx, tx, camera, fromNS-tol, toNS+tol)
		if err != nil {
			return nil, fmt.Errorf("camera %s: %w", camera, err)
		}
		out = append(out, Coverage{Camera: camera, Spans: spans(ivs, fromNS, toNS, tol)})
	}
	return out, nil
}

func camerasWithSegments(ctx context.Context, tx *sql.Tx) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id FROM cameras WHERE EXISTS (SELECT 1 FROM segments WHERE segments.camera = cameras.id) ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// interval is a segment's [start, end) in Unix nanoseconds: all a timeline needs, read
// without the rest of the row.
type interval struct{ start, end int64 }

// intervals returns the intervals of camera's segments overlapping [from, to), by start.
func intervals(ctx context.Context, tx *sql.Tx, camera string, from, to int64) ([]interval, error) {
	rows, err := tx.QueryContext(ctx, `SELECT start_ns, end_ns FROM segments WHERE `+overlapsRange+` ORDER BY start_ns`, camera, from, to)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []interval
	for rows.Next() {
		var iv interval
		if err := rows.Scan(&iv.start, &iv.end); err != nil {
			return nil, err
		}
		out = append(out, iv)
	}
	return out, rows.Err()
}

// spans merges ivs (ordered by start) into recorded spans, clips them to [from, to) and
// fills the rest with gaps.
func spans(ivs []interval, from, to, tolerance int64) []Span {
	var out []Span
	covered := from // out covers [from, covered)
	emit := func(start, end int64) {
		start, end = max(start, from), min(end, to)
		if end <= start {
			return
		}
		if start > covered {
			out = append(out, Span{Start: fromNanos(covered), End: fromNanos(start)})
		}
		out = append(out, Span{Start: fromNanos(start), End: fromNanos(end), Recorded: true})
		covered = end
	}
	var cur interval // the recorded span being merged
	merging := false
	for _, iv := range ivs {
		if iv.end <= iv.start {
			continue // no footage yet (open and empty) or a lone frame: nothing to draw
		}
		if merging && iv.start-cur.end <= tolerance {
			cur.end = max(cur.end, iv.end)
			continue
		}
		if merging {
			emit(cur.start, cur.end)
		}
		cur, merging = iv, true
	}
	if merging {
		emit(cur.start, cur.end)
	}
	if covered < to {
		out = append(out, Span{Start: fromNanos(covered), End: fromNanos(to)})
	}
	return out
}
