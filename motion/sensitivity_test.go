package motion

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/motion/internal/testclip"
	"github.com/townwatch/townwatch/motion/report"
)

// The sensitivity clips: what the default settings must find (a distant pedestrian) and
// what they must not (sensor noise, lighting changes, compression noise). Each is a real
// H.264 stream made by ffmpeg and decoded through the analyser's real path.

// pedestrianCrossings are the distant pedestrian's walks in pedestrianClip, as offsets
// from the start of each 70 s loop: from just outside one edge of the picture to just
// outside the other. The pauses between walks are longer than the default cooldown, so
// that each walk is an event of its own.
var pedestrianCrossings = []simcam.Interval{
	{Start: 2 * time.Second, End: 24 * time.Second},
	{Start: 36 * time.Second, End: 58 * time.Second},
}

// pedestrianClip is the courtyard with a distant pedestrian: 16×36 px of 640×360 (2.5 %
// of the width, 10 % of the height, 0.25 % of the area) in a grey coat 45 gray levels
// from what is behind it, walking at 30 px/s (about 1.4 m/s for a person 36 px tall):
// left to right across the pavement, then right to left across the lawn. Off-screen
// between the walks.
func pedestrianClip(t testing.TB) string {
	return makeClip(t, fmt.Sprintf(scene, 70)+";color=c=0x9a9090:s=16x36:r=25:d=70[walker];"+
		"[bg][walker]overlay=eval=frame:"+
		"x='if(between(t,2,24),-16+(t-2)*30,if(between(t,36,58),640-(t-36)*30,-100))':"+
		"y='if(lt(t,30),200,300)',noise=alls=6:allf=t")
}

