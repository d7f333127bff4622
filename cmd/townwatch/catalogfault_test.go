package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
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

// faultToken is the metrics bearer token of the catalog fault tests: recording is
// checked through /metrics without a session, since a lost users table must not blind
// the test.
const faultToken = "catalog-fault-metrics-token-0123456789"

const faultLockReason = "spis 123/2026: nehoda na namesti"

// faultSetup is two simulated cameras recorded by a configuration with a supervisor and
// admin account (velitel) and an evidence lock on cam-a, made before the first start.
func faultSetup(t *testing.T) (cfgPath, storage string) {
	t.Helper()
	specs := make([]simcam.CameraSpec, len(crashCameras))
	for i, c := range crashCameras {
		specs[i] = simcam.CameraSpec{Path: c.path, Clip: simcam.Clip(c.path)}
	}
	cam := startSimcam(t, specs...)
	dir := t.TempDir()
	storage = filepath.Join(dir, "storage")
	tokenFile := filepath.Join(dir, "metrics.token")
	if err := os.WriteFile(tokenFile, []byte(faultToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var cfg strings.Builder
	cfg.WriteString("storage:\n  path: " + strconv.Quote(storage) + "\n  min_free: 1MiB\nhttp:\n  listen: 127.0.0.1:0\n" +
		"metrics:\n  token_file: " + strconv.Quote(tokenFile) + "\n" +
		"webrtc:\n  udp_port: 0\n  tcp_port: 0\ncameras:\n")
	for _, c := range crashCameras {
		cfg.WriteString("  - id: " + c.id + "\n    main:\n      url: " + cam.URL(c.path) +
			"\n      transport: tcp\n    record:\n      mode: continuous\n      segment: 10s\n")
	}
	cfgPath = filepath.Join(dir, "townwatch.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	addAccount(t, cfgPath, "velitel", "supervisor,admin")
	now := time.Now()
	if code, out, errOut := runBinary(t, "lock", "-config", cfgPath, "-camera", "cam-a",
		"-from", now.Add(-time.Hour).Format(time.RFC3339), "-to", now.Add(time.Hour).Format(time.RFC3339),
		"-reason", faultLockReason); code != 0 {
		t.Fatalf("townwatch lock: %d %s %s", code, out, errOut)
	}
	return cfgPath, storage
}

// metricFrames reads the recorded frames per camera from /metrics with the token.
func metricFrames(t *testing.T, base string) map[string]float64 {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"metrics", nil)
	req.Header.Set("Authorization", "Bearer "+faultToken)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, body)
	}
	frames := map[string]float64{}
	re := regexp.MustCompile(`(?m)^townwatch_recorded_frames_total\{camera="([^"]+)"\} (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(string(body), -1) {
		frames[m[1]], _ = strconv.ParseFloat(m[2], 64)
	}
	for _, name := range []string{"townwatch_catalog_degraded", "townwatch_catalog_rebuilds_total", "townwatch_catalog_write_failures_total"} {
		if m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(string(body)); m != nil {
			frames[name], _ = strconv.ParseFloat(m[1], 64)
		}
	}
	return frames
}

// checkStillRecording fails unless every camera's durable frames grow within d.
func checkStillRecording(t *testing.T, base string, d time.Duration) map[string]float64 {
	t.Helper()
	before := metricFrames(t, base)
	time.Sleep(d)
	after := metricFrames(t, base)
	for _, c := range crashCameras {
		if after[c.id] <= before[c.id] {
			t.Errorf("camera %s recorded no frame in %v (%v → %v)", c.id, d, before[c.id], after[c.id])
		}
	}
	return after
}

type healthz struct {
	Status  string   `json:"status"`
	Reasons []string `json:"reasons"`
}

func getHealth(t *testing.T, base string) healthz {
	t.Helper()
	resp, err := http.Get(base + "healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h healthz
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h
}

// stopServe stops p with SIGTERM and waits for it.
func stopServe(t *testing.T, p *serveProc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		if p.err != nil {
			t.Errorf("after SIGTERM townwatch exited with %v:\n%s", p.err, p.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("townwatch did not stop within 20 s of SIGTERM:\n%s", p.stderr.String())
	}
}

// pageGeometry is the catalog's page size and count.
func pageGeometry(t *testing.T, path string) (size, count int64) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow(`PRAGMA page_size`).Scan(&size); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`PRAGMA page_count`).Scan(&count); err != nil {
		t.Fatal(err)
	}
	return size, count
}

// garbleFile overwrites n bytes at off with a pattern no SQLite structure starts with.
func garbleFile(t *testing.T, path string, off, n int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(0xA5 ^ i)
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// checkRebuilt asserts what a start on a damaged catalog must leave once stopped: the
// damaged file kept aside, every segment file indexed with its size and SHA-256, the
// evidence lock kept, and the rebuild in the access log.
func checkRebuilt(t *testing.T, cfgPath, storage, serveLog string) {
	t.Helper()
	aside, _ := filepath.Glob(filepath.Join(storage, catalogFile+".corrupt-*"))
	var dbs []string
	for _, a := range aside {
		if !strings.HasSuffix(a, "-wal") && !strings.HasSuffix(a, "-shm") {
			dbs = append(dbs, a)
		}
	}
	if len(dbs) != 1 {
		t.Errorf("damaged catalogs kept aside: %v; want one", aside)
	} else if !strings.Contains(serveLog, filepath.Base(dbs[0])) || !strings.Contains(serveLog, `"level":"ERROR","msg":"catalog rebuilt`) {
		t.Errorf("no ERROR line naming %s in the log", dbs[0])
	}
	snap := snapshotStorage(t, storage)
	if open := checkConsistent(t, "after the rebuild", snap); len(open) > 0 {
		t.Errorf("%d segments still open after a clean stop", len(open))
	}
	if len(snap.files) == 0 {
		t.Error("no segment files")
	}
	cat, err := catalog.Open(context.Background(), filepath.Join(storage, catalogFile))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	locks, err := cat.Locks(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(locks) != 1 || locks[0].Reason != faultLockReason {
		t.Errorf("locks after the rebuild: %+v; want the one made before", locks)
	}
	rows, err := cat.AuditEntries(context.Background(), catalog.AuditQuery{Action: "catalog.rebuilt"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Actor != "system" {
		t.Errorf("catalog.rebuilt rows in the access log: %+v; want one by system", rows)
	} else {
		t.Logf("access log: %s %s", rows[0].Reason, rows[0].Details)
	}
}

// TestCatalogDamagedAtRestIsRebuiltAndRecordingGoesOn damages the catalog of a stopped
// townwatch three ways — its header, an early page, its last page — and starts it again:
// it must start, record, say "degraded" with the reason on /healthz, keep the damaged
// file aside, keep the account (a login works) and the evidence lock, and, once stopped,
// have every segment file indexed with its size and SHA-256.
func TestCatalogDamagedAtRestIsRebuiltAndRecordingGoesOn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"header", func(t *testing.T, path string) { garbleFile(t, path, 0, 100) }},
		{"page 2", func(t *testing.T, path string) {
			size, _ := pageGeometry(t, path)
			garbleFile(t, path, size, size)
		}},
		{"last page", func(t *testing.T, path string) {
			size, count := pageGeometry(t, path)
			garbleFile(t, path, (count-1)*size, size)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfgPath, storage := faultSetup(t)
			p := startServe(t, cfgPath)
			p.waitRecording(t, "velitel")
			time.Sleep(3 * time.Second)
			stopServe(t, p)
			tc.damage(t, filepath.Join(storage, catalogFile))

			p = startServe(t, cfgPath)
			p.waitRecording(t, "velitel") // the account survived: the login works
			h := getHealth(t, p.base)
			if h.Status != "degraded" || len(h.Reasons) == 0 || !strings.Contains(h.Reasons[0], "catalog rebuilt") {
				t.Errorf("/healthz after a rebuild: %+v; want degraded naming the catalog", h)
			}
			m := checkStillRecording(t, p.base, 3*time.Second)
			if m["townwatch_catalog_rebuilds_total"] != 1 || m["townwatch_catalog_degraded"] != 1 {
				t.Errorf("metrics: rebuilds %v degraded %v; want 1 and 1", m["townwatch_catalog_rebuilds_total"], m["townwatch_catalog_degraded"])
			}
			stopServe(t, p)
			checkRebuilt(t, cfgPath, storage, p.stderr.String())
			if t.Failed() {
				t.Logf("townwatch stderr:\n%s", p.stderr.String())
			}
		})
	}
}

