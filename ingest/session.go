package ingest

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/pion/rtp"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest/supervise"
)

// faultHook is a test seam: when a test sets it, it runs inside the depacketizer's panic
// guard for every packet, so a test can make that code panic. Always nil in production.
var faultHook atomic.Pointer[func(camera, stream string)]

// stallCheckInterval is how often the watchdog looks at the time of the last unit. One
// second keeps detection within a second of the configured stall timeout.
const stallCheckInterval = time.Second

// sessionResult is how one RTSP session ended.
type sessionResult struct {
	err      error
	streamed time.Duration // how long media flowed, for the backoff reset
}

// runSession runs one RTSP session: connect, DESCRIBE, SETUP, PLAY, publish media until the
// connection fails, the stall watchdog fires or ctx is done.
func (s *Source) runSession(ctx context.Context) sessionResult {
	dialURL, err := s.cfg.DialURL()
	if err != nil {
		return sessionResult{err: fmt.Errorf("%w: %w", errCredentials, err)}
	}
	u, err := base.ParseURL(dialURL)
	if err != nil {
		return sessionResult{err: scrubSecret(fmt.Errorf("%w: invalid url: %w", errCredentials, err), dialURL)}
	}
	guard := newCredentialGuard(u, s.cfg.AllowBasicWithoutTLS)
	res := s.session(ctx, u, guard)
	if refused := guard.err(); refused != nil {
		res.err = refused // the real reason, whatever the camera answered to a request without credentials
	}
	res.err = scrubSecret(res.err, dialURL)
	return res
}

func (s *Source) session(ctx context.Context, u *base.URL, guard *credentialGuard) sessionResult {
	var transportSwitched atomic.Bool
	c := &gortsplib.Client{
		OnRequest: guard.onRequest,
		Scheme:    u.Scheme,
		Host:      u.Host,
		Transport: clientTransport(s.cfg.Transport),
		TLSConfig: tlsConfig(s.cfg.TLSFingerprint),
		// Replace gortsplib's defaults, which print to the standard logger for every
		// event; losses and decode errors are counted and shown in Status instead.
		OnPacketsLost:     func(n uint64) { s.lost.Add(n) },
		OnDecodeError:     func(error) { s.decodeErrs.Add(1) },
		OnTransportSwitch: func(error) { transportSwitched.Store(true); s.setTransport("TCP") },
	}
	if err := c.Start2(); err != nil {
		return sessionResult{err: err}
	}
	defer c.Close()

	// Close the client when ctx is done so that blocking requests return at once.
	stopOnCancel := context.AfterFunc(ctx, c.Close)
	defer stopOnCancel()

	guard.describe(true)
	desc, _, err := c.Describe(u)
	guard.describe(false)
	if err == nil && guard.err() != nil {
		return sessionResult{} // runSession reports the refusal
	}
	if err != nil {
		return sessionResult{err: protocolError(err)}
	}
	sel, err := selectMedias(desc)
	if err != nil {
		return sessionResult{err: err}
	}
	for _, m := range sel.medias {
		if _, err := c.Setup(desc.BaseURL, m.media, 0, 0); err != nil {
			return sessionResult{err: fmt.Errorf("setup %s track: %w", m.track.Codec, protocolError(err))}
		}
	}

	var lastVideo atomic.Int64 // unix nanoseconds of the last published video unit
	var st *Stream
	clock := &sessionClock{log: s.log}
	publish := func(un *Unit) {
		now := time.Now()
		un.Wall = clock.wall(un.PTS, now)
		st.Publish(un)
		s.published(un, now)
		// Only video feeds the stall watchdog: a camera whose encoder hangs while its
		// audio goes on records nothing and must be reconnected.
		if un.Track.Kind == KindVideo {
			lastVideo.Store(now.UnixNano())
		}
	}
	sink := &sessionSink{Source: s, broken: make(chan error, 1)}
	// The stream counts as streaming from its first media packet, not its first keyframe:
	// media is flowing, and the dispatcher should not see "connecting" for a whole GOP.
	firstPacket := make(chan struct{})
	var gotFirst atomic.Bool
	for _, m := range sel.medias {
		dp, err := newDepacketizer(m.track, m.format, sink, publish)
		if err != nil {
			return sessionResult{err: fmt.Errorf("%w: %s track: %w", errUnsupportedCodec, m.track.Codec, err)}
		}
		medi := m.media
		c.OnPacketRTP(medi, m.format, func(pkt *rtp.Packet) {
			if gotFirst.CompareAndSwap(false, true) {
				close(firstPacket)
			}
			pts, ok := c.PacketPTS2(medi, pkt)
			if !ok {
				return // time base not synchronised yet; gortsplib needs the first packets
			}
			// This runs on the RTSP client's goroutine, where nothing of ours could catch
			// a panic: a malformed packet that trips a depacketizer bug would take the
			// process, and every camera's recording, down. It ends this session instead;
			// the camera reconnects.
			if err := supervise.Call(func() {
				if hook := faultHook.Load(); hook != nil {
					(*hook)(s.camera, s.stream)
				}
				dp.packet(pkt, pts)
			}); err != nil {
				s.panics.Add(1)
				s.log.Error("depacketizer panicked; reconnecting the camera", "err", err, "stack", string(err.(*supervise.PanicError).Stack))
				sink.streamBroken(fmt.Errorf("%w: %w", errInternal, err))
			}
		})
	}

	tracks := make([]*Track, len(sel.medias))
	for i, m := range sel.medias {
		tracks[i] = m.track
	}
	// The Stream exists before PLAY so that no unit can arrive without one.
	st = s.hub.Start(s.camera, s.stream, tracks)
	var endCause error
	defer func() { st.End(endCause) }()

	if _, err := c.Play(nil); err != nil {
		endCause = err
		return sessionResult{err: err}
	}
	transport := "UDP"
	if s.cfg.Transport == configs.TransportTCP || transportSwitched.Load() {
		transport = "TCP"
	}
	s.setMedia(transport, sel.videoCodec, sel.audioCodec)

	waitErr := make(chan error, 1)
	go func() { waitErr <- c.Wait() }()
	defer func() { c.Close(); <-waitErr }()

	playStart := time.Now()
	var streamingSince time.Time
	ticker := time.NewTicker(stallCheckInterval)
	defer ticker.Stop()
	stall := s.cfg.StallTimeout.Std()
	for {
		select {
		case <-ctx.Done():
			endCause = ctx.Err()
			return sessionResult{err: ctx.Err(), streamed: since(streamingSince)}
		case err := <-waitErr:
			waitErr <- err // the deferred drain reads it again
			endCause = err
			return sessionResult{err: err, streamed: since(streamingSince)}
		case err := <-sink.broken:
			endCause = err
			return sessionResult{err: err, streamed: since(streamingSince)}
		case <-firstPacket:
			firstPacket = nil
			streamingSince = time.Now()
			s.setState(StateStreaming, "", time.Time{})
		case now := <-ticker.C:
			last := playStart
			if ns := lastVideo.Load(); ns != 0 {
				last = time.Unix(0, ns)
			}
			if quiet := now.Sub(last); quiet >= stall {
				endCause = fmt.Errorf("%w: no media for %s", errStalled, quiet.Truncate(time.Second))
				return sessionResult{err: endCause, streamed: since(streamingSince)}
			}
		}
	}
}

