package viewer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/ingest/onvif"
	"github.com/townwatch/townwatch/ingest/probe"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/recorder/exports"
	"github.com/townwatch/townwatch/viewer/access"
	"github.com/townwatch/townwatch/viewer/live"
)

// routeRig is a server with every optional part (live view, events) so its route table
// is complete, two cameras, and one event of each camera.
type routeRig struct {
	server *Server
	fx     *accessFixture
	logs   *lockedLog // what the server logged
}

// lockedLog is a log sink that requests may write to while the test reads it.
type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The rig is node rigNode of a cluster, with node token rigNodeToken; its segments have
// no node (as in a single-node catalog), so none is on its disk as far as the node route
// is concerned.
const (
	rigNode      = "uzel-a"
	rigNodeToken = "rig-node-token-0123456789abcdef"
)

// rigHolder says camera most is held by another node, namesti by this one. The other
// node's address is on loopback where nothing listens (port 1): a live offer for most is
// relayed there and refused at once, never sent off this machine.
func rigHolder(camera string) (string, string) {
	if camera == "most" {
		return "uzel-b", "http://127.0.0.1:1"
	}
	return rigNode, "http://127.0.0.1:2"
}

const (
	eventNamesti = "0192f5c4-0000-7000-8000-00000000000a"
	eventMost    = "0192f5c4-0000-7000-8000-00000000000b"
	// The first two segments of the rig's fresh catalog: one per camera; the same for
	// export jobs, requested by someone else than the matrix's users.
	segmentNamesti = "1"
	segmentMost    = "2"
	exportNamesti  = "1"
	exportMost     = "2"
)