// TestCatalogDamagedWhileRunning overwrites pages of the live catalog file under a
// running townwatch: it must keep running and recording, say "degraded" once the
// catalog reports the damage, and the next start must rebuild the catalog with every
// segment file indexed, the account and the lock kept.
func TestCatalogDamagedWhileRunning(t *testing.T) {
	t.Parallel()
	cfgPath, storage := faultSetup(t)
	p := startServeCmd(t, exec.Command(binary, "serve", "-config", cfgPath, "-catalog-check", "2s"))
	p.waitRecording(t, "velitel")
	time.Sleep(3 * time.Second)
	path := filepath.Join(storage, catalogFile)
	size, count := pageGeometry(t, path)
	// Page 2 is written once, at the schema's creation, so it stays damaged in the file;
	// the last page is where the newest rows live.
	garbleFile(t, path, size, size)
	garbleFile(t, path, (count-1)*size, size)
	t.Logf("overwrote pages 2 and %d of %d (%d bytes each) while running", count, count, size)

	// Reads of the API and retention and the recorders' writes meet the damage.
	client := loginClient(t, p.base, "velitel", accountPassword)
	var h healthz
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		client.Get(p.base + "api/cameras")
		if h = getHealth(t, p.base); h.Status == "degraded" {
			break
		}
	}
	if h.Status != "degraded" || len(h.Reasons) == 0 {
		t.Errorf("/healthz with a damaged catalog: %+v; want degraded with the reason", h)
	}
	t.Logf("/healthz: %+v", h)
	checkStillRecording(t, p.base, 5*time.Second)
	if code, out, errOut := runBinary(t, "catalog", "rebuild", "-config", cfgPath); code != exitFailure || !strings.Contains(errOut, "stop `townwatch serve` first") {
		t.Errorf("catalog rebuild while serve runs: exit %d, %q %q; want a refusal", code, out, errOut)
	}
	select {
	case <-p.exited:
		t.Fatalf("townwatch stopped on a damaged catalog: %v\n%s", p.err, p.stderr.String())
	default:
	}
	stopServe(t, p)

	p = startServe(t, cfgPath)
	p.waitRecording(t, "velitel")
	if h := getHealth(t, p.base); h.Status != "degraded" || !strings.Contains(strings.Join(h.Reasons, " "), "catalog rebuilt") {
		t.Errorf("/healthz after the restart: %+v; want the rebuild named", h)
	}
	checkStillRecording(t, p.base, 3*time.Second)
	stopServe(t, p)
	checkRebuilt(t, cfgPath, storage, p.stderr.String())
	if t.Failed() {
		t.Logf("townwatch stderr:\n%s", p.stderr.String())
	}

	// By hand, with the server stopped: a sound catalog is left alone unless -force.
	if code, out, errOut := runBinary(t, "catalog", "rebuild", "-config", cfgPath); code != exitOK || !strings.Contains(out, "nothing to rebuild") {
		t.Errorf("catalog rebuild of a sound catalog: exit %d, %q %q", code, out, errOut)
	}
	code, out, errOut := runBinary(t, "catalog", "rebuild", "-config", cfgPath, "-force")
	if code != exitOK || !strings.Contains(out, "catalog rebuilt") || !strings.Contains(out, "no row lost") {
		t.Errorf("catalog rebuild -force: exit %d, %q %q", code, out, errOut)
	}
	t.Logf("catalog rebuild -force: %s", out)
	if open := checkConsistent(t, "after catalog rebuild -force", snapshotStorage(t, storage)); len(open) > 0 {
		t.Errorf("%d segments open after catalog rebuild", len(open))
	}
}
