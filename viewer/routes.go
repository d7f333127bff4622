package viewer

import (
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// route is one endpoint of the HTTP surface. Every endpoint is declared in the one table
// Server.table builds, with the action it needs; the mux is built from that table alone,
// so an endpoint cannot exist without passing through guard. What the mux does not know
// answers 404, and the 404 handler itself needs nothing.
type route struct {
	pattern string        // net/http ServeMux pattern, with its method
	action  access.Action // what the caller must be allowed to do
	// camera finds the one camera a request is about, for a camera-scoped action; nil
	// for routes that list cameras (they filter by scopeOf) or concern none.
	camera  cameraOf
	handler http.HandlerFunc
}

// cameraOf names the camera a request is about, and the 404 message for the case that it
// does not exist for this user: the same words whether it does not exist at all or is not
// granted, so the two cannot be told apart.
type cameraOf func(r *http.Request) (camera, notFound string, err error)

// pathCamera reads the camera from the {id} path segment.
func pathCamera(r *http.Request) (string, string, error) {
	id := r.PathValue("id")
	return id, "unknown camera " + quote(id), nil
}

// byID makes the cameraOf of a route whose {id} numbers a thing (a segment, an export
// job, a bookmark): find returns its camera and whether this caller may see it at all. A
// malformed id, an unknown one and one the caller may not see all get the same 404
// "unknown <noun> <id>", so the three cannot be told apart.
func byID(noun string, find func(r *http.Request, id int64) (camera string, visible bool, err error)) cameraOf {
	return func(r *http.Request) (string, string, error) {
		raw := r.PathValue("id")
		notFound := "unknown " + noun + " " + quote(raw)
		id, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || id <= 0 {
			return "", notFound, nil
		}
		camera, visible, err := find(r, id)
		if errors.Is(err, catalog.ErrNotFound) || (err == nil && !visible) {
			return "", notFound, nil
		}
		if err != nil {
			return "", notFound, err
		}
		return camera, notFound, nil
	}
}

// table is every route the server has. The route test walks it: each entry must name an
// action, and every camera-scoped action on a single camera must say how to find it.
func (s *Server) table() []route {
	rt := []route{
		{pattern: "GET /healthz", action: access.ActionPublic, handler: s.handleHealth},
		{pattern: "GET /login", action: access.ActionPublic, handler: s.handleLoginPage},
		{pattern: "GET /static/{file...}", action: access.ActionPublic, handler: s.handleStatic},
		{pattern: "POST /api/login", action: access.ActionPublic, handler: s.handleLogin},

		{pattern: "GET /{$}", action: access.ActionSession, handler: s.handleIndex},
		{pattern: "GET /api", action: access.ActionSession, handler: s.handleAPIIndex},
		{pattern: "GET /api/me", action: access.ActionSession, handler: s.handleMe},
		{pattern: "POST /api/logout", action: access.ActionSession, handler: s.handleLogout},

		{pattern: "GET /api/cameras", action: access.ActionLive, handler: s.handleCameras},
		{pattern: "GET /api/cameras/{id}", action: access.ActionLive, camera: s.knownCamera(pathCamera), handler: s.handleCamera},

		{pattern: "GET /metrics", action: access.ActionMetrics, handler: s.opt.Metrics.ServeHTTP},

		{pattern: "GET /audit", action: access.ActionAudit, handler: s.handleAuditPage},
		{pattern: "GET /api/audit", action: access.ActionAudit, handler: s.handleAudit},
		{pattern: "GET /api/audit/verify", action: access.ActionAudit, handler: s.handleAuditVerify},
	}
	if s.opt.ConfigStatus != nil {
		rt = append(rt, route{pattern: "GET /api/config/status", action: access.ActionAdmin, handler: s.handleConfigStatus})
	}
	if s.opt.ConfigCameras != nil {
		rt = append(rt,
			route{pattern: "GET /api/config/cameras", action: access.ActionAdmin, handler: s.handleConfigCameras},
			route{pattern: "POST /api/config/cameras", action: access.ActionAdmin, handler: s.handleConfigCameraCreate},
			route{pattern: "GET /api/config/cameras/{id}", action: access.ActionAdmin, handler: s.handleConfigCamera},
			route{pattern: "PUT /api/config/cameras/{id}", action: access.ActionAdmin, handler: s.handleConfigCameraReplace},
			route{pattern: "DELETE /api/config/cameras/{id}", action: access.ActionAdmin, handler: s.handleConfigCameraDelete},
			route{pattern: "POST /api/config/validate", action: access.ActionAdmin, handler: s.handleConfigValidate},
			route{pattern: "GET /admin", action: access.ActionAdmin, handler: s.handleAdminPage},
			route{pattern: "GET /api/admin/cameras", action: access.ActionAdmin, handler: s.handleAdminCameras},
		)
	}
	if s.opt.Live != nil {
		for _, lr := range s.opt.Live.Routes() {
			h := lr.Handler
			if strings.HasPrefix(lr.Pattern, "POST ") {
				h = s.liveElsewhere(h) // a new viewer of a camera held by another node
			} else {
				h = s.relayedSession(h) // a session relayed to another node
			}
			rt = append(rt, route{pattern: lr.Pattern, action: access.ActionLive, camera: s.knownCamera(pathCamera), handler: h})
			if s.opt.Peers != nil {
				// The same routes for another node relaying its viewers' live views here
				// (liverelay.go): the node token instead of a session.
				method, pattern, _ := strings.Cut(lr.Pattern, " ")
				h := lr.Handler
				if method == http.MethodPost {
					h = s.heldHere(h)
				}
				rt = append(rt, route{pattern: method + " " + nodeLivePrefix + pattern[len("/api"):], action: access.ActionNode, handler: h})
			}
		}
		if s.opt.Peers != nil {
			rt = append(rt, route{pattern: "GET " + nodeLivePath, action: access.ActionNode, handler: s.handleNodeLive})
		}
	}
	if s.opt.Peers != nil {
		// The stream states of the cameras this node holds, for the other nodes' walls.
		rt = append(rt, route{pattern: "GET " + nodeCamerasPath, action: access.ActionNode, handler: s.handleNodeCameras})
	}
	if s.opt.Events != nil {
		rt = append(rt,
			route{pattern: "GET /search", action: access.ActionEvents, handler: s.handleSearchPage},
			route{pattern: "GET /api/events", action: access.ActionEvents, handler: s.opt.Events.handleList},
			route{pattern: "GET /api/events/{id}/snapshot.jpg", action: access.ActionEvents, camera: s.opt.Events.eventCamera,
				handler: s.snapshotAudited(s.opt.Events.handleSnapshot)},
		)
	}
	if pb := s.opt.Playback; pb != nil {
		rt = append(rt,
			route{pattern: "GET /playback", action: access.ActionPlayback, handler: s.handlePlaybackPage},
			route{pattern: "POST /api/playback", action: access.ActionPlayback, handler: s.handlePlaybackStart},
			route{pattern: "GET /api/timeline", action: access.ActionPlayback, handler: pb.handleTimeline},
			route{pattern: "GET /api/search/motion", action: access.ActionPlayback, handler: s.handleMotionSearch},
			route{pattern: "POST /api/cases", action: access.ActionPlayback, handler: s.handleCaseCreate},
			route{pattern: "GET /api/cases", action: access.ActionPlayback, handler: pb.handleCases},
			route{pattern: "GET /api/cases/{case}", action: access.ActionPlayback, handler: pb.handleCase},
			route{pattern: "POST /api/bookmarks", action: access.ActionPlayback, handler: s.handleBookmarkCreate},
			route{pattern: "GET /api/bookmarks", action: access.ActionPlayback, handler: pb.handleBookmarks},
			route{pattern: "DELETE /api/bookmarks/{id}", action: access.ActionPlayback, camera: byID("bookmark", pb.bookmarkCamera), handler: s.handleBookmarkDelete},
			route{pattern: "GET /api/cameras/{id}/playlist", action: access.ActionPlayback, camera: s.knownCamera(pathCamera), handler: pb.handlePlaylist},
			route{pattern: "GET /api/cameras/{id}/frame.jpg", action: access.ActionPlayback, camera: s.knownCamera(pathCamera), handler: s.handleFrame},
			// Footage of a camera that left the configuration stays playable to those who
			// may see it: the segment's camera is checked, not the configuration.
			route{pattern: "GET /api/segments/{id}/media", action: access.ActionPlayback, camera: byID("segment", pb.segmentCamera), handler: pb.handleMedia},
			route{pattern: "GET /api/cameras/{id}/thumbs", action: access.ActionPlayback, camera: s.knownCamera(pathCamera), handler: pb.handleThumbs},
			route{pattern: "GET /api/segments/{id}/thumbs.jpg", action: access.ActionPlayback, camera: byID("segment", pb.segmentCamera), handler: pb.handleSprite},
		)
		if s.opt.Peers != nil {
			// Another node fetching this disk's footage for its client (Peers.proxyMedia,
			// and whole segments for exports and stills, Peers.FetchSegment) and its
			// scrub previews (Peers.FetchThumbnails).
			rt = append(rt,
				route{pattern: "GET /api/node/segments/{id}/media", action: access.ActionNode, handler: pb.handleNodeMedia},
				route{pattern: "GET /api/node/segments/{id}/thumbs", action: access.ActionNode, handler: pb.handleNodeThumbs})
		}
	}
	if ex := s.opt.Exports; ex != nil {
		rt = append(rt,
			route{pattern: "POST /api/exports", action: access.ActionExport, handler: s.handleExportCreate},
			route{pattern: "GET /api/exports", action: access.ActionExport, handler: ex.handleList},
			route{pattern: "GET /api/exports/{id}", action: access.ActionExport, camera: byID("export", ex.exportCamera), handler: ex.handleStatus},
			route{pattern: "DELETE /api/exports/{id}", action: access.ActionExport, camera: byID("export", ex.exportCamera), handler: ex.handleCancel},
			route{pattern: "GET /api/exports/{id}/download", action: access.ActionExport, camera: byID("export", ex.exportCamera), handler: s.handleExportDownload},
		)
	}
	if s.opt.CameraAdmin != nil {
		rt = append(rt,
			route{pattern: "POST /api/cameras/probe", action: access.ActionAdmin, handler: s.handleCameraProbe},
			route{pattern: "GET /api/onvif/discover", action: access.ActionAdmin, handler: s.handleONVIFDiscover},
			route{pattern: "POST /api/onvif/profiles", action: access.ActionAdmin, handler: s.handleONVIFProfiles},
		)
	}
	return rt
}

// knownCamera wraps a cameraOf so that a camera not in the configuration gets the same
// 404 as one not granted: the guard answers both, before any handler runs.
func (s *Server) knownCamera(of cameraOf) cameraOf {
	return func(r *http.Request) (string, string, error) {
		id, notFound, err := of(r)
		if err != nil || !s.cameras.known(id) {
			return "", notFound, err
		}
		return id, notFound, nil
	}
}

// mount builds the mux from the table, every route behind guard.
func (s *Server) mount() {
	for _, rt := range s.table() {
		s.mux.Handle(rt.pattern, s.guard(rt))
	}
}

type ctxKey int

const (
	principalKey ctxKey = iota
	actionKey
	askingNodeKey
)

// askingNode is the node a node route's request comes from (NodeNameHeader), "" on any
// other route: only the node token's holder can claim a name.
func askingNode(ctx context.Context) string {
	n, _ := ctx.Value(askingNodeKey).(string)
	return n
}

// principalFrom is the account a guarded request runs as; nil on public routes.
func principalFrom(ctx context.Context) *access.Principal {
	p, _ := ctx.Value(principalKey).(*access.Principal)
	return p
}

// scopeOf answers, for a handler that lists cameras or their data, whether this
// request's user may see camera: the route's action decided by access.Allowed. Handlers
// filter with it; they never decide access themselves.
func scopeOf(r *http.Request) func(camera string) bool {
	p := principalFrom(r.Context())
	act, _ := r.Context().Value(actionKey).(access.Action)
	return func(camera string) bool { return access.Allowed(p, act, camera) }
}

// guard is the one authorization chokepoint. In order:
//  1. /metrics with the configured bearer token runs without a session; a node route
//     (action node) runs with the node token and with nothing else;
//  2. no account exists yet: only /healthz, and the page that says how to make one;
//  3. public routes run as they are;
//  4. no valid session: 401 (API) or a redirect to the login page (pages);
//  5. a state-changing request must carry JSON or SDP (a cross-site form cannot);
//  6. the action is decided by access.Allowed — on the request's camera, which must also
//     exist, for single-camera routes (404 alike for unknown and ungranted); on at least
//     one camera for lists; otherwise 403. Refusals of a known user are audited.
func (s *Server) guard(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The operator's metrics token is no default credential: it was put on the host
		// on purpose, so Prometheus scrapes from the first start, accounts or not.
		if rt.action == access.ActionMetrics && s.auth.metricsBearer(r) {
			rt.handler(w, r)
			return
		}
		// A node route is decided by the node token alone, before anything about users: a
		// session never opens it (the guard does not even read one here), and the token
		// reaches no other route (it is no session and no role grants anything to it).
		if rt.action == access.ActionNode {
			if !s.opt.Peers.validToken(r) {
				// The token itself is never logged, only that it was wrong or missing.
				s.log.Warn("node route: wrong or missing node token", "path", r.URL.Path,
					"client", s.auth.clientAddr(r), "token_sent", r.Header.Get(NodeTokenHeader) != "")
				writeError(w, http.StatusUnauthorized, "node token required ("+NodeTokenHeader+")")
				return
			}
			if n := r.Header.Get(NodeNameHeader); n != "" {
				r = r.WithContext(context.WithValue(r.Context(), askingNodeKey, n))
			}
			rt.handler(w, r)
			return
		}
		ok, err := s.auth.usersExist(r.Context())
		if err != nil {
			if clientGone(r) {
				return
			}
			s.log.Error("reading accounts", "err", err)
			writeError(w, http.StatusServiceUnavailable, "accounts cannot be read; see the server log")
			return
		}
		// The setup page is styled by the public static files; nothing else is served.
		if !ok && rt.pattern != "GET /healthz" && rt.pattern != "GET /static/{file...}" {
			s.handleNoUsers(w, r)
			return
		}
		if rt.action == access.ActionPublic {
			rt.handler(w, r)
			return
		}
		p, err := s.auth.principal(r)
		if errors.Is(err, errNoSession) {
			s.unauthenticated(w, r)
			return
		}
		if err != nil {
			if clientGone(r) {
				return
			}
			s.log.Error("reading the session", "err", err)
			writeError(w, http.StatusServiceUnavailable, "sessions cannot be read; see the server log")
			return
		}
		if problem := mutatingContentType(r); problem != "" {
			writeError(w, http.StatusUnsupportedMediaType, problem)
			return
		}
		ctx := context.WithValue(context.WithValue(r.Context(), principalKey, p), actionKey, rt.action)
		r = r.WithContext(ctx)
		switch {
		case rt.camera != nil:
			camera, notFound, err := rt.camera(r)
			if err != nil {
				if clientGone(r) {
					return
				}
				s.log.Error("finding the camera of a request", "path", r.URL.Path, "err", err)
				writeError(w, http.StatusInternalServerError, "lookup failed; see the server log")
				return
			}
			if camera == "" || !access.Allowed(p, rt.action, camera) {
				s.denied(r, p, rt, camera, "camera unknown or not granted")
				writeError(w, http.StatusNotFound, notFound)
				return
			}
		case access.CameraScoped(rt.action):
			if !access.AllowedAny(p, rt.action) {
				s.denied(r, p, rt, "", "no camera granted for this action")
				writeError(w, http.StatusForbidden, "your role does not allow this ("+string(rt.action)+")")
				return
			}
		default:
			if !access.Allowed(p, rt.action, "") {
				s.denied(r, p, rt, "", "role does not allow it")
				writeError(w, http.StatusForbidden, "your role does not allow this ("+string(rt.action)+")")
				return
			}
		}
		rt.handler(w, r)
	})
}

