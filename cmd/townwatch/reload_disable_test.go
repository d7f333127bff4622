package main

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/ingest/simcam"
)

// A disabled camera is configured but does not run: disabled at start it is never
// started; enabled by a reload it starts; disabled again it stops like a removed camera,
// while staying in the running configuration (retention keeps its footage by its own
// record.retention) and the other camera is not touched.
func TestDisabledCameraDoesNotRun(t *testing.T) {
	t.Parallel()
	cam := startSimcam(t, simcam.CameraSpec{Path: "stays", Clip: simcam.ClipStatic}, simcam.CameraSpec{Path: "toggled", Clip: simcam.ClipStatic})
	dir := t.TempDir()
	config := func(disabled bool) *configs.Config {
		t.Helper()
		yaml := "storage:\n  path: " + strconv.Quote(filepath.Join(dir, "storage")) + "\n  min_free: 1MiB\nhttp:\n  listen: 127.0.0.1:0\n" +
			"webrtc: {udp_port: 0, tcp_port: 0}\ncameras:\n" +
			"  - id: stays\n    main: {url: " + cam.URL("stays") + ", transport: tcp}\n    record: {mode: continuous, segment: 1h}\n" +
			"  - id: toggled\n    disabled: " + strconv.FormatBool(disabled) + "\n    main: {url: " + cam.URL("toggled") + ", transport: tcp}\n" +
			"    record: {mode: continuous, segment: 1h, retention: 30d}\n"
		cfg, err := configs.Parse([]byte(yaml), "townwatch.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	sys := runSystem(t, config(true))
	waitUnitStreaming(t, sys, "stays")
	if sys.cams.unit("toggled") != nil {
		t.Fatal("a camera disabled at start runs")
	}
	stays := sys.cams.unit("stays")
	before := stays.main.Status().Reconnects

	if err := sys.reloads.Apply(config(false), "api"); err != nil {
		t.Fatal(err)
	}
	waitUnitStreaming(t, sys, "toggled")
	if err := sys.reloads.Apply(config(true), "api"); err != nil {
		t.Fatal(err)
	}
	if sys.cams.unit("toggled") != nil {
		t.Error("the disabled camera still runs")
	}
	if c, ok := sys.cfg.Camera("toggled"); !ok || !c.Disabled || c.Record.Retention != configs.Duration(30*24*time.Hour) {
		t.Errorf("the running configuration has %+v (%v), want the disabled camera with its retention", c, ok)
	}
	if last := sys.reloads.status.Last; len(last.Removed) != 1 || last.Removed[0] != "toggled" {
		t.Errorf("the reload reports removed %v, want [toggled]", last.Removed)
	}
	if sys.cams.unit("stays") != stays || stays.main.Status().Reconnects != before {
		t.Error("the other camera was touched")
	}
}

// waitUnitStreaming waits until camera id's unit runs and its main stream streams.
func waitUnitStreaming(t *testing.T, sys *system, id string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if u := sys.cams.unit(id); u != nil && u.main.Status().State == ingest.StateStreaming {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not streaming within 20 s", id)
		}
	}
}
