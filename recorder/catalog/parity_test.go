package catalog

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog/pgtest"
)

// history writes the same life of a small installation into c through the API: footage
// recorded, closed, deleted by retention, locked; motion events and grid; accounts,
// sessions and audit rows; an export, a case and bookmarks. Names sort differently by
// bytes and by a language's rules ("Zámek" vs "zahrada"), so a collation difference
// shows. It returns the id of the deleted segment, the highest the catalog gave.
func history(t *testing.T, c *Catalog) int64 {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, cam := range []string{"zahrada", "Zámek", "most"} {
		for m := range 3 {
			addClosed(t, c, cam, at(time.Duration(m)*time.Minute), at(time.Duration(m+1)*time.Minute-time.Duration(i)*time.Second), int64(1000*(m+1)))
		}
	}
	open := addOpen(t, c, "most", at(3*time.Minute))
	must(c.UpdateOpenSegment(ctx, open, at(3*time.Minute+30*time.Second), 500, 12))
	_, err := c.AddLock(ctx, Lock{Camera: "most", Start: at(0), End: at(time.Minute), Reason: "č.j. KRPP-77/2026", Created: at(time.Hour), Actor: "novakova"})
	must(err)
	_, err = c.DeleteSegment(ctx, 1, "age", at(2*time.Hour)) // zahrada's first
	must(err)
	last := addClosed(t, c, "zahrada", at(10*time.Minute), at(11*time.Minute), 77)
	_, err = c.DeleteSegment(ctx, last, "quota", at(3*time.Hour))
	must(err)
	must(c.SetRetentionHold(ctx, RetentionHold{Since: at(4 * time.Hour), Reason: "would delete 90%", PlannedBytes: 9, TotalBytes: 10, Forced: true}))

	must(c.InsertEvent(ctx, event("0192-a", "most", at(10*time.Second), at(20*time.Second), "vjezd", "chodník")))
	must(c.InsertEvent(ctx, event("0192-b", "Zámek", at(30*time.Second), time.Time{})))
	var cells GridCells
	cells[3] = 0x81
	var minute [60]GridCells
	minute[10], minute[11] = cells, cells
	must(c.AddGridMinute(ctx, GridMinute{Camera: "most", Start: at(0).Truncate(time.Minute), Seconds: minute}))

	for _, name := range []string{"zeman", "Álvarez", "novakova"} {
		uid, err := c.CreateUser(ctx, User{Name: name, PasswordHash: argonHash, Roles: []string{"officer"}, Cameras: []string{"most", "Zámek"}, Created: at(0)})
		must(err)
		must(c.CreateSession(ctx, Session{TokenHash: tokenHash(int(uid)), UserID: uid, Created: at(0), LastSeen: at(time.Minute), Client: "10.0.0.7"}))
	}
	must(c.SetDisabled(ctx, "zeman", true, at(time.Hour)))
	must(c.SetGrants(ctx, "novakova", []string{"admin", "officer"}, true, nil, at(time.Hour)))
	var auditID int64
	for i := range 4 {
		e, err := c.AppendAudit(ctx, auditKey, auditEntry(i))
		must(err)
		auditID = e.ID
	}
	job, err := c.CreateExport(ctx, ExportJob{Created: at(time.Hour), Actor: "novakova", Cameras: []string{"most"}, From: at(0), To: at(time.Minute),
		Reason: "krádež", Case: "KRPP-77/2026", Recipient: "OČTŘ", AuditID: auditID, State: "queued"})
	must(err)
	must(c.SetExportState(ctx, job, "running", "", "", 0, "", at(time.Hour)))
	must(c.SetExportState(ctx, job, "done", "", "exports/1.zip", 4096, sha(9), at(2*time.Hour)))
	caseID, err := c.AddCase(ctx, Case{Ref: "KRPP-77/2026", Title: "Krádež kola", Actor: "novakova", Created: at(time.Hour)})
	must(err)
	_, err = c.AddBookmark(ctx, Bookmark{Camera: "most", From: at(0), To: at(10 * time.Second), Title: "kolo", CaseID: caseID, Actor: "novakova", Created: at(time.Hour)})
	must(err)
	_, err = c.AddBookmark(ctx, Bookmark{Camera: "Zámek", From: at(0), To: at(5 * time.Second), Title: "auto", Actor: "zeman", Created: at(time.Hour)})
	must(err)
	return last
}

