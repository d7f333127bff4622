package access

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// The role table, written out again from the specification (docs/access-control.md and
// the access-control issue) instead of being read from policy: if somebody widens a role
// in roles.go, this test must notice instead of agreeing with the change.
//
// Every action a role does not list here is refused to it. perCamera says whether the
// role's camera-scoped actions are limited to the cameras granted to the account.
var specRoles = map[Role]struct {
	actions   []Action
	perCamera bool
}{
	// Dispatchers watch live and see motion events and their snapshots, on granted cameras.
	Dispatcher: {actions: []Action{ActionLive, ActionEvents}, perCamera: true},
	// Officers add playback, export requests and creating evidence locks, on granted cameras.
	Officer: {actions: []Action{ActionLive, ActionEvents, ActionPlayback, ActionExport, ActionLock}, perCamera: true},
	// Supervisors do all of that on every camera and also shorten, remove and list locks
	// (docs/access-control.md's table: "create, shorten, remove, list").
	Supervisor: {actions: []Action{ActionLive, ActionEvents, ActionPlayback, ActionExport, ActionLock, ActionLockManage, ActionLockList}},
	// The auditor lists evidence locks and reads, verifies and exports the access log:
	// no live, no events, no footage of any kind.
	Auditor: {actions: []Action{ActionLockList, ActionAudit}},
	// The admin runs the system (users, cameras, configuration) and reads /metrics, and
	// sees no footage.
	Admin: {actions: []Action{ActionAdmin, ActionMetrics}},
}

// footageActions are the actions that show or hand out recorded or live pictures. A DPO
// checks that admin and auditor hold none of them.
var footageActions = []Action{ActionLive, ActionEvents, ActionPlayback, ActionExport}

// roleActions are all actions except public and session, which no role decides. It
// includes node, which no role grants: every table below expects it refused to all.
func roleActions() []Action {
	var out []Action
	for _, a := range Actions {
		if a != ActionPublic && a != ActionSession {
			out = append(out, a)
		}
	}
	return out
}

func TestRoleNamesAreStable(t *testing.T) {
	// Role names are stored in the catalog, copied into every audit row and typed on the
	// command line: renaming one silently would orphan existing accounts.
	want := []Role{"dispatcher", "officer", "supervisor", "auditor", "admin"}
	if !slices.Equal(Roles, want) {
		t.Fatalf("Roles = %v, want %v", Roles, want)
	}
	for r := range policy {
		if !slices.Contains(Roles, r) {
			t.Errorf("policy has role %q that Roles does not list", r)
		}
	}
	for _, r := range Roles {
		if _, ok := policy[r]; !ok {
			t.Errorf("role %q has no policy row", r)
		}
	}
}

func TestActionsListIsComplete(t *testing.T) {
	// The route test relies on Actions naming every action exactly once.
	want := []Action{ActionPublic, ActionSession, ActionLive, ActionEvents, ActionPlayback, ActionExport,
		ActionLock, ActionLockManage, ActionLockList, ActionAdmin, ActionAudit, ActionMetrics, ActionNode}
	if len(Actions) != len(want) {
		t.Fatalf("Actions has %d entries, want %d: %v", len(Actions), len(want), Actions)
	}
	seen := map[Action]bool{}
	for _, a := range Actions {
		if seen[a] {
			t.Errorf("action %q listed twice", a)
		}
		seen[a] = true
	}
	for _, a := range want {
		if !seen[a] {
			t.Errorf("Actions misses %q", a)
		}
	}
}

func TestCameraScoped(t *testing.T) {
	// Everything about footage or locks on footage is decided per camera; the rest per user.
	scoped := []Action{ActionLive, ActionEvents, ActionPlayback, ActionExport, ActionLock, ActionLockManage, ActionLockList}
	for _, a := range Actions {
		if got, want := CameraScoped(a), slices.Contains(scoped, a); got != want {
			t.Errorf("CameraScoped(%q) = %v, want %v", a, got, want)
		}
	}
	if CameraScoped("no-such-action") {
		t.Error("an unknown action is camera-scoped")
	}
}

