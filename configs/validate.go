package configs

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Problem is one thing wrong with a config, at a YAML path such as
// "cameras[stribro-namesti].main.url".
type Problem struct {
	Path, Message string
}

// String returns "path: message".
func (p Problem) String() string { return p.Path + ": " + p.Message }

// ValidationError lists every problem Validate found, in file order.
type ValidationError struct {
	Problems []Problem
}

// Error returns one problem per line.
func (e *ValidationError) Error() string { return problemLines("", e.Problems) }

// sourceError is the *ValidationError that Parse returns, with every line prefixed by the
// source ("townwatch.yaml: cameras[x].main.url: ...") like decoding errors are.
type sourceError struct {
	source string
	err    *ValidationError
}

func (e *sourceError) Error() string { return problemLines(e.source+": ", e.err.Problems) }
func (e *sourceError) Unwrap() error { return e.err }

func problemLines(prefix string, ps []Problem) string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = prefix + p.String()
	}
	return strings.Join(lines, "\n")
}

// Validate checks c and returns nil or a *ValidationError with every problem at once, so an
// operator fixes a file in one round. It does not apply defaults: a Config built in Go must
// set every field (or come from Parse).
//
// Validate reads nothing secret: for password_file it only checks that the file can be
// opened and is not empty; for password_env, that the variable is set and not empty. The
// passwords themselves are read by Stream.DialURL.
func (c *Config) Validate() error {
	if ps := c.problems(); len(ps) > 0 {
		return &ValidationError{Problems: ps}
	}
	return nil
}

func (c *Config) problems() []Problem {
	var v validator
	if c.Storage.Path == "" {
		v.add("storage.path", "must not be empty")
	}
	if c.Storage.Quota < 0 {
		v.add("storage.quota", "must not be negative")
	}
	if c.Storage.MinFree.Percent < 0 || c.Storage.MinFree.Percent >= 100 || c.Storage.MinFree.Bytes < 0 {
		v.add("storage.min_free", "must be a size or a share below 100%%")
	}
	if c.Storage.Archive != nil {
		c.Storage.Archive.check(&v)
	}
	if c.Catalog.URL != "" {
		if err := checkCatalogURL(c.Catalog.URL); err != nil {
			v.add("catalog.url", "%v", err)
		}
	}
	if err := checkListen(c.HTTP.Listen); err != nil {
		v.add("http.listen", "%v", err)
	}
	if c.HTTP.ReadTimeout != 0 && c.HTTP.ReadTimeout.Std() < time.Second {
		v.add("http.read_timeout", "%s is too short (at least 1s: a request must have time to arrive)", c.HTTP.ReadTimeout.Std())
	}
	v.access(c)
	v.webrtc(&c.WebRTC)
	v.cameras(c.Cameras)
	v.nodes(c)
	return v.problems
}

// access checks the keys that guard the HTTP surface and the audit log.
func (v *validator) access(c *Config) {
	for i, s := range c.HTTP.TrustedProxies {
		if _, err := parsePrefix(s); err != nil {
			v.add(fmt.Sprintf("http.trusted_proxies[%d]", i), "%q is not an IP address or CIDR prefix (e.g. 127.0.0.1 or 10.0.0.0/24)", s)
		}
	}
	for i, h := range c.HTTP.Hosts {
		if !validHostName(h) {
			v.add(fmt.Sprintf("http.hosts[%d]", i), "%q is not a host name or IP address (no scheme, port or path, e.g. kamery.example.cz)", h)
		}
	}
	if t := c.HTTP.TLS; t != nil {
		for _, f := range []struct{ key, path string }{{"cert_file", t.CertFile}, {"key_file", t.KeyFile}} {
			if f.path == "" {
				v.add("http.tls."+f.key, "required when http.tls is set")
			} else if err := checkReadable(f.path); err != nil {
				v.add("http.tls."+f.key, "%v", err)
			}
		}
	}
	if c.Metrics.TokenFile != "" {
		if err := checkPasswordFile(c.Metrics.TokenFile); err != nil {
			v.add("metrics.token_file", "%v", err)
		}
	}
	// One file cannot hold both keys: whichever is made second would find the other's and
	// refuse it as malformed.
	if filepath.Clean(c.SigningKeyFile()) == filepath.Clean(c.AuditKeyFile()) {
		v.add("exports.signing_key_file", "must not be the audit key file (%s)", c.AuditKeyFile())
	}
	if c.Exports.Retention < 0 {
		v.add("exports.retention", "must not be negative (0 keeps bundles 30 days)")
	}
	if c.Audit.Retention < 0 {
		v.add("audit.retention", "must not be negative (0 keeps rows to the end of the year after their own)")
	} else if c.Audit.Retention > 0 && c.Audit.Retention.Std() < 24*time.Hour {
		v.add("audit.retention", "must be at least 1d: the access log must outlive the footage it is about")
	}
}

