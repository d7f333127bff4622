package motion

import (
	"bytes"
	"context"
	"image"
	"image/jpeg"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/motion/internal/testclip"
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
	stillDecoders.join() // what Run does: the last to leave closes the decoders
	defer stillDecoders.leave()
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

// hdShortClipArgs: the first 21 s of hdClipArgs (keyframes at 0, 2, ... 20 s, so
// thumbnails at 0, 10 and 20 s), quicker to make for a test.
var hdShortClipArgs = slices.Concat(hdClipArgs[:2], []string{"-frames:v", "525"}, hdClipArgs[2:])

// A keyframe thumbnail of a 1080p main stream shows its keyframe as ffmpeg shows it:
// against ffmpeg's own full decode of the same keyframe, area-scaled to 240 px, it
// differs by a few levels per colour channel (JPEG, and the loop filter the thumbnail's
// decode skips). A black, garbled, shifted or colour-swapped picture differs by tens.
func TestKeyframeThumbnailsLookLikeTheKeyframe(t *testing.T) {
	path := testclip.Make(t, hdShortClipArgs...)
	units := loadLoops(t, path, simcam.FrameRate, 1)
	var thumbs []report.Thumbnail
	k, err := NewKeyframeThumbnails("namesti", "main", ingest.NewHub(), nil, func(th report.Thumbnail) { thumbs = append(thumbs, th) })
	if err != nil {
		t.Fatal(err)
	}
	defer k.thumbs.close()
	stillDecoders.join()
	defer stillDecoders.leave()
	for _, u := range units {
		k.process(ingest.CodecH264, u)
	}
	if len(thumbs) != 3 {
		t.Fatalf("%d thumbnails of 21 s; want 3 (0, 10, 20 s)", len(thumbs))
	}
	const w, h = report.ThumbnailWidth, 136
	keys := ffmpegKeyframesRGB(t, path, w, h)
	for _, th := range thumbs {
		checkThumbnail(t, th)
		i := int(th.Wall.Sub(epoch) / (2 * time.Second)) // keyframe i of the clip
		img, err := jpeg.Decode(bytes.NewReader(th.JPEG))
		if err != nil {
			t.Fatal(err)
		}
		mad := rgbDiff(img, keys[i])
		t.Logf("thumbnail at %v: %.2f levels from ffmpeg's picture", th.Wall.Sub(epoch), mad)
		if mad > maxThumbnailDiff {
			t.Errorf("thumbnail at %v differs from ffmpeg's picture of its keyframe by %.2f levels on average; want at most %v", th.Wall, mad, maxThumbnailDiff)
		}
	}
}

// maxThumbnailDiff bounds the mean absolute difference of a thumbnail from ffmpeg's
// rendering of its picture, in levels of 255 per colour channel.
const maxThumbnailDiff = 4.0

// ffmpegKeyframesRGB returns ffmpeg's full decode of each keyframe of path, scaled to w×h
// with swscale's area filter, as packed RGB.
func ffmpegKeyframesRGB(tb testing.TB, path string, w, h int) [][]byte {
	tb.Helper()
	cmd := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-skip_frame", "nokey", "-i", path,
		"-vf", "scale="+strconv.Itoa(w)+":"+strconv.Itoa(h)+":flags=area", "-fps_mode", "passthrough",
		"-pix_fmt", "rgb24", "-f", "rawvideo", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || len(out) == 0 || len(out)%(w*h*3) != 0 {
		tb.Fatalf("ffmpeg keyframes: %d bytes, %v\n%s", len(out), err, stderr.Bytes())
	}
	var frames [][]byte
	for len(out) > 0 {
		frames, out = append(frames, out[:w*h*3]), out[w*h*3:]
	}
	return frames
}

// rgbDiff is the mean absolute difference between img and packed RGB ref of its size.
func rgbDiff(img image.Image, ref []byte) float64 {
	b := img.Bounds()
	sum := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			p := ref[3*((y-b.Min.Y)*b.Dx()+x-b.Min.X):]
			for c, v := range []uint32{r >> 8, g >> 8, bl >> 8} {
				d := int(v) - int(p[c])
				sum += max(d, -d)
			}
		}
	}
	return float64(sum) / float64(3*b.Dx()*b.Dy())
}

