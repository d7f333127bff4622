package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Deletion records one deleted segment: what it was, why and when it went.
type Deletion struct {
	ID                           int64
	SegmentID                    int64 // the deleted Segment.ID (ids are never reused)
	Camera, Stream, Path, SHA256 string
	Reason                       string
	Start, End, At               time.Time
	Bytes                        int64
	// PrevSHA256 and Chained are the deleted segment's hash chain link (Segment.PrevSHA256).
	PrevSHA256 string
	Chained    bool
	// Archived says the segment was in the archive tier when it was deleted: its object is
	// removed after the row (PendingObjectDeletions, ObjectDeleted).
	Archived bool
}

const deletionColumns = `id, segment_id, camera, stream, path, sha256, reason, start_ns, end_ns, deleted_ns, bytes, prev_sha256, archived`

func scanDeletion(sc scanner) (Deletion, error) {
	var d Deletion
	var start, end, at int64
	var prev sql.NullString
	err := sc.Scan(&d.ID, &d.SegmentID, &d.Camera, &d.Stream, &d.Path, &d.SHA256, &d.Reason, &start, &end, &at, &d.Bytes, &prev, &d.Archived)
	d.Start, d.End, d.At = fromNanos(start), fromNanos(end), fromNanos(at)
	d.PrevSHA256, d.Chained = prev.String, prev.Valid
	return d, err
}

// DeleteSegment removes segment id from the catalog and records why, in one transaction:
// either the deletion row exists and the segment row is gone, or nothing changed. It
// refuses a segment that is still open (ErrSegmentOpen) or that a lock active at `at`
// covers (ErrLocked); an unknown id wraps ErrNotFound.
//
// The caller removes the file afterwards. Once DeleteSegment has returned, the deletion
// is durable, so a crash before the file is gone leaves a file with a deletion record
// and no segment row: start-up finds it with DeletionByPath and finishes the job. The
// reverse order could leave a row pointing at bytes that no longer exist.
func (c *Catalog) DeleteSegment(ctx context.Context, id int64, reason string, at time.Time) (Deletion, error) {
	d, err := c.deleteSegment(ctx, id, reason, at)
	if err != nil {
		return Deletion{}, fmt.Errorf("catalog: delete segment %d: %w", id, err)
	}
	return d, nil
}

// DiscardOpenSegment removes the row of an open segment that turned out to hold no footage
// (its file never got a complete fragment, or vanished before it did), recording why. It
// ignores evidence locks: no footage is deleted, and a lock over "now" must not keep an
// empty row open forever. A closed segment is refused with ErrSegmentClosed.
func (c *Catalog) DiscardOpenSegment(ctx context.Context, id int64, reason string, at time.Time) (Deletion, error) {
	d, err := c.removeSegment(ctx, id, reason, at, true)
	if err != nil {
		return Deletion{}, fmt.Errorf("catalog: discard open segment %d: %w", id, err)
	}
	return d, nil
}

func (c *Catalog) deleteSegment(ctx context.Context, id int64, reason string, at time.Time) (Deletion, error) {
	return c.removeSegment(ctx, id, reason, at, false)
}

