package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOpenPragmas checks that the DSN's pragmas (PostgreSQL: settings) took effect on
// both pools.
func TestOpenPragmas(t *testing.T) {
	c, _ := openTest(t)
	ctx := context.Background()
	if backend == "postgres" {
		for db, want := range map[*sql.DB]string{c.w: "off", c.r: "on"} {
			var got string
			if err := db.QueryRowContext(ctx, `SHOW default_transaction_read_only`).Scan(&got); err != nil || got != want {
				t.Errorf("default_transaction_read_only = %q (%v), want %q", got, err, want)
			}
		}
		return
	}
	for _, tc := range []struct {
		pool, pragma, want string
	}{
		{"writer", "journal_mode", "wal"},
		{"writer", "synchronous", "2"}, // FULL
		{"writer", "foreign_keys", "1"},
		{"writer", "busy_timeout", "5000"},
		{"reader", "journal_mode", "wal"},
		{"reader", "query_only", "1"},
		{"reader", "busy_timeout", "5000"},
	} {
		db := c.w
		if tc.pool == "reader" {
			db = c.r
		}
		var got string
		if err := db.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
			t.Fatalf("%s: PRAGMA %s: %v", tc.pool, tc.pragma, err)
		}
		if got != tc.want {
			t.Errorf("%s: PRAGMA %s = %s, want %s", tc.pool, tc.pragma, got, tc.want)
		}
	}
}

// TestReadPoolIsReadOnly: the read pool is opened with mode=ro, so even a connection
// that switches query_only off cannot write. On PostgreSQL its transactions are read-only.
func TestReadPoolIsReadOnly(t *testing.T) {
	c, _ := openTest(t)
	ctx := context.Background()
	if backend == "postgres" {
		_, err := c.r.ExecContext(ctx, `INSERT INTO cameras (id) VALUES ('x')`)
		wantErr(t, err, nil, "read-only transaction")
		return
	}
	conn, err := c.r.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA query_only = 0"); err != nil {
		t.Fatal(err)
	}
	_, err = conn.ExecContext(ctx, `INSERT INTO cameras (id) VALUES ('x')`)
	wantErr(t, err, nil, "readonly")
}

// TestDollarPlaceholders: modernc binds $N by position, out of order and repeated, so the
// queries can stay PostgreSQL-shaped.
func TestDollarPlaceholders(t *testing.T) {
	c, _ := openTest(t)
	var a, b, again string
	var n int64
	err := c.r.QueryRowContext(context.Background(), `SELECT $2, $1, $2, $3 + 1`, "first", "second", int64(41)).Scan(&a, &b, &again, &n)
	if err != nil {
		t.Fatal(err)
	}
	if a != "second" || b != "first" || again != "second" || n != 42 {
		t.Errorf("SELECT $2, $1, $2, $3+1 = %q %q %q %d, want second first second 42", a, b, again, n)
	}
}

func TestForeignKeysEnforced(t *testing.T) {
	c, _ := openTest(t)
	_, err := c.w.ExecContext(context.Background(), `INSERT INTO locks (camera, start_ns, end_ns, reason, created_ns) VALUES ('ghost', 1, 2, 'x', 1)`)
	wantForeignKeyError(t, err)
}

