package live

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/viewer/connlimit"
)

const (
	// defaultSessionTimeout is how long a new session may take to connect. A browser on the
	// same LAN connects in well under a second; 15 s leaves room for ICE-TCP fallback after
	// UDP checks time out, and frees the viewer slot of a browser that vanished mid-offer.
	defaultSessionTimeout = 15 * time.Second
	// defaultMaxViewers and defaultMaxViewersPerCamera match configs' defaults, for callers
	// that build Options in code.
	defaultMaxViewers          = 64
	defaultMaxViewersPerCamera = 16
)

// Options configure the Manager. Zero values select the documented defaults.
type Options struct {
	// ListenHost is the IP to bind the ICE sockets to ("" = all interfaces), taken from
	// http.listen's host. "localhost" means 127.0.0.1.
	ListenHost string
	// UDPPort is the ICE UDP mux port and TCPPort the ICE-TCP port; 0 = any free port.
	UDPPort, TCPPort int
	// Advertise lists NAT 1:1 IPs put into host candidates instead of the local ones.
	Advertise []string
	// ICEServers are STUN/TURN servers; none by default, so no public server is contacted.
	ICEServers []webrtc.ICEServer
	// MaxViewers caps sessions over all cameras (default 64), MaxViewersPerCamera per
	// camera (default 16).
	MaxViewers, MaxViewersPerCamera int
	// SessionTimeout is how long ICE and DTLS may take to connect (default 15 s).
	SessionTimeout time.Duration
	// TCPWriteStall bounds how long one write to a viewer's ICE-TCP connection may block
	// on a viewer that stopped reading before the connection is dropped (default one
	// minute, see tcpWriteStall). Tests shorten it so that the bound is exercised without
	// waiting a minute for it.
	TCPWriteStall time.Duration
	// Connections caps the ICE-TCP connections together with the HTTP ones (see package
	// connlimit); nil: no cap.
	Connections *connlimit.Limiter
	Log         *slog.Logger
	Hooks       Hooks
}

// Hooks connect the live view to access control (package viewer installs them with
// SetHooks). Without them every session is anonymous and unaudited: tests and benchmarks
// of the media path only.
type Hooks struct {
	// Owner names who makes an offer (the HTTP layer's login session), so that only the
	// same owner can end the session and the owner's sessions can be found and closed when
	// their access ends. nil: sessions have no owner.
	Owner func(r *http.Request) string
	// Admit is called once a session is admitted, on a goroutine of its own while the
	// answer is being made, and nothing about the session is answered before it returns,
	// so no byte of media can leave before it (the viewer needs the answer to connect).
	// An error refuses the offer with 503 and ends the session: the access log must hold
	// a row for every live view before it starts.
	Admit func(r *http.Request, s SessionInfo) error
	// OnEnd is called once for every session Admit accepted, when it has ended.
	OnEnd func(s SessionInfo, ended time.Time, reason string)
}

// SetHooks installs the access hooks. It must be called before Run: sessions admitted
// without them would be unaudited.
func (m *Manager) SetHooks(h Hooks) error {
	if m.started.Load() {
		return errors.New("live: SetHooks after Run")
	}
	m.opt.Hooks = h
	return nil
}

// SessionInfo identifies one live session for the Admit and OnEnd hooks.
type SessionInfo struct {
	ID             string
	Camera, Stream string
	Owner          string
	Started        time.Time
}

// Camera is one camera that may be watched live.
type Camera struct {
	ID     string
	HasSub bool // the camera has a sub stream; it is then the default
	Audio  bool // pass the camera's Opus/G.711 audio to viewers
}

// CameraStats are one camera's live-view counters.
type CameraStats struct {
	Sessions       int    // sessions open now (connecting or connected)
	SessionsTotal  uint64 // sessions accepted since start
	SentBytes      uint64 // RTP bytes handed to the viewers' connections (before SRTP)
	DroppedPackets uint64 // RTP packets dropped for viewers that could not keep up
}

// counters are cumulative per camera or per session; updated by writers, read by Stats.
type counters struct {
	sent    atomic.Uint64
	dropped atomic.Uint64
}

