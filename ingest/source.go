package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/townwatch/townwatch/configs"
)

// returnProbeInterval is how often a Source waiting out its backoff after a refused or
// unreachable connection checks, with a bare TCP connect, whether the camera is back. A
// camera that returns is then reconnected within this interval instead of after up to
// backoffMax, so little footage is lost after a reboot or a power cut.
const returnProbeInterval = 500 * time.Millisecond

// Source pulls one camera stream over RTSP and publishes its media to the Hub. It never
// gives up: failures are reported in Status and retried with backoff until ctx is done.
type Source struct {
	camera string
	stream string
	cfg    configs.Stream
	hub    *Hub
	log    *slog.Logger

	mu     sync.Mutex
	status Status // guarded by mu: the state part; counters live in the atomics below

	frames     atomic.Uint64
	bytes      atomic.Uint64
	lost       atomic.Uint64
	decodeErrs atomic.Uint64
	panics     atomic.Uint64
	reconnects atomic.Uint64
	lastFrame  atomic.Int64 // unix nanoseconds of the last published video unit
	rate       rateMeter
}

// NewSource validates its arguments and returns a Source for one stream (StreamMain or
// StreamSub) of a camera. It starts nothing.
func NewSource(camera, stream string, cfg configs.Stream, hub *Hub, log *slog.Logger) (*Source, error) {
	if camera == "" {
		return nil, fmt.Errorf("ingest: camera id is empty")
	}
	if stream != StreamMain && stream != StreamSub {
		return nil, fmt.Errorf("camera %s: unknown stream %q (want %s or %s)", camera, stream, StreamMain, StreamSub)
	}
	if cfg.URL == "" {
		return nil, fmt.Errorf("camera %s: %s.url is empty", camera, stream)
	}
	if hub == nil {
		return nil, fmt.Errorf("camera %s: ingest hub is nil", camera)
	}
	switch {
	case cfg.StallTimeout == 0:
		// A Stream built in code rather than parsed from YAML: use the documented default,
		// or the watchdog would end every session at its first check.
		cfg.StallTimeout = configs.DefaultStallTimeout
	case cfg.StallTimeout < configs.Duration(time.Second):
		return nil, fmt.Errorf("camera %s: %s.stall_timeout %s is below 1s", camera, stream, cfg.StallTimeout)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Source{
		camera: camera,
		stream: stream,
		cfg:    cfg,
		hub:    hub,
		log:    log.With("camera", camera, "stream", stream),
	}
	s.status = Status{Camera: camera, Stream: stream, URL: cfg.RedactedURL(), State: StateConnecting, Since: time.Now()}
	return s, nil
}

// Camera returns the camera id.
func (s *Source) Camera() string { return s.camera }

// StreamName returns StreamMain or StreamSub.
func (s *Source) StreamName() string { return s.stream }

// Run connects, streams and reconnects until ctx is done. It returns nil after ctx is done
// and every goroutine it started has exited; it has no error a restart could fix.
func (s *Source) Run(ctx context.Context) error {
	var bo backoff
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			s.reconnects.Add(1)
		}
		s.setState(StateConnecting, "", time.Time{})
		res := s.runSession(ctx)
		if ctx.Err() != nil {
			s.setState(StateStopped, "", time.Time{})
			return nil
		}
		if res.streamed >= backoffResetAfter {
			bo.reset()
		}
		wait := bo.delay()
		f := classify(res.err)
		s.setState(f.state, f.reason, time.Now().Add(wait))
		if !s.waitRetry(ctx, wait, f.cameraGone) {
			s.setState(StateStopped, "", time.Time{})
			return nil
		}
	}
}

// Once runs a single session, as Run does between reconnects, and returns why it ended
// (ctx.Err() when ctx ended it), with any password scrubbed from the error. It never
// retries: a probe of a camera that is not configured yet wants the first failure, which
// FailureOf classifies.
func (s *Source) Once(ctx context.Context) error {
	s.setState(StateConnecting, "", time.Time{})
	res := s.runSession(ctx)
	f := classify(res.err)
	if ctx.Err() != nil {
		f = failure{state: StateStopped}
	}
	s.setState(f.state, f.reason, time.Time{})
	return res.err
}

// waitRetry waits out a backoff delay. When the camera was unreachable it probes the
// camera's port meanwhile and returns early once it accepts connections. It reports false
// when ctx is done.
func (s *Source) waitRetry(ctx context.Context, wait time.Duration, probe bool) bool {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	var tick <-chan time.Time
	if probe {
		t := time.NewTicker(returnProbeInterval)
		defer t.Stop()
		tick = t.C
	}
	addr := dialAddress(s.cfg.URL)
	for {
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return true
		case <-tick:
			if addr != "" && portOpen(ctx, addr) {
				return true
			}
		}
	}
}

// portOpen reports whether a TCP connection to addr succeeds.
func portOpen(ctx context.Context, addr string) bool {
	d := net.Dialer{Timeout: returnProbeInterval}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// setState records a state change and logs it once: repeated failures with the same reason
// do not repeat the log line.
func (s *Source) setState(st State, reason string, retryAt time.Time) {
	s.mu.Lock()
	changed := s.status.State != st || s.status.Reason != reason
	if changed {
		s.status.State = st
		s.status.Reason = reason
		s.status.Since = time.Now()
	}
	s.status.RetryAt = retryAt
	if st != StateStreaming {
		s.status.Transport = ""
	}
	s.mu.Unlock()
	if st != StateStreaming {
		s.rate.reset()
	}
	if !changed {
		return
	}
	attrs := []any{"state", st, "url", s.cfg.RedactedURL()}
	switch st {
	case StateFailed:
		s.log.Error("camera stream failed", append(attrs, "reason", reason, "retry_at", retryAt)...)
	case StateBackoff:
		s.log.Warn("camera stream unavailable", append(attrs, "reason", reason, "retry_at", retryAt)...)
	case StateConnecting:
		s.log.Debug("connecting to camera", attrs...)
	case StateStreaming:
		s.log.Info("camera streaming", attrs...)
	default:
		s.log.Info("camera stopped", attrs...)
	}
}

// setMedia records what the current session carries.
func (s *Source) setMedia(transport string, video, audio Codec) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status.Transport = transport
	s.status.Codec = video
	s.status.AudioCodec = audio
}

// setTransport records a transport switch (auto mode falling back from UDP to TCP).
func (s *Source) setTransport(transport string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status.Transport = transport
}

// setResolution records the picture size parsed from the current SPS.
func (s *Source) setResolution(w, h int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status.Width, s.status.Height = w, h
}

// Status returns a snapshot of the stream's ingest state and counters.
func (s *Source) Status() Status {
	s.mu.Lock()
	st := s.status
	s.mu.Unlock()
	st.Reconnects = s.reconnects.Load()
	st.ReceivedFrames = s.frames.Load()
	st.ReceivedBytes = s.bytes.Load()
	st.LostPackets = s.lost.Load()
	st.DecodeErrors = s.decodeErrs.Load()
	st.Panics = s.panics.Load()
	if ns := s.lastFrame.Load(); ns != 0 {
		st.LastFrame = time.Unix(0, ns).UTC()
	}
	if st.State == StateStreaming {
		st.FPS, st.Bitrate = s.rate.read()
	}
	return st
}

// published accounts one published unit.
func (s *Source) published(u *Unit, now time.Time) {
	n := u.Size()
	s.bytes.Add(uint64(n))
	frames := 0
	if u.Track.Kind == KindVideo {
		frames = 1
		s.frames.Add(1)
		s.lastFrame.Store(now.UnixNano())
	}
	s.rate.add(now, frames, n)
}
