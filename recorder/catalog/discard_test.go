package catalog

import (
	"context"
	"errors"
	"testing"
	"time"
)

// An open segment that got no footage is removed even under an evidence lock (there is
// nothing for the lock to protect), and the removal is recorded; a closed segment is never
// removed this way.
func TestDiscardOpenSegment(t *testing.T) {
	c, _ := openTest(t)
	ctx := context.Background()
	if _, err := c.AddLock(ctx, Lock{Camera: "cam", Start: at(0), End: at(time.Hour), Reason: "incident 42", Created: at(0)}); err != nil {
		t.Fatal(err)
	}
	open := addOpen(t, c, "cam", at(10*time.Minute))
	closed := addClosed(t, c, "cam", at(0), at(time.Minute), 1000)

	d, err := c.DiscardOpenSegment(ctx, open, "recovery: no complete fragment", at(11*time.Minute))
	if err != nil {
		t.Fatalf("discard under a lock: %v", err)
	}
	if d.Reason != "recovery: no complete fragment" || d.Camera != "cam" {
		t.Errorf("deletion %+v", d)
	}
	if _, err := c.Segment(ctx, open); !errors.Is(err, ErrNotFound) {
		t.Errorf("discarded row still there: %v", err)
	}
	if _, err := c.DiscardOpenSegment(ctx, closed, "no", at(11*time.Minute)); !errors.Is(err, ErrSegmentClosed) {
		t.Errorf("discarding a closed segment: %v, want ErrSegmentClosed", err)
	}
	if _, err := c.Segment(ctx, closed); err != nil {
		t.Errorf("closed segment gone: %v", err)
	}
}