// pedestrianMainClip is pedestrianClip as a camera's main stream without a sub stream
// sends it: a keyframe exactly every 2 s, of which only the keyframes are analysed.
func pedestrianMainClip(t testing.TB) string {
	return testclip.Make(t, "-f", "h264", "-i", pedestrianClip(t), "-c:v", "libx264", "-preset", "veryfast", "-threads", "1",
		"-bf", "0", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-b:v", "1M", "-pix_fmt", "yuv420p", "-f", "h264")
}

// texturedScene is the courtyard with fine static texture (gravel, foliage, brickwork)
// over everything, which is what makes an encoder's artefacts visible; then temporal
// sensor noise.
func texturedScene(seconds int) string {
	return fmt.Sprintf(scene, seconds) + ";[bg]noise=alls=40:allf=0,gblur=sigma=0.7,noise=alls=6:allf=t"
}

// lowBitrateClip is the textured courtyard, in which nothing moves, squeezed into 128
// kbit/s like the sub stream of a cheap camera on a slow link: blocking, ringing, texture
// that flickers from frame to frame and changes at every keyframe (every 2 s).
func lowBitrateClip(t testing.TB) string {
	return testclip.Make(t, "-f", "lavfi", "-i", texturedScene(60), "-c:v", "libx264", "-preset", "veryfast",
		"-threads", "1", "-bf", "0", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
		"-b:v", "128k", "-maxrate", "128k", "-bufsize", "128k",
		"-pix_fmt", "yuv420p", "-f", "h264")
}

// lightingClip is the textured courtyard through a night: at 10 s the camera switches to
// infrared (colour off, contrast up, the illuminator's bright centre); from 25 s the
// street lights dim over 2 s; from 40 s auto-exposure hunts (±5 % brightness at 1 Hz for
// 5 s); at 50 s back to day.
func lightingClip(t testing.TB) string {
	return makeClip(t, texturedScene(60)+","+
		"eq=eval=frame:saturation='if(between(t,10,50),0,1)':contrast='if(between(t,10,50),1.3,1)':"+
		"brightness='if(lt(t,10),0,if(lt(t,25),0.12,if(lt(t,40),0.12-0.2*min((t-25)/2,1),if(lt(t,45),-0.08+0.05*sin(2*PI*(t-40)),if(lt(t,50),-0.08,0)))))',"+
		"vignette=eval=frame:angle='if(between(t,10,50),PI/4,0)'")
}

// nightNoiseClip is the courtyard at night: nothing moves, heavy sensor noise, which the
// 400 kbit/s encoding turns into flickering blotches.
func nightNoiseClip(t testing.TB) string {
	return makeClip(t, fmt.Sprintf(scene, 60)+";[bg]noise=alls=45:allf=t")
}

// clipCase is one clip of the sensitivity table.
type clipCase struct {
	name  string
	path  func(testing.TB) string
	loops int
	cam   func(*configs.Camera)
	truth []simcam.Interval // per loop; nil: nothing moves
	loop  time.Duration     // one loop's length
}

var sensitivityClips = []clipCase{
	{name: "distant pedestrian (0.25 %)", path: pedestrianClip, loops: 3, truth: pedestrianCrossings, loop: 70 * time.Second},
	{name: "distant pedestrian, keyframes only", path: pedestrianMainClip, loops: 3, truth: pedestrianCrossings, loop: 70 * time.Second,
		cam: func(c *configs.Camera) { c.Sub = nil }},
	{name: "motion clip (car)", path: func(testing.TB) string { return bundledClip(simcam.ClipMotion) }, loops: 3,
		truth: simcam.MotionIntervals, loop: time.Minute},
	{name: "static, sensor noise", path: func(testing.TB) string { return bundledClip(simcam.ClipStatic) }, loops: 10},
	{name: "night: heavy sensor noise, low bitrate", path: nightNoiseClip, loops: 2},
	{name: "lights, IR switch, exposure", path: globalChangesClip, loops: 3},
	{name: "IR switch, dimming, exposure hunting", path: lightingClip, loops: 3},
	{name: "low-bitrate compression noise", path: lowBitrateClip, loops: 5},
	// The margin: the hardest false-event clips stay quiet with settings much more
	// sensitive than the defaults.
	{name: "IR switch, dimming, exposure hunting; sensitivity 80, min_area 0.05", path: lightingClip, loops: 3, cam: moreSensitive},
	{name: "low-bitrate compression noise; sensitivity 80, min_area 0.05", path: lowBitrateClip, loops: 5, cam: moreSensitive},
	{name: "night: heavy sensor noise; sensitivity 100", path: nightNoiseClip, loops: 2, cam: func(c *configs.Camera) { c.Motion.Sensitivity = 100 }},
}

func moreSensitive(c *configs.Camera) { c.Motion.Sensitivity, c.Motion.MinArea = 80, 0.05 }

// clipResult is one row of the sensitivity table.
type clipResult struct {
	found, crossings int
	coverage         float64 // share of the true motion time inside events
	falseEvents      int
	footage          time.Duration
}

// runClipCase analyses c's clip with the defaults and c's changes and scores the events
// against c's ground truth.
func runClipCase(t testing.TB, c clipCase) clipResult {
	units := loadLoops(t, c.path(t), simcam.FrameRate, c.loops)
	cam := testCamera(c.cam)
	r := analyse(t, cam, units, nil)
	var ts []truth
	for l := range c.loops {
		base := epoch.Add(time.Duration(l) * c.loop)
		for _, iv := range c.truth {
			ts = append(ts, truth{base.Add(iv.Start), base.Add(iv.End)})
		}
	}
	res := clipResult{crossings: len(ts), footage: units[len(units)-1].Wall.Sub(units[0].Wall)}
	if cam.Sub == nil {
		// The row is about keyframes only: make sure that is what was analysed.
		keyframes := 0
		for _, u := range units {
			if u.Key {
				keyframes++
			}
		}
		if got := r.stats.AnalyzedFrames; got != uint64(keyframes) || keyframes*2 > len(units)/simcam.FrameRate+c.loops {
			t.Fatalf("%s: analysed %d frames, %d keyframes in %d units: want only keyframes, one every 2 s", c.name, got, keyframes, len(units))
		}
	}
	var falseEvents []report.Event
	res.found, falseEvents, _ = score(r, ts, time.Duration(cam.Motion.Cooldown))
	if cam.Sub == nil {
		// Keyframes only (one every 2 s): a start cannot be seen within 1 s.
		res.found = 0
		for _, tr := range ts {
			for _, ev := range r.starts {
				if d := ev.Start.Sub(tr.start); d >= -time.Second && d <= 2*time.Second {
					res.found++
					break
				}
			}
		}
	}
	res.falseEvents = len(falseEvents)
	var total, covered time.Duration
	for _, tr := range ts {
		total += tr.end.Sub(tr.start)
		for _, ev := range r.ends {
			s, e := ev.Start, ev.End
			if s.Before(tr.start) {
				s = tr.start
			}
			if e.After(tr.end) {
				e = tr.end
			}
			if e.After(s) {
				covered += e.Sub(s)
			}
		}
	}
	if total > 0 {
		res.coverage = covered.Seconds() / total.Seconds()
	}
	if res.falseEvents > 0 {
		t.Logf("%s: false events %v", c.name, summarize(falseEvents))
	}
	return res
}

// TestSensitivityClips runs every sensitivity clip with default settings (unless the row
// names others): every walk of the distant pedestrian and every move of the car raises an
// event starting within 1 s (2 s with keyframes only) of it, and no clip raises an event
// outside true motion. The table it logs is the one in docs/motion-detection.md.
//
// The clips are decoded and analysed in parallel subtests (each its own analyser on its
// own frames): on two cores that halves the longest test of the package. They run after
// this function returns, so the table is logged by a cleanup, which waits for them all.
func TestSensitivityClips(t *testing.T) {
	rows := make([]string, len(sensitivityClips))
	t.Cleanup(func() {
		t.Logf("default settings (sensitivity %d, min_area %g %%):\n| clip | footage | detected | time inside events | false events |\n|---|---|---|---|---|\n%s",
			configs.DefaultSensitivity, configs.DefaultMinArea, strings.Join(rows, ""))
	})
	for i, c := range sensitivityClips {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := runClipCase(t, c)
			detected, inside := "—", "—"
			if r.crossings > 0 {
				detected, inside = fmt.Sprintf("%d of %d", r.found, r.crossings), fmt.Sprintf("%.0f %%", 100*r.coverage)
				if r.found != r.crossings {
					t.Errorf("%d of %d true motion intervals raised an event", r.found, r.crossings)
				}
			}
			if r.falseEvents != 0 {
				t.Errorf("%d false events", r.falseEvents)
			}
			rows[i] = fmt.Sprintf("| %s | %v | %s | %s | %d |\n", c.name, r.footage.Round(time.Second), detected, inside, r.falseEvents)
		})
	}
}
