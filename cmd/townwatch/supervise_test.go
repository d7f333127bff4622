package main

import (
	"context"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/recorder"
)

// aPanickingComponentRestartsAlone runs a whole townwatch in this process with two
// cameras and makes one camera's recorder panic from inside its own work (the system's
// test seam), then kills the motion worker process with SIGKILL (as a crash in libavcodec
// or OpenCV would end it). Each time only that component restarts, the restart is
// counted, motion analysis resumes, and both cameras record on without a gap; the
// process never stops. Last the worker is stopped (SIGSTOP): a worker that no longer
// reads its input is killed and restarted the same way.
//
// ulice's motion analyses every frame of its main stream (analyze: all, at the default
// 5 fps) rather than only its keyframes, one every 2 s: the worker gets the same input
// either way, but it is then seen analysing again within a second of each restart
// instead of after three keyframes.
func aPanickingComponentRestartsAlone(t *testing.T) {
	cam := startSimcam(t, simcam.CameraSpec{Path: "motion", Clip: simcam.ClipMotion}, simcam.CameraSpec{Path: "static", Clip: simcam.ClipStatic})
	dir := t.TempDir()
	yaml := "storage:\n  path: " + strconv.Quote(filepath.Join(dir, "storage")) + "\n  min_free: 1MiB\nhttp:\n  listen: 127.0.0.1:0\n" +
		"webrtc: {udp_port: 0, tcp_port: 0}\ncameras:\n" +
		"  - id: ulice\n    main: {url: " + cam.URL("motion") + ", transport: tcp}\n    record: {mode: continuous, segment: 10s}\n    motion: {enabled: true, analyze: all}\n" +
		"  - id: namesti\n    main: {url: " + cam.URL("static") + ", transport: tcp}\n    record: {mode: continuous, segment: 10s}\n"
	cfg, err := configs.Parse([]byte(yaml), "townwatch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sys, err := openSystem(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer sys.close()
	// The worker is this package's townwatch binary (built by TestMain), not the test binary.
	sys.motion.command = func(ctx context.Context) *exec.Cmd { return exec.CommandContext(ctx, binary, motionWorkerCommand) }
	sys.motion.inputBound = time.Second
	// A tenth of each restart backoff (1 s, then 2 s for the worker's second restart):
	// the components still restart only after a wait, without the test waiting out 4 s.
	sys.restartWait = func(ctx context.Context, d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d / 10):
			return true
		}
	}
	var armed atomic.Pointer[string] // "camera/component" to panic once
	sys.faults = func(camera, component string) {
		if want := armed.Load(); want != nil && *want == camera+"/"+component && armed.CompareAndSwap(want, nil) {
			panic("injected fault in " + *want)
		}
	}
	done := make(chan error, 1)
	go func() { done <- sys.run(ctx) }()

	writer := func(id string) *recorder.Writer {
		if u := sys.cams.unit(id); u != nil {
			return u.writer
		}
		t.Fatalf("no writer for %s", id)
		return nil
	}
	ulice, namesti := writer("ulice"), writer("namesti")
	// Each wait is logged with what it took, to see its margin under the 20 s.
	eventually := func(what string, cond func() bool) {
		t.Helper()
		start := time.Now()
		defer func() { t.Logf("%s: after %s", what, time.Since(start).Round(10*time.Millisecond)) }()
		for deadline := start.Add(20 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("not within 20 s: %s (ulice %+v, namesti %+v)", what, ulice.Stats(), namesti.Stats())
			}
			select {
			case err := <-done:
				t.Fatalf("townwatch stopped: %v", err)
			default:
			}
		}
	}
	eventually("both cameras recording", func() bool {
		return ulice.Stats().State == recorder.StateRecording && namesti.Stats().State == recorder.StateRecording &&
			ulice.Stats().RecordedFrames > 0 && namesti.Stats().RecordedFrames > 0 && sys.motion.Stats("ulice").AnalyzedFrames > 0
	})

	// The recorder panics from inside its work.
	before, ulBefore := namesti.Stats(), ulice.Stats()
	target := "ulice/recorder"
	armed.Store(&target)
	eventually("the recorder restarted once", func() bool { return counterValue(sys.restarts.WithLabelValues("ulice", "recorder")) == 1 })
	eventually("ulice recording again", func() bool {
		st := ulice.Stats()
		return st.State == recorder.StateRecording && st.RecordedFrames > ulBefore.RecordedFrames+25
	})
	if after := namesti.Stats(); after.Gaps != before.Gaps || after.State != recorder.StateRecording {
		t.Errorf("the recorder fault on ulice touched namesti: before %+v, after %+v", before, after)
	}

	// The motion worker dies as a crash in C code would end it.
	before, ulBefore = namesti.Stats(), ulice.Stats()
	analysed := sys.motion.Stats("ulice").AnalyzedFrames
	pid := sys.motion.workerPID()
	if pid == 0 {
		t.Fatal("no motion worker is running")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually("the worker restarted", func() bool {
		return counterValue(sys.restarts.WithLabelValues("", "motion_worker")) == 1 && sys.motion.workerPID() != 0 && sys.motion.workerPID() != pid
	})
	eventually("ulice analysed again", func() bool { return sys.motion.Stats("ulice").AnalyzedFrames > analysed+2 })
	for name, w := range map[string]struct{ before, after recorder.WriterStats }{
		"ulice": {ulBefore, ulice.Stats()}, "namesti": {before, namesti.Stats()}} {
		if w.after.Gaps != w.before.Gaps || w.after.State != recorder.StateRecording || w.after.RecordedFrames <= w.before.RecordedFrames {
			t.Errorf("the worker's death touched %s's recording: before %+v, after %+v", name, w.before, w.after)
		}
	}

	// The worker stops reading (SIGSTOP, as a deadlock in C code would look): the
	// forwarders' writes wait at most the input bound, then it is killed and restarted.
	before, ulBefore = namesti.Stats(), ulice.Stats()
	analysed = sys.motion.Stats("ulice").AnalyzedFrames
	pid = sys.motion.workerPID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	eventually("the stopped worker killed and restarted", func() bool {
		return counterValue(sys.restarts.WithLabelValues("", "motion_worker")) == 2 && sys.motion.workerPID() != 0 && sys.motion.workerPID() != pid
	})
	eventually("ulice analysed after the stopped worker", func() bool { return sys.motion.Stats("ulice").AnalyzedFrames > analysed+2 })
	if after := namesti.Stats(); after.Gaps != before.Gaps || ulice.Stats().Gaps != ulBefore.Gaps {
		t.Errorf("the stopped worker touched recording: namesti %+v → %+v, ulice %+v → %+v", before, after, ulBefore, ulice.Stats())
	}
	for _, other := range []string{"recorder", "motion", "source_main"} {
		if n := counterValue(sys.restarts.WithLabelValues("namesti", other)); n != 0 {
			t.Errorf("namesti's %s restarted %v times", other, n)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("townwatch ended with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("townwatch did not stop within 15 s")
	}
}

// counterValue reads a counter as a scrape would.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
