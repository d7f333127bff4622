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

// TestMotionWorkerRestartsAndReloads runs the supervise test and the two motion reload
// tests beside each other only. The reload tests check that their event ends after their
// reloads, and the end is the time of the analysed frame: a motion worker lagging behind a
// starved CPU (seen beside three other end-to-end tests) stamps it before them. The
// supervise test gives its worker 20 s to analyse after each start, which beside three
// other tests on a starved machine the first analysis missed. So this test is not
// parallel and go test runs it before the package's parallel tests (eight at a time,
// most of them real binaries recording). Its subtests are: each runs its own townwatch in
// this process (own registry, seams and worker process), analysing one camera at 5 fps,
// and in three runs beside each other the reload events ended 6.7 to 8.8 s after the
// reloads and each of the supervise test's waits took at most 4.1 s of its 20.
func TestMotionWorkerRestartsAndReloads(t *testing.T) {
	for _, sub := range []struct {
		name string
		test func(*testing.T)
	}{
		{"APanickingComponentRestartsAlone", aPanickingComponentRestartsAlone},
		{"ReloadKeepsOtherCamerasMotionGoing", reloadKeepsOtherCamerasMotionGoing},
		{"ReloadReconfiguresMotionInPlace", reloadReconfiguresMotionInPlace},
	} {
		t.Run(sub.name, func(t *testing.T) {
			t.Parallel()
			sub.test(t)
		})
	}
}

// Renaming a camera, changing its retention and redrawing its zone while its event goes
// on keeps the event (same id) and the worker process; the event ends when its motion
// does, naming the new zone.
func reloadReconfiguresMotionInPlace(t *testing.T) {
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
	t.Logf("ulice's event ended %s after the reload", row.End.Sub(reloaded).Round(10*time.Millisecond))
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