// Cameras without motion analysis share the keyframe decoders: two cameras with the same
// encoder settings (so nothing restarts the decoder between them) taking turns on one
// decoder each get thumbnails of their own pictures, never of the other's.
func TestKeyframeThumbnailsShareDecoders(t *testing.T) {
	defer func(p *decoderPool) { stillDecoders = p }(stillDecoders)
	stillDecoders = newDecoderPool(1)
	stillDecoders.join()
	defer stillDecoders.leave()
	const w, h = report.ThumbnailWidth, 136
	var cams [2]struct {
		k      *KeyframeThumbnails
		units  []*ingest.Unit
		keys   [][]byte
		thumbs []report.Thumbnail
	}
	for i, vf := range []string{"null", "vflip"} { // the second camera is upside down
		path := testclip.Make(t, "-i", bundledClip(simcam.ClipMotion), "-frames:v", "525", "-vf", vf, "-c:v", "libx264",
			"-preset", "veryfast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-bf", "0", "-f", "h264")
		c := &cams[i]
		c.units = loadLoops(t, path, simcam.FrameRate, 1)
		c.keys = ffmpegKeyframesRGB(t, path, w, h)
		var err error
		c.k, err = NewKeyframeThumbnails("cam"+strconv.Itoa(i), "main", ingest.NewHub(), nil, func(th report.Thumbnail) { c.thumbs = append(c.thumbs, th) })
		if err != nil {
			t.Fatal(err)
		}
		defer c.k.thumbs.close()
	}
	for j := range cams[0].units {
		for i := range cams {
			cams[i].k.process(ingest.CodecH264, cams[i].units[j])
		}
	}
	for i, c := range cams {
		if len(c.thumbs) != 3 {
			t.Fatalf("camera %d: %d thumbnails of 21 s; want 3", i, len(c.thumbs))
		}
		for _, th := range c.thumbs {
			img, err := jpeg.Decode(bytes.NewReader(th.JPEG))
			if err != nil {
				t.Fatal(err)
			}
			k := int(th.Wall.Sub(epoch) / (2 * time.Second))
			own, other := rgbDiff(img, c.keys[k]), rgbDiff(img, cams[1-i].keys[k])
			if own > maxThumbnailDiff || other < 4*own {
				t.Errorf("camera %d: thumbnail at %v differs from its own keyframe by %.2f levels and from the other camera's by %.2f; want its own picture", i, th.Wall, own, other)
			}
		}
	}
}

// The shared keyframe decoders are closed when the last camera's KeyframeThumbnails
// stops, so a worker whose cameras all have motion analysis again keeps none.
func TestKeyframeDecodersClosedWithTheLastCamera(t *testing.T) {
	units := loadLoops(t, bundledClip(simcam.ClipStatic), simcam.FrameRate, 1)[:25]
	hub := ingest.NewHub()
	st := hub.Start("dvur", "main", []*ingest.Track{units[0].Track})
	defer st.End(nil)
	thumbs := make(chan report.Thumbnail, 1)
	k, err := NewKeyframeThumbnails("dvur", "main", hub, nil, func(th report.Thumbnail) { thumbs <- th })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	waitUntil(t, "the thumbnailer to attach to the stream", func() bool { return st.Readers() == 1 })
	for _, u := range units {
		st.Publish(u)
	}
	<-thumbs
	// The thumbnail is emitted before the decoder is given back.
	waitUntil(t, "the keyframe decoder kept while the camera makes thumbnails", func() bool { return keptStillDecoders() == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := keptStillDecoders(); n != 0 {
		t.Errorf("%d keyframe decoders open after the last camera stopped; want none", n)
	}
}

// keptStillDecoders counts the shared keyframe decoders kept open.
func keptStillDecoders() int {
	stillDecoders.mu.Lock()
	defer stillDecoders.mu.Unlock()
	return len(stillDecoders.free)
}

// A site with H.264 and H.265 cameras keeps a decoder of each codec instead of closing
// one for the other at every keyframe (each would then pay a fresh decoder's set-up, the
// cost the shared decoders are there to save), and both get their thumbnails.
func TestKeyframeDecodersKeptPerCodec(t *testing.T) {
	defer func(p *decoderPool) { stillDecoders = p }(stillDecoders)
	stillDecoders = newDecoderPool(2)
	stillDecoders.join()
	defer stillDecoders.leave()
	codecs := []ingest.Codec{ingest.CodecH264, ingest.CodecH265}
	var cams [2]struct {
		k      *KeyframeThumbnails
		units  []*ingest.Unit
		thumbs int
	}
	for i, encoder := range []string{"libx264", "libx265"} {
		path := testclip.Make(t, "-i", bundledClip(simcam.ClipMotion), "-frames:v", "150", "-c:v", encoder,
			"-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-bf", "0", "-f", map[int]string{0: "h264", 1: "hevc"}[i])
		c := &cams[i]
		units, err := testclip.Load(path, codecs[i], simcam.FrameRate, epoch)
		if err != nil {
			t.Fatal(err)
		}
		c.units = units
		c.k, err = NewKeyframeThumbnails("cam"+strconv.Itoa(i), "main", ingest.NewHub(), nil, func(report.Thumbnail) { c.thumbs++ })
		if err != nil {
			t.Fatal(err)
		}
		defer c.k.thumbs.close()
	}
	for j := range min(len(cams[0].units), len(cams[1].units)) {
		for i := range cams {
			cams[i].k.process(codecs[i], cams[i].units[j])
		}
	}
	for i, c := range cams {
		if c.thumbs == 0 {
			t.Errorf("camera %d (%s): no thumbnail", i, codecs[i])
		}
	}
	stillDecoders.mu.Lock()
	var kept []ingest.Codec
	for _, dec := range stillDecoders.free {
		kept = append(kept, dec.Codec())
	}
	stillDecoders.mu.Unlock()
	if !slices.Contains(kept, ingest.CodecH264) || !slices.Contains(kept, ingest.CodecH265) {
		t.Errorf("kept decoders %v after the cameras took turns; want one of each codec", kept)
	}
}
