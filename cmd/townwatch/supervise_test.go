package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/recorder"
)

// TestAPanickingComponentRestartsAlone runs a whole townwatch in this process with two
// cameras and makes one camera's recorder, then its motion analyser, panic from inside
// their own work (the system's test seam). Each time only that component restarts, the
// restart is counted, and the other camera records on without a gap; the process never
// stops.
func TestAPanickingComponentRestartsAlone(t *testing.T) {
	cam := startSimcam(t, simcam.CameraSpec{Path: "motion", Clip: simcam.ClipMotion}, simcam.CameraSpec{Path: "static", Clip: simcam.ClipStatic})
	dir := t.TempDir()
	yaml := "storage:\n  path: " + strconv.Quote(filepath.Join(dir, "storage")) + "\n  min_free: 1MiB\nhttp:\n  listen: 127.0.0.1:0\n" +
		"webrtc: {udp_port: 0, tcp_port: 0}\ncameras:\n" +
		"  - id: ulice\n    main: {url: " + cam.URL("motion") + ", transport: tcp}\n    record: {mode: continuous, segment: 10s}\n    motion: {enabled: true}\n" +
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
	var armed atomic.Pointer[string] // "camera/component" to panic once
	sys.faults = func(camera, component string) {
		if want := armed.Load(); want != nil && *want == camera+"/"+component && armed.CompareAndSwap(want, nil) {
			panic("injected fault in " + *want)
		}
	}
	done := make(chan error, 1)
	go func() { done <- sys.run(ctx) }()

	writer := func(id string) *recorder.Writer {
		for _, w := range sys.writers {
			if w.Camera() == id {
				return w
			}
		}
		t.Fatalf("no writer for %s", id)
		return nil
	}
	ulice, namesti := writer("ulice"), writer("namesti")
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
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
			ulice.Stats().RecordedFrames > 0 && namesti.Stats().RecordedFrames > 0 && sys.analyzers[0].Stats().AnalyzedFrames > 0
	})

	for _, component := range []string{"recorder", "motion"} {
		before := namesti.Stats()
		analysed := sys.analyzers[0].Stats().AnalyzedFrames
		target := "ulice/" + component
		armed.Store(&target)
		restarts := sys.restarts.WithLabelValues("ulice", component)
		eventually(component+" restarted once", func() bool { return counterValue(restarts) == 1 })
		switch component {
		case "recorder":
			framesAt := ulice.Stats().RecordedFrames
			eventually("ulice recording again", func() bool {
				st := ulice.Stats()
				return st.State == recorder.StateRecording && st.RecordedFrames > framesAt+25
			})
		case "motion":
			eventually("ulice analysed again", func() bool { return sys.analyzers[0].Stats().AnalyzedFrames > analysed+10 })
		}
		after := namesti.Stats()
		if after.Gaps != before.Gaps || after.State != recorder.StateRecording || after.RecordedFrames <= before.RecordedFrames {
			t.Errorf("%s fault on ulice touched namesti: before %+v, after %+v", component, before, after)
		}
		for _, other := range []string{"recorder", "motion", "source_main"} {
			if other != component {
				if n := counterValue(sys.restarts.WithLabelValues("ulice", other)); other == "source_main" && n != 0 {
					t.Errorf("the %s fault restarted ulice's %s too (%v)", component, other, n)
				}
			}
			if n := counterValue(sys.restarts.WithLabelValues("namesti", other)); n != 0 {
				t.Errorf("namesti's %s restarted %v times", other, n)
			}
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
