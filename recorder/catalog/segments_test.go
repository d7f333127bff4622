package catalog

import (
	"context"
	"crypto/sha256"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSegmentRoundTrip(t *testing.T) {
	c, _ := openTest(t)
	ctx := context.Background()
	prague, err := time.LoadLocation("Europe/Prague")
	if err != nil {
		t.Fatal(err)
	}
	start := t0.In(prague) // callers may pass any zone; the catalog answers in UTC
	in := Segment{
		ID: 999, Camera: "stribro-namesti", Stream: "sub", Start: start,
		Path:  segPath("stribro-namesti", "sub", start),
		Bytes: 1234, SHA256: sha(1), Codec: "H265", Width: 640, Height: 360,
		Audio: true, GapBefore: true, Open: false, Frames: 3,
	}
	id, err := c.CreateSegment(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.ID, want.Start, want.End, want.SHA256, want.Open = id, t0, t0, "", true
	check := func(step string) {
		t.Helper()
		got, err := c.Segment(ctx, id)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: Segment(%d) =\n%+v\nwant\n%+v", step, id, got, want)
		}
		if got.Start.Location() != time.UTC || got.End.Location() != time.UTC {
			t.Errorf("%s: times in %v/%v, want UTC", step, got.Start.Location(), got.End.Location())
		}
		byPath, err := c.SegmentByPath(ctx, want.Path)
		if err != nil || !reflect.DeepEqual(byPath, want) {
			t.Errorf("%s: SegmentByPath = %+v (err %v), want %+v", step, byPath, err, want)
		}
	}
	check("created")

	end := t0.Add(4*time.Second + 1) // one nanosecond past a round value
	if err := c.UpdateOpenSegment(ctx, id, end.In(prague), 50000, 100); err != nil {
		t.Fatal(err)
	}
	want.End, want.Bytes, want.Frames = end, 50000, 100
	check("updated")

	end = t0.Add(60*time.Second + 7)
	if err := c.CloseSegment(ctx, id, end, 750000, 1500, sha(42), nil); err != nil {
		t.Fatal(err)
	}
	want.End, want.Bytes, want.Frames, want.SHA256, want.Open, want.Chained = end, 750000, 1500, sha(42), false, true
	check("closed")
}

func TestCreateSegmentErrors(t *testing.T) {
	c, _ := openTest(t)
	ctx := context.Background()
	good := Segment{Camera: "a", Stream: "main", Start: t0, Path: "recordings/a/x.mp4", Codec: "H264"}
	existing, err := c.CreateSegment(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Segment)
		want   string
	}{
		{"duplicate path", func(s *Segment) {}, fmt.Sprintf("catalog: create segment recordings/a/x.mp4: path is indexed as segment %d: already exists", existing)},
		{"no camera", func(s *Segment) { s.Camera = "" }, "camera is empty"},
		{"bad stream", func(s *Segment) { s.Stream = "Main" }, `stream "Main": must be main or sub`},
		{"absolute path", func(s *Segment) { s.Path = "/etc/passwd" }, "path must be relative"},
		{"escaping path", func(s *Segment) { s.Path = "recordings/../../x.mp4" }, "path must be relative"},
		{"unclean path", func(s *Segment) { s.Path = "recordings//x.mp4" }, "path must be relative"},
		{"empty path", func(s *Segment) { s.Path = "" }, "path must be relative"},
		{"dot path", func(s *Segment) { s.Path = "." }, "path must be relative"},
		{"no start", func(s *Segment) { s.Start = time.Time{} }, "start is not set"},
		{"start out of range", func(s *Segment) { s.Start = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) }, "start 2300-01-01T00:00:00Z is outside the storable range"},
		{"end before start", func(s *Segment) { s.End = t0.Add(-1) }, "end 2026-03-14T09:26:53.589793237Z is before start 2026-03-14T09:26:53.589793238Z"},
		{"negative bytes", func(s *Segment) { s.Bytes = -1 }, "bytes (-1) and frames (0) must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := good
			if tc.name != "duplicate path" {
				s.Path = "recordings/a/y.mp4"
			}
			tc.mutate(&s)
			_, err := c.CreateSegment(ctx, s)
			wantErr(t, err, nil, "catalog: create segment ", tc.want)
		})
	}
	_, err = c.CreateSegment(ctx, good)
	wantErr(t, err, ErrExists)
	all, err := c.AllSegments(ctx)
	if err != nil || len(all) != 1 {
		t.Errorf("AllSegments = %+v (err %v), want only the first segment", all, err)
	}
}

