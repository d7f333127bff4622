package access

import (
	"fmt"
	"slices"
	"strings"
)

// Role is one of the fixed roles. There are no custom roles: a data-protection officer
// must be able to say what each account may do from its role names alone.
type Role string

// The roles. Dispatchers and officers work on the cameras granted to them; supervisors on
// every camera; the auditor reads the access log; the admin runs the system and sees no
// footage.
const (
	Dispatcher Role = "dispatcher"
	Officer    Role = "officer"
	Supervisor Role = "supervisor"
	Auditor    Role = "auditor"
	Admin      Role = "admin"
)

// Roles lists every role in the order the documentation shows them.
var Roles = []Role{Dispatcher, Officer, Supervisor, Auditor, Admin}

// Action is what a request does. Every route of the HTTP surface declares exactly one.
type Action string

// The actions. The camera-scoped ones (CameraScoped reports which) are decided per camera;
// the others per user.
const (
	// ActionPublic needs no session: the health check, the login page and its files, the
	// login itself.
	ActionPublic Action = "public"
	// ActionSession needs a session and nothing more: the pages, /api/me, logout.
	ActionSession Action = "session"

	ActionLive       Action = "live"        // watch a camera live
	ActionEvents     Action = "events"      // motion events and their snapshots
	ActionPlayback   Action = "playback"    // recorded footage, search
	ActionExport     Action = "export"      // request an evidence export
	ActionLock       Action = "lock"        // create an evidence lock
	ActionLockManage Action = "lock.manage" // shorten or remove an evidence lock
	ActionLockList   Action = "lock.list"   // list evidence locks
	ActionAdmin      Action = "admin"       // users, cameras, configuration
	ActionAudit      Action = "audit"       // read, verify and export the access log
	ActionMetrics    Action = "metrics"     // /metrics (also by bearer token)
	// ActionNode is a request of another recorder node (serve -node) for footage on this
	// node's disk. It is decided by the node token alone, never by a session: no role
	// grants it, so no user can use a node route, and the node token is no session, so it
	// opens no user route.
	ActionNode Action = "node"
)

// Actions lists every action; the route test checks each route names one of them.
var Actions = []Action{ActionPublic, ActionSession, ActionLive, ActionEvents, ActionPlayback, ActionExport,
	ActionLock, ActionLockManage, ActionLockList, ActionAdmin, ActionAudit, ActionMetrics, ActionNode}

// grant is what one role allows: the actions, and whether they reach every camera or only
// the cameras granted to the account.
type grant struct {
	actions    []Action
	allCameras bool
}

// policy is the whole authorization policy: the role table of the access-control issue.
// Nothing else in townwatch decides who may do what.
var policy = map[Role]grant{
	Dispatcher: {actions: []Action{ActionLive, ActionEvents}},
	Officer:    {actions: []Action{ActionLive, ActionEvents, ActionPlayback, ActionExport, ActionLock}},
	Supervisor: {actions: []Action{ActionLive, ActionEvents, ActionPlayback, ActionExport, ActionLock, ActionLockManage, ActionLockList}, allCameras: true},
	Auditor:    {actions: []Action{ActionLockList, ActionAudit}, allCameras: true},
	Admin:      {actions: []Action{ActionAdmin, ActionMetrics}},
}

// CameraScoped reports whether a is decided per camera.
func CameraScoped(a Action) bool {
	switch a {
	case ActionLive, ActionEvents, ActionPlayback, ActionExport, ActionLock, ActionLockManage, ActionLockList:
		return true
	}
	return false
}

// ParseRoles reads a comma-separated role list ("officer,supervisor"). It refuses unknown
// names, an empty list, and admin together with auditor: nobody audits themselves.
func ParseRoles(s string) ([]Role, error) {
	var roles []Role
	for part := range strings.SplitSeq(s, ",") {
		name := strings.TrimSpace(part)
		if name == "" {
			continue
		}
		r := Role(name)
		if !slices.Contains(Roles, r) {
			return nil, fmt.Errorf("unknown role %q (roles: %s)", name, roleNames(Roles))
		}
		if !slices.Contains(roles, r) {
			roles = append(roles, r)
		}
	}
	if err := CheckRoles(roles); err != nil {
		return nil, err
	}
	slices.Sort(roles)
	return roles, nil
}

// CheckRoles refuses an empty role set and admin together with auditor.
func CheckRoles(roles []Role) error {
	if len(roles) == 0 {
		return fmt.Errorf("no role given (roles: %s)", roleNames(Roles))
	}
	if slices.Contains(roles, Admin) && slices.Contains(roles, Auditor) {
		return fmt.Errorf("roles admin and auditor cannot be held together: the auditor checks what admins do")
	}
	return nil
}

// NeedsCameras reports whether some role in roles works only on granted cameras, so an
// account with it needs a camera grant to be of use.
func NeedsCameras(roles []Role) bool {
	for _, r := range roles {
		if g := policy[r]; !g.allCameras && slices.ContainsFunc(g.actions, CameraScoped) {
			return true
		}
	}
	return false
}

func roleNames(roles []Role) string {
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}

// RoleStrings converts roles for storage and JSON.
func RoleStrings(roles []Role) []string {
	out := make([]string, len(roles))
	for i, r := range roles {
		out[i] = string(r)
	}
	return out
}

// Principal is an authenticated account as one request sees it: read afresh from the
// catalog on every request, so a changed grant applies at once.
type Principal struct {
	UserID     int64
	Name       string
	Roles      []Role
	AllCameras bool            // granted every camera (for the per-camera roles)
	Cameras    map[string]bool // granted cameras when !AllCameras
	// Session is the hex SHA-256 of the session token; empty for a bearer-token client.
	Session string
}

// Allowed is THE authorization decision: may p do a, on camera for a camera-scoped
// action? It is deny by default: a nil principal, an action no role of p grants, or a
// camera outside p's grant is refused. Whether the camera exists is not its question; the
// HTTP layer answers an unknown and an ungranted camera alike.
func Allowed(p *Principal, a Action, camera string) bool {
	if a == ActionPublic {
		return true
	}
	if p == nil {
		return false
	}
	if a == ActionSession {
		return true
	}
	scoped := CameraScoped(a)
	if scoped && camera == "" {
		return false
	}
	for _, r := range p.Roles {
		g, ok := policy[r]
		if !ok || !slices.Contains(g.actions, a) {
			continue
		}
		if !scoped || g.allCameras || p.AllCameras || p.Cameras[camera] {
			return true
		}
	}
	return false
}

// AllowedAny reports whether p may do a on at least one camera (or at all, for an action
// that is not camera-scoped): whether a page or a list is worth showing.
func AllowedAny(p *Principal, a Action) bool {
	if !CameraScoped(a) {
		return Allowed(p, a, "")
	}
	if p == nil {
		return false
	}
	for _, r := range p.Roles {
		g := policy[r]
		if slices.Contains(g.actions, a) && (g.allCameras || p.AllCameras || len(p.Cameras) > 0) {
			return true
		}
	}
	return false
}

// Has reports whether p holds role r.
func (p *Principal) Has(r Role) bool { return p != nil && slices.Contains(p.Roles, r) }
