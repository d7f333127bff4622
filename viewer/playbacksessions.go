package viewer

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// playbackSessionTTL is how long a reason given for playback covers a camera: the
// absolute lifetime of a login session, after which the officer logs in again anyway.
const playbackSessionTTL = 12 * time.Hour

// maxReasonLength bounds a free-text field an officer types.
const maxReasonLength = 500

// playbackSessions records, per login session and camera, that the officer has said why
// they look at recorded footage. Playback routes serve nothing without it: the audit row
// with the reason (playback.start) is committed when the session starts, before any
// footage or metadata of the camera leaves. Kept in memory: after a restart the player
// asks for the reason again, which is the safe direction.
type playbackSessions struct {
	mu    sync.Mutex
	grant map[playbackKey]time.Time // expiry
}

type playbackKey struct{ session, camera string }

func (ps *playbackSessions) active(session, camera string, now time.Time) bool {
	if session == "" {
		return false
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	exp, ok := ps.grant[playbackKey{session, camera}]
	return ok && now.Before(exp)
}

func (ps *playbackSessions) start(session, camera string, now time.Time) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for k, exp := range ps.grant { // a few entries per logged-in officer: pruning is cheap
		if !now.Before(exp) {
			delete(ps.grant, k)
		}
	}
	ps.grant[playbackKey{session, camera}] = now.Add(playbackSessionTTL)
}

// playbackAllowed answers 428 unless the request's session has started playback of every
// camera with a reason. The guard has already decided the user may play them back.
func (pb *Playback) playbackAllowed(w http.ResponseWriter, r *http.Request, cameras ...string) bool {
	p := principalFrom(r.Context())
	now := pb.now()
	for _, c := range cameras {
		if p == nil || !pb.sessions.active(p.Session, c, now) {
			writeError(w, http.StatusPreconditionRequired,
				"reason: playback of camera "+quote(c)+" needs a reason first (POST /api/playback with cameras and reason)")
			return false
		}
	}
	return true
}

func (pb *Playback) now() time.Time {
	if pb.clock != nil {
		return pb.clock()
	}
	return time.Now()
}

// maxPlaybackStartBody bounds POST /api/playback: a few camera ids and two short texts.
const maxPlaybackStartBody = 16 << 10

// playbackStartJSON is the body of POST /api/playback.
type playbackStartJSON struct {
	Cameras []string `json:"cameras"`
	Reason  string   `json:"reason"`
	Case    string   `json:"case"` // optional: the case reference (č.j.) if there is one
}

// handlePlaybackStart starts playback of cameras for the session: one playback.start row
// per camera, with the reason, committed before the answer.
func (s *Server) handlePlaybackStart(w http.ResponseWriter, r *http.Request) {
	var req playbackStartJSON
	if problem := decodeJSONBody(w, r, maxPlaybackStartBody, &req); problem != "" {
		writeError(w, http.StatusBadRequest, problem)
		return
	}
	req.Reason, req.Case = strings.TrimSpace(req.Reason), strings.TrimSpace(req.Case)
	switch {
	case len(req.Cameras) == 0:
		writeError(w, http.StatusBadRequest, "cameras: required, a list of camera ids")
		return
	case req.Reason == "":
		writeError(w, http.StatusBadRequest, "reason: required; say why you look at recorded footage (it is written to the access log)")
		return
	case len(req.Reason) > maxReasonLength || len(req.Case) > maxReasonLength:
		writeError(w, http.StatusBadRequest, "reason: at most 500 bytes (and case too)")
		return
	}
	pb := s.opt.Playback
	visible := scopeOf(r)
	for _, c := range req.Cameras {
		if !pb.known(c) || !visible(c) {
			writeError(w, http.StatusNotFound, "unknown camera "+quote(c))
			return
		}
	}
	p := principalFrom(r.Context())
	if p.Session == "" {
		writeError(w, http.StatusForbidden, "playback needs a login session")
		return
	}
	now := pb.now()
	for _, c := range req.Cameras {
		if err := s.appendAudit(r, p, catalog.AuditEntry{Action: access.AuditPlaybackStart, Camera: c, Reason: req.Reason, Case: req.Case}); err != nil {
			s.log.Error("audit: recording a playback start", "camera", c, "err", err)
			writeError(w, http.StatusServiceUnavailable, "the access log cannot be written; playback is refused")
			return
		}
		pb.sessions.start(p.Session, c, now)
	}
	writeJSON(w, http.StatusCreated, map[string]any{"cameras": req.Cameras, "expires": now.Add(playbackSessionTTL).UTC()})
}