// TestRoleTable checks every single role against every action on a granted camera, an
// ungranted camera and no camera, for an account with a list of granted cameras.
func TestRoleTable(t *testing.T) {
	const granted, other = "cam-granted", "cam-other"
	for _, r := range Roles {
		spec, ok := specRoles[r]
		if !ok {
			t.Fatalf("role %q is not in the specification", r)
		}
		p := &Principal{UserID: 7, Name: "u", Roles: []Role{r}, Cameras: map[string]bool{granted: true}}
		for _, a := range roleActions() {
			inRole := slices.Contains(spec.actions, a)
			if !CameraScoped(a) {
				for _, cam := range []string{"", granted, other} {
					if got := Allowed(p, a, cam); got != inRole {
						t.Errorf("%s: Allowed(%s, camera %q) = %v, want %v", r, a, cam, got, inRole)
					}
				}
				if got := AllowedAny(p, a); got != inRole {
					t.Errorf("%s: AllowedAny(%s) = %v, want %v", r, a, got, inRole)
				}
				continue
			}
			wantGranted := inRole
			wantOther := inRole && !spec.perCamera
			if got := Allowed(p, a, granted); got != wantGranted {
				t.Errorf("%s: Allowed(%s, granted camera) = %v, want %v", r, a, got, wantGranted)
			}
			if got := Allowed(p, a, other); got != wantOther {
				t.Errorf("%s: Allowed(%s, ungranted camera) = %v, want %v", r, a, got, wantOther)
			}
			// A camera-scoped action without a camera is a route bug; refusing it keeps
			// the bug from turning into access to everything.
			if Allowed(p, a, "") {
				t.Errorf("%s: Allowed(%s, no camera) = true, want false", r, a)
			}
			if got := AllowedAny(p, a); got != inRole {
				t.Errorf("%s: AllowedAny(%s) = %v, want %v", r, a, got, inRole)
			}
		}
	}
}

func TestAdminAndAuditorSeeNoFootage(t *testing.T) {
	// Asked directly, because it is the first thing a data-protection officer asks: even
	// with a grant of every camera, the admin and the auditor get no pictures.
	for _, r := range []Role{Admin, Auditor} {
		p := &Principal{Name: "x", Roles: []Role{r}, AllCameras: true}
		for _, a := range footageActions {
			if Allowed(p, a, "cam1") || AllowedAny(p, a) {
				t.Errorf("%s with all cameras may %s", r, a)
			}
		}
		for _, a := range []Action{ActionLock, ActionLockManage} {
			if Allowed(p, a, "cam1") {
				t.Errorf("%s may %s", r, a)
			}
		}
	}
	// Nobody but the auditor reads the access log, and nobody but the admin administers.
	for _, r := range Roles {
		p := &Principal{Name: "x", Roles: []Role{r}, AllCameras: true}
		if got := Allowed(p, ActionAudit, ""); got != (r == Auditor) {
			t.Errorf("%s: Allowed(audit) = %v", r, got)
		}
		if got := Allowed(p, ActionAdmin, ""); got != (r == Admin) {
			t.Errorf("%s: Allowed(admin) = %v", r, got)
		}
	}
}

func TestCameraGrants(t *testing.T) {
	t.Run("no grant gives nothing to per-camera roles", func(t *testing.T) {
		for _, r := range []Role{Dispatcher, Officer} {
			for _, cams := range []map[string]bool{nil, {}} {
				p := &Principal{Name: "x", Roles: []Role{r}, Cameras: cams}
				if Allowed(p, ActionLive, "cam1") {
					t.Errorf("%s without grants may watch cam1", r)
				}
				if AllowedAny(p, ActionLive) {
					t.Errorf("%s without grants: AllowedAny(live) = true, so the live page would be shown empty", r)
				}
			}
		}
	})
	t.Run("AllCameras reaches every camera", func(t *testing.T) {
		p := &Principal{Name: "x", Roles: []Role{Officer}, AllCameras: true}
		for _, cam := range []string{"cam1", "cam2", "added-later"} {
			if !Allowed(p, ActionPlayback, cam) {
				t.Errorf("officer with all cameras may not play back %s", cam)
			}
		}
		if !AllowedAny(p, ActionPlayback) {
			t.Error("officer with all cameras: AllowedAny(playback) = false")
		}
		// All cameras is still not more actions.
		if Allowed(p, ActionLockManage, "cam1") {
			t.Error("officer with all cameras may shorten or remove locks")
		}
	})
	t.Run("supervisor sees every camera whatever the grant", func(t *testing.T) {
		for _, cams := range []map[string]bool{nil, {"cam1": true}} {
			p := &Principal{Name: "x", Roles: []Role{Supervisor}, Cameras: cams}
			for _, cam := range []string{"cam1", "cam2"} {
				for _, a := range specRoles[Supervisor].actions {
					if !Allowed(p, a, cam) {
						t.Errorf("supervisor with grants %v may not %s on %s", cams, a, cam)
					}
				}
			}
			if !AllowedAny(p, ActionLive) {
				t.Errorf("supervisor with grants %v: AllowedAny(live) = false", cams)
			}
		}
	})
	t.Run("camera ids are compared exactly", func(t *testing.T) {
		p := &Principal{Name: "x", Roles: []Role{Dispatcher}, Cameras: map[string]bool{"cam1": true}}
		for _, cam := range []string{"CAM1", "cam1 ", " cam1", "cam", "cam10", "cam1/../cam2"} {
			if Allowed(p, ActionLive, cam) {
				t.Errorf("grant of cam1 allows %q", cam)
			}
		}
	})
}

