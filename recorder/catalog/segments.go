package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"time"
)

// Segment is one recorded media file.
type Segment struct {
	ID            int64
	Camera        string
	Stream        string    // "main" or "sub"
	Start, End    time.Time // UTC; End == Start while open and empty
	Path          string    // relative to the storage path, slash-separated: recordings/<camera>/<YYYY>/<MM>/<DD>/<start>.mp4
	Bytes         int64
	SHA256        string // lowercase hex; "" while open
	Codec         string // "H264", "H265"
	MIMECodecs    string // RFC 6381 codecs of the file's tracks, e.g. "avc1.640028,mp4a.40.2"; "" if unknown
	Width, Height int
	Audio         bool
	GapBefore     bool  // footage is missing just before this segment (reconnect, resync, restart)
	Open          bool  // still being written
	Frames        int64 // video frames in the segment
	// PrevSHA256 is the SHA-256 of the camera's previous segment of the same stream when
	// this one closed ("" for the first): the link of the per-camera hash chain that
	// `townwatch verify-archive` walks. Chained is false for segments closed before the
	// catalog kept the chain, and while open.
	PrevSHA256 string
	Chained    bool
	// Archived is when the segment's bytes were verified in the archive tier's bucket
	// (recorder/archive); zero while they are on the local disk only. Once set, the
	// local file may be gone: readers go through recorder.Storage, which finds either.
	Archived time.Time
	// Node is the recorder node whose disk holds the file (see SetNode); "" in a
	// single-node installation.
	Node string
}

const segmentColumns = `id, camera, stream, start_ns, end_ns, path, bytes, sha256, codec, width, height, audio, gap_before, open, frames, mime_codecs, prev_sha256, archived_ns, node`

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func scanSegment(sc scanner) (Segment, error) {
	var s Segment
	var start, end int64
	var prev sql.NullString
	var archived sql.NullInt64
	err := sc.Scan(&s.ID, &s.Camera, &s.Stream, &start, &end, &s.Path, &s.Bytes, &s.SHA256,
		&s.Codec, &s.Width, &s.Height, &s.Audio, &s.GapBefore, &s.Open, &s.Frames, &s.MIMECodecs, &prev, &archived, &s.Node)
	s.Start, s.End = fromNanos(start), fromNanos(end)
	if archived.Valid {
		s.Archived = fromNanos(archived.Int64)
	}
	s.PrevSHA256, s.Chained = prev.String, prev.Valid
	return s, err
}

