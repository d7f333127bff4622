package viewer

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/townwatch/townwatch/viewer/access"
)

// An administrator, granted no camera, sees every camera's status on /api/admin/cameras
// (the admin page's list), while /api/cameras, which needs the live action, refuses them;
// the page itself is served with the pages' CSP.
func TestAdminSeesEveryCameraStatus(t *testing.T) {
	rig := newRouteRig(t)
	rig.fx.addUser(t, "spravce", []access.Role{access.Admin}, false)
	h := withCookie(rig.server.Handler(), login(t, rig.server.Handler(), "spravce"))

	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	rec := get("/api/admin/cameras")
	var cams []cameraJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &cams); rec.Code != http.StatusOK || err != nil {
		t.Fatalf("/api/admin/cameras: %d %s (%v)", rec.Code, rec.Body, err)
	}
	if len(cams) != 2 || cams[0].ID != "namesti" || cams[1].ID != "most" || cams[0].State != "streaming" {
		t.Errorf("/api/admin/cameras lists %+v, want namesti and most, streaming", cams)
	}
	if rec := get("/api/cameras"); rec.Code != http.StatusForbidden {
		t.Errorf("/api/cameras for an admin: %d, want 403", rec.Code)
	}
	page := get("/admin")
	if page.Code != http.StatusOK || !strings.Contains(page.Body.String(), `src="static/admin.js"`) ||
		!strings.Contains(page.Header().Get("Content-Security-Policy"), "default-src 'self'") {
		t.Errorf("/admin: %d %q", page.Code, page.Header().Get("Content-Security-Policy"))
	}
}