// newExportJobs makes an export manager (not running: the jobs stay queued) with one job
// per camera of the rig.
func newExportJobs(t *testing.T, cat *catalog.Catalog) *exports.Manager {
	t.Helper()
	m, err := exports.New(exports.Options{Catalog: cat, Dir: t.TempDir(), Name: func(catalog.ExportJob) string { return "x.zip" },
		Bundle: func(context.Context, io.Writer, catalog.ExportJob, func(int64, int64)) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	for i, camera := range []string{"namesti", "most"} {
		id, err := m.Submit(t.Context(), exports.Request{Actor: "zadavatel", Cameras: []string{camera}, From: time.Now().Add(-time.Hour), To: time.Now(),
			Reason: "r", Case: "c", Recipient: "p", AuditID: 1})
		if err != nil || id != int64(i+1) {
			t.Fatalf("export of %s: id %d, %v", camera, id, err)
		}
	}
	return m
}

func newRouteRig(t *testing.T) *routeRig {
	t.Helper()
	fx := newAccessFixture(t)
	for _, ev := range []catalog.Event{
		{ID: eventNamesti, Camera: "namesti", Start: fx.clock.Now().Add(-time.Minute), End: fx.clock.Now(), Score: 0.3, Snapshot: "snapshots/namesti/a.jpg"},
		{ID: eventMost, Camera: "most", Start: fx.clock.Now().Add(-time.Minute), End: fx.clock.Now(), Score: 0.3, Snapshot: "snapshots/most/b.jpg"},
	} {
		if err := fx.cat.InsertEvent(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	for i, camera := range []string{"namesti", "most"} {
		start := fx.clock.Now().Add(-time.Hour)
		id, err := fx.cat.CreateSegment(t.Context(), catalog.Segment{Camera: camera, Stream: "main", Start: start,
			Path: "recordings/" + camera + "/a.mp4", Codec: "H264", Width: 640, Height: 360})
		if err != nil || id != int64(i+1) {
			t.Fatalf("segment of %s: id %d, %v", camera, id, err)
		}
	}
	// A case (1) and a bookmark per camera (1, 2), by someone else than the matrix's users.
	caseID, err := fx.cat.AddCase(t.Context(), catalog.Case{Ref: "KRPP-1/2026", Actor: "zadavatel", Created: fx.clock.Now()})
	if err != nil || caseID != 1 {
		t.Fatalf("case: %d, %v", caseID, err)
	}
	for i, camera := range []string{"namesti", "most"} {
		id, err := fx.cat.AddBookmark(t.Context(), catalog.Bookmark{Camera: camera, From: fx.clock.Now().Add(-time.Hour), To: fx.clock.Now(),
			Title: "b", CaseID: caseID, Actor: "zadavatel", Created: fx.clock.Now()})
		if err != nil || id != int64(i+1) {
			t.Fatalf("bookmark of %s: id %d, %v", camera, id, err)
		}
	}
	lm, err := live.New(ingest.NewHub(), []live.Camera{{ID: "namesti"}, {ID: "most"}}, live.Options{ListenHost: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	cams := []Camera{{ID: "namesti", Main: fixedStatus{State: ingest.StateStreaming}}, {ID: "most", Main: fixedStatus{State: ingest.StateStreaming}}}
	snapshots := fstest.MapFS{"snapshots/namesti/a.jpg": {Data: []byte("\xff\xd8namesti")}, "snapshots/most/b.jpg": {Data: []byte("\xff\xd8most")}}
	logs := &lockedLog{}
	s, err := New(Options{Listen: "127.0.0.1:0", Cameras: StaticCameras(cams), Live: lm, Access: fx.opts,
		Log:     slog.New(slog.NewTextHandler(logs, nil)),
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "townwatch_up 1") }),
		Events:  &Events{Store: fx.cat, OpenSnapshot: snapshots.Open},
		Playback: &Playback{Store: fx.cat, Bookmarks: fx.cat,
			OpenFile: func(context.Context, catalog.Segment) (*os.File, error) { return nil, os.ErrNotExist }},
		Exports:       &Exports{Manager: newExportJobs(t, fx.cat)},
		ConfigStatus:  func() any { return map[string]bool{"success": true} },
		ConfigCameras: newConfigStore(t),
		// One of several nodes: the node route exists, and every matrix walks it too.
		Peers: &Peers{Self: rigNode, Token: rigNodeToken,
			Advertise: func(context.Context, string) (string, error) { return "", nil },
			Holder:    rigHolder},
		// Discovery only on lo, and briefly: the matrix asks it once per admin.
		CameraAdmin: &CameraAdmin{Prober: &probe.Prober{}, ONVIF: &onvif.Client{},
			Discoverer: &onvif.Discoverer{Interfaces: []string{"lo"}, Window: 10 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	return &routeRig{server: s, fx: fx, logs: logs}
}

// pathParam fills a route pattern's wildcards: {id} with camera, {session} with a
// session id that does not exist, {file...} with a real static file.
var pathParam = regexp.MustCompile(`\{[a-z]+(\.\.\.)?\}|\{\$\}`)

func concretePath(pattern, camera string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	path = pathParam.ReplaceAllStringFunc(path, func(w string) string {
		switch w {
		case "{id}":
			if camera == "" && strings.Contains(pattern, " /api/config/cameras/") {
				return "namesti" // a camera of the configuration (the route is not camera-scoped)
			}
			if strings.Contains(pattern, " /api/node/") {
				return segmentNamesti // the node route names a segment and no camera
			}
			return camera
		case "{session}":
			return "NOSUCHSESSION"
		case "{case}":
			return "1" // the rig's case
		case "{file...}":
			return "app.js"
		}
		return ""
	})
	return method, path
}

// Every route declares one of the known actions, and a route about one camera says how
// to find it: a route added without them fails here, before it can leak anything.
func TestEveryRouteDeclaresItsAction(t *testing.T) {
	rig := newRouteRig(t)
	seen := map[string]bool{}
	for _, rt := range rig.server.table() {
		if !slices.Contains(access.Actions, rt.action) {
			t.Errorf("route %q: action %q is not one of access.Actions", rt.pattern, rt.action)
		}
		if seen[rt.pattern] {
			t.Errorf("route %q declared twice", rt.pattern)
		}
		seen[rt.pattern] = true
		if strings.Contains(rt.pattern, "{id}") && access.CameraScoped(rt.action) && rt.camera == nil {
			t.Errorf("route %q is about one camera ({id}) but does not resolve it: the guard could not check the grant", rt.pattern)
		}
		if rt.handler == nil {
			t.Errorf("route %q has no handler", rt.pattern)
		}
	}
	for _, must := range []string{"POST /api/cameras/{id}/whep", "DELETE /api/cameras/{id}/whep/{session}",
		"PATCH /api/cameras/{id}/whep/{session}", "GET /api/events/{id}/snapshot.jpg", "GET /metrics", "GET /api/config/status",
		"GET /api/config/cameras", "POST /api/config/cameras", "GET /api/config/cameras/{id}", "PUT /api/config/cameras/{id}",
		"DELETE /api/config/cameras/{id}", "POST /api/config/validate",
		"GET /admin", "GET /api/admin/cameras"} {
		if !seen[must] {
			t.Errorf("route table has no %q", must)
		}
	}
}

// Without a session every route but the public ones answers 401 (API) or sends the
// browser to the login page (pages) — WHEP, snapshots and /metrics included.
func TestWithoutSessionOnlyPublicRoutesAnswer(t *testing.T) {
	rig := newRouteRig(t)
	rig.fx.addUser(t, "admin", []access.Role{access.Admin}, false) // accounts exist: not the setup mode
	h := rig.server.Handler()
	public := map[string]bool{"GET /healthz": true, "GET /login": true, "GET /static/{file...}": true, "POST /api/login": true}
	for _, rt := range rig.server.table() {
		method, path := concretePath(rt.pattern, "namesti")
		req := httptest.NewRequest(method, path, strings.NewReader("v=0"))
		req.Header.Set("Content-Type", "application/sdp")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch {
		case public[rt.pattern]:
			if rec.Code == http.StatusUnauthorized || rec.Code == http.StatusSeeOther {
				t.Errorf("%s %s: public route answered %d", method, path, rec.Code)
			}
		case method == http.MethodGet && !strings.HasPrefix(path, "/api") && path != "/metrics":
			if rec.Code != http.StatusSeeOther || !strings.HasPrefix(rec.Header().Get("Location"), "/login?next=") {
				t.Errorf("%s %s without a session: %d %q, want 303 to /login", method, path, rec.Code, rec.Header().Get("Location"))
			}
		default:
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("%s %s without a session: %d %s, want 401", method, path, rec.Code, rec.Body)
			}
		}
	}
	// A forged cookie is no session.
	for _, forged := range []string{"x", strings.Repeat("A", 43), "../../etc/passwd", ""} {
		req := httptest.NewRequest(http.MethodGet, "/api/cameras", nil)
		req.AddCookie(&http.Cookie{Name: "townwatch_session", Value: forged})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("forged cookie %q: %d", forged, rec.Code)
		}
	}
}

// allowedByPolicy is the role table of the access-control issue, written out again here
// independently of package access: which roles may do action, and whether only on
// granted cameras.
func allowedByPolicy(roles []access.Role, allCams bool, granted map[string]bool, action access.Action, camera string) bool {
	type rule struct {
		roles   []access.Role
		perCam  bool // dispatcher and officer: only granted cameras
		anyRole bool
	}
	table := map[access.Action][]rule{
		access.ActionLive:       {{roles: []access.Role{access.Dispatcher, access.Officer}, perCam: true}, {roles: []access.Role{access.Supervisor}}},
		access.ActionEvents:     {{roles: []access.Role{access.Dispatcher, access.Officer}, perCam: true}, {roles: []access.Role{access.Supervisor}}},
		access.ActionPlayback:   {{roles: []access.Role{access.Officer}, perCam: true}, {roles: []access.Role{access.Supervisor}}},
		access.ActionExport:     {{roles: []access.Role{access.Officer}, perCam: true}, {roles: []access.Role{access.Supervisor}}},
		access.ActionLock:       {{roles: []access.Role{access.Officer}, perCam: true}, {roles: []access.Role{access.Supervisor}}},
		access.ActionLockManage: {{roles: []access.Role{access.Supervisor}}},
		access.ActionLockList:   {{roles: []access.Role{access.Supervisor, access.Auditor}}},
		access.ActionAdmin:      {{roles: []access.Role{access.Admin}}},
		access.ActionMetrics:    {{roles: []access.Role{access.Admin}}},
		access.ActionAudit:      {{roles: []access.Role{access.Auditor}}},
		access.ActionSession:    {{anyRole: true}},
	}
	for _, r := range table[action] {
		if r.anyRole {
			return true
		}
		for _, have := range roles {
			if slices.Contains(r.roles, have) && (!r.perCam || allCams || granted[camera] || camera == "") {
				return true
			}
		}
	}
	return false
}

// roleSets is every combination of the five roles that may be held together.
func roleSets() [][]access.Role {
	var out [][]access.Role
	for mask := 1; mask < 1<<len(access.Roles); mask++ {
		var set []access.Role
		for i, r := range access.Roles {
			if mask&(1<<i) != 0 {
				set = append(set, r)
			}
		}
		if slices.Contains(set, access.Admin) && slices.Contains(set, access.Auditor) {
			continue
		}
		out = append(out, set)
	}
	return out
}

// The generated role × grant × camera × route matrix: every answer is what the role
// table says, and a camera that is not granted answers exactly like one that does not
// exist (same status, same body).
func TestRoleCameraMatrix(t *testing.T) {
	rig := newRouteRig(t)
	h := rig.server.Handler()
	grants := []struct {
		name string
		all  bool
		cams []string
	}{{"all", true, nil}, {"namesti", false, []string{"namesti"}}, {"none", false, nil}}
	var unexpectedAllow, unexpectedDeny, checked int
	n := 0
	for _, roles := range roleSets() {
		for _, g := range grants {
			n++
			name := fmt.Sprintf("u%d", n)
			rig.fx.addUser(t, name, roles, g.all, g.cams...)
			user := withCookie(h, login(t, h, name))
			granted := map[string]bool{}
			for _, c := range g.cams {
				granted[c] = true
			}
			for _, rt := range rig.server.table() {
				if rt.action == access.ActionPublic || rt.pattern == "POST /api/logout" || rt.pattern == "DELETE /api/bookmarks/{id}" {
					// Public routes need no grant; logging out would end this user's session;
					// deleting the rig's bookmark would change it for the next users
					// (TestBookmarksAndCases checks who may delete).
					continue
				}
				cameras := []string{""}
				if rt.camera != nil {
					cameras = []string{"namesti", "most"}
				}
				for _, camera := range cameras {
					status, body := requestRoute(user, rt, camera)
					var want bool
					if rt.camera != nil {
						want = allowedByPolicy(roles, g.all, granted, rt.action, camera)
						if strings.Contains(rt.pattern, "/api/exports/{id}") {
							// Someone else's job: only for who may manage its locks.
							want = want && allowedByPolicy(roles, g.all, granted, access.ActionLockManage, camera)
						}
					} else {
						want = allowedByPolicy(roles, g.all, granted, rt.action, "") &&
							(!access.CameraScoped(rt.action) || anyCameraAllowed(roles, g.all, granted, rt.action))
					}
					got := status != http.StatusUnauthorized && status != http.StatusForbidden && status != http.StatusNotFound
					if rt.pattern == "DELETE /api/cameras/{id}/whep/{session}" || rt.pattern == "PATCH /api/cameras/{id}/whep/{session}" {
						// No such session exists: allowed means it reached live's handler
						// (404 naming the session, or 405); denied means the guard's 404.
						got = !strings.Contains(body, "unknown camera")
					}
					checked++
					switch {
					case got && !want:
						unexpectedAllow++
						t.Errorf("roles %v cameras %s: %s on %q answered %d %s; want denied", roles, g.name, rt.pattern, camera, status, body)
					case !got && want:
						unexpectedDeny++
						t.Errorf("roles %v cameras %s: %s on %q answered %d %s; want allowed", roles, g.name, rt.pattern, camera, status, body)
					}
					if rt.camera != nil && !want {
						// Not granted looks exactly like not there.
						unknownStatus, unknownBody := requestRoute(user, rt, "no-such-camera")
						if target := targetOf(rt, camera); target != camera {
							unknownBody = strings.ReplaceAll(unknownBody, unknownTarget(rt), target)
						} else {
							unknownBody = strings.ReplaceAll(unknownBody, "no-such-camera", camera)
						}
						if status != unknownStatus || body != unknownBody {
							t.Errorf("%s: ungranted %q answered %d %q, unknown answered %d %q: they must be the same", rt.pattern, camera, status, body, unknownStatus, unknownBody)
						}
					}
				}
			}
		}
	}
	t.Logf("%d role sets × %d grants: %d answers checked, %d unexpected allows, %d unexpected denies",
		len(roleSets()), len(grants), checked, unexpectedAllow, unexpectedDeny)
}

func anyCameraAllowed(roles []access.Role, all bool, granted map[string]bool, action access.Action) bool {
	return allowedByPolicy(roles, all, granted, action, "namesti") || allowedByPolicy(roles, all, granted, action, "most")
}

func eventOf(camera string) string {
	if camera == "most" {
		return eventMost
	}
	return eventNamesti
}

// targetOf is what a route's {id} is for camera: an event of it for the snapshot route,
// a segment of it for the segment routes, the camera itself otherwise.
func targetOf(rt route, camera string) string {
	switch {
	case camera == "no-such-camera":
		return unknownTarget(rt)
	case rt.pattern == "GET /api/events/{id}/snapshot.jpg":
		return eventOf(camera)
	case strings.HasPrefix(rt.pattern, "GET /api/segments/{id}/"): // media and thumbs.jpg
		if camera == "most" {
			return segmentMost
		}
		return segmentNamesti
	case strings.Contains(rt.pattern, "/api/exports/{id}") || rt.pattern == "DELETE /api/bookmarks/{id}":
		if camera == "most" {
			return exportMost // the rig's export and bookmark ids are alike
		}
		return exportNamesti
	}
	return camera
}

// unknownTarget is an {id} that names nothing.
func unknownTarget(rt route) string {
	if strings.HasPrefix(rt.pattern, "GET /api/segments/{id}/") || strings.Contains(rt.pattern, "/api/exports/{id}") || rt.pattern == "DELETE /api/bookmarks/{id}" {
		return "999999"
	}
	return "no-such-camera"
}

// requestRoute sends the route's request about camera (an event or a segment of that
// camera for the routes that name those) and returns the status and body.
func requestRoute(h http.Handler, rt route, camera string) (int, string) {
	method, path := concretePath(rt.pattern, targetOf(rt, camera))
	var req *http.Request
	if method == http.MethodPost && strings.HasSuffix(path, "/whep") {
		req = httptest.NewRequest(method, path, strings.NewReader("v=0\r\n"))
		req.Header.Set("Content-Type", "application/sdp")
	} else {
		req = httptest.NewRequest(method, path, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// A browser that gives up on a request (the player aborts the fetches of a seek a newer one
// replaced) is no server fault: the lookup the request made fails for its cancelled context,
// and nothing is logged as an error.
func TestCancelledRequestIsNotLoggedAsAnError(t *testing.T) {
	rig := newRouteRig(t)
	rig.fx.addUser(t, "strnad", []access.Role{access.Officer}, true)
	h := withCookie(rig.server.Handler(), login(t, rig.server.Handler(), "strnad"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/api/segments/"+segmentNamesti+"/media", nil)
	h.ServeHTTP(httptest.NewRecorder(), req)
	if logs := rig.logs.String(); strings.Contains(logs, "level=ERROR") {
		t.Errorf("a cancelled request was logged as an error:\n%s", logs)
	}
}
