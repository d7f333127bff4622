package catalog

import (
	"context"
	"reflect"
	"testing"
	"time"
)

const argonHash = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"

// createUser stores a user with a password hash and no grants, created at t0.
func createUser(t *testing.T, c *Catalog, name string) int64 {
	t.Helper()
	id, err := c.CreateUser(context.Background(), User{Name: name, PasswordHash: argonHash, Roles: []string{"officer"}, Created: t0})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// A user is read back exactly as stored, by name and by id: roles and cameras sorted
// without duplicates, times UTC to the nanosecond, empty lists as empty slices.
func TestUserRoundTrip(t *testing.T) {
	ctx := context.Background()
	c, _ := openTest(t)
	if n, err := c.CountUsers(ctx); err != nil || n != 0 {
		t.Fatalf("CountUsers on a new catalog = %d, %v; want 0", n, err)
	}
	prague, err := time.LoadLocation("Europe/Prague")
	if err != nil {
		t.Fatal(err)
	}
	in := User{ID: 999, Name: "novakova", PasswordHash: argonHash, Roles: []string{"officer", "admin", "officer"},
		Cameras: []string{"namesti", `most "B"`, "namesti"}, Disabled: true, Created: at(0).In(prague), Changed: at(time.Second)}
	id, err := c.CreateUser(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	want := User{ID: id, Name: "novakova", PasswordHash: argonHash, Roles: []string{"admin", "officer"},
		Cameras: []string{`most "B"`, "namesti"}, Disabled: true, Created: t0, Changed: at(time.Second)}
	if got, err := c.UserByName(ctx, "novakova"); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("UserByName =\n%+v, %v\nwant\n%+v", got, err, want)
	}
	if got, err := c.UserByID(ctx, id); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("UserByID(%d) =\n%+v, %v\nwant\n%+v", id, got, err, want)
	}

	adamID, err := c.CreateUser(ctx, User{Name: "adam", PasswordHash: "h", AllCameras: true, Created: at(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	adam := User{ID: adamID, Name: "adam", PasswordHash: "h", Roles: []string{}, AllCameras: true, Cameras: []string{},
		Created: at(time.Minute), Changed: at(time.Minute)}
	if got, err := c.Users(ctx); err != nil || !reflect.DeepEqual(got, []User{adam, want}) {
		t.Errorf("Users =\n%+v, %v\nwant (by name)\n%+v", got, err, []User{adam, want})
	}
	if n, err := c.CountUsers(ctx); err != nil || n != 2 {
		t.Errorf("CountUsers = %d, %v; want 2", n, err)
	}

	_, err = c.CreateUser(ctx, User{Name: "novakova", PasswordHash: "other", Created: at(time.Hour)})
	wantErr(t, err, ErrExists, "catalog: create user novakova: already exists")
	if got, err := c.UserByName(ctx, "novakova"); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("after a refused duplicate UserByName = %+v, %v; want unchanged", got, err)
	}

	_, err = c.UserByName(ctx, "nikdo")
	wantErr(t, err, ErrNotFound, "catalog: user nikdo: not found")
	_, err = c.UserByID(ctx, 42)
	wantErr(t, err, ErrNotFound, "catalog: user 42: not found")
	wantErr(t, c.SetPassword(ctx, "nikdo", "h", at(1)), ErrNotFound, "catalog: set password of nikdo: not found")
	wantErr(t, c.SetDisabled(ctx, "nikdo", true, at(1)), ErrNotFound, "catalog: disable user nikdo: not found")
	wantErr(t, c.SetDisabled(ctx, "nikdo", false, at(1)), ErrNotFound, "catalog: enable user nikdo: not found")
	wantErr(t, c.SetGrants(ctx, "nikdo", nil, true, nil, at(1)), ErrNotFound, "catalog: set grants of nikdo: not found")
}

func TestCreateUserRejects(t *testing.T) {
	ctx := context.Background()
	c, _ := openTest(t)
	good := User{Name: "novakova", PasswordHash: argonHash, Roles: []string{"officer"}, Cameras: []string{"namesti"}, Created: t0}
	for _, tc := range []struct {
		name   string
		mutate func(*User)
		want   string
	}{
		{"no name", func(u *User) { u.Name = "" }, "catalog: create user : name is empty"},
		{"no password hash", func(u *User) { u.PasswordHash = "" }, "catalog: create user novakova: password hash is empty"},
		{"no created", func(u *User) { u.Created = time.Time{} }, "catalog: create user novakova: created is not set"},
		{"role with a comma", func(u *User) { u.Roles = []string{"officer,admin"} }, `catalog: create user novakova: role "officer,admin": must be non-empty and hold no comma`},
		{"empty role", func(u *User) { u.Roles = []string{""} }, `catalog: create user novakova: role "": must be non-empty and hold no comma`},
		{"empty camera", func(u *User) { u.Cameras = []string{"namesti", ""} }, "catalog: create user novakova: camera id is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := good
			tc.mutate(&u)
			_, err := c.CreateUser(ctx, u)
			wantErr(t, err, nil, tc.want)
		})
	}
	if n, err := c.CountUsers(ctx); err != nil || n != 0 {
		t.Errorf("CountUsers after refused creates = %d, %v; want 0", n, err)
	}
}

// liveSessions returns which of the given token hashes still have a session.
func liveSessions(t *testing.T, c *Catalog, hashes ...string) []string {
	t.Helper()
	out := []string{}
	for _, h := range hashes {
		if _, _, err := c.SessionUser(context.Background(), h); err == nil {
			out = append(out, h)
		}
	}
	return out
}

// A password change and disabling log the user out everywhere, in the same transaction,
// and leave every other user's sessions alone; re-enabling logs nobody out.
func TestPasswordAndDisableEndSessions(t *testing.T) {
	ctx := context.Background()
	c, _ := openTest(t)
	alice, bob := createUser(t, c, "alice"), createUser(t, c, "bob")
	a1, a2, b1, b2 := tokenHash(1), tokenHash(2), tokenHash(3), tokenHash(4)
	createSession(t, c, a1, alice)
	createSession(t, c, a2, alice)
	createSession(t, c, b1, bob)
	createSession(t, c, b2, bob)

	if err := c.SetPassword(ctx, "alice", "new hash", at(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := liveSessions(t, c, a1, a2, b1, b2); !reflect.DeepEqual(got, []string{b1, b2}) {
		t.Errorf("after alice's password change sessions %v remain, want only bob's %v", got, []string{b1, b2})
	}
	u, err := c.UserByName(ctx, "alice")
	if err != nil || u.PasswordHash != "new hash" || !u.Changed.Equal(at(time.Hour)) || !u.Created.Equal(t0) {
		t.Errorf("after SetPassword alice = %+v, %v; want hash %q, changed %v, created %v", u, err, "new hash", at(time.Hour), t0)
	}
	wantErr(t, c.SetPassword(ctx, "alice", "", at(time.Hour)), nil, "catalog: set password of alice: password hash is empty")

	createSession(t, c, a1, alice)
	if err := c.SetDisabled(ctx, "bob", true, at(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := liveSessions(t, c, a1, b1, b2); !reflect.DeepEqual(got, []string{a1}) {
		t.Errorf("after disabling bob sessions %v remain, want only alice's %v", got, []string{a1})
	}
	if u, err := c.UserByName(ctx, "bob"); err != nil || !u.Disabled || !u.Changed.Equal(at(2*time.Hour)) {
		t.Errorf("after SetDisabled(true) bob = %+v, %v; want disabled, changed %v", u, err, at(2*time.Hour))
	}
	err = c.CreateSession(ctx, Session{TokenHash: b1, UserID: bob, Created: at(2 * time.Hour)})
	wantErr(t, err, nil, "catalog: create session for user 2: user 2 is disabled")

	if err := c.SetDisabled(ctx, "bob", false, at(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	createSession(t, c, b1, bob)
	if err := c.SetDisabled(ctx, "bob", false, at(4*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := liveSessions(t, c, a1, b1); !reflect.DeepEqual(got, []string{a1, b1}) {
		t.Errorf("after enabling bob again sessions %v remain, want %v", got, []string{a1, b1})
	}
	if u, err := c.UserByName(ctx, "bob"); err != nil || u.Disabled || !u.Changed.Equal(at(4*time.Hour)) {
		t.Errorf("after SetDisabled(false) bob = %+v, %v; want enabled, changed %v", u, err, at(4*time.Hour))
	}
}

func TestSetGrants(t *testing.T) {
	ctx := context.Background()
	c, _ := openTest(t)
	id := createUser(t, c, "novakova")
	session := tokenHash(1)
	createSession(t, c, session, id)
	for _, tc := range []struct {
		name          string
		roles         []string
		all           bool
		cameras       []string
		wantRoles     []string
		wantCameras   []string
		wantAll       bool
		changedOffset time.Duration
	}{
		{"some cameras", []string{"officer", "dispatch"}, false, []string{"most", "namesti", "most"}, []string{"dispatch", "officer"}, []string{"most", "namesti"}, false, time.Minute},
		// The list is kept under "all cameras", so withdrawing "all" falls back to it.
		{"all cameras keeps the list", []string{"admin"}, true, []string{"namesti"}, []string{"admin"}, []string{"namesti"}, true, 2 * time.Minute},
		{"nothing", nil, false, nil, []string{}, []string{}, false, 3 * time.Minute},
	} {
		if err := c.SetGrants(ctx, "novakova", tc.roles, tc.all, tc.cameras, at(tc.changedOffset)); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		want := User{ID: id, Name: "novakova", PasswordHash: argonHash, Roles: tc.wantRoles, AllCameras: tc.wantAll,
			Cameras: tc.wantCameras, Created: t0, Changed: at(tc.changedOffset)}
		if got, err := c.UserByName(ctx, "novakova"); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: UserByName =\n%+v, %v\nwant\n%+v", tc.name, got, err, want)
		}
	}
	wantErr(t, c.SetGrants(ctx, "novakova", []string{"a,b"}, false, nil, at(time.Hour)), nil,
		`catalog: set grants of novakova: role "a,b": must be non-empty and hold no comma`)
	wantErr(t, c.SetGrants(ctx, "novakova", nil, false, nil, time.Time{}), nil, "catalog: set grants of novakova: at is not set")
	// Grants are read per request; changing them logs nobody out.
	if got := liveSessions(t, c, session); len(got) != 1 {
		t.Errorf("SetGrants ended the user's session")
	}
}

// A catalog made before access control is upgraded in place: its locks stay, with no
// recorded actor, and users, sessions and audit rows can be stored.
func TestMigrationAddsAccessControl(t *testing.T) {
	ctx := context.Background()
	path := newTarget(t)
	schema := testMigrations()
	orig := *schema
	t.Cleanup(func() { *schema = orig })
	*schema = orig[:2]
	c, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.w.ExecContext(ctx, `INSERT INTO cameras (id) VALUES ('namesti')`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.w.ExecContext(ctx, `INSERT INTO locks (camera, start_ns, end_ns, reason, created_ns) VALUES ('namesti', $1, $2, 'case 2026/17', $1)`,
		t0.UnixNano(), at(time.Minute).UnixNano()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateUser(ctx, User{Name: "novakova", PasswordHash: argonHash, Created: t0}); err == nil {
		t.Fatal("CreateUser on a version 2 catalog succeeded; the test does not exercise the upgrade")
	}
	c.Close()

	*schema = orig
	c, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := []Lock{{ID: 1, Camera: "namesti", Start: t0, End: at(time.Minute), Reason: "case 2026/17", Created: t0}}
	if got, err := c.Locks(ctx, t0); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Locks after upgrade = %+v, %v; want %+v (no actor)", got, err, want)
	}
	uid := createUser(t, c, "novakova")
	createSession(t, c, tokenHash(1), uid)
	appendAudit(t, c, auditEntry(1))
	if v := verify(t, c); v.Rows != 1 || v.FirstBad != nil {
		t.Errorf("VerifyAudit after upgrade = %+v", v)
	}
}