func schemaVersions(t *testing.T, c *Catalog) map[int]int64 {
	t.Helper()
	rows, err := c.r.QueryContext(context.Background(), `SELECT version, applied_at_ns FROM schema_migrations`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[int]int64{}
	for rows.Next() {
		var v int
		var at int64
		if err := rows.Scan(&v, &at); err != nil {
			t.Fatal(err)
		}
		m[v] = at
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMigrationsApplyOnce(t *testing.T) {
	ctx := context.Background()
	path := newTarget(t)
	c, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	first := schemaVersions(t, c)
	steps := len(*testMigrations())
	if len(first) != steps || first[steps] == 0 {
		t.Fatalf("after first open schema_migrations = %v, want versions 1..%d", first, steps)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		c, err = Open(ctx, path)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		again := schemaVersions(t, c)
		if fmt.Sprint(again) != fmt.Sprint(first) {
			t.Errorf("after reopen schema_migrations = %v, want unchanged %v", again, first)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMigrationIsAtomic: a migration that fails half way leaves neither its schema
// changes nor its version behind, and a later fixed build applies it.
func TestMigrationIsAtomic(t *testing.T) {
	ctx := context.Background()
	path := newTarget(t)
	c, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	schema := testMigrations()
	orig := *schema
	t.Cleanup(func() { *schema = orig })
	*schema = append(orig[:len(orig):len(orig)], `CREATE TABLE extra (a INTEGER); INSERT INTO no_such_table VALUES (1);`)
	_, err = Open(ctx, path)
	wantErr(t, err, nil, fmt.Sprintf("schema migration %d", len(*schema)), "no_such_table")

	*schema = append(orig[:len(orig):len(orig)], `CREATE TABLE extra (a INTEGER); INSERT INTO extra VALUES (7);`)
	c, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("open after fixing the migration: %v (the failed attempt left something behind)", err)
	}
	defer c.Close()
	var n int
	if err := c.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM extra`).Scan(&n); err != nil || n != 1 {
		t.Errorf("extra has %d rows (err %v), want 1: the migration ran once, whole", n, err)
	}
	if v := schemaVersions(t, c); len(v) != len(*schema) {
		t.Errorf("schema_migrations = %v, want versions 1..%d", v, len(*schema))
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	path := newTarget(t)
	c, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	known := len(*testMigrations())
	newer := known + 1
	if _, err := c.w.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at_ns) VALUES ($1, 0)`, newer); err != nil {
		t.Fatal(err)
	}
	c.Close()
	_, err = Open(ctx, path)
	wantErr(t, err, nil, path, fmt.Sprintf("schema version %d is newer than this townwatch knows (%d)", newer, known), "refusing")
}

// TestOpenOddPath: the path becomes a file: URI, so characters that mean something in a
// URI must be escaped, not cut the name short or be taken as parameters.
func TestOpenOddPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a b?mode=ro#x%41")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "catalog.db")
	c, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	addOpen(t, c, "a", t0)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the database is not where it was asked to be: %v", err)
	}
}

func TestOpenMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "catalog.db")
	_, err := Open(context.Background(), path)
	wantErr(t, err, nil, "catalog: open "+path)
}

