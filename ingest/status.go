package ingest

import (
	"sync"
	"time"
)

// State is where a Source is in its connect/stream/retry cycle.
type State string

// Source states. A Source in StateFailed keeps retrying like one in StateBackoff; the
// difference is that the reason (wrong password, unknown path, unsupported codec, bad
// certificate) needs a person to fix the camera or the configuration.
const (
	StateConnecting State = "connecting"
	StateStreaming  State = "streaming"
	StateBackoff    State = "backoff"
	StateFailed     State = "failed"
	StateStopped    State = "stopped"
)

// Status is a snapshot of one camera stream's ingest, as shown in /api/cameras and used by
// the metrics. It never contains a password.
type Status struct {
	Camera     string    `json:"camera"`
	Stream     string    `json:"stream"`
	URL        string    `json:"url"` // redacted
	State      State     `json:"state"`
	Reason     string    `json:"reason,omitempty"`    // why the Source is not streaming
	Since      time.Time `json:"since"`               // when State was entered
	RetryAt    time.Time `json:"retry_at,omitzero"`   // next attempt, in backoff/failed
	Transport  string    `json:"transport,omitempty"` // TCP or UDP, while streaming
	Codec      Codec     `json:"codec,omitempty"`
	AudioCodec Codec     `json:"audio_codec,omitempty"`
	Width      int       `json:"width,omitempty"`
	Height     int       `json:"height,omitempty"`
	FPS        float64   `json:"fps"`         // video frames per second, measured
	Bitrate    float64   `json:"bitrate_bps"` // media bits per second, measured
	Reconnects uint64    `json:"reconnects"`  // sessions started after the first
	LastFrame  time.Time `json:"last_frame,omitzero"`

	ReceivedFrames uint64 `json:"received_frames"` // video access units published
	ReceivedBytes  uint64 `json:"received_bytes"`  // media payload bytes published (video and audio)
	LostPackets    uint64 `json:"lost_packets"`    // RTP packets the camera sent that never arrived
	DecodeErrors   uint64 `json:"decode_errors"`   // units that could not be depacketized or timed and were not published
	Panics         uint64 `json:"panics"`          // sessions ended by a recovered panic in townwatch's own code (a bug to report)
}

// rateWindow is how long the fps/bitrate meter averages over: long enough to smooth a GOP's
// burst of keyframe bytes, short enough that a dispatcher sees a change within seconds.
const rateWindow = 2 * time.Second

// rateMeter measures video fps and media bitrate over rateWindow.
type rateMeter struct {
	mu          sync.Mutex
	windowStart time.Time
	frames      int
	bytes       int
	fps         float64
	bitsPerSec  float64
}

func (m *rateMeter) add(now time.Time, frames, bytes int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.windowStart.IsZero() {
		if frames == 0 {
			return // start at a video frame, or audio before the first keyframe skews fps
		}
		m.windowStart = now
	}
	m.frames += frames
	m.bytes += bytes
	if el := now.Sub(m.windowStart); el >= rateWindow {
		m.fps = float64(m.frames) / el.Seconds()
		m.bitsPerSec = float64(m.bytes) * 8 / el.Seconds()
		m.windowStart, m.frames, m.bytes = now, 0, 0
	}
}

func (m *rateMeter) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.windowStart, m.frames, m.bytes, m.fps, m.bitsPerSec = time.Time{}, 0, 0, 0, 0
}

func (m *rateMeter) read() (fps, bitsPerSec float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fps, m.bitsPerSec
}
