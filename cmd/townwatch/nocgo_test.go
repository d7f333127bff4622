package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest/simcam"
)

// TestServerBuiltWithoutCgoRunsMotionInTownwatchMotion builds townwatch as make build does
// (CGO_ENABLED=0), with this test binary's cgo townwatch beside it as townwatch-motion.
// The server maps no shared library at all (no libavcodec, no OpenCV: that is the memory
// the split saves), and motion detection still works, in the worker program. Without the
// worker program the server still records, and its log names the missing program.
func TestServerBuiltWithoutCgoRunsMotionInTownwatchMotion(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	server := filepath.Join(dir, "townwatch")
	build := exec.Command("go", "build", "-o", server, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build with CGO_ENABLED=0: %v\n%s", err, out)
	}
	worker := filepath.Join(dir, motionWorkerProgramName)
	if err := os.Symlink(binary, worker); err != nil {
		t.Fatal(err)
	}

	cam := startSimcam(t, simcam.CameraSpec{Path: "motion", Clip: simcam.ClipMotion})
	storage := filepath.Join(dir, "storage")
	cfg := "storage:\n  path: " + strconv.Quote(storage) + "\n  min_free: 1MiB\nhttp:\n  listen: 127.0.0.1:0\n" +
		"webrtc: {udp_port: 0, tcp_port: 0}\ncameras:\n  - id: ulice\n" +
		"    main: {url: " + cam.URL("motion") + ", transport: tcp}\n" +
		"    sub: {url: " + cam.URL("motion") + ", transport: tcp}\n" +
		"    motion: {enabled: true, cooldown: 2s}\n"
	cfgPath := filepath.Join(dir, "townwatch.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addAccount(t, cfgPath, "novak", "officer", "-cameras", "ulice")
	addAccount(t, cfgPath, "velitel", "supervisor,admin")

	p := startServeCmd(t, exec.Command(server, "serve", "-config", cfgPath))
	maps, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/maps")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(maps)) {
		if strings.Contains(line, ".so") {
			t.Errorf("the server built without cgo maps a shared library: %s", line)
		}
	}
	officer := loginClient(t, p.base, "novak", accountPassword)
	waitFor(t, 50*time.Second, "a motion event from the worker program", func() bool {
		var events []json.RawMessage
		return json.Unmarshal([]byte(httpGet(t, officer, p.base+"api/events?camera=ulice")), &events) == nil && len(events) > 0
	}, p)
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.exited

	// Without its worker program the server records on and says what is missing.
	if err := os.Remove(worker); err != nil {
		t.Fatal(err)
	}
	p = startServeCmd(t, exec.Command(server, "serve", "-config", cfgPath))
	p.waitRecording(t, "velitel", "ulice")
	waitFor(t, 30*time.Second, "an error naming the missing worker program", func() bool {
		for line := range strings.Lines(p.stderr.String()) {
			if strings.Contains(line, `"level":"ERROR"`) && strings.Contains(line, "motion worker program missing") && strings.Contains(line, worker) {
				return true
			}
		}
		return false
	}, p)
}
