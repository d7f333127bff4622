// Package probe tries a camera stream before it is saved: one throwaway RTSP session,
// bounded in time, that reports what the camera sends (codec and profile, picture size,
// frame rate, bitrate, audio, the transport that worked, the time to the first keyframe,
// the certificate of an RTSPS camera, a JPEG of that first keyframe) or why it failed, in
// one of the classes of ingest.FailureClass.
//
// The session is an ordinary ingest.Source publishing to a Hub of its own, so a probe
// sees exactly what recording the camera would see: the same credential guard, codec
// selection, depacketizers and resolution limit. Nothing of it reaches the system's Hub.
//
// What blocks: Run blocks for at most Prober.Timeout (10 s by default), the snapshot
// included. Passwords never leave Run: the Result carries the URL redacted, and failure
// reasons are scrubbed by ingest.
package probe

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
)

// Limits of one probe.
const (
	// DefaultTimeout bounds a whole probe: an administrator waits for it, and a camera
	// that has not sent a keyframe in 10 s would not be usable as configured anyway.
	DefaultTimeout = 10 * time.Second
	// dialTimeout bounds the first TCP connection: a camera on the LAN answers in
	// milliseconds, so a port that takes longer is reported unreachable without waiting
	// out the whole probe.
	dialTimeout = 3 * time.Second
	// measureWindow is how much media (by its timestamps) after the first keyframe is
	// counted for the frame rate and bitrate: one second holds a whole number of frames at
	// any usual rate and keeps a probe of a 2 s GOP within about 4 s.
	measureWindow = time.Second
	// readerQueue is the probe's Reader depth: a second of 1080p60 with audio.
	readerQueue = 256
)

// Snapshotter makes a JPEG of one keyframe access unit in Annex-B form (parameter sets
// first); viewer.FrameDecoder is one, with ffmpeg in a child process.
type Snapshotter interface {
	Keyframe(ctx context.Context, codec ingest.Codec, annexB []byte) ([]byte, error)
}

// Request is what to probe. URL is rtsp:// or rtsps://, or a bare host[:port] meaning
// rtsp://host[:port]/. Username and Password may be given here or in the URL (not both).
type Request struct {
	URL            string
	Username       string
	Password       string
	Transport      string // tcp (the default, as for a configured camera), udp or auto
	TLSFingerprint string // rtsps only: pin the certificate (hex SHA-256)
}

// Audio is the audio track a probed stream carries.
type Audio struct {
	Codec     ingest.Codec `json:"codec"`
	ClockRate int          `json:"clock_rate"`
}

// Result is what a probe found. OK is true when a keyframe arrived; otherwise Failure
// and Reason say why not. Fields the session did not get as far as are zero.
type Result struct {
	OK      bool                `json:"ok"`
	Failure ingest.FailureClass `json:"failure,omitempty"`
	Reason  string              `json:"reason,omitempty"`
	URL     string              `json:"url"` // redacted

	Codec     ingest.Codec `json:"codec,omitempty"`
	Profile   string       `json:"profile,omitempty"` // "High", "Main 10", ...
	Level     string       `json:"level,omitempty"`   // "3.1"
	Width     int          `json:"width,omitempty"`
	Height    int          `json:"height,omitempty"`
	FPS       float64      `json:"fps,omitempty"`         // from the timestamps of the frames after the first keyframe
	Bitrate   float64      `json:"bitrate_bps,omitempty"` // media bits per second over the same frames
	Audio     *Audio       `json:"audio"`                 // null when the stream has none
	Transport string       `json:"transport,omitempty"`   // TCP or UDP: what carried the media
	// FirstKeyframe is the time from the start of the probe to the first keyframe.
	FirstKeyframeMS int64 `json:"first_keyframe_ms,omitempty"`
	// TLSFingerprint is the hex SHA-256 of the certificate an rtsps:// camera presented,
	// also when it was refused (tls_mismatch), to compare with the camera's own display
	// and pin as tls_fingerprint.
	TLSFingerprint string `json:"tls_fingerprint,omitempty"`
	SnapshotJPEG   []byte `json:"snapshot_jpeg,omitempty"` // base64 in JSON
	SnapshotError  string `json:"snapshot_error,omitempty"`
	ElapsedMS      int64  `json:"elapsed_ms"`
}

// Prober runs probes. The zero value works without snapshots and with the default
// timeout.
type Prober struct {
	Snapshots Snapshotter   // nil: no snapshot
	Timeout   time.Duration // 0: DefaultTimeout
	Log       *slog.Logger  // nil discards; gets nothing but redacted URLs
}

