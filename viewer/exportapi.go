package viewer

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/recorder/exports"
	"github.com/townwatch/townwatch/viewer/access"
)

// Exports serves evidence exports as background jobs:
//
//	POST   /api/exports                {cameras, from, to, reason, case, recipient, lock}
//	GET    /api/exports                the jobs this user may see, newest first
//	GET    /api/exports/{id}           state, progress, ETA
//	DELETE /api/exports/{id}           cancel
//	GET    /api/exports/{id}/download  the bundle (audited before the first byte)
//
// A job is visible to its requester, and to whoever may manage evidence locks on all of
// its cameras (a supervisor); to anyone else it does not exist.
type Exports struct {
	Manager *exports.Manager

	cameras cameraSet // the server's list
}

// maxExportRange bounds one export: a day of one camera is about 45 GB at 4 Mbit/s;
// longer is a job for the command line.
const maxExportRange = 24 * time.Hour

// maxExportBody bounds POST /api/exports.
const maxExportBody = 16 << 10

// downloadWriteTimeout: a 2 GB bundle over a 10 Mbit/s link takes about half an hour.
const downloadWriteTimeout = 2 * time.Hour

type exportRequestJSON struct {
	Cameras   []string `json:"cameras"`
	From      string   `json:"from"`
	To        string   `json:"to"`
	Reason    string   `json:"reason"`
	Case      string   `json:"case"`
	Recipient string   `json:"recipient"`
	// Lock places evidence locks over the range (default true): footage handed out as
	// evidence must still exist when the court asks for the original.
	Lock *bool `json:"lock"`
}

type exportJSON struct {
	ID         int64      `json:"id"`
	State      string     `json:"state"`
	Error      string     `json:"error,omitempty"`
	Requester  string     `json:"requester"`
	Cameras    []string   `json:"cameras"`
	From       time.Time  `json:"from"`
	To         time.Time  `json:"to"`
	Reason     string     `json:"reason"`
	Case       string     `json:"case"`
	Recipient  string     `json:"recipient"`
	Created    time.Time  `json:"created"`
	Finished   *time.Time `json:"finished,omitempty"`
	DoneBytes  int64      `json:"done_bytes"`
	TotalBytes int64      `json:"total_bytes"`
	ETASeconds float64    `json:"eta_seconds,omitempty"`
	Bytes      int64      `json:"bytes,omitempty"`
	SHA256     string     `json:"sha256,omitempty"`
	Download   string     `json:"download,omitempty"`
}

func toExportJSON(st exports.Status) exportJSON {
	out := exportJSON{ID: st.ID, State: st.State, Error: st.Error, Requester: st.Actor, Cameras: st.Cameras, From: st.From.UTC(), To: st.To.UTC(),
		Reason: st.Reason, Case: st.Case, Recipient: st.Recipient, Created: st.Created.UTC(), DoneBytes: st.Done, TotalBytes: st.Total,
		ETASeconds: st.ETA.Seconds()}
	if !st.Finished.IsZero() {
		f := st.Finished.UTC()
		out.Finished = &f
	}
	if st.State == catalog.ExportDone {
		out.Bytes, out.SHA256 = st.Bytes, st.SHA256
		out.Download = "/api/exports/" + strconv.FormatInt(st.ID, 10) + "/download"
	}
	return out
}

// exportVisible: p requested the job, or may manage locks on every camera of it.
func exportVisible(p *access.Principal, j catalog.ExportJob) bool {
	for _, c := range j.Cameras {
		if !access.Allowed(p, access.ActionExport, c) {
			return false
		}
	}
	if p.Name == j.Actor {
		return true
	}
	for _, c := range j.Cameras {
		if !access.Allowed(p, access.ActionLockManage, c) {
			return false
		}
	}
	return true
}

// exportCamera finds an export's first camera for the guard (byID), and hides a job the
// caller may not see (exportVisible checks all its cameras).
func (e *Exports) exportCamera(r *http.Request, id int64) (string, bool, error) {
	st, err := e.Manager.Status(r.Context(), id)
	if err != nil {
		return "", false, err
	}
	return st.Cameras[0], exportVisible(principalFrom(r.Context()), st.ExportJob), nil
}

func (e *Exports) known(camera string) bool { return e.cameras.known(camera) }

