package viewer

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/townwatch/townwatch/ingest"
)

// cameraJSON is one camera in /api/cameras: the main stream's status at the top level
// (state, reason, codec, resolution, fps, bitrate, reconnects, last frame), the sub stream's
// in "sub" when one is configured, and how many live viewers watch it (either stream).
// URLs in it are redacted; it never holds a password.
type cameraJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	ingest.Status
	Sub       *ingest.Status `json:"sub,omitempty"`
	Viewers   int            `json:"viewers"`
	Recording *Recording     `json:"recording,omitempty"`
	Motion    *Motion        `json:"motion,omitempty"`
	// Node is the recorder node recording the camera, with several nodes ("" while no
	// node holds it: its node is down or a takeover is under way).
	Node *string `json:"node,omitempty"`
}

func (s *Server) cameraJSON(c Camera) cameraJSON {
	out := cameraJSON{ID: c.ID, Name: c.Name, Status: c.Main.Status()}
	if s.opt.Live != nil {
		out.Viewers = s.opt.Live.Stats(c.ID).Sessions
	}
	if c.Sub != nil {
		sub := c.Sub.Status()
		out.Sub = &sub
	}
	if c.Recording != nil {
		rec := c.Recording()
		out.Recording = &rec
	}
	if c.Motion != nil {
		m := c.Motion()
		out.Motion = &m
	}
	if c.Node != nil {
		n := c.Node()
		out.Node = &n
	}
	return out
}

// handleAPIIndex lists the endpoints for a person (the wall's footer links here); only
// those this server really serves.
func (s *Server) handleAPIIndex(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	var b strings.Builder
	b.WriteString(`townwatch

GET  /                                live wall (browser)
GET  /login                           login page; POST /api/login {"username","password"} sets the session cookie
POST /api/logout                      end the session
GET  /api/me                          who is logged in: name, roles, cameras, allowed actions
GET  /api/cameras                     the cameras you may watch: ingest, recording and viewer status (JSON)
GET  /api/cameras/{id}                one camera
`)
	if s.opt.Live != nil {
		b.WriteString(`POST /api/cameras/{id}/whep[?stream=main|sub]   live view: WHEP offer (application/sdp) -> 201 answer + Location
DELETE <Location>                     end a live view session
`)
	}
	if s.opt.Events != nil {
		b.WriteString(`GET  /api/events?camera=&from=&to=&zone=&limit=   motion events, newest first
GET  /api/events/{id}/snapshot.jpg    an event's snapshot
`)
	}
	if s.opt.Playback != nil {
		b.WriteString(`GET  /playback[?camera=&t=]           recorded footage player (browser)
POST /api/playback {"cameras","reason","case"}   start playback with a reason (audited); needed first
GET  /api/timeline?cameras=&from=&to=&bucket=   recorded spans, gaps, motion, events per camera
GET  /api/cameras/{id}/playlist?from=&to=       segments with codecs, init and fragment byte ranges
GET  /api/segments/{id}/media          a segment file (Range, ETag); 410 with its deletion
GET  /api/cameras/{id}/frame.jpg?t=    the frame shown at t, full resolution
GET  /api/cameras/{id}/thumbs?from=&to=  scrub previews: per segment, capture times and sprite URL
GET  /api/segments/{id}/thumbs.jpg     a segment's thumbnails as one JPEG sprite
GET  /api/search/motion?cameras=&from=&to=&cells=x.y,x0.y0-x1.y1&min=   when something moved there
POST /api/cases, GET /api/cases, GET /api/cases/{case}          case files (č.j.)
POST /api/bookmarks, GET /api/bookmarks?camera=&case=, DELETE /api/bookmarks/{id}
`)
	}
	if s.opt.Exports != nil {
		b.WriteString(`POST /api/exports {"cameras","from","to","reason","case","recipient","lock"}   evidence export job -> 202 {"id"}
GET  /api/exports, GET /api/exports/{id}   jobs: state, progress, ETA; DELETE cancels
GET  /api/exports/{id}/download       the signed bundle (audited)
`)
	}
	if s.opt.ConfigStatus != nil {
		b.WriteString(`GET  /api/config/status               the last configuration reload: applied, or every problem with its path (admin)
`)
	}
	if s.opt.ConfigCameras != nil {
		b.WriteString(`GET  /api/config/cameras, POST /api/config/cameras   the configured cameras; create one (admin)
GET|PUT|DELETE /api/config/cameras/{id}   one camera; PUT and DELETE need If-Match (admin)
POST /api/config/validate             check a camera before saving it: 422 {problems:[{path,message}]} (admin)
GET  /admin                           camera administration page (browser, admin)
GET  /api/admin/cameras               every camera's ingest and recording state and stored bytes (admin)
`)
	}
	if s.opt.CameraAdmin != nil {
		b.WriteString(`POST /api/cameras/probe {"url","username","password","transport","tls_fingerprint"}   try a camera stream (admin)
GET  /api/onvif/discover?iface=       ONVIF cameras on the camera network not yet added (admin)
POST /api/onvif/profiles {"xaddr"|"host","username","password"}   a camera's media profiles, main and sub suggested (admin)
`)
	}
	b.WriteString(`GET  /audit                           access log page (auditor)
GET  /api/audit?from=&to=&user=&camera=&action=&after=&limit=&format=json|csv
                                      access log rows in order, a page at a time (auditor)
GET  /api/audit/verify                check the access log's hash chain (auditor)
GET  /healthz                          health (JSON, counts only; public)
GET  /metrics                         Prometheus metrics (admin, or the metrics bearer token)
`)
	io.WriteString(w, b.String())
}

