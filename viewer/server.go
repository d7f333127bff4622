package viewer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/townwatch/townwatch/ingest"
)

const (
	// shutdownGrace is how long open requests may finish after shutdown begins; API calls
	// are short, so anything longer is a stuck client that must not delay a restart.
	shutdownGrace = 5 * time.Second
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
}

// Recording is what /api/cameras shows of a camera's recorder.
type Recording struct {
	State       string `json:"state"`            // waiting, recording, paused_disk_full, error, off
	Reason      string `json:"reason,omitempty"` // why it is not recording
	BytesStored int64  `json:"bytes_stored"`     // bytes of this camera's footage on disk
	Segments    uint64 `json:"segments"`         // segments written since start
	Gaps        uint64 `json:"gaps"`             // gaps since start (reconnects, resyncs, disk full)
}

// Server serves the HTTP surface on one listener.
type Server struct {
	listen  string
	cameras []Camera
	metrics http.Handler
	log     *slog.Logger
	mux     *http.ServeMux
	ready   chan struct{}
	addr    net.Addr
}

// New validates its arguments and builds the handler tree. It does no I/O.
func New(listen string, cameras []Camera, metrics http.Handler, log *slog.Logger) (*Server, error) {
	if listen == "" {
		return nil, errors.New("viewer: http.listen is empty")
	}
	if metrics == nil {
		return nil, errors.New("viewer: metrics handler is nil")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{listen: listen, cameras: cameras, metrics: metrics, log: log, ready: make(chan struct{})}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /{$}", s.handleIndex)
	s.mux.HandleFunc("GET /healthz", s.handleHealth)
	s.mux.HandleFunc("GET /api/cameras", s.handleCameras)
	s.mux.HandleFunc("GET /api/cameras/{id}", s.handleCamera)
	s.mux.Handle("GET /metrics", metrics)
	return s, nil
}

// Handler returns the server's handler (tests use it with httptest).
func (s *Server) Handler() http.Handler { return s.mux }

// Ready is closed once the listener is bound; Addr is valid from then on.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr returns the bound address (useful with port 0).
func (s *Server) Addr() net.Addr { return s.addr }

// Run listens on http.listen and serves until ctx is done, then shuts down gracefully. A
// listen failure (address in use, bad address) is returned at once: it cannot be retried
// away.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.listen)
	if err != nil {
		return fmt.Errorf("http.listen %s: %w", s.listen, err)
	}
	s.addr = ln.Addr()
	close(s.ready)
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s.log.Info("http listening", "addr", ln.Addr().String())
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
	return nil
}
