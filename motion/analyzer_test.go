package motion

import (
	"context"
	"fmt"
	"image"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/motion/report"
)

// TestAnalyzerRunSimcam runs an Analyzer on a real camera: simcam loops a 10 s clip with
// motion from 2 s to 6 s as the camera's sub stream, pulled by ingest.Source into a Hub.
// The analyser reports the motion through OnEvent (start, then end), survives the camera
// session being replaced (a reconnect: the Stream ends and a new one starts) and reports
// the next loop's motion, and leaves no goroutine behind.
func TestAnalyzerRunSimcam(t *testing.T) {
	defer goleak.VerifyNone(t)
	clip := makeClip(t, fmt.Sprintf(scene, 10)+";color=c=0x20a0e0:s=60x60:r=25:d=10[box];"+
		"[bg][box]overlay=x='100+clip(t-2,0,4)*100':y=150:eval=frame,noise=alls=6:allf=t")
	server, err := simcam.New(simcam.Config{Listen: "127.0.0.1:0", Cameras: []simcam.CameraSpec{{Path: "sub", File: clip}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // runs before wg.Wait
	wg.Go(func() { server.Run(ctx) })
	<-server.Ready()

	cam := testCamera(func(c *configs.Camera) {
		c.Sub = &configs.Stream{URL: server.URL("sub"), Transport: configs.TransportTCP, StallTimeout: configs.Duration(5 * time.Second)}
		c.Motion.Cooldown = configs.Duration(time.Second)
	})
	hub := ingest.NewHub()
	events := make(chan report.Event, 16)
	a, err := NewAnalyzer(cam, hub, nil, Options{OnEvent: func(ev report.Event) { events <- ev }})
	if err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	wg.Go(func() { runErr <- a.Run(ctx) })

	// startSource pulls the sub stream until the returned function stops it.
	startSource := func() (stop func()) {
		src, err := ingest.NewSource(cam.ID, ingest.StreamSub, *cam.Sub, hub, nil)
		if err != nil {
			t.Fatal(err)
		}
		srcCtx, srcCancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); src.Run(srcCtx) }()
		return func() { srcCancel(); <-done }
	}
	next := func(what string) report.Event {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(60 * time.Second):
			t.Fatalf("no event %s within 60 s; stats %+v", what, a.Stats())
			return report.Event{}
		}
	}

	stop := startSource()
	start := next("start")
	if !start.End.IsZero() || !a.Stats().Active {
		t.Fatalf("first notification %+v is not a start (stats %+v)", start, a.Stats())
	}
	end := next("end")
	if end.ID != start.ID || end.End.IsZero() {
		t.Fatalf("second notification %+v does not end event %s", end, start.ID)
	}
	checkEvent(t, end, cam.ID, image.Pt(640, 360))
	if d := end.End.Sub(end.Start); d < 3*time.Second || d > 8*time.Second {
		t.Errorf("event lasts %v, the clip moves for 4 s", d)
	}

	// Reconnect: the session ends and a new one starts on the same Hub.
	stop()
	stop = startSource()
	defer func() { stop() }()
	for {
		ev := next("after the reconnect")
		if ev.End.IsZero() && ev.Start.After(end.End) {
			break
		}
	}
	st := a.Stats()
	if st.Events < 2 || st.AnalyzedFrames == 0 || st.DecodedFrames < st.AnalyzedFrames || st.DecodeErrors != 0 {
		t.Errorf("stats after two events %+v", st)
	}

	// Shutdown while an event is open ends it.
	cancel()
	if err := <-runErr; err != nil {
		t.Errorf("Run returned %v, want nil on cancellation", err)
	}
	if ev := next("end at shutdown"); ev.End.IsZero() {
		t.Errorf("shutdown left the event open: %+v", ev)
	}
	if a.Stats().Active {
		t.Error("Active after Run returned")
	}
}

