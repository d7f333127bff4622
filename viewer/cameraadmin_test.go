package viewer

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image/jpeg"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/ingest/onvif"
	"github.com/townwatch/townwatch/ingest/onvif/onviftest"
	"github.com/townwatch/townwatch/ingest/probe"
	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/viewer/access"
)

// cameraCanary is the simulated camera's password: it must appear in no answer, log line
// or audit row.
const cameraCanary = "Kamera-Kanarek-93f1"

// cameraAdminRig is a server with the camera tools, the real probe and ffmpeg stills, a
// simcam camera that wants a password, and a log the test reads.
type cameraAdminRig struct {
	fx   *accessFixture
	h    http.Handler // the server, as the admin
	srv  http.Handler // the server, without a session
	cam  *simcam.Server
	logs *bytes.Buffer
}

func newCameraAdminRig(t *testing.T) *cameraAdminRig {
	t.Helper()
	return newCameraAdminRigWith(t, "rtsp://spravce:***@10.0.0.22/live")
}

// newCameraAdminRigWith is newCameraAdminRig with a configured camera at configured.
func newCameraAdminRigWith(t *testing.T, configured string) *cameraAdminRig {
	t.Helper()
	cam, err := simcam.New(simcam.Config{Listen: "127.0.0.1:0",
		Cameras: []simcam.CameraSpec{{Path: "namesti", Clip: simcam.ClipMotion, Username: "spravce", Password: cameraCanary}}})
	if err != nil {
		t.Fatal(err)
	}
	stop, err := cam.Start(context.Background())
	if err != nil {
		t.Fatalf("simcam: %v", err)
	}
	t.Cleanup(func() { _ = stop() })
	frames, err := NewFrameDecoder("")
	if err != nil {
		t.Fatalf("stills need ffmpeg: %v", err)
	}
	fx := newAccessFixture(t)
	logs := &bytes.Buffer{}
	s, err := New(Options{Listen: "127.0.0.1:0", Access: fx.opts, Log: slog.New(slog.NewTextHandler(logs, nil)),
		Cameras: StaticCameras{{ID: "most", Main: fixedStatus{State: ingest.StateStreaming, URL: configured}}},
		Metrics: http.NotFoundHandler(),
		CameraAdmin: &CameraAdmin{Prober: &probe.Prober{Snapshots: frames, Log: slog.New(slog.NewTextHandler(logs, nil))},
			ONVIF: &onvif.Client{}, Discoverer: &onvif.Discoverer{Interfaces: []string{"lo"}}}})
	if err != nil {
		t.Fatal(err)
	}
	fx.addUser(t, "spravce", []access.Role{access.Admin}, false)
	fx.addUser(t, "novak", []access.Role{access.Officer, access.Supervisor}, true)
	return &cameraAdminRig{fx: fx, h: withCookie(s.Handler(), login(t, s.Handler(), "spravce")), srv: s.Handler(), cam: cam, logs: logs}
}

// post sends a JSON body to path and returns the status and the body.
func post(h http.Handler, path string, body any) (int, string, http.Header) {
	raw, _ := json.Marshal(body)
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String(), rec.Header()
}

