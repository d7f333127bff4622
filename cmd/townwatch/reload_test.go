package main

import (
	"fmt"
	"slices"
	"testing"

	"github.com/townwatch/townwatch/configs"
)

// The reload diff rules: what is updated in place, what restarts only that camera, and
// what the motion worker hears of it (diffCameras).
func TestChangeOfCamera(t *testing.T) {
	cfg, err := configs.Parse([]byte(`storage: {path: ./data}
cameras:
  - id: namesti
    name: Náměstí
    main: {url: rtsp://127.0.0.1/main, transport: tcp}
    sub: {url: rtsp://127.0.0.1/sub}
    motion: {enabled: true, zones: [{name: vchod, points: [[0, 0], [0.5, 0], [0.5, 0.5]]}]}
`), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	base := cfg.Cameras[0]
	edit := func(f func(c *configs.Camera)) configs.Camera {
		c := base
		sub := *base.Sub
		c.Sub = &sub
		c.Motion.Zones = slices.Clone(base.Motion.Zones)
		f(&c)
		return c
	}
	for _, tc := range []struct {
		what string
		next configs.Camera
		want cameraChange
		// worker is what the motion worker is sent: nothing (the analyser uses none of
		// it), the new motion settings for the running analyser, or a new analyser.
		worker string
	}{
		{"nothing", edit(func(*configs.Camera) {}), cameraSame, workerNothing},
		{"name", edit(func(c *configs.Camera) { c.Name = "Masarykovo náměstí" }), cameraUpdate, workerNothing},
		{"zones", edit(func(c *configs.Camera) { c.Motion.Zones = nil }), cameraUpdate, workerReconfigure},
		{"masks", edit(func(c *configs.Camera) { c.Motion.Masks = c.Motion.Zones }), cameraUpdate, workerReconfigure},
		{"motion tuning", edit(func(c *configs.Camera) { c.Motion.Sensitivity++ }), cameraUpdate, workerReconfigure},
		{"retention", edit(func(c *configs.Camera) { c.Record.Retention *= 2 }), cameraUpdate, workerNothing},
		{"live audio", edit(func(c *configs.Camera) { c.Live.Audio = true }), cameraUpdate, workerNothing},
		{"main url", edit(func(c *configs.Camera) { c.Main.URL = "rtsp://127.0.0.1/other" }), cameraRestart, workerRestart},
		{"transport", edit(func(c *configs.Camera) { c.Main.Transport = configs.TransportUDP }), cameraRestart, workerRestart},
		{"credentials", edit(func(c *configs.Camera) { c.Sub.Username = "admin" }), cameraRestart, workerRestart},
		{"certificate pin", edit(func(c *configs.Camera) { c.Main.TLSFingerprint = "ab" }), cameraRestart, workerRestart},
		{"sub removed", edit(func(c *configs.Camera) { c.Sub = nil }), cameraRestart, workerRestart},
		{"record mode", edit(func(c *configs.Camera) { c.Record.Mode = configs.RecordMotion }), cameraRestart, workerRestart},
		{"segment", edit(func(c *configs.Camera) { c.Record.Segment *= 2 }), cameraRestart, workerRestart},
	} {
		if got := changeOf(base, tc.next); got != tc.want {
			t.Errorf("%s changed: %v, want %v", tc.what, got, tc.want)
		}
		d := diffCameras([]configs.Camera{base}, nil, []configs.Camera{tc.next}, nil)
		got := workerNothing
		switch {
		case len(d.Cameras) == 1 && len(d.Reconfigure) == 0 && len(d.Thumbnails) == 0 && len(d.Stop) == 0:
			got = workerRestart
		case len(d.Reconfigure) == 1 && len(d.Cameras) == 0 && len(d.Thumbnails) == 0 && len(d.Stop) == 0:
			got = workerReconfigure
		case !d.empty():
			got = fmt.Sprintf("%+v", d)
		}
		if got != tc.worker {
			t.Errorf("%s changed: the motion worker gets %s, want %s", tc.what, got, tc.worker)
		}
	}
}

// What the motion worker is sent for a camera's change (TestChangeOfCamera).
const (
	workerNothing     = "nothing"
	workerReconfigure = "its new motion settings"
	workerRestart     = "a new analyser"
)

// Settings outside cameras are named by their path and never applied.
func TestGlobalChangesNameTheirPaths(t *testing.T) {
	parse := func(yaml string) *configs.Config {
		t.Helper()
		c, err := configs.Parse([]byte(yaml), "t.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	old := parse("storage: {path: ./data}\nhttp: {listen: 127.0.0.1:8080}\n")
	next := parse("storage: {path: ./other}\nhttp: {listen: 127.0.0.1:9090}\nwebrtc: {udp_port: 9000}\ncameras:\n  - id: a\n    main: {url: rtsp://127.0.0.1/a}\n")
	got := globalChanges(old, next)
	want := []string{"storage.path", "http.listen", "webrtc.udp_port"}
	if !slices.Equal(got, want) {
		t.Errorf("global changes %q, want %q", got, want)
	}
	if got := globalChanges(old, old); len(got) != 0 {
		t.Errorf("no change reported as %q", got)
	}
}