// handleConfigStatus answers GET /api/config/status: whether the last configuration
// reload was applied and, when not, every problem with its path.
func (s *Server) handleConfigStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.opt.ConfigStatus())
}

// handleCameras lists the cameras this user may watch; the others do not exist for them.
func (s *Server) handleCameras(w http.ResponseWriter, r *http.Request) {
	visible := scopeOf(r)
	out := []cameraJSON{}
	for _, c := range s.opt.Cameras.Cameras() {
		if visible(c.ID) {
			cam := s.cameraJSON(c)
			s.withHolderStatus(&cam)
			out = append(out, cam)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// handleCamera shows one camera; the guard has checked that it exists and is granted.
func (s *Server) handleCamera(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if c, ok := s.cameras.find(id); ok {
		cam := s.cameraJSON(c)
		s.withHolderStatus(&cam)
		writeJSON(w, http.StatusOK, cam)
		return
	}
	// Removed by a reload between the guard and here.
	writeError(w, http.StatusNotFound, "unknown camera "+quote(id))
}

// healthJSON answers /healthz: the process serves, and how many cameras stream. It is 200
// as long as townwatch runs, so a supervisor does not restart it for a camera that is down;
// camera trouble shows as "degraded" and in the metrics. It is public, so it carries
// counts only: which cameras exist is for logged-in users.
type healthJSON struct {
	Status    string `json:"status"` // "ok", or "degraded" when a camera is down, a recorder is not recording, or Reasons is not empty
	Cameras   int    `json:"cameras"`
	Streaming int    `json:"streaming"`
	Down      int    `json:"down"` // cameras whose main stream is not streaming
	// NotRecording counts recorders that should record and do not (disk full, write
	// errors, no keyframes, or waiting for a camera that is down).
	NotRecording int `json:"not_recording"`
	// Reasons are what else degrades the system (a catalog rebuilt at start, failing
	// catalog writes); omitted when nothing does.
	Reasons []string `json:"reasons,omitempty"`
}

// recorderLosing are the recording states in which footage that should be kept is not.
var recorderLosing = map[string]bool{"waiting": true, "paused_disk_full": true, "error": true, "no_keyframes": true}

func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	cams := s.opt.Cameras.Cameras()
	h := healthJSON{Status: "ok", Cameras: len(cams)}
	for _, c := range cams {
		if c.Main.Status().State == ingest.StateStreaming {
			h.Streaming++
		} else {
			h.Down++
		}
		if c.Recording != nil && recorderLosing[c.Recording().State] {
			h.NotRecording++
		}
	}
	if s.opt.Degraded != nil {
		h.Reasons = s.opt.Degraded()
	}
	if h.Down > 0 || h.NotRecording > 0 || len(h.Reasons) > 0 {
		h.Status = "degraded"
	}
	writeJSON(w, http.StatusOK, h)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	// Compact, not indented: indenting doubled the time of a 2 h playlist (7 200 fragments,
	// 1.3 MiB), and the player, not a person, reads these answers (jq formats for people).
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// quote renders a user-supplied value for an error message: quoted, control characters
// escaped and cut to a sane length (the JSON encoder escapes markup).
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strconv.Quote(s)
}
