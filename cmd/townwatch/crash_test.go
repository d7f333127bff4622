package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// crashTrials is how many times TestCrashSIGKILLAtRandomInstants kills townwatch.
const crashTrials = 10

// crashMaxLoss is the acceptance bound: after a SIGKILL and a restart each camera has lost
// at most this much of what it sent before the kill.
const crashMaxLoss = 2 * time.Second

// crashCameras are the camera ids of the crash test and the simcam paths they record.
var crashCameras = []struct{ id, path string }{{"cam-a", "motion"}, {"cam-b", "static"}}

func crashCameraIDs() []string {
	var ids []string
	for _, c := range crashCameras {
		ids = append(ids, c.id)
	}
	return ids
}

// crashLogBuf is a bytes.Buffer safe for a writer goroutine and a reading test.
type crashLogBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *crashLogBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *crashLogBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serveProc is one running `townwatch serve`.
type serveProc struct {
	cmd    *exec.Cmd
	base   string // http://127.0.0.1:port/
	stderr *crashLogBuf
	exited chan struct{}
	err    error        // Wait's result, set before exited is closed
	client *http.Client // logged in, for tests that keep one session (nodes_test.go)
}

// startServe starts `townwatch serve -config cfg` and returns once it logs that it runs
// (after Recover, with the HTTP listener bound), with the web address it logged.
func startServe(t *testing.T, cfg string) *serveProc {
	t.Helper()
	return startServeCmd(t, exec.Command(binary, "serve", "-config", cfg))
}

// startServeCmd is startServe for a prepared command (e.g. run under prlimit).
func startServeCmd(t *testing.T, cmd *exec.Cmd) *serveProc {
	t.Helper()
	p := &serveProc{cmd: cmd, stderr: &crashLogBuf{}, exited: make(chan struct{})}
	pipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})
	web := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			p.stderr.Write(append(line, '\n'))
			var rec struct {
				Msg string `json:"msg"`
				Web string `json:"web"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "townwatch running" {
				select {
				case web <- rec.Web:
				default:
				}
			}
		}
		io.Copy(p.stderr, pipe)
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	select {
	case p.base = <-web:
	case <-p.exited:
		t.Fatalf("townwatch serve exited before running (%v):\n%s", p.err, p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("townwatch serve did not log \"townwatch running\" within 30 s:\n%s", p.stderr.String())
	}
	return p
}

// recordingFrames returns, per camera, the recorder's state from /api/cameras and the
// frames it made durable from /metrics; nil maps while the server does not answer.
func recordingFrames(client *http.Client, base string) (map[string]string, map[string]float64) {
	resp, err := client.Get(base + "api/cameras")
	if err != nil {
		return nil, nil
	}
	var cams []struct {
		ID        string `json:"id"`
		Recording *struct {
			State string `json:"state"`
		} `json:"recording"`
	}
	err = json.NewDecoder(resp.Body).Decode(&cams)
	resp.Body.Close()
	if err != nil {
		return nil, nil
	}
	states := map[string]string{}
	for _, c := range cams {
		if c.Recording != nil {
			states[c.ID] = c.Recording.State
		}
	}
	resp, err = client.Get(base + "metrics")
	if err != nil {
		return states, nil
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	frames := map[string]float64{}
	re := regexp.MustCompile(`(?m)^townwatch_recorded_frames_total\{camera="([^"]+)"\} (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(string(body), -1) {
		if v, err := strconv.ParseFloat(m[2], 64); err == nil {
			frames[m[1]] = v
		}
	}
	return states, frames
}

// waitRecording waits until every camera's recorder is recording and has made frames
// durable, logged in as name (an account that may see the cameras and the metrics);
// cameras default to crashCameras.
func (p *serveProc) waitRecording(t *testing.T, name string, cameras ...string) {
	t.Helper()
	if len(cameras) == 0 {
		cameras = crashCameraIDs()
	}
	client := loginClient(t, p.base, name, accountPassword)
	client.Timeout = 2 * time.Second
	var states map[string]string
	var frames map[string]float64
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		states, frames = recordingFrames(client, p.base)
		ok := true
		for _, id := range cameras {
			ok = ok && states[id] == "recording" && frames[id] > 0
		}
		if ok {
			return
		}
	}
	t.Fatalf("within 30 s of start the recorders are %v with %v frames recorded; want every camera recording:\n%s",
		states, frames, p.stderr.String())
}

