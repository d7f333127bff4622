package catalog

import (
	"context"
	"reflect"
	"testing"
	"time"
)

func TestFragmentIndexRoundTripsThroughTheClosingRow(t *testing.T) {
	c, _ := openTest(t)
	ctx := context.Background()
	want := []Fragment{
		{Offset: 1200, Length: 250000, Start: 0, Duration: 1040 * time.Millisecond, Keyframe: 0},
		{Offset: 251200, Length: 190000, Start: 1040 * time.Millisecond, Duration: time.Second, Keyframe: -1},
		{Offset: 441200, Length: 260000, Start: 2040 * time.Millisecond, Duration: 960 * time.Millisecond, Keyframe: 2040*time.Millisecond + 1111},
	}
	id := addOpen(t, c, "most", at(0))
	if err := c.CloseSegment(ctx, id, at(3*time.Second), 701200, 75, sha(1), want); err != nil {
		t.Fatal(err)
	}
	legacy := addClosed(t, c, "most", at(time.Minute), at(2*time.Minute), 10) // closed without an index
	got, err := c.Fragments(ctx, []int64{id, legacy, 9999})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got[id], want) {
		t.Errorf("index read back\n%+v\nwant\n%+v", got[id], want)
	}
	if _, ok := got[legacy]; ok || len(got) != 1 {
		t.Errorf("segments without an index have entries: %v", got)
	}
}

// An index no file can hold is dropped, never stored; the segment still closes with its
// size and digest, so its footage stays indexed and retention can see it.
func TestFragmentIndexNoFileCanHoldIsDroppedButTheSegmentCloses(t *testing.T) {
	c, _ := openTest(t)
	ctx := context.Background()
	for name, idx := range map[string][]Fragment{
		"overlapping bytes": {{Offset: 100, Length: 50, Keyframe: -1}, {Offset: 120, Length: 50, Start: time.Second, Keyframe: -1}},
		"empty fragment":    {{Offset: 100, Length: 0, Keyframe: -1}},
		"time going back":   {{Offset: 100, Length: 50, Start: time.Second, Keyframe: -1}, {Offset: 150, Length: 50, Keyframe: -1}},
		"keyframe outside":  {{Offset: 100, Length: 50, Duration: time.Second, Keyframe: 2 * time.Second}},
	} {
		id := addOpen(t, c, "most", at(time.Duration(len(name))*time.Hour))
		wantErr(t, c.CloseSegment(ctx, id, at(time.Duration(len(name))*time.Hour+time.Second), 200, 2, sha(2), idx), ErrIndexDropped, "fragment")
		s, err := c.Segment(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if s.Open || s.Bytes != 200 || s.SHA256 != sha(2) {
			t.Errorf("%s: segment after the close: open %v, %d bytes, sha256 %s", name, s.Open, s.Bytes, s.SHA256)
		}
		if got, err := c.Fragments(ctx, []int64{id}); err != nil || len(got) != 0 {
			t.Errorf("%s: fragment index stored: %v, %v", name, got, err)
		}
	}
	// A damaged blob is an error naming the segment, never a wrong index.
	id := addOpen(t, c, "most", at(10*time.Hour))
	if err := c.CloseSegment(ctx, id, at(10*time.Hour+time.Second), 200, 2, sha(2), []Fragment{{Offset: 100, Length: 50, Keyframe: 0, Duration: time.Second}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.w.ExecContext(ctx, `UPDATE segments SET fragments = $2 WHERE id = $1`, id, []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Fragments(ctx, []int64{id})
	wantErr(t, err, errBadFragmentIndex, "segment")
}

// The chain links each closed segment to the previous one of its camera and stream,
// through deletions too, so retention never breaks it.
func TestClosingLinksTheCameraHashChain(t *testing.T) {
	c, _ := openTest(t)
	ctx := context.Background()
	first := addClosed(t, c, "most", at(0), at(time.Minute), 10)
	second := addClosed(t, c, "most", at(time.Minute), at(2*time.Minute), 10)
	other := addClosed(t, c, "namesti", at(90*time.Second), at(3*time.Minute), 10)
	if _, err := c.DeleteSegment(ctx, second, "test", at(time.Hour)); err != nil {
		t.Fatal(err)
	}
	third := addClosed(t, c, "most", at(2*time.Minute), at(3*time.Minute), 10)
	for _, tc := range []struct {
		id   int64
		want string
	}{{first, ""}, {other, ""}, {third, sha(int(second))}} {
		s, err := c.Segment(ctx, tc.id)
		if err != nil {
			t.Fatal(err)
		}
		if !s.Chained || s.PrevSHA256 != tc.want {
			t.Errorf("segment %d (%s): link %q chained %v, want %q", tc.id, s.Camera, s.PrevSHA256, s.Chained, tc.want)
		}
	}
	// The deleted segment is still known to playback: when and why it went.
	if d, err := c.DeletionOfSegment(ctx, second); err != nil || d.SHA256 != sha(int(second)) || d.Reason != "test" {
		t.Errorf("DeletionOfSegment(%d) = %+v, %v", second, d, err)
	}
	_, err := c.DeletionOfSegment(ctx, first)
	wantErr(t, err, ErrNotFound)
	open := addOpen(t, c, "most", at(3*time.Minute))
	if s, err := c.Segment(ctx, open); err != nil || s.Chained {
		t.Errorf("open segment %+v (%v): an open segment has no link yet", s, err)
	}
}
