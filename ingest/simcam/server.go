package simcam

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/pion/rtp"
)

// Server serves simulated cameras over RTSP. Create it with New and run it
// with Run; SetFrozen may be called at any time, the rest after Ready.
type Server struct {
	listen  string
	log     *slog.Logger
	tls     *tls.Config        // nil: plain RTSP
	cameras map[string]*camera // by path; fixed after New

	ran   atomic.Bool
	ready chan struct{}

	mu      sync.RWMutex
	addr    string                             // set before ready is closed
	streams map[string]*gortsplib.ServerStream // by path; nil outside Run

	// Counters of what gortsplib reports per packet; logged once when Run ends.
	writeErrors  atomic.Uint64 // packets a reader's full queue dropped
	decodeErrors atomic.Uint64 // unparseable RTCP from readers
	// plays counts the PLAY requests answered: a test can wait for its readers to be
	// playing before it lets a frozen camera send (then from a keyframe).
	plays atomic.Uint64
}

// New validates cfg and builds the cameras. It reads and parses each
// distinct clip file (CameraSpec.File) once, which cameras serving it
// share; it opens no socket and starts no goroutine.
func New(cfg Config) (*Server, error) {
	if len(cfg.Cameras) == 0 {
		cfg.Cameras = DefaultCameras()
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("simcam: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "simcam")

	s := &Server{
		listen:  cfg.Listen,
		log:     log,
		tls:     cfg.TLS.Clone(), // nil stays nil
		cameras: make(map[string]*camera, len(cfg.Cameras)),
		ready:   make(chan struct{}),
	}
	files, err := loadFiles(cfg.Cameras)
	if err != nil {
		return nil, err
	}
	for _, spec := range cfg.Cameras {
		var cd *clipData
		if spec.File != "" {
			cd = files[filepath.Clean(spec.File)]
		} else if cd, err = clipLoaders[spec.Clip](); err != nil {
			return nil, err
		}
		if err := checkLoopStart(spec, cd); err != nil {
			return nil, fmt.Errorf("simcam: camera %s: loop start: %w", spec.Path, err)
		}
		// RFC 3550 §5.1 asks for random initial values so that streams
		// from different sessions cannot be confused.
		if spec.RTPTimestampStart == 0 {
			spec.RTPTimestampStart = rand.Uint32()
		}
		if spec.SequenceStart == 0 {
			spec.SequenceStart = uint16(rand.Uint32())
		}
		s.cameras[spec.Path] = newCamera(spec, cd)
	}
	return s, nil
}

// loadFiles reads and parses every distinct CameraSpec.File in specs once,
// keyed by its cleaned path. It reports every file that fails.
func loadFiles(specs []CameraSpec) (map[string]*clipData, error) {
	files := make(map[string]*clipData)
	var errs []error
	for _, spec := range specs {
		if spec.File == "" {
			continue
		}
		path := filepath.Clean(spec.File)
		if _, done := files[path]; done {
			continue
		}
		cd, err := loadFile(path)
		if err != nil {
			errs = append(errs, err)
		}
		files[path] = cd
	}
	return files, errors.Join(errs...)
}

// Ready is closed once the server is listening. If Run fails to bind, it
// returns the error and Ready is never closed, so wait on both.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the RTSP host:port actually bound (":0" resolved), or "" before
// Ready.
func (s *Server) Addr() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.addr
}

// URL is rtsp://host:port/path for this server (rtsps:// when Config.TLS
// is set), without credentials, or "" before Ready. It does not check that
// path is served.
func (s *Server) URL(path string) string {
	addr := s.Addr()
	if addr == "" {
		return ""
	}
	scheme := "rtsp"
	if s.tls != nil {
		scheme = "rtsps"
	}
	return scheme + "://" + addr + "/" + path
}

// SetFrozen stalls (frozen=true) or resumes the camera at path. A frozen
// camera keeps its RTSP sessions and connections open (and gortsplib keeps
// sending RTCP sender reports) but sends no RTP, like a camera whose encoder
// hung. Its media clock keeps running: on resume it continues at the next
// keyframe due, with RTP timestamps that have advanced by the frozen time
// and sequence numbers that have not (nothing was lost, nothing was sent).
// Unknown paths are logged and ignored. SetFrozen may be called before Run.
func (s *Server) SetFrozen(path string, frozen bool) {
	c, ok := s.cameras[path]
	if !ok {
		s.log.Warn("SetFrozen on unknown camera", "camera", path)
		return
	}
	if c.frozen.Swap(frozen) != frozen {
		s.log.Info("camera frozen state changed", "camera", path, "frozen", frozen)
	}
}

// Start runs Run in the background and returns once the server listens. stop cancels
// it and returns Run's result after every goroutine it started has exited. A bind
// failure is returned at once, with nothing left running.
func (s *Server) Start(ctx context.Context) (stop func() error, err error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
		return func() error { cancel(); return <-done }, nil
	case err := <-done:
		cancel()
		if err == nil {
			err = errors.New("simcam: stopped before it listened")
		}
		return nil, err
	}
}

