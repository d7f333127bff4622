package main

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/townwatch/townwatch/cmd/internal/memlimit"
	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/ingest/supervise"
	"github.com/townwatch/townwatch/motion/report"
	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/archive"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/recorder/exports"
	"github.com/townwatch/townwatch/viewer"
	"github.com/townwatch/townwatch/viewer/access"
	"github.com/townwatch/townwatch/viewer/connlimit"
	"github.com/townwatch/townwatch/viewer/live"
)

// catalogFile is the catalog's name under storage.path.
const catalogFile = configs.CatalogFile

// system is one running townwatch: storage and catalog, every camera's sources and
// recorder, retention, the hub they meet at, and the HTTP surface.
type system struct {
	cfg       *configs.Config
	log       *slog.Logger
	hub       *ingest.Hub
	storage   *recorder.Storage
	catalog   *catalog.Catalog
	cams      cameraRegistry // the running cameras, one unit each
	motion    *motionPool    // runs a worker process only while some camera is analysed or thumbnailed
	thumbs    *thumbnailSink
	retention *recorder.Retention
	exports   *exports.Manager
	audit     *access.AuditLog
	live      *live.Manager
	http      *viewer.Server
	metrics   *prometheus.Registry          // what GET /metrics serves
	extra     []func(context.Context) error // optional services run alongside (profiling)
	// restarts counts supervised components restarted after a panic or an early return.
	restarts *prometheus.CounterVec
	// fragLatency and analysisTime are shared by every camera's recorder and analysis.
	fragLatency  prometheus.Histogram
	analysisTime *prometheus.HistogramVec
	reloads      *reloader
	// cameraStore writes cameras.d for the camera API and applies what it wrote through
	// reloads; its Main is set by serve (no configuration file, no API).
	cameraStore configs.CameraStore
	// faults is a test seam: when set, it runs inside each supervised per-camera component
	// (see faultPoint) so a test can make one of them panic. nil in production.
	faults func(camera, component string)
	// restartWait is a test seam: when set, supervised components wait with it between a
	// fault and their restart (supervise.Options.Wait), so a test that restarts them need
	// not wait out the whole backoff. nil in production: supervise's timer.
	restartWait func(ctx context.Context, d time.Duration) bool
	lock        *os.File // holds storageLockFile while the system is open
	// cluster is set on one of several recorder nodes (serve -node; nodes.go).
	cluster *nodeCluster
	health  *catalogHealth

	storedBytes storedBytes
	// archiveTier and archiveJob are storage.archive's (nil without one; archive.go).
	archiveTier *archive.Tier
	archiveJob  *archive.Job
}

// openSystem opens storage and catalog, brings them into agreement after a crash
// (recorder.Recover), and wires every component. It starts no goroutine; close releases
// what it opened.
func openSystem(ctx context.Context, cfg *configs.Config, log *slog.Logger) (_ *system, err error) {
	return openNode(ctx, cfg, "", log)
}

