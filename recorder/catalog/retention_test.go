package catalog

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// lockFixture lays out camera "a" as six closed one-minute segments s[0..5] from t0 and
// an open one s[6], camera "b" as two segments interleaved in time, and locks:
//
//	s[1]      under a lock that never expires (exactly its range)
//	s[2]      under a lock that expired before now
//	s[3]      partly under a lock that expires after now (10 s inside it)
//	s[4]      under a lock that ends exactly where s[5] starts (so s[5] is free)
//	b's first under a never-expiring lock on camera b, which must not protect a's
type lockFixture struct {
	c      *Catalog
	s      []int64
	b      []int64
	now    time.Time
	locked map[string]int64 // lock name → id
}

func newLockFixture(t *testing.T) *lockFixture {
	c, _ := openTest(t)
	ctx := context.Background()
	f := &lockFixture{c: c, now: at(time.Hour), locked: map[string]int64{}}
	for i := range 6 {
		f.s = append(f.s, addClosed(t, c, "a", at(time.Duration(i)*time.Minute), at(time.Duration(i+1)*time.Minute), int64(100<<i)))
	}
	f.s = append(f.s, addOpen(t, c, "a", at(6*time.Minute)))
	f.b = append(f.b, addClosed(t, c, "b", at(30*time.Second), at(90*time.Second), 7))
	f.b = append(f.b, addClosed(t, c, "b", at(150*time.Second), at(210*time.Second), 11))
	for name, l := range map[string]Lock{
		"forever": {Camera: "a", Start: at(time.Minute), End: at(2 * time.Minute)},
		"expired": {Camera: "a", Start: at(2 * time.Minute), End: at(3 * time.Minute), Expires: f.now},
		"partial": {Camera: "a", Start: at(3*time.Minute + 20*time.Second), End: at(3*time.Minute + 30*time.Second), Expires: f.now.Add(1)},
		"touch":   {Camera: "a", Start: at(4*time.Minute + 50*time.Second), End: at(5 * time.Minute)},
		"b":       {Camera: "b", Start: at(0), End: at(time.Minute)},
	} {
		l.Reason, l.Created = "case "+name, t0
		id, err := c.AddLock(ctx, l)
		if err != nil {
			t.Fatal(err)
		}
		f.locked[name] = id
	}
	return f
}

func TestOldestUnlocked(t *testing.T) {
	f := newLockFixture(t)
	ctx := context.Background()
	for _, tc := range []struct {
		camera string
		limit  int
		want   []int64
	}{
		{"a", 10, []int64{f.s[0], f.s[2], f.s[5]}},
		{"a", 2, []int64{f.s[0], f.s[2]}},
		{"b", 10, []int64{f.b[1]}},
		{"", 10, []int64{f.s[0], f.s[2], f.b[1], f.s[5]}}, // all cameras, by start
		{"nobody", 10, []int64{}},
	} {
		segs, err := f.c.OldestUnlocked(ctx, tc.camera, f.now, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(segs); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("OldestUnlocked(%q, limit %d) = %v, want %v", tc.camera, tc.limit, got, tc.want)
		}
	}
	// Once the expiring lock has expired, s[3] is a candidate too.
	segs, err := f.c.OldestUnlocked(ctx, "a", f.now.Add(1), 10)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(ids(segs)), fmt.Sprint([]int64{f.s[0], f.s[2], f.s[3], f.s[5]}); got != want {
		t.Errorf("OldestUnlocked after the partial lock expired = %v, want %v", got, want)
	}
	_, err = f.c.OldestUnlocked(ctx, "a", f.now, 0)
	wantErr(t, err, nil, `catalog: oldest unlocked segments of "a": limit 0 is not positive`)
}

