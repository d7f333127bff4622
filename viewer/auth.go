package viewer

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// Session lifetimes: a dispatcher's shift is at most 12 hours; a browser left alone for
// half an hour (with no live picture open) is treated as abandoned.
const (
	sessionIdle     = 30 * time.Minute
	sessionAbsolute = 12 * time.Hour
	// touchEvery bounds the catalog writes that keep a session alive: one per session per
	// minute at most, however often the page asks.
	touchEvery = time.Minute
	// pollHeader marks a request the page makes by itself (the wall's status poll): it is
	// served but does not count as activity, or an open page would never go idle.
	pollHeader = "X-Townwatch-Poll"
	// maxLoginBody bounds a login request: a name and a password fit in far less.
	maxLoginBody = 4 << 10
)

// UserStore is what the HTTP surface needs of the catalog's accounts and login sessions.
type UserStore interface {
	CountUsers(ctx context.Context) (int, error)
	UserByName(ctx context.Context, name string) (catalog.User, error)
	CreateSession(ctx context.Context, s catalog.Session) error
	SessionUser(ctx context.Context, tokenHash string) (catalog.Session, catalog.User, error)
	TouchSession(ctx context.Context, tokenHash string, at time.Time) error
	DeleteSession(ctx context.Context, tokenHash string) error
	DeleteStaleSessions(ctx context.Context, idleBefore, createdBefore time.Time) (int64, error)
}

// Auditor is the access log (access.AuditLog).
type Auditor interface {
	Append(ctx context.Context, e catalog.AuditEntry) (catalog.AuditEntry, error)
	Entries(ctx context.Context, q catalog.AuditQuery) ([]catalog.AuditEntry, error)
	Verify(ctx context.Context) (catalog.AuditVerification, error)
}

// AccessOptions configure who may use the server.
type AccessOptions struct {
	Users UserStore
	Audit Auditor
	// Now is the clock for session expiry and login throttling; nil = time.Now.
	Now func() time.Time
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is believed; from any
	// other address the header is ignored, or anyone could pick their address for the
	// login throttle and the audit log.
	TrustedProxies []netip.Prefix
	// MetricsToken, when set, lets Prometheus scrape /metrics with
	// "Authorization: Bearer <token>" and no session.
	MetricsToken string
	// SecureCookies marks the session cookie Secure with the __Host- prefix: set when the
	// browser reaches townwatch over HTTPS (http.tls, or a TLS proxy).
	SecureCookies bool
	// AfterPasswordChecks, when set, runs off the login's path once the last running
	// password check has ended (access.LoginLimiter.AfterChecks): where the process hands
	// the checks' memory back, as townwatch serve does when it manages its memory.
	AfterPasswordChecks func()
}

// auth is the server's side of accounts: who is asking, login and logout.
type auth struct {
	opt      AccessOptions
	now      func() time.Time
	limiter  *access.LoginLimiter
	log      *slog.Logger
	hasUsers atomic.Bool // once true it stays: accounts are disabled, never deleted
	// auditFailures counts requests refused because their audit row could not be written.
	auditFailures atomic.Uint64
}

func newAuth(opt AccessOptions, log *slog.Logger) (*auth, error) {
	if opt.Users == nil || opt.Audit == nil {
		return nil, errors.New("viewer: access control needs a user store and an audit log")
	}
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	limiter := access.NewLoginLimiter(now)
	limiter.AfterChecks = opt.AfterPasswordChecks
	return &auth{opt: opt, now: now, limiter: limiter, log: log}, nil
}

func (a *auth) cookieName() string {
	if a.opt.SecureCookies {
		// __Host-: the browser accepts it only over HTTPS, for this host alone and path /,
		// so a sibling subdomain cannot plant or overwrite it.
		return "__Host-townwatch_session"
	}
	return "townwatch_session"
}

// usersExist reports whether any account exists; until one does, the server only tells
// the operator how to make the first.
func (a *auth) usersExist(ctx context.Context) (bool, error) {
	if a.hasUsers.Load() {
		return true, nil
	}
	n, err := a.opt.Users.CountUsers(ctx)
	if err != nil {
		return false, err
	}
	if n > 0 {
		a.hasUsers.Store(true)
	}
	return n > 0, nil
}

// errNoSession means the request carries no valid session: 401.
var errNoSession = errors.New("no valid session")

