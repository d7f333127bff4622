package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog/pgtest"
)

// binary is the townwatch executable built once for the subprocess tests: signals, exit
// statuses and stdout are what an operator sees, so they are tested on the real binary.
//
// The tests that run it (each with its own storage, simulated cameras and ports) mostly
// wait on real-time video, so they call t.Parallel. Tests that run the server in this
// process and count its goroutines or measure its heap (reload_cycle_test.go), the
// crawling camera clock test, which wants footage on disk within about a second, the
// connection flood, which must not starve the others, and two groups do not: go test runs
// them one at a time before the parallel ones start. In each group the tests run beside
// each other only, as parallel subtests: the two node handover tests, which time the
// failover (TestNodeHandovers), and the supervise test, which gives its motion worker
// 20 s to analyse after each start, with the two motion reload tests, whose event must
// end after the reloads by the analysed frames' time (TestMotionWorkerRestartsAndReloads).
var binary string

// e2eParallel is how many parallel tests of this package run at once at least, unless
// -parallel is given. go test's default is GOMAXPROCS (2 on CI, kept where it is more), but these tests spend most of their
// time waiting on real-time video, timers and child processes, so two at a time left the
// CPU mostly idle; see docs/testing.md for the measurement behind the figure.
const e2eParallel = 8

func TestMain(m *testing.M) {
	flag.Parse()
	if !flagSet("test.parallel") {
		flag.Set("test.parallel", strconv.Itoa(max(e2eParallel, runtime.GOMAXPROCS(0))))
	}
	dir, err := os.MkdirTemp("", "townwatch-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "townwatch")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building townwatch:", err)
		os.Exit(1)
	}
	code := pgtest.Main(m.Run) // stops the PostgreSQL server the catalog migrate test starts
	os.RemoveAll(dir)
	os.Exit(code)
}

// flagSet reports whether the command line set the flag called name.
func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// runBinary runs townwatch to completion and returns its exit status and output.
func runBinary(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("running townwatch %v: %v", args, err)
	}
	return code, out.String(), errOut.String()
}

