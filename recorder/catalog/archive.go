package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// The archive tier's rows (recorder/archive). A segment moves to the bucket in steps, each
// of which a crash may interrupt and a later pass repeats: the object is written and read
// back, then MarkArchived records it, then the local file is removed. So a segment row is
// archived only once its object was verified, and a row that is not archived always has
// its local file.

// ArchiveCandidates returns up to limit closed segments still on the local disk (this
// node's, with several) that ended before `before`, oldest end first: the archive job's
// work list.
func (c *Catalog) ArchiveCandidates(ctx context.Context, before time.Time, limit int) ([]Segment, error) {
	b, err := nanos("before", before)
	if err != nil {
		return nil, fmt.Errorf("catalog: archive candidates: %w", err)
	}
	args := []any{b, limit}
	scope := c.onThisNode("", &args)
	segs, err := collectSegments(c.r.QueryContext(ctx, `SELECT `+segmentColumns+` FROM segments
WHERE archived_ns IS NULL AND open = 0 AND end_ns < $1`+scope+` ORDER BY end_ns, id LIMIT $2`, args...))
	if err != nil {
		return nil, c.note(fmt.Errorf("catalog: archive candidates: %w", err))
	}
	return segs, nil
}

// ArchiveBacklog counts the closed segments still on the local disk that ended before
// `before`, and their bytes: what the archive job has yet to move.
func (c *Catalog) ArchiveBacklog(ctx context.Context, before time.Time) (segments, bytes int64, err error) {
	b, err := nanos("before", before)
	if err != nil {
		return 0, 0, fmt.Errorf("catalog: archive backlog: %w", err)
	}
	args := []any{b}
	scope := c.onThisNode("", &args)
	err = c.r.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM segments
WHERE archived_ns IS NULL AND open = 0 AND end_ns < $1`+scope, args...).Scan(&segments, &bytes)
	if err != nil {
		return 0, 0, c.note(fmt.Errorf("catalog: archive backlog: %w", err))
	}
	return segments, bytes, nil
}

// ErrDigestMismatch is MarkArchived's answer when the row's SHA-256 is not the one the
// archive verified: the row changed, and the object must not stand for it.
var ErrDigestMismatch = errors.New("the segment's SHA-256 is not the one verified")

// MarkArchived records that segment id's object was read back from the archive with
// SHA-256 sha256 (the row's own). Marking a segment that is archived already is not an
// error (a pass repeated after a crash); an unknown id wraps ErrNotFound, an open one
// ErrSegmentOpen, another digest ErrDigestMismatch.
func (c *Catalog) MarkArchived(ctx context.Context, id int64, sha256 string, at time.Time) error {
	atNS, err := nanos("at", at)
	if err != nil {
		return fmt.Errorf("catalog: mark segment %d archived: %w", id, err)
	}
	err = c.write(ctx, func(tx *sql.Tx) error {
		var open bool
		var sum string
		var archived sql.NullInt64
		switch err := tx.QueryRowContext(ctx, `SELECT open, sha256, archived_ns FROM segments WHERE id = $1`, id).Scan(&open, &sum, &archived); {
		case errors.Is(err, sql.ErrNoRows):
			return ErrNotFound
		case err != nil:
			return err
		case open:
			return ErrSegmentOpen
		case sum != sha256:
			return ErrDigestMismatch
		case archived.Valid:
			return nil
		}
		_, err := tx.ExecContext(ctx, `UPDATE segments SET archived_ns = $2 WHERE id = $1`, id, atNS)
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: mark segment %d archived: %w", id, err)
	}
	return nil
}

// PendingObjectDeletions returns up to limit deletions of archived segments whose object
// has not been removed from the bucket yet, oldest first.
func (c *Catalog) PendingObjectDeletions(ctx context.Context, limit int) ([]Deletion, error) {
	rows, err := c.r.QueryContext(ctx, `SELECT `+deletionColumns+` FROM deletions WHERE object_pending = 1 ORDER BY id LIMIT $1`, limit)
	if err != nil {
		return nil, c.note(fmt.Errorf("catalog: pending object deletions: %w", err))
	}
	defer rows.Close()
	var out []Deletion
	for rows.Next() {
		d, err := scanDeletion(rows)
		if err != nil {
			return nil, fmt.Errorf("catalog: pending object deletions: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// ObjectDeleted records that deletion id's object is gone from the bucket.
func (c *Catalog) ObjectDeleted(ctx context.Context, id int64) error {
	err := c.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE deletions SET object_pending = 0 WHERE id = $1`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: deletion %d: object deleted: %w", id, err)
	}
	return nil
}

// ArchivedBytes returns the bytes of all archived segments (TotalBytes counts the local
// disk only); on one of several nodes, those this node archived.
func (c *Catalog) ArchivedBytes(ctx context.Context) (int64, error) {
	var n int64
	var args []any
	scope := c.onThisNode("", &args)
	if err := c.r.QueryRowContext(ctx, `SELECT COALESCE(SUM(bytes), 0) FROM segments WHERE archived_ns IS NOT NULL`+scope, args...).Scan(&n); err != nil {
		return 0, c.note(fmt.Errorf("catalog: archived bytes: %w", err))
	}
	return n, nil
}

// ArchivedSegments counts the segments in the archive tier: what the bucket must hold.
func (c *Catalog) ArchivedSegments(ctx context.Context) (int64, error) {
	var n int64
	if err := c.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM segments WHERE archived_ns IS NOT NULL`).Scan(&n); err != nil {
		return 0, c.note(fmt.Errorf("catalog: archived segments: %w", err))
	}
	return n, nil
}
