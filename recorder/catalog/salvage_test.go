package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// salvageKey is the audit key of the salvage tests.
var salvageKey = []byte("0123456789abcdef0123456789abcdef")

// salvageFixtureFile is the fixture's closed SQLite file, made once per test binary: its
// 3000 access-log rows are 3000 committed transactions, the slowest part of these tests
// under the race detector, and each case damages a copy of the same file.
var salvageFixtureFile struct {
	once  sync.Once
	bytes []byte
	err   error
}

// salvageFixture writes the fixture catalog (see fillSalvageFixture) to path.
func salvageFixture(t *testing.T, path string) {
	t.Helper()
	f := &salvageFixtureFile
	f.once.Do(func() {
		dir, err := os.MkdirTemp("", "salvage-fixture-")
		if err != nil {
			f.err = err
			return
		}
		defer os.RemoveAll(dir)
		made := filepath.Join(dir, "catalog.db")
		if f.err = fillSalvageFixture(made); f.err == nil {
			f.bytes, f.err = os.ReadFile(made)
		}
	})
	if f.err != nil {
		t.Fatalf("salvage fixture: %v", f.err)
	}
	if err := os.WriteFile(path, f.bytes, 0o600); err != nil {
		t.Fatal(err)
	}
}

// fillSalvageFixture fills a catalog at path the way a running townwatch would: an account
// with a session, evidence locks, a deletion, motion events and (last, so that they take
// the file's last pages) many access-log rows. It closes the catalog, leaving no WAL.
func fillSalvageFixture(path string) error {
	ctx := context.Background()
	c, err := Open(ctx, path)
	if err != nil {
		return err
	}
	uid, err := c.CreateUser(ctx, User{Name: "novak", PasswordHash: "$argon2id$fake", Roles: []string{"officer"}, AllCameras: true, Created: t0, Changed: t0})
	if err != nil {
		return err
	}
	if err := c.CreateSession(ctx, Session{TokenHash: sha(1), UserID: uid, Created: t0, LastSeen: t0, Client: "127.0.0.1"}); err != nil {
		return err
	}
	for i := range 2 {
		if _, err := c.AddLock(ctx, Lock{Camera: "cam-a", Start: at(time.Duration(i) * time.Hour), End: at(time.Duration(i)*time.Hour + time.Minute),
			Reason: fmt.Sprintf("case %d", i), Created: t0, Actor: "novak"}); err != nil {
			return err
		}
	}
	id, err := c.CreateSegment(ctx, Segment{Camera: "cam-a", Stream: "main", Start: at(-time.Hour), Path: segPath("cam-a", "main", at(-time.Hour)),
		Codec: "H264", Width: 1920, Height: 1080})
	if err != nil {
		return err
	}
	if err := c.CloseSegment(ctx, id, at(-time.Hour+time.Minute), 1000, 25, sha(int(id)), nil); err != nil {
		return err
	}
	if _, err := c.DeleteSegment(ctx, id, "age", at(0)); err != nil {
		return err
	}
	if err := c.InsertEvent(ctx, Event{ID: "0190b3c4-0000-7000-8000-000000000001", Camera: "cam-a", Start: t0, Score: 0.5, Zones: []string{}}); err != nil {
		return err
	}
	for i := range 3000 {
		if _, err := c.AppendAudit(ctx, salvageKey, AuditEntry{Time: at(time.Duration(i) * time.Second), Actor: "novak",
			Action: "live.start", Camera: "cam-a", Outcome: AuditOK, Reason: fmt.Sprintf("row %d with some words to fill pages", i)}); err != nil {
			return err
		}
	}
	if err := c.Close(); err != nil {
		return err
	}
	if _, err := os.Stat(path + "-wal"); err == nil {
		return fmt.Errorf("%s-wal survived a clean close", path)
	}
	return nil
}