// openNode is openSystem for recorder node name of several sharing the catalog ("": the
// only node, recording every camera).
func openNode(ctx context.Context, cfg *configs.Config, node string, log *slog.Logger) (_ *system, err error) {
	sys := &system{cfg: cfg, log: log, hub: ingest.NewHub(), health: &catalogHealth{},
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "townwatch_component_restarts_total",
			Help: "Components restarted alone after a panic or an unexpected stop (camera is empty for system-wide ones).",
		}, []string{"camera", "component"})}
	sys.reloads = newReloader(sys, "")
	// An API write is applied at once through the one reload path, not when the watcher
	// next looks at the files.
	sys.cameraStore.Apply = func(cfg *configs.Config) error { return sys.reloads.Apply(cfg, "api") }
	if sys.lock, err = lockStorage(cfg.Storage.Path); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			sys.close()
		}
	}()
	if sys.storage, err = recorder.OpenStorage(cfg.Storage.Path); err != nil {
		return nil, err
	}
	// A damaged catalog is moved aside and rebuilt (salvaged rows, then the files
	// adopted by Recover): the cameras record either way.
	sys.catalog, sys.health.rebuild, err = recorder.OpenCatalog(ctx, cfg.CatalogTarget(), log.With("component", "catalog"))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", catalogField(cfg), err)
	}
	sys.health.cat = sys.catalog
	if err := sys.openArchive(cfg, log.With("component", "archive")); err != nil {
		return nil, err
	}
	if node != "" {
		if err := sys.joinCluster(cfg, node); err != nil {
			return nil, err
		}
		// Exports, stills, scrub previews and verification read footage still on
		// another node's disk through that node (its node routes).
		sys.storage.SetPeers(node, sys.cluster.peers)
	}
	recovered, err := recorder.Recover(ctx, sys.storage, sys.catalog, log.With("component", "recovery"))
	if err != nil {
		return nil, err
	}
	if sys.audit, err = openAuditLog(ctx, cfg, sys.catalog); err != nil {
		return nil, err
	}
	if rb := sys.health.rebuild; rb != nil {
		log.Error("catalog rebuilt: segment files indexed again from disk", "component", "catalog",
			"adopted", len(recovered.Adopted), "aside", rb.Aside)
		if err := recordRebuild(ctx, sys.audit, rb, recovered, access.ActorSystem); err != nil {
			log.Error("audit: recording the catalog rebuild", "err", err)
		}
	}
	if sys.retention, err = recorder.NewRetention(cfg, sys.storage, sys.catalog, log.With("component", "retention"), time.Now); err != nil {
		return nil, err
	}
	sys.retention.OnErase = recordErasure(sys.audit, log.With("component", "audit"))
	sys.fragLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "townwatch_fragment_write_seconds",
		Help: "Time to write and fdatasync one recording fragment (about 1 s of footage).",
		// From a fast SSD (sub-millisecond) to a disk that is about to make the recorder
		// fall behind (seconds).
		Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
	})
	sys.analysisTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "townwatch_motion_analysis_seconds",
		Help: "Time motion detection spent on one analysed frame (decoding excluded).",
		// From a 320 px frame on a fast core (0.1 ms) to a box that can no longer keep up
		// with 5 frames a second (200 ms).
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 12),
	}, []string{"camera"})
	observe := func(camera string, d time.Duration) { sys.analysisTime.WithLabelValues(camera).Observe(d.Seconds()) }
	// Every camera gets scrub-preview thumbnails, made in the motion worker: an analysed
	// camera's from its analysed frames, any other's from a keyframe every 10 s.
	sys.thumbs = newThumbnailSink(sys.storage, sys.catalog, sys.openSegment, log)
	if sys.motion, err = newMotionPool(sys.hub, observe, sys.storeGridMinute, sys.thumbs.offer, log); err != nil {
		return nil, err
	}
	sys.extra = append(sys.extra, sys.thumbs.run)

	units := make([]*cameraUnit, 0, len(cfg.Cameras))
	liveCams := make([]live.Camera, 0, len(cfg.Cameras))
	for _, c := range cfg.Cameras {
		if c.Disabled {
			continue
		}
		u, err := sys.newUnit(c)
		if err != nil {
			return nil, err
		}
		units = append(units, u)
		liveCams = append(liveCams, u.live())
	}
	sys.cams.set(units)
	sys.motion.setCameras(sys.motionCameras())
	sys.health.cams = &sys.cams

	clients := newClientLimiter(cfg, log)
	if sys.live, err = newLive(cfg, sys.hub, liveCams, clients, log); err != nil {
		return nil, err
	}

	reg := prometheus.NewRegistry()
	sys.metrics = reg
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&ingestCollector{cams: &sys.cams, hub: sys.hub},
		&recorderCollector{cams: &sys.cams, retention: sys.retention},
		sys.fragLatency,
		&motionCollector{cams: &sys.cams, stats: sys.motion.Stats},
		sys.analysisTime,
		&liveCollector{cams: &sys.cams, live: sys.live},
		sys.restarts,
		sys.reloads.success,
	)
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "townwatch_audit_write_failures_total",
		Help: "Requests refused, or live-view ends left unrecorded, because the access log could not be written.",
	}, func() float64 { return float64(sys.http.AuditFailures()) }))
	reg.MustRegister(clientConnectionMetrics(clients)...)
	reg.MustRegister(sys.thumbs.metrics()...)
	reg.MustRegister(sys.health.metrics()...)
	reg.MustRegister(sys.archiveMetrics()...)
	if sys.cluster != nil {
		reg.MustRegister(sys.cluster.metrics(sys)...)
	}
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)})
	events := &viewer.Events{Store: sys.catalog, Log: log,
		OpenSnapshot: func(rel string) (fs.File, error) { return sys.storage.Open(rel) }}
	playback := sys.playback(log)
	if sys.exports, err = sys.exportJobs(cfg, log); err != nil {
		return nil, err
	}
	token, err := cfg.Metrics.Token()
	if err != nil {
		return nil, err
	}
	var tlsFiles *viewer.TLSFiles
	if t := cfg.HTTP.TLS; t != nil {
		tlsFiles = &viewer.TLSFiles{CertFile: t.CertFile, KeyFile: t.KeyFile}
	}
	accessOpt := viewer.AccessOptions{Users: sys.catalog, Audit: sys.audit, TrustedProxies: cfg.HTTP.TrustedProxyPrefixes(),
		MetricsToken: token, SecureCookies: tlsFiles != nil}
	if memlimit.Managed() {
		// A login's Argon2id check leaves 19 MiB of garbage. The collection during the
		// check saw it live, so the next one waits for the heap to grow by half of that:
		// on a quiet server minutes, the process 30 → 50 MiB RSS and still 57 MiB a minute
		// later (one camera, no viewer). Handed back at once it is at 30 MiB within a
		// second; a forced collection costs a few milliseconds, and logins are throttled.
		// An operator's own GOGC or GOMEMLIMIT leaves the runtime alone here too.
		accessOpt.AfterPasswordChecks = debug.FreeOSMemory
	}
	if sys.http, err = viewer.New(viewer.Options{Listen: cfg.HTTP.Listen, Cameras: &sys.cams, Metrics: metrics,
		Live: sys.live, Events: events, Playback: playback, ConfigStatus: sys.reloads.currentStatus, ConfigCameras: &sys.cameraStore,
		Exports: &viewer.Exports{Manager: sys.exports}, CameraAdmin: newCameraAdmin(playback.Frames, log), Access: accessOpt, TLS: tlsFiles, Hosts: serverHostNames(cfg), Connections: clients, Degraded: sys.health.reasons, Peers: sys.peers(), ReadTimeout: cfg.HTTP.ReadTimeout.Std(), Log: log}); err != nil {
		return nil, err
	}
	housekeeping := &auditHousekeeping{cat: sys.catalog, log: sys.audit, cfg: cfg.Audit, out: log.With("component", "audit"), now: time.Now}
	sys.extra = append(sys.extra, housekeeping.run)
	return sys, nil
}