func TestCloseAndUpdateErrors(t *testing.T) {
	c, _ := openTest(t)
	ctx := context.Background()
	id := addOpen(t, c, "a", t0)

	wantErr(t, c.CloseSegment(ctx, 999, at(time.Minute), 1, 1, sha(1), nil), ErrNotFound, "catalog: close segment 999: not found")
	wantErr(t, c.UpdateOpenSegment(ctx, 999, at(time.Minute), 1, 1), ErrNotFound, "catalog: update open segment 999: not found")
	wantErr(t, c.CloseSegment(ctx, id, at(time.Minute), 1, 1, strings.ToUpper(sha(0xab)), nil), nil, "is not 64 lowercase hex digits")
	wantErr(t, c.CloseSegment(ctx, id, at(time.Minute), 1, 1, "abc", nil), nil, "is not 64 lowercase hex digits")
	wantErr(t, c.CloseSegment(ctx, id, at(time.Minute), 0, 0, "", nil), nil, `sha256 "" is not 64 lowercase hex digits`)
	wantErr(t, c.UpdateOpenSegment(ctx, id, at(-time.Second), 1, 1), nil, fmt.Sprintf("catalog: update open segment %d: end", id), "is before start")
	wantErr(t, c.UpdateOpenSegment(ctx, id, at(time.Second), -1, 1), nil, "must not be negative")
	wantErr(t, c.CloseSegment(ctx, id, time.Time{}, 1, 1, sha(1), nil), nil, "end is not set")

	if s, err := c.Segment(ctx, id); err != nil || !s.Open || s.End != t0 || s.Bytes != 0 {
		t.Fatalf("after refused changes Segment = %+v (err %v), want it untouched", s, err)
	}
	if err := c.CloseSegment(ctx, id, at(time.Minute), 10, 1, sha(1), nil); err != nil {
		t.Fatal(err)
	}
	wantErr(t, c.CloseSegment(ctx, id, at(2*time.Minute), 20, 2, sha(2), nil), ErrSegmentClosed, fmt.Sprintf("catalog: close segment %d: segment is closed", id))
	wantErr(t, c.UpdateOpenSegment(ctx, id, at(2*time.Minute), 20, 2), ErrSegmentClosed)
	if s, err := c.Segment(ctx, id); err != nil || s.End != at(time.Minute) || s.Bytes != 10 || s.SHA256 != sha(1) {
		t.Errorf("a second close changed the segment: %+v (err %v)", s, err)
	}
	_, err := c.Segment(ctx, 999)
	wantErr(t, err, ErrNotFound, "catalog: segment 999: not found")
	_, err = c.SegmentByPath(ctx, "recordings/nope.mp4")
	wantErr(t, err, ErrNotFound, "catalog: segment recordings/nope.mp4: not found")
}

