// Package cluster shares cameras out between several recorder nodes through leases in the
// PostgreSQL catalog (tables nodes and camera_leases, made by the catalog's migrations).
//
// Every time is PostgreSQL's (clock_timestamp()): nodes never compare their own clocks.
// A node renews its leases every TTL/3; one that stops renewing (dead, paused,
// partitioned from the database) loses them TTL after its last renewal, and the others
// take its cameras. Each change of a camera's holder increases its epoch, and the
// recorder's catalog writes are fenced by the epoch they started under
// (catalog.WithFence), so a node that wakes up after losing a lease writes nothing more
// for that camera. docs/nodes.md has the protocol and the argument.
package cluster

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// DefaultTTL is how long a lease lasts without renewal: the longest a dead node's cameras
// go unrecorded before another node claims them is about TTL plus one renewal interval.
const DefaultTTL = 10 * time.Second

// claimLock is the key of the advisory lock a node holds while it counts and claims, so
// that two nodes never both see the same free cameras and claim past their fair share.
const claimLock = 0x746f776e6c656173 // "townleas"

// Camera is a configured camera as the lease protocol sees it.
type Camera struct {
	ID string
	// Node is the node the camera is pinned to ("" = any): only that node claims it,
	// and nobody records it while that node is down.
	Node string
}

// Holder is who holds a camera's lease.
type Holder struct {
	Node      string // node name
	Advertise string // the node's URL for other nodes
	Epoch     int64
}

// Options configure a Manager.
type Options struct {
	Node      string // this node's name, unique in the cluster
	Advertise string // this node's URL for the other nodes
	TTL       time.Duration
	// Cameras returns the configured cameras; it is read at every round, so a reload
	// that adds or removes a camera is seen within one renewal interval.
	Cameras func() []Camera
	// Changed is called with the leases now held (camera → epoch) after every change.
	// It must have stopped every camera absent from held before it returns: a released
	// lease is given up only after that, so the camera's last writes still pass.
	Changed func(held map[string]int64)
	Log     *slog.Logger
}

// Manager holds and renews one node's camera leases.
type Manager struct {
	db  *sql.DB
	opt Options

	mu      sync.Mutex
	held    map[string]int64 // camera → epoch
	holders map[string]Holder

	// renewFailures counts rounds that could not reach the database; lost counts
	// leases that ended without this node giving them up.
	renewFailures atomic.Uint64
	lost          atomic.Uint64
}

// New connects to the PostgreSQL catalog at url (whose schema the catalog's migrations
// made). The connection is the Manager's own, so a renewal never queues behind the
// catalog's writes.
func New(url string, opt Options) (*Manager, error) {
	if opt.Node == "" {
		return nil, errors.New("cluster: the node name is empty")
	}
	if opt.TTL <= 0 {
		opt.TTL = DefaultTTL
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	db.SetMaxOpenConns(2)
	return &Manager{db: db, opt: opt, held: map[string]int64{}, holders: map[string]Holder{}}, nil
}

// Close closes the Manager's database connections.
func (m *Manager) Close() error { return m.db.Close() }

// Interval is how often leases are renewed: TTL/3, so that two renewals in a row may fail
// (a database restart, a slow network) before a lease runs out.
func (m *Manager) Interval() time.Duration { return m.opt.TTL / 3 }

// Held returns the leases this node holds: camera → epoch.
func (m *Manager) Held() map[string]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.held)
}

// Holder returns camera's current holder as of the last round (zero while nobody holds
// it). The API asks it per camera and per request, so it copies nothing.
func (m *Manager) Holder(camera string) Holder {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.holders[camera]
}

// Advertise is node's URL as it last advertised it in the nodes table ("" and no error
// for a node that never joined). Unlike Holders it is read afresh: the node holding a
// segment's file may hold no lease any more.
func (m *Manager) Advertise(ctx context.Context, node string) (string, error) {
	var url string
	err := m.db.QueryRowContext(ctx, `SELECT advertise FROM nodes WHERE name = $1`, node).Scan(&url)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return url, err
}

// RenewFailures counts rounds that failed (database unreachable, a statement failed).
func (m *Manager) RenewFailures() uint64 { return m.renewFailures.Load() }

