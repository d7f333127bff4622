package configs

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Config is the whole system's configuration: one YAML file.
type Config struct {
	Storage Storage  `yaml:"storage"`
	Catalog Catalog  `yaml:"catalog"`
	HTTP    HTTP     `yaml:"http"`
	WebRTC  WebRTC   `yaml:"webrtc"`
	Metrics Metrics  `yaml:"metrics"`
	Audit   Audit    `yaml:"audit"`
	Exports Exports  `yaml:"exports"`
	Ingest  Ingest   `yaml:"ingest"`
	Node    Node     `yaml:"node"`    // only for several recorder nodes (serve -node)
	Cameras []Camera `yaml:"cameras"` // none is valid: the server runs with an empty camera list
}

// DefaultMaxResolution is 8K UHD: no camera a town buys sends more, and an SPS claiming
// more is an attack on the decoders' memory.
var DefaultMaxResolution = Resolution{Width: 7680, Height: 4320}

// Ingest holds limits on what cameras may send.
type Ingest struct {
	// MaxResolution is the largest picture a camera may declare (default 7680x4320, 8K
	// UHD; the larger side may be either way round). A stream beyond it is refused with
	// the reason before any decoder sizes buffers from it.
	MaxResolution Resolution `yaml:"max_resolution"`
}

// Metrics configures access to /metrics.
type Metrics struct {
	// TokenFile holds a bearer token Prometheus sends (its scrape config's
	// authorization.credentials_file points at the same file); empty = only an admin's
	// session may read /metrics.
	TokenFile string `yaml:"token_file"`
}

// Catalog says where the index of recorded footage (and accounts, sessions, the audit
// log, exports) lives.
type Catalog struct {
	// URL is a postgres:// (or postgresql://) URL of an existing PostgreSQL database, e.g.
	// postgres://townwatch@db.example.cz/townwatch?sslmode=verify-full. Empty (the
	// default): the SQLite file catalog.db under storage.path. The URL must not hold the
	// password: it goes in the user's ~/.pgpass (or the file PGPASSFILE names), which the
	// driver reads.
	URL string `yaml:"url"`
}

// CatalogFile is the SQLite catalog's name under storage.path.
const CatalogFile = "catalog.db"

// CatalogTarget returns what to open the catalog at: catalog.url, or the SQLite file
// under storage.path.
func (c *Config) CatalogTarget() string {
	if c.Catalog.URL != "" {
		return c.Catalog.URL
	}
	return filepath.Join(c.Storage.Path, CatalogFile)
}

// Audit configures the access audit log.
type Audit struct {
	// KeyFile is the HMAC key that chains the log's rows, made at first start (0600).
	// Default: audit.key under storage.path. Keep a copy elsewhere: without it the log
	// cannot be verified.
	KeyFile string `yaml:"key_file"`
	// Retention keeps rows this long; 0 (the default) keeps each row until the end of the
	// calendar year after its own year, the usual period for access records.
	Retention Duration `yaml:"retention"`
}

// AuditKeyFile returns audit.key_file or its default under storage.path.
func (c *Config) AuditKeyFile() string {
	if c.Audit.KeyFile != "" {
		return c.Audit.KeyFile
	}
	return filepath.Join(c.Storage.Path, "audit.key")
}

// Exports configures evidence exports.
type Exports struct {
	// SigningKeyFile is the Ed25519 private key that signs every evidence bundle's
	// manifest, made at the first export (0600). Default: export-signing.key under
	// storage.path. Its fingerprint (`townwatch key show`) is what the town publishes for
	// courts to check bundles against: keep a copy elsewhere, since a new key has a new
	// fingerprint.
	SigningKeyFile string `yaml:"signing_key_file"`
	// Retention is how long a finished bundle is kept under storage.path/exports for
	// download; the job's record (who, why, the bundle's digest) stays. 0: 30 days. It is
	// separate from the footage's retention: a bundle is a copy already handed out.
	Retention Duration `yaml:"retention"`
}

// DefaultExportRetention is exports.retention when absent.
const DefaultExportRetention = Duration(30 * day)

// ExportRetention returns exports.retention or its default.
func (c *Config) ExportRetention() time.Duration {
	if c.Exports.Retention > 0 {
		return c.Exports.Retention.Std()
	}
	return DefaultExportRetention.Std()
}

