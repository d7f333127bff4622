package main

import (
	"slices"
	"testing"

	"github.com/townwatch/townwatch/configs"
)

// The reload diff rules: what is updated in place, what restarts only that camera.
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
	}{
		{"nothing", edit(func(*configs.Camera) {}), cameraSame},
		{"name", edit(func(c *configs.Camera) { c.Name = "Masarykovo náměstí" }), cameraUpdate},
		{"zones", edit(func(c *configs.Camera) { c.Motion.Zones = nil }), cameraUpdate},
		{"masks", edit(func(c *configs.Camera) { c.Motion.Masks = c.Motion.Zones }), cameraUpdate},
		{"motion tuning", edit(func(c *configs.Camera) { c.Motion.Sensitivity++ }), cameraUpdate},
		{"retention", edit(func(c *configs.Camera) { c.Record.Retention *= 2 }), cameraUpdate},
		{"live audio", edit(func(c *configs.Camera) { c.Live.Audio = true }), cameraUpdate},
		{"main url", edit(func(c *configs.Camera) { c.Main.URL = "rtsp://127.0.0.1/other" }), cameraRestart},
		{"transport", edit(func(c *configs.Camera) { c.Main.Transport = configs.TransportUDP }), cameraRestart},
		{"credentials", edit(func(c *configs.Camera) { c.Sub.Username = "admin" }), cameraRestart},
		{"certificate pin", edit(func(c *configs.Camera) { c.Main.TLSFingerprint = "ab" }), cameraRestart},
		{"sub removed", edit(func(c *configs.Camera) { c.Sub = nil }), cameraRestart},
		{"record mode", edit(func(c *configs.Camera) { c.Record.Mode = configs.RecordMotion }), cameraRestart},
		{"segment", edit(func(c *configs.Camera) { c.Record.Segment *= 2 }), cameraRestart},
	} {
		if got := changeOf(base, tc.next); got != tc.want {
			t.Errorf("%s changed: %v, want %v", tc.what, got, tc.want)
		}
	}
}

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
