package configs

import (
	"os"
	"time"
)

// Config is the whole system's configuration: one YAML file.
type Config struct {
	Storage Storage  `yaml:"storage"`
	HTTP    HTTP     `yaml:"http"`
	Cameras []Camera `yaml:"cameras"` // none is valid: the server runs with an empty camera list
}

// Storage says where recordings, snapshots and the catalog live.
type Storage struct {
	Path string `yaml:"path"` // default "./data"; relative to the working directory
	// Quota caps the bytes of all recordings together; 0 means no cap. Retention deletes
	// the oldest unlocked footage to stay under it.
	Quota ByteSize `yaml:"quota"`
	// MinFree is the free space retention keeps on the filesystem, whatever the quotas say,
	// so that the disk never fills (default 10%).
	MinFree FreeSpace `yaml:"min_free"`
}

// HTTP configures the viewer's listener.
type HTTP struct {
	Listen string `yaml:"listen"` // default "127.0.0.1:8080"; must be host:port (host may be empty for all interfaces)
}

// Camera is one camera: a main stream that is recorded and an optional sub stream (lower
// resolution) that motion detection prefers.
type Camera struct {
	ID     string  `yaml:"id"`   // required, ^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$, unique; used in paths and URLs
	Name   string  `yaml:"name"` // default = ID
	Main   Stream  `yaml:"main"` // required (url required)
	Sub    *Stream `yaml:"sub"`  // optional
	Record Record  `yaml:"record"`
	Motion Motion  `yaml:"motion"`
}

// Stream is one RTSP stream of a camera and how to log in to it.
//
// The password comes from exactly one place: the URL (rtsp://user:pass@host/...),
// password_file or password_env; the latter two need a user name, from username or from the
// URL. Use DialURL to connect and RedactedURL for anything a person may see.
type Stream struct {
	URL            string   `yaml:"url"`             // rtsp:// or rtsps:// only; may carry user:pass
	Transport      string   `yaml:"transport"`       // "auto" (default) | "tcp" | "udp"
	Username       string   `yaml:"username"`        // optional; alternative to credentials in the URL
	PasswordFile   string   `yaml:"password_file"`   // optional, file content (trailing newline trimmed); relative to the working directory
	PasswordEnv    string   `yaml:"password_env"`    // optional, environment variable name
	StallTimeout   Duration `yaml:"stall_timeout"`   // default 10s; must be >= 1s
	TLSFingerprint string   `yaml:"tls_fingerprint"` // optional, rtsps only: hex SHA-256 of the camera's certificate (colons allowed), 64 hex digits; for self-signed cameras
}

// Transports for Stream.Transport. Auto tries UDP and falls back to TCP.
const (
	TransportAuto = "auto"
	TransportTCP  = "tcp"
	TransportUDP  = "udp"
)

// Record says what of a camera's main stream is kept, and for how long.
type Record struct {
	Mode      string   `yaml:"mode"`      // "continuous" (default) | "motion" | "off"
	Retention Duration `yaml:"retention"` // default 7d, must be > 0
	// Segment is the target length of one recording file (default 60s, 10s to 1h). Files
	// are cut at the first keyframe after it, and also on any gap or codec change.
	Segment Duration `yaml:"segment"`
	Quota   ByteSize `yaml:"quota"` // cap on this camera's recordings; 0 = none
	// Audio records the camera's audio track. Off by default: recording conversations in
	// public space needs a legal basis that video surveillance alone does not give.
	Audio bool `yaml:"audio"`
}

// Modes for Record.Mode. RecordMotion needs Motion.Enabled, or it would record nothing.
const (
	RecordContinuous = "continuous"
	RecordMotion     = "motion"
	RecordOff        = "off"
)

// Motion configures motion detection for a camera.
type Motion struct {
	Enabled bool `yaml:"enabled"` // default false
}

// Defaults, applied by Parse to keys that are absent (or null). A key that is present with
// a zero value ("retention: 0") keeps it, so Validate reports it instead of a default
// silently replacing what the operator wrote.
const (
	DefaultStoragePath  = "./data"
	DefaultListen       = "127.0.0.1:8080"
	DefaultTransport    = TransportAuto
	DefaultStallTimeout = Duration(10 * time.Second)
	DefaultRecordMode   = RecordContinuous
	DefaultRetention    = Duration(7 * day)
	DefaultSegment      = Duration(60 * time.Second)
)

// DefaultMinFree is storage.min_free's default: a tenth of the filesystem.
var DefaultMinFree = FreeSpace{Percent: 10}

// The setDefaults methods fill a value before it is decoded, so that decoding overwrites
// only the keys the file has. The decoder calls them for every Camera and Stream it creates.

func (c *Config) setDefaults() {
	c.Storage.Path = DefaultStoragePath
	c.HTTP.Listen = DefaultListen
	c.Storage.MinFree = DefaultMinFree
}

func (c *Camera) setDefaults() {
	c.Main.setDefaults()
	c.Record.Mode = DefaultRecordMode
	c.Record.Retention = DefaultRetention
	c.Record.Segment = DefaultSegment
}

func (s *Stream) setDefaults() {
	s.Transport = DefaultTransport
	s.StallTimeout = DefaultStallTimeout
}

// Camera returns the camera with the given id.
func (c *Config) Camera(id string) (Camera, bool) {
	for _, cam := range c.Cameras {
		if cam.ID == id {
			return cam, true
		}
	}
	return Camera{}, false
}

// Load reads the file at path and parses it (see Parse). Relative paths inside the file
// (storage.path, password_file) stay relative to the working directory, not to the file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err // *fs.PathError already names the file
	}
	return Parse(data, path)
}

// Parse decodes one YAML document strictly (unknown keys, duplicate keys and values of the
// wrong type are errors that name the line), applies defaults and validates the result.
// source names the input in messages, usually the file name. The error lists every problem,
// one per line, each starting with source; after a decoding problem the config is not
// validated, since half-decoded values would only add noise. Validation problems are also
// available as a *ValidationError through errors.As.
func Parse(data []byte, source string) (*Config, error) {
	c, err := decode(data, source)
	if err != nil {
		return nil, err
	}
	for i := range c.Cameras {
		if c.Cameras[i].Name == "" {
			c.Cameras[i].Name = c.Cameras[i].ID
		}
	}
	if ps := c.problems(); len(ps) > 0 {
		return nil, &sourceError{source: source, err: &ValidationError{Problems: ps}}
	}
	return c, nil
}