// mutatingContentType refuses a state-changing request whose body is not JSON or SDP.
// Together with SameSite=Strict and the cross-origin check this shuts out cross-site
// requests: a page elsewhere can only send such types after a CORS preflight, which
// townwatch never answers. DELETE carries no body and is never a "simple" request.
func mutatingContentType(r *http.Request) string {
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		return ""
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err == nil && (mt == "application/json" || mt == "application/sdp") {
		return ""
	}
	return "Content-Type must be application/json or application/sdp, not " + quote(r.Header.Get("Content-Type"))
}

// unauthenticated answers a request without a valid session: pages go to the login page
// (and come back after it), everything else gets 401.
func (s *Server) unauthenticated(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/api") && r.URL.Path != "/metrics" {
		http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return
	}
	w.Header().Set("WWW-Authenticate", `Cookie realm="townwatch"`)
	writeError(w, http.StatusUnauthorized, "login required (POST /api/login)")
}

// denied writes the audit row for a refused request of a known user. It does not change
// the answer when the row cannot be written: the request is refused either way.
func (s *Server) denied(r *http.Request, p *access.Principal, rt route, camera, why string) {
	if camera == "" {
		camera = r.PathValue("id") // what was asked for, known or not
	}
	details, _ := json.Marshal(map[string]string{"route": rt.pattern, "action": string(rt.action), "why": why})
	if err := s.appendAudit(r, p, catalog.AuditEntry{Action: access.AuditDenied, Camera: camera,
		Outcome: catalog.AuditDenied, Details: details}); err != nil {
		s.log.Error("audit: recording a refusal", "err", err)
	}
}