// principal reads the request's session and the account behind it, afresh from the
// catalog: roles, grants and the disabled flag as they are now. An expired session is
// deleted. Any failure to find a live session is errNoSession; a catalog error is
// returned as it is (503: the server cannot tell who is asking).
func (a *auth) principal(r *http.Request) (*access.Principal, error) {
	c, err := r.Cookie(a.cookieName())
	if err != nil || !access.ValidToken(c.Value) {
		return nil, errNoSession
	}
	hash := access.HashToken(c.Value)
	sess, user, err := a.opt.Users.SessionUser(r.Context(), hash)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, errNoSession
	}
	if err != nil {
		return nil, err
	}
	now := a.now()
	if expired(sess, now) {
		if err := a.opt.Users.DeleteSession(r.Context(), hash); err != nil && !errors.Is(err, catalog.ErrNotFound) {
			a.log.Warn("deleting an expired session", "session", access.SessionLabel(hash), "err", err)
		}
		return nil, errNoSession
	}
	if user.Disabled {
		return nil, errNoSession
	}
	if r.Header.Get(pollHeader) == "" && now.Sub(sess.LastSeen) >= touchEvery {
		a.touch(r.Context(), hash, now)
	}
	return principalOf(user, hash), nil
}

// expired applies the idle and absolute session lifetimes.
func expired(s catalog.Session, now time.Time) bool {
	return now.Sub(s.LastSeen) >= sessionIdle || now.Sub(s.Created) >= sessionAbsolute
}

func (a *auth) touch(ctx context.Context, hash string, now time.Time) {
	if err := a.opt.Users.TouchSession(ctx, hash, now); err != nil && !errors.Is(err, catalog.ErrNotFound) {
		// Not fatal: the session only idles out sooner.
		a.log.Warn("keeping a session alive", "session", access.SessionLabel(hash), "err", err)
	}
}

// principalOf turns a catalog account into what authorization reads. Role names the
// access package does not know grant nothing (deny by default).
func principalOf(u catalog.User, sessionHash string) *access.Principal {
	p := &access.Principal{UserID: u.ID, Name: u.Name, AllCameras: u.AllCameras, Session: sessionHash,
		Cameras: make(map[string]bool, len(u.Cameras))}
	for _, r := range u.Roles {
		p.Roles = append(p.Roles, access.Role(r))
	}
	for _, c := range u.Cameras {
		p.Cameras[c] = true
	}
	return p
}

// metricsBearer reports whether r carries the configured metrics token.
func (a *auth) metricsBearer(r *http.Request) bool {
	if a.opt.MetricsToken == "" {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(a.opt.MetricsToken)) == 1
}

// clientAddr is the address a request comes from: the connection's peer, or, when that
// peer is a trusted proxy, the last address in X-Forwarded-For that is not a trusted
// proxy itself (the one the nearest trusted proxy saw).
func (a *auth) clientAddr(r *http.Request) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	addr := peer.Addr().Unmap()
	if !a.trusted(addr) {
		return addr.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed hop: trust nothing before it
		}
		if hop = hop.Unmap(); !a.trusted(hop) {
			return hop.String()
		}
		addr = hop
	}
	return addr.String()
}

func (a *auth) trusted(addr netip.Addr) bool {
	for _, p := range a.opt.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// loginRequest is POST /api/login's body.
type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// meJSON is who is logged in, for /api/me and the login answer: the page shows the name
// and role and hides what the roles do not allow.
type meJSON struct {
	Name    string   `json:"name"`
	Roles   []string `json:"roles"`
	Cameras any      `json:"cameras"` // "all" or a list of camera ids
	Actions []string `json:"actions"` // the actions allowed on at least one camera
}

func meOf(p *access.Principal) meJSON {
	out := meJSON{Name: p.Name, Roles: access.RoleStrings(p.Roles), Actions: []string{}}
	if p.AllCameras {
		out.Cameras = "all"
	} else {
		ids := make([]string, 0, len(p.Cameras))
		for id := range p.Cameras {
			ids = append(ids, id)
		}
		sortStrings(ids)
		out.Cameras = ids
	}
	for _, act := range access.Actions {
		if act != access.ActionPublic && act != access.ActionSession && access.AllowedAny(p, act) {
			out.Actions = append(out.Actions, string(act))
		}
	}
	return out
}

// decodeJSONBody reads a small JSON body strictly; the message names what is wrong.
func decodeJSONBody(w http.ResponseWriter, r *http.Request, limit int64, dst any) string {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return "Content-Type must be application/json"
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return "request body: " + err.Error()
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return "request body: one JSON object expected"
	}
	return ""
}
