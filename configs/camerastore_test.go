package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const storeMain = `storage:
  path: ./data
cameras:
  - id: namesti
    main:
      url: rtsp://10.0.0.21/main
`

// newStore makes a main file with one hand-written camera; applied collects what Apply got.
func newStore(t *testing.T) (*CameraStore, *[]*Config) {
	t.Helper()
	main := filepath.Join(t.TempDir(), "townwatch.yaml")
	if err := os.WriteFile(main, []byte(storeMain), 0o600); err != nil {
		t.Fatal(err)
	}
	var applied []*Config
	var mu sync.Mutex
	return &CameraStore{Main: main, Apply: func(c *Config) error {
		mu.Lock()
		defer mu.Unlock()
		applied = append(applied, c)
		return nil
	}}, &applied
}

func problemPaths(err error) []string {
	var ve *ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	var out []string
	for _, p := range ve.Problems {
		out = append(out, p.Path)
	}
	return out
}

// dirState is every file under cameras.d with its content, and the main file.
func dirState(t *testing.T, s *CameraStore) map[string]string {
	t.Helper()
	out := map[string]string{}
	main, _ := os.ReadFile(s.Main)
	out["main"] = string(main)
	entries, _ := os.ReadDir(CamerasDir(s.Main))
	for _, e := range entries {
		if e.Name() == ".lock" {
			continue
		}
		data, _ := os.ReadFile(filepath.Join(CamerasDir(s.Main), e.Name()))
		out[e.Name()] = string(data)
	}
	return out
}