// Run binds the RTSP (TCP) and RTP/RTCP (UDP) ports, serves until ctx is
// done, and returns nil after closing every session, stream and listener
// and after every goroutine it started has exited. Bind failures (e.g. the
// port is busy) are returned at once. Run may be called only once.
func (s *Server) Run(ctx context.Context) error {
	if s.ran.Swap(true) {
		return errors.New("simcam: Run called twice")
	}

	srv, err := s.startRTSP()
	if err != nil {
		return err
	}

	streams, err := s.openStreams(srv)
	if err != nil {
		srv.Close()
		return err
	}
	addr := srv.RTSPAddress
	s.mu.Lock()
	s.streams = streams
	s.addr = addr
	s.mu.Unlock()

	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)

	var cams, watcher sync.WaitGroup
	start := time.Now()
	for path, c := range s.cameras {
		st := streams[path]
		write := func(pkt *rtp.Packet, ntp time.Time) error {
			return st.WritePacketRTPWithNTP(c.media(), pkt, ntp)
		}
		cams.Go(func() {
			if err := c.run(runCtx, start, write); err != nil {
				stop(err)
			}
		})
	}
	watcher.Go(func() {
		// Wait returns on a fatal listener error, or after srv.Close below;
		// in the latter case runCtx is already cancelled and this is a no-op.
		stop(fmt.Errorf("rtsp server stopped: %w", srv.Wait()))
	})

	s.log.Info("rtsp server listening", "addr", addr, "udp_rtp", srv.UDPRTPAddress, "udp_rtcp", srv.UDPRTCPAddress, "tls", s.tls != nil)
	for _, path := range slices.Sorted(maps.Keys(s.cameras)) {
		spec := s.cameras[path].spec
		source := slog.String("clip", string(spec.Clip))
		if spec.File != "" {
			source = slog.String("file", spec.File)
		}
		s.log.Info("camera serving", "camera", path, source, "fps", spec.FPS, "frames", len(s.cameras[path].frames), "url", s.URL(path))
	}
	close(s.ready)

	<-runCtx.Done()
	cause := context.Cause(runCtx)

	// Stop the writers before closing the streams they write to, then the
	// streams (which closes their reader sessions), then the server.
	stop(nil)
	cams.Wait()
	s.mu.Lock()
	s.streams = nil
	s.mu.Unlock()
	for _, st := range streams {
		st.Close()
	}
	srv.Close()
	watcher.Wait()

	if n := s.writeErrors.Load(); n > 0 {
		s.log.Warn("packets dropped for slow readers", "packets", n)
	}
	if n := s.decodeErrors.Load(); n > 0 {
		s.log.Warn("undecodable packets from readers", "packets", n)
	}
	s.log.Info("stopped", "addr", addr)

	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("simcam: %w", cause)
}

// openStreams creates one ServerStream per camera on the started srv.
func (s *Server) openStreams(srv *gortsplib.Server) (map[string]*gortsplib.ServerStream, error) {
	streams := make(map[string]*gortsplib.ServerStream, len(s.cameras))
	for path, c := range s.cameras {
		st := &gortsplib.ServerStream{Server: srv, Desc: c.desc}
		if err := st.Initialize(); err != nil {
			for _, st := range streams {
				st.Close()
			}
			return nil, fmt.Errorf("simcam: camera %s: stream: %w", path, err)
		}
		streams[path] = st
	}
	return streams, nil
}

// stream is the running stream of the camera at path, or nil if there is
// none (unknown path, or Run not serving).
func (s *Server) stream(path string) *gortsplib.ServerStream {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.streams[path]
}
