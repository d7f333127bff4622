package viewer

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/viewer/access"
)

// newConfigStore is a configuration with the rig's two cameras, hand-written.
func newConfigStore(t *testing.T) *configs.CameraStore {
	t.Helper()
	main := filepath.Join(t.TempDir(), "townwatch.yaml")
	err := os.WriteFile(main, []byte("storage:\n  path: ./data\ncameras:\n  - id: namesti\n    main:\n      url: rtsp://127.0.0.1:1/a\n  - id: most\n    main:\n      url: rtsp://127.0.0.1:1/b\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return &configs.CameraStore{Main: main}
}

func configRequest(t *testing.T, h http.Handler, method, path, body, match string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if match != "" {
		req.Header.Set("If-Match", match)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	json.Unmarshal(rec.Body.Bytes(), &out)
	return rec, out
}

// An administrator creates, edits and removes a camera through the API: the statuses the
// issue names, the password never answered or audited, every change audited with its
// before and after.
func TestConfigCamerasAPI(t *testing.T) {
	rig := newRouteRig(t)
	rig.fx.addUser(t, "spravce", []access.Role{access.Admin}, true)
	h := withCookie(rig.server.Handler(), login(t, rig.server.Handler(), "spravce"))
	store := rig.server.opt.ConfigCameras.(*configs.CameraStore)
	const password = "Tajn@#^:heslo"

	rec, _ := configRequest(t, h, "GET", "/api/config/cameras", "", "")
	etag := rec.Header().Get("ETag")
	if rec.Code != http.StatusOK || etag == "" {
		t.Fatalf("list: %d %q", rec.Code, etag)
	}
	body := `{"id":"skola","name":"Škola","main":{"url":"rtsp://127.0.0.1:1/c","transport":"tcp","username":"admin","password":"` + password + `"},"record":{"mode":"continuous"}}`
	rec, out := configRequest(t, h, "POST", "/api/config/cameras", body, "")
	if rec.Code != http.StatusCreated || rec.Header().Get("Location") != "/api/config/cameras/skola" || rec.Header().Get("ETag") == etag {
		t.Fatalf("create: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	if strings.Contains(rec.Body.String(), password) || out["camera"].(map[string]any)["main"].(map[string]any)["password_set"] != true {
		t.Fatalf("create answered %s", rec.Body)
	}
	if _, err := os.Stat(filepath.Join(configs.CamerasDir(store.Main), "skola.yaml")); err != nil {
		t.Fatal(err)
	}
	rec, out = configRequest(t, h, "GET", "/api/config/cameras/skola", "", "")
	if rec.Code != http.StatusOK || out["name"] != "Škola" || out["hand_written"] != false || strings.Contains(rec.Body.String(), password) {
		t.Fatalf("get: %d %s", rec.Code, rec.Body)
	}
	etag = rec.Header().Get("ETag")

	// Two PUTs with the same If-Match: one 200, one 412. Without If-Match: 428.
	edit := `{"id":"skola","name":"ZŠ Komenského","main":{"url":"rtsp://127.0.0.1:1/c","username":"admin"}}`
	if rec, _ = configRequest(t, h, "PUT", "/api/config/cameras/skola", edit, ""); rec.Code != http.StatusPreconditionRequired {
		t.Fatalf("PUT without If-Match: %d", rec.Code)
	}
	if rec, _ = configRequest(t, h, "PUT", "/api/config/cameras/skola", edit, etag); rec.Code != http.StatusOK {
		t.Fatalf("first PUT: %d %s", rec.Code, rec.Body)
	}
	if rec, _ = configRequest(t, h, "PUT", "/api/config/cameras/skola", edit, etag); rec.Code != http.StatusPreconditionFailed {
		t.Fatalf("second PUT with the same If-Match: %d %s", rec.Code, rec.Body)
	}
	etag = rec.Header().Get("ETag")
	rec, _ = configRequest(t, h, "GET", "/api/config/cameras", "", "")
	etag = rec.Header().Get("ETag")

	// A camera of the hand-written file: read, not changed.
	if rec, _ = configRequest(t, h, "GET", "/api/config/cameras/namesti", "", ""); rec.Code != http.StatusOK {
		t.Fatalf("get hand-written: %d", rec.Code)
	}
	if rec, _ = configRequest(t, h, "DELETE", "/api/config/cameras/namesti", "", etag); rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "hand-written") {
		t.Fatalf("delete hand-written: %d %s", rec.Code, rec.Body)
	}

	// Problems: 422 with their paths, from create and validate alike.
	bad := `{"id":"most","main":{"url":"http://127.0.0.1/x"},"motion":{"zones":[{"name":"z","points":[[0,0],[1.4,0],[0,1]]}]}}`
	for _, path := range []string{"/api/config/cameras", "/api/config/validate"} {
		rec, out = configRequest(t, h, "POST", path, bad, "")
		raw := rec.Body.String()
		if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(raw, `"path":"cameras[3].id"`) || !strings.Contains(raw, `"path":"cameras[3].main.url"`) ||
			!strings.Contains(raw, `"path":"cameras[3].motion.zones[0].points[1]"`) {
			t.Fatalf("%s: %d %s", path, rec.Code, raw)
		}
	}
	if rec, _ = configRequest(t, h, "POST", "/api/config/validate", `{"id":"nova","main":{"url":"rtsp://127.0.0.1/x"}}`, ""); rec.Code != http.StatusOK {
		t.Fatalf("validate a good camera: %d %s", rec.Code, rec.Body)
	}

	if rec, _ = configRequest(t, h, "DELETE", "/api/config/cameras/skola", "", etag); rec.Code != http.StatusOK {
		t.Fatalf("delete: %d %s", rec.Code, rec.Body)
	}
	if rec, _ = configRequest(t, h, "GET", "/api/config/cameras/skola", "", ""); rec.Code != http.StatusNotFound {
		t.Fatalf("get after delete: %d", rec.Code)
	}

	rows := rig.fx.auditRows(t, access.AuditConfigChange)
	if len(rows) != 3 {
		t.Fatalf("%d config.change rows, want 3 (create, replace, delete)", len(rows))
	}
	for i, op := range []string{"create", "replace", "delete"} {
		var d struct {
			Op            string
			Before, After map[string]any
		}
		json.Unmarshal(rows[i].Details, &d)
		if d.Op != op || rows[i].Actor != "spravce" || rows[i].Camera != "skola" || strings.Contains(string(rows[i].Details), password) ||
			(op != "create") != (d.Before != nil) || (op != "delete") != (d.After != nil) {
			t.Errorf("audit row %d: %s %s %s", i, rows[i].Actor, rows[i].Camera, rows[i].Details)
		}
	}
}
