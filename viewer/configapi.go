package viewer

import (
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// The camera configuration API, for the admin role (access.ActionAdmin):
//
//	GET    /api/config/cameras          every camera of the configuration, and its revision (ETag)
//	POST   /api/config/cameras          create a camera: 201
//	GET    /api/config/cameras/{id}     one camera
//	PUT    /api/config/cameras/{id}     replace a camera kept in cameras.d (If-Match required)
//	DELETE /api/config/cameras/{id}     remove a camera kept in cameras.d (If-Match required)
//	POST   /api/config/validate         check a camera (or, with no body, the files as they are)
//
// Bodies are JSON with the keys of a camera in the YAML; main.password and sub.password
// are accepted and never returned. Problems answer 422 {problems: [{path, message}]}, a
// stale If-Match 412, a camera of the hand-written file 409. Every change is audited
// (config.change, with the camera before and after, never a password) before it is
// written; the store applies it through the server's reload path.

// maxCameraBody bounds a camera's JSON: a few URLs, zones and masks.
const maxCameraBody = 256 << 10

func (s *Server) handleConfigCameras(w http.ResponseWriter, _ *http.Request) {
	cams, rev, err := s.opt.ConfigCameras.List()
	if err != nil {
		s.configError(w, err)
		return
	}
	out := make([]map[string]any, len(cams))
	for i, c := range cams {
		out[i] = cameraEntryJSON(c)
	}
	w.Header().Set("ETag", `"`+rev+`"`)
	writeJSON(w, http.StatusOK, map[string]any{"revision": rev, "cameras": out})
}

func (s *Server) handleConfigCamera(w http.ResponseWriter, r *http.Request) {
	cams, rev, err := s.opt.ConfigCameras.List()
	if err != nil {
		s.configError(w, err)
		return
	}
	id := r.PathValue("id")
	for _, c := range cams {
		if c.Doc["id"] == id {
			w.Header().Set("ETag", `"`+rev+`"`)
			writeJSON(w, http.StatusOK, cameraEntryJSON(c))
			return
		}
	}
	writeError(w, http.StatusNotFound, "unknown camera "+quote(id))
}

func cameraEntryJSON(c configs.CameraEntry) map[string]any {
	out := make(map[string]any, len(c.Doc)+2)
	for k, v := range c.Doc {
		out[k] = v
	}
	out["hand_written"] = c.HandWritten
	return out
}

func (s *Server) handleConfigCameraCreate(w http.ResponseWriter, r *http.Request) {
	body, ok := readCameraBody(w, r)
	if !ok {
		return
	}
	ch, err := s.opt.ConfigCameras.Create(body, ifMatch(r), s.auditConfig(r, "create"))
	s.configAnswer(w, http.StatusCreated, ch, err)
}

func (s *Server) handleConfigCameraReplace(w http.ResponseWriter, r *http.Request) {
	match, ok := requireIfMatch(w, r)
	if !ok {
		return
	}
	body, ok := readCameraBody(w, r)
	if !ok {
		return
	}
	ch, err := s.opt.ConfigCameras.Replace(r.PathValue("id"), body, match, s.auditConfig(r, "replace"))
	s.configAnswer(w, http.StatusOK, ch, err)
}

func (s *Server) handleConfigCameraDelete(w http.ResponseWriter, r *http.Request) {
	match, ok := requireIfMatch(w, r)
	if !ok {
		return
	}
	ch, err := s.opt.ConfigCameras.Delete(r.PathValue("id"), match, s.auditConfig(r, "delete"))
	s.configAnswer(w, http.StatusOK, ch, err)
}

func (s *Server) handleConfigValidate(w http.ResponseWriter, r *http.Request) {
	body, ok := readCameraBody(w, r)
	if !ok {
		return
	}
	if err := s.opt.ConfigCameras.Check(body); err != nil {
		s.configError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"valid": true})
}

func readCameraBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCameraBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "the body is larger than 256 KiB")
		return nil, false
	}
	return body, true
}

// ifMatch is the revision in If-Match, without quotes or a weak marker; "" for none.
func ifMatch(r *http.Request) string {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	return strings.Trim(strings.TrimPrefix(v, "W/"), `"`)
}

// requireIfMatch: a change of an existing camera must say which revision it was read
// at, or two administrators would overwrite each other unknowingly.
func requireIfMatch(w http.ResponseWriter, r *http.Request) (string, bool) {
	m := ifMatch(r)
	if m == "" {
		writeError(w, http.StatusPreconditionRequired, "If-Match is required: send the revision (ETag) of GET /api/config/cameras")
		return "", false
	}
	return m, true
}

// auditConfig makes the audit of one change: a config.change row with the camera before
// and after (passwords are never in them), committed before the files are written.
func (s *Server) auditConfig(r *http.Request, op string) configs.ChangeAudit {
	return func(before, after map[string]any) error {
		camera, details := configs.ChangeDetails(op, before, after)
		err := s.appendAudit(r, principalFrom(r.Context()), catalog.AuditEntry{Action: access.AuditConfigChange, Camera: camera, Details: details})
		if err != nil {
			s.log.Error("audit: recording a configuration change", "err", err)
			return errAuditUnwritable
		}
		return nil
	}
}

var errAuditUnwritable = errors.New("the access log cannot be written; nothing was changed")

func (s *Server) configAnswer(w http.ResponseWriter, code int, ch configs.Change, err error) {
	if err != nil {
		s.configError(w, err)
		return
	}
	out := map[string]any{"revision": ch.Revision, "applied": ch.Applied == nil}
	if ch.After != nil {
		out["camera"] = ch.After
	}
	if ch.Applied != nil {
		out["apply_error"] = ch.Applied.Error()
	}
	w.Header().Set("ETag", `"`+ch.Revision+`"`)
	if code == http.StatusCreated && ch.After != nil {
		id, _ := ch.After["id"].(string)
		w.Header().Set("Location", "/api/config/cameras/"+id)
	}
	writeJSON(w, code, out)
}

// problemJSON is one problem of a refused configuration.
type problemJSON struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (s *Server) configError(w http.ResponseWriter, err error) {
	var ve *configs.ValidationError
	var de *configs.DecodeError
	switch {
	case errors.As(err, &ve):
		writeProblems(w, ve.Problems)
	case errors.As(err, &de):
		writeProblems(w, de.Problems)
	case errors.Is(err, configs.ErrRevision):
		writeError(w, http.StatusPreconditionFailed, err.Error())
	case errors.Is(err, configs.ErrUnknownCamera):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, configs.ErrHandWritten), errors.Is(err, configs.ErrNoConfigFile):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, errAuditUnwritable):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		// A file that cannot be read or decoded (a broken hand edit): its text names the
		// file and line, never a password (the decoder does not quote values).
		s.log.Error("camera configuration", "err", err)
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"problems": []problemJSON{{Message: err.Error()}}})
	}
}

func writeProblems(w http.ResponseWriter, ps []configs.Problem) {
	out := make([]problemJSON, len(ps))
	for i, p := range ps {
		out[i] = problemJSON{Path: p.Path, Message: p.Message}
	}
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"problems": out})
}
