package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"time"
)

// GridCells is one second's moving cells of the 16×16 motion search grid (motion.Grid):
// bit y*16+x is the cell in column x, row y.
type GridCells [32]byte

// GridMinute is one camera-minute of the motion search grid.
type GridMinute struct {
	Camera  string
	Start   time.Time // truncated to the minute
	Seconds [60]GridCells
}

// encodeGridMinute keeps only the seconds with motion: a byte for the second, then its
// 32 bytes. A minute with one car passing is about 100 bytes.
func encodeGridMinute(secs *[60]GridCells) []byte {
	var out []byte
	for s := range secs {
		if secs[s] != (GridCells{}) {
			out = append(out, byte(s))
			out = append(out, secs[s][:]...)
		}
	}
	return out
}

var errBadGrid = errors.New("malformed motion grid")

func decodeGridMinute(b []byte, secs *[60]GridCells) error {
	for len(b) > 0 {
		if len(b) < 33 || b[0] >= 60 {
			return errBadGrid
		}
		copy(secs[b[0]][:], b[1:33])
		b = b[33:]
	}
	return nil
}

// AddGridMinute stores a camera-minute of the search grid. A minute stored before (a
// worker restarted within it) is merged: cells only ever add up.
func (c *Catalog) AddGridMinute(ctx context.Context, m GridMinute) error {
	if err := c.addGridMinute(ctx, m); err != nil {
		return fmt.Errorf("catalog: motion grid of %s at %s: %w", m.Camera, m.Start.UTC().Format(time.RFC3339), err)
	}
	return nil
}

func (c *Catalog) addGridMinute(ctx context.Context, m GridMinute) error {
	if m.Camera == "" {
		return errors.New("camera is empty")
	}
	minute, err := nanos("start", m.Start.Truncate(time.Minute))
	if err != nil {
		return err
	}
	return c.write(ctx, func(tx *sql.Tx) error {
		var old []byte
		switch err := tx.QueryRowContext(ctx, `SELECT seconds FROM motion_grid WHERE camera = $1 AND minute_ns = $2`, m.Camera, minute).Scan(&old); {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		default:
			var prev [60]GridCells
			if err := decodeGridMinute(old, &prev); err != nil {
				return err
			}
			for s := range prev {
				for i := range prev[s] {
					m.Seconds[s][i] |= prev[s][i]
				}
			}
		}
		blob := encodeGridMinute(&m.Seconds)
		if len(blob) == 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO motion_grid (camera, minute_ns, seconds) VALUES ($1, $2, $3)
ON CONFLICT (camera, minute_ns) DO UPDATE SET seconds = excluded.seconds`, m.Camera, minute, blob)
		return err
	})
}

// MotionHit is a stretch of time in which something moved in the searched cells.
type MotionHit struct {
	Camera     string
	Start, End time.Time
	Cells      int // the most searched cells moving in one second of it
}

// motionHitJoin merges moving seconds into one hit across up to this much stillness: the
// analyser looks at a few frames a second, and an object may cross a cell boundary
// between two of them.
const motionHitJoin = 2 * time.Second

// SearchMotion finds when something moved in the cells of want (at least minCells of them in
// one second) on cameras in [from, to), with no decoding: it reads the stored grid only.
// Hits are ordered by camera (as given) and time.
func (c *Catalog) SearchMotion(ctx context.Context, cameras []string, from, to time.Time, want GridCells, minCells int) ([]MotionHit, error) {
	hits, err := c.searchMotion(ctx, cameras, from, to, want, max(minCells, 1))
	if err != nil {
		return nil, fmt.Errorf("catalog: motion search: %w", err)
	}
	return hits, nil
}

func (c *Catalog) searchMotion(ctx context.Context, cameras []string, from, to time.Time, want GridCells, minCells int) ([]MotionHit, error) {
	fromNS, toNS, err := timeRange(from, to)
	if err != nil {
		return nil, err
	}
	if len(cameras) == 0 {
		return nil, nil
	}
	ph := make([]string, len(cameras))
	args := []any{fromNS - int64(time.Minute), toNS}
	for i, cam := range cameras {
		ph[i] = fmt.Sprintf("$%d", i+3)
		args = append(args, cam)
	}
	rows, err := c.r.QueryContext(ctx, `SELECT camera, minute_ns, seconds FROM motion_grid
WHERE minute_ns > $1 AND minute_ns < $2 AND camera IN (`+strings.Join(ph, ", ")+`) ORDER BY camera, minute_ns`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	byCamera := map[string][]MotionHit{}
	for rows.Next() {
		var camera string
		var minute int64
		var blob []byte
		if err := rows.Scan(&camera, &minute, &blob); err != nil {
			return nil, err
		}
		// Walk the sparse seconds as stored: only seconds with motion are there.
		for b := blob; len(b) > 0; b = b[33:] {
			if len(b) < 33 || b[0] >= 60 {
				return nil, fmt.Errorf("%w: camera %s minute %s", errBadGrid, camera, fromNanos(minute).Format(time.RFC3339))
			}
			n := 0
			for i := range want {
				n += bits.OnesCount8(b[1+i] & want[i])
			}
			if n < minCells {
				continue
			}
			start := fromNanos(minute + int64(b[0])*int64(time.Second))
			end := start.Add(time.Second)
			if !end.After(from) || !start.Before(to) {
				continue
			}
			hs := byCamera[camera]
			if k := len(hs) - 1; k >= 0 && !start.After(hs[k].End.Add(motionHitJoin-time.Second)) {
				hs[k].End, hs[k].Cells = end, max(hs[k].Cells, n)
			} else {
				hs = append(hs, MotionHit{Camera: camera, Start: start, End: end, Cells: n})
			}
			byCamera[camera] = hs
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []MotionHit
	for _, cam := range cameras {
		out = append(out, byCamera[cam]...) // in time order: minutes and their seconds are
	}
	return out, nil
}