// Stream turns a request into the stream configuration a saved camera would have, or
// a *configs.ValidationError naming the request's field that is wrong.
func (r Request) Stream() (configs.Stream, error) {
	raw := strings.TrimSpace(r.URL)
	if raw != "" && !strings.Contains(raw, "://") {
		raw = "rtsp://" + raw + "/" // a bare host: the camera's root path
	}
	s := configs.Stream{URL: raw, Transport: r.Transport, StallTimeout: configs.DefaultStallTimeout, TLSFingerprint: r.TLSFingerprint}
	if s.Transport == "" {
		s.Transport = configs.DefaultTransport
	}
	if err := s.Validate(); err != nil {
		return configs.Stream{}, err
	}
	if r.Username == "" && r.Password == "" {
		return s, nil
	}
	u, err := url.Parse(raw)
	if err != nil { // Validate has parsed it already
		return configs.Stream{}, err
	}
	var problems []configs.Problem
	if u.User != nil {
		problems = append(problems, configs.Problem{Path: "username", Message: "conflicts with the credentials in url (use one)"})
	}
	if r.Username == "" {
		problems = append(problems, configs.Problem{Path: "username", Message: "required with a password"})
	}
	if len(problems) > 0 {
		return configs.Stream{}, &configs.ValidationError{Problems: problems}
	}
	if r.Password == "" {
		u.User = url.User(r.Username)
	} else {
		u.User = url.UserPassword(r.Username, r.Password)
	}
	s.URL = u.String()
	return s, nil
}

// Run probes the stream req describes. The error is only for a request that is wrong
// (a *configs.ValidationError); a camera that fails is a Result with its Failure.
func (p *Prober) Run(ctx context.Context, req Request) (Result, error) {
	cfg, err := req.Stream()
	if err != nil {
		return Result{}, err
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	res := Result{URL: cfg.RedactedURL()}
	if p.reachable(ctx, cfg, &res) {
		if kf := p.session(ctx, cfg, start, &res); kf != nil && p.Snapshots != nil {
			if jpeg, err := p.Snapshots.Keyframe(ctx, res.Codec, kf); err != nil {
				res.SnapshotError = err.Error()
			} else {
				res.SnapshotJPEG = jpeg
			}
		}
	}
	res.ElapsedMS = time.Since(start).Milliseconds()
	p.log().Info("camera probed", "url", res.URL, "ok", res.OK, "failure", res.Failure, "elapsed_ms", res.ElapsedMS)
	return res, nil
}

func (p *Prober) log() *slog.Logger {
	if p.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Log
}

// reachable connects to the camera's port before any RTSP is spoken, so that a closed or
// silent port is reported as unreachable within dialTimeout. For rtsps:// it completes a
// TLS handshake that trusts anything, only to read the certificate's fingerprint: no
// request and so no credential is sent over that connection. It reports false when the
// probe is over (res then carries the failure).
func (p *Prober) reachable(ctx context.Context, cfg configs.Stream, res *Result) bool {
	u, _ := url.Parse(cfg.URL) // validated
	port := u.Port()
	if port == "" {
		port = map[string]string{"rtsp": "554", "rtsps": "322"}[u.Scheme]
	}
	addr := net.JoinHostPort(u.Hostname(), port)
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", addr)
	if err != nil {
		res.Failure, res.Reason = ingest.FailureUnreachable, "no connection to "+addr+": "+shortNetError(err)
		return false
	}
	defer conn.Close()
	if u.Scheme != "rtsps" {
		return true
	}
	var seen []byte
	tc := tls.Client(conn, &tls.Config{
		ServerName:         u.Hostname(),
		InsecureSkipVerify: true, // only reads the certificate; the session verifies it
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) > 0 {
				seen = cs.PeerCertificates[0].Raw
			}
			return nil
		},
	})
	if err := tc.HandshakeContext(dctx); err != nil {
		res.Failure, res.Reason = ingest.FailureTLSMismatch, "no TLS handshake with "+addr+" ("+shortNetError(err)+"): does the port speak plain rtsp://?"
		return false
	}
	if seen != nil {
		sum := sha256.Sum256(seen)
		res.TLSFingerprint = hex.EncodeToString(sum[:])
	}
	return true
}

// shortNetError is the last part of a network error ("connection refused"), without the
// addresses net repeats.
func shortNetError(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return msg
}

