package main

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest/simcam"
)

// A password rewritten in its password_file leaves the configuration equal; a reload
// (SIGHUP, an API write) still restarts that camera with the new password, and only it.
// The same password written again (with a newline, which is trimmed) restarts nothing.
func TestPasswordFileRewriteRestartsThatCamera(t *testing.T) {
	t.Parallel()
	const password = "tajne:heslo@1"
	cam := startSimcam(t, simcam.CameraSpec{Path: "stays", Clip: simcam.ClipStatic},
		simcam.CameraSpec{Path: "locked", Clip: simcam.ClipStatic, Username: "admin", Password: password})
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "locked.password")
	writePassword := func(pw string) {
		t.Helper()
		if err := os.WriteFile(pwFile, []byte(pw), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writePassword(password)
	cfg, err := configs.Parse([]byte("storage:\n  path: "+strconv.Quote(filepath.Join(dir, "storage"))+"\n  min_free: 1MiB\n"+
		"http:\n  listen: 127.0.0.1:0\nwebrtc: {udp_port: 0, tcp_port: 0}\ncameras:\n"+
		"  - id: stays\n    main: {url: "+cam.URL("stays")+", transport: tcp}\n    record: {mode: continuous, segment: 1h}\n"+
		"  - id: locked\n    main: {url: "+cam.URL("locked")+", transport: tcp, username: admin, password_file: "+strconv.Quote(pwFile)+"}\n"+
		"    record: {mode: continuous, segment: 1h}\n"), "townwatch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sys := runSystem(t, cfg)
	waitUnitStreaming(t, sys, "locked")
	stays, locked := sys.cams.unit("stays"), sys.cams.unit("locked")

	writePassword(password + "\n")
	if err := sys.reloads.Apply(cfg, "sighup"); err != nil {
		t.Fatal(err)
	}
	if sys.cams.unit("locked") != locked {
		t.Fatal("the same password written again restarted the camera")
	}

	writePassword("wrong")
	if err := sys.reloads.Apply(cfg, "sighup"); err != nil {
		t.Fatal(err)
	}
	if last := sys.reloads.status.Last; sys.cams.unit("locked") == locked || len(last.Restarted) != 1 || last.Restarted[0] != "locked" {
		t.Fatalf("a new password in the file: restarted %v, want [locked]", last.Restarted)
	}
	writePassword(password)
	if err := sys.reloads.Apply(cfg, "sighup"); err != nil {
		t.Fatal(err)
	}
	waitUnitStreaming(t, sys, "locked")
	if sys.cams.unit("stays") != stays {
		t.Error("the other camera was restarted")
	}
}
