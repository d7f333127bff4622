package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/recorder/cluster"
	"github.com/townwatch/townwatch/viewer"
)

// nodeCluster is this townwatch as one of several recorder nodes (serve -node): which
// cameras it records follows the leases its cluster.Manager holds. nil on a single node,
// which records every configured camera as it always did.
type nodeCluster struct {
	name string
	mgr  *cluster.Manager
	// peers is the HTTP side, with the node token (node.token_file): media from the other
	// nodes' disks, theirs from this one, live views relayed to the camera's holder.
	peers *viewer.Peers
}

// joinCluster makes sys node name of the cluster sharing its PostgreSQL catalog. It runs
// in openSystem after the catalog is open and before Recover, which then looks only at
// this node's segments.
func (sys *system) joinCluster(cfg *configs.Config, name string) error {
	if err := cfg.CheckNode(name); err != nil {
		return err
	}
	token, err := cfg.Node.Token()
	if err != nil {
		return err
	}
	roots, err := cfg.Node.CAPool()
	if err != nil {
		return fmt.Errorf("node.ca_file: %w", err)
	}
	if err := sys.catalog.SetNode(name); err != nil {
		return err
	}
	mgr, err := cluster.New(cfg.Catalog.URL, cluster.Options{Node: name, Advertise: cfg.Node.Advertise, TTL: cfg.Node.TTL(),
		Cameras: sys.leaseCameras, Changed: sys.leasesChanged, Log: sys.log.With("component", "leases")})
	if err != nil {
		return err
	}
	peers := &viewer.Peers{Self: name, Token: token, Advertise: mgr.Advertise, Holder: func(camera string) (string, string) {
		h := mgr.Holder(camera)
		return h.Node, h.Advertise
	}, Client: viewer.PeerClient(roots)}
	sys.cluster = &nodeCluster{name: name, mgr: mgr, peers: peers}
	sys.extra = append(sys.extra, mgr.Run)
	return nil
}

// leaseCameras are the configured cameras, for the lease protocol. Every unit in the
// registry is a configured camera, running or not: on a node only the held ones run.
func (sys *system) leaseCameras() []cluster.Camera {
	units := sys.cams.units()
	out := make([]cluster.Camera, len(units))
	for i, u := range units {
		out[i] = cluster.Camera{ID: u.id, Node: u.config().Node}
	}
	return out
}

// handOverTimeout bounds the lease release on a clean stop: a database that does not
// answer by then gets the leases back by their expiry, as after a crash.
const handOverTimeout = 10 * time.Second

// renewForStop gives the held leases one more TTL before the cameras stop, so that their
// recorders close their segments under them (see cluster.Manager.RenewForStop). A catalog
// that does not answer leaves the leases as they are: a recorder whose lease runs out
// meanwhile sets its last footage aside under fenced/, as after a pause.
func (nc *nodeCluster) renewForStop(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), handOverTimeout)
	defer cancel()
	if err := nc.mgr.RenewForStop(ctx); err != nil {
		log.Warn("camera leases not renewed for the stop: a recorder still closing when its lease runs out sets that footage aside", "err", err)
	}
}

// handOver releases this node's leases once its cameras have stopped (system.stopCameras;
// the lease rounds ended with run), so the other nodes claim them at their next round.
func (nc *nodeCluster) handOver(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), handOverTimeout)
	defer cancel()
	n, err := nc.mgr.Release(ctx)
	if err != nil {
		log.Error("camera leases not handed over: the other nodes take the cameras when the leases run out", "err", err)
		return
	}
	log.Info("camera leases handed over to the other nodes", "leases", n)
}

// unitContext is what camera unit u runs under: on a node, the context carries the
// lease's fence, so every catalog write of the unit's recorder is conditioned on it
// (catalog.WithFence). ok is false when the node does not hold the camera: it must not
// run.
func (sys *system) unitContext(running context.Context, u *cameraUnit) (ctx context.Context, epoch int64, ok bool) {
	if sys.cluster == nil {
		return running, 0, true
	}
	epoch, ok = sys.cluster.mgr.Held()[u.id]
	if !ok {
		return nil, 0, false
	}
	return catalog.WithFence(running, catalog.Fence{Camera: u.id, Epoch: epoch}), epoch, true
}

// cameraWrites is the context for the catalog writes about camera made outside its
// recorder: its motion events and search-grid minutes, which the node-wide motion pool
// delivers. On a node they are fenced like the recorder's own writes, by the lease the
// camera's current unit was started under: a node that slept past its lease, or whose
// worker still reports frames of a camera it gave up, adds nothing to the events of a
// camera another node now records. A unit not started here has epoch 0, which no lease
// has, so its writes are refused too.
func (sys *system) cameraWrites(camera string) context.Context {
	ctx := context.Background()
	if sys.cluster == nil {
		return ctx
	}
	var epoch int64
	if u := sys.cams.unit(camera); u != nil {
		epoch = u.epoch.Load()
	}
	return catalog.WithFence(ctx, catalog.Fence{Camera: camera, Epoch: epoch})
}