// handleExportCreate validates the request, writes one export.request row per camera
// (with reason, case and recipient) and queues the job: 202 with its id.
func (s *Server) handleExportCreate(w http.ResponseWriter, r *http.Request) {
	e := s.opt.Exports
	var req exportRequestJSON
	if problem := decodeJSONBody(w, r, maxExportBody, &req); problem != "" {
		writeError(w, http.StatusBadRequest, problem)
		return
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"reason", &req.Reason}, {"case", &req.Case}, {"recipient", &req.Recipient}} {
		*f.v = strings.TrimSpace(*f.v)
		if *f.v == "" {
			writeError(w, http.StatusBadRequest, f.name+": required: the access log must say why, for which case (č.j.) and to whom footage is handed out")
			return
		}
		if len(*f.v) > maxReasonLength {
			writeError(w, http.StatusBadRequest, f.name+": at most 500 bytes")
			return
		}
	}
	if len(req.Cameras) == 0 {
		writeError(w, http.StatusBadRequest, "cameras: required, a list of camera ids")
		return
	}
	var from, to time.Time
	for _, f := range []struct {
		name, raw string
		dst       *time.Time
	}{{"from", req.From, &from}, {"to", req.To, &to}} {
		t, problem := parseTimeParam(f.name, f.raw)
		if problem != "" {
			writeError(w, http.StatusBadRequest, problem)
			return
		}
		*f.dst = t.UTC()
	}
	switch {
	case !to.After(from):
		writeError(w, http.StatusBadRequest, "to: must be after from")
		return
	case to.Sub(from) > maxExportRange:
		writeError(w, http.StatusBadRequest, "to: an export from the browser may span at most 24h; use `townwatch export` for longer")
		return
	}
	visible := scopeOf(r)
	seen := map[string]bool{}
	var cams []string
	for _, c := range req.Cameras {
		if !e.known(c) || !visible(c) {
			writeError(w, http.StatusNotFound, "unknown camera "+quote(c))
			return
		}
		if !seen[c] {
			seen[c] = true
			cams = append(cams, c)
		}
	}
	p := principalFrom(r.Context())
	var auditID int64
	for _, c := range cams {
		details, _ := json.Marshal(map[string]any{"cameras": cams, "via": "api"})
		row, err := s.appendAuditRow(r, p, catalog.AuditEntry{Action: access.AuditExportRequest, Camera: c, From: from, To: to,
			Reason: req.Reason, Case: req.Case, Recipient: req.Recipient, Details: details})
		if err != nil {
			s.log.Error("audit: recording an export request", "err", err)
			writeError(w, http.StatusServiceUnavailable, "the access log cannot be written; the export is refused")
			return
		}
		if auditID == 0 {
			auditID = row.ID
		}
	}
	id, err := e.Manager.Submit(r.Context(), exports.Request{Actor: p.Name, Cameras: cams, From: from, To: to,
		Reason: req.Reason, Case: req.Case, Recipient: req.Recipient, AuditID: auditID, Lock: req.Lock == nil || *req.Lock})
	if err != nil {
		s.log.Error("queueing an export", "err", err)
		writeError(w, http.StatusInternalServerError, "the export could not be queued; see the server log")
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"id": id, "status": "/api/exports/" + strconv.FormatInt(id, 10)})
}

func (e *Exports) handleList(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	jobs, err := e.Manager.Recent(r.Context(), 200)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "listing exports failed; see the server log")
		return
	}
	out := []exportJSON{}
	for _, st := range jobs {
		if exportVisible(p, st.ExportJob) {
			out = append(out, toExportJSON(st))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (e *Exports) jobID(r *http.Request) int64 {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64) // the guard resolved it
	return id
}

func (e *Exports) handleStatus(w http.ResponseWriter, r *http.Request) {
	st, err := e.Manager.Status(r.Context(), e.jobID(r))
	if err != nil {
		writeError(w, http.StatusInternalServerError, "reading the export failed; see the server log")
		return
	}
	writeJSON(w, http.StatusOK, toExportJSON(st))
}

func (e *Exports) handleCancel(w http.ResponseWriter, r *http.Request) {
	id := e.jobID(r)
	if err := e.Manager.Cancel(r.Context(), id); err != nil {
		if errors.Is(err, catalog.ErrExportState) {
			writeError(w, http.StatusConflict, err.Error())
			return
		}
		writeError(w, http.StatusInternalServerError, "cancelling failed: "+err.Error())
		return
	}
	e.handleStatus(w, r)
}

// handleDownload streams a finished bundle, after its export.download row is committed.
func (s *Server) handleExportDownload(w http.ResponseWriter, r *http.Request) {
	e := s.opt.Exports
	f, job, err := e.Manager.Open(r.Context(), e.jobID(r))
	if err != nil {
		if job.ID != 0 && job.State != catalog.ExportDone {
			writeError(w, http.StatusConflict, "export is "+job.State+"; only a done export can be downloaded")
			return
		}
		s.log.Error("opening an export bundle", "export", e.jobID(r), "err", err)
		writeError(w, http.StatusInternalServerError, "the bundle cannot be read; see the server log")
		return
	}
	defer f.Close()
	p := principalFrom(r.Context())
	details, _ := json.Marshal(map[string]any{"export": job.ID, "sha256": job.SHA256, "cameras": job.Cameras})
	if _, err := s.appendAuditRow(r, p, catalog.AuditEntry{Action: access.AuditExportDownload, Camera: job.Cameras[0], From: job.From, To: job.To,
		Reason: job.Reason, Case: job.Case, Recipient: job.Recipient, Details: details}); err != nil {
		s.log.Error("audit: recording a download", "err", err)
		writeError(w, http.StatusServiceUnavailable, "the access log cannot be written; the download is refused")
		return
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(downloadWriteTimeout))
	name := job.File[strings.IndexByte(job.File, '-')+1:]
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Cache-Control", "private, no-store")
	w.Header().Set("ETag", `"`+job.SHA256+`"`)
	http.ServeContent(w, r, "", job.Finished, f)
}
