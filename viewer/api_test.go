package viewer

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/viewer/access"
)

type fixedStatus ingest.Status

func (f fixedStatus) Status() ingest.Status { return ingest.Status(f) }

// testServer serves two cameras; its Handler is a supervisor's logged-in browser.
func testServer(t *testing.T) *loggedIn {
	t.Helper()
	last := time.Date(2026, 11, 23, 20, 0, 0, 0, time.UTC)
	cams := []Camera{
		{
			ID: "stribro-namesti", Name: "Stříbro – Masarykovo náměstí",
			Main: fixedStatus{Camera: "stribro-namesti", Stream: "main", URL: "rtsp://admin:***@127.0.0.1:8554/main",
				State: ingest.StateStreaming, Codec: ingest.CodecH264, Width: 1920, Height: 1080, FPS: 25, Bitrate: 4e6, Reconnects: 2, LastFrame: last},
			Sub: fixedStatus{Camera: "stribro-namesti", Stream: "sub", State: ingest.StateStreaming, Width: 640, Height: 360},
			Recording: func() Recording {
				return Recording{State: "paused_disk_full", Reason: "no space left on device", BytesStored: 5 << 30, Segments: 12, Gaps: 1}
			},
			Motion: func() Motion { return Motion{Active: true, Events: 7} },
		},
		{
			ID: "stribro-most", Name: "Stříbro – most",
			Main: fixedStatus{Camera: "stribro-most", Stream: "main", State: ingest.StateFailed,
				Reason: "authentication failed (401 Unauthorized): check the username and password"},
		},
	}
	fx := newAccessFixture(t)
	s, err := New(Options{Listen: "127.0.0.1:0", Cameras: StaticCameras(cams), Metrics: http.NotFoundHandler(), Access: fx.opts})
	if err != nil {
		t.Fatal(err)
	}
	fx.addUser(t, "velitel", []access.Role{access.Supervisor}, false)
	return &loggedIn{Server: s, fx: fx, cookie: login(t, s.Handler(), "velitel")}
}

// loggedIn is a Server seen through a logged-in browser.
type loggedIn struct {
	*Server
	fx     *accessFixture
	cookie *http.Cookie
}

func (l *loggedIn) Handler() http.Handler { return withCookie(l.Server.Handler(), l.cookie) }

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestCamerasListsEveryCameraWithItsStatus(t *testing.T) {
	code, body := get(t, testServer(t).Handler(), "/api/cameras")
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("not a JSON array: %v\n%s", err, body)
	}
	if len(got) != 2 {
		t.Fatalf("%d cameras, want 2", len(got))
	}
	c := got[0]
	want := map[string]any{
		"id": "stribro-namesti", "name": "Stříbro – Masarykovo náměstí", "state": "streaming", "codec": "H264",
		"width": 1920.0, "height": 1080.0, "fps": 25.0, "bitrate_bps": 4e6, "reconnects": 2.0, "last_frame": "2026-11-23T20:00:00Z",
	}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("camera 0 %s = %v, want %v", k, c[k], v)
		}
	}
	if sub, ok := c["sub"].(map[string]any); !ok || sub["width"] != 640.0 {
		t.Errorf("camera 0 sub = %v, want the sub stream's status", c["sub"])
	}
	if m, ok := c["motion"].(map[string]any); !ok || m["active"] != true || m["events"] != 7.0 {
		t.Errorf("camera 0 motion = %v, want active with 7 events", c["motion"])
	}
	if _, ok := got[1]["motion"]; ok {
		t.Errorf("camera 1 has no motion detection but shows %v", got[1]["motion"])
	}
	rec, ok := c["recording"].(map[string]any)
	if !ok || rec["state"] != "paused_disk_full" || rec["bytes_stored"] != float64(5<<30) || rec["reason"] != "no space left on device" {
		t.Errorf("camera 0 recording = %v, want the recorder's state and bytes stored", c["recording"])
	}
	if got[1]["state"] != "failed" || !strings.Contains(got[1]["reason"].(string), "authentication failed") {
		t.Errorf("camera 1 = %v, want failed with its reason", got[1])
	}
	if c["viewers"] != 0.0 {
		t.Errorf("camera 0 viewers = %v, want 0 without a live view", c["viewers"])
	}
	if _, ok := got[1]["sub"]; ok {
		t.Error("camera without a sub stream shows one")
	}
	if strings.Contains(body, "admin:") && !strings.Contains(body, "admin:***@") {
		t.Error("URL not redacted")
	}
}

func TestCameraByIDAndUnknownCamera(t *testing.T) {
	h := testServer(t).Handler()
	if code, body := get(t, h, "/api/cameras/stribro-most"); code != http.StatusOK || !strings.Contains(body, `"state":"failed"`) {
		t.Fatalf("GET known camera: %d %s", code, body)
	}
	code, body := get(t, h, "/api/cameras/nope%3Cscript%3E")
	if code != http.StatusNotFound || !strings.Contains(body, `unknown camera \"nope\u003cscript\u003e\"`) {
		t.Fatalf("GET unknown camera: %d %s", code, body)
	}
}

func TestHealthReportsDegradedCameras(t *testing.T) {
	code, body := get(t, testServer(t).Handler(), "/healthz")
	if code != http.StatusOK {
		t.Fatalf("healthz %d", code)
	}
	var h healthJSON
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatal(err)
	}
	if h.Status != "degraded" || h.Cameras != 2 || h.Streaming != 1 || h.Down != 1 || h.NotRecording != 1 {
		t.Fatalf("healthz = %+v", h)
	}
	// Public, so no camera id: which cameras exist is for logged-in users.
	if strings.Contains(body, "stribro") {
		t.Fatalf("healthz names a camera: %s", body)
	}
}

func TestRunServesAndShutsDown(t *testing.T) {
	s := testServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	resp, err := http.Get("http://" + s.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz over TCP: %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestRunReportsBusyAddress(t *testing.T) {
	first := testServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go first.Run(ctx)
	<-first.Ready()
	second, err := New(Options{Listen: first.Addr().String(), Metrics: http.NotFoundHandler(), Access: first.fx.opts})
	if err != nil {
		t.Fatal(err)
	}
	err = second.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "http.listen "+first.Addr().String()) {
		t.Fatalf("Run on a busy address: %v, want an error naming http.listen", err)
	}
}
