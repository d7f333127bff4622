package motion

import (
	"fmt"
	"image"
	"slices"
	"testing"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/motion/internal/testclip"
)

// encodeArgs encode like a modest camera sub stream: H.264 without B-frames, an IDR every
// 2 s, about the bundled clips' bitrate.
var encodeArgs = []string{"-c:v", "libx264", "-preset", "veryfast", "-threads", "1", "-bf", "0", "-g", "50",
	"-b:v", "400k", "-pix_fmt", "yuv420p", "-f", "h264"}

// scene is a courtyard like the static clip's, with temporal sensor noise, as a lavfi
// filter chain ending in label [bg].
const scene = "color=c=0xc8c0a8:s=640x360:r=25:d=%d," +
	"drawbox=x=0:y=260:w=640:h=100:c=0x4f7a3a:t=fill," +
	"drawbox=x=280:y=150:w=80:h=110:c=0x5a3a28:t=fill," +
	"drawbox=x=60:y=60:w=120:h=80:c=0x3a4658:t=fill," +
	"drawbox=x=460:y=60:w=120:h=80:c=0x3a4658:t=fill[bg]"

// makeClip encodes a lavfi graph (which must end in the output picture) to an H.264 file.
func makeClip(t testing.TB, graph string) string {
	t.Helper()
	return testclip.Make(t, append([]string{"-f", "lavfi", "-i", graph}, encodeArgs...)...)
}

// TestStaticNoiseNoEvents: ten minutes of the static clip (a courtyard with sensor noise)
// raise no event.
func TestStaticNoiseNoEvents(t *testing.T) {
	units := loadLoops(t, bundledClip(simcam.ClipStatic), simcam.FrameRate, 10)
	r := analyse(t, testCamera(nil), units, nil)
	if got := units[len(units)-1].Wall.Sub(units[0].Wall); got < 599*time.Second {
		t.Fatalf("footage is %v, want 10 minutes", got)
	}
	if len(r.starts) != 0 {
		t.Errorf("%d events on a static scene: %v", len(r.starts), summarize(r.starts))
	}
	if want := uint64(10 * 60 * 5); r.stats.AnalyzedFrames < want-10 || r.stats.AnalyzedFrames > want+10 {
		t.Errorf("analysed %d frames of 10 minutes at 5 fps, want about %d", r.stats.AnalyzedFrames, want)
	}
}

// globalChangesClip is the courtyard with sensor noise and, 40 s long, the lights
// switching on at 10 s, the infrared switch at 20 s and auto-exposure at 30 s.
func globalChangesClip(t testing.TB) string {
	return makeClip(t, fmt.Sprintf(scene, 40)+";[bg]noise=alls=8:allf=t,"+
		"eq=eval=frame:brightness='if(lt(t,10),0,if(lt(t,20),0.25,if(lt(t,30),-0.1,-0.1+0.3*min((t-30)/0.4,1))))'"+
		":saturation='if(lt(t,20),1,0)'")
}

// TestGlobalChangesNoEvents: the lights switching on (+64 levels at once at 10 s), the
// night switch to infrared (colour off and darker at 20 s) and auto-exposure brightening
// over 0.4 s (at 30 s) raise no event; the background is learnt again each time.
func TestGlobalChangesNoEvents(t *testing.T) {
	units := loadLoops(t, globalChangesClip(t), 25, 1)
	r := analyse(t, testCamera(nil), units, nil)
	if len(r.starts) != 0 {
		t.Errorf("%d events for lighting changes: %v", len(r.starts), summarize(r.starts))
	}
	// The same clip at the highest sensitivity still raises nothing: the global-change
	// rule, not a lax threshold, is what keeps these quiet.
	r = analyse(t, testCamera(func(c *configs.Camera) { c.Motion.Sensitivity = 100 }), units, nil)
	if len(r.starts) != 0 {
		t.Errorf("sensitivity 100: %d events for lighting changes: %v", len(r.starts), summarize(r.starts))
	}
}

// leftMotionClip is the courtyard where a 60×60 box moves only in the left half of the
// picture (x 40..230 of 640) from 5 s to 12 s of a 20 s clip.
func leftMotionClip(t testing.TB) string {
	return makeClip(t, fmt.Sprintf(scene, 20)+";color=c=0x20a0e0:s=60x60:r=25:d=20[box];"+
		"[bg][box]overlay=x='40+clip(t-5,0,7)*25':y=150:eval=frame,noise=alls=6:allf=t")
}

var (
	leftHalf  = [][]float64{{0, 0}, {0.5, 0}, {0.5, 1}, {0, 1}}
	rightHalf = [][]float64{{0.5, 0}, {1, 0}, {1, 1}, {0.5, 1}}
)

// TestZonesAndMasks: motion only under a mask, or only outside the configured zone,
// raises no event; the same motion inside a zone raises one naming that zone.
func TestZonesAndMasks(t *testing.T) {
	units := loadLoops(t, leftMotionClip(t), 25, 1)

	// The clip does move: without zones or masks it raises one event.
	r := analyse(t, testCamera(nil), units, nil)
	if len(r.ends) != 1 {
		t.Fatalf("whole frame: want 1 event, got %v", summarize(r.ends))
	}
	if len(r.ends[0].Zones) != 0 {
		t.Errorf("no zones configured, event names %q", r.ends[0].Zones)
	}

	masked := analyse(t, testCamera(func(c *configs.Camera) {
		c.Motion.Masks = []configs.Zone{{Name: "trees", Points: leftHalf}}
	}), units, nil)
	if len(masked.starts) != 0 {
		t.Errorf("motion under a mask raised events: %v", summarize(masked.starts))
	}

	outside := analyse(t, testCamera(func(c *configs.Camera) {
		c.Motion.Zones = []configs.Zone{{Name: "door", Points: rightHalf}}
	}), units, nil)
	if len(outside.starts) != 0 {
		t.Errorf("motion outside the zone raised events: %v", summarize(outside.starts))
	}

	inside := analyse(t, testCamera(func(c *configs.Camera) {
		c.Motion.Zones = []configs.Zone{{Name: "door", Points: rightHalf}, {Name: "gate", Points: leftHalf}}
	}), units, nil)
	if len(inside.ends) != 1 {
		t.Fatalf("motion inside zone gate: want 1 event, got %v", summarize(inside.ends))
	}
	ev := inside.ends[0]
	if !slices.Equal(ev.Zones, []string{"gate"}) {
		t.Errorf("zones hit %q, want [gate]", ev.Zones)
	}
	checkEvent(t, ev, "town-hall", image.Pt(640, 360))
	// The box covers the moving square's path, all of it in the left half.
	if ev.Box.X+ev.Box.W > 0.5 || ev.Box.Y > 150.0/360 || ev.Box.Y+ev.Box.H < 210.0/360 {
		t.Errorf("box %+v does not match the square moving at y 150..210 in the left half", ev.Box)
	}
	if d := ev.Start.Sub(epoch.Add(5 * time.Second)); d < -time.Second || d > time.Second {
		t.Errorf("event starts %v after the motion, want within 1 s", d)
	}
}