// pageSize and pageCount read the fixture's geometry before it is damaged.
func pageGeometry(t *testing.T, path string) (size, count int64, roots map[string]int64) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow(`PRAGMA page_size`).Scan(&size); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`PRAGMA page_count`).Scan(&count); err != nil {
		t.Fatal(err)
	}
	roots = map[string]int64{}
	rows, err := db.Query(`SELECT name, rootpage FROM sqlite_schema WHERE type = 'table'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var root int64
		if err := rows.Scan(&name, &root); err != nil {
			t.Fatal(err)
		}
		roots[name] = root
	}
	return size, count, roots
}

// auditLeaf is a leaf page of the audit table in the middle of the log.
func auditLeaf(t *testing.T, path string) int64 {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var page int64
	if err := db.QueryRow(`SELECT pageno FROM dbstat WHERE name = 'audit' AND pagetype = 'leaf' ORDER BY pageno
LIMIT 1 OFFSET (SELECT count(*) / 2 FROM dbstat WHERE name = 'audit' AND pagetype = 'leaf')`).Scan(&page); err != nil {
		t.Fatal(err)
	}
	return page
}

// garble overwrites n bytes at off with a pattern no SQLite structure starts with.
func garble(t *testing.T, path string, off, n int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(0xA5 ^ i)
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestCheckAndSalvageDamagedCatalogs(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// damage returns the tables it expects to be incomplete after salvage
		damage       func(t *testing.T, path string) []string
		locksIntact  bool
		usersIntact  bool
		openRefuses  bool // Open itself fails on this damage
		minAuditRows int
		brokenChain  bool // rows are lost from the middle of the access log
	}{
		{name: "header", damage: func(t *testing.T, path string) []string {
			garble(t, path, 0, 100)
			return nil
		}, locksIntact: true, usersIntact: true, openRefuses: true, minAuditRows: 3000},
		{name: "page 2", damage: func(t *testing.T, path string) []string {
			size, _, _ := pageGeometry(t, path)
			garble(t, path, size, size)
			return nil
		}, locksIntact: true, usersIntact: true, openRefuses: true, minAuditRows: 3000},
		{name: "last page", damage: func(t *testing.T, path string) []string {
			size, count, _ := pageGeometry(t, path)
			garble(t, path, (count-1)*size, size)
			return nil
		}, locksIntact: true, usersIntact: true, minAuditRows: 2800},
		{name: "locks root", damage: func(t *testing.T, path string) []string {
			size, _, roots := pageGeometry(t, path)
			garble(t, path, (roots["locks"]-1)*size, size)
			return []string{"locks"}
		}, locksIntact: false, usersIntact: true, minAuditRows: 3000},
		{name: "audit leaf in the middle", damage: func(t *testing.T, path string) []string {
			size, _, _ := pageGeometry(t, path)
			garble(t, path, (auditLeaf(t, path)-1)*size, size)
			return []string{"audit"}
		}, locksIntact: true, usersIntact: true, minAuditRows: 2900, brokenChain: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "catalog.db")
			salvageFixture(t, path)
			if err := Check(ctx, path); err != nil {
				t.Fatalf("Check of the undamaged catalog: %v", err)
			}
			incomplete := tc.damage(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			err = Check(ctx, path)
			if !errors.Is(err, ErrCorrupt) || !IsCorrupt(err) {
				t.Fatalf("Check of the damaged catalog = %v; want ErrCorrupt", err)
			}
			if c, err := Open(ctx, path); err == nil {
				c.Close()
				if tc.openRefuses {
					t.Errorf("Open accepted the damaged catalog")
				}
			} else if !IsCorrupt(err) {
				t.Errorf("Open's error %v is not recognised as corruption", err)
			}

			fresh := filepath.Join(dir, "new.db")
			c, err := Open(ctx, fresh)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			rep, err := Salvage(ctx, path, c)
			if err != nil {
				t.Fatalf("Salvage: %v", err)
			}
			t.Logf("salvage: %s", rep)
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(after) != string(before) {
				t.Errorf("Salvage changed the damaged file it read (it is kept for forensics)")
			}
			if got := rep.Complete("locks"); got != tc.locksIntact {
				t.Errorf("report says locks complete = %v; want %v", got, tc.locksIntact)
			}
			for _, tbl := range incomplete {
				if rep.Complete(tbl) {
					t.Errorf("report says %s is complete", tbl)
				}
			}

			users, err := c.Users(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tc.usersIntact && (len(users) != 1 || users[0].Name != "novak" || users[0].PasswordHash != "$argon2id$fake") {
				t.Errorf("users after salvage: %+v; want novak with his hash", users)
			}
			if tc.usersIntact {
				if _, u, err := c.SessionUser(ctx, sha(1)); err != nil || u.Name != "novak" {
					t.Errorf("session after salvage: %v %+v", err, u)
				}
			}
			locks, err := c.Locks(ctx, t0)
			if err != nil {
				t.Fatal(err)
			}
			if tc.locksIntact && len(locks) != 2 {
				t.Errorf("locks after salvage: %+v; want 2", locks)
			}
			dels, err := c.Deletions(ctx, at(-24*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if len(dels) != 1 {
				t.Errorf("deletions after salvage: %+v; want 1", dels)
			}
			if _, err := c.Event(ctx, "0190b3c4-0000-7000-8000-000000000001"); err != nil {
				t.Errorf("event after salvage: %v", err)
			}
			_, _, n, err := c.AuditHead(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n < int64(tc.minAuditRows) {
				t.Errorf("%d audit rows salvaged; want at least %d", n, tc.minAuditRows)
			}
			if tc.minAuditRows == 3000 {
				if v, err := c.VerifyAudit(ctx, salvageKey); err != nil || v.FirstBad != nil {
					t.Errorf("the salvaged audit chain does not verify: %v %+v", err, v)
				}
			}
			if tc.brokenChain {
				v, err := c.VerifyAudit(ctx, salvageKey)
				if err != nil || v.FirstBad == nil {
					t.Errorf("the access log lost rows in the middle and verifies: %v %+v", err, v)
				} else {
					t.Logf("verify: %+v", *v.FirstBad)
				}
				if n >= 3000 {
					t.Errorf("%d audit rows after losing a page of them", n)
				}
			}
			// A segment id of the old catalog is never reused.
			id, err := c.CreateSegment(ctx, Segment{Camera: "cam-a", Stream: "main", Start: at(time.Hour), End: at(time.Hour),
				Path: segPath("cam-a", "main", at(time.Hour)), Codec: "H264", Open: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(dels) == 1 && id <= dels[0].SegmentID {
				t.Errorf("new segment id %d reuses the deleted segment's id %d", id, dels[0].SegmentID)
			}
			if _, err := json.Marshal(rep); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestSalvageOfUnreadableFileLosesEverythingAndSaysSo(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "catalog.db")
	if err := os.WriteFile(path, []byte("this was never a database, only garbage that fills a page or so"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Check(ctx, path); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Check = %v; want ErrCorrupt", err)
	}
	c, err := Open(ctx, filepath.Join(dir, "new.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rep, err := Salvage(ctx, path, c)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Complete("locks") || rep.Complete("users") {
		t.Errorf("report of an unreadable file claims complete tables: %s", rep)
	}
}

// A catalog damaged before migration 8 keeps its hold in the old one-row table: a forced
// hold there (retention held after evidence locks were lost) must survive the rebuild,
// or retention would delete footage again.
func TestSalvageKeepsTheHoldOfACatalogFromBeforeMigration8(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "catalog.db")
	orig := migrations
	migrations = orig[:7]
	c, err := Open(ctx, path)
	migrations = orig
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.w.ExecContext(ctx, `INSERT INTO retention_hold (id, since_ns, reason, planned_bytes, total_bytes, confirmed_ns, forced)
VALUES (1, $1, 'catalog rebuilt: evidence locks may be lost', 0, 0, NULL, 1)`, at(0).UnixNano()); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	fresh, err := Open(ctx, filepath.Join(dir, "new.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	rep, err := Salvage(ctx, path, fresh)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Complete("retention_holds") {
		t.Errorf("report: %s; want retention_holds complete", rep)
	}
	want := RetentionHold{Since: at(0), Reason: "catalog rebuilt: evidence locks may be lost", Forced: true}
	if got, held, err := fresh.RetentionHold(ctx); err != nil || !held || got != want {
		t.Errorf("hold after salvaging a version-7 catalog: %+v (held %v, err %v), want %+v", got, held, err, want)
	}
}