func TestSegmentsOverlap(t *testing.T) {
	c, _ := openTest(t)
	ctx := context.Background()
	a := addClosed(t, c, "cam", at(0), at(60*time.Second), 1)
	b := addClosed(t, c, "cam", at(60*time.Second), at(120*time.Second), 1)
	empty := addOpen(t, c, "cam", at(120*time.Second)) // open, nothing written yet
	sub, err := c.CreateSegment(ctx, Segment{Camera: "cam", Stream: "sub", Start: at(30 * time.Second), End: at(90 * time.Second), Path: segPath("cam", "sub", at(30*time.Second))})
	if err != nil {
		t.Fatal(err)
	}
	other := addClosed(t, c, "other", at(0), at(time.Hour), 1)
	// A three-hour segment on its own camera: found from deep inside, although it starts
	// long before the range (the range query bounds its index scan by the longest one).
	long := addClosed(t, c, "long", at(0), at(3*time.Hour), 1)
	addClosed(t, c, "long", at(3*time.Hour), at(3*time.Hour+time.Minute), 1)

	for _, tc := range []struct {
		name     string
		camera   string
		from, to time.Duration
		want     []int64
	}{
		{"exactly a", "cam", 0, 60 * time.Second, []int64{a, sub}},
		{"exactly b", "cam", 60 * time.Second, 120 * time.Second, []int64{sub, b}}, // by start
		{"last nanosecond of a", "cam", 60*time.Second - 1, 60 * time.Second, []int64{a, sub}},
		{"first nanosecond of b", "cam", 60 * time.Second, 60*time.Second + 1, []int64{sub, b}},
		{"ends where empty open starts", "cam", 119 * time.Second, 120 * time.Second, []int64{b}},
		{"empty open segment at from", "cam", 120 * time.Second, 121 * time.Second, []int64{empty}},
		{"after everything", "cam", 121 * time.Second, time.Hour, []int64{}},
		{"before everything", "cam", -time.Hour, 0, []int64{}},
		{"everything", "cam", -time.Hour, time.Hour, []int64{a, sub, b, empty}},
		{"inside a long segment", "long", 2 * time.Hour, 2*time.Hour + time.Second, []int64{long}},
		{"other camera", "other", 59 * time.Minute, 2 * time.Hour, []int64{other}},
		{"unknown camera", "nobody", 0, time.Hour, []int64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			segs, err := c.Segments(ctx, tc.camera, at(tc.from), at(tc.to))
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(segs); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("Segments(%s, %v, %v) = %v, want %v", tc.camera, tc.from, tc.to, got, tc.want)
			}
		})
	}
	_, err = c.Segments(ctx, "cam", at(time.Second), at(time.Second))
	wantErr(t, err, nil, "catalog: segments of \"cam\": to 2026-03-14T09:26:54.589793238Z is not after from")
	_, err = c.Segments(ctx, "", at(0), at(time.Hour))
	wantErr(t, err, nil, `catalog: segments of "": camera is empty`)
}

func TestOpenAndAllSegments(t *testing.T) {
	c, _ := openTest(t)
	ctx := context.Background()
	b1 := addClosed(t, c, "b", at(0), at(time.Minute), 10)
	a2 := addOpen(t, c, "a", at(time.Minute))
	a1 := addClosed(t, c, "a", at(0), at(time.Minute), 20)
	b2 := addOpen(t, c, "b", at(time.Minute))

	all, err := c.AllSegments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(ids(all)), fmt.Sprint([]int64{a1, a2, b1, b2}); got != want {
		t.Errorf("AllSegments = %v, want %v (by camera, then start)", got, want)
	}
	open, err := c.OpenSegments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(ids(open)), fmt.Sprint([]int64{a2, b2}); got != want {
		t.Errorf("OpenSegments = %v, want %v", got, want)
	}
}

func TestBytes(t *testing.T) {
	c, _ := openTest(t)
	ctx := context.Background()
	if total, err := c.TotalBytes(ctx); err != nil || total != 0 {
		t.Errorf("TotalBytes of an empty catalog = %d (err %v), want 0", total, err)
	}
	addClosed(t, c, "a", at(0), at(time.Minute), 100)
	addClosed(t, c, "a", at(time.Minute), at(2*time.Minute), 200)
	addClosed(t, c, "b", at(0), at(time.Minute), 1000)
	open := addOpen(t, c, "b", at(time.Minute))
	if err := c.UpdateOpenSegment(ctx, open, at(90*time.Second), 5, 1); err != nil {
		t.Fatal(err)
	}
	m, err := c.BytesByCamera(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"a": 300, "b": 1005}; !reflect.DeepEqual(m, want) {
		t.Errorf("BytesByCamera = %v, want %v (open segments count: their bytes are on disk)", m, want)
	}
	if total, err := c.TotalBytes(ctx); err != nil || total != 1305 {
		t.Errorf("TotalBytes = %d (err %v), want 1305", total, err)
	}
}

// TestDropEmptySegment is how the recorder retires a segment that never got footage
// (its file is missing or holds no complete fragment): close it as empty, then delete it
// with the reason on record.
func TestDropEmptySegment(t *testing.T) {
	c, _ := openTest(t)
	ctx := context.Background()
	id := addOpen(t, c, "a", t0)
	empty := fmt.Sprintf("%x", sha256.Sum256(nil))
	if err := c.CloseSegment(ctx, id, t0, 0, 0, empty, nil); err != nil {
		t.Fatal(err)
	}
	d, err := c.DeleteSegment(ctx, id, "recovery: file missing after crash", at(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if d.Bytes != 0 || d.SHA256 != empty || d.Start != t0 || d.End != t0 {
		t.Errorf("Deletion = %+v, want the empty segment", d)
	}
}