// leasesChanged starts the cameras whose lease this node won and stops those it lost or
// gave up, through the registry, while every other camera records on. A camera held under
// a new epoch gets a new unit: the old one's fence can never pass again. It returns once
// every camera no longer held has stopped (cluster.Options.Changed).
func (sys *system) leasesChanged(held map[string]int64) {
	rl := sys.reloads
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.stopped {
		return
	}
	units := sys.cams.units()
	next := make([]*cameraUnit, len(units))
	changed := false
	for i, u := range units {
		next[i] = u
		epoch, ok := held[u.id]
		started := u.stop != nil
		if started && ok && epoch == u.epoch.Load() {
			continue
		}
		if !started && (!ok || rl.running == nil) {
			continue
		}
		if started {
			sys.log.Info("camera stopped: its lease moved", "camera", u.id, "epoch", u.epoch.Load())
			sys.stopUnit(u)
			// A stopped unit cannot start again; a fresh one waits for the next lease.
			nu, err := sys.newUnit(u.config())
			if err != nil {
				sys.log.Error("camera could not be rebuilt after its lease moved", "camera", u.id, "err", err)
				continue
			}
			next[i], changed = nu, true
		}
		if ok && rl.running != nil {
			sys.startUnit(rl.running, next[i])
			changed = true
		}
	}
	if !changed {
		return
	}
	sys.cams.set(next)
	sys.motion.setCameras(sys.motionCameras())
}

// nodeProgressEvery is how often a node brings an open segment's row up to date: about
// each fragment, so that a takeover leaves at most a second of the dead node's footage
// unindexed, and a paused node that wakes sets aside at most a second it recorded under
// its lease. One small write a second per camera is cheap for PostgreSQL.
const nodeProgressEvery = time.Second

// progressEvery is the recorders' WriterOptions.ProgressEvery: the default on a single
// node.
func (sys *system) progressEvery() time.Duration {
	if sys.cluster == nil {
		return 0
	}
	return nodeProgressEvery
}

// peers is what the HTTP server needs of the other nodes; nil on a single node.
func (sys *system) peers() *viewer.Peers {
	if sys.cluster == nil {
		return nil
	}
	return sys.cluster.peers
}

// holder is the node holding camera id's lease now, for the API ("" while none does).
func (sys *system) holder(id string) string {
	return sys.cluster.mgr.Holder(id).Node
}

// metrics are the node's lease counters, labelled with its name.
func (nc *nodeCluster) metrics(sys *system) []prometheus.Collector {
	labels := prometheus.Labels{"node": nc.name}
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "townwatch_node_leases_held",
			Help: "Camera leases this node holds: the cameras it records.", ConstLabels: labels},
			func() float64 { return float64(len(nc.mgr.Held())) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "townwatch_node_lease_renew_failures_total",
			Help: "Lease rounds (renewal and claims, every TTL/3) that failed, mostly for want of the database.", ConstLabels: labels},
			func() float64 { return float64(nc.mgr.RenewFailures()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "townwatch_node_leases_lost_total",
			Help: "Camera leases that ended without this node giving them up (it was too late to renew them).", ConstLabels: labels},
			func() float64 { return float64(nc.mgr.Lost()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "townwatch_node_fenced_writes_total",
			Help: "Catalog writes refused because this node no longer held the camera's lease (nothing was written).", ConstLabels: labels},
			func() float64 {
				n := sys.health.retiredFenced.Load()
				for _, u := range sys.cams.units() {
					n += u.writer.Stats().FencedWrites
				}
				return float64(n)
			}),
		newProxyCollector(nc),
	}
}

// proxyCollector exports, per owner node, the media requests and bytes this node fetched
// from the other nodes' disks for its clients (viewer.Peers.Proxied), and per holder node
// the live views it relayed to the node holding the camera (viewer.Peers.Relayed),
// labelled like the lease metrics with this node's name.
type proxyCollector struct {
	peers                                 *viewer.Peers
	requests, bytes, failures             *prometheus.Desc
	relayed, relayedOpen, relayedFailures *prometheus.Desc
}

func newProxyCollector(nc *nodeCluster) proxyCollector {
	labels := prometheus.Labels{"node": nc.name}
	return proxyCollector{peers: nc.peers,
		requests: prometheus.NewDesc("townwatch_node_proxied_requests_total",
			"Reads of footage on another node's disk (playback ranges, whole segments for exports, stills and verify-archive, scrub previews) this node made through that node, by that node.", []string{"owner"}, labels),
		bytes: prometheus.NewDesc("townwatch_node_proxied_bytes_total",
			"Bytes of footage this node fetched from another node's disk for its clients, by that node.", []string{"owner"}, labels),
		failures: prometheus.NewDesc("townwatch_node_proxied_failures_total",
			"Reads of footage on another node's disk that failed (unknown address, no answer, refused, cut off), by that node.", []string{"owner"}, labels),
		relayed: prometheus.NewDesc("townwatch_node_relayed_live_sessions_total",
			"Live views of this node's users relayed to the node holding the camera (its answer taken), by that node.", []string{"holder"}, labels),
		relayedOpen: prometheus.NewDesc("townwatch_node_relayed_live_sessions",
			"Live views this node relays to the node holding the camera, open now, by that node.", []string{"holder"}, labels),
		relayedFailures: prometheus.NewDesc("townwatch_node_relayed_live_failures_total",
			"Live offers relayed to the node holding the camera that did not start (no answer, refused, or its refusal passed on), by that node.", []string{"holder"}, labels),
	}
}

func (c proxyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.requests, c.bytes, c.failures, c.relayed, c.relayedOpen, c.relayedFailures} {
		ch <- d
	}
}

func (c proxyCollector) Collect(ch chan<- prometheus.Metric) {
	for owner, st := range c.peers.Proxied() {
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(st.Requests), owner)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(st.Bytes), owner)
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(st.Failures), owner)
	}
	for holder, st := range c.peers.Relayed() {
		ch <- prometheus.MustNewConstMetric(c.relayed, prometheus.CounterValue, float64(st.Sessions), holder)
		ch <- prometheus.MustNewConstMetric(c.relayedOpen, prometheus.GaugeValue, float64(st.Open), holder)
		ch <- prometheus.MustNewConstMetric(c.relayedFailures, prometheus.CounterValue, float64(st.Failures), holder)
	}
}
