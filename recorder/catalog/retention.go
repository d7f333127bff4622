package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// OldestUnlocked returns up to limit closed segments that no lock active at now covers,
// oldest start first: retention's deletion candidates. Camera "" means all cameras.
// A candidate can still be refused by DeleteSegment if a lock is added in between. On one
// of several nodes only this node's files are candidates (see onThisNode).
func (c *Catalog) OldestUnlocked(ctx context.Context, camera string, now time.Time, limit int) ([]Segment, error) {
	segs, err := c.oldestUnlocked(ctx, camera, now, limit)
	if err != nil {
		return nil, c.note(fmt.Errorf("catalog: oldest unlocked segments of %q: %w", camera, err))
	}
	return segs, nil
}

func (c *Catalog) oldestUnlocked(ctx context.Context, camera string, now time.Time, limit int) ([]Segment, error) {
	at, err := nanos("now", now)
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, fmt.Errorf("limit %d is not positive", limit)
	}
	// Two statements rather than "$1 = '' OR camera = $1", which would keep SQLite from
	// walking the (camera, start_ns) index for one camera.
	where := `s.open = 0`
	args := []any{at, limit}
	if camera != "" {
		where = `s.camera = $3 AND s.open = 0`
		args = append(args, camera)
	}
	where += c.onThisNode("s.", &args)
	return collectSegments(c.r.QueryContext(ctx, `SELECT `+segmentColumns+` FROM segments s
WHERE `+where+` AND NOT EXISTS (SELECT 1 FROM locks l WHERE `+lockCovers("$1")+`)
ORDER BY s.start_ns, s.id LIMIT $2`, args...))
}

// RetentionHold is the state of retention's mass-deletion guard: when one pass would
// delete more than it should (a clock jump, a misconfigured quota), retention stops and
// waits for an operator to confirm. Each recorder node has its own (the Catalog's node,
// SetNode): its retention weighs only its own disk, so one node's hold must not stop the
// others.
type RetentionHold struct {
	Since                    time.Time
	Reason                   string
	PlannedBytes, TotalBytes int64
	Confirmed                time.Time // zero = not yet
	// Forced: retention deletes nothing at all until the hold is confirmed, and never
	// lifts it on its own. Set after a catalog rebuild that lost evidence locks.
	Forced bool
}

// RetentionHold returns this node's hold and true, or false when there is none.
func (c *Catalog) RetentionHold(ctx context.Context) (RetentionHold, bool, error) {
	var h RetentionHold
	var since int64
	var confirmed sql.NullInt64
	err := c.r.QueryRowContext(ctx, `SELECT since_ns, reason, planned_bytes, total_bytes, confirmed_ns, forced FROM retention_holds WHERE node = $1`, c.node).
		Scan(&since, &h.Reason, &h.PlannedBytes, &h.TotalBytes, &confirmed, &h.Forced)
	if errors.Is(err, sql.ErrNoRows) {
		return RetentionHold{}, false, nil
	}
	if err != nil {
		return RetentionHold{}, false, c.note(fmt.Errorf("catalog: retention hold: %w", err))
	}
	h.Since, h.Confirmed = fromNanos(since), fromNullNanos(confirmed)
	return h, true, nil
}

// SetRetentionHold creates or replaces this node's hold. h.Confirmed is ignored and the stored
// hold is unconfirmed: a confirmation approves the plan the operator was shown, so a
// new plan needs a new one. Retention must therefore not call this again for a plan that
// has been confirmed.
func (c *Catalog) SetRetentionHold(ctx context.Context, h RetentionHold) error {
	if err := c.setRetentionHold(ctx, h); err != nil {
		return fmt.Errorf("catalog: set retention hold: %w", err)
	}
	return nil
}

func (c *Catalog) setRetentionHold(ctx context.Context, h RetentionHold) error {
	since, err := nanos("since", h.Since)
	if err != nil {
		return err
	}
	if h.Reason == "" {
		return errors.New("reason is empty")
	}
	if h.PlannedBytes < 0 || h.TotalBytes < 0 {
		return fmt.Errorf("planned bytes (%d) and total bytes (%d) must not be negative", h.PlannedBytes, h.TotalBytes)
	}
	return c.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO retention_holds (node, since_ns, reason, planned_bytes, total_bytes, confirmed_ns, forced)
VALUES ($6, $1, $2, $3, $4, NULL, $5)
ON CONFLICT (node) DO UPDATE SET since_ns = excluded.since_ns, reason = excluded.reason,
	planned_bytes = excluded.planned_bytes, total_bytes = excluded.total_bytes, confirmed_ns = NULL,
	forced = excluded.forced`,
			since, h.Reason, h.PlannedBytes, h.TotalBytes, boolInt(h.Forced), c.node)
		return err
	})
}

// ConfirmRetention records an operator's confirmation of this node's hold at `at`; without a hold
// it wraps ErrNotFound.
func (c *Catalog) ConfirmRetention(ctx context.Context, at time.Time) error {
	atNS, err := nanos("at", at)
	if err == nil {
		err = c.write(ctx, func(tx *sql.Tx) error {
			return execFound(ctx, tx, `UPDATE retention_holds SET confirmed_ns = $1 WHERE node = $2`, atNS, c.node)
		})
	}
	if err != nil {
		return fmt.Errorf("catalog: confirm retention: %w", err)
	}
	return nil
}

// ClearRetentionHold removes this node's hold, if any.
func (c *Catalog) ClearRetentionHold(ctx context.Context) error {
	err := c.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM retention_holds WHERE node = $1`, c.node)
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: clear retention hold: %w", err)
	}
	return nil
}
