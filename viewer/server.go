package viewer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/viewer/connlimit"
	"github.com/townwatch/townwatch/viewer/live"
	"github.com/townwatch/townwatch/viewer/web"
)

const (
	// shutdownGrace is how long open requests may finish after shutdown begins; API calls
	// are short, so anything longer is a stuck client that must not delay a restart.
	shutdownGrace = 5 * time.Second
	// readTimeout bounds reading a whole request, body included: every request of the API
	// is small (the largest is a WHEP offer of a few KiB), so a client sending one byte a
	// second cannot hold a connection, a goroutine and a descriptor for minutes.
	readTimeout = 15 * time.Second
	// writeTimeout bounds writing an answer. Live media goes over WebRTC; a long download
	// (a recorded segment, an export bundle) extends its own deadline explicitly with
	// http.ResponseController, so the exception is visible where it is made.
	writeTimeout = 60 * time.Second
	// idleTimeout closes keep-alive connections nobody uses: an idle connection costs a
	// descriptor, and a browser opens a new one in a millisecond on loopback or a LAN.
	idleTimeout = 30 * time.Second
	// readHeaderTimeout guards against clients that open connections and never send a
	// request (slowloris); a dispatcher's browser sends its headers at once.
	readHeaderTimeout = 10 * time.Second
)

// StatusSource is what the API needs of an ingest stream: its current status.
type StatusSource interface {
	Status() ingest.Status
}

// Camera is one configured camera as the API shows it.
type Camera struct {
	ID   string
	Name string
	Main StatusSource
	Sub  StatusSource // nil when the camera has no sub stream
	// Recording reports the recorder's state for the camera; nil when nothing records.
	Recording func() Recording
	// Motion reports motion detection for the camera; nil when it is not analysed.
	Motion func() Motion
	// Node names the recorder node that holds the camera's lease now ("" while none
	// does); nil for a single-node installation.
	Node func() string
}

// Motion is what /api/cameras shows of a camera's motion detection: whether something is
// moving now (the wall marks the tile) and how many events there were since start.
type Motion struct {
	Active bool   `json:"active"`
	Events uint64 `json:"events"`
}

// Recording is what /api/cameras shows of a camera's recorder.
type Recording struct {
	State       string `json:"state"`            // waiting, recording, waiting_motion, paused_disk_full, error, off
	Reason      string `json:"reason,omitempty"` // why it is not recording
	BytesStored int64  `json:"bytes_stored"`     // bytes of this camera's footage on disk
	Segments    uint64 `json:"segments"`         // segments written since start
	Gaps        uint64 `json:"gaps"`             // gaps since start (reconnects, resyncs, disk full)
	// LostSeconds is how long since start the recorder should have recorded and did not.
	LostSeconds float64 `json:"lost_seconds"`
}

// Options configure a Server.
type Options struct {
	Listen  string       // http.listen, host:port
	Cameras CameraList   // read afresh by every request; nil: no cameras
	Metrics http.Handler // serves /metrics (the Prometheus registry lives in cmd)
	// Live serves the WHEP endpoints and the viewer counts; nil means no live view (the wall
	// then shows every camera's state without pictures).
	Live *live.Manager
	// Events serves /api/events; nil means no events API.
	Events *Events
	// Playback serves recorded footage (timeline, playlists, segments, stills); nil means
	// none.
	Playback *Playback
	// Exports serves evidence export jobs; nil means none.
	Exports *Exports
	// ConfigStatus answers GET /api/config/status (administrators): the outcome of the
	// last configuration reload, as JSON. nil: no such route.
	ConfigStatus func() any
	// ConfigCameras serves the camera configuration API (admin only); nil means none.
	ConfigCameras ConfigCameras
	// CameraAdmin serves the camera probe and ONVIF discovery (admin only); nil means none.
	CameraAdmin *CameraAdmin
	// Access says who may use the server; required: there is no open mode.
	Access AccessOptions
	// TLS serves HTTPS with this certificate and key (reloaded when the files change);
	// nil serves plain HTTP.
	TLS *TLSFiles
	// Hosts are the names (and addresses) browsers may reach the server by; a request with
	// another Host header gets 421 (DNS rebinding). nil: any host (tests only; cmd always
	// sets it).
	Hosts []string
	// Connections caps the client connections (shared with the ICE-TCP port), so that
	// clients can never take the descriptors the recorder needs; nil: no cap (tests).
	Connections *connlimit.Limiter
	// Degraded, when set, lists reasons the system is degraded apart from its cameras
	// (a rebuilt or failing catalog); /healthz shows them. Public: no camera ids, no paths.
	Degraded func() []string
	// Peers are the other recorder nodes (serve -node): media on their disks is fetched
	// from them, live view of their cameras is relayed to them, and they fetch this
	// disk's media and relay their live views on the node routes. nil on a single node:
	// no node route exists.
	Peers *Peers
	// ReadTimeout bounds reading one whole request, headers included (http.read_timeout);
	// 0: readTimeout.
	ReadTimeout time.Duration
	Log         *slog.Logger // nil discards
}

// ConfigCameras is the camera configuration the API changes (configs.CameraStore).
type ConfigCameras interface {
	List() ([]configs.CameraEntry, string, error)
	Check(body []byte) error
	Create(body []byte, ifMatch string, audit configs.ChangeAudit) (configs.Change, error)
	Replace(id string, body []byte, ifMatch string, audit configs.ChangeAudit) (configs.Change, error)
	Delete(id, ifMatch string, audit configs.ChangeAudit) (configs.Change, error)
}

