package live

import (
	"crypto/rand"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// session is one viewer's PeerConnection.
type session struct {
	m       *Manager
	id      string // random and unguessable: with the owner, the only key to DELETE
	key     streamKey
	owner   string
	started time.Time
	// admitted: Options.Admit accepted the session (or there is none), so OnEnd is owed.
	admitted bool
	feed     *feed           // set by admit
	cam      *cameraCounters // set by admit: the camera's counters, kept across its updates
	pc       *webrtc.PeerConnection

	counters    counters
	isConnected atomic.Bool
	connected   chan struct{}
	connOnce    sync.Once

	end     chan struct{} // closed by stop
	endOnce sync.Once
	reason  string        // why it ended; written before end is closed
	gone    chan struct{} // closed once released: closed, counted out, feed released

	senders  []*webrtc.RTPSender
	bindings []*binding // owned by run
}

func newSession(m *Manager, key streamKey, owner string) *session {
	return &session{m: m, id: rand.Text(), key: key, owner: owner, started: time.Now(), connected: make(chan struct{}),
		end: make(chan struct{}), gone: make(chan struct{})}
}

func (s *session) info() SessionInfo {
	return SessionInfo{ID: s.id, Camera: s.key.camera, Stream: s.key.stream, Owner: s.owner, Started: s.started}
}

// stop asks the session to end; it never blocks. The first reason wins.
func (s *session) stop(reason string) {
	s.endOnce.Do(func() {
		s.reason = reason
		close(s.end)
	})
}

func (s *session) onState(st webrtc.PeerConnectionState) {
	switch st {
	case webrtc.PeerConnectionStateConnected:
		s.connOnce.Do(func() {
			s.isConnected.Store(true)
			close(s.connected)
		})
	case webrtc.PeerConnectionStateFailed:
		s.stop("connection failed or the viewer went silent")
	case webrtc.PeerConnectionStateClosed:
		s.stop("connection closed")
	}
}

// run owns the session after the answer is sent: it starts the media once connected,
// ends the session on timeout, failure, DELETE or shutdown, and releases everything.
// The caller has counted it in m.wg.
func (s *session) run() {
	defer s.m.wg.Done()
	var rtcp sync.WaitGroup
	for _, snd := range s.senders {
		// Reading RTCP feeds the interceptors (NACKs are answered from here); it ends when
		// the PeerConnection closes.
		rtcp.Go(func() {
			buf := make([]byte, 1500)
			for {
				if _, _, err := snd.Read(buf); err != nil {
					return
				}
			}
		})
	}
	timeout := time.NewTimer(s.m.opt.SessionTimeout)
	select {
	case <-s.connected:
		s.startMedia()
	case <-timeout.C:
		s.stop(fmt.Sprintf("not connected within %v (ICE or DTLS did not complete)", s.m.opt.SessionTimeout))
	case <-s.end:
	case <-s.feed.ctx.Done():
	}
	timeout.Stop()
	select {
	case <-s.end:
	case <-s.feed.ctx.Done(): // shutdown: Run has stopped every session, or is about to
		s.stop("server stopping")
	}
	for _, b := range s.bindings {
		b.close()
	}
	// Closing the PeerConnection closes the senders (ending the RTCP readers) and the
	// transport (unblocking a writer stuck on a stalled ICE-TCP connection).
	if err := s.pc.Close(); err != nil {
		s.m.log.Debug("live: closing peer connection", "error", err)
	}
	rtcp.Wait()
	s.m.release(s)
	s.m.log.Info("live session ended", "camera", s.key.camera, "stream", s.key.stream, "session", s.id,
		"reason", s.reason, "sent_bytes", s.counters.sent.Load(), "dropped_packets", s.counters.dropped.Load())
	if s.m.opt.Hooks.OnEnd != nil {
		s.m.opt.Hooks.OnEnd(s.info(), time.Now(), s.reason)
	}
	close(s.gone)
}

// startMedia starts each negotiated track's binding for this session.
func (s *session) startMedia() {
	cam := &s.cam.counters
	for _, snd := range s.senders {
		t, ok := snd.Track().(*sharedTrack)
		params := snd.GetParameters()
		if !ok || len(params.Encodings) == 0 {
			continue
		}
		if b := t.start(uint32(params.Encodings[0].SSRC), &s.counters, cam); b != nil {
			s.bindings = append(s.bindings, b)
		}
	}
}