// newLive builds the live view's WebRTC side from the config. Its media sockets bind to
// webrtc.listen, or else http.listen's host, so a viewer kept on loopback exposes no media
// port elsewhere either unless told to.
func newLive(cfg *configs.Config, hub *ingest.Hub, cams []live.Camera, clients *connlimit.Limiter, log *slog.Logger) (*live.Manager, error) {
	host, _, err := net.SplitHostPort(cfg.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("http.listen: %w", err)
	}
	if cfg.WebRTC.Listen != "" {
		host = cfg.WebRTC.Listen
	}
	var servers []webrtc.ICEServer
	for i, s := range cfg.WebRTC.ICEServers {
		cred, err := s.Credential()
		if err != nil {
			return nil, fmt.Errorf("webrtc.ice_servers[%d]: %w", i, err)
		}
		servers = append(servers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: cred})
	}
	return live.New(hub, cams, live.Options{
		ListenHost: host, UDPPort: cfg.WebRTC.UDPPort, TCPPort: cfg.WebRTC.TCPPort,
		Advertise: cfg.WebRTC.Advertise, ICEServers: servers,
		MaxViewers: cfg.WebRTC.MaxViewers, MaxViewersPerCamera: cfg.WebRTC.MaxViewersPerCamera,
		Connections: clients, Log: log.With("component", "live"),
	})
}

