package archive

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// BenchmarkArchiveThroughput moves segments (4 s of 1080p at 4 Mbit/s each) to a local
// versitygw: upload, read back, SHA-256, mark, remove. MB/s is footage moved per second;
// cpu-s/GB is this process's CPU time per GB moved (the server's own is not counted).
func BenchmarkArchiveThroughput(b *testing.B) {
	fx := newFixture(b, time.Duration(b.N)*4*time.Second)
	ctx := context.Background()
	cpu0 := processCPU()
	b.SetBytes(int64(len(fx.bytes)))
	b.ResetTimer()
	rep := fx.job.Pass(ctx)
	b.StopTimer()
	if rep.Err != nil || rep.Archived != len(fx.segs) {
		b.Fatalf("pass: %+v", rep)
	}
	gb := float64(len(fx.segs)*len(fx.bytes)) / 1e9
	b.ReportMetric((processCPU()-cpu0).Seconds()/gb, "cpu-s/GB")
}

// BenchmarkRangeRead opens a segment and reads one 512 KiB range (about a fragment), as
// a browser's Range request does through playback: a segment on the local disk against
// an archived one, both through Storage.OpenMedia.
func BenchmarkRangeRead(b *testing.B) {
	fx := newFixture(b, 8*time.Second)
	ctx := context.Background()
	fx.job.Now = func() time.Time { return t0.Add(fx.job.After + 5*time.Second) } // only the first is due
	if rep := fx.job.Pass(ctx); rep.Err != nil || rep.Archived != 1 {
		b.Fatalf("pass: %+v", rep)
	}
	buf := make([]byte, 512<<10)
	off := int64(len(fx.bytes)) / 3
	for _, c := range []struct {
		name string
		path string
	}{{"local", fx.segs[1].Path}, {"archived", fx.segs[0].Path}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				m, err := fx.st.OpenMedia(ctx, c.path)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := m.ReadAt(buf, off); err != nil {
					b.Fatal(err)
				}
				m.Close()
			}
		})
	}
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
