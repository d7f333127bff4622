package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Event is one motion event: something moved in front of Camera from Start to End.
type Event struct {
	ID     string // the detector's UUIDv7
	Camera string
	Start  time.Time
	End    time.Time // zero while the event is still going on
	Score  float64   // peak motion score, 0-1
	Box    Box       // where the motion was at the peak
	Zones  []string  // names of the configured zones the motion touched; nil when none are configured
	// Snapshot is the path of the JPEG taken at the peak, relative to the storage
	// directory; "" when there is none (yet).
	Snapshot string
}

// Box is a rectangle in coordinates normalised to 0-1 of the picture, origin top left.
type Box struct{ X, Y, W, H float64 }

// EventQuery selects events for search. Zero fields do not filter.
type EventQuery struct {
	Camera string
	// Cameras, when not nil, keeps only events of these cameras (an empty list finds
	// nothing): the cameras the asking user may see.
	Cameras  []string
	From, To time.Time // events overlapping [From, To); an ongoing event extends to now
	Zone     string    // only events that touched this zone
	MinScore float64   // only events whose peak score is at least this (0-1)
	// Before, when set, keeps only events that started before it: the paging cursor. The
	// next page of a newest-first search starts before the last start of this one. An
	// event starting in the very nanosecond of that last start would be skipped; with
	// nanosecond start times that does not happen in practice.
	Before time.Time
	Limit  int // at most this many, newest first; 0 = DefaultEventLimit
}

// Event query limits: a page of the officer's search list, and a ceiling that keeps one
// request from reading the whole table into memory.
const (
	DefaultEventLimit = 100
	MaxEventLimit     = 1000
)

const eventColumns = `id, camera, start_ns, end_ns, score, box_x, box_y, box_w, box_h, zones, snapshot`

// InsertEvent stores a new event; an id already stored wraps ErrExists.
func (c *Catalog) InsertEvent(ctx context.Context, e Event) error {
	if err := c.insertEvent(ctx, e); err != nil {
		return fmt.Errorf("catalog: insert event %s: %w", e.ID, err)
	}
	return nil
}