func TestSeveralRoles(t *testing.T) {
	// With several roles an action is allowed if one role allows it, and each role keeps
	// its own camera scope: the auditor's every-camera lock list must not spread to the
	// dispatcher's live view.
	p := &Principal{Name: "x", Roles: []Role{Dispatcher, Auditor}, Cameras: map[string]bool{"cam1": true}}
	checks := []struct {
		a    Action
		cam  string
		want bool
	}{
		{ActionLive, "cam1", true},
		{ActionLive, "cam2", false},
		{ActionEvents, "cam2", false},
		{ActionLockList, "cam2", true},
		{ActionAudit, "", true},
		{ActionPlayback, "cam1", false},
		{ActionAdmin, "", false},
	}
	for _, c := range checks {
		if got := Allowed(p, c.a, c.cam); got != c.want {
			t.Errorf("dispatcher+auditor: Allowed(%s, %q) = %v, want %v", c.a, c.cam, got, c.want)
		}
	}

	// An admin who is also a dispatcher sees the dispatcher's cameras and no more.
	p = &Principal{Name: "x", Roles: []Role{Admin, Dispatcher}, Cameras: map[string]bool{"cam1": true}}
	if !Allowed(p, ActionLive, "cam1") || Allowed(p, ActionLive, "cam2") || Allowed(p, ActionPlayback, "cam1") {
		t.Error("admin+dispatcher: live must be cam1 only, and no playback")
	}
	if !Allowed(p, ActionAdmin, "") {
		t.Error("admin+dispatcher may not administer")
	}
}

func TestDenyByDefault(t *testing.T) {
	t.Run("nil principal", func(t *testing.T) {
		for _, a := range Actions {
			want := a == ActionPublic // the login page must answer before anyone is logged in
			for _, cam := range []string{"", "cam1"} {
				if got := Allowed(nil, a, cam); got != want {
					t.Errorf("Allowed(nil, %s, %q) = %v, want %v", a, cam, got, want)
				}
			}
		}
		for _, a := range roleActions() {
			if AllowedAny(nil, a) {
				t.Errorf("AllowedAny(nil, %s) = true", a)
			}
		}
		if (*Principal)(nil).Has(Admin) {
			t.Error("nil principal has a role")
		}
	})
	t.Run("zero principal", func(t *testing.T) {
		// A principal without roles (and without grants) may do nothing a role decides,
		// even with every camera granted. ActionSession ("logged in, nothing more") is
		// allowed to any non-nil principal by design: the principal is the session.
		for _, all := range []bool{false, true} {
			p := &Principal{AllCameras: all}
			for _, a := range roleActions() {
				if Allowed(p, a, "cam1") || Allowed(p, a, "") || AllowedAny(p, a) {
					t.Errorf("principal without roles (all cameras %v) may %s", all, a)
				}
			}
			if !Allowed(p, ActionSession, "") {
				t.Error("a logged-in principal may not see its own session pages")
			}
		}
	})
	t.Run("unknown role", func(t *testing.T) {
		// A role name that is not in the table (an old or hand-edited catalog row, a
		// different spelling) grants nothing.
		for _, r := range []Role{"root", "Admin", "SUPERVISOR", "supervisor ", ""} {
			p := &Principal{Name: "x", Roles: []Role{r}, AllCameras: true}
			for _, a := range roleActions() {
				if Allowed(p, a, "cam1") || Allowed(p, a, "") || AllowedAny(p, a) {
					t.Errorf("role %q may %s", r, a)
				}
			}
		}
	})
	t.Run("unknown action", func(t *testing.T) {
		// An action string no route should use (a typo in the route table) is refused to
		// every role, including supervisor and admin.
		for _, a := range []Action{"", "delete", "Live", "LIVE", "live ", "admin.users", "audit.read", "*"} {
			for _, r := range Roles {
				p := &Principal{Name: "x", Roles: []Role{r}, AllCameras: true}
				if Allowed(p, a, "cam1") || Allowed(p, a, "") || AllowedAny(p, a) {
					t.Errorf("%s may do unknown action %q", r, a)
				}
			}
			// Even holding every role that may be held together.
			p := &Principal{Name: "x", Roles: []Role{Dispatcher, Officer, Supervisor, Admin}, AllCameras: true}
			if Allowed(p, a, "cam1") || Allowed(p, a, "") || AllowedAny(p, a) {
				t.Errorf("all roles together may do unknown action %q", a)
			}
		}
	})
}

