package simcam

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"
)

// CameraSpec describes one simulated camera.
type CameraSpec struct {
	// Path is the RTSP path served, e.g. "motion" -> rtsp://host:port/motion.
	// It is one or more segments of [A-Za-z0-9._~-] joined by "/", with no
	// leading or trailing slash.
	Path string
	// Clip is the bundled clip the camera loops. Set exactly one of Clip
	// and File.
	Clip Clip
	// File is the path of a raw H.264 Annex-B elementary stream (such as
	// ffmpeg's -f h264 writes) to loop instead of a bundled clip. New reads
	// and parses each distinct file once, into memory, and every camera with
	// the same File shares the frames. The file must start with SPS, PPS and
	// an IDR (the loop restarts there) and contain no B-frames: frames are
	// sent in file order, one every 1/FPS s.
	File string
	// FPS is the rate at which File's frames are sent, in frames per second
	// (1..MaxFPS); 0 means FrameRate. Only with File: the bundled clips are
	// FrameRate, which their motion ground truth depends on.
	FPS int

	// Username and Password, when set, make the camera require RTSP
	// authentication on DESCRIBE and SETUP (Basic or Digest-MD5, as gortsplib
	// offers). Set both or neither. A wrong password gets 401 and the
	// connection is closed, as real cameras do.
	Username, Password string
	// RTPTimestampStart is the RTP timestamp of the first frame; set it near
	// 2^32 to make readers cross the timestamp wrap. 0 picks a random start.
	RTPTimestampStart uint32
	// SequenceStart is the RTP sequence number of the first packet; set it
	// near 65535 to make readers cross the sequence wrap. 0 picks a random
	// start.
	SequenceStart uint16

	// Hostile camera behaviour, for testing that a VMS copes with broken firmware.
	//
	// TicksPerFrame, when set, advances the RTP timestamp by this many 90 kHz ticks per
	// frame instead of 90000/FPS: 1 makes 25 frames a second look like 0.3 ms of video
	// (a camera whose clock crawls), while frames still go out in real time.
	TicksPerFrame uint32
	// StopKeyframesAfter, when set, sends keyframes only during this long after Run
	// starts (so a client connecting meanwhile gets one) and then only the clip's other
	// frames: an encoder that never sends another IDR.
	StopKeyframesAfter time.Duration

	// LoopStart is how far into its clip the camera starts: frame n sent is the clip's
	// frame n + LoopStart·FPS (modulo the loop), at the same time and RTP timestamp as
	// without it. A test that waits for something in the clip (ClipMotion's car, from
	// MotionIntervals) starts near it instead of waiting out the clip's first seconds.
	// It must be the offset of one of the clip's keyframes (the bundled clips have one
	// every 2 s), so that the first frame sent can be decoded.
	LoopStart time.Duration
}

// Config configures a Server.
type Config struct {
	// Listen is the TCP address of the RTSP server, e.g. "127.0.0.1:8554" or
	// "127.0.0.1:0". RTP/RTCP over UDP use a free even/odd port pair on the
	// same host, picked when Run starts.
	Listen string
	// Cameras to serve; if empty, DefaultCameras().
	Cameras []CameraSpec
	// Logger receives connection/session events and state changes, never
	// per-packet lines; nil discards.
	Logger *slog.Logger
	// TLS, when set, makes the server speak RTSPS (RTSP over TLS) on Listen
	// instead of plain RTSP, and URL return rtsps:// URLs. It must provide a
	// certificate (Certificates, GetCertificate or GetConfigForClient). New
	// keeps a clone, so later changes to it have no effect. Both transports
	// stay available: TCP (interleaved, inside the TLS connection) and UDP,
	// which gortsplib serves to RTSPS clients only as SRTP (secure profile,
	// keys exchanged with MIKEY over the TLS connection); plain RTP over UDP
	// is refused with RTSPS.
	TLS *tls.Config
}

// DefaultCameras is the pair `townwatch demo` shows: a camera with known
// motion and one with none.
func DefaultCameras() []CameraSpec {
	return []CameraSpec{
		{Path: "motion", Clip: ClipMotion},
		{Path: "static", Clip: ClipStatic},
	}
}

// Copies returns n cameras that serve what spec serves (its clip or file,
// frame rate and credentials) at paths cam1..camN, for load tests. Each
// gets its own random RTP timestamp and sequence start, as separate
// cameras would; spec's Path, RTPTimestampStart and SequenceStart are
// ignored.
func Copies(spec CameraSpec, n int) []CameraSpec {
	specs := make([]CameraSpec, n)
	for i := range specs {
		specs[i] = spec
		specs[i].Path = fmt.Sprintf("cam%d", i+1)
		specs[i].RTPTimestampStart, specs[i].SequenceStart = 0, 0
	}
	return specs
}

// validate reports every problem in cfg at once.
func (cfg *Config) validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen: %w", err))
	}
	if cfg.TLS != nil {
		if err := validateTLS(cfg.TLS); err != nil {
			errs = append(errs, fmt.Errorf("tls: %w", err))
		}
	}
	seen := make(map[string]bool, len(cfg.Cameras))
	for i, spec := range cfg.Cameras {
		where := fmt.Sprintf("cameras[%d]", i)
		if err := validatePath(spec.Path); err != nil {
			errs = append(errs, fmt.Errorf("%s.path: %w", where, err))
		} else if seen[spec.Path] {
			errs = append(errs, fmt.Errorf("%s.path: duplicate %q", where, spec.Path))
		}
		seen[spec.Path] = true
		switch {
		case spec.Clip != "" && spec.File != "":
			errs = append(errs, fmt.Errorf("%s: clip and file are exclusive; set one", where))
		case spec.Clip == "" && spec.File == "":
			errs = append(errs, fmt.Errorf("%s: clip or file is required", where))
		case spec.File != "":
			if spec.FPS < 0 || spec.FPS > MaxFPS {
				errs = append(errs, fmt.Errorf("%s.fps: %d out of range 1..%d (0 means %d)", where, spec.FPS, MaxFPS, FrameRate))
			}
		default:
			if _, ok := clipLoaders[spec.Clip]; !ok {
				errs = append(errs, fmt.Errorf("%s.clip: unknown clip %q (want %q or %q)",
					where, spec.Clip, ClipMotion, ClipStatic))
			}
			if spec.FPS != 0 && spec.FPS != FrameRate {
				errs = append(errs, fmt.Errorf("%s.fps: only with file (the bundled clips are %d fps)", where, FrameRate))
			}
		}
		if (spec.Username == "") != (spec.Password == "") {
			errs = append(errs, fmt.Errorf("%s: username and password must be set together", where))
		}
	}
	return errors.Join(errs...)
}

// validateTLS checks that a server TLS configuration can present a
// certificate; without one every handshake would fail.
func validateTLS(c *tls.Config) error {
	if len(c.Certificates) == 0 && c.GetCertificate == nil && c.GetConfigForClient == nil {
		return errors.New("no certificate: set Certificates, GetCertificate or GetConfigForClient")
	}
	for i, cert := range c.Certificates {
		if len(cert.Certificate) == 0 || cert.PrivateKey == nil {
			return fmt.Errorf("certificates[%d]: certificate chain and private key are required", i)
		}
	}
	return nil
}

func validatePath(p string) error {
	if p == "" {
		return errors.New("must not be empty")
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" {
			return fmt.Errorf("%q: empty segment or leading/trailing slash", p)
		}
		for _, r := range seg {
			ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
				r == '.' || r == '_' || r == '~' || r == '-'
			if !ok {
				return fmt.Errorf("%q: character %q not allowed", p, r)
			}
		}
	}
	return nil
}