func TestDeleteSegmentHonoursLocks(t *testing.T) {
	f := newLockFixture(t)
	ctx, c := context.Background(), f.c
	for _, tc := range []struct {
		id     int64
		target error
		want   string
	}{
		{f.s[1], ErrLocked, fmt.Sprintf("catalog: delete segment %d: lock %d: under an evidence lock", f.s[1], f.locked["forever"])},
		{f.s[3], ErrLocked, fmt.Sprintf("lock %d", f.locked["partial"])},
		{f.s[4], ErrLocked, fmt.Sprintf("lock %d", f.locked["touch"])},
		{f.b[0], ErrLocked, fmt.Sprintf("lock %d", f.locked["b"])},
		{f.s[6], ErrSegmentOpen, fmt.Sprintf("catalog: delete segment %d: segment is open", f.s[6])},
		{999, ErrNotFound, "catalog: delete segment 999: not found"},
	} {
		_, err := c.DeleteSegment(ctx, tc.id, "age", f.now)
		wantErr(t, err, tc.target, tc.want)
	}
	_, err := c.DeleteSegment(ctx, f.s[0], "", f.now)
	wantErr(t, err, nil, "reason is empty")
	if ds, err := c.Deletions(ctx, t0); err != nil || len(ds) != 0 {
		t.Fatalf("refused deletions left records: %+v (err %v)", ds, err)
	}
	if all, err := c.AllSegments(ctx); err != nil || len(all) != 9 {
		t.Fatalf("refused deletions removed segments: %d left (err %v), want 9", len(all), err)
	}

	// Free: no lock, an expired lock, a lock that only touches its start.
	seg0, err := c.Segment(ctx, f.s[0])
	if err != nil {
		t.Fatal(err)
	}
	var done []Deletion
	for i, id := range []int64{f.s[0], f.s[2], f.s[5]} {
		d, err := c.DeleteSegment(ctx, id, "age", f.now.Add(time.Duration(i)))
		if err != nil {
			t.Fatalf("delete %d: %v", id, err)
		}
		done = append(done, d)
	}
	want0 := Deletion{ID: done[0].ID, SegmentID: seg0.ID, Camera: "a", Stream: "main", Path: seg0.Path, SHA256: seg0.SHA256,
		Reason: "age", Start: seg0.Start, End: seg0.End, At: f.now, Bytes: seg0.Bytes, PrevSHA256: seg0.PrevSHA256, Chained: seg0.Chained}
	if done[0] != want0 || !want0.Chained {
		t.Errorf("Deletion =\n%+v\nwant\n%+v", done[0], want0)
	}
	if _, err := c.Segment(ctx, f.s[0]); err == nil {
		t.Error("deleted segment is still indexed")
	}
	byPath, err := c.DeletionByPath(ctx, seg0.Path)
	if err != nil || byPath != want0 {
		t.Errorf("DeletionByPath = %+v (err %v), want %+v", byPath, err, want0)
	}
	_, err = c.DeletionByPath(ctx, "recordings/never.mp4")
	wantErr(t, err, ErrNotFound, "catalog: deletion of recordings/never.mp4: not found")
	ds, err := c.Deletions(ctx, f.now.Add(1))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ds, done[1:]) {
		t.Errorf("Deletions(since now+1ns) =\n%+v\nwant\n%+v", ds, done[1:])
	}

	// Removing a lock releases its footage.
	if err := c.RemoveLock(ctx, f.locked["forever"]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteSegment(ctx, f.s[1], "age", f.now); err != nil {
		t.Errorf("delete after its lock was removed: %v", err)
	}
}

// A segment without duration (a lone frame) at a lock's start is that lock's footage.
func TestZeroLengthSegmentAtLockStart(t *testing.T) {
	c, _ := openTest(t)
	ctx := context.Background()
	frame := addClosed(t, c, "a", at(time.Minute), at(time.Minute), 10)
	before := addClosed(t, c, "a", at(0), at(time.Minute), 20)
	if _, err := c.AddLock(ctx, Lock{Camera: "a", Start: at(time.Minute), End: at(2 * time.Minute), Reason: "x", Created: t0}); err != nil {
		t.Fatal(err)
	}
	segs, err := c.OldestUnlocked(ctx, "a", t0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ids(segs)); got != fmt.Sprint([]int64{before}) {
		t.Errorf("OldestUnlocked = %v, want only %d (segment %d is a frame at the lock's start)", got, before, frame)
	}
	_, err = c.DeleteSegment(ctx, frame, "age", t0)
	wantErr(t, err, ErrLocked)
}