func TestPrincipalHas(t *testing.T) {
	p := &Principal{Roles: []Role{Officer, Auditor}}
	for _, r := range Roles {
		if got, want := p.Has(r), r == Officer || r == Auditor; got != want {
			t.Errorf("Has(%s) = %v, want %v", r, got, want)
		}
	}
}

func TestParseRoles(t *testing.T) {
	good := []struct {
		in   string
		want []Role
	}{
		{"officer", []Role{Officer}},
		{" officer , supervisor ", []Role{Officer, Supervisor}},
		// Duplicates collapse into one: the stored role list has each role once.
		{"officer,officer", []Role{Officer}},
		{"dispatcher,officer,dispatcher", []Role{Dispatcher, Officer}},
		// Empty items between commas are skipped, not an error.
		{"officer,,supervisor,", []Role{Officer, Supervisor}},
		// Sorted, so the same set always reads (and is stored) the same.
		{"supervisor,dispatcher", []Role{Dispatcher, Supervisor}},
		{"admin,dispatcher", []Role{Admin, Dispatcher}},
		{"auditor,officer", []Role{Auditor, Officer}},
	}
	for _, c := range good {
		got, err := ParseRoles(c.in)
		if err != nil {
			t.Errorf("ParseRoles(%q): %v", c.in, err)
			continue
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("ParseRoles(%q) = %v, want %v", c.in, got, c.want)
		}
	}
	for _, r := range Roles {
		got, err := ParseRoles(string(r))
		if err != nil || !slices.Equal(got, []Role{r}) {
			t.Errorf("ParseRoles(%q) = %v, %v", r, got, err)
		}
	}

	t.Run("unknown role is named", func(t *testing.T) {
		// The operator must see which word was wrong, and what the choices are.
		for _, c := range []struct{ in, bad string }{
			{"root", "root"},
			{"officer,superviser", "superviser"},
			{"Officer", "Officer"}, // names are case-sensitive: stored as typed
			{"officer;supervisor", "officer;supervisor"},
		} {
			_, err := ParseRoles(c.in)
			if err == nil {
				t.Errorf("ParseRoles(%q) accepted an unknown role", c.in)
				continue
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", c.bad)) {
				t.Errorf("ParseRoles(%q) error %q does not name %q", c.in, err, c.bad)
			}
			for _, r := range Roles {
				if !strings.Contains(err.Error(), string(r)) {
					t.Errorf("ParseRoles(%q) error %q does not list role %s", c.in, err, r)
				}
			}
		}
	})
	t.Run("empty", func(t *testing.T) {
		for _, in := range []string{"", " ", ",", " , ,"} {
			if roles, err := ParseRoles(in); err == nil {
				t.Errorf("ParseRoles(%q) = %v, want an error", in, roles)
			}
		}
	})
	t.Run("admin with auditor", func(t *testing.T) {
		// Nobody audits themselves, however the two are written.
		for _, in := range []string{"admin,auditor", "auditor,admin", "officer, auditor, admin", "admin,admin,auditor"} {
			if roles, err := ParseRoles(in); err == nil {
				t.Errorf("ParseRoles(%q) = %v, want an error", in, roles)
			} else if !strings.Contains(err.Error(), "admin") || !strings.Contains(err.Error(), "auditor") {
				t.Errorf("ParseRoles(%q) error %q does not say which roles conflict", in, err)
			}
		}
	})
}

