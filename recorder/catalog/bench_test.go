package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkCreateAndCloseSegment measures one segment's life in the catalog: CreateSegment
// and CloseSegment, two commits. FULL is what Open uses; NORMAL shows what its per-commit
// WAL fsync costs.
func BenchmarkCreateAndCloseSegment(b *testing.B) {
	for _, sync := range []string{"FULL", "NORMAL"} {
		b.Run("synchronous="+sync, func(b *testing.B) {
			ctx := context.Background()
			c, err := open(ctx, filepath.Join(b.TempDir(), "catalog.db"), sync)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				start := at(time.Duration(i) * time.Minute)
				id, err := c.CreateSegment(ctx, Segment{Camera: "a", Stream: "main", Start: start, Path: segPath("a", "main", start), Codec: "H264"})
				if err != nil {
					b.Fatal(err)
				}
				if err := c.CloseSegment(ctx, id, start.Add(time.Minute), 1<<20, 1500, sha(i), nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// weekOfSegments fills a catalog with 1 camera × 7 days of closed 60 s segments (10080
// rows) in one transaction, through the same SQL as CreateSegment and CloseSegment.
func weekOfSegments(b *testing.B) *Catalog {
	b.Helper()
	ctx := context.Background()
	c, err := Open(ctx, filepath.Join(b.TempDir(), "catalog.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	err = c.write(ctx, func(tx *sql.Tx) error {
		if err := ensureCamera(ctx, tx, "a"); err != nil {
			return err
		}
		for i := range 7 * 24 * 60 {
			start := at(time.Duration(i) * time.Minute)
			if _, err := tx.ExecContext(ctx, `INSERT INTO segments (camera, stream, start_ns, end_ns, path, bytes, sha256, codec, width, height, audio, gap_before, open, frames)
VALUES ('a', 'main', $1, $2, $3, 1048576, $4, 'H264', 1920, 1080, 0, 0, 0, 1500)`,
				start.UnixNano(), start.Add(time.Minute).UnixNano(), segPath("a", "main", start), sha(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkSegmentsQuery: one hour out of a week of one camera's footage.
func BenchmarkSegmentsQuery(b *testing.B) {
	c := weekOfSegments(b)
	ctx := context.Background()
	from := at(84*time.Hour + 30*time.Second) // mid-week, mid-segment: 61 segments
	b.ResetTimer()
	for b.Loop() {
		segs, err := c.Segments(ctx, "a", from, from.Add(time.Hour))
		if err != nil {
			b.Fatal(err)
		}
		if len(segs) != 61 {
			b.Fatalf("%d segments, want 61", len(segs))
		}
	}
}

// BenchmarkCoverage: one camera's timeline for a day out of a week.
func BenchmarkCoverage(b *testing.B) {
	c := weekOfSegments(b)
	ctx := context.Background()
	from := at(72 * time.Hour)
	b.ResetTimer()
	for b.Loop() {
		cov, err := c.Coverage(ctx, nil, from, from.Add(24*time.Hour), time.Second)
		if err != nil {
			b.Fatal(err)
		}
		if len(cov) != 1 || len(cov[0].Spans) != 1 {
			b.Fatalf("coverage %+v, want one recorded span", cov)
		}
	}
}

// BenchmarkSearchMotion: "when did something move here" over 24 h of 16 cameras, a busy
// town square: motion in every minute, in 40 of its seconds, over 6 of the 256 cells
// each, so the search reads 23 040 minute rows (about 30 MB of grid).
func BenchmarkSearchMotion(b *testing.B) {
	ctx := context.Background()
	c, err := open(ctx, filepath.Join(b.TempDir(), "catalog.db"), "NORMAL")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	cams := make([]string, 16)
	for i := range cams {
		cams[i] = fmt.Sprintf("cam%02d", i)
	}
	day := t0.Truncate(24 * time.Hour)
	err = c.write(ctx, func(tx *sql.Tx) error {
		for ci, cam := range cams {
			for m := range 24 * 60 {
				var secs [60]GridCells
				for s := range 40 {
					for k := range 6 { // a car along row (m+s)%16
						i := ((m+s+ci)%16)*16 + (s+k)%16
						secs[s][i/8] |= 1 << (i % 8)
					}
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO motion_grid (camera, minute_ns, seconds) VALUES ($1, $2, $3)`,
					cam, day.Add(time.Duration(m)*time.Minute).UnixNano(), encodeGridMinute(&secs)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var want GridCells
	want[(5*16+5)/8] |= 1 << ((5*16 + 5) % 8)
	var hits int
	for b.Loop() {
		h, err := c.SearchMotion(ctx, cams, day, day.Add(24*time.Hour), want, 1)
		if err != nil {
			b.Fatal(err)
		}
		hits = len(h)
	}
	b.ReportMetric(float64(hits), "hits")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/search")
}