// removeSegment deletes a segment row and records the deletion in one transaction. With
// discardOpen it removes only an open row, regardless of locks; otherwise only a closed row
// that no active lock covers.
func (c *Catalog) removeSegment(ctx context.Context, id int64, reason string, at time.Time, discardOpen bool) (Deletion, error) {
	if reason == "" {
		return Deletion{}, errors.New("reason is empty")
	}
	atNS, err := nanos("at", at)
	if err != nil {
		return Deletion{}, err
	}
	var d Deletion
	err = c.write(ctx, func(tx *sql.Tx) error {
		s, err := scanSegment(tx.QueryRowContext(ctx, `SELECT `+segmentColumns+` FROM segments WHERE id = $1`, id))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return ErrNotFound
		case err != nil:
			return err
		case discardOpen && !s.Open:
			return ErrSegmentClosed
		case discardOpen:
			// No footage: nothing for a lock to protect.
		case s.Open:
			return ErrSegmentOpen
		}
		var lock int64
		if !discardOpen {
			switch err := tx.QueryRowContext(ctx, `SELECT l.id FROM segments s JOIN locks l ON `+lockCovers("$2")+`
WHERE s.id = $1 ORDER BY l.id LIMIT 1`, id, atNS).Scan(&lock); {
			case err == nil:
				return fmt.Errorf("lock %d: %w", lock, ErrLocked)
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
		}
		d, err = scanDeletion(tx.QueryRowContext(ctx, `INSERT INTO deletions (segment_id, camera, stream, start_ns, end_ns, path, bytes, sha256, reason, deleted_ns, prev_sha256, archived, object_pending)
SELECT id, camera, stream, start_ns, end_ns, path, bytes, sha256, $2, $3, prev_sha256,
	CASE WHEN archived_ns IS NULL THEN 0 ELSE 1 END, CASE WHEN archived_ns IS NULL THEN 0 ELSE 1 END
FROM segments WHERE id = $1
RETURNING `+deletionColumns, id, reason, atNS))
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM segments WHERE id = $1`, id)
		return err
	})
	return d, err
}

// Deletions returns the deletions recorded at or after since, oldest first.
func (c *Catalog) Deletions(ctx context.Context, since time.Time) ([]Deletion, error) {
	ds, err := c.deletions(ctx, since)
	if err != nil {
		return nil, fmt.Errorf("catalog: deletions: %w", err)
	}
	return ds, nil
}

func (c *Catalog) deletions(ctx context.Context, since time.Time) ([]Deletion, error) {
	sinceNS, err := nanos("since", since)
	if err != nil {
		return nil, err
	}
	rows, err := c.r.QueryContext(ctx, `SELECT `+deletionColumns+` FROM deletions WHERE deleted_ns >= $1 ORDER BY deleted_ns, id`, sinceNS)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Deletion
	for rows.Next() {
		d, err := scanDeletion(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// DeletionByPath returns the latest deletion of the segment stored at path, or an error
// wrapping ErrNotFound. Start-up uses it to tell a file whose deletion was interrupted
// (remove it) from one the catalog never knew (adopt it).
func (c *Catalog) DeletionByPath(ctx context.Context, path string) (Deletion, error) {
	d, err := scanDeletion(c.r.QueryRowContext(ctx, `SELECT `+deletionColumns+` FROM deletions WHERE path = $1 ORDER BY id DESC LIMIT 1`, path))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Deletion{}, fmt.Errorf("catalog: deletion of %s: %w", path, err)
	}
	return d, nil
}

// NewestDeletion is the newest footage of one camera deleted for one of a set of reasons.
type NewestDeletion struct {
	End    time.Time // the end of the deleted footage
	Reason string
}

// NewestDeletions returns, per camera, the deletion recorded at or after since for one of
// reasons whose footage ends last. Retention reads it once at start-up to find how far
// back each camera's history reaches after deletions for space. It reads the deletions
// since `since` through their time index.
func (c *Catalog) NewestDeletions(ctx context.Context, since time.Time, reasons ...string) (map[string]NewestDeletion, error) {
	m, err := c.newestDeletions(ctx, since, reasons)
	if err != nil {
		return nil, fmt.Errorf("catalog: newest deletions: %w", err)
	}
	return m, nil
}

func (c *Catalog) newestDeletions(ctx context.Context, since time.Time, reasons []string) (map[string]NewestDeletion, error) {
	sinceNS, err := nanos("since", since)
	if err != nil {
		return nil, err
	}
	out := map[string]NewestDeletion{}
	if len(reasons) == 0 {
		return out, nil
	}
	args := []any{sinceNS}
	in := ""
	for i, r := range reasons {
		if i > 0 {
			in += ", "
		}
		args = append(args, r)
		in += fmt.Sprintf("$%d", i+2)
	}
	// The first row per camera by end, newest first (the lowest id among equal ends):
	// the reason of that deletion.
	rows, err := c.r.QueryContext(ctx, `SELECT camera, reason, end_ns FROM (
	SELECT camera, reason, end_ns, ROW_NUMBER() OVER (PARTITION BY camera ORDER BY end_ns DESC, id) AS n
	FROM deletions WHERE deleted_ns >= $1 AND reason IN (`+in+`)
) AS newest WHERE n = 1`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var camera, reason string
		var end int64
		if err := rows.Scan(&camera, &reason, &end); err != nil {
			return nil, err
		}
		out[camera] = NewestDeletion{End: fromNanos(end), Reason: reason}
	}
	return out, rows.Err()
}

// DeletionOfSegment returns the deletion of segment id, or an error wrapping ErrNotFound
// (ids are never reused, so there is at most one). Playback answers a request for a
// deleted segment with it: when it went and why.
func (c *Catalog) DeletionOfSegment(ctx context.Context, id int64) (Deletion, error) {
	d, err := scanDeletion(c.r.QueryRowContext(ctx, `SELECT `+deletionColumns+` FROM deletions WHERE segment_id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Deletion{}, fmt.Errorf("catalog: deletion of segment %d: %w", id, err)
	}
	return d, nil
}
