package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/recorder/catalog/pgtest"
)

// cluster4 are the shared cameras of the node tests; "pinned" is pinned to node a.
var cluster4 = []string{"cam-1", "cam-2", "cam-3", "cam-4"}

// nodeSetup writes one configuration per node (own storage and port, one PostgreSQL
// catalog, one node token) for cluster4 and a camera pinned to a, served by a new simcam,
// and makes the account velitel in the shared catalog.
func nodeSetup(t *testing.T, ttl string, nodes ...string) (url string, cfgs map[string]string) {
	t.Helper()
	url = pgtest.URL(t)
	ids := append(slices.Clone(cluster4), "pinned")
	specs := make([]simcam.CameraSpec, len(ids))
	for i, id := range ids {
		specs[i] = simcam.CameraSpec{Path: id, Clip: simcam.Clip("static")}
	}
	cam := startSimcam(t, specs...)
	dir := t.TempDir()
	token := filepath.Join(dir, "node.token")
	if err := os.WriteFile(token, []byte("uzel-tajemstvi-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgs = map[string]string{}
	for _, n := range nodes {
		port := freeTCPPort(t)
		var cfg strings.Builder
		fmt.Fprintf(&cfg, "storage:\n  path: %q\n  min_free: 1MiB\nhttp:\n  listen: 127.0.0.1:%d\nwebrtc:\n  udp_port: 0\n  tcp_port: 0\n", filepath.Join(dir, n), port)
		// The audit chain in the shared catalog is sealed with one key: every node has it.
		fmt.Fprintf(&cfg, "audit:\n  key_file: %q\n", filepath.Join(dir, "audit.key"))
		fmt.Fprintf(&cfg, "catalog:\n  url: %q\nnode:\n  advertise: http://127.0.0.1:%d\n  token_file: %q\n", url, port, token)
		if ttl != "" {
			fmt.Fprintf(&cfg, "  lease_ttl: %s\n", ttl)
		}
		cfg.WriteString("cameras:\n")
		for _, id := range ids {
			fmt.Fprintf(&cfg, "  - id: %s\n    main:\n      url: %s\n      transport: tcp\n    record:\n      mode: continuous\n      segment: 10s\n", id, cam.URL(id))
			if id == "pinned" {
				cfg.WriteString("    node: a\n")
			}
		}
		cfgs[n] = filepath.Join(dir, n+".yaml")
		if err := os.WriteFile(cfgs[n], []byte(cfg.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addAccount(t, cfgs[nodes[0]], "velitel", "supervisor,admin")
	return url, cfgs
}

// clusterCamera is what /api/cameras says of a camera on a node.
type clusterCamera struct {
	Node      *string `json:"node"`
	Recording *struct {
		State string `json:"state"`
	} `json:"recording"`
}

// nodeView asks one node for every camera's holder and that node's recorder state.
func nodeView(c *http.Client, base string) map[string]clusterCamera {
	resp, err := c.Get(base + "api/cameras")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var cams []struct {
		ID string `json:"id"`
		clusterCamera
	}
	if json.NewDecoder(resp.Body).Decode(&cams) != nil {
		return nil
	}
	out := map[string]clusterCamera{}
	for _, cam := range cams {
		out[cam.ID] = cam.clusterCamera
	}
	return out
}

// holders is camera → node as a node's API shows it; recording lists the cameras this
// node records.
func holders(view map[string]clusterCamera) (map[string]string, []string) {
	h := map[string]string{}
	var rec []string
	for id, c := range view {
		if c.Node != nil {
			h[id] = *c.Node
		}
		if c.Recording != nil && c.Recording.State == "recording" {
			rec = append(rec, id)
		}
	}
	slices.Sort(rec)
	return h, rec
}

// waitNodes polls until cond holds for the views of the given nodes, and returns how
// long that took.
func waitNodes(t *testing.T, limit time.Duration, what string, procs map[string]*serveProc, cond func(views map[string]map[string]clusterCamera) bool) time.Duration {
	t.Helper()
	clients := map[string]*http.Client{}
	for n, p := range procs {
		clients[n] = p.client
	}
	start := time.Now()
	var views map[string]map[string]clusterCamera
	for time.Since(start) < limit {
		views = map[string]map[string]clusterCamera{}
		for n, c := range clients {
			views[n] = nodeView(c, procs[n].base)
		}
		if cond(views) {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var logs strings.Builder
	for n, p := range procs {
		fmt.Fprintf(&logs, "--- node %s:\n%s\n", n, tailLines(p.stderr.String(), 30))
	}
	t.Fatalf("after %s: %s; views %+v\n%s", limit, what, views, logs.String())
	return 0
}

// recordsShare says whether node records exactly want of the cameras, and every node's
// API names it as their holder.
func recordsShare(views map[string]map[string]clusterCamera, node string, want int) bool {
	h, rec := holders(views[node])
	var mine []string
	for _, id := range cluster4 {
		if h[id] == node {
			mine = append(mine, id)
		}
	}
	shared := slices.DeleteFunc(slices.Clone(rec), func(id string) bool { return id == "pinned" })
	return len(mine) == want && slices.Equal(mine, shared)
}

// startNodeProc starts `townwatch serve -node name` and logs in to it as velitel.
func startNodeProc(t *testing.T, cfg, name string) *serveProc {
	t.Helper()
	p := startServeCmd(t, exec.Command(binary, "serve", "-config", cfg, "-node", name))
	p.client = slowLogin(t, p.base)
	return p
}

// slowLogin is loginClient with patience: a node's first seconds (four cameras starting,
// a race-built binary, a loaded test machine) can hold an Argon2id login past 10 s.
func slowLogin(t *testing.T, base string) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, Timeout: 60 * time.Second}
	body, _ := json.Marshal(map[string]string{"username": "velitel", "password": accountPassword})
	resp, err := c.Post(base+"api/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("login at %s: %v", base, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login at %s: %s", base, resp.Status)
	}
	c.Timeout = 5 * time.Second
	return c
}

// nodeSegments are the catalog's segment rows recorded on node's disk.
func nodeSegments(t *testing.T, cat *catalog.Catalog, node string) map[int64]catalog.Segment {
	t.Helper()
	segs, err := cat.AllSegments(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]catalog.Segment{}
	for _, s := range segs {
		if s.Node == node {
			out[s.ID] = s
		}
	}
	return out
}

// twoNodes are nodes a and b of nodeSetup, running, with the shared catalog.
type twoNodes struct {
	a, b *serveProc
	cat  *catalog.Catalog
	url  string            // the catalog's
	cfgs map[string]string // node → its configuration file
}

// startTwoNodes starts nodes a and b (lease TTL ttl, "" = the default) and waits until
// they record the shared cameras 2/2 and also, if given, cond holds (what says what more
// it waits for).
func startTwoNodes(t *testing.T, ttl, what string, cond func(views map[string]map[string]clusterCamera) bool) twoNodes {
	t.Helper()
	url, cfgs := nodeSetup(t, ttl, "a", "b")
	a := startNodeProc(t, cfgs["a"], "a")
	b := startNodeProc(t, cfgs["b"], "b")
	waitNodes(t, 60*time.Second, "the nodes do not record the shared cameras 2/2 "+what, map[string]*serveProc{"a": a, "b": b}, func(v map[string]map[string]clusterCamera) bool {
		return recordsShare(v, "a", 2) && recordsShare(v, "b", 2) && (cond == nil || cond(v))
	})
	cat, err := catalog.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	return twoNodes{a: a, b: b, cat: cat, url: url, cfgs: cfgs}
}

// sharedHeldBy lists the shared cameras node holds, as p's API says.
func sharedHeldBy(p *serveProc, node string) []string {
	h, _ := holders(nodeView(p.client, p.base))
	var out []string
	for _, id := range cluster4 {
		if h[id] == node {
			out = append(out, id)
		}
	}
	return out
}

// failoverTTL is the lease TTL of the kill -9 test: the shortest node.lease_ttl allows,
// so that the test waits out as little as it can of the dead node's leases. The bounds
// it checks are TTL + one renewal interval (a third of it) + 5 s of camera start, for
// any TTL.
const failoverTTL = 3 * time.Second

// TestNodeHandovers runs the two handover tests, kill -9 and clean stop, beside each other
// only. They check the failover time and the catalog's hole against the lease TTL, and
// the package's parallel tests (eight at a time, most of them real binaries recording)
// could starve the nodes past those bounds, so this test is not parallel: go test runs
// it before them. Its two subtests are: each has its own catalog, nodes and cameras, and
// the two nodes of the other test load the machine far less than eight tests do. Their
// bounds have margins of seconds over what they measured alone (failover 3-5 s and holes
// 3-6 s within 9 s at TTL 3 s; clean-stop holes of 3 s within 10 s).
func TestNodeHandovers(t *testing.T) {
	t.Run("NodesShareCamerasAndTakeOverFromAKilledNode", func(t *testing.T) {
		t.Parallel()
		nodesShareCamerasAndTakeOverFromAKilledNode(t)
	})
	t.Run("CleanStopHandsCamerasToTheOtherNode", func(t *testing.T) {
		t.Parallel()
		cleanStopHandsCamerasToTheOtherNode(t)
	})
}

// Two nodes share four cameras 2/2 and the camera pinned to a stays on a; after kill -9
// of a, b records the four within TTL + one renewal interval (plus the camera's start),
// each moved camera's new footage is marked as following a gap, and the pinned camera
// waits for its node. The failover time and the catalog's hole are logged.
func nodesShareCamerasAndTakeOverFromAKilledNode(t *testing.T) {
	nodes := startTwoNodes(t, failoverTTL.String(), "and the pinned one on a", func(v map[string]map[string]clusterCamera) bool {
		ha, reca := holders(v["a"])
		return ha["pinned"] == "a" && slices.Contains(reca, "pinned")
	})
	a, b, cat := nodes.a, nodes.b, nodes.cat
	moved := sharedHeldBy(a, "a")
	time.Sleep(3 * time.Second) // some footage on a's disk, indexed with progress updates

	a.cmd.Process.Kill()
	killed := time.Now()
	<-a.exited
	took := waitNodes(t, 40*time.Second, "b does not record all four shared cameras", map[string]*serveProc{"b": b}, func(v map[string]map[string]clusterCamera) bool {
		return recordsShare(v, "b", 4)
	})
	took += time.Since(killed) - took // from the kill, not from the first poll
	bound := failoverTTL + failoverTTL/3 + 5*time.Second
	t.Logf("failover: b records a's cameras %s after kill -9 of a (TTL %s, renewal every %s)", took.Round(100*time.Millisecond),
		failoverTTL, (failoverTTL / 3).Round(10*time.Millisecond))
	if took > bound {
		t.Errorf("failover took %s; want within TTL + renewal interval + 5 s of camera start", took)
	}
	hb, recb := holders(nodeView(b.client, b.base))
	if hb["pinned"] != "" || slices.Contains(recb, "pinned") {
		t.Errorf("camera pinned to a: holder %q on b, b records %v; want nobody while a is down", hb["pinned"], recb)
	}

	// The hole in each moved camera's footage, as the catalog indexes it.
	for id, hole := range catalogHoles(t, cat, moved, killed) {
		if hole > bound {
			t.Errorf("camera %s: hole of %s in the catalog; want at most TTL + renewal interval + 5 s", id, hole)
		}
	}
}

// catalogHoles measures, for each camera that moved from node a to node b around since,
// the hole in its footage as the catalog indexes it: from the end of a's last segment to
// the start of b's first, which must be marked as following a gap. Each hole is logged.
// It waits (up to 20 s) for b's first row of each camera, which b writes with its start as
// it opens the segment: a's rows are final once a has exited, so the holes are the same
// whenever they are read after that.
func catalogHoles(t *testing.T, cat *catalog.Catalog, moved []string, since time.Time) map[string]time.Duration {
	t.Helper()
	holes := map[string]time.Duration{}
	for _, id := range moved {
		var segs []catalog.Segment
		var lastA, firstB *catalog.Segment
		for deadline := time.Now().Add(20 * time.Second); lastA == nil || firstB == nil; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("camera %s: segments %+v; want a's then b's", id, segs)
			}
			var err error
			if segs, err = cat.Segments(context.Background(), id, since.Add(-time.Hour), time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			lastA, firstB = nil, nil
			for i := range segs {
				switch s := &segs[i]; {
				case s.Node == "a":
					lastA = s
				case s.Node == "b" && firstB == nil:
					firstB = s
				}
			}
		}
		holes[id] = firstB.Start.Sub(lastA.End)
		t.Logf("camera %s: catalog hole %s (a's footage indexed up to %s, b's from %s)", id, holes[id].Round(10*time.Millisecond),
			lastA.End.Format("15:04:05.000"), firstB.Start.Format("15:04:05.000"))
		if !firstB.GapBefore {
			t.Errorf("camera %s: b's first segment is not marked as following a gap", id)
		}
	}
	return holes
}

// A node stopped cleanly (SIGTERM) closes its cameras' segments, then releases its
// leases and leaves the live nodes: when it has exited it holds no lease in the catalog,
// none of its rows is open, nothing was set aside, and the other node records its cameras
// at its next lease round instead of after the TTL. The hole per moved camera is logged,
// to compare with the kill -9 of nodesShareCamerasAndTakeOverFromAKilledNode.
func cleanStopHandsCamerasToTheOtherNode(t *testing.T) {
	nodes := startTwoNodes(t, "", "", nil)
	a, b, cat, url, cfgs := nodes.a, nodes.b, nodes.cat, nodes.url, nodes.cfgs
	ctx := context.Background()
	moved := sharedHeldBy(a, "a")
	time.Sleep(3 * time.Second) // some footage on a's disk

	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	select {
	case <-a.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("a did not exit within 60 s of SIGTERM:\n%s", tailLines(a.stderr.String(), 40))
	}
	if a.err != nil {
		t.Fatalf("a exited with %v after SIGTERM:\n%s", a.err, tailLines(a.stderr.String(), 40))
	}
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var held, live int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM camera_leases WHERE node = 'a' AND expires_at > clock_timestamp()`).Scan(&held); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM nodes WHERE name = 'a' AND heartbeat > clock_timestamp() - interval '10 seconds'`).Scan(&live); err != nil {
		t.Fatal(err)
	}
	if held != 0 || live != 0 {
		t.Errorf("after a stopped cleanly the catalog still has %d live leases of a and counts a live (%d): nothing was handed over", held, live)
	}
	for id, s := range nodeSegments(t, cat, "a") {
		if s.Open {
			t.Errorf("segment %d of camera %s is still open after a stopped cleanly", id, s.Camera)
		}
	}
	aDir := filepath.Join(filepath.Dir(cfgs["a"]), "a")
	if _, err := os.Stat(filepath.Join(aDir, "fenced")); !os.IsNotExist(err) {
		t.Errorf("a set footage aside on its clean stop (%s exists)", filepath.Join(aDir, "fenced"))
	}
	took := waitNodes(t, 40*time.Second, "b does not record all four shared cameras", map[string]*serveProc{"b": b}, func(v map[string]map[string]clusterCamera) bool {
		return recordsShare(v, "b", 4)
	})
	took += time.Since(stopped) - took
	t.Logf("handover: b records a's cameras %s after SIGTERM to a (TTL 10s, renewal every 3.33s)", took.Round(100*time.Millisecond))
	for id, hole := range catalogHoles(t, cat, moved, stopped) {
		// A lease that ran out instead would leave at least TTL - interval (6.7 s); a
		// released one is claimed within one interval (3.3 s), then the camera starts.
		if hole > 10*time.Second {
			t.Errorf("camera %s: hole of %s in the catalog after a clean stop; want less than the TTL", id, hole)
		}
	}
	if !strings.Contains(a.stderr.String(), "camera leases handed over") {
		t.Errorf("a's log does not say it handed its leases over:\n%s", tailLines(a.stderr.String(), 40))
	}
}

// A node paused (SIGSTOP) past its leases loses them to the other node; woken up
// (SIGCONT), it writes no catalog row for the cameras it lost (its rows stay exactly as
// they were) and stops them.
func TestPausedNodeWritesNothingForTheCamerasItLost(t *testing.T) {
	t.Parallel()
	nodes := startTwoNodes(t, "3s", "", nil)
	a, b, cat, url := nodes.a, nodes.b, nodes.cat, nodes.url
	ctx := context.Background()
	time.Sleep(2 * time.Second)

	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			a.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	waitNodes(t, 30*time.Second, "b does not record all four shared cameras while a is paused", map[string]*serveProc{"b": b}, func(v map[string]map[string]clusterCamera) bool {
		return recordsShare(v, "b", 4)
	})
	before := nodeSegments(t, cat, "a")

	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	// a notices at its next lease round (overdue at once) and stops the four cameras'
	// writers; its metrics then say so.
	metrics := a.client
	re := regexp.MustCompile(`(?m)^townwatch_node_leases_lost_total\{node="a"\} (\S+)$`)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if lost := metricValue(metrics, a.base, re); lost >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a did not count its two lost leases within 20 s of SIGCONT:\n%s", tailLines(a.stderr.String(), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // anything a's old writers still had in flight
	after := nodeSegments(t, cat, "a")
	for id, s := range before {
		if got := after[id]; got.Bytes != s.Bytes || !got.End.Equal(s.End) || got.Open != s.Open {
			t.Errorf("segment %d (%s) of node a changed after it lost the lease: %+v → %+v", id, s.Camera, s, got)
		}
	}
	// Rows a made after waking can only be under leases it claimed anew (b gives two back
	// once a beats again), never under the ones it lost: b took all four, so a camera a
	// holds now is one it claimed after waking.
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var heldNow []string
	rows, err := db.QueryContext(ctx, `SELECT camera FROM camera_leases WHERE node = 'a' AND expires_at > clock_timestamp()`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c string
		rows.Scan(&c)
		heldNow = append(heldNow, c)
	}
	rows.Close()
	for id, s := range after {
		if _, old := before[id]; !old && !slices.Contains(heldNow, s.Camera) {
			t.Errorf("node a wrote segment %d of camera %s after waking without a new lease on it (a holds %v)", id, s.Camera, heldNow)
		}
	}
	if !strings.Contains(a.stderr.String(), "camera lease lost") {
		t.Errorf("a's log does not say it lost its leases:\n%s", tailLines(a.stderr.String(), 40))
	}
	if !strings.Contains(a.stderr.String(), "camera stopped: its lease moved") {
		t.Errorf("a's log does not say it stopped the cameras it lost:\n%s", tailLines(a.stderr.String(), 40))
	}
}

func metricValue(c *http.Client, base string, re *regexp.Regexp) float64 {
	resp, err := c.Get(base + "metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := re.FindSubmatch(body)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}