// readBack is what the API answers about c, every list and lookup the recorder, the
// viewer and the CLI use, as one text to compare.
func readBack(t *testing.T, c *Catalog) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	add := func(name string, v any, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		fmt.Fprintf(&b, "%s: %+v\n", name, v)
	}
	segs, err := c.AllSegments(ctx)
	add("AllSegments", segs, err)
	v, err := c.OpenSegments(ctx)
	add("OpenSegments", v, err)
	v, err = c.Segments(ctx, "most", at(30*time.Second), at(2*time.Minute))
	add("Segments", v, err)
	v, err = c.OldestUnlocked(ctx, "most", at(time.Hour), 10)
	add("OldestUnlocked", v, err)
	n, err := c.TotalBytes(ctx)
	add("TotalBytes", n, err)
	m, err := c.BytesByCamera(ctx)
	add("BytesByCamera", m, err)
	frags, err := c.Fragments(ctx, ids(segs))
	add("Fragments", len(frags), err)
	d, err := c.Deletions(ctx, t0)
	add("Deletions", d, err)
	nd, err := c.NewestDeletions(ctx, t0, "age", "quota")
	add("NewestDeletions", nd, err)
	l, err := c.Locks(ctx, at(time.Hour))
	add("Locks", l, err)
	lb, err := c.LockedBytes(ctx, at(time.Hour))
	add("LockedBytes", lb, err)
	h, ok, err := c.RetentionHold(ctx)
	add("RetentionHold", fmt.Sprint(h, ok), err)
	cov, err := c.Coverage(ctx, []string{"most", "Zámek", "zahrada"}, at(0), at(5*time.Minute), time.Second)
	add("Coverage", cov, err)
	ev, err := c.Events(ctx, EventQuery{Zone: "chodník"})
	add("Events zone", ev, err)
	ev, err = c.Events(ctx, EventQuery{From: at(0), To: at(time.Hour), MinScore: 0.1})
	add("Events", ev, err)
	ec, err := c.EventCameras(ctx)
	add("EventCameras", ec, err)
	mh, err := c.SearchMotion(ctx, []string{"most"}, at(-time.Hour), at(time.Hour), GridCells{3: 1}, 1)
	add("SearchMotion", mh, err)
	u, err := c.Users(ctx)
	add("Users", u, err)
	s, su, err := c.SessionUser(ctx, tokenHash(3))
	add("SessionUser", fmt.Sprint(s, su), err)
	a, err := c.AuditEntries(ctx, AuditQuery{Limit: MaxAuditLimit})
	add("AuditEntries", a, err)
	av, err := c.VerifyAudit(ctx, auditKey)
	add("VerifyAudit", av, err)
	x, err := c.Exports(ctx, 10)
	add("Exports", x, err)
	k, err := c.Cases(ctx)
	add("Cases", k, err)
	bm, err := c.Bookmarks(ctx, BookmarkQuery{})
	add("Bookmarks", bm, err)
	return b.String()
}

// TestBackendParity: the same history written into a SQLite file and a PostgreSQL
// database reads back the same through every query, ids included, and neither gives a
// deleted segment's id again.
func TestBackendParity(t *testing.T) {
	ctx := context.Background()
	var got []string
	for _, target := range []string{filepath.Join(t.TempDir(), "catalog.db"), pgtest.URL(t)} {
		c, err := Open(ctx, target)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		deleted := history(t, c)
		if id := addOpen(t, c, "zahrada", at(20*time.Minute)); id <= deleted {
			t.Errorf("%s: new segment id %d, want above the deleted %d (ids are never reused)", c.Backend(), id, deleted)
		}
		got = append(got, readBack(t, c))
	}
	if got[0] != got[1] {
		t.Errorf("the backends answer differently:\n%s", lineDiff(got[0], got[1]))
	}
}

// lineDiff lists the lines of a and b that differ (sqlite -, postgres +).
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out strings.Builder
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			fmt.Fprintf(&out, "- %s\n+ %s\n", x, y)
		}
	}
	return out.String()
}

// TestCopyToPostgres: townwatch catalog migrate's copy keeps every row and id, verifies
// counts and segment digests, continues the ids past every one the SQLite file gave
// (the deleted newest segment included), and refuses a target that is not empty.
func TestCopyToPostgres(t *testing.T) {
	ctx := context.Background()
	src, _ := openSQLite(t)
	deleted := history(t, src)
	want := readBack(t, src)
	dst, err := Open(ctx, pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()

	rep, err := src.CopyTo(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	if got := readBack(t, dst); got != want {
		t.Errorf("the copy answers differently:\n%s", lineDiff(want, got))
	}
	// 9 closed + 1 open + 1 closed later (deleted), 2 deleted: 9 segments, 2 deletions.
	if rep.SegmentsVerified != 11 {
		t.Errorf("SegmentsVerified = %d, want 11 (9 segments and 2 deletion records)", rep.SegmentsVerified)
	}
	for _, tc := range rep.Tables {
		if tc.Source != tc.Target {
			t.Errorf("report: %+v", tc)
		}
	}
	if id := addOpen(t, dst, "zahrada", at(20*time.Minute)); id != deleted+1 {
		t.Errorf("first segment id after the copy = %d, want %d (past the deleted %d)", id, deleted+1, deleted)
	}
	if _, err := dst.CreateUser(ctx, User{Name: "nový", PasswordHash: argonHash, Created: at(0)}); err != nil {
		t.Errorf("CreateUser after the copy: %v (the users id sequence was not moved)", err)
	}

	_, err = src.CopyTo(ctx, dst)
	wantErr(t, err, nil, "the target is not empty")

	// What the verification compares is read back from the target, not assumed.
	if _, err := dst.w.ExecContext(ctx, `UPDATE segments SET sha256 = $1 WHERE id = 2`, sha(999)); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.w.ExecContext(ctx, `DELETE FROM segments WHERE id = $1`, deleted+1); err != nil {
		t.Fatal(err)
	}
	_, err = src.verifyCopy(ctx, dst)
	wantErr(t, err, nil, "verification failed", "segments row 1 (in id order) differs")
}

// openSQLite opens a new SQLite catalog whatever the pass's backend.
func openSQLite(t *testing.T) (*Catalog, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "catalog.db")
	c, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, path
}