// TestPersistence: everything written survives Close and Open.
func TestPersistence(t *testing.T) {
	ctx := context.Background()
	path := newTarget(t)
	c, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	kept := addClosed(t, c, "a", at(0), at(time.Minute), 1000)
	gone := addClosed(t, c, "a", at(time.Minute), at(2*time.Minute), 2000)
	open := addOpen(t, c, "b", at(0))
	lock, err := c.AddLock(ctx, Lock{Camera: "a", Start: at(0), End: at(time.Second), Reason: "case 17", Created: at(0)})
	if err != nil {
		t.Fatal(err)
	}
	del, err := c.DeleteSegment(ctx, gone, "age", at(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	hold := RetentionHold{Since: at(time.Hour), Reason: "would delete 90%", PlannedBytes: 9, TotalBytes: 10}
	if err := c.SetRetentionHold(ctx, hold); err != nil {
		t.Fatal(err)
	}
	before, err := c.AllSegments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	after, err := c.AllSegments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(after) != fmt.Sprint(before) || fmt.Sprint(ids(after)) != fmt.Sprint([]int64{kept, open}) {
		t.Errorf("segments after reopen = %+v, want %+v", after, before)
	}
	locks, err := c.Locks(ctx, at(0))
	if err != nil || len(locks) != 1 || locks[0].ID != lock {
		t.Errorf("locks after reopen = %+v (err %v), want lock %d", locks, err, lock)
	}
	d, err := c.DeletionByPath(ctx, del.Path)
	if err != nil || d != del {
		t.Errorf("deletion after reopen = %+v (err %v), want %+v", d, err, del)
	}
	h, ok, err := c.RetentionHold(ctx)
	if err != nil || !ok || h != hold {
		t.Errorf("hold after reopen = %+v %v (err %v), want %+v", h, ok, err, hold)
	}
	// A new segment never reuses a deleted one's id.
	if id := addOpen(t, c, "a", at(3*time.Minute)); id <= gone || id <= open {
		t.Errorf("new segment id %d, want greater than every earlier id (%d, %d)", id, gone, open)
	}
}

// A SQLite catalog is one node's: naming a node, which only a shared catalog needs, is
// refused with the reason rather than pretending leases exist.
func TestSetNodeNeedsPostgres(t *testing.T) {
	c, _ := openTest(t)
	err := c.SetNode("a")
	if backend == "sqlite" {
		if err == nil || !strings.Contains(err.Error(), "PostgreSQL") {
			t.Fatalf("SetNode on SQLite: err = %v, want a refusal naming PostgreSQL", err)
		}
		return
	}
	if err != nil || c.Node() != "a" {
		t.Fatalf("SetNode on PostgreSQL: err = %v, node %q", err, c.Node())
	}
}

// What weighs a disk sees only the files on this node's disk: two nodes sharing one
// PostgreSQL catalog each get their own deletion candidates, byte counts, locked bytes and
// archive work, so neither deletes footage to free space on the other's disk. A SQLite
// catalog is one node's, and sees every segment.
func TestDiskQueriesSeeOnlyThisNode(t *testing.T) {
	ctx := context.Background()
	a, target := openTest(t)
	nodes := map[string]*Catalog{"a": a}
	if backend == "postgres" {
		b, err := Open(ctx, target)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		for name, c := range map[string]*Catalog{"a": a, "b": b} {
			if err := c.SetNode(name); err != nil {
				t.Fatal(err)
			}
		}
		nodes["b"] = b
	}
	// Each node records its own camera: a 100-byte segment of "namesti" on a, a 7-byte one
	// of "most" on b (on SQLite both through the one catalog).
	addClosed(t, a, "namesti", at(0), at(time.Minute), 100)
	onB := a
	if b := nodes["b"]; b != nil {
		onB = b
	}
	addClosed(t, onB, "most", at(0), at(time.Minute), 7)
	want := map[string]map[string]int64{"a": {"namesti": 100, "most": 7}}
	if backend == "postgres" {
		want = map[string]map[string]int64{"a": {"namesti": 100}, "b": {"most": 7}}
	}
	cams := func(segs []Segment) map[string]int64 {
		m := map[string]int64{}
		for _, s := range segs {
			m[s.Camera] += s.Bytes
		}
		return m
	}
	// Unlocked, the oldest segments are deletion candidates of their own node only.
	for name, c := range nodes {
		if segs, err := c.OldestUnlocked(ctx, "", at(time.Hour), 10); err != nil || !maps.Equal(cams(segs), want[name]) {
			t.Errorf("node %s: OldestUnlocked = %v (%v), want the segments of %v", name, segs, err, want[name])
		}
	}
	for _, cam := range []string{"namesti", "most"} {
		if _, err := a.AddLock(ctx, Lock{Camera: cam, Start: at(0), End: at(time.Minute), Reason: "spis 1/2026", Created: at(0)}); err != nil {
			t.Fatal(err)
		}
	}
	for name, c := range nodes {
		var total int64
		for _, n := range want[name] {
			total += n
		}
		if got, err := c.BytesByCamera(ctx); err != nil || !maps.Equal(got, want[name]) {
			t.Errorf("node %s: BytesByCamera = %v (%v), want %v", name, got, err, want[name])
		}
		if got, err := c.TotalBytes(ctx); err != nil || got != total {
			t.Errorf("node %s: TotalBytes = %d (%v), want %d", name, got, err, total)
		}
		if got, err := c.LockedBytes(ctx, at(time.Hour)); err != nil || !maps.Equal(got, want[name]) {
			t.Errorf("node %s: LockedBytes = %v (%v), want %v", name, got, err, want[name])
		}
		if segs, err := c.ArchiveCandidates(ctx, at(time.Hour), 10); err != nil || !maps.Equal(cams(segs), want[name]) {
			t.Errorf("node %s: ArchiveCandidates = %v (%v), want the segments of %v", name, segs, err, want[name])
		}
		if n, bytes, err := c.ArchiveBacklog(ctx, at(time.Hour)); err != nil || n != int64(len(want[name])) || bytes != total {
			t.Errorf("node %s: ArchiveBacklog = %d segments, %d bytes (%v); want %d, %d", name, n, bytes, err, len(want[name]), total)
		}
	}
}