// cameraState is a camera's configuration and counters. A reload that updates the camera
// replaces its cameraState and keeps its counters (a counter never goes back).
type cameraState struct {
	cfg   Camera
	stats *cameraCounters
}

type cameraCounters struct {
	counters counters
	total    atomic.Uint64
}

type streamKey struct{ camera, stream string }

// Manager serves WHEP sessions for the configured cameras. Create it with New, run it with
// Run, mount its handlers with Register.
type Manager struct {
	hub *ingest.Hub
	// cams is replaced whole (under mu) when a camera is put or removed, so that the
	// request path reads it without a lock.
	cams    atomic.Pointer[map[string]*cameraState]
	opt     Options
	ip      net.IP // nil = all interfaces
	log     *slog.Logger
	started atomic.Bool

	ready            chan struct{}
	udpAddr, tcpAddr net.Addr

	mu       sync.Mutex
	api      *webrtc.API     // nil until Run is ready and after it stops
	runCtx   context.Context // parent of every session and feed
	sessions map[string]*session
	feeds    map[streamKey]*feed
	perCam   map[string]int

	wg sync.WaitGroup // every goroutine the Manager starts: sessions, feeds, writers
}

// New validates its arguments. It does no I/O and starts no goroutine.
func New(hub *ingest.Hub, cams []Camera, opt Options) (*Manager, error) {
	if hub == nil {
		return nil, errors.New("live: hub is nil")
	}
	var errs []error
	m := &Manager{
		hub:      hub,
		ready:    make(chan struct{}),
		sessions: make(map[string]*session),
		feeds:    make(map[streamKey]*feed),
		perCam:   make(map[string]int),
	}
	initial := make(map[string]*cameraState, len(cams))
	for i, c := range cams {
		switch {
		case c.ID == "":
			errs = append(errs, fmt.Errorf("live: cameras[%d]: id is empty", i))
		case initial[c.ID] != nil:
			errs = append(errs, fmt.Errorf("live: cameras[%d]: duplicate camera id %q", i, c.ID))
		default:
			initial[c.ID] = &cameraState{cfg: c, stats: &cameraCounters{}}
		}
	}
	m.cams.Store(&initial)
	switch h := opt.ListenHost; h {
	case "":
	case "localhost":
		m.ip = net.IPv4(127, 0, 0, 1)
	default:
		if m.ip = net.ParseIP(strings.Trim(h, "[]")); m.ip == nil {
			errs = append(errs, fmt.Errorf("live: listen host %q: want an IP address (webrtc.listen, or the host part of http.listen)", h))
		} else if m.ip.IsUnspecified() {
			// 0.0.0.0 or ::: every interface, as with "" (an IP filter on the unspecified
			// address would drop every candidate).
			m.ip = nil
		}
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"webrtc.udp_port", opt.UDPPort}, {"webrtc.tcp_port", opt.TCPPort}} {
		if p.v < 0 || p.v > 65535 {
			errs = append(errs, fmt.Errorf("live: %s: %d is not a port (0..65535)", p.name, p.v))
		}
	}
	for i, a := range opt.Advertise {
		if net.ParseIP(a) == nil {
			errs = append(errs, fmt.Errorf("live: webrtc.advertise[%d]: %q is not an IP address", i, a))
		}
	}
	for i, s := range opt.ICEServers {
		if len(s.URLs) == 0 {
			errs = append(errs, fmt.Errorf("live: webrtc.ice_servers[%d]: no urls", i))
		}
	}
	if opt.MaxViewers < 0 || opt.MaxViewersPerCamera < 0 || opt.SessionTimeout < 0 || opt.TCPWriteStall < 0 {
		errs = append(errs, fmt.Errorf("live: max viewers (%d), max viewers per camera (%d), session timeout (%v) and TCP write stall (%v) must not be negative",
			opt.MaxViewers, opt.MaxViewersPerCamera, opt.SessionTimeout, opt.TCPWriteStall))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if opt.MaxViewers == 0 {
		opt.MaxViewers = defaultMaxViewers
	}
	if opt.MaxViewersPerCamera == 0 {
		opt.MaxViewersPerCamera = defaultMaxViewersPerCamera
	}
	if opt.SessionTimeout == 0 {
		opt.SessionTimeout = defaultSessionTimeout
	}
	if opt.TCPWriteStall == 0 {
		opt.TCPWriteStall = tcpWriteStall
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	m.opt = opt
	m.log = opt.Log
	return m, nil
}

// Ready is closed once Run has bound the ICE sockets; offers are accepted from then on.
func (m *Manager) Ready() <-chan struct{} { return m.ready }

// UDPAddr is the bound ICE UDP mux address; valid once Ready is closed.
func (m *Manager) UDPAddr() net.Addr { return m.udpAddr }

// TCPAddr is the bound ICE-TCP listener address; valid once Ready is closed.
func (m *Manager) TCPAddr() net.Addr { return m.tcpAddr }

// Run binds the ICE UDP mux and the ICE-TCP listener, serves sessions until ctx is done,
// then closes every session and returns after every goroutine it started has exited. A
// bind failure is returned at once: a restart cannot fix a port in use.
func (m *Manager) Run(ctx context.Context) error {
	if !m.started.CompareAndSwap(false, true) {
		return errors.New("live: Run called twice")
	}
	nw, err := listenICE(m.ip, m.opt.UDPPort, m.opt.TCPPort, m.opt.TCPWriteStall, m.opt.Connections, m.log)
	if err != nil {
		return err
	}
	defer nw.close()
	api, err := m.newAPI(nw)
	if err != nil {
		return err
	}
	m.udpAddr, m.tcpAddr = nw.udpConn.LocalAddr(), nw.tcpLn.Addr()
	m.mu.Lock()
	m.api, m.runCtx = api, ctx
	m.mu.Unlock()
	close(m.ready)
	m.log.Info("webrtc listening", "udp", m.udpAddr.String(), "tcp", m.tcpAddr.String())

	<-ctx.Done()
	m.mu.Lock()
	m.api = nil // no new sessions from here on
	for _, s := range m.sessions {
		s.stop("server stopping")
	}
	m.mu.Unlock()
	m.wg.Wait()
	return nil
}

// camera is the camera id as configured now, or nil.
func (m *Manager) camera(id string) *cameraState { return (*m.cams.Load())[id] }

// PutCamera adds a camera, or updates one in place: open sessions go on, and the new
// settings (audio) apply to the next feed. Its counters are kept.
func (m *Manager) PutCamera(c Camera) error {
	if c.ID == "" {
		return errors.New("live: camera id is empty")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.cams.Load()
	next := make(map[string]*cameraState, len(old)+1)
	for id, st := range old {
		next[id] = st
	}
	stats := &cameraCounters{}
	if was := old[c.ID]; was != nil {
		stats = was.stats
	}
	next[c.ID] = &cameraState{cfg: c, stats: stats}
	m.cams.Store(&next)
	return nil
}

// RemoveCamera makes camera id unknown (its WHEP offers get 404 from now on) and ends
// its open sessions; their feeds close with their last viewer.
func (m *Manager) RemoveCamera(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.cams.Load()
	next := make(map[string]*cameraState, len(old))
	for cid, st := range old {
		if cid != id {
			next[cid] = st
		}
	}
	m.cams.Store(&next)
	for _, s := range m.sessions {
		if s.key.camera == id {
			s.stop("camera removed from the configuration")
		}
	}
}

// Stats returns a camera's counters; zero for an unknown camera.
func (m *Manager) Stats(camera string) CameraStats {
	c := m.camera(camera)
	if c == nil {
		return CameraStats{}
	}
	m.mu.Lock()
	n := m.perCam[camera]
	m.mu.Unlock()
	return CameraStats{
		Sessions:       n,
		SessionsTotal:  c.stats.total.Load(),
		SentBytes:      c.stats.counters.sent.Load(),
		DroppedPackets: c.stats.counters.dropped.Load(),
	}
}

// SessionStats describe one open session.
type SessionStats struct {
	ID             string
	Camera, Stream string
	Owner          string
	Started        time.Time
	Connected      bool
	SentBytes      uint64
	DroppedPackets uint64
}

// Sessions returns the open sessions of a camera ("" = all cameras), in no fixed order.
func (m *Manager) Sessions(camera string) []SessionStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []SessionStats
	for _, s := range m.sessions {
		if camera != "" && s.key.camera != camera {
			continue
		}
		out = append(out, SessionStats{
			ID: s.id, Camera: s.key.camera, Stream: s.key.stream, Owner: s.owner, Started: s.started,
			Connected: s.isConnected.Load(),
			SentBytes: s.counters.sent.Load(), DroppedPackets: s.counters.dropped.Load(),
		})
	}
	return out
}

// admitError is an offer refused before any state changed.
type admitError struct {
	status int
	msg    string
}

func (e *admitError) Error() string { return e.msg }

// admit reserves a viewer slot on the camera stream's feed, creating the feed (and its
// Hub reader) for the first viewer, and counts the session in m.wg (its run or abort says
// Done). st is the Stream whose codecs the offer was checked against.
func (m *Manager) admit(s *session, st *ingest.Stream) (*webrtc.API, *feed, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.api == nil {
		return nil, nil, &admitError{503, "live view is not running"}
	}
	// Looked up again under the lock: a reload may have removed the camera since the
	// offer arrived, and RemoveCamera ends sessions under this same lock.
	cam := m.camera(s.key.camera)
	if cam == nil {
		return nil, nil, &admitError{404, fmt.Sprintf("unknown camera %q", s.key.camera)}
	}
	if len(m.sessions) >= m.opt.MaxViewers {
		return nil, nil, &admitError{429, fmt.Sprintf("too many live viewers: webrtc.max_viewers is %d and all are in use", m.opt.MaxViewers)}
	}
	if m.perCam[s.key.camera] >= m.opt.MaxViewersPerCamera {
		return nil, nil, &admitError{429, fmt.Sprintf("too many live viewers of camera %s: webrtc.max_viewers_per_camera is %d and all are in use",
			s.key.camera, m.opt.MaxViewersPerCamera)}
	}
	f := m.feeds[s.key]
	if f == nil {
		var err error
		if f, err = newFeed(m, s.key, st, cam.cfg.Audio); err != nil {
			return nil, nil, &admitError{503, err.Error()}
		}
		m.feeds[s.key] = f
		m.wg.Go(func() { f.run() })
	} else if f.ending || !f.accepts(st) {
		// The camera came back with other codecs and the feed is ending its sessions; the
		// browser's retry will find a fresh feed.
		return nil, nil, &admitError{503, fmt.Sprintf("camera %s stream %s changed codecs; retry", s.key.camera, s.key.stream)}
	}
	f.viewers++
	s.feed, s.cam = f, cam.stats
	m.sessions[s.id] = s
	m.perCam[s.key.camera]++
	cam.stats.total.Add(1)
	// Counted here, under the lock and while api is set, so Run's Wait cannot pass before
	// the session's goroutine (or its abort) is done.
	m.wg.Add(1)
	return m.api, f, nil
}

// release removes a session and, with its last viewer, the feed (which closes its Hub
// reader).
func (m *Manager) release(s *session) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sessions[s.id] != s {
		return
	}
	delete(m.sessions, s.id)
	m.perCam[s.key.camera]--
	f := s.feed
	f.viewers--
	if f.viewers == 0 {
		delete(m.feeds, s.key)
		f.cancel()
	}
}

// stopFeedSessions ends every session of f (its camera changed codecs).
func (m *Manager) stopFeedSessions(f *feed, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f.ending = true
	for _, s := range m.sessions {
		if s.feed == f {
			s.stop(reason)
		}
	}
}

// lookup returns the session with id on camera owned by owner, or nil: a session id of
// another camera or another owner is not found, so one camera's URL cannot end another
// camera's session and one user cannot end another's.
func (m *Manager) lookup(camera, id, owner string) *session {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sessions[id]
	if s == nil || s.key.camera != camera || s.owner != owner {
		return nil
	}
	return s
}

// Close asks session id to end with reason and reports whether it was open. It does not
// wait: the session releases its resources and calls OnEnd on its own goroutine. The
// access layer uses it when a viewer's access ends (logout, disabled, grant removed).
func (m *Manager) Close(id, reason string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sessions[id]
	if s != nil {
		s.stop(reason)
	}
	return s != nil
}
