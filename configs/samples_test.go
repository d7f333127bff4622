package configs

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Every sample file in this directory must load, so samples never drift from the code.
// townwatch.example.yaml takes a password from TOWNWATCH_STRIBRO_MOST_PASSWORD (password_env
// is checked to be set), so the test sets it.
func TestSamplesLoad(t *testing.T) {
	t.Setenv("TOWNWATCH_STRIBRO_MOST_PASSWORD", "sample-password")
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("found samples %v, want at least townwatch.example.yaml and demo.yaml", files)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			c, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Cameras) == 0 {
				t.Error("a sample without cameras shows nothing")
			}
		})
	}
}

func TestDemo(t *testing.T) {
	onDisk, err := os.ReadFile("demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(DemoYAML, onDisk) {
		t.Fatal("DemoYAML differs from demo.yaml")
	}
	c, err := Parse(DemoYAML, "demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Storage.Path != "./data/demo" || c.HTTP.Listen != "127.0.0.1:8080" {
		t.Errorf("storage %q, listen %q; want ./data/demo and 127.0.0.1:8080", c.Storage.Path, c.HTTP.Listen)
	}
	want := []struct {
		id, name, url string
		motion        bool
	}{
		{"demo-motion", "Demo – pohyb / motion", "rtsp://127.0.0.1:8554/motion", true},
		{"demo-static", "Demo – klid / static", "rtsp://127.0.0.1:8554/static", false},
	}
	if len(c.Cameras) != len(want) {
		t.Fatalf("demo has %d cameras, want %d", len(c.Cameras), len(want))
	}
	for i, w := range want {
		cam := c.Cameras[i]
		if cam.ID != w.id || cam.Name != w.name || cam.Main.URL != w.url || cam.Motion.Enabled != w.motion {
			t.Errorf("camera %d = %+v, want %+v", i, cam, w)
		}
		if cam.Main.Transport != TransportTCP || (cam.Sub != nil) != w.motion || cam.Record.Mode != RecordContinuous {
			t.Errorf("camera %s: transport %q, sub %v, record %q; want tcp, a sub stream only with motion, continuous", cam.ID, cam.Main.Transport, cam.Sub, cam.Record.Mode)
		}
		if cam.Sub != nil && cam.Sub.URL != w.url {
			t.Errorf("camera %s: sub %q, want the same simulated stream %q", cam.ID, cam.Sub.URL, w.url)
		}
		if dial, err := cam.Main.DialURL(); err != nil || dial != w.url {
			t.Errorf("camera %s: DialURL() = %q, %v", cam.ID, dial, err)
		}
	}
}

func TestExample(t *testing.T) {
	t.Setenv("TOWNWATCH_STRIBRO_MOST_PASSWORD", "most-heslo")
	c, err := Load("townwatch.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	namesti, ok := c.Camera("stribro-namesti")
	if !ok || namesti.Name != "Stříbro – Masarykovo náměstí" || namesti.Sub == nil || !namesti.Motion.Enabled ||
		namesti.Record.Retention.Std() != 7*24*time.Hour {
		t.Errorf("stribro-namesti = %+v", namesti)
	}
	if got := namesti.Main.RedactedURL(); got != "rtsp://viewer:***@10.0.0.21:554/Streaming/Channels/101" {
		t.Errorf("stribro-namesti RedactedURL() = %q", got)
	}
	if z := namesti.Motion.Zones; len(z) != 2 || z[1].Name != "parkoviště" || len(z[1].Points) != 4 || z[1].Points[1][0] != 1.0 ||
		len(namesti.Motion.Masks) != 1 || namesti.Record.EventRetention.Std() != 30*24*time.Hour {
		t.Errorf("stribro-namesti zones %+v, masks %+v, event retention %v", z, namesti.Motion.Masks, namesti.Record.EventRetention)
	}
	if plzenska, ok := c.Camera("stribro-plzenska"); !ok || plzenska.Record.Mode != RecordMotion || plzenska.Record.PreRoll.Std() != 5*time.Second ||
		plzenska.Record.PostRoll.Std() != 10*time.Second || plzenska.Motion.FPS != DefaultMotionFPS {
		t.Errorf("stribro-plzenska = %+v", plzenska)
	}
	if c.WebRTC.UDPPort != 8189 || c.WebRTC.MaxViewersPerCamera != 16 || len(c.WebRTC.ICEServers) != 0 {
		t.Errorf("webrtc = %+v", c.WebRTC)
	}
	most, ok := c.Camera("stribro-most")
	if !ok || most.Record.Retention.Std() != 30*24*time.Hour || most.Motion.Enabled || most.Main.StallTimeout.Std() != 15*time.Second {
		t.Errorf("stribro-most = %+v", most)
	}
	for _, s := range []Stream{most.Main, *most.Sub} {
		if got, err := s.DialURL(); err != nil || !strings.HasPrefix(got, "rtsp://viewer:most-heslo@10.0.0.22:554/cam/realmonitor?channel=1&subtype=") {
			t.Errorf("stribro-most DialURL() = %q, %v", got, err)
		}
	}
}
