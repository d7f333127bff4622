package motion

import (
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/motion/decode"
	"github.com/townwatch/townwatch/motion/internal/testclip"
	"github.com/townwatch/townwatch/motion/report"
)

// hdClipArgs: a 1080p 4 Mbit/s main stream with a keyframe every 2 s (the motion clip
// scaled up, 60 s), as BenchmarkAnalyzeMainKeyframes uses.
var hdClipArgs = []string{"-i", bundledClip(simcam.ClipMotion), "-vf", "scale=1920:1080", "-c:v", "libx264", "-preset", "veryfast",
	"-profile:v", "high", "-b:v", "4M", "-maxrate", "4M", "-bufsize", "8M",
	"-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-bf", "0", "-f", "h264"}

// BenchmarkThumbnailCost reports what scrub-preview thumbnails cost 16 cameras, in percent
// of one core (CPU time of the whole process, user + system):
//
//   - analysed/*: a camera with motion detection, whose picture the analyser decodes
//     anyway; a thumbnail is a scale to 240 px and a JPEG. Reported for one thumbnail every
//     10 s (quiet) and every 2 s (an event going on at all 16 at once), for a 640×360 sub
//     stream picture and a 1080p main-stream keyframe.
//   - keyframes/1920x1080: a camera without motion detection, which decodes one keyframe of
//     its 1080p main stream every 10 s only for the thumbnail, on a decoder the cameras
//     share (stillDecoders; its opening is counted, once per run).
func BenchmarkThumbnailCost(b *testing.B) {
	for _, c := range []struct {
		name string
		args []string
	}{
		{"analysed/640x360", []string{"-i", bundledClip(simcam.ClipMotion), "-frames:v", "50", "-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-bf", "0", "-f", "h264"}},
		{"analysed/1920x1080", hdClipArgs},
	} {
		b.Run(c.name, func(b *testing.B) {
			units := loadLoops(b, testclip.Make(b, c.args...), simcam.FrameRate, 1)
			dec, err := decode.New(ingest.CodecH264, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer dec.Close()
			if _, err := dec.Decode(units[0], false, nil); err != nil {
				b.Fatal(err)
			}
			th := newThumbnailer("bench", func(report.Thumbnail) {}, nil)
			defer th.close()
			var cpu time.Duration
			for b.Loop() {
				before := cpuTime(b)
				th.take(dec, units[0].Wall)
				cpu += cpuTime(b) - before
			}
			per := cpu.Seconds() / float64(b.N)
			b.ReportMetric(per*1000, "ms/thumbnail")
			b.ReportMetric(100*16*per/report.ThumbnailEvery.Seconds(), "%core_16cams_quiet")
			b.ReportMetric(100*16*per/report.ThumbnailEveryInEvent.Seconds(), "%core_16cams_events")
		})
	}
	b.Run("keyframes/1920x1080", func(b *testing.B) {
		units := loadLoops(b, testclip.Make(b, hdClipArgs...), simcam.FrameRate, 1)
		footage := units[len(units)-1].Wall.Sub(units[0].Wall) + units[1].Wall.Sub(units[0].Wall)
		var cpu time.Duration
		var thumbs int
		stillDecoders.join()
		defer stillDecoders.leave()
		for b.Loop() {
			k, err := NewKeyframeThumbnails("bench", "main", ingest.NewHub(), nil, func(report.Thumbnail) { thumbs++ })
			if err != nil {
				b.Fatal(err)
			}
			before := cpuTime(b)
			for _, u := range units {
				k.process(ingest.CodecH264, u)
			}
			cpu += cpuTime(b) - before
			k.thumbs.close()
		}
		b.ReportMetric(float64(thumbs)/float64(b.N), "thumbnails/min")
		b.ReportMetric(100*16*cpu.Seconds()/(footage.Seconds()*float64(b.N)), "%core_16cams")
	})
}
