package catalog

import (
	"context"
	"crypto/sha256"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// tokenHash is the stored form of the n-th test session's cookie token.
func tokenHash(n int) string {
	return fmt.Sprintf("%x", sha256.Sum256(fmt.Appendf(nil, "token %d", n)))
}

// createSession stores a session of user created and last seen at t0.
func createSession(t *testing.T, c *Catalog, hash string, user int64) {
	t.Helper()
	if err := c.CreateSession(context.Background(), Session{TokenHash: hash, UserID: user, Created: t0, Client: "10.0.0.7"}); err != nil {
		t.Fatal(err)
	}
}

// A session is read back together with its user, exactly as stored.
func TestSessionRoundTrip(t *testing.T) {
	ctx := context.Background()
	c, _ := openTest(t)
	uid, err := c.CreateUser(ctx, User{Name: "novakova", PasswordHash: argonHash, Roles: []string{"officer"},
		Cameras: []string{"namesti"}, Created: t0})
	if err != nil {
		t.Fatal(err)
	}
	prague, err := time.LoadLocation("Europe/Prague")
	if err != nil {
		t.Fatal(err)
	}
	in := Session{TokenHash: tokenHash(1), UserID: uid, Created: at(time.Minute).In(prague), Client: "[2001:db8::7]:51234"}
	if err := c.CreateSession(ctx, in); err != nil {
		t.Fatal(err)
	}
	want := Session{TokenHash: tokenHash(1), UserID: uid, Created: at(time.Minute), LastSeen: at(time.Minute), Client: "[2001:db8::7]:51234"}
	wantUser := User{ID: uid, Name: "novakova", PasswordHash: argonHash, Roles: []string{"officer"},
		Cameras: []string{"namesti"}, Created: t0, Changed: t0}
	s, u, err := c.SessionUser(ctx, tokenHash(1))
	if err != nil || !reflect.DeepEqual(s, want) || !reflect.DeepEqual(u, wantUser) {
		t.Errorf("SessionUser =\n%+v\n%+v\n%v\nwant\n%+v\n%+v", s, u, err, want, wantUser)
	}

	in.LastSeen = at(time.Hour)
	in.TokenHash = tokenHash(2)
	if err := c.CreateSession(ctx, in); err != nil {
		t.Fatal(err)
	}
	if s, _, err := c.SessionUser(ctx, tokenHash(2)); err != nil || !s.LastSeen.Equal(at(time.Hour)) {
		t.Errorf("SessionUser(2) = %+v, %v; want last seen %v", s, err, at(time.Hour))
	}

	_, _, err = c.SessionUser(ctx, tokenHash(9))
	wantErr(t, err, ErrNotFound, "catalog: session user: not found")
	for _, tc := range []struct {
		name   string
		s      Session
		target error
		want   string
	}{
		{"duplicate", Session{TokenHash: tokenHash(1), UserID: uid, Created: t0}, ErrExists, "catalog: create session for user 1: already exists"},
		{"unknown user", Session{TokenHash: tokenHash(3), UserID: 42, Created: t0}, ErrNotFound, "catalog: create session for user 42: user 42: not found"},
		{"raw token", Session{TokenHash: "secret-cookie-token", UserID: uid, Created: t0}, nil, "catalog: create session for user 1: token hash must be 64 lowercase hex digits"},
		{"upper-case hash", Session{TokenHash: fmt.Sprintf("%X", sha256.Sum256(nil)), UserID: uid, Created: t0}, nil, "token hash must be 64 lowercase hex digits"},
		{"no created", Session{TokenHash: tokenHash(3), UserID: uid}, nil, "catalog: create session for user 1: created is not set"},
	} {
		wantErr(t, c.CreateSession(ctx, tc.s), tc.target, tc.want)
	}
	if _, _, err := c.SessionUser(ctx, tokenHash(3)); err == nil {
		t.Error("a refused session was stored")
	}
}

// last_seen only moves forward: a request that was slow to arrive cannot make a busy
// session look idle.
func TestTouchSession(t *testing.T) {
	ctx := context.Background()
	c, _ := openTest(t)
	uid := createUser(t, c, "novakova")
	h := tokenHash(1)
	createSession(t, c, h, uid)
	for _, tc := range []struct {
		touch, want time.Time
	}{
		{at(time.Minute), at(time.Minute)},
		{at(30 * time.Second), at(time.Minute)},
		{at(time.Minute), at(time.Minute)},
		{at(time.Minute + 1), at(time.Minute + 1)},
	} {
		if err := c.TouchSession(ctx, h, tc.touch); err != nil {
			t.Fatal(err)
		}
		s, _, err := c.SessionUser(ctx, h)
		if err != nil || !s.LastSeen.Equal(tc.want) || !s.Created.Equal(t0) {
			t.Errorf("after Touch(%v): %+v, %v; want last seen %v, created %v", tc.touch, s, err, tc.want, t0)
		}
	}
	wantErr(t, c.TouchSession(ctx, tokenHash(2), at(time.Hour)), ErrNotFound, "catalog: touch session: not found")
	if err := c.DeleteSession(ctx, h); err != nil {
		t.Fatal(err)
	}
	wantErr(t, c.TouchSession(ctx, h, at(time.Hour)), ErrNotFound, "catalog: touch session: not found")
	wantErr(t, c.DeleteSession(ctx, h), ErrNotFound, "catalog: delete session: not found")
}

func TestDeleteUserSessions(t *testing.T) {
	ctx := context.Background()
	c, _ := openTest(t)
	alice, bob := createUser(t, c, "alice"), createUser(t, c, "bob")
	createSession(t, c, tokenHash(1), alice)
	createSession(t, c, tokenHash(2), alice)
	createSession(t, c, tokenHash(3), bob)
	if n, err := c.DeleteUserSessions(ctx, alice); err != nil || n != 2 {
		t.Errorf("DeleteUserSessions(alice) = %d, %v; want 2", n, err)
	}
	if got := liveSessions(t, c, tokenHash(1), tokenHash(2), tokenHash(3)); !reflect.DeepEqual(got, []string{tokenHash(3)}) {
		t.Errorf("sessions left %v, want only bob's", got)
	}
	if n, err := c.DeleteUserSessions(ctx, alice); err != nil || n != 0 {
		t.Errorf("DeleteUserSessions(alice) again = %d, %v; want 0", n, err)
	}
}

// Sessions end when idle too long or, however busy, when too old; a fresh one stays.
func TestDeleteStaleSessions(t *testing.T) {
	h := time.Hour
	for _, tc := range []struct {
		name                      string
		idleBefore, createdBefore time.Time
		want                      []string // sessions left
		deleted                   int64
	}{
		{"both", at(9 * h), at(3 * h), []string{"fresh"}, 2},
		{"idle only", at(9 * h), time.Time{}, []string{"busy but old", "fresh"}, 1},
		{"age only", time.Time{}, at(3 * h), []string{"idle", "fresh"}, 1},
		{"neither", time.Time{}, time.Time{}, []string{"idle", "busy but old", "fresh"}, 0},
		// Bounds are exclusive: a session last seen exactly at idleBefore stays.
		{"on the bounds", at(4 * h), at(0), []string{"idle", "busy but old", "fresh"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			c, _ := openTest(t)
			uid := createUser(t, c, "novakova")
			sessions := []struct {
				name          string
				created, seen time.Time
				hash          string
			}{
				{"idle", at(4 * h), at(4 * h), tokenHash(1)},
				{"busy but old", at(0), at(10 * h), tokenHash(2)},
				{"fresh", at(5 * h), at(10 * h), tokenHash(3)},
			}
			for _, s := range sessions {
				if err := c.CreateSession(ctx, Session{TokenHash: s.hash, UserID: uid, Created: s.created, LastSeen: s.seen}); err != nil {
					t.Fatal(err)
				}
			}
			n, err := c.DeleteStaleSessions(ctx, tc.idleBefore, tc.createdBefore)
			if err != nil || n != tc.deleted {
				t.Errorf("DeleteStaleSessions = %d, %v; want %d", n, err, tc.deleted)
			}
			left := []string{}
			for _, s := range sessions {
				if _, _, err := c.SessionUser(ctx, s.hash); err == nil {
					left = append(left, s.name)
				}
			}
			if !reflect.DeepEqual(left, tc.want) {
				t.Errorf("sessions left %v, want %v", left, tc.want)
			}
		})
	}
}

// The database itself ties sessions to users, whatever code writes to it.
func TestSessionForeignKey(t *testing.T) {
	ctx := context.Background()
	c, _ := openTest(t)
	uid := createUser(t, c, "novakova")
	createSession(t, c, tokenHash(1), uid)
	_, err := c.w.ExecContext(ctx, `INSERT INTO sessions (token_hash, user_id, created_ns, last_seen_ns, client) VALUES ($1, 42, 1, 1, '')`, tokenHash(2))
	wantForeignKeyError(t, err)
	_, err = c.w.ExecContext(ctx, `DELETE FROM users WHERE id = $1`, uid)
	wantForeignKeyError(t, err)
}