// SigningKeyFile returns exports.signing_key_file or its default under storage.path.
func (c *Config) SigningKeyFile() string {
	if c.Exports.SigningKeyFile != "" {
		return c.Exports.SigningKeyFile
	}
	return filepath.Join(c.Storage.Path, "export-signing.key")
}

// Storage says where recordings, snapshots and the catalog live.
type Storage struct {
	Path string `yaml:"path"` // default "./data"; relative to the working directory
	// Quota caps the bytes of all recordings together; 0 means no cap. Every camera is
	// entitled to an equal share of it: to stay under it, retention deletes the oldest
	// unlocked footage of the camera holding the most (see recorder.Retention).
	Quota ByteSize `yaml:"quota"`
	// MinFree is the free space retention keeps on the filesystem, whatever the quotas say,
	// so that the disk never fills (default 10%). It deletes the oldest footage across all
	// cameras: an emergency floor, not a share.
	MinFree FreeSpace `yaml:"min_free"`
	// Archive moves closed segments to an S3-compatible object store once they are old
	// enough (nil: footage stays on the local disk; see recorder/archive).
	Archive *Archive `yaml:"archive"`
}

// HTTP configures the viewer's listener.
type HTTP struct {
	Listen string `yaml:"listen"` // default "127.0.0.1:8080"; must be host:port (host may be empty for all interfaces)
	// TrustedProxies are addresses or CIDR prefixes of reverse proxies whose
	// X-Forwarded-For header is believed (for login throttling and the audit log).
	TrustedProxies []string `yaml:"trusted_proxies"`
	// TLS serves HTTPS; the files are reloaded when they change (certificate renewal).
	TLS *TLS `yaml:"tls"`
	// Hosts are further names browsers reach townwatch by (a DNS name, a proxy's name),
	// besides http.listen's address, localhost and this machine's names and addresses.
	// Requests for any other name are refused (DNS rebinding).
	Hosts []string `yaml:"hosts"`
	// ReadTimeout bounds reading one whole request, headers and body (default 15s, at
	// least 1s): a client sending a byte a second holds a connection no longer than this.
	// Every request of the API is small, so only a very slow link needs more.
	ReadTimeout Duration `yaml:"read_timeout"`
}

