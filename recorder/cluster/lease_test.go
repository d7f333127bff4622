package cluster

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/recorder/catalog/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m.Run)) }

// testTTL is short so the tests run in seconds (the protocol is the same at 10 s), and
// long enough that a loaded test machine still renews in time.
//
// The tests run in parallel: each has its own database and its own Managers, and they
// spend their time waiting for lease rounds and expiries, not working; the margins of
// their bounds are whole renewal intervals (seconds), not what a busy CPU could eat.
const testTTL = 3 * time.Second

// newCatalog makes a fresh PostgreSQL catalog (its migrations make the lease tables).
func newCatalog(t *testing.T) string {
	t.Helper()
	url := pgtest.URL(t)
	c, err := catalog.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	return url
}

// node is one running Manager and what its Changed callback last said.
type node struct {
	m    *Manager
	stop context.CancelFunc
	done chan struct{}

	mu   sync.Mutex
	held map[string]int64
}

func (n *node) current() map[string]int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.held
}

// startNode runs a Manager for name until the test ends or kill.
func startNode(t *testing.T, url, name string, cams []Camera) *node {
	t.Helper()
	return startNodeTTL(t, url, name, cams, testTTL)
}

func startNodeTTL(t *testing.T, url, name string, cams []Camera, ttl time.Duration) *node {
	t.Helper()
	n := &node{done: make(chan struct{})}
	m, err := New(url, Options{Node: name, Advertise: "http://" + name, TTL: ttl,
		Cameras: func() []Camera { return cams },
		Changed: func(held map[string]int64) {
			n.mu.Lock()
			n.held = held
			n.mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	n.m = m
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	go func() {
		defer close(n.done)
		m.Run(ctx)
	}()
	t.Cleanup(n.kill)
	t.Cleanup(func() { m.Close() })
	return n
}

// kill stops renewing without giving anything up, as a node that died would.
func (n *node) kill() {
	n.stop()
	<-n.done
}

// openAsNode opens the catalog at url as node's recorder would (its writes fenced and
// marked as that node's), closed when the test ends.
func openAsNode(t *testing.T, url, node string) *catalog.Catalog {
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

// waitFor polls cond until it holds or limit passes, and returns how long it took.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("after %s: %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func cameras(n int) []Camera {
	out := make([]Camera, n)
	for i := range out {
		out[i] = Camera{ID: fmt.Sprintf("cam-%d", i+1)}
	}
	return out
}

func TestTwoNodesShareThenOneTakesOverFromTheDead(t *testing.T) {
	t.Parallel()
	url := newCatalog(t)
	cams := cameras(4)
	a := startNode(t, url, "a", cams)
	b := startNode(t, url, "b", cams)
	waitFor(t, 10*testTTL, "the nodes did not split 4 cameras 2/2", func() bool {
		return len(a.current()) == 2 && len(b.current()) == 2
	})
	before := a.current()
	for cam := range before {
		if _, both := b.current()[cam]; both {
			t.Fatalf("camera %s held by both nodes", cam)
		}
	}

	a.kill()
	took := waitFor(t, 4*testTTL, "b did not take a's cameras", func() bool { return len(b.current()) == 4 })
	t.Logf("failover took %s (TTL %s, renewal every %s)", took, testTTL, b.m.Interval())
	for cam, epoch := range before {
		if got := b.current()[cam]; got <= epoch {
			t.Errorf("camera %s moved from a (epoch %d) to b at epoch %d: the epoch must grow", cam, epoch, got)
		}
	}
	var moved string
	for cam := range before {
		moved = cam
	}
	// The holders list is read at the end of the round that claimed.
	waitFor(t, 2*b.m.Interval(), "the holders list does not show b at http://b for a moved camera", func() bool {
		h := b.m.Holder(moved)
		return h.Node == "b" && h.Advertise == "http://b"
	})
}

func TestPinnedCameraGoesOnlyToItsNode(t *testing.T) {
	t.Parallel()
	url := newCatalog(t)
	cams := []Camera{{ID: "gate", Node: "a"}, {ID: "square"}, {ID: "bridge"}}
	b := startNode(t, url, "b", cams)
	waitFor(t, 10*testTTL, "b did not claim the two unpinned cameras", func() bool { return len(b.current()) == 2 })
	// b is alone and under its fair share of nothing more: the pinned camera stays free.
	time.Sleep(3 * b.m.Interval())
	if _, ok := b.current()["gate"]; ok {
		t.Fatal("b claimed camera gate, which is pinned to a")
	}
	a := startNode(t, url, "a", cams)
	waitFor(t, 10*testTTL, "a did not claim its pinned camera", func() bool {
		_, ok := a.current()["gate"]
		return ok
	})
	waitFor(t, 10*testTTL, "the unpinned cameras were not shared 1/1", func() bool {
		return len(a.current()) == 2 && len(b.current()) == 1
	})
}

// A node that stopped renewing (paused, cut off) and still believes it holds a camera
// writes nothing to the catalog for it once another node has taken it.
func TestFencedWriteRefusedAfterTakeover(t *testing.T) {
	t.Parallel()
	url := newCatalog(t)
	ctx := context.Background()
	cams := []Camera{{ID: "gate"}}
	a := startNode(t, url, "a", cams)
	waitFor(t, 10*testTTL, "a did not claim gate", func() bool { return len(a.current()) == 1 })
	epoch := a.current()["gate"]

	catA := openAsNode(t, url, "a")
	fenced := catalog.WithFence(ctx, catalog.Fence{Camera: "gate", Epoch: epoch})
	start := time.Now().UTC()
	seg := func(i int) catalog.Segment {
		at := start.Add(time.Duration(i) * time.Second)
		return catalog.Segment{Camera: "gate", Stream: "main", Start: at, Path: fmt.Sprintf("recordings/gate/%d.mp4", i), Codec: "H264"}
	}
	id, err := catA.CreateSegment(fenced, seg(1))
	if err != nil {
		t.Fatalf("write under a held lease: %v", err)
	}
	if s, _ := catA.Segment(ctx, id); s.Node != "a" {
		t.Errorf("segment written by node a says node %q", s.Node)
	}

	a.kill() // a is "paused": it renews no more, but its catalog handle lives on
	b := startNode(t, url, "b", cams)
	waitFor(t, 4*testTTL, "b did not take gate", func() bool { return len(b.current()) == 1 })

	if _, err := catA.CreateSegment(fenced, seg(2)); !errors.Is(err, catalog.ErrFenced) {
		t.Fatalf("create after the takeover: err = %v, want ErrFenced", err)
	}
	if err := catA.UpdateOpenSegment(fenced, id, start.Add(3*time.Second), 1000, 75); !errors.Is(err, catalog.ErrFenced) {
		t.Fatalf("progress after the takeover: err = %v, want ErrFenced", err)
	}
	segs, err := catA.Segments(ctx, "gate", start.Add(-time.Hour), start.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 1 || segs[0].ID != id || segs[0].Bytes != 0 {
		t.Fatalf("catalog after the refused writes: %+v, want only the first segment, unchanged", segs)
	}
	// The same node claiming the camera again gets a new epoch: the old fence stays dead.
	b.kill()
	a2 := startNode(t, url, "a", cams)
	waitFor(t, 4*testTTL, "a did not claim gate again", func() bool { return len(a2.current()) == 1 })
	if a2.current()["gate"] <= epoch+1 {
		t.Fatalf("gate claimed again at epoch %d after epochs %d (a) and %d (b)", a2.current()["gate"], epoch, epoch+1)
	}
	if _, err := catA.CreateSegment(fenced, seg(3)); !errors.Is(err, catalog.ErrFenced) {
		t.Fatalf("write with the first epoch after a claimed again: err = %v, want ErrFenced", err)
	}
}

// A node that stops cleanly releases its leases and leaves the live nodes: the other node
// claims its cameras at its next round, long before the leases would have run out, under
// new epochs; the released holding's fence passes no more.
func TestCleanStopHandsCamerasOver(t *testing.T) {
	t.Parallel()
	// A long TTL makes the handover tell from an expiry: a lease renewed at most one
	// interval before the stop runs out no sooner than TTL - interval (20 s) after it,
	// while a released one is claimed within one interval (10 s).
	const ttl = 30 * time.Second
	url := newCatalog(t)
	ctx := context.Background()
	cams := cameras(4)
	a := startNodeTTL(t, url, "a", cams, ttl)
	waitFor(t, 2*ttl, "a alone did not claim the 4 cameras", func() bool { return len(a.current()) == 4 })
	b := startNodeTTL(t, url, "b", cams, ttl)
	waitFor(t, 3*ttl, "the nodes did not split 4 cameras 2/2", func() bool {
		return len(a.current()) == 2 && len(b.current()) == 2
	})
	before := a.current()

	a.kill() // Run ends; the cameras would stop here
	stopped := time.Now()
	n, err := a.m.Release(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Release = %d, %v; want the 2 leases a held", n, err)
	}
	waitFor(t, ttl, "b did not take a's released cameras", func() bool { return len(b.current()) == 4 })
	took := time.Since(stopped)
	t.Logf("handover took %s (TTL %s, renewal every %s)", took.Round(10*time.Millisecond), ttl, b.m.Interval())
	if took >= ttl-b.m.Interval() {
		t.Errorf("b took a's cameras %s after a stopped: no sooner than the leases could have run out (%s), so nothing was handed over",
			took, ttl-b.m.Interval())
	}
	catA := openAsNode(t, url, "a")
	for cam, epoch := range before {
		if got := b.current()[cam]; got <= epoch {
			t.Errorf("camera %s went from a (epoch %d) to b at epoch %d: the epoch must grow", cam, epoch, got)
		}
		fenced := catalog.WithFence(ctx, catalog.Fence{Camera: cam, Epoch: epoch})
		_, err := catA.CreateSegment(fenced, catalog.Segment{Camera: cam, Stream: "main", Start: time.Now().UTC(),
			Path: "recordings/" + cam + "/late.mp4", Codec: "H264"})
		if !errors.Is(err, catalog.ErrFenced) {
			t.Errorf("camera %s: a write under a's released lease: err = %v, want ErrFenced", cam, err)
		}
	}
}

// On a clean stop the lease rounds have ended before the cameras stop; RenewForStop gives
// the held leases one more TTL, so a recorder closing its segment after the lease would
// otherwise have run out still writes under it instead of being fenced.
func TestRenewForStopKeepsTheLeasesForTheClosingWrites(t *testing.T) {
	t.Parallel()
	url := newCatalog(t)
	ctx := context.Background()
	a := startNode(t, url, "a", []Camera{{ID: "gate"}})
	waitFor(t, 10*testTTL, "a did not claim gate", func() bool { return len(a.current()) == 1 })
	epoch := a.current()["gate"]
	a.kill() // the rounds end with the process's context
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var lastRound time.Time // when the lease runs out as the last round renewed it
	if err := db.QueryRowContext(ctx, `SELECT expires_at FROM camera_leases WHERE camera = 'gate'`).Scan(&lastRound); err != nil {
		t.Fatal(err)
	}
	time.Sleep(testTTL / 2) // the rest of the shutdown takes part of a TTL
	if err := a.m.RenewForStop(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*testTTL, "the database clock did not pass the last round's expiry", func() bool {
		var past bool
		err := db.QueryRowContext(ctx, `SELECT clock_timestamp() > $1::timestamptz`, lastRound).Scan(&past)
		return err == nil && past
	})
	catA := openAsNode(t, url, "a")
	fenced := catalog.WithFence(ctx, catalog.Fence{Camera: "gate", Epoch: epoch})
	if _, err := catA.CreateSegment(fenced, catalog.Segment{Camera: "gate", Stream: "main", Start: time.Now().UTC(), Path: "recordings/gate/x.mp4", Codec: "H264"}); err != nil {
		t.Fatalf("a closing write after the last round's lease ran out, under the renewal: %v", err)
	}
}