func TestCameraStoreCreateReplaceDelete(t *testing.T) {
	s, applied := newStore(t)
	mainBefore, _ := os.ReadFile(s.Main)
	const password = "p@ss#wo^rd:1"
	ch, err := s.Create([]byte(`{"id":"most","name":"Most","main":{"url":"rtsp://10.0.0.22/h264","transport":"tcp","username":"admin","password":"`+password+`"},
		"motion":{"enabled":true,"zones":[{"name":"chodnik","points":[[0.1,0.1],[0.9,0.1],[0.5,0.8]]}]}}`), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Before != nil || ch.After["id"] != "most" || ch.Revision == "" || len(*applied) != 1 {
		t.Fatalf("create: %+v, applied %d", ch, len(*applied))
	}
	raw, err := os.ReadFile(filepath.Join(CamerasDir(s.Main), "most.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(password)) || !bytes.Contains(raw, []byte("password_file:")) {
		t.Fatalf("most.yaml holds the password or no password_file:\n%s", raw)
	}
	if mainAfter, _ := os.ReadFile(s.Main); !bytes.Equal(mainBefore, mainAfter) {
		t.Fatal("the hand-written file changed")
	}
	// The union, as serve and check-config read it, has both; the password dials as it was
	// typed, @ # ^ : and all.
	cfg, err := LoadUnion(s.Main)
	if err != nil {
		t.Fatal(err)
	}
	most, ok := cfg.Camera("most")
	if len(cfg.Cameras) != 2 || !ok || len(most.Motion.Zones) != 1 {
		t.Fatalf("union: %+v", cfg.Cameras)
	}
	st, err := os.Stat(most.Main.PasswordFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("password file %s: %v %v", most.Main.PasswordFile, st.Mode(), err)
	}
	dial, err := most.Main.DialURL()
	if err != nil || !strings.Contains(dial, "admin:p%40ss%23wo%5Erd%3A1@") {
		t.Fatalf("dial URL %q, %v", dial, err)
	}
	// Listing never shows the password or its file.
	cams, rev, err := s.List()
	if err != nil || rev != ch.Revision || len(cams) != 2 {
		t.Fatalf("list: %d cameras, rev %s (want %s), %v", len(cams), rev, ch.Revision, err)
	}
	doc := fmt.Sprint(cams[1].Doc)
	if cams[1].HandWritten || !cams[0].HandWritten || strings.Contains(doc, password) || strings.Contains(doc, ".password") || !strings.Contains(doc, "password_set:true") {
		t.Fatalf("list shows %v / %v", cams[0], cams[1])
	}

	// Two replaces at the same revision: the second is refused.
	body := []byte(`{"id":"most","name":"Most přes řeku","main":{"url":"rtsp://10.0.0.22/h264","username":"admin"}}`)
	if _, err := s.Replace("most", body, rev, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Replace("most", body, rev, nil); !errors.Is(err, ErrRevision) {
		t.Fatalf("second replace at the same revision: %v", err)
	}
	// A replace without a password kept the stored one.
	cfg, _ = LoadUnion(s.Main)
	if m, _ := cfg.Camera("most"); m.Name != "Most přes řeku" || m.Main.PasswordFile != most.Main.PasswordFile {
		t.Fatalf("after replace: %+v", m)
	}
	// A new password is a new file (so the reload restarts the camera); the old one goes.
	_, rev, _ = s.List()
	if _, err := s.Replace("most", []byte(`{"main":{"url":"rtsp://10.0.0.22/h264","username":"admin","password":"nove"}}`), rev, nil); err != nil {
		t.Fatal(err)
	}
	cfg, _ = LoadUnion(s.Main)
	m, _ := cfg.Camera("most")
	if m.Main.PasswordFile == most.Main.PasswordFile {
		t.Fatal("a new password kept the old file name")
	}
	if _, err := os.Stat(most.Main.PasswordFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("old password file still there: %v", err)
	}

	// The hand-written camera is read-only; an unknown one is unknown.
	_, rev, _ = s.List()
	if _, err := s.Replace("namesti", body, rev, nil); !errors.Is(err, ErrHandWritten) {
		t.Fatalf("replace of a hand-written camera: %v", err)
	}
	if _, err := s.Delete("namesti", rev, nil); !errors.Is(err, ErrHandWritten) {
		t.Fatalf("delete of a hand-written camera: %v", err)
	}
	if _, err := s.Delete("nic", rev, nil); !errors.Is(err, ErrUnknownCamera) {
		t.Fatalf("delete of an unknown camera: %v", err)
	}
	// An audit that cannot be written changes nothing.
	before := dirState(t, s)
	if _, err := s.Delete("most", rev, func(_, _ map[string]any) error { return errors.New("audit down") }); err == nil {
		t.Fatal("delete went on without its audit row")
	}
	if after := dirState(t, s); !mapsEqual(before, after) {
		t.Fatalf("files changed after a refused audit:\n%v\n%v", before, after)
	}
	var audited []map[string]any
	if _, err := s.Delete("most", rev, func(b, a map[string]any) error { audited = []map[string]any{b, a}; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(audited) != 2 || audited[0]["name"] != "most" || audited[1] != nil || strings.Contains(fmt.Sprint(audited), "nove") {
		t.Fatalf("audited before/after: %v", audited)
	}
	left := dirState(t, s)
	if len(left) != 1 {
		t.Fatalf("after delete cameras.d still holds %v", left)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A duplicate id, an http:// URL and a zone point of 1.4 are refused with their paths,
// and nothing is written or applied.
func TestCameraStoreRefusesWithPaths(t *testing.T) {
	s, applied := newStore(t)
	before := dirState(t, s)
	for _, tc := range []struct {
		body string
		want []string
	}{
		{`{"id":"namesti","main":{"url":"rtsp://10.0.0.23/x"}}`, []string{"cameras[1].id"}},
		{`{"id":"nova","main":{"url":"http://10.0.0.23/x"}}`, []string{"cameras[nova].main.url"}},
		{`{"id":"nova","main":{"url":"rtsp://10.0.0.23/x"},"motion":{"zones":[{"name":"z","points":[[0,0],[1.4,0],[0,1]]}]}}`, []string{"cameras[nova].motion.zones[0].points[1]"}},
		{`{"id":"nova","main":{"url":"rtsp://10.0.0.23/x","password":"x"}}`, []string{"cameras[nova].main.password"}},
		{`{"id":"nova","main":{"url":"rtsp://a:b@10.0.0.23/x"}}`, []string{"main.url"}},
		{`{"id":"nova","main":{"url":"rtsp://10.0.0.23/x","password_file":"/etc/shadow"}}`, []string{"main.password_file"}},
		{`{"id":"nova","main":{"url":"rtsp://10.0.0.23/x"},"colour":1}`, []string{"colour"}},
	} {
		_, err := s.Create([]byte(tc.body), "", nil)
		if got := problemPaths(err); !slices.Equal(got, tc.want) {
			t.Errorf("%s: problems at %v (%v), want %v", tc.body, got, err, tc.want)
		}
		if err := s.Check([]byte(tc.body)); !slices.Equal(problemPaths(err), tc.want) {
			t.Errorf("check %s: %v, want %v", tc.body, err, tc.want)
		}
	}
	if after := dirState(t, s); !mapsEqual(before, after) {
		t.Fatalf("files changed:\n%v\n%v", before, after)
	}
	if len(*applied) != 0 {
		t.Fatalf("%d configurations applied", len(*applied))
	}
}

// 24 creates at once leave a union that loads, with every camera.
func TestCameraStoreParallelCreates(t *testing.T) {
	s, _ := newStore(t)
	var wg sync.WaitGroup
	errs := make(chan error, 24)
	for i := range 24 {
		wg.Go(func() {
			_, err := s.Create(fmt.Appendf(nil, `{"id":"cam%d","main":{"url":"rtsp://10.0.1.%d/x","username":"u","password":"p%d"}}`, i, i, i), "", nil)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	cfg, err := LoadUnion(s.Main)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Cameras) != 25 {
		t.Fatalf("%d cameras, want 25", len(cfg.Cameras))
	}
}

func TestLoadUnion(t *testing.T) {
	s, _ := newStore(t)
	dir := CamerasDir(s.Main)
	os.MkdirAll(dir, 0o700)
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("most.yaml", "id: most\nmain:\n  url: rtsp://10.0.0.22/x\n")
	write(".most.yaml-123", "garbage: [")   // a writer's temporary file
	write("most.main.ab.password", "heslo") // not a camera file
	cfg, err := LoadUnion(s.Main)
	if err != nil || len(cfg.Cameras) != 2 || cfg.Cameras[1].ID != "most" || cfg.Cameras[1].Name != "most" {
		t.Fatalf("union: %+v, %v", cfg, err)
	}
	write("skola.yaml", "id: park\nmain:\n  url: rtsp://10.0.0.23/x\n  colour: red\n")
	_, err = LoadUnion(s.Main)
	if err == nil || !strings.Contains(err.Error(), "skola.yaml:4: unknown key \"colour\" in main") {
		t.Fatalf("a broken camera file: %v", err)
	}
	write("skola.yaml", "id: park\nmain:\n  url: rtsp://10.0.0.23/x\n")
	if _, err = LoadUnion(s.Main); err == nil || !strings.Contains(err.Error(), "does not match the file name") {
		t.Fatalf("id not matching the file name: %v", err)
	}
	write("skola.yaml", "id: namesti\nmain:\n  url: rtsp://10.0.0.23/x\n")
	os.Rename(filepath.Join(dir, "skola.yaml"), filepath.Join(dir, "namesti.yaml"))
	if _, err = LoadUnion(s.Main); err == nil || !strings.Contains(err.Error(), `duplicate id "namesti"`) {
		t.Fatalf("a camera file repeating a hand-written id: %v", err)
	}
}

// The writer is killed (SIGKILL) at random moments while it replaces a file in a loop;
// each time the file is whole: the old content or the new.
func TestWriteFileAtomicSurvivesKill(t *testing.T) {
	if path := os.Getenv("TOWNWATCH_ATOMIC_CHILD"); path != "" {
		for i := 0; ; i++ {
			// Contents of different lengths, so a torn write would show.
			data := bytes.Repeat([]byte{byte('a' + i%2)}, 100_000+(i%2)*37_000)
			if err := WriteFileAtomic(path, data); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
	}
	path := filepath.Join(t.TempDir(), "cam.yaml")
	if err := WriteFileAtomic(path, bytes.Repeat([]byte{'a'}, 100_000)); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestWriteFileAtomicSurvivesKill$")
		cmd.Env = append(os.Environ(), "TOWNWATCH_ATOMIC_CHILD="+path)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(20+i*7) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		whole := (len(data) == 100_000 && bytes.Count(data, []byte{'a'}) == len(data)) ||
			(len(data) == 137_000 && bytes.Count(data, []byte{'b'}) == len(data))
		if !whole {
			t.Fatalf("kill %d: the file is %d bytes, neither the old content nor the new", i, len(data))
		}
	}
}

// Without a configuration file (the demo) nothing is read or written, not even a
// cameras.d in the working directory.
func TestCameraStoreWithoutFile(t *testing.T) {
	t.Chdir(t.TempDir())
	var s CameraStore
	if _, _, err := s.List(); !errors.Is(err, ErrNoConfigFile) {
		t.Fatalf("list: %v", err)
	}
	if _, err := s.Create([]byte(`{"id":"x","main":{"url":"rtsp://h/x"}}`), "", nil); !errors.Is(err, ErrNoConfigFile) {
		t.Fatalf("create: %v", err)
	}
	if _, err := os.Stat(CamerasDirName); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("cameras.d made in the working directory: %v", err)
	}
}

// TestCameraStoreRemovesLeftovers: what a writer killed half-way leaves in cameras.d (a
// temp file never renamed, a password file whose camera file was never written) is
// removed by the next change; the password a camera uses, and files the store did not
// name (an editor's swap file), stay.
func TestCameraStoreRemovesLeftovers(t *testing.T) {
	s, _ := newStore(t)
	if _, err := s.Create([]byte(`{"id":"most","main":{"url":"rtsp://10.0.0.22/h264","username":"admin","password":"tajne"}}`), "", nil); err != nil {
		t.Fatal(err)
	}
	dir := CamerasDir(s.Main)
	leftovers := []string{".most.yaml-12345", ".lavka.main.0123456789ab.password-678", "lavka.main.0123456789ab.password"}
	kept := []string{".most.yaml.swp", "notes.password"}
	for _, name := range append(leftovers, kept...) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Create([]byte(`{"id":"lavka","main":{"url":"rtsp://10.0.0.23/h264"}}`), "", nil); err != nil {
		t.Fatal(err)
	}
	for _, name := range leftovers {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("leftover %s still there (%v)", name, err)
		}
	}
	for _, name := range kept {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s was removed: %v", name, err)
		}
	}
	cfg, err := LoadUnion(s.Main)
	if err != nil {
		t.Fatal(err)
	}
	most, _ := cfg.Camera("most")
	if pw, err := os.ReadFile(most.Main.PasswordFile); err != nil || string(pw) != "tajne\n" {
		t.Errorf("the password file in use: %q, %v", pw, err)
	}
}

// A camera that takes its password in the URL's query is shown with ?password=***; an
// edit that sends that URL back unchanged keeps the stored password, and one that sends a
// new URL gets the new one.
func TestCameraStoreKeepsAQueryPasswordShownRedacted(t *testing.T) {
	s, _ := newStore(t)
	const url = "rtsp://10.0.0.24/live?channel=1&password=tajne"
	if _, err := s.Create([]byte(`{"id":"brana","main":{"url":"`+url+`"}}`), "", nil); err != nil {
		t.Fatal(err)
	}
	list, rev, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(list, func(e CameraEntry) bool { return e.Doc["id"] == "brana" })
	shown := list[i].Doc["main"].(map[string]any)["url"].(string)
	if strings.Contains(shown, "tajne") || !strings.Contains(shown, "password=***") {
		t.Fatalf("the API shows %q", shown)
	}
	if _, err := s.Replace("brana", []byte(`{"id":"brana","name":"Brána","main":{"url":"`+shown+`"}}`), rev, nil); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadUnion(s.Main)
	if err != nil {
		t.Fatal(err)
	}
	if cam, _ := cfg.Camera("brana"); cam.Main.URL != url || cam.Name != "Brána" {
		t.Fatalf("after an edit sending the shown URL: url %q, name %q; want the stored URL kept", cam.Main.URL, cam.Name)
	}
	const moved = "rtsp://10.0.0.25/live?channel=1&password=nove"
	if _, err := s.Replace("brana", []byte(`{"id":"brana","main":{"url":"`+moved+`"}}`), "", nil); err != nil {
		t.Fatal(err)
	}
	if cfg, err = LoadUnion(s.Main); err != nil {
		t.Fatal(err)
	}
	if cam, _ := cfg.Camera("brana"); cam.Main.URL != moved {
		t.Fatalf("after an edit sending a new URL: %q", cam.Main.URL)
	}
}