// TestNewAnalyzerRejectsBadSettings: each bad setting is reported with its YAML path.
func TestNewAnalyzerRejectsBadSettings(t *testing.T) {
	hub := ingest.NewHub()
	ok := Options{OnEvent: func(report.Event) {}}
	cases := []struct {
		name string
		edit func(*configs.Camera)
		opt  Options
		want string
	}{
		{"disabled", func(c *configs.Camera) { c.Motion.Enabled = false }, ok, "cameras[town-hall].motion.enabled: motion detection is off"},
		{"analyze", func(c *configs.Camera) { c.Motion.Analyze = "some" }, ok, `cameras[town-hall].motion.analyze: "some" is not one of auto, keyframes, all`},
		{"fps", func(c *configs.Camera) { c.Motion.FPS = 0 }, ok, "cameras[town-hall].motion.fps: 0 must be above 0"},
		{"width", func(c *configs.Camera) { c.Motion.Width = 10 }, ok, "cameras[town-hall].motion.width: 10 must be between 64 and 1920"},
		{"sensitivity", func(c *configs.Camera) { c.Motion.Sensitivity = 101 }, ok, "cameras[town-hall].motion.sensitivity: 101 must be between 1 and 100"},
		{"min_area", func(c *configs.Camera) { c.Motion.MinArea = -1 }, ok, "cameras[town-hall].motion.min_area: -1 must be a percentage"},
		{"cooldown", func(c *configs.Camera) { c.Motion.Cooldown = 0 }, ok, "cameras[town-hall].motion.cooldown: 0s must be at least 1s"},
		{"zone name", func(c *configs.Camera) { c.Motion.Zones = []configs.Zone{{Points: leftHalf}} }, ok, "cameras[town-hall].motion.zones[0].name: required"},
		{"zone duplicate", func(c *configs.Camera) {
			c.Motion.Zones = []configs.Zone{{Name: "a", Points: leftHalf}, {Name: "a", Points: rightHalf}}
		}, ok, `cameras[town-hall].motion.zones[1].name: duplicate name "a"`},
		{"zone points", func(c *configs.Camera) { c.Motion.Zones = []configs.Zone{{Name: "a", Points: leftHalf[:2]}} }, ok, "cameras[town-hall].motion.zones[0].points: want at least 3 points"},
		{"mask point", func(c *configs.Camera) {
			c.Motion.Masks = []configs.Zone{{Points: [][]float64{{0, 0}, {1.5, 0}, {1, 1}}}}
		}, ok, "cameras[town-hall].motion.masks[0].points: point 1: [1.5, 0] is outside 0..1"},
		{"mask point arity", func(c *configs.Camera) {
			c.Motion.Masks = []configs.Zone{{Points: [][]float64{{0, 0}, {1}, {1, 1}}}}
		}, ok, "cameras[town-hall].motion.masks[0].points: point 1: want [x, y], got 1 numbers"},
		{"no callback", nil, Options{}, "camera town-hall: motion: Options.OnEvent is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewAnalyzer(testCamera(tc.edit), hub, nil, tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := NewAnalyzer(testCamera(nil), nil, nil, ok); err == nil || !strings.Contains(err.Error(), "nil hub") {
		t.Errorf("nil hub: error %v", err)
	}
}

// TestStreamChoice: the sub stream when configured, analysing all of its frames; the
// main stream's keyframes otherwise; analyze overrides either.
func TestStreamChoice(t *testing.T) {
	cases := []struct {
		sub           bool
		analyze       string
		stream        string
		keyframesOnly bool
	}{
		{true, configs.AnalyzeAuto, ingest.StreamSub, false},
		{false, configs.AnalyzeAuto, ingest.StreamMain, true},
		{true, configs.AnalyzeKeyframes, ingest.StreamSub, true},
		{false, configs.AnalyzeAll, ingest.StreamMain, false},
	}
	for _, tc := range cases {
		p, err := newParams(testCamera(func(c *configs.Camera) {
			if !tc.sub {
				c.Sub = nil
			}
			c.Motion.Analyze = tc.analyze
		}))
		if err != nil {
			t.Fatal(err)
		}
		if p.stream != tc.stream || p.keyframesOnly != tc.keyframesOnly {
			t.Errorf("sub %v analyze %s: stream %s keyframes-only %v, want %s %v", tc.sub, tc.analyze, p.stream, p.keyframesOnly, tc.stream, tc.keyframesOnly)
		}
	}
}