// TLS names a PEM certificate chain and its private key.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// TrustedProxyPrefixes parses http.trusted_proxies (Validate has checked them).
func (h HTTP) TrustedProxyPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range h.TrustedProxies {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// parsePrefix reads an address (a single host) or a CIDR prefix.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// WebRTC configures the live view's media transport. The ICE sockets bind to the host of
// http.listen, so a viewer bound to loopback never exposes media on other interfaces.
type WebRTC struct {
	// Listen is the IP address the media sockets bind to. Empty: http.listen's host, so a
	// viewer kept on loopback exposes no media port either. Set it when the API sits on
	// loopback behind a TLS proxy and remote browsers must still reach the media (e.g.
	// the server's LAN address, or 0.0.0.0 for every interface).
	Listen string `yaml:"listen"`
	// UDPPort is the one UDP port every viewer's media uses (ICE UDP mux), so a firewall
	// needs a single rule; 0 picks a free port (tests, side-by-side instances).
	UDPPort int `yaml:"udp_port"` // default 8189
	// TCPPort is the ICE-TCP fallback for networks that block UDP; 0 picks a free port.
	TCPPort int `yaml:"tcp_port"` // default 8189
	// Advertise lists the addresses put in the server's candidates instead of its own,
	// for a server behind 1:1 NAT (its public or VPN address); empty = its own addresses.
	Advertise []string `yaml:"advertise"`
	// ICEServers are STUN/TURN servers handed to the server's ICE agent. None by default:
	// townwatch never contacts a public server unless told to.
	ICEServers []ICEServer `yaml:"ice_servers"`
	// Caps on concurrent live sessions; over a cap a new viewer gets 429, and existing
	// ones are not disturbed. They bound the box's CPU and uplink.
	MaxViewers          int `yaml:"max_viewers"`            // default 64, all cameras together
	MaxViewersPerCamera int `yaml:"max_viewers_per_camera"` // default 16
}

// ICEServer is one STUN or TURN server. TURN credentials come from a file or an
// environment variable, never inline, like camera passwords.
type ICEServer struct {
	URLs           []string `yaml:"urls"`            // stun:host:port, turn:host:port?transport=udp, turns:...
	Username       string   `yaml:"username"`        // TURN only
	CredentialFile string   `yaml:"credential_file"` // TURN only; file content, trailing newline trimmed
	CredentialEnv  string   `yaml:"credential_env"`  // TURN only; environment variable name
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
	Live   Live    `yaml:"live"`
	// Node pins the camera to one recorder node (serve -node): only that node records
	// it. Empty: any node may, as the camera leases share cameras out.
	Node string `yaml:"node"`
	// Disabled keeps the camera configured but not running: no stream, no recording, no
	// live view. Its footage stays under its own retention and locks, and it is validated
	// like any other camera, so enabling it again cannot fail on a stale setting.
	Disabled bool `yaml:"disabled"`
}

// Live configures what the live view shows of a camera.
type Live struct {
	// Audio passes the camera's audio (Opus, G.711) to viewers. Off by default, for the
	// same legal reason as record.audio.
	Audio bool `yaml:"audio"`
}

// Stream is one RTSP stream of a camera and how to log in to it.
//
// The password comes from exactly one place: the URL (rtsp://user:pass@host/...),
// password_file or password_env; the latter two need a user name, from username or from the
// URL. Use DialURL to connect and RedactedURL for anything a person may see.
type Stream struct {
	URL            string   `yaml:"url"`             // rtsp:// or rtsps:// only; may carry user:pass
	Transport      string   `yaml:"transport"`       // "tcp" (default) | "auto" | "udp"
	Username       string   `yaml:"username"`        // optional; alternative to credentials in the URL
	PasswordFile   string   `yaml:"password_file"`   // optional, file content (trailing newline trimmed); relative to the working directory
	PasswordEnv    string   `yaml:"password_env"`    // optional, environment variable name
	StallTimeout   Duration `yaml:"stall_timeout"`   // default 10s; must be >= 1s
	TLSFingerprint string   `yaml:"tls_fingerprint"` // optional, rtsps only: hex SHA-256 of the camera's certificate (colons allowed), 64 hex digits; for self-signed cameras
	// MaxResolution is ingest.max_resolution, copied into every stream by Parse (not a
	// key of its own); zero means the default.
	MaxResolution Resolution `yaml:"-"`
	// AllowBasicWithoutTLS lets an rtsp:// camera that offers only Basic authentication
	// have the password, readable by anyone on the camera network. Off by default: such a
	// camera is refused with a reason until it is moved to rtsps:// or this is set.
	AllowBasicWithoutTLS bool `yaml:"allow_basic_without_tls"`
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
	// PreRoll is the footage before an event that motion mode keeps, in whole groups of
	// pictures: what led up to the incident matters as much as the incident.
	PreRoll Duration `yaml:"pre_roll"` // default 5s, motion mode only
	// PostRoll is how long motion mode keeps recording after an event ends.
	PostRoll Duration `yaml:"post_roll"` // default 10s, motion mode only
	// EventRetention keeps footage around motion events (pre-roll to post-roll) this long
	// when it is longer than Retention; 0 = events are kept like everything else.
	EventRetention Duration `yaml:"event_retention"`
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
	// Analyze says which frames are analysed: "auto" (default) analyses every frame of the
	// sub stream, or only keyframes when there is no sub stream (decoding a main stream
	// fully costs 10-20 times more); "keyframes" or "all" force one or the other.
	Analyze string `yaml:"analyze"`
	// FPS caps the analysed frames per second (default 5): enough to see a walking person
	// in several frames, a fraction of the decoding cost of a full-rate analysis.
	FPS float64 `yaml:"fps"`
	// Width is the analysis width in pixels (default 320), height keeping the aspect.
	Width int `yaml:"width"`
	// Sensitivity is 1-100 (default 50); higher finds fainter motion and more noise.
	Sensitivity int `yaml:"sensitivity"`
	// MinArea is the share of the frame, in percent, that must move (default 0.1: a distant
	// pedestrian, 2.5 % of the width and 10 % of the height, is 0.25 %).
	MinArea float64 `yaml:"min_area"`
	// Cooldown ends an event after this long without motion (default 10s).
	Cooldown Duration `yaml:"cooldown"`
	// Zones are where motion counts (default: the whole frame); events name the zones hit.
	Zones []Zone `yaml:"zones"`
	// Masks are where motion never counts: trees, a flag, a busy road outside the area.
	Masks []Zone `yaml:"masks"`
}

// Analyze values.
const (
	AnalyzeAuto      = "auto"
	AnalyzeKeyframes = "keyframes"
	AnalyzeAll       = "all"
)

// Zone is a named polygon over the picture, in coordinates normalised to 0-1 with the
// origin at the top left, so it survives a change of resolution.
type Zone struct {
	Name   string      `yaml:"name"`   // required and unique among zones; optional for masks
	Points [][]float64 `yaml:"points"` // at least 3 points [x, y]
}

// Defaults, applied by Parse to keys that are absent (or null). A key that is present with
// a zero value ("retention: 0") keeps it, so Validate reports it instead of a default
// silently replacing what the operator wrote.
const (
	DefaultStoragePath = "./data"
	DefaultListen      = "127.0.0.1:8080"
	// TCP by default: RTP over UDP from the camera network can be spoofed by anyone on
	// it, and spoofed packets would become frames of recorded evidence.
	DefaultTransport    = TransportTCP
	DefaultStallTimeout = Duration(10 * time.Second)
	DefaultRecordMode   = RecordContinuous
	DefaultRetention    = Duration(7 * day)
	DefaultSegment      = Duration(60 * time.Second)
	DefaultPreRoll      = Duration(5 * time.Second)
	DefaultPostRoll     = Duration(10 * time.Second)

	DefaultAnalyze     = AnalyzeAuto
	DefaultMotionFPS   = 5.0
	DefaultMotionWidth = 320
	DefaultSensitivity = 50
	DefaultMinArea     = 0.1
	DefaultCooldown    = Duration(10 * time.Second)

	DefaultUDPPort             = 8189
	DefaultTCPPort             = 8189
	DefaultMaxViewers          = 64
	DefaultMaxViewersPerCamera = 16
)

// DefaultMinFree is storage.min_free's default: a tenth of the filesystem.
var DefaultMinFree = FreeSpace{Percent: 10}

// The setDefaults methods fill a value before it is decoded, so that decoding overwrites
// only the keys the file has. The decoder calls them for every Camera and Stream it creates.

func (c *Config) setDefaults() {
	c.Storage.Path = DefaultStoragePath
	c.HTTP.Listen = DefaultListen
	c.Storage.MinFree = DefaultMinFree
	c.Ingest.MaxResolution = DefaultMaxResolution
	c.WebRTC = WebRTC{
		UDPPort:             DefaultUDPPort,
		TCPPort:             DefaultTCPPort,
		MaxViewers:          DefaultMaxViewers,
		MaxViewersPerCamera: DefaultMaxViewersPerCamera,
	}
}

func (c *Camera) setDefaults() {
	c.Main.setDefaults()
	c.Record.Mode = DefaultRecordMode
	c.Record.Retention = DefaultRetention
	c.Record.Segment = DefaultSegment
	c.Record.PreRoll = DefaultPreRoll
	c.Record.PostRoll = DefaultPostRoll
	c.Motion = Motion{
		Analyze:     DefaultAnalyze,
		FPS:         DefaultMotionFPS,
		Width:       DefaultMotionWidth,
		Sensitivity: DefaultSensitivity,
		MinArea:     DefaultMinArea,
		Cooldown:    DefaultCooldown,
	}
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
	c.finish()
	if ps := c.problems(); len(ps) > 0 {
		return nil, &sourceError{source: source, err: &ValidationError{Problems: ps}}
	}
	return c, nil
}

// finish fills what depends on more than one key: a camera's name defaults to its id, and
// every stream carries ingest.max_resolution.
func (c *Config) finish() {
	for i := range c.Cameras {
		if c.Cameras[i].Name == "" {
			c.Cameras[i].Name = c.Cameras[i].ID
		}
		c.Cameras[i].Main.MaxResolution = c.Ingest.MaxResolution
		if c.Cameras[i].Sub != nil {
			c.Cameras[i].Sub.MaxResolution = c.Ingest.MaxResolution
		}
	}
}