func collectSegments(rows *sql.Rows, err error) ([]Segment, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Segment
	for rows.Next() {
		s, err := scanSegment(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// CreateSegment indexes a new, open segment and returns its id. s.ID, s.Open, s.SHA256
// and s.Node (always this Catalog's node) are ignored: a new segment is open and has no digest yet. A zero s.End means s.Start.
// The camera's row is created on demand. A path the catalog already indexes is an error
// wrapping ErrExists.
func (c *Catalog) CreateSegment(ctx context.Context, s Segment) (int64, error) {
	id, err := c.createSegment(ctx, s)
	if err != nil {
		return 0, fmt.Errorf("catalog: create segment %s: %w", s.Path, err)
	}
	return id, nil
}

func (c *Catalog) createSegment(ctx context.Context, s Segment) (int64, error) {
	if s.Camera == "" {
		return 0, errors.New("camera is empty")
	}
	if s.Stream != "main" && s.Stream != "sub" {
		return 0, fmt.Errorf("stream %q: must be main or sub", s.Stream)
	}
	// The path is joined to the storage root to find the bytes; refusing anything that is
	// not a clean relative path keeps a row from ever naming a file outside it.
	if !fs.ValidPath(s.Path) || s.Path == "." {
		return 0, errors.New("path must be relative, slash-separated and clean")
	}
	start, err := nanos("start", s.Start)
	if err != nil {
		return 0, err
	}
	end := start
	if !s.End.IsZero() {
		if end, err = nanos("end", s.End); err != nil {
			return 0, err
		}
		if end < start {
			return 0, fmt.Errorf("end %s is before start %s", fromNanos(end).Format(time.RFC3339Nano), fromNanos(start).Format(time.RFC3339Nano))
		}
	}
	if s.Bytes < 0 || s.Frames < 0 {
		return 0, fmt.Errorf("bytes (%d) and frames (%d) must not be negative", s.Bytes, s.Frames)
	}
	var id int64
	err = c.write(ctx, func(tx *sql.Tx) error {
		// Checked rather than left to the UNIQUE constraint so the error says which
		// segment holds the path, in a way that does not depend on the SQL dialect.
		var other int64
		switch err := tx.QueryRowContext(ctx, `SELECT id FROM segments WHERE path = $1`, s.Path).Scan(&other); {
		case err == nil:
			return fmt.Errorf("path is indexed as segment %d: %w", other, ErrExists)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if err := ensureCamera(ctx, tx, s.Camera); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `INSERT INTO segments (camera, stream, start_ns, end_ns, path, bytes, sha256, codec, width, height, audio, gap_before, open, frames, mime_codecs, node)
VALUES ($1, $2, $3, $4, $5, $6, '', $7, $8, $9, $10, $11, 1, $12, $13, $14)
RETURNING id`,
			s.Camera, s.Stream, start, end, s.Path, s.Bytes, s.Codec, s.Width, s.Height, boolInt(s.Audio), boolInt(s.GapBefore), s.Frames, s.MIMECodecs, c.node).Scan(&id)
	})
	return id, err
}

// UpdateOpenSegment records the progress of an open segment, so searches see live
// footage up to end.
func (c *Catalog) UpdateOpenSegment(ctx context.Context, id int64, end time.Time, bytes, frames int64) error {
	if err := c.updateSegment(ctx, id, end, bytes, frames, "", false, nil); err != nil {
		return fmt.Errorf("catalog: update open segment %d: %w", id, err)
	}
	return nil
}

// CloseSegment finishes an open segment with its final end, size, frame count, SHA-256
// (lowercase hex) and fragment index (nil: none known). Closing an unknown segment wraps
// ErrNotFound; closing one twice wraps ErrSegmentClosed. The digest is always required: a
// segment that ended up with no bytes is closed with bytes 0 and the SHA-256 of no input
// (e3b0c442…b855), which keeps "every closed row's size and digest match its file"
// checkable. Closing also links the segment into its camera's hash chain (PrevSHA256). A
// malformed index is left out and reported as ErrIndexDropped once the row is closed.
func (c *Catalog) CloseSegment(ctx context.Context, id int64, end time.Time, bytes, frames int64, sha256 string, index []Fragment) error {
	if !sha256Hex.MatchString(sha256) {
		return fmt.Errorf("catalog: close segment %d: sha256 %q is not 64 lowercase hex digits", id, sha256)
	}
	blob, indexErr := encodeFragments(index)
	if err := c.updateSegment(ctx, id, end, bytes, frames, sha256, true, blob); err != nil {
		return fmt.Errorf("catalog: close segment %d: %w", id, err)
	}
	if indexErr != nil {
		return fmt.Errorf("catalog: close segment %d: %w: %v", id, ErrIndexDropped, indexErr)
	}
	return nil
}

// updateSegment changes an open segment's end, size and frames, and closes it if close
// (with its fragment index and chain link).
func (c *Catalog) updateSegment(ctx context.Context, id int64, end time.Time, bytes, frames int64, sha256 string, close bool, index []byte) error {
	endNS, err := nanos("end", end)
	if err != nil {
		return err
	}
	if bytes < 0 || frames < 0 {
		return fmt.Errorf("bytes (%d) and frames (%d) must not be negative", bytes, frames)
	}
	open := !close
	return c.write(ctx, func(tx *sql.Tx) error {
		var res sql.Result
		var err error
		if close {
			var prev string
			if prev, err = chainPredecessor(ctx, tx, id); err != nil {
				return err
			}
			res, err = tx.ExecContext(ctx, `UPDATE segments SET end_ns = $2, bytes = $3, frames = $4, sha256 = $5, open = 0,
	fragments = $6, prev_sha256 = $7
WHERE id = $1 AND open = 1 AND start_ns <= $2`, id, endNS, bytes, frames, sha256, nullBlob(index), prev)
		} else {
			res, err = tx.ExecContext(ctx, `UPDATE segments SET end_ns = $2, bytes = $3, frames = $4, sha256 = $5, open = $6
WHERE id = $1 AND open = 1 AND start_ns <= $2`, id, endNS, bytes, frames, sha256, boolInt(open))
		}
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		// Nothing changed: say why.
		var isOpen bool
		var start int64
		switch err := tx.QueryRowContext(ctx, `SELECT open, start_ns FROM segments WHERE id = $1`, id).Scan(&isOpen, &start); {
		case errors.Is(err, sql.ErrNoRows):
			return ErrNotFound
		case err != nil:
			return err
		case !isOpen:
			return ErrSegmentClosed
		default:
			return fmt.Errorf("end %s is before start %s", end.UTC().Format(time.RFC3339Nano), fromNanos(start).Format(time.RFC3339Nano))
		}
	})
}

// chainPredecessor returns the SHA-256 of the segment before segment id in its camera's
// and stream's chain: the latest-starting one that starts before it, kept or deleted (a
// deletion row keeps the digest, so retention never breaks the chain); "" when there is
// none. A predecessor still open has no digest yet and yields an empty link, which
// verify-archive reports as broken rather than passing it. Each side is one step down an
// index ((camera, start_ns) on both tables): closing a segment must not cost more as the
// archive grows.
func chainPredecessor(ctx context.Context, tx *sql.Tx, id int64) (string, error) {
	var camera, stream string
	var start int64
	switch err := tx.QueryRowContext(ctx, `SELECT camera, stream, start_ns FROM segments WHERE id = $1`, id).Scan(&camera, &stream, &start); {
	case errors.Is(err, sql.ErrNoRows):
		return "", nil // the UPDATE finds nothing either and says why
	case err != nil:
		return "", err
	}
	var prev string
	err := tx.QueryRowContext(ctx, `SELECT p.sha256 FROM (
	SELECT * FROM (SELECT start_ns, id, sha256 FROM segments
		WHERE camera = $1 AND stream = $2 AND start_ns < $3 ORDER BY start_ns DESC, id DESC LIMIT 1) AS s
	UNION ALL
	SELECT * FROM (SELECT start_ns, segment_id, sha256 FROM deletions
		WHERE camera = $1 AND stream = $2 AND start_ns < $3 ORDER BY start_ns DESC, segment_id DESC LIMIT 1) AS d
) p ORDER BY p.start_ns DESC, p.id DESC LIMIT 1`, camera, stream, start).Scan(&prev)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return prev, err
}

// OpenSegments returns the segments still being written, ordered by camera and start.
// At start-up these are the ones a crash interrupted.
func (c *Catalog) OpenSegments(ctx context.Context) ([]Segment, error) {
	segs, err := collectSegments(c.r.QueryContext(ctx, `SELECT `+segmentColumns+` FROM segments WHERE open = 1 ORDER BY camera, start_ns, id`))
	if err != nil {
		return nil, fmt.Errorf("catalog: open segments: %w", err)
	}
	return segs, nil
}

// Segment returns the segment with id, or an error wrapping ErrNotFound.
func (c *Catalog) Segment(ctx context.Context, id int64) (Segment, error) {
	s, err := scanSegment(c.r.QueryRowContext(ctx, `SELECT `+segmentColumns+` FROM segments WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Segment{}, fmt.Errorf("catalog: segment %d: %w", id, err)
	}
	return s, nil
}

// SegmentByPath returns the segment stored at path, or an error wrapping ErrNotFound.
func (c *Catalog) SegmentByPath(ctx context.Context, path string) (Segment, error) {
	s, err := scanSegment(c.r.QueryRowContext(ctx, `SELECT `+segmentColumns+` FROM segments WHERE path = $1`, path))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Segment{}, fmt.Errorf("catalog: segment %s: %w", path, err)
	}
	return s, nil
}

// overlapsRange is the WHERE clause of the segments of camera $1 that overlap [$2, $3),
// both streams, open ones included.
//
// A segment covers [start, end); one with end == start (open and still empty, or a
// single frame) covers its start instant. The lower bound on start_ns adds nothing to the
// result: no segment is longer than the longest, so one starting earlier than $2 minus
// that cannot reach $2. It lets SQLite scan the (camera, start_ns) index from just before
// the range instead of from the camera's oldest segment; the longest duration itself is
// one seek into segments_camera_duration (tens of µs, against about 1 ms to scan a
// week of one camera's entries).
const overlapsRange = `camera = $1
	AND start_ns < $3
	AND start_ns >= $2 - COALESCE((SELECT MAX(end_ns - start_ns) FROM segments WHERE camera = $1), 0)
	AND (end_ns > $2 OR start_ns >= $2)`

// Segments returns camera's segments (both streams) that overlap [from, to), ordered by
// start. A segment ending exactly at from or starting exactly at to does not overlap.
func (c *Catalog) Segments(ctx context.Context, camera string, from, to time.Time) ([]Segment, error) {
	segs, err := c.segments(ctx, camera, from, to)
	if err != nil {
		return nil, fmt.Errorf("catalog: segments of %q: %w", camera, err)
	}
	return segs, nil
}

func (c *Catalog) segments(ctx context.Context, camera string, from, to time.Time) ([]Segment, error) {
	if camera == "" {
		return nil, errors.New("camera is empty")
	}
	fromNS, toNS, err := timeRange(from, to)
	if err != nil {
		return nil, err
	}
	return collectSegments(c.r.QueryContext(ctx, `SELECT `+segmentColumns+` FROM segments WHERE `+overlapsRange+` ORDER BY start_ns, stream, id`,
		camera, fromNS, toNS))
}

// timeRange converts a query range [from, to), which must not be empty.
func timeRange(from, to time.Time) (int64, int64, error) {
	fromNS, err := nanos("from", from)
	if err != nil {
		return 0, 0, err
	}
	toNS, err := nanos("to", to)
	if err != nil {
		return 0, 0, err
	}
	if toNS <= fromNS {
		return 0, 0, fmt.Errorf("to %s is not after from %s", to.UTC().Format(time.RFC3339Nano), from.UTC().Format(time.RFC3339Nano))
	}
	return fromNS, toNS, nil
}

// AllSegments returns every segment, ordered by camera and start: the list start-up
// verification checks against the files on disk.
func (c *Catalog) AllSegments(ctx context.Context) ([]Segment, error) {
	segs, err := collectSegments(c.r.QueryContext(ctx, `SELECT `+segmentColumns+` FROM segments ORDER BY camera, start_ns, stream, id`))
	if err != nil {
		return nil, c.note(fmt.Errorf("catalog: all segments: %w", err))
	}
	return segs, nil
}

// BytesByCamera returns the bytes of every camera's segments on the local disk, open ones
// included (their bytes are on disk too); archived segments are not counted, since the
// quotas they feed are about the local disk (on one of several nodes: this node's disk).
// Cameras without local segments are absent.
func (c *Catalog) BytesByCamera(ctx context.Context) (map[string]int64, error) {
	var args []any
	scope := c.onThisNode("", &args)
	m, err := c.bytesPerCamera(ctx, `SELECT camera, SUM(bytes) FROM segments WHERE archived_ns IS NULL`+scope+` GROUP BY camera`, args...)
	if err != nil {
		return nil, c.note(fmt.Errorf("catalog: bytes by camera: %w", err))
	}
	return m, nil
}

// TotalBytes returns the bytes of all segments on the local disk, open ones included (on
// one of several nodes: this node's disk; see onThisNode).
func (c *Catalog) TotalBytes(ctx context.Context) (int64, error) {
	var n int64
	var args []any
	scope := c.onThisNode("", &args)
	if err := c.r.QueryRowContext(ctx, `SELECT COALESCE(SUM(bytes), 0) FROM segments WHERE archived_ns IS NULL`+scope, args...).Scan(&n); err != nil {
		return 0, c.note(fmt.Errorf("catalog: total bytes: %w", err))
	}
	return n, nil
}

// bytesPerCamera runs a (camera, bytes) query on the read pool into a map.
func (c *Catalog) bytesPerCamera(ctx context.Context, query string, args ...any) (map[string]int64, error) {
	rows, err := c.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := make(map[string]int64)
	for rows.Next() {
		var camera string
		var n int64
		if err := rows.Scan(&camera, &n); err != nil {
			return nil, err
		}
		m[camera] = n
	}
	return m, rows.Err()
}
