package viewer

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"github.com/townwatch/townwatch/ingest"
)

// cameraJSON is one camera in /api/cameras: the main stream's status at the top level
// (state, reason, codec, resolution, fps, bitrate, reconnects, last frame), the sub stream's
// in "sub" when one is configured. URLs in it are redacted; it never holds a password.
type cameraJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	ingest.Status
	Sub       *ingest.Status `json:"sub,omitempty"`
	Recording *Recording     `json:"recording,omitempty"`
}

func (c Camera) json() cameraJSON {
	out := cameraJSON{ID: c.ID, Name: c.Name, Status: c.Main.Status()}
	if c.Sub != nil {
		sub := c.Sub.Status()
		out.Sub = &sub
	}
	if c.Recording != nil {
		rec := c.Recording()
		out.Recording = &rec
	}
	return out
}

// handleIndex lists what the server offers, until the live wall (web UI) takes over "/".
func (s *Server) handleIndex(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, `townwatch

GET /api/cameras        every camera's ingest and recording status (JSON)
GET /api/cameras/{id}   one camera
GET /healthz            health (JSON)
GET /metrics            Prometheus metrics
`)
}

func (s *Server) handleCameras(w http.ResponseWriter, _ *http.Request) {
	out := make([]cameraJSON, len(s.cameras))
	for i, c := range s.cameras {
		out[i] = c.json()
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleCamera(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	for _, c := range s.cameras {
		if c.ID == id {
			writeJSON(w, http.StatusOK, c.json())
			return
		}
	}
	writeError(w, http.StatusNotFound, "unknown camera "+quote(id))
}

// healthJSON answers /healthz: the process serves, and how many cameras stream. It is 200
// as long as townwatch runs, so a supervisor does not restart it for a camera that is down;
// camera trouble shows as "degraded" and in the metrics.
type healthJSON struct {
	Status    string   `json:"status"` // "ok", or "degraded" when a camera's main stream is not streaming
	Cameras   int      `json:"cameras"`
	Streaming int      `json:"streaming"`
	Down      []string `json:"down,omitempty"` // ids of cameras whose main stream is not streaming
}

func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	h := healthJSON{Status: "ok", Cameras: len(s.cameras)}
	for _, c := range s.cameras {
		if c.Main.Status().State == ingest.StateStreaming {
			h.Streaming++
		} else {
			h.Down = append(h.Down, c.ID)
		}
	}
	if len(h.Down) > 0 {
		h.Status = "degraded"
	}
	writeJSON(w, http.StatusOK, h)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to do
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
