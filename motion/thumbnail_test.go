package motion

import (
	"bytes"
	"image/jpeg"
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/motion/report"
)

// checkThumbnail fails unless th is a JPEG ThumbnailWidth wide with the clip's 16:9 shape.
func checkThumbnail(t *testing.T, th report.Thumbnail) {
	t.Helper()
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(th.JPEG))
	if err != nil || cfg.Width != report.ThumbnailWidth || cfg.Height != 136 {
		t.Fatalf("thumbnail at %v: %dx%d, %v; want a %dx136 JPEG", th.Wall, cfg.Width, cfg.Height, err, report.ThumbnailWidth)
	}
	if len(th.JPEG) > 16<<10 {
		t.Errorf("thumbnail at %v has %d bytes; a 240 px preview should stay far below 16 KiB", th.Wall, len(th.JPEG))
	}
}

// The analyser makes thumbnails from the frames it analyses: every 10 s while nothing
// moves, every 2 s while an event goes on, each at the time of the frame it shows.
func TestAnalyzerThumbnailCadence(t *testing.T) {
	units := loadLoops(t, bundledClip(simcam.ClipMotion), simcam.FrameRate, 1)
	p, err := newParams(testCamera(nil))
	if err != nil {
		t.Fatal(err)
	}
	var thumbs []report.Thumbnail
	var during []bool // whether an event was going on when thumbs[i] was taken
	var seen []int    // event notifications before thumbs[i]
	var active bool
	events := 0
	a := newAnalyzer(p, ingest.NewHub(), nil, Options{
		OnEvent: func(ev report.Event) { active = ev.End.IsZero(); events++ },
		OnThumbnail: func(th report.Thumbnail) {
			thumbs = append(thumbs, th)
			during = append(during, active)
			seen = append(seen, events)
		}})
	a.open()
	if err := a.startStream(ingest.CodecH264); err != nil {
		t.Fatal(err)
	}
	frameTimes := map[time.Time]bool{}
	for _, u := range units {
		frameTimes[u.Wall] = true
		a.process(u, false)
	}
	a.close()
	if len(thumbs) == 0 || !thumbs[0].Wall.Equal(epoch) {
		t.Fatalf("%d thumbnails; want the first of the first frame (%v)", len(thumbs), epoch)
	}
	// Analysed frames come every 200 ms (5 fps), and a frame up to a tenth of the
	// interval early is due: 1.8-2.2 s in events, 9-10.2 s otherwise.
	var short, long int
	for i, th := range thumbs {
		checkThumbnail(t, th)
		if th.Camera != "town-hall" || !frameTimes[th.Wall] {
			t.Fatalf("thumbnail %d: camera %q at %v; want town-hall at a frame's capture time", i, th.Camera, th.Wall)
		}
		if i == 0 {
			continue
		}
		gap := th.Wall.Sub(thumbs[i-1].Wall)
		switch {
		case during[i-1] && during[i] && gap >= 1800*time.Millisecond && gap <= 2200*time.Millisecond:
			short++
		case !during[i-1] && !during[i] && gap >= 9*time.Second && gap <= 10200*time.Millisecond:
			long++
		case seen[i-1] != seen[i] && gap <= 10200*time.Millisecond:
			// an event began or ended in between
		default:
			t.Errorf("thumbnail %d comes %v after the previous one (event going on: %v, %v); want 2 s in events, 10 s otherwise", i, gap, during[i-1], during[i])
		}
	}
	if events < 6 || short < 8 || long < 1 {
		t.Errorf("%d event notifications, %d thumbnails 2 s apart and %d 10 s apart; want the clip's 3 events previewed densely", events, short, long)
	}
}

// A camera without motion analysis gets a thumbnail of one keyframe every 10 s, and
// nothing else is decoded.
func TestKeyframeThumbnails(t *testing.T) {
	units := loadLoops(t, bundledClip(simcam.ClipStatic), simcam.FrameRate, 1)
	var thumbs []report.Thumbnail
	k, err := NewKeyframeThumbnails("dvur", "main", ingest.NewHub(), nil, func(th report.Thumbnail) { thumbs = append(thumbs, th) })
	if err != nil {
		t.Fatal(err)
	}
	defer k.thumbs.close()
	keyframes := map[time.Time]bool{}
	for _, u := range units {
		if u.Key {
			keyframes[u.Wall] = true
		}
		k.process(ingest.CodecH264, u)
	}
	clip := units[len(units)-1].Wall.Sub(units[0].Wall)
	if want := int(clip/report.ThumbnailEvery) + 1; len(thumbs) != want {
		t.Fatalf("%d thumbnails over %v; want %d, one per 10 s", len(thumbs), clip, want)
	}
	for i, th := range thumbs {
		checkThumbnail(t, th)
		if !keyframes[th.Wall] || !th.Wall.Equal(epoch.Add(time.Duration(i)*report.ThumbnailEvery)) {
			t.Errorf("thumbnail %d at %v; want the keyframe at %v", i, th.Wall, epoch.Add(time.Duration(i)*report.ThumbnailEvery))
		}
	}
	if got := k.decoded; got != uint64(len(thumbs)) {
		t.Errorf("%d pictures decoded for %d thumbnails; only the due keyframes should be", got, len(thumbs))
	}
}