// appendAudit writes one audit row about request r by p (who, from where, with which
// session), committed when it returns.
func (s *Server) appendAudit(r *http.Request, p *access.Principal, e catalog.AuditEntry) error {
	_, err := s.appendAuditRow(r, p, e)
	return err
}

// appendAuditRow is appendAudit returning the row written (its id goes into an export's
// manifest).
func (s *Server) appendAuditRow(r *http.Request, p *access.Principal, e catalog.AuditEntry) (catalog.AuditEntry, error) {
	if p != nil {
		e.Actor, e.Roles, e.Session = p.Name, access.RoleStrings(p.Roles), access.SessionLabel(p.Session)
	}
	e.Client = s.auth.clientAddr(r)
	if e.Time.IsZero() {
		e.Time = s.auth.now()
	}
	if e.Outcome == "" {
		e.Outcome = catalog.AuditOK
	}
	row, err := s.opt.Access.Audit.Append(r.Context(), e)
	if err != nil {
		s.auth.auditFailures.Add(1)
	}
	return row, err
}

// clientGone reports whether r's client has gone away: the player aborts the fetches of a
// seek that a newer one replaced, and a closed page ends its requests. A lookup that failed
// because of it is no fault of the server's (logged as one, it would bury real errors, 49 in
// a three-minute playback benchmark), and no answer could reach the client anyway.
func clientGone(r *http.Request) bool { return r.Context().Err() != nil }