// playback wires the playback API to the catalog, the storage and the writers' open
// segments. Without ffmpeg, stills are refused and the rest works.
func (sys *system) playback(log *slog.Logger) *viewer.Playback {
	frames, err := viewer.NewFrameDecoder("")
	if err != nil {
		log.Warn("recorded stills (frame.jpg) are unavailable; install ffmpeg", "err", err)
		frames = nil
	}
	return &viewer.Playback{Store: sys.catalog, Bookmarks: sys.catalog, Frames: frames, Log: log,
		OpenFile: sys.storage.OpenSegment, OpenMedia: sys.storage.OpenMedia, OpenSegment: sys.openSegment, Thumbnails: sys.storage.SegmentThumbnails}
}

// openSegment is the segment camera's recorder is writing, if any.
func (sys *system) openSegment(camera string) (recorder.OpenSegment, bool) {
	if u := sys.cams.unit(camera); u != nil {
		return u.writer.OpenSegment()
	}
	return recorder.OpenSegment{}, false
}

// storeGridMinute keeps a camera-minute of the motion search grid. A failed write loses
// that minute of search, never footage or events, so it is logged and recording goes on.
func (sys *system) storeGridMinute(g report.GridMinute) {
	m := catalog.GridMinute{Camera: g.Camera, Start: g.Start}
	for s := range g.Seconds {
		m.Seconds[s] = catalog.GridCells(g.Seconds[s])
	}
	if err := sys.catalog.AddGridMinute(sys.cameraWrites(g.Camera), m); err != nil {
		sys.log.Warn("motion search grid not stored", "camera", g.Camera, "minute", g.Start, "err", err)
	}
}

// eventSink is where camera c's motion events go: its recorder (motion mode), the
// catalog and the snapshot folder.
func (sys *system) eventSink(c configs.Camera, w *recorder.Writer) *eventSink {
	sink := &eventSink{camera: c.ID, storage: sys.storage, catalog: sys.catalog, log: sys.log.With("camera", c.ID),
		writes: func() context.Context { return sys.cameraWrites(c.ID) }}
	if c.Record.Mode == configs.RecordMotion {
		sink.writer = w
	}
	return sink
}

// recordingStatus adapts a Writer and the catalog's byte count for the API. Bytes come from
// the catalog (open segments as of their last progress update, at most 10 s old) so that
// an operator sees what is on disk now, not at the last sweep.
func (sys *system) recordingStatus(camera string, w *recorder.Writer) func() viewer.Recording {
	return func() viewer.Recording {
		st := w.Stats()
		return viewer.Recording{State: string(st.State), Reason: st.Reason, Segments: st.Segments, Gaps: st.Gaps,
			LostSeconds: st.Lost.Seconds(),
			BytesStored: sys.storedBytes.get(sys, camera)}
	}
}

// storedBytesMaxAge bounds how stale the per-camera byte counts in /api/cameras may be. One
// catalog scan then serves every camera of a request (and of requests within this age)
// instead of one scan per camera.
const storedBytesMaxAge = time.Second

