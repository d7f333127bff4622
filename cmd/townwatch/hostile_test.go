package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// metricOf reads one camera's sample of a metric from a /metrics page (-1 if absent).
func metricOf(page, name, camera string) float64 {
	m := regexp.MustCompile(`(?m)^` + name + `\{camera="` + regexp.QuoteMeta(camera) + `"\} (\S+)$`).FindStringSubmatch(page)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestCrawlingCameraClockKeepsFootageOnDisk: a camera whose clock advances one 90 kHz
// tick per frame (25 frames look like 0.3 ms) and that stops sending keyframes after its first seconds. Before,
// the recorder waited for a fragment to span 1 s of camera time, keeping everything in
// memory and nothing on disk. Now footage reaches the disk on the wall clock: what was
// received is durable within about a second throughout, and a SIGKILL loses at most 2 s.
func TestCrawlingCameraClockKeepsFootageOnDisk(t *testing.T) {
	camAddr := "127.0.0.1:" + strconv.Itoa(freeTCPPort(t))
	dir := t.TempDir()
	storage := filepath.Join(dir, "storage")
	cfg := "storage:\n  path: " + strconv.Quote(storage) + "\n  min_free: 1MiB\nhttp:\n  listen: 127.0.0.1:0\n" +
		"webrtc: {udp_port: 0, tcp_port: 0}\ncameras:\n  - id: plazivy\n    main: {url: rtsp://" + camAddr + "/plazivy}\n" +
		"    record: {mode: continuous, segment: 10s}\n"
	cfgPath := filepath.Join(dir, "townwatch.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addAccount(t, cfgPath, "velitel", "supervisor,admin")
	p := startServe(t, cfgPath)
	// The camera comes up now, so townwatch gets its first keyframes; after 3 s it sends
	// no more (townwatch probes an unreachable camera every 0.5 s).
	startSimcamAt(t, camAddr, simcam.CameraSpec{Path: "plazivy", Clip: simcam.ClipStatic, TicksPerFrame: 1, StopKeyframesAfter: 3 * time.Second})
	p.waitRecording(t, "velitel", "plazivy")
	admin := loginClient(t, p.base, "velitel", accountPassword)

	// For 15 s: frames received but not yet durable, in seconds of video (25 fps).
	var worst float64
	var received float64
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		page := httpGet(t, admin, p.base+"metrics")
		received = metricOf(page, "townwatch_camera_received_frames_total", "plazivy")
		durable := metricOf(page, "townwatch_recorded_frames_total", "plazivy")
		if received < 0 || durable < 0 {
			t.Fatalf("metrics lack the camera's frame counters:\n%.2000s", page)
		}
		worst = max(worst, (received-durable)/25)
	}
	t.Logf("footage received but not on disk: at most %.2f s over 15 s", worst)
	if worst > 2 {
		t.Errorf("up to %.2f s of received footage was only in memory; want it on disk within about a second", worst)
	}

	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	// The next start recovers the interrupted segment; then count what is durable.
	p = startServe(t, cfgPath)
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.exited
	cat, err := catalog.Open(context.Background(), filepath.Join(storage, catalogFile))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	segs, err := cat.AllSegments(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var frames int64
	for _, s := range segs {
		frames += s.Frames
	}
	lost := (received - float64(frames)) / 25
	t.Logf("after SIGKILL and recovery: %d frames in %d segments; %.0f had been received at the last look (%.2f s lost at most)",
		frames, len(segs), received, lost)
	if lost > 2 {
		t.Errorf("SIGKILL lost %.2f s of received footage; want at most 2 s", lost)
	}
	if strings.Contains(p.stderr.String(), "panic") {
		t.Errorf("the log mentions a panic:\n%s", p.stderr.String())
	}
}
