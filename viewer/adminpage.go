package viewer

import "net/http"

// The administrator's camera page (/admin, web/admin.html and admin.js) uses the camera
// configuration API, the probe and ONVIF discovery, and one route of its own:
//
//	GET /api/admin/cameras   every running camera's ingest, recording and stored bytes
//
// /api/cameras answers only for the live action, which the admin role does not have (an
// administrator configures cameras; watching them is a dispatcher's grant), so the page
// could not see whether the camera it just added streams. This route shows the same
// status of every camera to the admin action and carries no picture.

// handleAdminPage serves the camera administration page.
func (s *Server) handleAdminPage(w http.ResponseWriter, r *http.Request) {
	s.servePage(w, r, "admin.html")
}

// handleAdminCameras lists every running camera's status for an administrator: an admin
// is not granted cameras, the admin action covers them all.
func (s *Server) handleAdminCameras(w http.ResponseWriter, _ *http.Request) {
	out := []cameraJSON{}
	for _, c := range s.opt.Cameras.Cameras() {
		out = append(out, s.cameraJSON(c))
	}
	writeJSON(w, http.StatusOK, out)
}
