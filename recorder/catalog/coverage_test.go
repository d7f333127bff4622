package catalog

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// spanString renders spans as offsets from t0 in seconds: "[0,60)R [60,70)- ...".
func spanString(spans []Span) string {
	var b strings.Builder
	for i, s := range spans {
		if i > 0 {
			b.WriteByte(' ')
		}
		mark := "-"
		if s.Recorded {
			mark = "R"
		}
		fmt.Fprintf(&b, "[%g,%g)%s", s.Start.Sub(t0).Seconds(), s.End.Sub(t0).Seconds(), mark)
		if s.Start.Location() != time.UTC || s.End.Location() != time.UTC {
			b.WriteString("(not UTC)")
		}
	}
	return b.String()
}

func sec(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

func TestCoverage(t *testing.T) {
	c, _ := openTest(t)
	ctx := context.Background()
	add := func(camera, stream string, start, end float64, gapBefore bool) {
		t.Helper()
		s := Segment{Camera: camera, Stream: stream, Start: at(sec(start)), Path: segPath(camera, stream, at(sec(start))), GapBefore: gapBefore}
		id, err := c.CreateSegment(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.CloseSegment(ctx, id, at(sec(end)), 1, 1, sha(1), nil); err != nil {
			t.Fatal(err)
		}
	}
	// "gappy": touching, a 10 s hole, a 0.5 s hole after a resync (GapBefore), and a
	// GapBefore segment that touches its predecessor.
	add("gappy", "main", 0, 60, false)
	add("gappy", "main", 60, 120, false)
	add("gappy", "main", 130, 190, false)
	add("gappy", "main", 190.5, 250, true)
	add("gappy", "main", 250, 300, true)
	// "live": a closed segment, then an open one last updated at 90 s, then a new
	// empty open segment on the sub stream.
	add("live", "main", 0, 60, false)
	open, err := c.CreateSegment(ctx, Segment{Camera: "live", Stream: "main", Start: at(60 * time.Second), Path: "recordings/live/open.mp4"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.UpdateOpenSegment(ctx, open, at(90*time.Second), 10, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSegment(ctx, Segment{Camera: "live", Stream: "sub", Start: at(95 * time.Second), Path: "recordings/live/empty.mp4"}); err != nil {
		t.Fatal(err)
	}
	// "streams": only the sub stream was recorded between 60 and 120.
	add("streams", "main", 0, 60, false)
	add("streams", "sub", 0, 120, false)
	add("streams", "main", 150, 200, true)
	// "edge": a hole of 0.8 s straddling 100 s.
	add("edge", "main", 0, 99.5, false)
	add("edge", "main", 100.3, 200, true)
	// A camera with a lock and no footage is not listed for "all cameras".
	if _, err := c.AddLock(ctx, Lock{Camera: "locked-only", Start: t0, End: at(time.Hour), Reason: "x", Created: t0}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name      string
		cameras   []string
		from, to  float64
		tolerance time.Duration
		want      []string // one spanString per camera
	}{
		{"touching merge at zero tolerance; every hole shows", []string{"gappy"}, 0, 300, 0,
			[]string{"[0,120)R [120,130)- [130,190)R [190,190.5)- [190.5,300)R"}},
		{"sub-second hole merges despite GapBefore", []string{"gappy"}, 0, 300, time.Second,
			[]string{"[0,120)R [120,130)- [130,300)R"}},
		{"hole equal to tolerance merges", []string{"gappy"}, 0, 300, 10 * time.Second,
			[]string{"[0,300)R"}},
		{"hole just over tolerance stays", []string{"gappy"}, 0, 300, 10*time.Second - 1,
			[]string{"[0,120)R [120,130)- [130,300)R"}},
		{"range inside one segment", []string{"gappy"}, 10, 20, 0,
			[]string{"[10,20)R"}},
		{"range starts and ends inside segments", []string{"gappy"}, 100, 150, 0,
			[]string{"[100,120)R [120,130)- [130,150)R"}},
		{"range inside a hole", []string{"gappy"}, 121, 129, time.Second,
			[]string{"[121,129)-"}},
		{"range beyond both ends", []string{"gappy"}, -50, 350, time.Second,
			[]string{"[-50,0)- [0,120)R [120,130)- [130,300)R [300,350)-"}},
		{"open segment counts to its last update", []string{"live"}, 0, 120, time.Second,
			[]string{"[0,90)R [90,120)-"}},
		{"sub stream fills the main stream's hole", []string{"streams"}, 0, 200, 0,
			[]string{"[0,120)R [120,150)- [150,200)R"}},
		{"hole straddling from merges", []string{"edge"}, 100, 150, time.Second,
			[]string{"[100,150)R"}},
		{"hole straddling from, tolerance too small", []string{"edge"}, 100, 150, 0,
			[]string{"[100,100.3)- [100.3,150)R"}},
		{"hole straddling to merges", []string{"edge"}, 50, 100, time.Second,
			[]string{"[50,100)R"}},
		{"several cameras in the order given, unknown one all gap", []string{"live", "nobody", "edge"}, 0, 100, time.Second,
			[]string{"[0,90)R [90,100)-", "[0,100)-", "[0,100)R"}},
		{"all cameras with segments, by id", nil, 0, 60, 0,
			[]string{"[0,60)R", "[0,60)R", "[0,60)R", "[0,60)R"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cov, err := c.Coverage(ctx, tc.cameras, at(sec(tc.from)), at(sec(tc.to)), tc.tolerance)
			if err != nil {
				t.Fatal(err)
			}
			wantCameras := tc.cameras
			if wantCameras == nil {
				wantCameras = []string{"edge", "gappy", "live", "streams"}
			}
			if len(cov) != len(wantCameras) {
				t.Fatalf("Coverage returned %d cameras, want %d: %+v", len(cov), len(wantCameras), cov)
			}
			for i, cv := range cov {
				if cv.Camera != wantCameras[i] {
					t.Errorf("camera %d = %s, want %s", i, cv.Camera, wantCameras[i])
				}
				if got := spanString(cv.Spans); got != tc.want[i] {
					t.Errorf("%s: spans = %s\nwant %s", cv.Camera, got, tc.want[i])
				}
			}
		})
	}

	_, err = c.Coverage(ctx, nil, at(time.Second), at(0), 0)
	wantErr(t, err, nil, "catalog: coverage: to", "is not after from")
	_, err = c.Coverage(ctx, nil, at(0), at(time.Second), -1)
	wantErr(t, err, nil, "catalog: coverage: tolerance -1ns is negative")
	_, err = c.Coverage(ctx, []string{""}, at(0), at(time.Second), 0)
	wantErr(t, err, nil, "catalog: coverage: camera is empty")
}

func TestCoverageEmptyCatalog(t *testing.T) {
	c, _ := openTest(t)
	cov, err := c.Coverage(context.Background(), nil, at(0), at(time.Hour), time.Second)
	if err != nil || len(cov) != 0 {
		t.Errorf("Coverage of an empty catalog = %+v (err %v), want no cameras", cov, err)
	}
}