func TestCameraProbeAPI(t *testing.T) {
	rig := newCameraAdminRig(t)
	url := rig.cam.URL("namesti")

	code, body, _ := post(rig.h, "/api/cameras/probe", map[string]string{"url": url, "username": "spravce", "password": cameraCanary})
	if code != http.StatusOK {
		t.Fatalf("probe: %d %s", code, body)
	}
	var res struct {
		OK       bool    `json:"ok"`
		Failure  string  `json:"failure"`
		Codec    string  `json:"codec"`
		Width    int     `json:"width"`
		Height   int     `json:"height"`
		FPS      float64 `json:"fps"`
		Snapshot string  `json:"snapshot_jpeg"`
	}
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.Codec != "H264" || res.Width != 640 || res.Height != 360 || res.FPS < 24.5 || res.FPS > 25.5 {
		t.Errorf("probe answered %s", body[:min(len(body), 600)])
	}
	pic, err := base64.StdEncoding.DecodeString(res.Snapshot)
	if err != nil {
		t.Fatalf("snapshot_jpeg is not base64: %v", err)
	}
	if cfg, err := jpeg.DecodeConfig(bytes.NewReader(pic)); err != nil || cfg.Width != 640 || cfg.Height != 360 {
		t.Errorf("snapshot: %v %+v, want a 640x360 JPEG", err, cfg)
	}

	code, body, _ = post(rig.h, "/api/cameras/probe", map[string]string{"url": url, "username": "spravce", "password": "x" + cameraCanary})
	if code != http.StatusOK || !strings.Contains(body, `"failure":"auth"`) || !strings.Contains(body, `"ok":false`) {
		t.Errorf("wrong password: %d %s", code, body)
	}
	code, body, _ = post(rig.h, "/api/cameras/probe", map[string]string{"url": "ftp://cam/", "password": cameraCanary})
	if code != http.StatusBadRequest || !strings.Contains(body, "url: scheme must be rtsp or rtsps") {
		t.Errorf("bad url: %d %s", code, body)
	}

	rows := rig.fx.auditRows(t, access.AuditCameraProbe)
	if len(rows) != 2 || rows[0].Actor != "spravce" || !strings.Contains(string(rows[0].Details), `rtsp://spravce:***@`) {
		t.Errorf("audit rows %+v, want one per probe with the redacted URL", rows)
	}
	all, _ := json.Marshal(rig.fx.auditRows(t, ""))
	for what, text := range map[string]string{"answer": body, "log": rig.logs.String(), "access log": string(all)} {
		if strings.Contains(text, cameraCanary) {
			t.Errorf("the camera's password appears in the %s", what)
		}
	}

	// Not for other roles: refused by the chokepoint, and audited as such.
	officer := withCookie(rig.srv, login(t, rig.srv, "novak"))
	if code, body, _ := post(officer, "/api/cameras/probe", map[string]string{"url": url}); code != http.StatusForbidden {
		t.Errorf("a supervisor probing: %d %s", code, body)
	}
}

func TestCameraProbeRateLimit(t *testing.T) {
	rig := newCameraAdminRig(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "rtsp://" + ln.Addr().String() + "/x"
	ln.Close()
	for i := range 5 {
		if code, body, _ := post(rig.h, "/api/cameras/probe", map[string]string{"url": closed}); code != http.StatusOK || !strings.Contains(body, `"failure":"unreachable"`) {
			t.Fatalf("probe %d: %d %s", i+1, code, body)
		}
	}
	code, body, hdr := post(rig.h, "/api/cameras/probe", map[string]string{"url": closed})
	if code != http.StatusTooManyRequests || hdr.Get("Retry-After") != "6" {
		t.Fatalf("sixth probe at once: %d %s Retry-After %q, want 429 and 6", code, body, hdr.Get("Retry-After"))
	}
	// A request that is wrong costs nothing and is still told so.
	if code, _, _ := post(rig.h, "/api/cameras/probe", map[string]string{"url": ""}); code != http.StatusBadRequest {
		t.Errorf("empty url while throttled: %d, want 400", code)
	}
	rig.fx.clock.Advance(6 * time.Second)
	if code, body, _ := post(rig.h, "/api/cameras/probe", map[string]string{"url": closed}); code != http.StatusOK {
		t.Errorf("after 6 s: %d %s", code, body)
	}
}

func TestONVIFProfilesRequestErrors(t *testing.T) {
	rig := newCameraAdminRig(t)
	for body, want := range map[string]string{
		`{}`: "xaddr: required",
		`{"xaddr":"http://10.0.0.9/onvif/device_service","host":"10.0.0.9"}`: "host: conflicts with xaddr",
		`{"xaddr":"ftp://10.0.0.9/x"}`:                                       "xaddr: want an http:// or https:// URL",
		`{"host":"10.0.0.9/x"}`:                                              "host: want a host or host:port",
	} {
		var v any
		_ = json.Unmarshal([]byte(body), &v)
		if code, got, _ := post(rig.h, "/api/onvif/profiles", v); code != http.StatusBadRequest || !strings.Contains(got, want) {
			t.Errorf("%s: %d %s, want 400 %q", body, code, got, want)
		}
	}
	req := httptest.NewRequest(http.MethodGet, "/api/onvif/discover?iface=no-such-if0", nil)
	rec := httptest.NewRecorder()
	rig.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `iface: \"no-such-if0\" is not one of the camera network's interfaces`) {
		t.Errorf("unknown iface: %d %s", rec.Code, rec.Body)
	}
}

