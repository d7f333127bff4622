package viewer

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// handleLogin answers POST /api/login {"username","password"}: 200 with the session
// cookie and who logged in; 401 for a wrong name or password (the same answer for both,
// in the same time); 429 with Retry-After when throttled. No answer or log line ever
// holds the password.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if problem := decodeJSONBody(w, r, maxLoginBody, &req); problem != "" {
		// The decoder's message may quote a piece of the body, which may be the password.
		writeError(w, http.StatusBadRequest, "the body must be JSON {\"username\": …, \"password\": …} with Content-Type application/json")
		return
	}
	client := s.auth.clientAddr(r)
	if ok, retry := s.auth.limiter.Allow(client, req.Username); !ok {
		s.loginThrottled(r, client, retry)
		w.Header().Set("Retry-After", strconv.Itoa(int(retry/time.Second)))
		writeError(w, http.StatusTooManyRequests, "too many login attempts; try again in "+strconv.Itoa(int(retry/time.Second))+" s")
		return
	}
	var user catalog.User
	var match bool
	var lookupErr error
	err := s.auth.limiter.Check(r.Context(), func() {
		user, lookupErr = s.opt.Access.Users.UserByName(r.Context(), req.Username)
		if lookupErr != nil {
			access.CheckUnknown(req.Password)
			return
		}
		match, lookupErr = access.CheckPassword(user.PasswordHash, req.Password)
	})
	if err != nil {
		return // the client went away while waiting
	}
	switch {
	case lookupErr != nil && !errors.Is(lookupErr, catalog.ErrNotFound):
		s.log.Error("login: reading the account", "err", lookupErr)
		writeError(w, http.StatusServiceUnavailable, "accounts cannot be read; see the server log")
		return
	case lookupErr != nil || !match || user.Disabled:
		s.loginFailed(r, req.Username, lookupErr == nil, user.Disabled)
		writeError(w, http.StatusUnauthorized, "wrong user name or password")
		return
	}
	token, hash, err := access.NewToken()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "cannot make a session")
		return
	}
	now := s.auth.now()
	p := principalOf(user, hash)
	// The row first: a login the log does not show must not happen.
	if err := s.appendAudit(r, p, catalog.AuditEntry{Action: access.AuditLoginOK}); err != nil {
		s.log.Error("audit: recording a login", "err", err)
		writeError(w, http.StatusServiceUnavailable, "the access log cannot be written; login refused")
		return
	}
	if err := s.opt.Access.Users.CreateSession(r.Context(), catalog.Session{TokenHash: hash, UserID: user.ID,
		Created: now, LastSeen: now, Client: client}); err != nil {
		s.log.Error("login: storing the session", "err", err)
		writeError(w, http.StatusServiceUnavailable, "cannot store the session; see the server log")
		return
	}
	http.SetCookie(w, s.sessionCookie(token, int(sessionAbsolute/time.Second)))
	s.log.Info("login", "user", user.Name, "client", client, "session", access.SessionLabel(hash))
	writeJSON(w, http.StatusOK, meOf(p))
}

// loginFailed records a failed login. The attempted name is recorded only when it is an
// account: people type their password into the name field, and the log must not keep it.
func (s *Server) loginFailed(r *http.Request, name string, known, disabled bool) {
	e := catalog.AuditEntry{Action: access.AuditLoginFail, Outcome: catalog.AuditDenied, Actor: "unknown"}
	why := "wrong password"
	switch {
	case !known:
		why = "no such account"
	case disabled:
		why = "account disabled"
	}
	if known {
		e.Actor = name
	}
	e.Details, _ = json.Marshal(map[string]string{"why": why})
	if err := s.appendAudit(r, nil, e); err != nil {
		s.log.Error("audit: recording a failed login", "err", err)
	}
	s.log.Info("login failed", "client", s.auth.clientAddr(r), "known_account", known)
}

// sessionCookie is the login cookie: HttpOnly (no script reads it), SameSite=Strict (no
// other site's page sends it), Secure under TLS.
func (s *Server) sessionCookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: s.auth.cookieName(), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.opt.Access.SecureCookies}
}

// handleLogout answers POST /api/logout: the session is deleted, its cookie cleared and
// its live views closed at once.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	if err := s.appendAudit(r, p, catalog.AuditEntry{Action: access.AuditLogout}); err != nil {
		s.log.Error("audit: recording a logout", "err", err)
	}
	if err := s.opt.Access.Users.DeleteSession(r.Context(), p.Session); err != nil && !errors.Is(err, catalog.ErrNotFound) {
		s.log.Error("logout: deleting the session", "err", err)
		writeError(w, http.StatusServiceUnavailable, "cannot end the session; see the server log")
		return
	}
	s.closeLive(func(owner string) bool { return owner == p.Session }, "logged out")
	http.SetCookie(w, s.sessionCookie("", -1))
	w.WriteHeader(http.StatusNoContent)
}

// handleMe answers GET /api/me: the account's name, roles, cameras and allowed actions.
func (s *Server) handleMe(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, meOf(principalFrom(r.Context())))
}

func sortStrings(s []string) { slices.Sort(s) }
