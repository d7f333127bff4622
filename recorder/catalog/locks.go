package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Lock is an evidence lock: footage of Camera in [Start, End) that retention must not
// delete while the lock is active.
type Lock struct {
	ID         int64
	Camera     string
	Start, End time.Time
	Reason     string
	Created    time.Time
	Expires    time.Time // zero = never: active until removed
	// Actor is who created the lock: a user name, or "cli:<os user>" for the command
	// line; "" for locks made before the catalog recorded it. Footage nobody may delete
	// needs a name to ask about it.
	Actor string
}

// lockCovers is the condition "lock l is active at the time bound to at and covers some
// of segment s". A lock covers [start, end); a segment covers [start, end), or its start
// instant when it has no duration (a lone frame), so that is locked too when the lock
// holds that instant. Every query that decides whether footage may go uses this one
// definition.
func lockCovers(at string) string {
	return `l.camera = s.camera
	AND (l.expires_ns IS NULL OR l.expires_ns > ` + at + `)
	AND s.start_ns < l.end_ns
	AND (l.start_ns < s.end_ns OR l.start_ns <= s.start_ns)`
}

const lockColumns = `id, camera, start_ns, end_ns, reason, created_ns, expires_ns, actor`

// AddLock stores an evidence lock and returns its id. Camera, Start, End (after Start),
// Reason and Created are required; a zero Expires means the lock lasts until removed.
// Actor is stored as given. The camera need not have footage yet.
func (c *Catalog) AddLock(ctx context.Context, l Lock) (int64, error) {
	id, err := c.addLock(ctx, l)
	if err != nil {
		return 0, fmt.Errorf("catalog: add lock: %w", err)
	}
	return id, nil
}

func (c *Catalog) addLock(ctx context.Context, l Lock) (int64, error) {
	if l.Camera == "" {
		return 0, errors.New("camera is empty")
	}
	start, err := nanos("start", l.Start)
	if err != nil {
		return 0, err
	}
	end, err := nanos("end", l.End)
	if err != nil {
		return 0, err
	}
	if end <= start {
		return 0, fmt.Errorf("end %s is not after start %s", l.End.UTC().Format(time.RFC3339Nano), l.Start.UTC().Format(time.RFC3339Nano))
	}
	if l.Reason == "" {
		return 0, errors.New("reason is empty")
	}
	created, err := nanos("created", l.Created)
	if err != nil {
		return 0, err
	}
	expires, err := nullNanos("expires", l.Expires)
	if err != nil {
		return 0, err
	}
	if expires.Valid && expires.Int64 <= created {
		return 0, fmt.Errorf("expires %s is not after created %s", l.Expires.UTC().Format(time.RFC3339Nano), l.Created.UTC().Format(time.RFC3339Nano))
	}
	var id int64
	err = c.write(ctx, func(tx *sql.Tx) error {
		if err := ensureCamera(ctx, tx, l.Camera); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `INSERT INTO locks (camera, start_ns, end_ns, reason, created_ns, expires_ns, actor)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`, l.Camera, start, end, l.Reason, created, expires, l.Actor).Scan(&id)
	})
	return id, err
}

// RemoveLock deletes a lock; an unknown id wraps ErrNotFound. The footage it protected
// becomes subject to retention again.
func (c *Catalog) RemoveLock(ctx context.Context, id int64) error {
	err := c.write(ctx, func(tx *sql.Tx) error {
		return execFound(ctx, tx, `DELETE FROM locks WHERE id = $1`, id)
	})
	if err != nil {
		return fmt.Errorf("catalog: remove lock %d: %w", id, err)
	}
	return nil
}

// Locks returns the locks active at now (not expired), ordered by camera and start.
func (c *Catalog) Locks(ctx context.Context, now time.Time) ([]Lock, error) {
	locks, err := c.locks(ctx, now)
	if err != nil {
		return nil, c.note(fmt.Errorf("catalog: locks: %w", err))
	}
	return locks, nil
}

func (c *Catalog) locks(ctx context.Context, now time.Time) ([]Lock, error) {
	at, err := nanos("now", now)
	if err != nil {
		return nil, err
	}
	rows, err := c.r.QueryContext(ctx, `SELECT `+lockColumns+` FROM locks
WHERE expires_ns IS NULL OR expires_ns > $1 ORDER BY camera, start_ns, id`, at)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Lock
	for rows.Next() {
		var l Lock
		var start, end, created int64
		var expires sql.NullInt64
		if err := rows.Scan(&l.ID, &l.Camera, &start, &end, &l.Reason, &created, &expires, &l.Actor); err != nil {
			return nil, err
		}
		l.Start, l.End, l.Created, l.Expires = fromNanos(start), fromNanos(end), fromNanos(created), fromNullNanos(expires)
		out = append(out, l)
	}
	return out, rows.Err()
}

// LockedBytes returns, per camera, the bytes of closed segments that a lock active at now
// protects; cameras with none are absent. Retention uses it to tell quota it cannot free.
// On one of several nodes it counts this node's files only (see onThisNode).
func (c *Catalog) LockedBytes(ctx context.Context, now time.Time) (map[string]int64, error) {
	at, err := nanos("now", now)
	if err != nil {
		return nil, c.note(fmt.Errorf("catalog: locked bytes: %w", err))
	}
	// Driven from the few locks rather than from every segment; the lower bound on
	// s.start_ns is the one overlapsRange explains, so each lock reads only the index
	// entries near its range. IN counts a segment once however many locks cover it.
	args := []any{at}
	scope := c.onThisNode("s.", &args)
	m, err := c.bytesPerCamera(ctx, `SELECT camera, SUM(bytes) FROM segments WHERE id IN (
	SELECT s.id FROM locks l JOIN segments s ON `+lockCovers("$1")+`
		AND s.start_ns >= l.start_ns - COALESCE((SELECT MAX(d.end_ns - d.start_ns) FROM segments d WHERE d.camera = l.camera), 0)
	WHERE s.open = 0`+scope+`)
GROUP BY camera`, args...)
	if err != nil {
		return nil, c.note(fmt.Errorf("catalog: locked bytes: %w", err))
	}
	return m, nil
}
