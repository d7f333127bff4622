package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// townwatch camera add|list|remove: the same files and validation as the API.
func TestCameraAddListRemove(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "townwatch.yaml")
	main := "storage:\n  path: " + filepath.Join(dir, "data") + "\ncameras:\n  - id: namesti\n    main:\n      url: rtsp://127.0.0.1:1/a\n"
	if err := os.WriteFile(cfg, []byte(main), 0o600); err != nil {
		t.Fatal(err)
	}
	addAccount(t, cfg, "spravce", "admin") // makes the catalog the audit rows go to
	cam := filepath.Join(dir, "most.json")
	os.WriteFile(cam, []byte(`{"id":"most","name":"Most","main":{"url":"rtsp://127.0.0.1:1/b","username":"admin"}}`), 0o600)
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("he@s#lo^:\n"), 0o600)

	if code, out, errs := runBinary(t, "camera", "add", "-config", cfg, "-file", cam, "-password-file", pw); code != 0 {
		t.Fatalf("camera add: %d %s %s", code, out, errs)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "cameras.d", "most.yaml"))
	if err != nil || strings.Contains(string(raw), "he@s#lo") {
		t.Fatalf("most.yaml: %v\n%s", err, raw)
	}
	if code, _, errs := runBinary(t, "camera", "add", "-config", cfg, "-file", cam); code != 2 || !strings.Contains(errs, `cameras[2].id: duplicate id "most"`) {
		t.Fatalf("adding most again: %d %s", code, errs)
	}
	code, out, _ := runBinary(t, "camera", "list", "-config", cfg)
	if code != 0 || !strings.Contains(out, "namesti") || !strings.Contains(out, "rtsp://admin:***@127.0.0.1:1/b") || strings.Contains(out, "he@s#lo") {
		t.Fatalf("camera list: %d\n%s", code, out)
	}
	if code, _, errs := runBinary(t, "camera", "remove", "-config", cfg, "-id", "namesti"); code != 2 || !strings.Contains(errs, "hand-written") {
		t.Fatalf("removing a hand-written camera: %d %s", code, errs)
	}
	if code, out, errs := runBinary(t, "camera", "remove", "-config", cfg, "-id", "most"); code != 0 {
		t.Fatalf("camera remove: %d %s %s", code, out, errs)
	}
	if code, out, _ := runBinary(t, "check-config", "-config", cfg); code != 0 || !strings.Contains(out, "1 camera(s)") {
		t.Fatalf("check-config: %d %s", code, out)
	}
	// The camera's file and its password file are gone; the lock file stays.
	if rest, _ := filepath.Glob(filepath.Join(dir, "cameras.d", "[^.]*")); len(rest) != 0 {
		t.Fatalf("cameras.d after remove: %v", rest)
	}
}
