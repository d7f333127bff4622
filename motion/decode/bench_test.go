package decode

import (
	"syscall"
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/motion/internal/testclip"
)

// BenchmarkScale measures the luma scalers on a 640×360 (sub stream) and a 1080p (main
// stream) keyframe, reporting ns per 320-wide picture and the mean abs diff from ffmpeg's
// area-averaged scaling of the same picture (mad_vs_area, gray levels).
func BenchmarkScale(b *testing.B) {
	for _, clip := range []struct {
		name string
		path func(testing.TB) string
	}{
		{"640x360", func(testing.TB) string { return motionClip }},
		{"1920x1080", func(tb testing.TB) string { return testclip.Make(tb, hdArgs...) }},
	} {
		path := clip.path(b)
		ref := reference(b, path, 320, 180, "-skip_frame", "nokey")
		key := load(b, path, ingest.CodecH264, 25)[0]
		for _, s := range []struct {
			name  string
			flags scaler
		}{{"fast_bilinear", fastBilinear}, {"bilinear", bilinear}, {"area", area}} {
			b.Run(clip.name+"/"+s.name, func(b *testing.B) {
				d := newDecoder(b, ingest.CodecH264, 0)
				m := newMat(b)
				if ok, err := d.Decode(key, true, m); !ok || err != nil {
					b.Fatalf("picture %v, error %v", ok, err)
				}
				for b.Loop() {
					if err := d.scaleGray(m, s.flags); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(meanAbsDiff(b, *m, ref[0]), "mad_vs_area")
			})
		}
	}
}

// BenchmarkSnapshot measures the colour scalers on a 1080p keyframe scaled to a 240 px
// thumbnail, reporting CPU ns per picture and the mean abs diff from ffmpeg's rendering of
// the same picture (mad_vs_ffmpeg, levels per colour channel).
func BenchmarkSnapshot(b *testing.B) {
	path := testclip.Make(b, hdArgs...)
	const w, h = 240, 136
	ref := ffmpegBGR(b, path, 0, w, h)
	key := load(b, path, ingest.CodecH264, 25)[0]
	for _, s := range []struct {
		name  string
		flags scaler
	}{{"fast_bilinear", fastBilinear}, {"bilinear", bilinear}, {"area", area}} {
		b.Run(s.name, func(b *testing.B) {
			d := newDecoder(b, ingest.CodecH264, 0)
			m := newMat(b)
			if _, err := d.Decode(key, false, nil); err != nil {
				b.Fatal(err)
			}
			start := cpuTime(b)
			for b.Loop() {
				if err := d.snapshot(w, m, s.flags); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime(b)-start).Nanoseconds())/float64(b.N), "cpu_ns/op")
			got, _ := m.DataPtrUint8()
			sum := 0
			for i, v := range ref {
				d := int(got[i]) - int(v)
				sum += max(d, -d)
			}
			b.ReportMetric(float64(sum)/float64(len(ref)), "mad_vs_ffmpeg")
		})
	}
}

// cpuTime is the CPU time (user + system) the process has used: what a camera costs the box,
// including cgo and the garbage collector.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchFootage decodes units over and over with one decoder, analysing those analyse picks,
// and reports the CPU share of one core that decoding footage of this length in real time
// takes (cpu_%_of_core), and CPU ns per unit fed (ns/frame).
func benchFootage(b *testing.B, units []*ingest.Unit, footage time.Duration, analyse func(i int) bool) {
	d := newDecoder(b, ingest.CodecH264, 0)
	m := newMat(b)
	start := cpuTime(b)
	passes := 0
	for b.Loop() {
		for i, u := range units {
			if _, err := d.Decode(u, analyse(i), m); err != nil {
				b.Fatalf("unit %d: %v", i, err)
			}
		}
		passes++
	}
	cpu := cpuTime(b) - start
	b.ReportMetric(100*cpu.Seconds()/(footage.Seconds()*float64(passes)), "cpu_%_of_core")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(passes*len(units)), "ns/frame")
}

// BenchmarkDecodeSub is a camera's sub stream: 640×360 at 15 fps (GOP 2 s), every unit
// decoded, one in three (5 fps) analysed.
func BenchmarkDecodeSub(b *testing.B) {
	const fps = 15
	units := load(b, testclip.Make(b, subArgs...), ingest.CodecH264, fps)
	benchFootage(b, units, time.Duration(len(units))*time.Second/fps, func(i int) bool { return i%3 == 0 })
}

// BenchmarkDecodeMainKeyframes is a camera's 1080p 4 Mbit/s main stream (GOP 2 s) of which
// only the keyframes are fed, all analysed.
func BenchmarkDecodeMainKeyframes(b *testing.B) {
	const fps = 25
	all := load(b, testclip.Make(b, hdArgs...), ingest.CodecH264, fps)
	var keys []*ingest.Unit
	for _, u := range all {
		if u.Key {
			keys = append(keys, u)
		}
	}
	benchFootage(b, keys, time.Duration(len(all))*time.Second/fps, func(int) bool { return true })
}