// catalogSnapshot is what a stopped townwatch left: every catalog row, and every segment
// file under recordings/ with its size and SHA-256.
type catalogSnapshot struct {
	segs  []catalog.Segment
	files map[string]crashFile // by catalog path
}

type crashFile struct {
	size int64
	sha  string
}

// snapshotStorage reads the catalog and the recordings of a stopped townwatch. The catalog
// is opened on a copy (database and WAL), so that the test's own open and close (which
// checkpoints the WAL) leave the files exactly as the killed process did for the next
// start-up to recover.
func snapshotStorage(t *testing.T, storage string) catalogSnapshot {
	t.Helper()
	tmp := t.TempDir()
	for _, name := range []string{catalogFile, catalogFile + "-wal"} {
		b, err := os.ReadFile(filepath.Join(storage, name))
		if err != nil {
			if name != catalogFile && os.IsNotExist(err) {
				continue
			}
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	cat, err := catalog.Open(ctx, filepath.Join(tmp, catalogFile))
	if err != nil {
		t.Fatalf("open a copy of the catalog: %v", err)
	}
	segs, err := cat.AllSegments(ctx)
	if cerr := cat.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	snap := catalogSnapshot{segs: segs, files: map[string]crashFile{}}
	root := os.DirFS(storage)
	err = fs.WalkDir(root, "recordings", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		snap.files[p] = crashFile{size: int64(len(b)), sha: hex.EncodeToString(sum[:])}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// checkConsistent asserts the catalog's promise on a stopped townwatch: every closed row
// matches its file's size and SHA-256, every file under recordings/ has a row, and open
// rows (a killed process's segments in progress, which the next start-up recovers) are
// at most one per camera and have their file. It returns the open rows.
func checkConsistent(t *testing.T, when string, snap catalogSnapshot) []catalog.Segment {
	t.Helper()
	rows := map[string]bool{}
	openPer := map[string]int{}
	var open []catalog.Segment
	for _, s := range snap.segs {
		rows[s.Path] = true
		f, ok := snap.files[s.Path]
		switch {
		case !ok:
			t.Errorf("%s: catalog row %s (open %v) has no file", when, s.Path, s.Open)
		case s.Open:
			openPer[s.Camera]++
			open = append(open, s)
		case f.size != s.Bytes || f.sha != s.SHA256:
			t.Errorf("%s: %s: catalog says %d bytes sha %s, the file has %d bytes sha %s", when, s.Path, s.Bytes, s.SHA256, f.size, f.sha)
		}
	}
	for cam, n := range openPer {
		if n > 1 {
			t.Errorf("%s: camera %s has %d open segments", when, cam, n)
		}
	}
	for p := range snap.files {
		// Scrub-preview thumbnails are no catalog rows; they belong beside a segment that is.
		if seg, ok := strings.CutSuffix(p, ".thumbs"); ok {
			if !rows[seg+".mp4"] {
				t.Errorf("%s: thumbnails %s have no segment in the catalog", when, p)
			}
			continue
		}
		if !rows[p] {
			t.Errorf("%s: file %s is not in the catalog", when, p)
		}
	}
	return open
}

// checkPlays fails the test unless ffprobe and a full ffmpeg decode of path are silent.
func checkPlays(t *testing.T, path string) {
	t.Helper()
	for _, args := range [][]string{
		{"ffprobe", "-v", "error", path},
		{"ffmpeg", "-nostdin", "-v", "error", "-i", path, "-f", "null", "-"},
	} {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("%s on %s: %v\n%s", args[0], path, err, out)
		}
	}
}

// startSimcam runs simulated cameras on a free loopback port for the rest of the test.
func startSimcam(t *testing.T, specs ...simcam.CameraSpec) *simcam.Server {
	t.Helper()
	return startSimcamAt(t, "127.0.0.1:0", specs...)
}

// startSimcamAt is startSimcam on a chosen address (a camera that appears after the
// server started).
func startSimcamAt(t *testing.T, addr string, specs ...simcam.CameraSpec) *simcam.Server {
	t.Helper()
	cam, err := simcam.New(simcam.Config{Listen: addr, Cameras: specs})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	camDone := make(chan error, 1)
	go func() { camDone <- cam.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-camDone
	})
	select {
	case <-cam.Ready():
	case err := <-camDone:
		t.Fatalf("simcam: %v", err)
	}
	return cam
}

// crashKill is one SIGKILL: when, and the segments it interrupted.
type crashKill struct {
	trial       int
	at          time.Time
	interrupted []catalog.Segment // open rows left by the killed process
}

// checkRecovered asserts what a restart after kill k must have done: each camera's
// footage reaches to within crashMaxLoss of the kill, the interrupted segments are closed,
// indexed and play, the recovery was logged, and the next footage is marked as following
// a gap.
func checkRecovered(t *testing.T, storage string, snap catalogSnapshot, k crashKill, restartLog string) {
	t.Helper()
	byPath := map[string]catalog.Segment{}
	for _, s := range snap.segs {
		byPath[s.Path] = s
	}
	for _, c := range crashCameras {
		var last catalog.Segment
		var after *catalog.Segment
		for _, s := range snap.segs {
			if s.Camera != c.id {
				continue
			}
			if s.Start.Before(k.at) && s.End.After(last.End) {
				last = s
			}
			if !s.Start.Before(k.at) && (after == nil || s.Start.Before(after.Start)) {
				after = &s
			}
		}
		if last.ID == 0 {
			t.Errorf("trial %d: camera %s has no footage from before the kill at %s", k.trial, c.id, k.at.Format(time.RFC3339Nano))
			continue
		}
		lost := k.at.Sub(last.End)
		t.Logf("trial %d: camera %s: footage ends %v before the kill (segment %s, %d frames)", k.trial, c.id, lost.Round(time.Millisecond), last.Path, last.Frames)
		if lost > crashMaxLoss {
			t.Errorf("trial %d: camera %s lost %v before the kill (footage ends %s, killed %s); at most %v may be lost",
				k.trial, c.id, lost, last.End.Format(time.RFC3339Nano), k.at.Format(time.RFC3339Nano), crashMaxLoss)
		}
		if lost < -time.Second {
			t.Errorf("trial %d: camera %s has footage until %v after the kill", k.trial, c.id, -lost)
		}
		if after != nil && !after.GapBefore {
			t.Errorf("trial %d: camera %s: the first segment after the restart (%s) is not marked GapBefore", k.trial, c.id, after.Path)
		}
	}
	if strings.Contains(restartLog, "recording does not match the catalog") {
		t.Errorf("trial %d: the restart found recordings that do not match the catalog", k.trial)
	}
	seen := map[string]bool{}
	for _, open := range k.interrupted {
		seen[open.Camera] = true
		s, ok := byPath[open.Path]
		if !ok {
			// A kill just after a segment rolled leaves one without a complete fragment: no
			// footage (the loss bound above holds regardless), so its row goes, logged.
			if !strings.Contains(restartLog, "interrupted segment had no footage to keep") || !strings.Contains(restartLog, open.Path) {
				t.Errorf("trial %d: the interrupted segment %s is no longer indexed, and the restart did not log it as holding no fragment", k.trial, open.Path)
			}
			continue
		}
		if s.Open || s.Frames == 0 || s.Bytes == 0 {
			t.Errorf("trial %d: interrupted segment after the restart: %+v; want it closed with footage", k.trial, s)
		}
		if !strings.Contains(restartLog, open.Path) || !strings.Contains(restartLog, "interrupted segment recovered") {
			t.Errorf("trial %d: the restart did not log recovering %s", k.trial, open.Path)
		}
		checkPlays(t, filepath.Join(storage, filepath.FromSlash(s.Path)))
	}
	for _, c := range crashCameras {
		if !seen[c.id] {
			t.Errorf("trial %d: no segment of %s was open at the kill", k.trial, c.id)
		}
	}
}

// TestCrashSIGKILLAtRandomInstants kills `townwatch serve` with SIGKILL at random instants
// while two cameras record, and restarts it each time: the start-up recovery must leave
// each camera having lost at most 2 s of what it sent before the kill, the interrupted
// segments indexed, closed and playable, and every catalog row matching its file's size
// and SHA-256 with no file outside the catalog. The camera (simcam) runs in the test, so
// it outlives every kill. Set TOWNWATCH_CRASH_SEED to replay a run's kill instants.
// crashSetup writes a configuration recording crashCameras (served by a new simcam) in
// 10 s segments, with extra (top-level YAML lines) added, and an account velitel:
// seeing the recorders' state takes a supervisor, their metrics an administrator.
func crashSetup(t *testing.T, extra string) (cfgPath, storage string) {
	t.Helper()
	specs := make([]simcam.CameraSpec, len(crashCameras))
	for i, c := range crashCameras {
		specs[i] = simcam.CameraSpec{Path: c.path, Clip: simcam.Clip(c.path)}
	}
	cam := startSimcam(t, specs...)

	dir := t.TempDir()
	storage = filepath.Join(dir, "storage")
	var cfg strings.Builder
	// min_free is small so that the test machine's disk never makes retention delete.
	cfg.WriteString("storage:\n  path: " + strconv.Quote(storage) + "\n  min_free: 1MiB\nhttp:\n  listen: 127.0.0.1:0\n" +
		"webrtc:\n  udp_port: 0\n  tcp_port: 0\n" + extra + "cameras:\n")
	for _, c := range crashCameras {
		cfg.WriteString("  - id: " + c.id + "\n    main:\n      url: " + cam.URL(c.path) +
			"\n      transport: tcp\n    record:\n      mode: continuous\n      segment: 10s\n")
	}
	cfgPath = filepath.Join(dir, "townwatch.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	addAccount(t, cfgPath, "velitel", "supervisor,admin")
	return cfgPath, storage
}

func TestCrashSIGKILLAtRandomInstants(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TOWNWATCH_CRASH_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("TOWNWATCH_CRASH_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("kill instants seeded with %d (TOWNWATCH_CRASH_SEED=%d replays them)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	cfgPath, storage := crashSetup(t, "")
	started := time.Now()
	var prev *crashKill
	for trial := 1; trial <= crashTrials; trial++ {
		p := startServe(t, cfgPath)
		p.waitRecording(t, "velitel")
		wait := 1500*time.Millisecond + time.Duration(rng.Int64N(int64(4500*time.Millisecond)))
		time.Sleep(wait)
		k := crashKill{trial: trial, at: time.Now()}
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			t.Fatal("townwatch did not die within 10 s of SIGKILL")
		}
		snap := snapshotStorage(t, storage)
		k.interrupted = checkConsistent(t, "after kill "+strconv.Itoa(trial), snap)
		if prev != nil {
			checkRecovered(t, storage, snap, *prev, p.stderr.String())
		}
		t.Logf("trial %d: killed %v after recording started; %d segments indexed, %d open", trial, wait.Round(time.Millisecond), len(snap.segs), len(k.interrupted))
		prev = &k
		if t.Failed() {
			t.Logf("townwatch stderr of trial %d:\n%s", trial, p.stderr.String())
			t.FailNow()
		}
	}

	// A last start recovers the last kill; SIGTERM then stops it cleanly.
	p := startServe(t, cfgPath)
	p.waitRecording(t, "velitel")
	time.Sleep(time.Second)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		if p.err != nil {
			t.Errorf("after SIGTERM townwatch exited with %v", p.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("townwatch did not stop within 15 s of SIGTERM")
	}
	snap := snapshotStorage(t, storage)
	if open := checkConsistent(t, "after the clean stop", snap); len(open) > 0 {
		t.Errorf("after a clean stop %d segments are still open: %+v", len(open), open)
	}
	checkRecovered(t, storage, snap, *prev, p.stderr.String())
	if t.Failed() {
		t.Logf("townwatch stderr of the last run:\n%s", p.stderr.String())
	}
	t.Logf("%d kills and restarts in %v; %d segments", crashTrials, time.Since(started).Round(time.Millisecond), len(snap.segs))
}