func (c *Catalog) insertEvent(ctx context.Context, e Event) error {
	if e.Camera == "" {
		return errors.New("camera is empty")
	}
	v, err := eventValues(e)
	if err != nil {
		return err
	}
	return c.write(ctx, func(tx *sql.Tx) error {
		if err := ensureCamera(ctx, tx, e.Camera); err != nil {
			return err
		}
		var exists int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM events WHERE id = $1`, e.ID).Scan(&exists); err != nil {
			return err
		}
		if exists > 0 {
			return ErrExists
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO events (`+eventColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`, append([]any{e.ID, e.Camera}, v...)...)
		return err
	})
}

// UpdateEvent stores what the detector learned since the event was inserted: its end,
// peak score, box, zones and snapshot. The camera and id cannot change; an unknown id
// wraps ErrNotFound.
func (c *Catalog) UpdateEvent(ctx context.Context, e Event) error {
	v, err := eventValues(e)
	if err == nil {
		err = c.write(ctx, func(tx *sql.Tx) error {
			return execFound(ctx, tx, `UPDATE events SET start_ns = $3, end_ns = $4, score = $5, box_x = $6, box_y = $7,
	box_w = $8, box_h = $9, zones = $10, snapshot = $11 WHERE id = $1 AND camera = $2`, append([]any{e.ID, e.Camera}, v...)...)
		})
	}
	if err != nil {
		return fmt.Errorf("catalog: update event %s: %w", e.ID, err)
	}
	return nil
}

// eventValues checks e and returns the values of eventColumns after id and camera.
func eventValues(e Event) ([]any, error) {
	if e.ID == "" {
		return nil, errors.New("id is empty")
	}
	start, err := nanos("start", e.Start)
	if err != nil {
		return nil, err
	}
	end, err := nullNanos("end", e.End)
	if err != nil {
		return nil, err
	}
	if end.Valid && end.Int64 < start {
		return nil, fmt.Errorf("end %s is before start %s", e.End.UTC().Format(time.RFC3339Nano), e.Start.UTC().Format(time.RFC3339Nano))
	}
	if !unit(e.Score) {
		return nil, fmt.Errorf("score %g is outside 0-1", e.Score)
	}
	b := e.Box
	if !unit(b.X) || !unit(b.Y) || !unit(b.W) || !unit(b.H) || b.X+b.W > 1+1e-9 || b.Y+b.H > 1+1e-9 {
		return nil, fmt.Errorf("box %+v is not inside the picture (0-1)", b)
	}
	zones := e.Zones
	if zones == nil {
		zones = []string{}
	}
	z, err := json.Marshal(zones)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(e.Snapshot, "/") || strings.Contains(e.Snapshot, "..") {
		return nil, fmt.Errorf("snapshot path %q must be relative to the storage directory", e.Snapshot)
	}
	return []any{start, end, e.Score, b.X, b.Y, b.W, b.H, string(z), e.Snapshot}, nil
}

func unit(f float64) bool { return f >= 0 && f <= 1 && !math.IsNaN(f) }

// Event returns the event with the given id; an unknown id wraps ErrNotFound.
func (c *Catalog) Event(ctx context.Context, id string) (Event, error) {
	rows, err := c.r.QueryContext(ctx, `SELECT `+eventColumns+` FROM events WHERE id = $1`, id)
	var events []Event
	if err == nil {
		events, err = scanEvents(rows)
	}
	if err == nil && len(events) == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return Event{}, fmt.Errorf("catalog: event %s: %w", id, err)
	}
	return events[0], nil
}

// Events returns the events q selects, newest first (by start).
func (c *Catalog) Events(ctx context.Context, q EventQuery) ([]Event, error) {
	events, err := c.events(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("catalog: events: %w", err)
	}
	return events, nil
}

func (c *Catalog) events(ctx context.Context, q EventQuery) ([]Event, error) {
	limit := q.Limit
	switch {
	case limit == 0:
		limit = DefaultEventLimit
	case limit < 0 || limit > MaxEventLimit:
		return nil, fmt.Errorf("limit %d is outside 1-%d", limit, MaxEventLimit)
	}
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if q.Camera != "" {
		where = append(where, "camera = "+arg(q.Camera))
	}
	if q.Cameras != nil {
		in := make([]string, len(q.Cameras))
		for i, id := range q.Cameras {
			in[i] = arg(id)
		}
		if len(in) == 0 {
			in = []string{"NULL"} // IN () is not SQL; IN (NULL) matches nothing
		}
		where = append(where, "camera IN ("+strings.Join(in, ", ")+")")
	}
	if !q.To.IsZero() {
		to, err := nanos("to", q.To)
		if err != nil {
			return nil, err
		}
		where = append(where, "start_ns < "+arg(to))
	}
	if !q.From.IsZero() {
		from, err := nanos("from", q.From)
		if err != nil {
			return nil, err
		}
		where = append(where, "(end_ns IS NULL OR end_ns >= "+arg(from)+")")
	}
	if !q.Before.IsZero() {
		before, err := nanos("before", q.Before)
		if err != nil {
			return nil, err
		}
		where = append(where, "start_ns < "+arg(before))
	}
	if q.MinScore != 0 {
		if !unit(q.MinScore) {
			return nil, fmt.Errorf("min score %g is outside 0-1", q.MinScore)
		}
		where = append(where, "score >= "+arg(q.MinScore))
	}
	if q.Zone != "" {
		where = append(where, "EXISTS (SELECT 1 FROM "+c.dialect.jsonArrayText("events.zones")+" WHERE value = "+arg(q.Zone)+")")
	}
	query := `SELECT ` + eventColumns + ` FROM events`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	// Newest first walks the start index backwards from To, so a search for the latest
	// events stops after Limit rows however long the history is.
	query += " ORDER BY start_ns DESC, id DESC LIMIT " + arg(limit)
	rows, err := c.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return scanEvents(rows)
}

func scanEvents(rows *sql.Rows) ([]Event, error) {
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var start int64
		var end sql.NullInt64
		var zones string
		if err := rows.Scan(&e.ID, &e.Camera, &start, &end, &e.Score, &e.Box.X, &e.Box.Y, &e.Box.W, &e.Box.H, &zones, &e.Snapshot); err != nil {
			return nil, err
		}
		e.Start, e.End = fromNanos(start), fromNullNanos(end)
		if err := json.Unmarshal([]byte(zones), &e.Zones); err != nil {
			return nil, fmt.Errorf("event %s: zones: %w", e.ID, err)
		}
		if len(e.Zones) == 0 {
			e.Zones = nil
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// DeleteEventsBefore removes camera's events that ended before t (their footage has
// aged out) and returns them, so the caller can remove their snapshots. Ongoing events
// are never removed. The camera's motion search grid before t goes with them: it says
// where things moved, and is kept exactly as long as the events that say when.
func (c *Catalog) DeleteEventsBefore(ctx context.Context, camera string, t time.Time) ([]Event, error) {
	var events []Event
	before, err := nanos("before", t)
	if err == nil {
		err = c.write(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `DELETE FROM motion_grid WHERE camera = $1 AND minute_ns < $2`, camera, before); err != nil {
				return err
			}
			rows, err := tx.QueryContext(ctx, `DELETE FROM events WHERE camera = $1 AND end_ns IS NOT NULL AND end_ns < $2
RETURNING `+eventColumns, camera, before)
			if err != nil {
				return err
			}
			events, err = scanEvents(rows)
			return err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("catalog: delete events of %s before %s: %w", camera, t.UTC().Format(time.RFC3339), err)
	}
	return events, nil
}

// EventCameras returns the cameras that have events or motion search grid, in id order,
// including cameras no longer configured (retention expires their events too).
func (c *Catalog) EventCameras(ctx context.Context) ([]string, error) {
	rows, err := c.r.QueryContext(ctx, `SELECT camera FROM events UNION SELECT camera FROM motion_grid ORDER BY camera`)
	if err != nil {
		return nil, fmt.Errorf("catalog: event cameras: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("catalog: event cameras: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("catalog: event cameras: %w", err)
	}
	return out, nil
}
