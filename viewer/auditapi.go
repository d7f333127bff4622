package viewer

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// auditEntryJSON is one row of GET /api/audit.
type auditEntryJSON struct {
	ID        int64           `json:"id"`
	Time      time.Time       `json:"time"`
	Actor     string          `json:"actor"`
	Roles     []string        `json:"roles"`
	Session   string          `json:"session,omitempty"`
	Client    string          `json:"client,omitempty"`
	Action    string          `json:"action"`
	Camera    string          `json:"camera,omitempty"`
	From      *time.Time      `json:"from,omitempty"`
	To        *time.Time      `json:"to,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	Case      string          `json:"case,omitempty"`
	Recipient string          `json:"recipient,omitempty"`
	Outcome   string          `json:"outcome"`
	Details   json.RawMessage `json:"details"`
	Hash      string          `json:"hash"`
}

func toAuditJSON(e catalog.AuditEntry) auditEntryJSON {
	out := auditEntryJSON{ID: e.ID, Time: e.Time.UTC(), Actor: e.Actor, Roles: e.Roles, Session: e.Session, Client: e.Client,
		Action: e.Action, Camera: e.Camera, Reason: e.Reason, Case: e.Case, Recipient: e.Recipient, Outcome: e.Outcome,
		Details: e.Details, Hash: e.Hash}
	if out.Roles == nil {
		out.Roles = []string{}
	}
	if len(out.Details) == 0 {
		out.Details = json.RawMessage("{}")
	}
	if !e.From.IsZero() {
		f := e.From.UTC()
		out.From = &f
	}
	if !e.To.IsZero() {
		t := e.To.UTC()
		out.To = &t
	}
	return out
}

// parseAuditQuery reads GET /api/audit's parameters; the message names the one at fault.
func parseAuditQuery(v url.Values) (catalog.AuditQuery, string) {
	q := catalog.AuditQuery{Actor: v.Get("user"), Camera: v.Get("camera"), Action: v.Get("action")}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		if raw := v.Get(p.name); raw != "" {
			t, problem := parseTimeParam(p.name, raw)
			if problem != "" {
				return q, problem
			}
			*p.dst = t
		}
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From) {
		return q, "to must be after from"
	}
	if raw := v.Get("after"); raw != "" {
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || n < 0 {
			return q, "after: " + quote(raw) + " is not a row id"
		}
		q.AfterID = n
	}
	if raw := v.Get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > catalog.MaxAuditLimit {
			return q, "limit: " + quote(raw) + " is not a number from 1 to " + strconv.Itoa(catalog.MaxAuditLimit)
		}
		q.Limit = n
	}
	if f := v.Get("format"); f != "" && f != "json" && f != "csv" {
		return q, "format: " + quote(f) + " is not json or csv"
	}
	return q, ""
}

// Times the catalog can store: int64 nanoseconds reach from 1677 to 2262. A time outside
// is a client error, not a server fault.
var (
	minQueryTime = time.Date(1678, 1, 1, 0, 0, 0, 0, time.UTC)
	maxQueryTime = time.Date(2261, 12, 31, 23, 59, 59, 0, time.UTC)
)

// parseTimeParam reads an RFC 3339 query parameter in the storable range.
func parseTimeParam(name, raw string) (time.Time, string) {
	t, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		return t, name + ": " + quote(raw) + " is not an RFC 3339 time (e.g. 2026-11-23T14:05:00Z)"
	}
	if t.Before(minQueryTime) || t.After(maxQueryTime) {
		return t, name + ": " + quote(raw) + " is outside the years 1678 to 2261"
	}
	return t, ""
}

// handleAudit answers GET /api/audit for the auditor: rows in id order, a page at a time
// (follow next_after), as JSON or CSV (format=csv). Reading the log is itself logged.
func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request) {
	q, problem := parseAuditQuery(r.URL.Query())
	if problem != "" {
		writeError(w, http.StatusBadRequest, problem)
		return
	}
	asCSV := r.URL.Query().Get("format") == "csv"
	action := access.AuditRead
	if asCSV {
		action = access.AuditExport
	}
	details, _ := json.Marshal(map[string]string{"query": r.URL.RawQuery})
	if err := s.appendAudit(r, principalFrom(r.Context()), catalog.AuditEntry{Action: action, Details: details}); err != nil {
		s.log.Error("audit: recording an audit read", "err", err)
		writeError(w, http.StatusServiceUnavailable, "the access log cannot be written; reading it is refused too")
		return
	}
	entries, err := s.opt.Access.Audit.Entries(r.Context(), q)
	if err != nil {
		s.log.Error("reading the audit log", "err", err)
		writeError(w, http.StatusInternalServerError, "reading the audit log failed; see the server log")
		return
	}
	var next *int64
	limit := q.Limit
	if limit == 0 {
		limit = catalog.DefaultAuditLimit
	}
	if len(entries) == limit {
		id := entries[len(entries)-1].ID
		next = &id
	}
	if asCSV {
		writeAuditCSV(w, entries, next)
		return
	}
	out := make([]auditEntryJSON, len(entries))
	for i, e := range entries {
		out[i] = toAuditJSON(e)
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": out, "next_after": next})
}

// auditCSVHeader names the CSV columns, in the order of the log's fields.
var auditCSVHeader = []string{"id", "time", "actor", "roles", "session", "client", "action", "camera", "from", "to",
	"reason", "case", "recipient", "outcome", "details", "hash"}

func writeAuditCSV(w http.ResponseWriter, entries []catalog.AuditEntry, next *int64) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="townwatch-audit.csv"`)
	w.Header().Set("Cache-Control", "no-store")
	if next != nil {
		w.Header().Set("X-Next-After", strconv.FormatInt(*next, 10))
	}
	cw := csv.NewWriter(w)
	_ = cw.Write(auditCSVHeader)
	for _, e := range entries {
		_ = cw.Write([]string{strconv.FormatInt(e.ID, 10), e.Time.UTC().Format(time.RFC3339Nano), csvSafe(e.Actor),
			strings.Join(e.Roles, ","), e.Session, e.Client, e.Action, csvSafe(e.Camera), csvTime(e.From), csvTime(e.To),
			csvSafe(e.Reason), csvSafe(e.Case), csvSafe(e.Recipient), e.Outcome, csvSafe(string(e.Details)), e.Hash})
	}
	cw.Flush()
}

func csvTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// csvSafe defuses a field a spreadsheet would run as a formula (a reason or a user name
// starting with = + - @): the auditor opens this file in a spreadsheet.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// handleAuditVerify answers GET /api/audit/verify: the chain checked with the key, and
// the first bad row if any.
func (s *Server) handleAuditVerify(w http.ResponseWriter, r *http.Request) {
	if err := s.appendAudit(r, principalFrom(r.Context()), catalog.AuditEntry{Action: access.AuditVerify}); err != nil {
		s.log.Error("audit: recording a verification", "err", err)
		writeError(w, http.StatusServiceUnavailable, "the access log cannot be written")
		return
	}
	v, err := s.opt.Access.Audit.Verify(r.Context())
	if err != nil {
		s.log.Error("verifying the audit log", "err", err)
		writeError(w, http.StatusInternalServerError, "verifying the audit log failed; see the server log")
		return
	}
	out := map[string]any{"ok": v.FirstBad == nil, "rows": v.Rows, "head_id": v.HeadID, "head": v.Head}
	if v.FirstBad != nil {
		out["first_bad"] = map[string]any{"id": v.FirstBad.ID, "reason": v.FirstBad.Reason}
	}
	writeJSON(w, http.StatusOK, out)
}