func TestCheckConfigListsEveryProblem(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bad.yaml")
	err := os.WriteFile(path, []byte(`storage:
  path: ./data
cameras:
  - id: stribro-namesti
    main:
      url: http://admin:tajne-heslo@127.0.0.1/cam
      transport: quic
    record:
      mode: sometimes
  - id: stribro-most
    main:
      url: rtsp://127.0.0.1/cam2
  - id: stribro-most
    main:
      url: rtsp://127.0.0.1/cam3
  - id: Bad_ID
    main: {}
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runBinary(t, "check-config", "-config", path)
	if code != 2 {
		t.Fatalf("exit status %d, want 2; stderr:\n%s", code, stderr)
	}
	for _, want := range []string{
		"cameras[stribro-namesti].main.url: scheme must be rtsp or rtsps",
		"cameras[stribro-namesti].main.transport: unknown value \"quic\"",
		"cameras[stribro-namesti].record.mode: unknown value \"sometimes\"",
		"cameras[2].id: duplicate id \"stribro-most\"",
		"cameras[3].id: invalid id \"Bad_ID\"",
		"cameras[3].main.url: required",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("check-config output lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "tajne-heslo") {
		t.Errorf("check-config printed the password:\n%s", stderr)
	}
}

func TestCheckConfigAcceptsTheDemoConfig(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := runBinary(t, "check-config", "-config", "../../configs/demo.yaml")
	if code != 0 || !strings.Contains(stdout, "valid (2 camera(s)") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestCheckConfigUnknownKeyNamesItsLine(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "typo.yaml")
	if err := os.WriteFile(path, []byte("storage:\n  path: ./data\n  retension: 7d\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runBinary(t, "check-config", "-config", path)
	if code != 2 || !strings.Contains(stderr, ":3") || !strings.Contains(stderr, "retension") {
		t.Fatalf("exit %d, stderr:\n%s\nwant status 2 naming line 3 and the key", code, stderr)
	}
}

func TestUsageAndVersion(t *testing.T) {
	t.Parallel()
	if code, _, stderr := runBinary(t, "frobnicate"); code != 2 || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := runBinary(t, "serve"); code != 2 || !strings.Contains(stderr, "-config FILE is required") {
		t.Errorf("serve without -config: exit %d, stderr %q", code, stderr)
	}
	if code, stdout, _ := runBinary(t, "version"); code != 0 || !strings.HasPrefix(stdout, "townwatch ") {
		t.Errorf("version: exit %d, stdout %q", code, stdout)
	}
}

// cameraStates polls /api/cameras and returns id → state.
func cameraStates(t *testing.T, c *http.Client, base string) map[string]string {
	t.Helper()
	resp, err := c.Get(base + "api/cameras")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var cams []struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&cams); err != nil {
		t.Fatalf("/api/cameras: %v", err)
	}
	out := map[string]string{}
	for _, c := range cams {
		out[c.ID] = c.State
	}
	return out
}

// TestDemoStreamsBothCamerasAndStopsOnSIGTERM is what a newcomer does with `make demo`:
// both simulated cameras must report streaming (the time is logged), metrics and health must show
// them, and SIGTERM must stop the process cleanly.
func TestDemoStreamsBothCamerasAndStopsOnSIGTERM(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	cmd := exec.Command(binary, "demo", "-data", data, "-http", "127.0.0.1:0", "-simcam", "127.0.0.1:0", "-webrtc", "0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	waited := make(chan struct{}) // closed once cmd.Wait has returned: stderr is complete
	t.Cleanup(func() {
		cmd.Process.Kill()
		// exec copies the process's stderr into the buffer until Wait returns; reading it
		// before is a data race (the race detector failed a slow run on it).
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			t.Error("townwatch demo did not exit within 10 s of SIGKILL")
			return
		}
		if t.Failed() {
			t.Logf("townwatch stderr:\n%s", stderr.String())
		}
	})

	started := time.Now()
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		exited <- cmd.Wait()
		close(waited)
	}()
	var base string
	select {
	case line := <-lines:
		m := regexp.MustCompile(`open (http://127\.0\.0\.1:\d+/)`).FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("demo's first line does not give the web address: %q", line)
		}
		base = m[1]
	case <-time.After(20 * time.Second):
		t.Fatal("demo printed no web address within 20 s")
	}
	// Then the one-time logins, one per role: "  supervisor  PASSWORD".
	passwords := map[string]string{}
	for len(passwords) < 5 {
		select {
		case line := <-lines:
			if f := strings.Fields(line); len(f) == 2 && strings.HasPrefix(line, "  ") {
				passwords[f[0]] = f[1]
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("demo printed logins for %v only", passwords)
		}
	}
	// Nothing is served to a browser without a login; the wall sends it to the login page.
	anonymous := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for path, want := range map[string]int{"api/cameras": http.StatusUnauthorized, "metrics": http.StatusUnauthorized, "": http.StatusSeeOther} {
		resp, err := anonymous.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET /%s without a login: %d, want %d", path, resp.StatusCode, want)
		}
	}
	supervisor := loginClient(t, base, "supervisor", passwords["supervisor"])
	admin := loginClient(t, base, "admin", passwords["admin"])

	var states map[string]string
	// The bound is generous: it catches a camera that never comes up, not a slow start on
	// a loaded machine (the demo hashes its accounts' passwords first); the time is logged.
	for deadline := started.Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		states = cameraStates(t, supervisor, base)
		if states["demo-motion"] == "streaming" && states["demo-static"] == "streaming" {
			break
		}
	}
	if states["demo-motion"] != "streaming" || states["demo-static"] != "streaming" {
		t.Fatalf("within 60 s of start the cameras are %v, want both streaming", states)
	}
	t.Logf("both demo cameras streaming %s after start", time.Since(started).Round(10*time.Millisecond))

	// Streaming starts with the first packet; frames are counted from the first keyframe,
	// at most one GOP (2 s) later.
	framesSeen := regexp.MustCompile(`townwatch_camera_received_frames_total\{camera="demo-static"\} [1-9]`)
	var metrics string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if metrics = httpGet(t, admin, base+"metrics"); framesSeen.MatchString(metrics) {
			break
		}
	}
	if !framesSeen.MatchString(metrics) {
		t.Error("/metrics shows no frames received from demo-static")
	}
	for _, want := range []string{
		`townwatch_camera_up{camera="demo-motion"} 1`,
		`townwatch_camera_up{camera="demo-static"} 1`,
		`townwatch_camera_reconnects_total{camera="demo-motion"} 0`,
		`townwatch_camera_sub_up{camera="demo-motion"} 1`,
		`townwatch_webrtc_sessions{camera="demo-static"} 0`,
		`townwatch_motion_active{camera="demo-motion"}`, // motion detection runs on the motion camera only
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// Both cameras are being recorded, and the API says so.
	var cams []struct {
		ID        string `json:"id"`
		Recording struct {
			State    string `json:"state"`
			Segments int    `json:"segments"`
		} `json:"recording"`
	}
	if err := json.Unmarshal([]byte(httpGet(t, supervisor, base+"api/cameras")), &cams); err != nil {
		t.Fatal(err)
	}
	for _, c := range cams {
		if c.Recording.State != "recording" || c.Recording.Segments < 1 {
			t.Errorf("camera %s recording = %+v, want recording with a segment", c.ID, c.Recording)
		}
	}
	if strings.Contains(metrics, `townwatch_motion_active{camera="demo-static"}`) {
		t.Error("/metrics shows motion detection for demo-static, which has it off")
	}
	// The live wall is served at the address the demo printed.
	if page := httpGet(t, supervisor, base); !strings.Contains(page, "<title>") || !strings.Contains(page, "static/app.js") {
		t.Errorf("/ does not serve the live wall:\n%.300s", page)
	}
	if h := httpGet(t, anonymous, base+"healthz"); !strings.Contains(h, `"status":"ok"`) {
		t.Errorf("/healthz = %s", h)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("after SIGTERM townwatch exited with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("townwatch did not stop within 15 s of SIGTERM")
	}
	// Not a terminal: the log must be JSON, one object per line.
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if line != "" && !json.Valid([]byte(line)) {
			t.Errorf("log line is not JSON: %q", line)
			break
		}
	}
}
