package viewer

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// BookmarkStore is the catalog's bookmarks and cases.
type BookmarkStore interface {
	AddCase(ctx context.Context, k catalog.Case) (int64, error)
	Cases(ctx context.Context) ([]catalog.Case, error)
	CaseByID(ctx context.Context, id int64) (catalog.Case, error)
	AddBookmark(ctx context.Context, b catalog.Bookmark) (int64, error)
	Bookmarks(ctx context.Context, q catalog.BookmarkQuery) ([]catalog.Bookmark, error)
	Bookmark(ctx context.Context, id int64) (catalog.Bookmark, error)
	RemoveBookmark(ctx context.Context, id int64) error
}

// Bookmarks and cases are an officer's notes while searching footage:
//
//	POST   /api/cases          {ref, title}             a case file by its reference (č.j.)
//	GET    /api/cases
//	GET    /api/cases/{case}   the case and its bookmarks the user may see
//	POST   /api/bookmarks      {camera, from, to, title, note, case_id}
//	GET    /api/bookmarks?camera=&case=
//	DELETE /api/bookmarks/{id}
//
// A bookmark is about one camera and visible to whoever may play that camera back; it is
// removed by its author or by whoever may manage evidence locks on the camera.

type caseJSON struct {
	ID        int64          `json:"id"`
	Ref       string         `json:"ref"`
	Title     string         `json:"title"`
	Author    string         `json:"author"`
	Created   time.Time      `json:"created"`
	Bookmarks []bookmarkJSON `json:"bookmarks,omitempty"`
}