// session runs the throwaway RTSP session and fills res from what it delivered. It
// returns the first keyframe in Annex-B form, or nil when none came.
func (p *Prober) session(ctx context.Context, cfg configs.Stream, start time.Time, res *Result) []byte {
	hub := ingest.NewHub()
	src, err := ingest.NewSource("probe", ingest.StreamMain, cfg, hub, nil)
	if err != nil {
		res.Failure, res.Reason = ingest.FailureProtocol, err.Error()
		return nil
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	ended := make(chan error, 1)
	go func() {
		err := src.Once(sctx)
		stop() // wakes the wait and reads below when the session fails by itself
		ended <- err
	}()
	m := measure(sctx, hub)
	st := src.Status() // before the session ends: a stopped Source shows no transport
	stop()
	sessionErr := <-ended
	res.Codec, res.Width, res.Height, res.Transport = st.Codec, st.Width, st.Height, st.Transport
	if st.AudioCodec != "" {
		res.Audio = &Audio{Codec: st.AudioCodec, ClockRate: m.audioRate}
	}
	if m.keyframe == nil {
		res.Failure, res.Reason = failure(sessionErr, ctx, m.streamed)
		// ingest's own words for a failed session say what to change ("check the
		// username and password"); they are what /api/cameras would show once saved.
		if why := src.Status().Reason; why != "" && res.Failure != ingest.FailureTimeout {
			res.Reason = why
		}
		return nil
	}
	res.OK = true
	res.FirstKeyframeMS = m.keyAt.Sub(start).Milliseconds()
	res.FPS, res.Bitrate = m.rates()
	res.Profile, res.Level = profile(res.Codec, m.params)
	if m.params != nil && m.params.Width > 0 {
		res.Width, res.Height = m.params.Width, m.params.Height
	}
	annexB, err := h264.AnnexB(m.keyframe.Payload).Marshal() // start codes are the same for H.265
	if err != nil {
		res.SnapshotError = err.Error()
		return nil
	}
	return annexB
}

// failure says why a session gave no keyframe. ctx is the probe's: when its deadline
// ended the session, the camera was reachable (reach succeeded) but too slow.
func failure(sessionErr error, ctx context.Context, streamed bool) (ingest.FailureClass, string) {
	if ctx.Err() != nil || sessionErr == nil || errors.Is(sessionErr, context.Canceled) {
		if streamed {
			return ingest.FailureTimeout, "the camera sent media but no keyframe in time; shorten its keyframe interval (GOP)"
		}
		return ingest.FailureTimeout, "the camera accepted the connection but sent no media in time"
	}
	return ingest.FailureOf(sessionErr), sessionErr.Error()
}

// measurement is what the probe's Reader saw.
type measurement struct {
	streamed  bool // a Stream started (the camera answered PLAY)
	keyframe  *ingest.Unit
	keyAt     time.Time
	params    *ingest.VideoParams
	frames    int           // video units from the keyframe on, within measureWindow
	bytes     int           // payload of all units in that span
	span      time.Duration // DTS of the last counted video unit minus the keyframe's
	audioRate int
}

// measure reads the session's units until measureWindow of media after the first
// keyframe has passed, or ctx is done.
func measure(ctx context.Context, hub *ingest.Hub) measurement {
	var m measurement
	st, err := hub.Wait(ctx, "probe", ingest.StreamMain)
	if err != nil {
		return m
	}
	m.streamed = true
	for _, t := range st.Tracks {
		if t.Kind == ingest.KindAudio {
			m.audioRate = t.ClockRate
		}
	}
	r := st.NewReader("probe", readerQueue)
	defer r.Close()
	for {
		u, _, err := r.Read(ctx)
		if err != nil {
			return m
		}
		if m.keyframe == nil {
			if u.Track.Kind != ingest.KindVideo || !u.Key {
				continue
			}
			m.keyframe, m.keyAt, m.params = u, time.Now(), u.Params
		}
		m.bytes += u.Size()
		if u.Track.Kind != ingest.KindVideo {
			continue
		}
		d := u.DTS - m.keyframe.DTS
		if d >= measureWindow {
			return m
		}
		m.frames++
		m.span = d
	}
}

// rates are the frame rate and bitrate over the measured frames: n frames whose
// timestamps span s stand for n·s/(n-1) of video.
func (m measurement) rates() (fps, bps float64) {
	if m.frames < 2 || m.span <= 0 {
		return 0, 0
	}
	fps = float64(m.frames-1) / m.span.Seconds()
	return fps, float64(m.bytes) * 8 * fps / float64(m.frames)
}

// profile names the codec profile and level from the sequence parameter set.
func profile(codec ingest.Codec, p *ingest.VideoParams) (string, string) {
	if p == nil {
		return "", ""
	}
	switch codec {
	case ingest.CodecH264:
		var sps h264.SPS
		if sps.Unmarshal(p.SPS) != nil {
			return "", ""
		}
		return h264Profile(sps), fmt.Sprintf("%d.%d", sps.LevelIdc/10, sps.LevelIdc%10)
	case ingest.CodecH265:
		return h265Profile(p.SPS)
	}
	return "", ""
}