// storedBytes caches the catalog's bytes per camera for storedBytesMaxAge.
type storedBytes struct {
	mu    sync.Mutex
	at    time.Time
	bytes map[string]int64
}

func (c *storedBytes) get(sys *system, camera string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) > storedBytesMaxAge {
		b, err := sys.catalog.BytesByCamera(context.Background())
		if err != nil {
			sys.log.Warn("catalog: bytes per camera", "err", err)
			return c.bytes[camera] // the last known figure
		}
		c.bytes, c.at = b, time.Now()
	}
	return c.bytes[camera]
}

// run runs every component until ctx is done or one fails for good.
func (sys *system) run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	// The HTTP server and the live view's sockets are shared by every camera; they fail
	// only for reasons a restart cannot fix (the port is taken), and that ends the process.
	g.Go(func() error { return sys.http.Run(ctx) })
	g.Go(func() error { return sys.live.Run(ctx) })
	// Everything else is supervised: a panic or an unexpected stop restarts that one
	// component, while every other camera keeps recording.
	g.Go(func() error { return sys.supervised(ctx, "", "retention", sys.retention.Run) })
	g.Go(func() error { return sys.supervised(ctx, "", "exports", sys.exports.Run) })
	g.Go(func() error { return sys.supervised(ctx, "", "motion_worker", sys.motion.runWorker) })
	// Each camera runs as a unit under its own context below ctx, so that a reload can
	// start, restart or stop one while the others record on.
	sys.reloads.start(ctx)
	defer sys.stopCameras()
	g.Go(func() error { return sys.reloads.watch(ctx) })
	for _, run := range sys.extra {
		g.Go(func() error { return run(ctx) })
	}
	g.Go(func() error {
		select {
		case <-sys.http.Ready():
			sys.log.Info("townwatch running", "version", versionString(), "cameras", len(sys.cams.units()), "web", webURL(sys.http.Addr()))
		case <-ctx.Done():
		}
		return nil
	})
	return g.Wait()
}

// stopCameras ends the recording when run ends: on a node the held leases first get one
// more TTL (the rounds have ended, and the rest of the shutdown took part of one), then
// every camera's recorder stops, closing its segment in the catalog, and then the leases
// are handed over so that another node records the cameras within one lease round instead
// of after the TTL. In that order: a lease released (or run out) while its recorder still
// writes would refuse the recorder's last writes and set that footage aside.
func (sys *system) stopCameras() {
	if sys.cluster != nil {
		sys.cluster.renewForStop(sys.log)
	}
	sys.reloads.stop()
	if sys.cluster != nil {
		sys.cluster.handOver(sys.log)
	}
}

// supervised runs one component under supervise.Run, counting its restarts.
func (sys *system) supervised(ctx context.Context, camera, component string, run func(context.Context) error) error {
	log := sys.log.With("component", component)
	if camera != "" {
		log = log.With("camera", camera)
	}
	return supervise.Run(ctx, supervise.Options{Log: log, Wait: sys.restartWait,
		OnFault: func(error) { sys.restarts.WithLabelValues(camera, component).Inc() }}, run)
}

// faultPoint lets a test make a per-camera component panic from inside its own work
// (see system.faults).
func (sys *system) faultPoint(camera, component string) {
	if sys.faults != nil {
		sys.faults(camera, component)
	}
}

// close releases the catalog and the storage root.
func (sys *system) close() {
	if sys.cluster != nil {
		sys.cluster.mgr.Close()
	}
	if sys.catalog != nil {
		if err := sys.catalog.Close(); err != nil {
			sys.log.Error("closing catalog", "err", err)
		}
	}
	if sys.storage != nil {
		sys.storage.Close()
	}
	if sys.archiveTier != nil {
		sys.archiveTier.Close()
	}
	if sys.lock != nil {
		sys.lock.Close()
	}
}

// webURL is the address a person opens in a browser.
func webURL(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return "http://" + a.String() + "/"
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}
