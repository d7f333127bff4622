package main

import (
	"context"
	"errors"
	"log/slog"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/motion/report"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// runSystem runs a townwatch for cfg in this process until the test ends, which fails if
// the run ends with an error. Its motion worker is this package's townwatch binary (built
// by TestMain), not the test binary.
func runSystem(t *testing.T, cfg *configs.Config) *system {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sys, err := openSystem(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	sys.motion.command = func(ctx context.Context) *exec.Cmd { return exec.CommandContext(ctx, binary, motionWorkerCommand) }
	done := make(chan error, 1)
	go func() { done <- sys.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("townwatch ended with %v", err)
		}
		sys.close()
	})
	return sys
}

// reloadCycles is how many times TestAddRemoveCyclesLeaveNothingBehind adds and removes
// a camera.
const reloadCycles = 100

// A camera added and removed a hundred times, while another records, leaves no goroutine
// and no memory behind, and the other camera is never touched.
func TestAddRemoveCyclesLeaveNothingBehind(t *testing.T) {
	cam := startSimcam(t, simcam.CameraSpec{Path: "stays", Clip: simcam.ClipStatic}, simcam.CameraSpec{Path: "comes", Clip: simcam.ClipMotion})
	dir := t.TempDir()
	head := "storage:\n  path: " + strconv.Quote(filepath.Join(dir, "storage")) + "\n  min_free: 1MiB\nhttp:\n  listen: 127.0.0.1:0\n" +
		"webrtc: {udp_port: 0, tcp_port: 0}\ncameras:\n" +
		"  - id: stays\n    main: {url: " + cam.URL("stays") + ", transport: tcp}\n    record: {mode: continuous, segment: 1h}\n"
	config := func(withSecond, motion bool) *configs.Config {
		t.Helper()
		yaml := head
		if withSecond {
			yaml += "  - id: comes\n    main: {url: " + cam.URL("comes") + ", transport: tcp}\n    record: {mode: continuous, segment: 10s}\n" +
				"    motion: {enabled: " + strconv.FormatBool(motion) + "}\n"
		}
		cfg, err := configs.Parse([]byte(yaml), "townwatch.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	sys := runSystem(t, config(false, false))
	streaming := func(id string) {
		t.Helper()
		waitUnitStreaming(t, sys, id)
	}
	streaming("stays")
	stays := sys.cams.unit("stays")
	for deadline := time.Now().Add(20 * time.Second); stays.writer.Stats().Segments == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the camera that stays did not start its first segment within 20 s")
		}
	}
	cycle := func(i int) {
		t.Helper()
		if err := sys.reloads.Apply(config(true, i%25 == 0), "api"); err != nil {
			t.Fatalf("cycle %d, add: %v", i, err)
		}
		if i%10 == 0 {
			streaming("comes") // now and then all the way up, not only started
		}
		if err := sys.reloads.Apply(config(false, false), "api"); err != nil {
			t.Fatalf("cycle %d, remove: %v", i, err)
		}
	}
	cycle(0) // the first one starts what lives on (the live view's and HTTP's pools)
	before := stays.main.Status()
	segments := stays.writer.Stats().Segments
	ignore := goleak.IgnoreCurrent()
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	g0 := runtime.NumGoroutine()
	for i := 1; i <= reloadCycles; i++ {
		cycle(i)
	}
	if err := goleak.Find(ignore); err != nil {
		t.Errorf("goroutines left after %d add/remove cycles: %v", reloadCycles, err)
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	growth := int64(m1.HeapAlloc) - int64(m0.HeapAlloc)
	t.Logf("%d add/remove cycles: goroutines %d → %d, heap %d KiB → %d KiB (%+d KiB)", reloadCycles,
		g0, runtime.NumGoroutine(), m0.HeapAlloc>>10, m1.HeapAlloc>>10, growth>>10)
	// A leak of one camera's buffers per cycle (a GOP cache, a recorder's fragment) would
	// be megabytes each; what is left must not grow with the cycles.
	if growth > 8<<20 {
		t.Errorf("heap grew by %d KiB over %d cycles", growth>>10, reloadCycles)
	}
	if sys.cams.unit("stays") != stays {
		t.Error("the camera that stayed was replaced")
	}
	if after := stays.main.Status(); after.Reconnects != before.Reconnects || stays.writer.Stats().Segments != segments {
		t.Errorf("the camera that stayed was touched: reconnects %d→%d, segments %d→%d", before.Reconnects, after.Reconnects,
			segments, stays.writer.Stats().Segments)
	}
}

// Adding a camera and removing it again, while another camera has a motion event going
// on, reaches the motion worker as two changes: the worker is not restarted (the same
// process runs throughout) and the event on the camera that stayed goes on, ending only
// when its motion does, after the reloads.
func reloadKeepsOtherCamerasMotionGoing(t *testing.T) {
	cam := startSimcam(t, simcam.CameraSpec{Path: "ulice", Clip: simcam.ClipMotion, LoopStart: motionLoopStart}, simcam.CameraSpec{Path: "comes", Clip: simcam.ClipStatic})
	dir := t.TempDir()
	head := "storage:\n  path: " + strconv.Quote(filepath.Join(dir, "storage")) + "\n  min_free: 1MiB\nhttp:\n  listen: 127.0.0.1:0\n" +
		"webrtc: {udp_port: 0, tcp_port: 0}\ncameras:\n" +
		"  - id: ulice\n    main: {url: " + cam.URL("ulice") + ", transport: tcp}\n    sub: {url: " + cam.URL("ulice") + ", transport: tcp}\n" +
		"    record: {mode: motion, pre_roll: 2s, post_roll: 2s, segment: 10s}\n    motion: {enabled: true, cooldown: 2s}\n"
	config := func(second string) *configs.Config {
		t.Helper()
		cfg, err := configs.Parse([]byte(head+second), "townwatch.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	withMotion := "  - id: comes\n    main: {url: " + cam.URL("comes") + ", transport: tcp}\n    record: {mode: continuous, segment: 10s}\n" +
		"    motion: {enabled: true}\n"
	withThumbnails := "  - id: comes\n    main: {url: " + cam.URL("comes") + ", transport: tcp}\n    record: {mode: continuous, segment: 10s}\n"
	sys := runSystem(t, config(""))

	ev := waitMotionEvent(t, sys, "ulice")
	pid := sys.motion.workerPID()
	if pid == 0 {
		t.Fatal("no motion worker runs while ulice has an event")
	}
	for _, second := range []string{withMotion, "", withThumbnails, ""} {
		if err := sys.reloads.Apply(config(second), "api"); err != nil {
			t.Fatal(err)
		}
	}
	reloaded := time.Now()
	if now := sys.motion.workerPID(); now != pid {
		t.Errorf("the motion worker was restarted by adding and removing another camera: pid %d → %d", pid, now)
	}
	if now, ok := ongoingMotionEvent(sys, "ulice"); !ok || now.ID != ev.ID {
		t.Fatalf("ulice's event %s was ended by the reloads (ongoing now: %v %s)", ev.ID, ok, now.ID)
	}
	row := waitEventEnded(t, sys, ev.ID)
	// The event ends at the motion's end plus the cooldown, found by the analyser that saw
	// it start: at least a moment after the reloads, not at them.
	t.Logf("ulice's event ended %s after the reloads", row.End.Sub(reloaded).Round(10*time.Millisecond))
	if !row.End.After(reloaded) {
		t.Errorf("ulice's event %s ended at %s, before the reloads finished at %s", ev.ID, row.End.Format(time.TimeOnly), reloaded.Format(time.TimeOnly))
	}
	if now := sys.motion.workerPID(); now != pid {
		t.Errorf("the motion worker was restarted: pid %d → %d", pid, now)
	}
}

// ongoingMotionEvent is the camera's event going on, as the motion pool tracks it.
func ongoingMotionEvent(sys *system, camera string) (report.Event, bool) {
	sys.motion.mu.Lock()
	defer sys.motion.mu.Unlock()
	ev, ok := sys.motion.active[camera]
	return ev, ok
}

// motionLoopStart starts a motion-clip camera 2 s before its car first drives
// (simcam.MotionIntervals[0], 10 s to 18 s into the loop), so that the motion reload
// tests wait about 2 s for their event instead of the clip's first 10 s. The 2 s leave
// the in-process townwatch time to connect and start its motion worker; one that came up
// later still sees the car drive for most of its 8 s, and the tests only need the event
// going on at the reload and ending after it, when the car stops.
const motionLoopStart = 8 * time.Second

// waitMotionEvent waits for an event to go on on a camera playing the motion clip, whose
// car drives in simcam.MotionIntervals of every loop.
func waitMotionEvent(t *testing.T, sys *system, camera string) report.Event {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if ev, ok := ongoingMotionEvent(sys, camera); ok {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("no motion event on %s within 60 s (stats %+v)", camera, sys.motion.Stats(camera))
		}
	}
}

// waitEventEnded waits for the event's catalog row, as an officer would see it, to have
// its end: the sink stores the start just after the pool counts the event as going on,
// and the end just after it stops counting it.
func waitEventEnded(t *testing.T, sys *system, id string) catalog.Event {
	t.Helper()
	var row catalog.Event
	for deadline := time.Now().Add(30 * time.Second); row.End.IsZero(); time.Sleep(50 * time.Millisecond) {
		var err error
		if row, err = sys.catalog.Event(context.Background(), id); err != nil && !errors.Is(err, catalog.ErrNotFound) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %s did not end within 30 s", id)
		}
	}
	return row
}