// Lost counts leases that ended without this node giving them up: expired or taken.
func (m *Manager) Lost() uint64 { return m.lost.Load() }

// Run renews and claims leases every Interval until ctx ends. It returns nil then, still
// holding its leases: a node stopping cleanly stops its cameras and then calls Release,
// one that dies lets them run out.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(m.Interval())
	defer t.Stop()
	// lastRenewed is the local monotonic time a round last renewed every lease. The
	// database decides who holds a lease; this only makes a node that cannot reach the
	// database stop recording once its leases must have run out, instead of recording
	// footage nobody can index.
	lastRenewed := time.Now()
	for {
		start := time.Now()
		if err := m.round(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			m.renewFailures.Add(1)
			m.opt.Log.Warn("lease round failed", "err", err)
			if time.Since(lastRenewed) >= m.opt.TTL && len(m.Held()) > 0 {
				m.opt.Log.Error("leases not renewed for a whole TTL: stopping this node's cameras", "ttl", m.opt.TTL)
				m.lost.Add(uint64(len(m.Held())))
				m.setHeld(map[string]int64{})
			}
		} else {
			lastRenewed = start
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// setHeld records held and tells Changed if it differs from what was held.
func (m *Manager) setHeld(held map[string]int64) {
	m.mu.Lock()
	same := maps.Equal(held, m.held)
	m.held = held
	m.mu.Unlock()
	if !same && m.opt.Changed != nil {
		m.opt.Changed(maps.Clone(held))
	}
}

// round is one renewal: heartbeat, renew, give up what is over the fair share, claim
// what is under it, and refresh the holders' list.
func (m *Manager) round(ctx context.Context) error {
	// Half the TTL: a round slowed by a loaded database still finishes (the next one just
	// starts late), and one that cannot finish gives up while the leases still hold.
	ctx, cancel := context.WithTimeout(ctx, m.opt.TTL/2)
	defer cancel()
	if _, err := m.db.ExecContext(ctx, `INSERT INTO nodes (name, advertise, heartbeat) VALUES ($1, $2, clock_timestamp())
ON CONFLICT (name) DO UPDATE SET advertise = excluded.advertise, heartbeat = excluded.heartbeat`, m.opt.Node, m.opt.Advertise); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	// Renew only what has not run out: a lease that expired, even if nobody took it, is
	// lost; the camera may be claimed again, under a new epoch, like any free camera.
	renewed, err := m.renew(ctx)
	if err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	before := m.Held()
	for cam, epoch := range renewed {
		if _, ok := before[cam]; ok {
			continue
		}
		// A lease of an earlier run of this node (restarted within the TTL): this run
		// records nothing under it. Let it end now; the camera is claimed again under a
		// new epoch, so nothing the earlier run still had in flight can pass the fence.
		delete(renewed, cam)
		if err := m.expire(ctx, lease{cam, epoch}); err != nil {
			return fmt.Errorf("end an earlier run's lease on %s: %w", cam, err)
		}
	}
	for cam, epoch := range before {
		if renewed[cam] != epoch {
			m.lost.Add(1)
			m.opt.Log.Warn("camera lease lost: another node records it now", "camera", cam, "epoch", epoch)
		}
	}
	cams := m.opt.Cameras()
	claimed, release, err := m.balance(ctx, cams, renewed)
	if err != nil {
		m.setHeld(renewed) // what was lost stops even when claiming failed
		return fmt.Errorf("claim: %w", err)
	}
	maps.Copy(renewed, claimed)
	// Stop what is given up before giving it up (see Options.Changed).
	for _, cam := range release {
		delete(renewed, cam.id)
	}
	m.setHeld(renewed)
	for _, cam := range release {
		if err := m.expire(ctx, cam); err != nil {
			return fmt.Errorf("release %s: %w", cam.id, err)
		}
		m.opt.Log.Info("camera lease given up for another node's fair share", "camera", cam.id, "epoch", cam.epoch)
	}
	return m.refreshHolders(ctx)
}

// renew extends every lease of this node that has not run out by a TTL and returns them.
// A lease that expired, even if nobody took it, is not renewed: it is lost.
func (m *Manager) renew(ctx context.Context) (map[string]int64, error) {
	return m.leases(ctx, `UPDATE camera_leases SET expires_at = clock_timestamp() + make_interval(secs => $2)
WHERE node = $1 AND expires_at > clock_timestamp() RETURNING camera, epoch`, m.opt.Node, m.opt.TTL.Seconds())
}

// RenewForStop gives the leases this node still holds one more TTL, claiming nothing, when
// it stops cleanly: Run has returned (the rounds ended with the process's context, and the
// rest of the shutdown may have taken part of a TTL since), and the cameras' recorders
// must still close their segments under their leases before Release. A write refused by
// the fence there would set that footage aside instead of indexing it.
func (m *Manager) RenewForStop(ctx context.Context) error {
	if _, err := m.renew(ctx); err != nil {
		return fmt.Errorf("cluster: renew for the stop: %w", err)
	}
	return nil
}

// Release hands this node's cameras over on a clean stop: it ends every lease the node
// holds and marks the node as gone, so that the other nodes claim the cameras at their
// next round (within one Interval) instead of after the TTL. Without the second step the
// others would still count this node as live, and their fair share would leave its
// cameras unclaimed.
//
// Call it after Run has returned (no round may claim again) and after every camera has
// stopped, its recorder having closed its segment in the catalog: a lease released while
// its recorder still writes would refuse that recorder's last writes (the fence), and the
// footage they index would be set aside instead of closing the segment. Every unexpired
// lease of the node is ended, also one a round claimed just as it was cancelled (not in
// Held yet). Release returns the number of leases it ended.
func (m *Manager) Release(ctx context.Context) (int, error) {
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("cluster: release: %w", err)
	}
	defer tx.Rollback()
	ended, err := m.leasesTx(ctx, tx, `UPDATE camera_leases SET expires_at = clock_timestamp()
WHERE node = $1 AND expires_at > clock_timestamp() RETURNING camera, epoch`, m.opt.Node)
	if err != nil {
		return 0, fmt.Errorf("cluster: release: %w", err)
	}
	// Not live for anyone's fair share from now on, whatever TTL the others use. The row
	// stays, so other nodes still find this node's URL for the footage on its disk.
	if _, err := tx.ExecContext(ctx, `UPDATE nodes SET heartbeat = '-infinity' WHERE name = $1`, m.opt.Node); err != nil {
		return 0, fmt.Errorf("cluster: release: leave the live nodes: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("cluster: release: %w", err)
	}
	m.mu.Lock()
	m.held = map[string]int64{}
	m.mu.Unlock()
	for cam, epoch := range ended {
		m.opt.Log.Info("camera lease handed over: this node stops", "camera", cam, "epoch", epoch)
	}
	return len(ended), nil
}

type lease struct {
	id    string
	epoch int64
}

// expire ends one of this node's leases now. The row and its epoch stay.
func (m *Manager) expire(ctx context.Context, l lease) error {
	_, err := m.db.ExecContext(ctx, `UPDATE camera_leases SET expires_at = clock_timestamp()
WHERE camera = $1 AND node = $2 AND epoch = $3`, l.id, m.opt.Node, l.epoch)
	return err
}

// balance claims free cameras up to this node's fair share (and every free camera pinned
// to it), and returns what it claimed (committed: only then may they start) and the
// leases over the fair share, to be given up. Leases on cameras no longer configured, or
// pinned to another node, are given up too.
func (m *Manager) balance(ctx context.Context, cams []Camera, held map[string]int64) (map[string]int64, []lease, error) {
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, nil, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(claimLock)); err != nil {
		return nil, nil, err
	}
	var live int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM nodes WHERE heartbeat > clock_timestamp() - make_interval(secs => $1)`,
		m.opt.TTL.Seconds()).Scan(&live); err != nil {
		return nil, nil, err
	}
	live = max(live, 1) // this node has just beaten
	taken, err := m.leasesTx(ctx, tx, `SELECT camera, epoch FROM camera_leases WHERE expires_at > clock_timestamp()`)
	if err != nil {
		return nil, nil, err
	}

	var release []lease
	var shared, mine []string // unpinned ids; unpinned ids this node holds
	configured := map[string]bool{}
	for _, c := range cams {
		configured[c.ID] = true
		switch c.Node {
		case "":
			shared = append(shared, c.ID)
			if _, ok := held[c.ID]; ok {
				mine = append(mine, c.ID)
			}
		case m.opt.Node:
		default:
			if e, ok := held[c.ID]; ok {
				release = append(release, lease{c.ID, e})
			}
		}
	}
	for id, e := range held {
		if !configured[id] {
			release = append(release, lease{id, e})
		}
	}
	fair := (len(shared) + live - 1) / live
	slices.Sort(mine)
	// Over the fair share (another node joined): give up the last ones by id, so that
	// every node agrees on which cameras move.
	for len(mine) > fair {
		id := mine[len(mine)-1]
		mine = mine[:len(mine)-1]
		release = append(release, lease{id, held[id]})
	}
	want := fair - len(mine)
	claimed := map[string]int64{}
	for _, c := range cams {
		if _, ok := taken[c.ID]; ok {
			continue
		}
		pinnedHere := c.Node == m.opt.Node
		if !pinnedHere && (c.Node != "" || want <= 0) {
			continue
		}
		var epoch int64
		// The row stays when a lease ends, so the epoch only ever grows: a fence from
		// any earlier holding, this node's own included, never matches again.
		err := tx.QueryRowContext(ctx, `INSERT INTO camera_leases (camera, node, epoch, expires_at)
VALUES ($1, $2, 1, clock_timestamp() + make_interval(secs => $3))
ON CONFLICT (camera) DO UPDATE SET node = excluded.node, epoch = camera_leases.epoch + 1, expires_at = excluded.expires_at
WHERE camera_leases.expires_at <= clock_timestamp()
RETURNING epoch`, c.ID, m.opt.Node, m.opt.TTL.Seconds()).Scan(&epoch)
		if errors.Is(err, sql.ErrNoRows) {
			continue // taken meanwhile (cannot happen under claimLock, but costs nothing)
		}
		if err != nil {
			return nil, nil, err
		}
		claimed[c.ID] = epoch
		if !pinnedHere {
			want--
		}
	}
	slices.SortFunc(release, func(a, b lease) int { return cmp.Compare(a.id, b.id) })
	if err := tx.Commit(); err != nil {
		return nil, nil, err
	}
	for id, epoch := range claimed {
		m.opt.Log.Info("camera lease claimed", "camera", id, "epoch", epoch)
	}
	return claimed, release, nil
}

// refreshHolders reads who holds every camera now, for the API.
func (m *Manager) refreshHolders(ctx context.Context) error {
	rows, err := m.db.QueryContext(ctx, `SELECT l.camera, l.node, l.epoch, COALESCE(n.advertise, '') FROM camera_leases l
LEFT JOIN nodes n ON n.name = l.node WHERE l.expires_at > clock_timestamp()`)
	if err != nil {
		return fmt.Errorf("holders: %w", err)
	}
	defer rows.Close()
	out := map[string]Holder{}
	for rows.Next() {
		var cam string
		var h Holder
		if err := rows.Scan(&cam, &h.Node, &h.Epoch, &h.Advertise); err != nil {
			return fmt.Errorf("holders: %w", err)
		}
		out[cam] = h
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("holders: %w", err)
	}
	m.mu.Lock()
	m.holders = out
	m.mu.Unlock()
	return nil
}

func (m *Manager) leases(ctx context.Context, query string, args ...any) (map[string]int64, error) {
	rows, err := m.db.QueryContext(ctx, query, args...)
	return collectLeases(rows, err)
}

func (m *Manager) leasesTx(ctx context.Context, tx *sql.Tx, query string, args ...any) (map[string]int64, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	return collectLeases(rows, err)
}

func collectLeases(rows *sql.Rows, err error) (map[string]int64, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var cam string
		var epoch int64
		if err := rows.Scan(&cam, &epoch); err != nil {
			return nil, err
		}
		out[cam] = epoch
	}
	return out, rows.Err()
}
