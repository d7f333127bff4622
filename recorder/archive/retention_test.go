package archive

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"testing"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// Retention covers the archive tier: deleting archived footage long overdue is held by
// the mass-deletion guard until an administrator confirms; then an archived segment past
// its retention is deleted row first (the deletion log says it was archived), then its
// object; a locked one survives the sweep that deletes its neighbours; the bucket holds
// one object per archived row afterwards.
func TestRetentionDeletesArchivedFootage(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, 20*time.Second) // 5 segments
	ctx := context.Background()
	if rep := fx.job.Pass(ctx); rep.Err != nil || rep.Archived != 5 {
		t.Fatalf("archive pass: %+v", rep)
	}
	locked := fx.segs[1]
	if _, err := fx.cat.AddLock(ctx, catalog.Lock{Camera: "cam", Start: locked.Start, End: locked.End, Reason: "case 7/2026", Created: t0}); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(2 * time.Hour)
	ret := newRetention(t, fx, now)
	rep, err := ret.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Held || len(rep.Deleted) != 0 {
		t.Fatalf("sweep deleting all archived footage an hour overdue: held %v, %d deleted; want held by the guard", rep.Held, len(rep.Deleted))
	}
	if n, _ := fx.job.Bucket.Count(ctx); n != 5 {
		t.Fatalf("bucket holds %d objects while the guard holds, want 5", n)
	}
	if err := fx.cat.ConfirmRetention(ctx, now); err != nil {
		t.Fatal(err)
	}
	if rep, err = ret.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if len(rep.Deleted) != 4 {
		t.Fatalf("sweep deleted %d segments, want 4 (all but the locked one)", len(rep.Deleted))
	}
	for _, d := range rep.Deleted {
		if !d.Archived || d.Reason != recorder.ReasonAge {
			t.Errorf("deletion %+v: want archived, reason age", d)
		}
		if _, err := os.Stat(fx.s3.ObjectFile(bucketName, d.Path)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("segment %d deleted, but its object is still in the bucket (%v)", d.SegmentID, err)
		}
	}
	if s, err := fx.cat.Segment(ctx, locked.ID); err != nil || s.Archived.IsZero() {
		t.Fatalf("locked archived segment: %+v, %v; want kept, archived", s, err)
	}
	fx.checkArchived(t, locked)
	if p, err := fx.cat.PendingObjectDeletions(ctx, 10); err != nil || len(p) != 0 {
		t.Errorf("pending object deletions = %v, %v; want none", p, err)
	}
	log, err := fx.cat.Deletions(ctx, t0)
	if err != nil || len(log) != 4 {
		t.Errorf("deletion log has %d rows, %v; want 4", len(log), err)
	}
	fx.checkBucketMatchesCatalog(t)
}

// With the store down, retention still deletes the row (footage past retention must go
// from the catalog, and the row comes first); the object stays listed as pending, and the
// archive job removes it once the store is back.
func TestRetentionStoreDownLeavesObjectPending(t *testing.T) {
	fx := newFixture(t, 8*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if rep := fx.job.Pass(ctx); rep.Err != nil || rep.Archived != 2 {
		t.Fatalf("archive pass: %+v", rep)
	}
	ret := newRetention(t, fx, t0.Add(time.Hour+10*time.Second)) // both just fell due: no guard
	fx.s3.Stop()
	rep, err := ret.Sweep(ctx)
	if err == nil || len(rep.Deleted) != 2 {
		t.Fatalf("sweep with the store down: %d deleted, err %v; want 2 rows deleted and an error about the objects", len(rep.Deleted), err)
	}
	if p, err := fx.cat.PendingObjectDeletions(ctx, 10); err != nil || len(p) != 2 {
		t.Fatalf("pending object deletions = %d, %v; want 2", len(p), err)
	}
	fx.s3.Restart(t)
	if rep := fx.job.Pass(ctx); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	if p, _ := fx.cat.PendingObjectDeletions(ctx, 10); len(p) != 0 {
		t.Errorf("pending after the job's pass: %d, want 0", len(p))
	}
	fx.checkBucketMatchesCatalog(t)
	if n, _ := fx.job.Bucket.Count(ctx); n != 0 {
		t.Errorf("bucket holds %d objects, want 0", n)
	}
}

// newRetention is retention of the fixture's camera, one hour, at the fixed time now.
func newRetention(t *testing.T, fx *fixture, now time.Time) *recorder.Retention {
	t.Helper()
	cfg := &configs.Config{Cameras: []configs.Camera{{ID: "cam", Name: "cam", Record: configs.Record{
		Mode: configs.RecordContinuous, Retention: configs.Duration(time.Hour), Segment: configs.DefaultSegment}}}}
	ret, err := recorder.NewRetention(cfg, fx.st, fx.cat, nil, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	return ret
}