func TestCheckRoles(t *testing.T) {
	if CheckRoles(nil) == nil || CheckRoles([]Role{}) == nil {
		t.Error("CheckRoles accepts no roles")
	}
	if CheckRoles([]Role{Admin, Auditor}) == nil || CheckRoles([]Role{Auditor, Officer, Admin}) == nil {
		t.Error("CheckRoles accepts admin with auditor")
	}
	// Every other combination of roles may be held together.
	for mask := 1; mask < 1<<len(Roles); mask++ {
		var roles []Role
		for i, r := range Roles {
			if mask&(1<<i) != 0 {
				roles = append(roles, r)
			}
		}
		conflict := slices.Contains(roles, Admin) && slices.Contains(roles, Auditor)
		if err := CheckRoles(roles); (err != nil) != conflict {
			t.Errorf("CheckRoles(%v) = %v", roles, err)
		}
	}
}

func TestNeedsCameras(t *testing.T) {
	// Dispatchers and officers are of no use without a camera grant; the command line
	// asks for one when creating such an account.
	cases := []struct {
		roles []Role
		want  bool
	}{
		{nil, false},
		{[]Role{Dispatcher}, true},
		{[]Role{Officer}, true},
		{[]Role{Supervisor}, false},
		{[]Role{Auditor}, false},
		{[]Role{Admin}, false},
		{[]Role{Admin, Dispatcher}, true},
		{[]Role{Auditor, Officer}, true},
		// As documented ("some role works only on granted cameras"), even though the
		// supervisor role covers every camera anyway.
		{[]Role{Officer, Supervisor}, true},
		{[]Role{"root"}, false},
	}
	for _, c := range cases {
		if got := NeedsCameras(c.roles); got != c.want {
			t.Errorf("NeedsCameras(%v) = %v, want %v", c.roles, got, c.want)
		}
	}
}

func TestRoleStrings(t *testing.T) {
	if got := RoleStrings([]Role{Officer, Supervisor}); !slices.Equal(got, []string{"officer", "supervisor"}) {
		t.Errorf("RoleStrings = %v", got)
	}
	// Non-nil for none: it ends up in JSON as [] rather than null.
	if got := RoleStrings(nil); got == nil || len(got) != 0 {
		t.Errorf("RoleStrings(nil) = %#v, want empty non-nil", got)
	}
}

// FuzzParseRoles checks that whatever an operator types, ParseRoles either refuses it or
// returns a valid, sorted, duplicate-free set of known roles that reads back the same.
func FuzzParseRoles(f *testing.F) {
	for _, s := range []string{"", ",", "officer", "officer,supervisor", "admin,auditor", "auditor, admin",
		"dispatcher,dispatcher", " supervisor ,, officer", "root", "Officer", "officer\x00", "officer,\tsupervisor\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		roles, err := ParseRoles(s)
		if err != nil {
			if roles != nil {
				t.Fatalf("ParseRoles(%q) returned %v with error %v", s, roles, err)
			}
			return
		}
		if len(roles) == 0 {
			t.Fatalf("ParseRoles(%q) accepted no roles", s)
		}
		if CheckRoles(roles) != nil {
			t.Fatalf("ParseRoles(%q) = %v, which CheckRoles refuses", s, roles)
		}
		if !slices.IsSorted(roles) {
			t.Fatalf("ParseRoles(%q) = %v, not sorted", s, roles)
		}
		for i, r := range roles {
			if !slices.Contains(Roles, r) {
				t.Fatalf("ParseRoles(%q) returned unknown role %q", s, r)
			}
			if i > 0 && roles[i-1] == r {
				t.Fatalf("ParseRoles(%q) returned %q twice", s, r)
			}
			if !strings.Contains(s, string(r)) {
				t.Fatalf("ParseRoles(%q) returned role %q that is not in the input", s, r)
			}
		}
		again, err := ParseRoles(strings.Join(RoleStrings(roles), ","))
		if err != nil || !slices.Equal(again, roles) {
			t.Fatalf("ParseRoles(%q) = %v does not read back: %v, %v", s, roles, again, err)
		}
	})
}
