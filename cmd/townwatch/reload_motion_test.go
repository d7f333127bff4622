package main

import (
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest/simcam"
)

// TestReloadReconfiguresMotionInPlace: renaming a camera, changing its retention and
// redrawing its zone while its event goes on keeps the event (same id) and the worker
// process; the event ends when its motion does, naming the new zone.
func TestReloadReconfiguresMotionInPlace(t *testing.T) {
	cam := startSimcam(t, simcam.CameraSpec{Path: "ulice", Clip: simcam.ClipMotion, LoopStart: motionLoopStart})
	dir := t.TempDir()
	whole := "[[0, 0], [1, 0], [1, 1], [0, 1]]"
	config := func(name, zone, retention string) *configs.Config {
		t.Helper()
		yaml := "storage:\n  path: " + strconv.Quote(filepath.Join(dir, "storage")) + "\n  min_free: 1MiB\nhttp:\n  listen: 127.0.0.1:0\n" +
			"webrtc: {udp_port: 0, tcp_port: 0}\ncameras:\n" +
			"  - id: ulice\n    name: " + name + "\n" +
			"    main: {url: " + cam.URL("ulice") + ", transport: tcp}\n    sub: {url: " + cam.URL("ulice") + ", transport: tcp}\n" +
			"    record: {mode: motion, pre_roll: 2s, post_roll: 2s, segment: 10s, retention: " + retention + "}\n" +
			"    motion: {enabled: true, cooldown: 2s, zones: [{name: " + zone + ", points: " + whole + "}]}\n"
		cfg, err := configs.Parse([]byte(yaml), "townwatch.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	sys := runSystem(t, config("Ulice", "silnice", "7d"))

	ev := waitMotionEvent(t, sys, "ulice")
	pid := sys.motion.workerPID()
	if pid == 0 {
		t.Fatal("no motion worker runs while ulice has an event")
	}
	if err := sys.reloads.Apply(config("Hlavni ulice", "prechod", "14d"), "api"); err != nil {
		t.Fatal(err)
	}
	reloaded := time.Now()
	if now, ok := ongoingMotionEvent(sys, "ulice"); !ok || now.ID != ev.ID {
		t.Fatalf("ulice's event %s was ended by the rename and the new zone (ongoing now: %v %s)", ev.ID, ok, now.ID)
	}
	row := waitEventEnded(t, sys, ev.ID)
	if !row.End.After(reloaded) {
		t.Errorf("ulice's event %s ended at %s, before the reload at %s", ev.ID, row.End.Format(time.TimeOnly), reloaded.Format(time.TimeOnly))
	}
	if !slices.Equal(row.Zones, []string{"prechod"}) {
		t.Errorf("the event's zones are %q, want the new zone [prechod]", row.Zones)
	}
	if now := sys.motion.workerPID(); now != pid {
		t.Errorf("the motion worker was restarted: pid %d → %d", pid, now)
	}

}
