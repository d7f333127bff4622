package catalog

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The archive tier's life of a row: a candidate until marked, then counted in the bucket,
// not on the disk; deleted with its object listed as pending until the job removes it.
func TestArchiveLifecycle(t *testing.T) {
	ctx := context.Background()
	c, _ := openTest(t)
	old := addClosed(t, c, "cam", at(0), at(time.Minute), 1000)
	young := addClosed(t, c, "cam", at(time.Minute), at(2*time.Minute), 500)
	open := addOpen(t, c, "cam", at(2*time.Minute))

	cands, err := c.ArchiveCandidates(ctx, at(90*time.Second), 10)
	if err != nil || len(cands) != 1 || cands[0].ID != old {
		t.Fatalf("candidates before 1m30s = %v, %v; want segment %d only", cands, err, old)
	}
	if n, b, err := c.ArchiveBacklog(ctx, at(time.Hour)); err != nil || n != 2 || b != 1500 {
		t.Errorf("backlog = %d segments, %d bytes, %v; want 2, 1500 (the open one is not due)", n, b, err)
	}

	wantErr(t, c.MarkArchived(ctx, old, sha(999), at(time.Hour)), ErrDigestMismatch, "mark segment")
	wantErr(t, c.MarkArchived(ctx, open, sha(int(open)), at(time.Hour)), ErrSegmentOpen)
	wantErr(t, c.MarkArchived(ctx, 9999, sha(1), at(time.Hour)), ErrNotFound)
	for range 2 { // the second is a pass repeated after a crash
		if err := c.MarkArchived(ctx, old, sha(int(old)), at(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	s, err := c.Segment(ctx, old)
	if err != nil || !s.Archived.Equal(at(time.Hour)) {
		t.Fatalf("archived segment: %+v, %v; want Archived %s", s, err, at(time.Hour))
	}
	if cands, _ := c.ArchiveCandidates(ctx, at(time.Hour), 10); len(cands) != 1 || cands[0].ID != young {
		t.Errorf("candidates after marking = %v; want segment %d only", cands, young)
	}
	if total, err := c.TotalBytes(ctx); err != nil || total != 500 {
		t.Errorf("bytes on the local disk = %d, %v; want 500 (the archived 1000 are not on it)", total, err)
	}
	if n, err := c.ArchivedSegments(ctx); err != nil || n != 1 {
		t.Errorf("archived segments = %d, %v; want 1", n, err)
	}
	if n, err := c.ArchivedBytes(ctx); err != nil || n != 1000 {
		t.Errorf("archived bytes = %d, %v; want 1000", n, err)
	}

	// An evidence lock holds the archived row as it holds a local one.
	if _, err := c.AddLock(ctx, Lock{Camera: "cam", Start: at(0), End: at(time.Minute), Reason: "case 1", Created: at(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteSegment(ctx, old, "age", at(2*time.Hour)); !errors.Is(err, ErrLocked) {
		t.Fatalf("deleting a locked archived segment: %v, want ErrLocked", err)
	}
	if p, err := c.PendingObjectDeletions(ctx, 10); err != nil || len(p) != 0 {
		t.Fatalf("pending object deletions = %v, %v; want none", p, err)
	}
	c2, _ := openTest(t)
	a := addClosed(t, c2, "cam", at(0), at(time.Minute), 1000)
	local := addClosed(t, c2, "cam", at(time.Minute), at(2*time.Minute), 1000)
	if err := c2.MarkArchived(ctx, a, sha(int(a)), at(time.Hour)); err != nil {
		t.Fatal(err)
	}
	d, err := c2.DeleteSegment(ctx, a, "age", at(2*time.Hour))
	if err != nil || !d.Archived {
		t.Fatalf("deletion of an archived segment = %+v, %v; want Archived", d, err)
	}
	if d, err := c2.DeleteSegment(ctx, local, "age", at(2*time.Hour)); err != nil || d.Archived {
		t.Fatalf("deletion of a local segment = %+v, %v; want not Archived", d, err)
	}
	p, err := c2.PendingObjectDeletions(ctx, 10)
	if err != nil || len(p) != 1 || p[0].SegmentID != a || p[0].Path != segPath("cam", "main", at(0)) {
		t.Fatalf("pending object deletions = %+v, %v; want segment %d's", p, err, a)
	}
	if err := c2.ObjectDeleted(ctx, p[0].ID); err != nil {
		t.Fatal(err)
	}
	if p, err := c2.PendingObjectDeletions(ctx, 10); err != nil || len(p) != 0 {
		t.Errorf("pending after ObjectDeleted = %v, %v; want none", p, err)
	}
	if d, err := c2.DeletionOfSegment(ctx, a); err != nil || !d.Archived {
		t.Errorf("the deletion log keeps the tier: %+v, %v", d, err)
	}
}
