package catalog

import (
	"context"
	"reflect"
	"testing"
	"time"
)

func cell(x, y int) GridCells {
	var g GridCells
	i := y*16 + x
	g[i/8] |= 1 << (i % 8)
	return g
}

func TestMotionSearchFindsWhereAndWhen(t *testing.T) {
	c, _ := openTest(t)
	ctx := context.Background()
	m := GridMinute{Camera: "most", Start: t0.Truncate(time.Minute)}
	for s := 10; s <= 12; s++ { // a car through cell (3,4), seconds 10-12
		m.Seconds[s] = cell(3, 4)
	}
	m.Seconds[14] = cell(3, 4) // and again after one still second: the same hit
	m.Seconds[40] = cell(9, 9) // something elsewhere
	if err := c.AddGridMinute(ctx, m); err != nil {
		t.Fatal(err)
	}
	// The worker restarted within the minute: its second report adds up.
	again := GridMinute{Camera: "most", Start: m.Start}
	again.Seconds[50] = cell(3, 4)
	if err := c.AddGridMinute(ctx, again); err != nil {
		t.Fatal(err)
	}
	from, to := m.Start, m.Start.Add(time.Hour)
	hits, err := c.SearchMotion(ctx, []string{"most", "namesti"}, from, to, cell(3, 4), 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []MotionHit{
		{Camera: "most", Start: m.Start.Add(10 * time.Second), End: m.Start.Add(15 * time.Second), Cells: 1},
		{Camera: "most", Start: m.Start.Add(50 * time.Second), End: m.Start.Add(51 * time.Second), Cells: 1},
	}
	if !reflect.DeepEqual(hits, want) {
		t.Errorf("hits\n%+v\nwant\n%+v", hits, want)
	}
	if hits, _ := c.SearchMotion(ctx, []string{"most"}, from, to, cell(0, 0), 1); len(hits) != 0 {
		t.Errorf("search of an empty cell found %v", hits)
	}
	if hits, _ := c.SearchMotion(ctx, []string{"most"}, from, to, cell(3, 4), 2); len(hits) != 0 {
		t.Errorf("min 2 cells with one moving found %v", hits)
	}
	// The grid goes with the events' retention.
	if _, err := c.DeleteEventsBefore(ctx, "most", to); err != nil {
		t.Fatal(err)
	}
	if hits, _ := c.SearchMotion(ctx, []string{"most"}, from, to, cell(3, 4), 1); len(hits) != 0 {
		t.Errorf("after retention the search still finds %v", hits)
	}
}
