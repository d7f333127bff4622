// Package rtsptest provides an independent RTSP camera for ingest's tests: a small gortsplib
// server that relays what a publisher (ffmpeg, see StartFFmpeg) records on a path to every
// reader that plays it, over TCP or UDP. It shares no code with ingest/simcam, so tests that
// pass against both are not testing one implementation against itself.
//
// Everything binds to 127.0.0.1 on ports the kernel picks. Every helper takes a testing.TB
// and registers its own cleanup, so a test cannot leak a server or a subprocess.
package rtsptest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/pion/rtp"
)

// ServerOptions configures a relay Server.
type ServerOptions struct {
	// Username and Password, when both set, make the server require RTSP authentication
	// (Basic or Digest) from readers on DESCRIBE and SETUP, as a camera does. Publishers
	// are never asked: they are the test's own ffmpeg.
	Username, Password string
}

// Server is a relay: one publisher per path (ANNOUNCE/RECORD), any number of readers
// (DESCRIBE/SETUP/PLAY) of that path. Create it with NewServer.
type Server struct {
	opts ServerOptions
	srv  *gortsplib.Server
	addr string

	mu    sync.Mutex
	paths map[string]*relayPath

	frozen map[frozenKey]bool // guarded by mu

	authFails atomic.Int64 // reader requests rejected for wrong credentials
}

// frozenKey names the media of one type on one path.
type frozenKey struct {
	path string
	typ  description.MediaType
}

// relayPath is what is published on one path.
type relayPath struct {
	stream    *gortsplib.ServerStream
	publisher *gortsplib.ServerSession
	flowing   chan struct{} // closed at the first RTP packet from the publisher
	once      sync.Once
}

// NewServer starts a relay on 127.0.0.1 with a kernel-chosen RTSP port and a free even/odd
// UDP port pair, so readers may use TCP or UDP. It is closed when the test ends.
func NewServer(t testing.TB, opts ServerOptions) *Server {
	t.Helper()
	if (opts.Username == "") != (opts.Password == "") {
		t.Fatalf("rtsptest: set both Username and Password or neither")
	}
	s := &Server{opts: opts, paths: make(map[string]*relayPath), frozen: make(map[frozenKey]bool)}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("rtsptest: listen: %v", err)
	}
	rtpConn, rtcpConn, err := ListenUDPPair()
	if err != nil {
		ln.Close()
		t.Fatalf("rtsptest: %v", err)
	}
	rtpAddr, rtcpAddr := rtpConn.LocalAddr().String(), rtcpConn.LocalAddr().String()
	s.srv = &gortsplib.Server{
		Handler:        (*relayHandler)(s),
		RTSPAddress:    ln.Addr().String(),
		UDPRTPAddress:  rtpAddr,
		UDPRTCPAddress: rtcpAddr,
		// Binding first and handing the sockets over resolves ":0" and leaves no window in
		// which another process could take a port between choosing and binding it.
		Listen: func(string, string) (net.Listener, error) { return ln, nil },
		ListenPacket: func(_, address string) (net.PacketConn, error) {
			switch address {
			case rtpAddr:
				return rtpConn, nil
			case rtcpAddr:
				return rtcpConn, nil
			}
			return nil, fmt.Errorf("rtsptest: unexpected UDP listen on %s", address)
		},
	}
	if err := s.srv.Start(); err != nil {
		ln.Close()
		rtpConn.Close()
		rtcpConn.Close()
		t.Fatalf("rtsptest: start server: %v", err)
	}
	s.addr = ln.Addr().String()
	t.Cleanup(s.close)
	return s
}

// Addr is the RTSP host:port.
func (s *Server) Addr() string { return s.addr }

// URL is rtsp://127.0.0.1:port/path, without credentials.
func (s *Server) URL(path string) string { return "rtsp://" + s.addr + "/" + path }

// URLWithAuth is URL with user:pass in it.
func (s *Server) URLWithAuth(path, user, pass string) string {
	return "rtsp://" + user + ":" + pass + "@" + s.addr + "/" + path
}

// AuthFailures is how many reader requests carried wrong credentials.
func (s *Server) AuthFailures() int64 { return s.authFails.Load() }

// WaitFlowing waits until a publisher on path has sent its first RTP packet, so that a
// reader that connects now finds the stream and gets media. It fails the test when ctx
// is done first.
func (s *Server) WaitFlowing(ctx context.Context, t testing.TB, path string) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		p := s.paths[trimPath(path)]
		s.mu.Unlock()
		if p != nil {
			select {
			case <-p.flowing:
				return
			case <-ctx.Done():
				t.Fatalf("rtsptest: no media published on %q: %v", path, ctx.Err())
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("rtsptest: nothing published on %q: %v", path, ctx.Err())
		}
	}
}