func TestLockedBytes(t *testing.T) {
	f := newLockFixture(t)
	ctx := context.Background()
	// s[1], s[3], s[4] on a; b's first. A second lock over s[1] must not count it twice.
	if _, err := f.c.AddLock(ctx, Lock{Camera: "a", Start: at(0), End: at(2 * time.Minute), Reason: "overlapping", Created: t0}); err != nil {
		t.Fatal(err)
	}
	got, err := f.c.LockedBytes(ctx, f.now)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"a": 100 + 200 + 800 + 1600, "b": 7} // s[0] now locked too
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LockedBytes = %v, want %v", got, want)
	}
	got, err = f.c.LockedBytes(ctx, f.now.Add(time.Hour)) // the partial lock has expired
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"a": 100 + 200 + 1600, "b": 7}; !reflect.DeepEqual(got, want) {
		t.Errorf("LockedBytes after expiry = %v, want %v", got, want)
	}
}

// TestDeleteSegmentAtomic makes the segment row's deletion fail after the deletion record
// was written, and checks that the record went too.
func TestDeleteSegmentAtomic(t *testing.T) {
	c, _ := openTest(t)
	ctx := context.Background()
	id := addClosed(t, c, "a", at(0), at(time.Minute), 10)
	failDelete, dropTrigger := `CREATE TRIGGER fail_delete BEFORE DELETE ON segments BEGIN SELECT RAISE(ABORT, 'injected failure'); END`, `DROP TRIGGER fail_delete`
	if backend == "postgres" {
		failDelete = `CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$;
CREATE TRIGGER fail_delete BEFORE DELETE ON segments FOR EACH ROW EXECUTE FUNCTION fail()`
		dropTrigger = `DROP TRIGGER fail_delete ON segments`
	}
	if _, err := c.w.ExecContext(ctx, failDelete); err != nil {
		t.Fatal(err)
	}
	_, err := c.DeleteSegment(ctx, id, "age", at(time.Hour))
	wantErr(t, err, nil, "injected failure")
	if ds, err := c.Deletions(ctx, t0); err != nil || len(ds) != 0 {
		t.Errorf("after a failed delete, Deletions = %+v (err %v), want none", ds, err)
	}
	if _, err := c.Segment(ctx, id); err != nil {
		t.Errorf("after a failed delete the segment is gone: %v", err)
	}

	if _, err := c.w.ExecContext(ctx, dropTrigger); err != nil {
		t.Fatal(err)
	}
	d, err := c.DeleteSegment(ctx, id, "age", at(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if ds, err := c.Deletions(ctx, t0); err != nil || len(ds) != 1 || ds[0] != d {
		t.Errorf("Deletions = %+v (err %v), want [%+v]", ds, err, d)
	}
	if _, err := c.Segment(ctx, id); err == nil {
		t.Error("segment still indexed after its deletion was recorded")
	}
}

func TestRetentionHold(t *testing.T) {
	c, _ := openTest(t)
	ctx := context.Background()
	if _, ok, err := c.RetentionHold(ctx); ok || err != nil {
		t.Fatalf("RetentionHold of a new catalog: ok %v, err %v; want none", ok, err)
	}
	wantErr(t, c.ConfirmRetention(ctx, t0), ErrNotFound, "catalog: confirm retention: not found")

	h := RetentionHold{Since: at(1), Reason: "one pass would delete 80% of footage", PlannedBytes: 800, TotalBytes: 1000, Confirmed: at(5)}
	if err := c.SetRetentionHold(ctx, h); err != nil {
		t.Fatal(err)
	}
	want := h
	want.Confirmed = time.Time{} // SetRetentionHold never confirms
	if got, ok, err := c.RetentionHold(ctx); err != nil || !ok || got != want {
		t.Errorf("RetentionHold = %+v %v (err %v), want %+v", got, ok, err, want)
	}
	if err := c.ConfirmRetention(ctx, at(time.Minute+3)); err != nil {
		t.Fatal(err)
	}
	want.Confirmed = at(time.Minute + 3)
	if got, _, err := c.RetentionHold(ctx); err != nil || got != want {
		t.Errorf("after confirm, RetentionHold = %+v (err %v), want %+v", got, err, want)
	}

	// A new plan replaces the row and needs a new confirmation.
	h2 := RetentionHold{Since: at(time.Hour), Reason: "bigger plan", PlannedBytes: 900, TotalBytes: 1000}
	if err := c.SetRetentionHold(ctx, h2); err != nil {
		t.Fatal(err)
	}
	if got, _, err := c.RetentionHold(ctx); err != nil || got != h2 {
		t.Errorf("after a second set, RetentionHold = %+v (err %v), want %+v (unconfirmed)", got, err, h2)
	}
	if err := c.ClearRetentionHold(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c.RetentionHold(ctx); ok || err != nil {
		t.Errorf("after clear: ok %v, err %v; want no hold", ok, err)
	}
	if err := c.ClearRetentionHold(ctx); err != nil {
		t.Errorf("clearing no hold: %v", err)
	}

	for _, tc := range []struct {
		h    RetentionHold
		want string
	}{
		{RetentionHold{Reason: "x"}, "catalog: set retention hold: since is not set"},
		{RetentionHold{Since: t0}, "catalog: set retention hold: reason is empty"},
		{RetentionHold{Since: t0, Reason: "x", PlannedBytes: -1}, "must not be negative"},
	} {
		wantErr(t, c.SetRetentionHold(ctx, tc.h), nil, tc.want)
	}
}

func TestNewestDeletions(t *testing.T) {
	c, _ := openTest(t)
	ctx := context.Background()
	m := func(i int) time.Time { return at(time.Duration(i) * time.Minute) }
	type seg struct {
		camera string
		i      int // the segment covers minute i
		reason string
		at     int // deleted at minute at
	}
	for _, s := range []seg{
		{"a", 0, "storage_quota", 10},
		{"a", 2, "min_free", 11},
		{"a", 5, "age", 12},           // newest of a, but not for space
		{"b", 1, "storage_quota", 10}, // deleted after since
		{"b", 3, "storage_quota", 2},  // newer footage, but deleted before since
		{"c", 4, "age", 10},
	} {
		id := addClosed(t, c, s.camera, m(s.i), m(s.i+1), 100)
		if _, err := c.DeleteSegment(ctx, id, s.reason, m(s.at)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.NewestDeletions(ctx, m(5), "storage_quota", "min_free")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]NewestDeletion{"a": {End: m(3), Reason: "min_free"}, "b": {End: m(2), Reason: "storage_quota"}}
	if len(got) != len(want) {
		t.Fatalf("NewestDeletions = %v, want %v", got, want)
	}
	for cam, w := range want {
		if g := got[cam]; !g.End.Equal(w.End) || g.Reason != w.Reason {
			t.Errorf("NewestDeletions[%s] = %+v, want %+v", cam, g, w)
		}
	}
	if got, err := c.NewestDeletions(ctx, m(0)); err != nil || len(got) != 0 {
		t.Errorf("NewestDeletions without reasons = %v, %v; want none", got, err)
	}
}

// Each recorder node has its own mass-deletion hold: a hold one node's retention raises,
// confirms or clears is not the other's (on SQLite, the one node's hold is its own).
func TestRetentionHoldIsPerNode(t *testing.T) {
	ctx := context.Background()
	a, target := openTest(t)
	hA := RetentionHold{Since: at(1), Reason: "a's sweep would delete 80%", PlannedBytes: 800, TotalBytes: 1000}
	if backend != "postgres" {
		if err := a.SetNode("a"); err == nil {
			t.Fatal("SetNode on a SQLite catalog succeeded; a SQLite catalog has one node")
		}
		if err := a.SetRetentionHold(ctx, hA); err != nil {
			t.Fatal(err)
		}
		if got, ok, err := a.RetentionHold(ctx); err != nil || !ok || got != hA {
			t.Errorf("RetentionHold = %+v %v (err %v), want %+v", got, ok, err, hA)
		}
		return
	}
	// Two nodes sharing the PostgreSQL catalog; a is the first one's name.
	b, err := Open(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	single, err := Open(ctx, target) // no node: a single-node installation's view
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { single.Close() })
	if err := errors.Join(a.SetNode("a"), b.SetNode("b")); err != nil {
		t.Fatal(err)
	}
	if err := a.SetRetentionHold(ctx, hA); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := b.RetentionHold(ctx); ok || err != nil {
		t.Errorf("b sees a hold (%v, %v) after a's retention raised one; want none: b's retention goes on", ok, err)
	}
	wantErr(t, b.ConfirmRetention(ctx, at(time.Minute)), ErrNotFound, "catalog: confirm retention: not found")
	hB := RetentionHold{Since: at(2), Reason: "b's sweep would delete 90%", PlannedBytes: 90, TotalBytes: 100}
	if err := b.SetRetentionHold(ctx, hB); err != nil {
		t.Fatal(err)
	}
	if err := a.ConfirmRetention(ctx, at(time.Minute)); err != nil {
		t.Fatal(err)
	}
	wantA := hA
	wantA.Confirmed = at(time.Minute)
	if got, ok, err := a.RetentionHold(ctx); err != nil || !ok || got != wantA {
		t.Errorf("a's hold = %+v %v (err %v), want %+v", got, ok, err, wantA)
	}
	if got, ok, err := b.RetentionHold(ctx); err != nil || !ok || got != hB {
		t.Errorf("b's hold after a's confirmation = %+v %v (err %v), want %+v, unconfirmed", got, ok, err, hB)
	}
	if err := a.ClearRetentionHold(ctx); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := b.RetentionHold(ctx); err != nil || !ok || got != hB {
		t.Errorf("b's hold after a cleared its own = %+v %v (err %v), want %+v", got, ok, err, hB)
	}
	if _, ok, err := single.RetentionHold(ctx); ok || err != nil {
		t.Errorf("the catalog without a node sees a hold (%v, %v); the nodes' holds are theirs", ok, err)
	}
}

// A catalog from before the per-node hold keeps its one hold for the single node and for
// every node known then: a hold that stopped every node's retention is lifted only where
// someone confirms it.
func TestMigrationKeepsTheHoldForEveryNode(t *testing.T) {
	ctx := context.Background()
	target := newTarget(t)
	schema := testMigrations()
	orig := *schema
	t.Cleanup(func() { *schema = orig })
	*schema = orig[:7]
	c, err := Open(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	// Written as version 7 wrote them.
	// Confirmed already, on the node that raised it.
	if _, err := c.w.ExecContext(ctx, `INSERT INTO retention_hold (id, since_ns, reason, planned_bytes, total_bytes, confirmed_ns, forced)
VALUES (1, $1, 'old sweep would delete 70%', 700, 1000, $2, 1)`, at(1).UnixNano(), at(2).UnixNano()); err != nil {
		t.Fatal(err)
	}
	if backend == "postgres" { // recorder nodes need PostgreSQL
		if _, err := c.w.ExecContext(ctx, `INSERT INTO nodes (name, advertise, heartbeat) VALUES ('a', 'http://a', '2026-01-01T00:00:00Z'), ('b', 'http://b', '2026-01-01T00:00:00Z')`); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()

	*schema = orig
	// The single node keeps the hold as it was; each recorder node gets it unconfirmed
	// (one confirmation approved one node's plan, not every node's), and no '' row is
	// left on a cluster for nobody to clear.
	want := RetentionHold{Since: at(1), Reason: "old sweep would delete 70%", PlannedBytes: 700, TotalBytes: 1000, Forced: true, Confirmed: at(2)}
	nodes := []string{""}
	if backend == "postgres" {
		nodes = []string{"a", "b"}
		want.Confirmed = time.Time{}
		c, err := Open(ctx, target)
		if err != nil {
			t.Fatal(err)
		}
		if h, ok, err := c.RetentionHold(ctx); err != nil || ok {
			t.Errorf("the cluster's '' row after the upgrade: %+v %v (err %v), want none", h, ok, err)
		}
		c.Close()
	}
	for _, node := range nodes {
		c, err := Open(ctx, target)
		if err != nil {
			t.Fatal(err)
		}
		if node != "" {
			if err := c.SetNode(node); err != nil {
				t.Fatal(err)
			}
		}
		if got, ok, err := c.RetentionHold(ctx); err != nil || !ok || got != want {
			t.Errorf("node %q after the upgrade: hold %+v %v (err %v), want %+v", node, got, ok, err, want)
		}
		c.Close()
	}
}
