package main

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/motion/report"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/recorder/catalog/pgtest"
)

// On one of several nodes, a camera's motion events and search-grid minutes are written
// only while the node holds the lease its unit was started under: once another node has
// the camera, what this node's worker still reports of it (a node that slept past its
// lease, frames in flight) is refused by the catalog, so an officer never finds events of
// one moment from two nodes, or from a node that no longer watched the camera.
func TestMotionWritesOnANodeAreFencedByTheCamerasLease(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	ctx := context.Background()
	cat := openNodeCatalog(t, url, "a")
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	lease := func(node string, epoch int64) {
		t.Helper()
		if _, err := db.ExecContext(ctx, `INSERT INTO camera_leases (camera, node, epoch, expires_at) VALUES ('namesti', $1, $2, clock_timestamp() + interval '1 hour')
			ON CONFLICT (camera) DO UPDATE SET node = excluded.node, epoch = excluded.epoch, expires_at = excluded.expires_at`, node, epoch); err != nil {
			t.Fatal(err)
		}
	}

	sys := &system{catalog: cat, cluster: &nodeCluster{name: "a"}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	unit := &cameraUnit{id: "namesti"}
	unit.epoch.Store(5) // started under epoch 5
	sys.cams.set([]*cameraUnit{unit})
	sink := sys.eventSink(configs.Camera{ID: "namesti"}, nil)
	t0 := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	event := func(n int, start time.Time, end time.Time) report.Event {
		return report.Event{ID: "0192f5c4-0000-7000-8000-00000000000" + string(rune('0'+n)), Camera: "namesti", Start: start, End: end, Score: 0.3}
	}
	grid := func(minute time.Time) report.GridMinute {
		g := report.GridMinute{Camera: "namesti", Start: minute}
		g.Seconds[7].Set(3, 4)
		return g
	}
	searched := func() []catalog.MotionHit {
		t.Helper()
		var want catalog.GridCells // every cell
		for i := range want {
			want[i] = 0xff
		}
		hits, err := cat.SearchMotion(ctx, []string{"namesti"}, t0.Add(-time.Minute), t0.Add(time.Hour), want, 1)
		if err != nil {
			t.Fatal(err)
		}
		return hits
	}

	lease("a", 5)
	first := event(1, t0, time.Time{})
	sink.onEvent(first)
	sys.storeGridMinute(grid(t0))
	if _, err := cat.Event(ctx, first.ID); err != nil {
		t.Fatalf("event under the held lease not stored: %v", err)
	}
	if hits := searched(); len(hits) != 1 {
		t.Fatalf("grid minute under the held lease: search found %v, want one hit", hits)
	}

	lease("b", 6) // node b took the camera; node a has not noticed yet
	ended := first
	ended.End = t0.Add(20 * time.Second)
	sink.onEvent(ended)
	second := event(2, t0.Add(time.Minute), time.Time{})
	sink.onEvent(second)
	sys.storeGridMinute(grid(t0.Add(2 * time.Minute)))
	if got, err := cat.Event(ctx, first.ID); err != nil || !got.End.IsZero() {
		t.Errorf("event after the lease moved: %+v, %v; want it left as it was (not ended by node a)", got, err)
	}
	if _, err := cat.Event(ctx, second.ID); err == nil {
		t.Errorf("node a stored event %s after node b took the camera", second.ID)
	}
	if hits := searched(); len(hits) != 1 {
		t.Errorf("grid minute after the lease moved: search found %v, want only the first minute", hits)
	}

	// a claims the camera again under a new epoch; until a new unit starts under it, the
	// registry's unit (epoch 0: not started here) writes nothing either.
	lease("a", 7)
	sys.cams.set([]*cameraUnit{{id: "namesti"}})
	third := event(3, t0.Add(3*time.Minute), time.Time{})
	sink.onEvent(third)
	if _, err := cat.Event(ctx, third.ID); err == nil {
		t.Errorf("an unstarted unit's event was stored")
	}
}

// openNodeCatalog opens the shared catalog at url as node's would be opened by serve -node
// (its writes marked as that node's and fenced by its leases), closed when the test ends.
func openNodeCatalog(t *testing.T, url, node string) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetNode(node); err != nil {
		t.Fatal(err)
	}
	return c
}