// SetFrozen stops (frozen=true) or resumes relaying the media of type typ (video or
// audio) published on path, while the sessions stay up: a camera whose video encoder hung
// while its audio goes on, for example. It may be called before anything is published.
func (s *Server) SetFrozen(path string, typ description.MediaType, frozen bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frozen[frozenKey{trimPath(path), typ}] = frozen
}

func (s *Server) isFrozen(path string, typ description.MediaType) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frozen[frozenKey{path, typ}]
}

func (s *Server) close() {
	s.srv.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, p := range s.paths {
		p.stream.Close()
		delete(s.paths, k)
	}
}

func trimPath(p string) string { return strings.Trim(p, "/") }

// relayHandler implements gortsplib's server callbacks. Every callback that gortsplib would
// otherwise answer with a line on the standard logger is implemented.
type relayHandler Server

// OnSessionClose ends the path when its publisher goes, which disconnects its readers.
func (h *relayHandler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, p := range h.paths {
		if p.publisher == ctx.Session {
			p.stream.Close()
			delete(h.paths, k)
		}
	}
}

func (h *relayHandler) OnPacketsLost(*gortsplib.ServerHandlerOnPacketsLostCtx) {}

func (h *relayHandler) OnDecodeError(*gortsplib.ServerHandlerOnDecodeErrorCtx) {}

// OnStreamWriteError is called per packet a slow reader's full queue drops; the reader
// sees the loss.
func (h *relayHandler) OnStreamWriteError(*gortsplib.ServerHandlerOnStreamWriteErrorCtx) {}

func (h *relayHandler) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	st := &gortsplib.ServerStream{Server: h.srv, Desc: ctx.Description}
	if err := st.Initialize(); err != nil {
		return &base.Response{StatusCode: base.StatusBadRequest}, err
	}
	path := trimPath(ctx.Path)
	h.mu.Lock()
	defer h.mu.Unlock()
	if old := h.paths[path]; old != nil {
		old.stream.Close()
		old.publisher.Close()
	}
	h.paths[path] = &relayPath{stream: st, publisher: ctx.Session, flowing: make(chan struct{})}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (h *relayHandler) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	path := trimPath(ctx.Path)
	h.mu.Lock()
	p := h.paths[path]
	h.mu.Unlock()
	if p == nil || p.publisher != ctx.Session {
		return &base.Response{StatusCode: base.StatusBadRequest}, errors.New("rtsptest: RECORD without ANNOUNCE")
	}
	ctx.Session.OnPacketRTPAny(func(medi *description.Media, _ format.Format, pkt *rtp.Packet) {
		if (*Server)(h).isFrozen(path, medi.Type) {
			return
		}
		// WritePacketRTP stamps the packet with the current time for RTCP sender reports,
		// which is when the relay received it: good enough for an independent camera.
		if err := p.stream.WritePacketRTP(medi, pkt); err == nil {
			p.once.Do(func() { close(p.flowing) })
		}
	})
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (h *relayHandler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return h.reader(ctx.Conn, ctx.Request, ctx.Path)
}

func (h *relayHandler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		return &base.Response{StatusCode: base.StatusOK}, nil, nil // the publisher's own SETUP
	}
	return h.reader(ctx.Conn, ctx.Request, ctx.Path)
}

func (h *relayHandler) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// reader answers a reader's DESCRIBE or SETUP: 401 for missing or wrong credentials (the
// first without credentials becomes a challenge), 404 for a path nobody publishes.
func (h *relayHandler) reader(conn *gortsplib.ServerConn, req *base.Request, path string) (*base.Response, *gortsplib.ServerStream, error) {
	if h.opts.Username != "" && !conn.VerifyCredentials(req, h.opts.Username, h.opts.Password) {
		if _, sent := req.Header["Authorization"]; sent {
			h.authFails.Add(1)
		}
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
	}
	h.mu.Lock()
	p := h.paths[trimPath(path)]
	h.mu.Unlock()
	if p == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, p.stream, nil
}

// ListenUDPPair binds two consecutive UDP ports on 127.0.0.1, the first even, as an RTSP
// server's RTP/RTCP pair must be (gortsplib checks). It asks the kernel for a port and
// tries its partner, a few times.
func ListenUDPPair() (rtpConn, rtcpConn *net.UDPConn, err error) {
	ip := net.IPv4(127, 0, 0, 1)
	for range 32 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip})
		if err != nil {
			return nil, nil, fmt.Errorf("listen udp: %w", err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		partner := port + 1
		if port%2 == 1 {
			partner = port - 1
		}
		other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip, Port: partner})
		if err == nil {
			if port%2 == 0 {
				return c, other, nil
			}
			return other, c, nil
		}
		c.Close()
	}
	return nil, nil, errors.New("no free even/odd UDP port pair on 127.0.0.1")
}