// TestONVIFDiscoveryAPI discovers a simulated ONVIF camera through the API, in a network
// namespace of the test's own, lists it only while it is not a configured camera, and
// reads its profiles with main and sub suggested.
func TestONVIFDiscoveryAPI(t *testing.T) {
	if !onviftest.InNetns(t) {
		return
	}
	fresh := newCameraAdminRig(t)
	onvifCam, err := onviftest.Start(onviftest.Camera{Endpoint: "urn:uuid:6b1f1d4e-0000-4000-8000-0000000000aa", Name: "Brana", Hardware: "SIM-2",
		Username: "spravce", Password: cameraCanary, Interface: "lo", Profiles: []onviftest.Profile{
			{Token: "hd", Name: "main", Encoding: "H264", Width: 1920, Height: 1080, FPS: 25, URI: "rtsp://spravce:" + cameraCanary + "@127.0.0.1:554/hd"},
			{Token: "sd", Name: "sub", Encoding: "H265", Width: 704, Height: 576, FPS: 12, URI: "rtsp://127.0.0.1:554/sd"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer onvifCam.Close()

	get := func(h http.Handler) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/onvif/discover?iface=lo", nil))
		return rec.Code, rec.Body.String()
	}
	code, body := get(fresh.h)
	var ans struct {
		Devices      []onvif.Device `json:"devices"`
		AlreadyAdded int            `json:"already_added"`
	}
	if err := json.Unmarshal([]byte(body), &ans); err != nil || code != http.StatusOK || len(ans.Devices) != 1 ||
		ans.Devices[0].XAddr != onvifCam.XAddr() || ans.Devices[0].Name != "Brana" || ans.AlreadyAdded != 0 {
		t.Fatalf("discover: %d %s", code, body)
	}

	// Once a camera at that host is configured, it is no longer offered.
	added := newCameraAdminRigWith(t, "rtsp://spravce:***@127.0.0.1:554/hd")
	code, body = get(added.h)
	if err := json.Unmarshal([]byte(body), &ans); err != nil || code != http.StatusOK || len(ans.Devices) != 0 || ans.AlreadyAdded != 1 {
		t.Errorf("discover with the camera configured: %d %s", code, body)
	}

	code, body, _ = post(fresh.h, "/api/onvif/profiles", map[string]string{"xaddr": onvifCam.XAddr(), "username": "spravce", "password": cameraCanary})
	var prof struct {
		OK       bool            `json:"ok"`
		Profiles []onvif.Profile `json:"profiles"`
		Main     *onvif.Profile  `json:"main"`
		Sub      *onvif.Profile  `json:"sub"`
		Username string          `json:"username"`
	}
	if err := json.Unmarshal([]byte(body), &prof); err != nil || code != http.StatusOK || !prof.OK || len(prof.Profiles) != 2 ||
		prof.Main == nil || prof.Main.StreamURI != "rtsp://127.0.0.1:554/hd" || prof.Sub == nil || prof.Sub.StreamURI != "rtsp://127.0.0.1:554/sd" ||
		prof.Username != "spravce" {
		t.Fatalf("profiles: %d %s", code, body)
	}
	if strings.Contains(body, cameraCanary) {
		t.Errorf("the password (which the camera put in a stream URI) is in the answer: %s", body)
	}
	code, body, _ = post(fresh.h, "/api/onvif/profiles", map[string]string{"xaddr": onvifCam.XAddr(), "username": "spravce", "password": "wrong"})
	if code != http.StatusOK || !strings.Contains(body, `"failure":"auth"`) {
		t.Errorf("profiles with a wrong password: %d %s", code, body)
	}
	if rows := fresh.fx.auditRows(t, access.AuditONVIFDiscover); len(rows) != 1 || !strings.Contains(string(rows[0].Details), `"new":1`) {
		t.Errorf("discovery audit rows: %+v", rows)
	}
	rows := fresh.fx.auditRows(t, access.AuditONVIFProfiles)
	raw, _ := json.Marshal(rows)
	if len(rows) != 2 || strings.Contains(string(raw), cameraCanary) || strings.Contains(fresh.logs.String(), cameraCanary) {
		t.Errorf("profile audit rows %s; want two, without the password", raw)
	}
}
