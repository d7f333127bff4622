package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
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

// BenchmarkRecordingCameras32 is the catalog's write load of 32 recording cameras on the
// pass's backend (the name says which). Each camera writes what the recorder writes for a
// segment: CreateSegment, five progress updates, CloseSegment with a 60-fragment index.
// One op is one segment's life of one camera. It reports each write's latency (p50, p99,
// max) and the writes per second the catalog took.
//
//   - pace=10x: the recorder's rhythm ten times faster (a write a second per camera, a
//     segment every 6 s instead of 60 s; cameras not in step), 37 writes/s in all: the
//     latency a camera sees with headroom, as in service.
//   - pace=saturated: every camera writes back to back, so the latency is mostly queueing
//     behind the 31 others, and writes/s is what the catalog can take at most.
func BenchmarkRecordingCameras32(b *testing.B) {
	for _, pace := range []struct {
		name  string
		every time.Duration // between one camera's writes; 0 = back to back
	}{{"10x", time.Second}, {"saturated", 0}} {
		b.Run("backend="+backend+"/pace="+pace.name, func(b *testing.B) {
			recordingCameras(b, 32, pace.every)
		})
	}
}

func recordingCameras(b *testing.B, cameras int, every time.Duration) {
	const progress = 5
	ctx := context.Background()
	c, _ := openTest(b)
	index := make([]Fragment, 60)
	for i := range index {
		index[i] = Fragment{Offset: int64(i) * 100_000, Length: 100_000, Keyframe: 0, Duration: time.Second}
	}
	var mu sync.Mutex
	var lat []time.Duration
	var next atomic.Int64
	b.ResetTimer()
	began := time.Now()
	var wg sync.WaitGroup
	for cam := range cameras {
		wg.Go(func() {
			camera := fmt.Sprintf("cam%02d", cam)
			var own []time.Duration
			due := began.Add(time.Duration(cam) * every / time.Duration(cameras))
			timed := func(write func() error) {
				time.Sleep(time.Until(due))
				start := time.Now()
				if err := write(); err != nil {
					b.Error(err)
				}
				own = append(own, time.Since(start))
				due = due.Add(every)
			}
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				start := at(time.Duration(i) * time.Minute)
				var id int64
				timed(func() (err error) {
					id, err = c.CreateSegment(ctx, Segment{Camera: camera, Stream: "main", Start: start, Path: segPath(camera, "main", start), Codec: "H264"})
					return err
				})
				for p := 1; p <= progress; p++ {
					timed(func() error {
						return c.UpdateOpenSegment(ctx, id, start.Add(time.Duration(p)*10*time.Second), int64(p)<<20, int64(p)*250)
					})
				}
				timed(func() error { return c.CloseSegment(ctx, id, start.Add(time.Minute), 6<<20, 1500, sha(int(i)), index) })
			}
			mu.Lock()
			lat = append(lat, own...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(began)
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.5), "p50-ms/write")
	b.ReportMetric(pct(0.99), "p99-ms/write")
	b.ReportMetric(pct(1), "max-ms/write")
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "writes/s")
}