type bookmarkJSON struct {
	ID      int64     `json:"id"`
	Camera  string    `json:"camera"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Title   string    `json:"title"`
	Note    string    `json:"note"`
	CaseID  int64     `json:"case_id,omitempty"`
	Author  string    `json:"author"`
	Created time.Time `json:"created"`
	Play    string    `json:"play"` // the player at the bookmark
}

func toBookmarkJSON(b catalog.Bookmark) bookmarkJSON {
	return bookmarkJSON{ID: b.ID, Camera: b.Camera, From: b.From.UTC(), To: b.To.UTC(), Title: b.Title, Note: b.Note, CaseID: b.CaseID,
		Author: b.Actor, Created: b.Created.UTC(),
		Play: "/playback?camera=" + b.Camera + "&t=" + b.From.UTC().Format(time.RFC3339Nano)}
}

// maxNoteLength bounds a bookmark's note.
const maxNoteLength = 4000

func (s *Server) handleCaseCreate(w http.ResponseWriter, r *http.Request) {
	var req struct{ Ref, Title string }
	if problem := decodeJSONBody(w, r, maxPlaybackStartBody, &req); problem != "" {
		writeError(w, http.StatusBadRequest, problem)
		return
	}
	req.Ref, req.Title = strings.TrimSpace(req.Ref), strings.TrimSpace(req.Title)
	switch {
	case req.Ref == "":
		writeError(w, http.StatusBadRequest, "ref: required, the case reference (č.j.)")
		return
	case len(req.Ref) > maxReasonLength || len(req.Title) > maxReasonLength:
		writeError(w, http.StatusBadRequest, "ref: at most 500 bytes (and title too)")
		return
	}
	p := principalFrom(r.Context())
	id, err := s.opt.Playback.Bookmarks.AddCase(r.Context(), catalog.Case{Ref: req.Ref, Title: req.Title, Actor: p.Name, Created: s.auth.now()})
	if errors.Is(err, catalog.ErrCaseExists) {
		writeError(w, http.StatusConflict, "ref: "+err.Error())
		return
	}
	if err != nil {
		s.opt.Playback.fail(w, "case", err)
		return
	}
	// A case holds no footage: its row is written once it exists, so a refused duplicate
	// leaves no row claiming a case was made.
	if err := s.appendAudit(r, p, catalog.AuditEntry{Action: access.AuditCaseCreate, Case: req.Ref}); err != nil {
		s.log.Error("audit: recording a new case", "case", req.Ref, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the case was created but the access log cannot be written; see the server log")
		return
	}
	writeJSON(w, http.StatusCreated, map[string]int64{"id": id})
}

func (pb *Playback) handleCases(w http.ResponseWriter, r *http.Request) {
	cases, err := pb.Bookmarks.Cases(r.Context())
	if err != nil {
		pb.fail(w, "cases", err)
		return
	}
	out := make([]caseJSON, len(cases))
	for i, k := range cases {
		out[i] = caseJSON{ID: k.ID, Ref: k.Ref, Title: k.Title, Author: k.Actor, Created: k.Created.UTC()}
	}
	writeJSON(w, http.StatusOK, out)
}

// visibleCameras are the configured cameras this request may play back.
func (pb *Playback) visibleCameras(r *http.Request) []string {
	visible := scopeOf(r)
	out := []string{}
	for _, c := range pb.cameras.ids() {
		if visible(c) {
			out = append(out, c)
		}
	}
	return out
}

func (pb *Playback) handleCase(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("case"), 10, 64)
	k, err2 := pb.Bookmarks.CaseByID(r.Context(), id)
	if err != nil || errors.Is(err2, catalog.ErrNotFound) {
		writeError(w, http.StatusNotFound, "unknown case "+quote(r.PathValue("case")))
		return
	}
	if err2 != nil {
		pb.fail(w, "case", err2)
		return
	}
	marks, err := pb.Bookmarks.Bookmarks(r.Context(), catalog.BookmarkQuery{CaseID: k.ID, Cameras: pb.visibleCameras(r)})
	if err != nil {
		pb.fail(w, "case", err)
		return
	}
	out := caseJSON{ID: k.ID, Ref: k.Ref, Title: k.Title, Author: k.Actor, Created: k.Created.UTC(), Bookmarks: []bookmarkJSON{}}
	for _, b := range marks {
		out.Bookmarks = append(out.Bookmarks, toBookmarkJSON(b))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleBookmarkCreate(w http.ResponseWriter, r *http.Request) {
	pb := s.opt.Playback
	var req struct {
		Camera, From, To, Title, Note string
		CaseID                        int64 `json:"case_id"`
	}
	if problem := decodeJSONBody(w, r, maxJSONBookmark, &req); problem != "" {
		writeError(w, http.StatusBadRequest, problem)
		return
	}
	req.Title = strings.TrimSpace(req.Title)
	switch {
	case req.Title == "":
		writeError(w, http.StatusBadRequest, "title: required")
		return
	case len(req.Title) > maxReasonLength || len(req.Note) > maxNoteLength:
		writeError(w, http.StatusBadRequest, "title: at most 500 bytes; note: at most 4000")
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
		*f.dst = t
	}
	if !to.After(from) {
		writeError(w, http.StatusBadRequest, "to: must be after from")
		return
	}
	if !pb.known(req.Camera) || !scopeOf(r)(req.Camera) {
		writeError(w, http.StatusNotFound, "unknown camera "+quote(req.Camera))
		return
	}
	p := principalFrom(r.Context())
	if err := s.appendAudit(r, p, catalog.AuditEntry{Action: access.AuditBookmarkCreate, Camera: req.Camera, From: from, To: to}); err != nil {
		writeError(w, http.StatusServiceUnavailable, "the access log cannot be written; the bookmark is not created")
		return
	}
	id, err := pb.Bookmarks.AddBookmark(r.Context(), catalog.Bookmark{Camera: req.Camera, From: from, To: to, Title: req.Title, Note: req.Note,
		CaseID: req.CaseID, Actor: p.Name, Created: s.auth.now()})
	if errors.Is(err, catalog.ErrNotFound) {
		writeError(w, http.StatusBadRequest, "case_id: no case "+strconv.FormatInt(req.CaseID, 10))
		return
	}
	if err != nil {
		pb.fail(w, "bookmark", err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]int64{"id": id})
}

// maxJSONBookmark bounds POST /api/bookmarks: a note of 4000 bytes and the rest.
const maxJSONBookmark = 16 << 10

func (pb *Playback) handleBookmarks(w http.ResponseWriter, r *http.Request) {
	q := catalog.BookmarkQuery{Cameras: pb.visibleCameras(r)}
	if c := r.URL.Query().Get("camera"); c != "" {
		if !pb.known(c) || !scopeOf(r)(c) {
			writeError(w, http.StatusNotFound, "unknown camera "+quote(c))
			return
		}
		q.Cameras = []string{c}
	}
	if raw := r.URL.Query().Get("case"); raw != "" {
		id, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || id <= 0 {
			writeError(w, http.StatusBadRequest, "case: "+quote(raw)+" is not a case id")
			return
		}
		q.CaseID = id
	}
	marks, err := pb.Bookmarks.Bookmarks(r.Context(), q)
	if err != nil {
		pb.fail(w, "bookmarks", err)
		return
	}
	out := []bookmarkJSON{}
	for _, b := range marks {
		out = append(out, toBookmarkJSON(b))
	}
	writeJSON(w, http.StatusOK, out)
}

// bookmarkCamera finds a bookmark's camera for the guard (byID), and hides a bookmark its
// caller may not remove: only its author, or whoever manages the camera's locks, may.
func (pb *Playback) bookmarkCamera(r *http.Request, id int64) (string, bool, error) {
	b, err := pb.Bookmarks.Bookmark(r.Context(), id)
	if err != nil {
		return "", false, err
	}
	p := principalFrom(r.Context())
	return b.Camera, p.Name == b.Actor || access.Allowed(p, access.ActionLockManage, b.Camera), nil
}

func (s *Server) handleBookmarkDelete(w http.ResponseWriter, r *http.Request) {
	pb := s.opt.Playback
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64) // the guard resolved it
	b, err := pb.Bookmarks.Bookmark(r.Context(), id)
	if err != nil {
		pb.fail(w, "bookmark", err)
		return
	}
	if err := s.appendAudit(r, principalFrom(r.Context()), catalog.AuditEntry{Action: access.AuditBookmarkDelete, Camera: b.Camera, From: b.From, To: b.To}); err != nil {
		writeError(w, http.StatusServiceUnavailable, "the access log cannot be written; the bookmark stays")
		return
	}
	if err := pb.Bookmarks.RemoveBookmark(r.Context(), id); err != nil {
		pb.fail(w, "bookmark", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