// validHostName accepts an IP address or a DNS name: labels of letters, digits and
// hyphens, separated by dots.
func validHostName(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// checkReadable checks that a file exists and can be opened.
func checkReadable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}

type validator struct {
	problems []Problem
}

func (v *validator) add(path, format string, args ...any) {
	v.problems = append(v.problems, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// cameraID is the id syntax: it is used in file paths, URLs and metric labels, so it is
// kept to what is safe in all of them.
var cameraID = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$`)

func (v *validator) cameras(cams []Camera) {
	count := make(map[string]int, len(cams))
	first := make(map[string]int, len(cams))
	for i, cam := range cams {
		if count[cam.ID] == 0 {
			first[cam.ID] = i
		}
		count[cam.ID]++
	}
	for i, cam := range cams {
		// A camera is named by its id when that names it unambiguously, else by its index.
		path := fmt.Sprintf("cameras[%d]", i)
		if cameraID.MatchString(cam.ID) && count[cam.ID] == 1 {
			path = "cameras[" + cam.ID + "]"
		}
		switch {
		case cam.ID == "":
			v.add(path+".id", "required")
		case !cameraID.MatchString(cam.ID):
			v.add(path+".id", "invalid id %q (want 1-64 lowercase letters, digits and hyphens, not starting or ending with a hyphen)", cam.ID)
		}
		if cam.ID != "" && first[cam.ID] != i {
			v.add(path+".id", "duplicate id %q (also cameras[%d])", cam.ID, first[cam.ID])
		}
		v.stream(path+".main", &cam.Main)
		if cam.Sub != nil {
			v.stream(path+".sub", cam.Sub)
		}
		v.record(path, cam)
		v.motion(path+".motion", &cam.Motion)
	}
}

func (v *validator) stream(path string, s *Stream) {
	u := v.streamURL(path+".url", s.URL)
	for _, p := range s.credentialProblems(u) {
		v.add(path+"."+p.Path, "%s", p.Message)
	}
	if s.PasswordFile != "" {
		if err := checkPasswordFile(s.PasswordFile); err != nil {
			v.add(path+".password_file", "%v", err)
		}
	}
	if s.PasswordEnv != "" {
		if _, err := passwordFromEnv(s.PasswordEnv); err != nil {
			v.add(path+".password_env", "%v", err)
		}
	}
	v.enum(path+".transport", s.Transport, TransportAuto, TransportTCP, TransportUDP)
	if s.StallTimeout < Duration(time.Second) {
		v.add(path+".stall_timeout", "must be at least 1s")
	}
	if s.TLSFingerprint != "" {
		if u != nil && u.Scheme == "rtsp" {
			v.add(path+".tls_fingerprint", "only allowed with rtsps:// URLs")
		}
		if b, err := hex.DecodeString(strings.ReplaceAll(s.TLSFingerprint, ":", "")); err != nil || len(b) != 32 {
			v.add(path+".tls_fingerprint", "want 64 hex digits (the certificate's SHA-256), colons allowed")
		}
	}
	if s.AllowBasicWithoutTLS && u != nil && u.Scheme == "rtsps" {
		v.add(path+".allow_basic_without_tls", "only meaningful with rtsp:// URLs (rtsps:// protects Basic credentials)")
	}
}

// streamURL checks a stream URL and returns it parsed, or nil if it is missing or does not
// parse, in which case checks that need it are skipped.
func (v *validator) streamURL(path, raw string) *url.URL {
	if raw == "" {
		v.add(path, "required")
		return nil
	}
	u, err := parseURL(raw)
	if err != nil {
		v.add(path, "%v", err)
		return nil
	}
	if u.Scheme != "rtsp" && u.Scheme != "rtsps" {
		v.add(path, "scheme must be rtsp or rtsps")
	}
	switch {
	case u.Hostname() == "":
		v.add(path, "missing host (want rtsp://host[:port]/path)")
	case u.Port() != "" && !validPort(u.Port()):
		v.add(path, "invalid port %q (want 1-65535)", u.Port())
	}
	return u
}

func (v *validator) record(path string, cam Camera) {
	v.enum(path+".record.mode", cam.Record.Mode, RecordContinuous, RecordMotion, RecordOff)
	if cam.Record.Mode == RecordMotion && !cam.Motion.Enabled {
		// Without a detector there are no events, so this camera would record nothing.
		v.add(path+".record.mode", "%q needs motion.enabled: true", RecordMotion)
	}
	if cam.Record.Retention <= 0 {
		v.add(path+".record.retention", "must be > 0")
	}
	if cam.Record.Segment < Duration(minSegment) || cam.Record.Segment > Duration(maxSegment) {
		v.add(path+".record.segment", "must be between %s and %s", Duration(minSegment), Duration(maxSegment))
	}
	if cam.Record.Quota < 0 {
		v.add(path+".record.quota", "must not be negative")
	}
	if cam.Record.PreRoll < 0 || cam.Record.PreRoll > Duration(maxRoll) {
		v.add(path+".record.pre_roll", "must be between 0s and %s", Duration(maxRoll))
	}
	if cam.Record.PostRoll < 0 || cam.Record.PostRoll > Duration(maxRoll) {
		v.add(path+".record.post_roll", "must be between 0s and %s", Duration(maxRoll))
	}
	if cam.Record.EventRetention < 0 {
		v.add(path+".record.event_retention", "must not be negative")
	}
}

// maxRoll bounds pre_roll and post_roll. The pre-roll is held in memory per camera (a
// 4 Mbit/s stream needs 30 MB a minute), and a roll longer than a minute is continuous
// recording in disguise.
const maxRoll = time.Minute

func (v *validator) motion(path string, m *Motion) {
	v.enum(path+".analyze", m.Analyze, AnalyzeAuto, AnalyzeKeyframes, AnalyzeAll)
	if m.FPS <= 0 || m.FPS > maxMotionFPS {
		v.add(path+".fps", "must be above 0 and at most %d", maxMotionFPS)
	}
	if m.Width < minMotionWidth || m.Width > maxMotionWidth {
		v.add(path+".width", "must be between %d and %d", minMotionWidth, maxMotionWidth)
	}
	if m.Sensitivity < 1 || m.Sensitivity > 100 {
		v.add(path+".sensitivity", "must be between 1 and 100")
	}
	if m.MinArea < 0 || m.MinArea > 100 {
		v.add(path+".min_area", "must be a percentage between 0 and 100")
	}
	if m.Cooldown < Duration(time.Second) {
		v.add(path+".cooldown", "must be at least 1s")
	}
	if len(m.Zones) > MaxMotionZones {
		v.add(path+".zones", "%d zones, at most %d", len(m.Zones), MaxMotionZones)
	}
	v.zones(path+".zones", m.Zones, true)
	v.zones(path+".masks", m.Masks, false)
}

// Motion analysis bounds: more than 30 analysed frames a second or wider than 1920 px
// costs CPU without finding more; narrower than 64 px no longer shows a person.
const (
	maxMotionFPS   = 30
	minMotionWidth = 64
	maxMotionWidth = 1920
)

// MaxMotionZones bounds a camera's motion zones, so that the zones a frame hits fit one
// 64-bit mask in the analyser. The server checks it here, where every configuration
// passes: the analyser runs in the motion worker, whose refusal would leave the camera
// without motion detection (and a motion-mode camera without recording).
const MaxMotionZones = 64

// zones checks polygons; zones need unique names because events report them by name.
func (v *validator) zones(path string, zs []Zone, named bool) {
	seen := make(map[string]int, len(zs))
	for i, z := range zs {
		zp := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case named && z.Name == "":
			v.add(zp+".name", "required (events name the zones they hit)")
		case z.Name != "":
			if first, dup := seen[z.Name]; dup {
				v.add(zp+".name", "duplicate name %q (also %s[%d])", z.Name, path, first)
			} else {
				seen[z.Name] = i
			}
		}
		if len(z.Points) < 3 {
			v.add(zp+".points", "want at least 3 points [x, y], got %d", len(z.Points))
		}
		for j, pt := range z.Points {
			switch {
			case len(pt) != 2:
				v.add(fmt.Sprintf("%s.points[%d]", zp, j), "want [x, y], got %d numbers", len(pt))
			case pt[0] < 0 || pt[0] > 1 || pt[1] < 0 || pt[1] > 1:
				v.add(fmt.Sprintf("%s.points[%d]", zp, j), "coordinates must be between 0 and 1 (a share of the width and height), got [%g, %g]", pt[0], pt[1])
			}
		}
	}
}

func (v *validator) webrtc(w *WebRTC) {
	if w.Listen != "" && net.ParseIP(w.Listen) == nil {
		v.add("webrtc.listen", "%q is not an IP address (the media sockets' address; the ports are udp_port and tcp_port)", w.Listen)
	}
	if w.UDPPort < 0 || w.UDPPort > 65535 {
		v.add("webrtc.udp_port", "invalid port %d (want 0-65535)", w.UDPPort)
	}
	if w.TCPPort < 0 || w.TCPPort > 65535 {
		v.add("webrtc.tcp_port", "invalid port %d (want 0-65535)", w.TCPPort)
	}
	for i, a := range w.Advertise {
		if net.ParseIP(a) == nil {
			v.add(fmt.Sprintf("webrtc.advertise[%d]", i), "%q is not an IP address", a)
		}
	}
	for i, s := range w.ICEServers {
		v.iceServer(fmt.Sprintf("webrtc.ice_servers[%d]", i), s)
	}
	if w.MaxViewers < 1 {
		v.add("webrtc.max_viewers", "must be at least 1")
	}
	if w.MaxViewersPerCamera < 1 {
		v.add("webrtc.max_viewers_per_camera", "must be at least 1")
	}
}

func (v *validator) iceServer(path string, s ICEServer) {
	if len(s.URLs) == 0 {
		v.add(path+".urls", "required (e.g. stun:stun.example.org:3478)")
	}
	turn := false
	for i, raw := range s.URLs {
		scheme, _, ok := strings.Cut(raw, ":")
		switch {
		case !ok || (scheme != "stun" && scheme != "stuns" && scheme != "turn" && scheme != "turns"):
			v.add(fmt.Sprintf("%s.urls[%d]", path, i), "want stun:, stuns:, turn: or turns: followed by host[:port]")
		case scheme == "turn" || scheme == "turns":
			turn = true
		}
	}
	hasCredential := s.CredentialFile != "" || s.CredentialEnv != ""
	switch {
	case s.CredentialFile != "" && s.CredentialEnv != "":
		v.add(path+".credential_env", "set credential_file or credential_env, not both")
	case turn && (s.Username == "" || !hasCredential):
		v.add(path, "a TURN server needs username and credential_file or credential_env")
	case !turn && (s.Username != "" || hasCredential):
		v.add(path, "STUN servers take no username or credential")
	}
	if s.CredentialFile != "" {
		if err := checkPasswordFile(s.CredentialFile); err != nil {
			v.add(path+".credential_file", "%v", err)
		}
	}
	if s.CredentialEnv != "" {
		if _, err := passwordFromEnv(s.CredentialEnv); err != nil {
			v.add(path+".credential_env", "%v", err)
		}
	}
}

// Segment length bounds: shorter files multiply catalog rows and file-system overhead for
// no gain (fragments already bound what a crash loses); longer ones make retention coarse.
const (
	minSegment = 10 * time.Second
	maxSegment = time.Hour
)

// enum checks that value is one of allowed.
func (v *validator) enum(path, value string, allowed ...string) {
	if slices.Contains(allowed, value) {
		return
	}
	list := strings.Join(allowed[:len(allowed)-1], ", ") + " or " + allowed[len(allowed)-1]
	v.add(path, "unknown value %q (want %s)", value, list)
}

// checkListen checks a listen address: host:port with a numeric port. The host may be
// empty (all interfaces) or a name. Port 0 lets the system pick a free port (townwatch
// prints the address it got), which tests and side-by-side instances rely on.
func checkListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			err = errors.New(ae.Err) // without the address, which the path already points at
		}
		return fmt.Errorf("%v (want host:port such as 127.0.0.1:8080)", err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil { // digits only: no sign, no spaces
		return fmt.Errorf("invalid port %q (want 0-65535)", port)
	}
	return nil
}

func validPort(p string) bool {
	n, err := strconv.ParseUint(p, 10, 16) // digits only: no sign, no spaces
	return err == nil && n >= 1
}

// checkCatalogURL accepts a PostgreSQL URL naming a host and a database. Its errors never
// repeat the URL, which may hold a password by mistake.
func checkCatalogURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("is not a valid URL (want postgres://user@host:port/database)")
	}
	switch {
	case u.Scheme != "postgres" && u.Scheme != "postgresql":
		return fmt.Errorf("scheme %q is not postgres (want postgres://user@host:port/database; leave catalog.url empty for the SQLite file under storage.path)", u.Scheme)
	case u.Host == "":
		return errors.New("names no host (want postgres://user@host:port/database)")
	case strings.Trim(u.Path, "/") == "":
		return errors.New("names no database (want postgres://user@host:port/database)")
	}
	if _, ok := u.User.Password(); ok || u.Query().Has("password") {
		return errors.New("must not hold the password (put it in ~/.pgpass or the file PGPASSFILE names)")
	}
	return nil
}

// Validate checks one stream on its own, as Config.Validate checks each camera's: for a
// stream that is not in a file yet (a camera being probed before it is saved). Problems
// are named by the stream's own keys ("url", "transport", "tls_fingerprint").
func (s Stream) Validate() error {
	var v validator
	v.stream("", &s)
	if len(v.problems) == 0 {
		return nil
	}
	for i := range v.problems {
		v.problems[i].Path = strings.TrimPrefix(v.problems[i].Path, ".")
	}
	return &ValidationError{Problems: v.problems}
}
