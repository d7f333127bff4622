package motion

import (
	"fmt"
	"testing"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/motion/report"
)

// movingSeconds returns, per second since epoch, whether any cell of area moved.
func movingSeconds(grids []report.GridMinute, area *report.Grid) map[int]bool {
	out := map[int]bool{}
	for _, gm := range grids {
		for s := range gm.Seconds {
			if gm.Seconds[s].Common(area) > 0 {
				out[int(gm.Start.Sub(epoch)/time.Second)+s] = true
			}
		}
	}
	return out
}

func cells(x0, y0, x1, y1 int) *report.Grid {
	var g report.Grid
	for y := y0; y <= y1; y++ {
		for x := x0; x <= x1; x++ {
			g.Set(x, y)
		}
	}
	return &g
}

// The search grid records where something moved, second by second: the square of the
// zones clip (x 40→215, y 150..210 from 5 s to 12 s; cells are 40×22.5 pixels) in cells
// on its path only while it moves, nothing in a box elsewhere, nothing under a mask.
func TestGridRecordsWhereAndWhenSomethingMoved(t *testing.T) {
	units := loadLoops(t, leftMotionClip(t), 25, 1)
	r := analyse(t, testCamera(nil), units, nil)
	if len(r.grids) != 1 || !r.grids[0].Start.Equal(epoch) || r.grids[0].Camera != "town-hall" {
		t.Fatalf("grid minutes %d (first %v), want the one minute of the clip", len(r.grids), r.grids)
	}
	path := movingSeconds(r.grids, cells(1, 6, 6, 9))
	for s := 6; s <= 11; s++ {
		if !path[s] {
			t.Errorf("second %d: the square moves along cells 1..6 × 6..9 but the grid has nothing there (moving seconds %v)", s, path)
		}
	}
	for s := range path {
		if s < 4 || s > 13 {
			t.Errorf("second %d: motion on the path while the square stands still", s)
		}
	}
	if elsewhere := movingSeconds(r.grids, cells(9, 0, 15, 4)); len(elsewhere) > 0 {
		t.Errorf("motion in the empty top right at seconds %v", elsewhere)
	}
	masked := analyse(t, testCamera(func(c *configs.Camera) {
		c.Motion.Masks = []configs.Zone{{Name: "soused", Points: leftHalf}}
	}), units, nil)
	if len(masked.grids) != 0 {
		t.Errorf("motion under a mask reached the search grid: %d minutes", len(masked.grids))
	}
}

// A car crossing the picture every 10 s (40×20 pixels of 640×360, 80 px/s) is found in a
// box of cells on its road at each pass, and never in a box above the road.
func TestGridFindsEveryPassOfACar(t *testing.T) {
	clip := makeClip(t, fmt.Sprintf(scene, 30)+";color=c=0x802020:s=40x20:r=25:d=30[car];"+
		"[bg][car]overlay=x='mod(t*80,800)-80':y=300:eval=frame,noise=alls=6:allf=t")
	units := loadLoops(t, clip, 25, 1)
	r := analyse(t, testCamera(nil), units, nil)
	// The box: x 280..360, y 292..337 (columns 7..8, rows 13..14). The car's front reaches
	// x 280 at (280+80-40)/80 = 4 s into each 10 s, its back leaves 360 at 5.5 s.
	seen := movingSeconds(r.grids, cells(7, 13, 8, 14))
	for pass := range 3 {
		found := false
		for s := pass*10 + 3; s <= pass*10+6; s++ {
			found = found || seen[s]
		}
		if !found {
			t.Errorf("pass %d (seconds %d..%d) not found in the box; moving seconds %v", pass+1, pass*10+4, pass*10+5, seen)
		}
	}
	for s := range seen {
		if s%10 < 3 || s%10 > 6 {
			t.Errorf("second %d: motion in the box while the car is elsewhere", s)
		}
	}
	if above := movingSeconds(r.grids, cells(0, 0, 15, 9)); len(above) > 0 {
		t.Errorf("motion above the road at seconds %v", above)
	}
}