// Server serves the HTTP surface on one listener.
type Server struct {
	opt       Options
	log       *slog.Logger
	static    map[string]staticFile
	cameras   cameraSet // the configured cameras, read afresh by every request
	auth      *auth
	snapshots snapshotViews
	liveViews *liveAudit // nil without a live manager
	relays    *liveRelays
	throttled throttledLogins
	mux       *http.ServeMux
	handler   http.Handler // mux behind the cross-origin and host checks
	ready     chan struct{}
	addr      net.Addr
}

// New validates its options and builds the handler tree. It does no I/O.
func New(opt Options) (*Server, error) {
	if opt.Listen == "" {
		return nil, errors.New("viewer: http.listen is empty")
	}
	if opt.Metrics == nil {
		return nil, errors.New("viewer: metrics handler is nil")
	}
	if opt.Cameras == nil {
		opt.Cameras = StaticCameras(nil)
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	static, err := loadStatic(web.Files)
	if err != nil {
		return nil, err
	}
	a, err := newAuth(opt.Access, log)
	if err != nil {
		return nil, err
	}
	s := &Server{opt: opt, log: log, static: static, cameras: cameraSet{opt.Cameras}, auth: a,
		snapshots: snapshotViews{open: map[snapshotKey]*snapshotAgg{}}, relays: newLiveRelays(), mux: http.NewServeMux(), ready: make(chan struct{})}
	if opt.Events != nil {
		opt.Events.cameras = s.cameras
	}
	if opt.Exports != nil {
		opt.Exports.cameras = s.cameras
	}
	if opt.Live != nil {
		s.liveViews = &liveAudit{s: s, viewers: map[string]liveViewer{}}
		if err := opt.Live.SetHooks(s.liveViews.hooks()); err != nil {
			return nil, err
		}
	}
	if opt.Playback != nil {
		opt.Playback.sessions.grant = map[playbackKey]time.Time{}
		opt.Playback.clock = a.now
		opt.Playback.cameras = s.cameras
		opt.Playback.peers = opt.Peers
		opt.Playback.sprites = newSpriteCache(spriteCacheBytes)
	}
	s.mount()
	// The cross-origin check refuses a state-changing request that a browser marks as
	// coming from another site (Sec-Fetch-Site, or an Origin that is not this host):
	// CSRF protection that needs no token in the pages.
	s.handler = http.NewCrossOriginProtection().Handler(s.mux)
	if opt.Hosts != nil {
		s.handler = allowedHosts(opt.Hosts, s.handler)
	}
	return s, nil
}

// AuditFailures counts requests refused (or view ends left unrecorded) because the
// access log could not be written.
func (s *Server) AuditFailures() uint64 { return s.auth.auditFailures.Load() }

// Handler returns the server's handler (tests use it with httptest).
func (s *Server) Handler() http.Handler { return s.handler }

// Ready is closed once the listener is bound; Addr is valid from then on.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr returns the bound address (useful with port 0).
func (s *Server) Addr() net.Addr { return s.addr }

// Run listens on http.listen and serves until ctx is done, then shuts down gracefully. A
// listen failure (address in use, bad address) is returned at once: it cannot be retried
// away.
func (s *Server) Run(ctx context.Context) error {
	// The certificate is loaded before anything listens: without it there is no HTTPS,
	// and a plain-HTTP fallback would send passwords in clear text.
	var tlsConfig *tls.Config
	scheme := "http"
	if s.opt.TLS != nil {
		var err error
		if tlsConfig, err = s.opt.TLS.config(s.log, s.auth.now); err != nil {
			return err
		}
		scheme = "https"
	} else if !loopbackListen(s.opt.Listen) {
		s.log.Warn("http.listen is not a loopback address and http.tls is not set: passwords and session cookies cross the network in clear text; set http.tls or put a TLS proxy in front and listen on 127.0.0.1",
			"listen", s.opt.Listen)
	}
	ln, err := net.Listen("tcp", s.opt.Listen)
	if err != nil {
		return fmt.Errorf("http.listen %s: %w", s.opt.Listen, err)
	}
	if s.opt.Connections != nil {
		ln = s.opt.Connections.Listen(ln)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	s.addr = ln.Addr()
	close(s.ready)
	wholeRequest := readTimeout
	if s.opt.ReadTimeout > 0 {
		wholeRequest = s.opt.ReadTimeout
	}
	srv := &http.Server{
		Handler: s.handler,
		// The headers are part of the request: a read timeout shorter than
		// readHeaderTimeout bounds them too.
		ReadHeaderTimeout: min(readHeaderTimeout, wholeRequest),
		ReadTimeout:       wholeRequest,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		TLSConfig:         tlsConfig,
	}
	loops, stopLoops := context.WithCancel(context.Background())
	loopsDone := make(chan struct{})
	go func() { defer close(loopsDone); s.runAccessLoops(loops) }()
	defer func() { stopLoops(); <-loopsDone }()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s.log.Info("http listening", "addr", ln.Addr().String(), "scheme", scheme)
	select {
	case err := <-served:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	<-served
	if s.opt.Peers != nil {
		relaysCtx, cancelRelays := context.WithTimeout(context.Background(), relayCheckTimeout)
		defer cancelRelays()
		s.endAllRelays(relaysCtx, "server stopping")
	}
	return nil
}