// sessionSink is the depacketizers' sink for one session: the Source's counters, plus the
// channel through which a broken timeline ends the session.
type sessionSink struct {
	*Source
	broken chan error
}

// videoParams refuses a picture beyond ingest.max_resolution (ending the session with
// the reason) before passing new parameters on: an SPS claiming 16384×16384 made
// libavcodec allocate about 400 MB per reference frame. The picture may be either way
// round (a camera mounted on its side), but never more pixels or a longer side.
func (k *sessionSink) videoParams(p *VideoParams) {
	limit := k.cfg.MaxResolution
	if limit.Pixels() == 0 {
		limit = configs.DefaultMaxResolution
	}
	long := max(limit.Width, limit.Height)
	if p.Width > long || p.Height > long || p.Width*p.Height > limit.Pixels() {
		k.streamBroken(fmt.Errorf("%w: the camera declares %d×%d pixels, more than ingest.max_resolution (%s)",
			errResolution, p.Width, p.Height, limit))
		return
	}
	k.Source.videoParams(p)
}

func (k *sessionSink) streamBroken(err error) {
	select {
	case k.broken <- err:
	default: // the session is already ending
	}
}

func since(t time.Time) time.Duration {
	if t.IsZero() {
		return 0
	}
	return time.Since(t)
}

// clientTransport maps the configured transport to gortsplib's: nil lets gortsplib try UDP
// first and fall back to TCP.
func clientTransport(t string) *gortsplib.Transport {
	var v gortsplib.Transport
	switch t {
	case configs.TransportTCP:
		v = gortsplib.TransportTCP
	case configs.TransportUDP:
		v = gortsplib.TransportUDP
	default:
		return nil
	}
	return &v
}

// tlsConfig pins the camera's certificate when a fingerprint is configured: cameras almost
// always have self-signed certificates, which no CA can vouch for. Without a fingerprint the
// system roots verify the certificate as usual.
func tlsConfig(fingerprint string) *tls.Config {
	if fingerprint == "" {
		return nil
	}
	want := strings.ToLower(strings.ReplaceAll(fingerprint, ":", ""))
	return &tls.Config{
		InsecureSkipVerify: true, // replaced by the pinning check below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("%w: camera sent no certificate", errCertificate)
			}
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if got := hex.EncodeToString(sum[:]); got != want {
				return fmt.Errorf("%w: fingerprint %s does not match tls_fingerprint", errCertificate, got)
			}
			return nil
		},
	}
}
