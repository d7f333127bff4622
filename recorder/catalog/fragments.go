package catalog

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Fragment is one moof+mdat pair of a segment file: where its bytes are and which time
// it covers. Playback fetches footage by these byte ranges, so the index is kept in the
// catalog (written with the segment's closing row) and answering "what is where" never
// reads a file header.
type Fragment struct {
	Offset, Length int64
	// Start is the fragment's first video decode time from the segment's start, Duration
	// its video duration.
	Start, Duration time.Duration
	// Keyframe is the decode time, from the segment's start, of the fragment's first
	// keyframe; -1 when it has none. Fragments are cut by time, not at keyframes, so a
	// seek starts at the last fragment whose keyframe is at or before the target.
	Keyframe time.Duration
}

// fragmentIndexVersion is the first byte of an encoded index.
const fragmentIndexVersion = 1

// encodeFragments packs an index as varints: offset (as the gap after the previous
// fragment, 0 in a well-formed file), length, start (as the step from the previous
// start), duration, and keyframe+1 from the fragment's start (0: none). A 60 s segment of
// 1 s fragments takes about 500 bytes.
func encodeFragments(idx []Fragment) ([]byte, error) {
	if len(idx) == 0 {
		return nil, nil
	}
	out := make([]byte, 1, 1+len(idx)*12)
	out[0] = fragmentIndexVersion
	var end int64
	var start time.Duration
	for i, f := range idx {
		switch {
		case f.Offset < end || f.Length <= 0:
			return nil, fmt.Errorf("fragment %d: bytes %d+%d overlap the previous one or are empty", i+1, f.Offset, f.Length)
		case f.Start < start || f.Duration < 0:
			return nil, fmt.Errorf("fragment %d: time %v+%v goes back", i+1, f.Start, f.Duration)
		case f.Keyframe >= 0 && (f.Keyframe < f.Start || f.Keyframe >= f.Start+max(f.Duration, 1)):
			return nil, fmt.Errorf("fragment %d: keyframe at %v is outside %v+%v", i+1, f.Keyframe, f.Start, f.Duration)
		}
		key := uint64(0)
		if f.Keyframe >= 0 {
			key = uint64(f.Keyframe-f.Start) + 1
		}
		out = binary.AppendUvarint(out, uint64(f.Offset-end))
		out = binary.AppendUvarint(out, uint64(f.Length))
		out = binary.AppendUvarint(out, uint64(f.Start-start))
		out = binary.AppendUvarint(out, uint64(f.Duration))
		out = binary.AppendUvarint(out, key)
		end, start = f.Offset+f.Length, f.Start
	}
	return out, nil
}

var errBadFragmentIndex = errors.New("malformed fragment index")

// decodeFragments reverses encodeFragments.
func decodeFragments(b []byte) ([]Fragment, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if b[0] != fragmentIndexVersion {
		return nil, fmt.Errorf("%w: version %d", errBadFragmentIndex, b[0])
	}
	b = b[1:]
	var out []Fragment
	var end int64
	var start time.Duration
	for len(b) > 0 {
		var v [5]uint64
		for i := range v {
			n := 0
			if v[i], n = binary.Uvarint(b); n <= 0 || v[i] > 1<<62 {
				return nil, fmt.Errorf("%w: fragment %d", errBadFragmentIndex, len(out)+1)
			}
			b = b[n:]
		}
		f := Fragment{Offset: end + int64(v[0]), Length: int64(v[1]), Start: start + time.Duration(v[2]),
			Duration: time.Duration(v[3]), Keyframe: -1}
		if v[4] > 0 {
			f.Keyframe = f.Start + time.Duration(v[4]-1)
		}
		out = append(out, f)
		end, start = f.Offset+f.Length, f.Start
	}
	return out, nil
}

// Fragments returns the fragment index of the closed segments ids, by id. A segment
// indexed before the catalog kept fragment indexes, or still open, has none (no entry);
// an unknown id has none either.
func (c *Catalog) Fragments(ctx context.Context, ids []int64) (map[int64][]Fragment, error) {
	out := make(map[int64][]Fragment, len(ids))
	// One query per bounded batch: SQLite and PostgreSQL both take a list of parameters,
	// and a 2 h playlist of 1 min segments is 120 ids.
	const batch = 200
	for len(ids) > 0 {
		n := min(len(ids), batch)
		if err := c.fragmentsBatch(ctx, ids[:n], out); err != nil {
			return nil, fmt.Errorf("catalog: fragment indexes: %w", err)
		}
		ids = ids[n:]
	}
	return out, nil
}

func (c *Catalog) fragmentsBatch(ctx context.Context, ids []int64, out map[int64][]Fragment) error {
	query := `SELECT id, fragments FROM segments WHERE fragments IS NOT NULL AND id IN (`
	args := make([]any, len(ids))
	for i, id := range ids {
		if i > 0 {
			query += ", "
		}
		query += fmt.Sprintf("$%d", i+1)
		args[i] = id
	}
	rows, err := c.r.QueryContext(ctx, query+`)`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var blob []byte
		if err := rows.Scan(&id, &blob); err != nil {
			return err
		}
		idx, err := decodeFragments(blob)
		if err != nil {
			return fmt.Errorf("segment %d: %w", id, err)
		}
		out[id] = idx
	}
	return rows.Err()
}

// nullBlob stores an empty index as NULL: "no index", which Fragments leaves out.
func nullBlob(b []byte) any {
	if len(b) == 0 {
		return sql.Null[[]byte]{}
	}
	return b
}
