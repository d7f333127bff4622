package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest/simcam"
)

// Hot add through the API: with four cameras recording, a fifth (whose password has
// @ # ^ :) is created by POST /api/config/cameras and streams, the four are not touched,
// cameras.d/cam5.yaml holds it, check-config accepts the union, the hand-written file is
// byte-identical, and after a restart the camera is still there.
func TestCameraAPIHotAdd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const password = "p@ss#w^rd:5"
	specs := []simcam.CameraSpec{{Path: "c1", Clip: simcam.ClipStatic}, {Path: "c2", Clip: simcam.ClipStatic},
		{Path: "c3", Clip: simcam.ClipStatic}, {Path: "c4", Clip: simcam.ClipStatic},
		{Path: "c5", Clip: simcam.ClipStatic, Username: "admin", Password: password}}
	sim := startSimcam(t, specs...)
	cfg, storage := filepath.Join(dir, "townwatch.yaml"), filepath.Join(dir, "data")
	writeReloadConfig(t, cfg, storage, sim, []reloadCamera{{"cam1", "Náměstí", "c1", ""}, {"cam2", "Most", "c2", ""},
		{"cam3", "Škola", "c3", ""}, {"cam4", "Park", "c4", ""}})
	addAccount(t, cfg, "spravce", "supervisor,admin")
	mainBefore, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := startServe(t, cfg)
	four := []string{"cam1", "cam2", "cam3", "cam4"}
	p.waitRecording(t, "spravce", four...)
	c := loginClient(t, p.base, "spravce", accountPassword)
	before, _ := reloadView(t, c, p.base)

	body, _ := json.Marshal(map[string]any{"id": "cam5", "name": "Nádraží",
		"main":   map[string]any{"url": sim.URL("c5"), "transport": "tcp", "username": "admin", "password": password},
		"record": map[string]any{"mode": "continuous", "segment": "1h"}})
	mark := time.Now()
	status, hdr, answer := e2eDo(t, c, http.MethodPost, p.base+"api/config/cameras", "application/json", string(body))
	if status != http.StatusCreated || hdr.Get("ETag") == "" || strings.Contains(answer, password) {
		t.Fatalf("POST /api/config/cameras: %d %s", status, answer)
	}
	answered := time.Since(mark)
	streaming := waitStreaming(t, c, p, "cam5", mark)
	t.Logf("POST answered in %v; cam5 streaming %v after the request (the issue asks for 5 s)", answered, streaming)
	checkUntouched(t, "after adding cam5 through the API", c, p.base, before, four...)

	if _, err := os.Stat(filepath.Join(dir, "cameras.d", "cam5.yaml")); err != nil {
		t.Fatal(err)
	}
	if mainAfter, _ := os.ReadFile(cfg); sha256.Sum256(mainAfter) != sha256.Sum256(mainBefore) {
		t.Fatal("townwatch.yaml changed")
	}
	if code, stdout, stderr := runBinary(t, "check-config", "-config", cfg); code != 0 || !strings.Contains(stdout, "5 camera(s)") {
		t.Fatalf("check-config on the union: %d %s %s", code, stdout, stderr)
	}
	// The password is in no answer, log line or configuration file but its own.
	status, _, list := e2eDo(t, c, http.MethodGet, p.base+"api/config/cameras", "", "")
	if status != http.StatusOK || strings.Contains(list, password) || strings.Contains(p.stderr.String(), password) {
		t.Fatalf("the password leaked: %d %s", status, list)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "cameras.d"))
	for _, e := range entries {
		data, _ := os.ReadFile(filepath.Join(dir, "cameras.d", e.Name()))
		if bytes.Contains(data, []byte(password)) != strings.HasSuffix(e.Name(), ".password") {
			t.Errorf("%s: holds the password: %v", e.Name(), bytes.Contains(data, []byte(password)))
		}
	}

	// Parallel creates while the poll also sees cameras.d change: every camera ends up
	// configured and running, and none already running is touched on the way. cam5 is
	// streaming, but on a busy machine its first segment may not be open yet; that opening
	// during the creates would look like a touch, so the snapshot waits for it.
	waitFor(t, 15*time.Second, "cam5's first segment", func() bool {
		v, _ := reloadView(t, c, p.base)
		return v["cam5"].segments >= 1
	})
	before, _ = reloadView(t, c, p.base)
	var wg sync.WaitGroup
	ids := []string{"p1", "p2", "p3", "p4", "p5", "p6"}
	for _, id := range ids {
		wg.Go(func() {
			body, _ := json.Marshal(map[string]any{"id": id, "main": map[string]any{"url": sim.URL("c1")}})
			if status, _, answer := e2eDo(t, c, http.MethodPost, p.base+"api/config/cameras", "application/json", string(body)); status != http.StatusCreated {
				t.Errorf("create %s: %d %s", id, status, answer)
			}
		})
	}
	wg.Wait()
	time.Sleep(time.Second) // the poll's reload of the same files, if any, has run
	checkUntouched(t, "after parallel creates", c, p.base, before, "cam1", "cam2", "cam3", "cam4", "cam5")
	if v, _ := reloadView(t, c, p.base); len(v) != 11 {
		t.Errorf("%d cameras running after 6 parallel creates, want 11: %v", len(v), v)
	}
	// The status still tells what the last write did, though the poll has seen the files
	// change since and reloaded them to no effect.
	var st struct {
		Last struct {
			Trigger string   `json:"trigger"`
			Added   []string `json:"added"`
		} `json:"last_reload"`
	}
	if status, _, answer := e2eDo(t, c, http.MethodGet, p.base+"api/config/status", "", ""); status != http.StatusOK || json.Unmarshal([]byte(answer), &st) != nil ||
		st.Last.Trigger != "api" || len(st.Last.Added) != 1 || !slices.Contains(ids, st.Last.Added[0]) {
		t.Errorf("GET /api/config/status after the creates: %d %s; want the last API create", status, answer)
	}

	stopServe(t, p)
	p = startServe(t, cfg)
	p.waitRecording(t, "spravce", "cam1", "cam2", "cam3", "cam4", "cam5", "p6")
}
