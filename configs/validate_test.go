package configs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// validationFixture makes what the validation cases refer to: files under $DIR and
// environment variables TOWNWATCH_TEST_*. It returns a function that expands $DIR.
func validationFixture(t *testing.T) func(string) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte("file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TOWNWATCH_TEST_PW", "env-secret")
	t.Setenv("TOWNWATCH_TEST_EMPTY", "")
	return func(s string) string { return strings.ReplaceAll(s, "$DIR", dir) }
}

// problems parses src and returns its validation problems as "path: message" lines.
func problems(t *testing.T, src string) []string {
	t.Helper()
	_, err := Parse([]byte(src), "t.yaml")
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("not a validation error: %v", err)
	}
	var lines []string
	for _, p := range ve.Problems {
		lines = append(lines, p.String())
	}
	return lines
}

// camera is a config with one camera "cam" whose main stream has the given extra lines.
func camera(mainURL string, extra ...string) string {
	return "cameras:\n  - id: cam\n    main:\n      url: " + mainURL + "\n" + indent(6, extra)
}

func indent(n int, lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(strings.Repeat(" ", n) + l + "\n")
	}
	return b.String()
}

func TestValidate(t *testing.T) {
	expand := validationFixture(t)
	tests := []struct {
		name string
		src  string
		want []string // nil: valid
	}{
		// storage, http
		{"minimal", camera("rtsp://10.0.0.21/"), nil},
		{"empty storage path", "storage: {path: ''}\n", []string{"storage.path: must not be empty"}},
		{"listen all interfaces", "http: {listen: ':8080'}\n", nil},
		{"listen IPv6", "http: {listen: '[::1]:8080'}\n", nil},
		{"listen host name", "http: {listen: 'localhost:8080'}\n", nil},
		{"listen without port", "http: {listen: '8080'}\n", []string{"http.listen: missing port in address (want host:port such as 127.0.0.1:8080)"}},
		{"listen too many colons", "http: {listen: '::1:8080'}\n", []string{"http.listen: too many colons in address (want host:port such as 127.0.0.1:8080)"}},
		{"listen empty", "http: {listen: ''}\n", []string{"http.listen: missing port in address (want host:port such as 127.0.0.1:8080)"}},
		{"listen named port", "http: {listen: '127.0.0.1:http'}\n", []string{`http.listen: invalid port "http" (want 0-65535)`}},
		{"listen port 0 picks a free port", "http: {listen: '127.0.0.1:0'}\n", nil},
		{"listen port too big", "http: {listen: '127.0.0.1:65536'}\n", []string{`http.listen: invalid port "65536" (want 0-65535)`}},
		{"read timeout", "http: {read_timeout: 5s}\n", nil},
		{"read timeout too short", "http: {read_timeout: 500ms}\n", []string{"http.read_timeout: 500ms is too short (at least 1s: a request must have time to arrive)"}},
		{"read timeout negative", "http: {read_timeout: -5s}\n", []string{"http.read_timeout: -5s is too short (at least 1s: a request must have time to arrive)"}},
		{"catalog url", "catalog: {url: 'postgres://townwatch@db.example.cz:5432/townwatch?sslmode=verify-full'}\n", nil},
		{"catalog url postgresql", "catalog: {url: 'postgresql://townwatch@10.0.0.5/tw'}\n", nil},
		{"catalog url not postgres", "catalog: {url: 'mysql://db/tw'}\n", []string{
			`catalog.url: scheme "mysql" is not postgres (want postgres://user@host:port/database; leave catalog.url empty for the SQLite file under storage.path)`}},
		{"catalog url a file", "catalog: {url: /srv/tw/catalog.db}\n", []string{
			`catalog.url: scheme "" is not postgres (want postgres://user@host:port/database; leave catalog.url empty for the SQLite file under storage.path)`}},
		{"catalog url without database", "catalog: {url: 'postgres://tw@db/'}\n", []string{
			"catalog.url: names no database (want postgres://user@host:port/database)"}},
		{"catalog url without host", "catalog: {url: 'postgres:///tw'}\n", []string{
			"catalog.url: names no host (want postgres://user@host:port/database)"}},
		{"catalog url with password", "catalog: {url: 'postgres://tw:hunter2@db/tw'}\n", []string{
			"catalog.url: must not hold the password (put it in ~/.pgpass or the file PGPASSFILE names)"}},
		{"catalog url with password parameter", "catalog: {url: 'postgres://tw@db/tw?password=hunter2'}\n", []string{
			"catalog.url: must not hold the password (put it in ~/.pgpass or the file PGPASSFILE names)"}},
		{"catalog url unparsable", "catalog: {url: 'postgres://tw:hunter2@db:port/tw'}\n", []string{
			"catalog.url: is not a valid URL (want postgres://user@host:port/database)"}},
		{"max resolution", "ingest: {max_resolution: 3840x2160}\n", nil},
		{"signing key file", "exports: {signing_key_file: /var/lib/townwatch/export-signing.key}\n", nil},
		{"signing key is the audit key", "storage: {path: /srv/tw}\nexports: {signing_key_file: /srv/tw/./audit.key}\n", []string{
			"exports.signing_key_file: must not be the audit key file (/srv/tw/audit.key)"}},
		{"webrtc listen", "webrtc: {listen: 192.168.10.5}\n", nil},
		{"webrtc listen with port", "webrtc: {listen: '192.168.10.5:8189'}\n", []string{
			`webrtc.listen: "192.168.10.5:8189" is not an IP address (the media sockets' address; the ports are udp_port and tcp_port)`}},
		{"hosts", "http: {hosts: [kamery.stribro.cz, 192.168.10.5, 'fd00::5', mp-stribro]}\n", nil},
		{"hosts with port, scheme or bad label", "http: {hosts: ['kamery.cz:8080', 'https://kamery.cz', '-x.cz', '']}\n", []string{
			`http.hosts[0]: "kamery.cz:8080" is not a host name or IP address (no scheme, port or path, e.g. kamery.example.cz)`,
			`http.hosts[1]: "https://kamery.cz" is not a host name or IP address (no scheme, port or path, e.g. kamery.example.cz)`,
			`http.hosts[2]: "-x.cz" is not a host name or IP address (no scheme, port or path, e.g. kamery.example.cz)`,
			`http.hosts[3]: "" is not a host name or IP address (no scheme, port or path, e.g. kamery.example.cz)`}},

		// ids
		{"id missing", "cameras:\n  - main: {url: rtsp://h/}\n", []string{"cameras[0].id: required"}},
		{"id 64 characters", "cameras:\n  - id: " + strings.Repeat("a", 64) + "\n    main: {url: rtsp://h/}\n", nil},
		{"id 65 characters", "cameras:\n  - id: " + strings.Repeat("a", 65) + "\n    main: {url: rtsp://h/}\n",
			[]string{`cameras[0].id: invalid id "` + strings.Repeat("a", 65) + `" (want 1-64 lowercase letters, digits and hyphens, not starting or ending with a hyphen)`}},
		{"id single character", "cameras:\n  - id: '7'\n    main: {url: rtsp://h/}\n", nil},
		{"id numeric", "cameras:\n  - id: 101\n    main: {url: rtsp://h/}\n", nil},
		{"id uppercase", "cameras:\n  - id: Stribro\n    main: {url: rtsp://h/}\n",
			[]string{`cameras[0].id: invalid id "Stribro" (want 1-64 lowercase letters, digits and hyphens, not starting or ending with a hyphen)`}},
		{"id leading hyphen", "cameras:\n  - id: -cam\n    main: {url: rtsp://h/}\n",
			[]string{`cameras[0].id: invalid id "-cam" (want 1-64 lowercase letters, digits and hyphens, not starting or ending with a hyphen)`}},
		{"id trailing hyphen", "cameras:\n  - id: cam-\n    main: {url: rtsp://h/}\n",
			[]string{`cameras[0].id: invalid id "cam-" (want 1-64 lowercase letters, digits and hyphens, not starting or ending with a hyphen)`}},
		{"id with diacritics", "cameras:\n  - id: stříbro\n    main: {url: rtsp://h/}\n",
			[]string{`cameras[0].id: invalid id "stříbro" (want 1-64 lowercase letters, digits and hyphens, not starting or ending with a hyphen)`}},
		{"duplicate id", `
cameras:
  - id: stribro-namesti
    main: {url: rtsp://10.0.0.21/}
  - id: stribro-most
    main: {url: rtsp://10.0.0.22/}
  - id: stribro-namesti
    main: {url: rtsp://10.0.0.23/, transport: quic}
`, []string{
			`cameras[2].id: duplicate id "stribro-namesti" (also cameras[0])`,
			`cameras[2].main.transport: unknown value "quic" (want auto, tcp or udp)`,
		}},

		// url
		{"main missing", "cameras:\n  - id: cam\n", []string{"cameras[cam].main.url: required"}},
		{"url empty", camera("''"), []string{"cameras[cam].main.url: required"}},
		{"rtsps", camera("rtsps://10.0.0.21:322/"), nil},
		{"scheme in capitals", camera("RTSP://10.0.0.21/"), nil},
		{"http scheme", camera("http://10.0.0.21/"), []string{"cameras[cam].main.url: scheme must be rtsp or rtsps"}},
		{"no scheme", camera("10.0.0.21/live"), []string{
			"cameras[cam].main.url: scheme must be rtsp or rtsps",
			"cameras[cam].main.url: missing host (want rtsp://host[:port]/path)",
		}},
		{"no host", camera("rtsp:///live"), []string{"cameras[cam].main.url: missing host (want rtsp://host[:port]/path)"}},
		{"port only", camera("rtsp://:554/live"), []string{"cameras[cam].main.url: missing host (want rtsp://host[:port]/path)"}},
		{"opaque", camera("'rtsp:10.0.0.21'"), []string{"cameras[cam].main.url: missing host (want rtsp://host[:port]/path)"}},
		{"port out of range", camera("rtsp://10.0.0.21:70000/"), []string{`cameras[cam].main.url: invalid port "70000" (want 1-65535)`}},
		{"port not a number", camera("rtsp://10.0.0.21:abc/"), []string{`cameras[cam].main.url: cannot parse URL: invalid port ":abc" after host`}},
		{"bad escape in password", camera("rtsp://admin:pa%zzword@10.0.0.21/"), []string{"cameras[cam].main.url: cannot parse URL: invalid percent-escape (write % as %25)"}},
		{"space in host", camera("'rtsp://10.0.0 .21/'"), []string{`cameras[cam].main.url: cannot parse URL: invalid character " " in host name`}},

		// credentials
		{"password in url", camera("rtsp://admin:pw@h/"), nil},
		{"username and password_file", camera("rtsp://h/", "username: admin", "password_file: $DIR/pw"), nil},
		{"username and password_env", camera("rtsp://h/", "username: admin", "password_env: TOWNWATCH_TEST_PW"), nil},
		{"url user and password_env", camera("rtsp://admin@h/", "password_env: TOWNWATCH_TEST_PW"), nil},
		{"username alone", camera("rtsp://h/", "username: admin"), nil},
		{"password in url and password_file", camera("rtsp://admin:pw@h/", "password_file: $DIR/pw"),
			[]string{"cameras[cam].main.password_file: conflicts with the password in url (use one)"}},
		{"password in url and password_env", camera("rtsp://admin:pw@h/", "password_env: TOWNWATCH_TEST_PW"),
			[]string{"cameras[cam].main.password_env: conflicts with the password in url (use one)"}},
		{"password_file and password_env", camera("rtsp://h/", "username: admin", "password_file: $DIR/pw", "password_env: TOWNWATCH_TEST_PW"),
			[]string{"cameras[cam].main.password_env: conflicts with password_file (use one)"}},
		{"password_file without user", camera("rtsp://h/", "password_file: $DIR/pw"),
			[]string{"cameras[cam].main.password_file: needs a user name (set username)"}},
		{"password_env without user", camera("rtsp://h/", "password_env: TOWNWATCH_TEST_PW"),
			[]string{"cameras[cam].main.password_env: needs a user name (set username)"}},
		{"username and user in url", camera("rtsp://admin@h/", "username: admin"),
			[]string{"cameras[cam].main.username: conflicts with the user name in url (use one)"}},
		{"password in url without user", camera("rtsp://:pw@h/"),
			[]string{"cameras[cam].main.url: has a password but no user name"}},
		{"password_file missing", camera("rtsp://h/", "username: admin", "password_file: $DIR/nope"),
			[]string{"cameras[cam].main.password_file: open $DIR/nope: no such file or directory"}},
		{"password_file directory", camera("rtsp://h/", "username: admin", "password_file: $DIR"),
			[]string{"cameras[cam].main.password_file: $DIR is a directory"}},
		{"password_file empty", camera("rtsp://h/", "username: admin", "password_file: $DIR/empty"),
			[]string{"cameras[cam].main.password_file: $DIR/empty is empty"}},
		{"password_env not set", camera("rtsp://h/", "username: admin", "password_env: TOWNWATCH_TEST_UNSET"),
			[]string{"cameras[cam].main.password_env: environment variable TOWNWATCH_TEST_UNSET is not set"}},
		{"password_env empty", camera("rtsp://h/", "username: admin", "password_env: TOWNWATCH_TEST_EMPTY"),
			[]string{"cameras[cam].main.password_env: environment variable TOWNWATCH_TEST_EMPTY is empty"}},
		// Without a usable URL the checks that need it are skipped, the others still run.
		{"credentials with a broken url", camera("'rtsp://h:x/'", "password_file: $DIR/nope", "password_env: TOWNWATCH_TEST_PW"), []string{
			`cameras[cam].main.url: cannot parse URL: invalid port ":x" after host`,
			"cameras[cam].main.password_env: conflicts with password_file (use one)",
			"cameras[cam].main.password_file: open $DIR/nope: no such file or directory",
		}},

		// transport, stall_timeout, tls_fingerprint
		{"transport tcp", camera("rtsp://h/", "transport: tcp"), nil},
		{"transport udp", camera("rtsp://h/", "transport: udp"), nil},
		{"transport unknown", camera("rtsp://h/", "transport: quic"),
			[]string{`cameras[cam].main.transport: unknown value "quic" (want auto, tcp or udp)`}},
		{"transport in capitals", camera("rtsp://h/", "transport: TCP"),
			[]string{`cameras[cam].main.transport: unknown value "TCP" (want auto, tcp or udp)`}},
		{"transport empty", camera("rtsp://h/", "transport: ''"),
			[]string{`cameras[cam].main.transport: unknown value "" (want auto, tcp or udp)`}},
		{"stall_timeout 1s", camera("rtsp://h/", "stall_timeout: 1s"), nil},
		{"stall_timeout too short", camera("rtsp://h/", "stall_timeout: 999ms"), []string{"cameras[cam].main.stall_timeout: must be at least 1s"}},
		{"stall_timeout zero", camera("rtsp://h/", "stall_timeout: 0"), []string{"cameras[cam].main.stall_timeout: must be at least 1s"}},
		{"stall_timeout negative", camera("rtsp://h/", "stall_timeout: -10s"), []string{"cameras[cam].main.stall_timeout: must be at least 1s"}},
		{"basic without TLS", camera("rtsp://h/", "allow_basic_without_tls: true"), nil},
		{"basic without TLS on rtsps", camera("rtsps://h/", "allow_basic_without_tls: true"),
			[]string{"cameras[cam].main.allow_basic_without_tls: only meaningful with rtsp:// URLs (rtsps:// protects Basic credentials)"}},
		{"fingerprint", camera("rtsps://h/", "tls_fingerprint: 9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"), nil},
		{"fingerprint with colons", camera("rtsps://h/", "tls_fingerprint: 9f:86:d0:81:88:4c:7d:65:9a:2f:ea:a0:c5:5a:d0:15:a3:bf:4f:1b:2b:0b:82:2c:d1:5d:6c:15:b0:f0:0a:08"), nil},
		{"fingerprint on rtsp", camera("rtsp://h/", "tls_fingerprint: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
			[]string{"cameras[cam].main.tls_fingerprint: only allowed with rtsps:// URLs"}},
		{"fingerprint SHA-1", camera("rtsps://h/", "tls_fingerprint: da39a3ee5e6b4b0d3255bfef95601890afd80709"),
			[]string{"cameras[cam].main.tls_fingerprint: want 64 hex digits (the certificate's SHA-256), colons allowed"}},
		{"fingerprint not hex", camera("rtsps://h/", "tls_fingerprint: "+strings.Repeat("g", 64)),
			[]string{"cameras[cam].main.tls_fingerprint: want 64 hex digits (the certificate's SHA-256), colons allowed"}},

		// sub stream: same rules, own path
		{"sub", camera("rtsp://h/1") + "    sub: {url: rtsp://h/2, transport: tcp}\n", nil},
		{"sub without url", camera("rtsp://h/1") + "    sub: {transport: tcp}\n", []string{"cameras[cam].sub.url: required"}},
		{"sub null", camera("rtsp://h/1") + "    sub:\n", nil},
		{"sub problems", camera("rtsp://h/1") + "    sub: {url: 'rtsp://:pw@h/2', transport: tls, stall_timeout: 0s}\n", []string{
			"cameras[cam].sub.url: has a password but no user name",
			`cameras[cam].sub.transport: unknown value "tls" (want auto, tcp or udp)`,
			"cameras[cam].sub.stall_timeout: must be at least 1s",
		}},

		// record, motion
		{"record off", camera("rtsp://h/") + "    record: {mode: 'off'}\n", nil},
		{"record motion", camera("rtsp://h/") + "    record: {mode: motion}\n    motion: {enabled: true}\n", nil},
		{"record motion without detector", camera("rtsp://h/") + "    record: {mode: motion}\n",
			[]string{`cameras[cam].record.mode: "motion" needs motion.enabled: true`}},
		{"record mode unknown", camera("rtsp://h/") + "    record: {mode: always}\n",
			[]string{`cameras[cam].record.mode: unknown value "always" (want continuous, motion or off)`}},
		// YAML 1.1 would read an unquoted off as false; yaml.v3 keeps it a string.
		{"record mode off unquoted", camera("rtsp://h/") + "    record: {mode: off}\n", nil},
		{"retention zero", camera("rtsp://h/") + "    record: {retention: 0}\n", []string{"cameras[cam].record.retention: must be > 0"}},
		{"retention negative", camera("rtsp://h/") + "    record: {retention: -1d}\n", []string{"cameras[cam].record.retention: must be > 0"}},
		{"retention 1ns", camera("rtsp://h/") + "    record: {retention: 1ns}\n", nil},
		{"rolls and event retention", camera("rtsp://h/") + "    record: {pre_roll: 0s, post_roll: 1m, event_retention: 90d}\n", nil},
		{"rolls out of range", camera("rtsp://h/") + "    record: {pre_roll: 61s, post_roll: -1s, event_retention: -1d}\n", []string{
			"cameras[cam].record.pre_roll: must be between 0s and 1m",
			"cameras[cam].record.post_roll: must be between 0s and 1m",
			"cameras[cam].record.event_retention: must not be negative",
		}},
		{"motion tuned", camera("rtsp://h/") + `    motion:
      enabled: true
      analyze: keyframes
      fps: 2.5
      width: 640
      sensitivity: 80
      min_area: 1
      cooldown: 30s
      zones:
        - {name: vchod, points: [[0.1, 0.5], [0.4, 0.5], [0.4, 1], [0.1, 1]]}
        - {name: parkoviste, points: [[0.5, 0.5], [1, 0.5], [1, 1]]}
      masks:
        - points: [[0, 0], [1, 0], [1, 0.2]]
`, nil},
		{"motion values out of range", camera("rtsp://h/") + "    motion: {analyze: sometimes, fps: 0, width: 32, sensitivity: 101, min_area: -1, cooldown: 500ms}\n", []string{
			`cameras[cam].motion.analyze: unknown value "sometimes" (want auto, keyframes or all)`,
			"cameras[cam].motion.fps: must be above 0 and at most 30",
			"cameras[cam].motion.width: must be between 64 and 1920",
			"cameras[cam].motion.sensitivity: must be between 1 and 100",
			"cameras[cam].motion.min_area: must be a percentage between 0 and 100",
			"cameras[cam].motion.cooldown: must be at least 1s",
		}},
		{"motion too many zones", camera("rtsp://h/") + "    motion:\n      zones:\n" + namedZones(MaxMotionZones+1),
			[]string{"cameras[cam].motion.zones: 65 zones, at most 64"}},
		{"motion zones wrong", camera("rtsp://h/") + `    motion:
      zones:
        - {points: [[0, 0], [1, 0], [1, 1]]}
        - {name: a, points: [[0, 0], [1, 0]]}
        - {name: a, points: [[0, 0], [1.5, 0], [1, 1, 1]]}
      masks:
        - {name: strom, points: [[0, 0], [-0.1, 0], [1, 1]]}
`, []string{
			"cameras[cam].motion.zones[0].name: required (events name the zones they hit)",
			"cameras[cam].motion.zones[1].points: want at least 3 points [x, y], got 2",
			`cameras[cam].motion.zones[2].name: duplicate name "a" (also cameras[cam].motion.zones[1])`,
			"cameras[cam].motion.zones[2].points[1]: coordinates must be between 0 and 1 (a share of the width and height), got [1.5, 0]",
			"cameras[cam].motion.zones[2].points[2]: want [x, y], got 3 numbers",
			"cameras[cam].motion.masks[0].points[1]: coordinates must be between 0 and 1 (a share of the width and height), got [-0.1, 0]",
		}},

		// webrtc
		{"webrtc", "webrtc:\n  udp_port: 50000\n  tcp_port: 0\n  advertise: [203.0.113.7, '2001:db8::7']\n  max_viewers: 8\n  max_viewers_per_camera: 2\n" +
			"  ice_servers:\n    - urls: ['stun:stun.example.org:3478']\n    - urls: ['turn:turn.example.org:3478?transport=udp']\n      username: townwatch\n      credential_env: TOWNWATCH_TEST_PW\n", nil},
		{"webrtc wrong", "webrtc:\n  udp_port: 70000\n  tcp_port: -1\n  advertise: [my.host.example]\n  max_viewers: 0\n  max_viewers_per_camera: 0\n" +
			"  ice_servers:\n    - urls: []\n    - urls: ['http://stun.example.org']\n    - urls: ['turn:t.example.org']\n    - urls: ['stun:s.example.org']\n      username: u\n" +
			"    - urls: ['turns:t.example.org']\n      username: u\n      credential_file: $DIR/nope\n", []string{
			"webrtc.udp_port: invalid port 70000 (want 0-65535)",
			"webrtc.tcp_port: invalid port -1 (want 0-65535)",
			`webrtc.advertise[0]: "my.host.example" is not an IP address`,
			"webrtc.ice_servers[0].urls: required (e.g. stun:stun.example.org:3478)",
			"webrtc.ice_servers[1].urls[0]: want stun:, stuns:, turn: or turns: followed by host[:port]",
			"webrtc.ice_servers[2]: a TURN server needs username and credential_file or credential_env",
			"webrtc.ice_servers[3]: STUN servers take no username or credential",
			"webrtc.ice_servers[4].credential_file: open $DIR/nope: no such file or directory",
			"webrtc.max_viewers: must be at least 1",
			"webrtc.max_viewers_per_camera: must be at least 1",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = expand(w)
			}
			if got := problems(t, expand(tt.src)); !slices.Equal(got, want) && len(got)+len(want) > 0 {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// One file with many mistakes: every one is reported, in file order, each with its path, in
// Parse's error prefixed with the source. The passwords in it appear nowhere.
func TestValidateEverythingAtOnce(t *testing.T) {
	src := `
storage:
  path: ""
http:
  listen: 8080
cameras:
  - id: stribro-namesti
    main:
      url: rtsp://admin:Tajne-Heslo-42@10.0.0.21:554/Streaming/Channels/101
      password_env: TOWNWATCH_TEST_UNSET
      transport: quic
    sub:
      url: http://admin:Tajne-Heslo-42@10.0.0.21/102
    record:
      mode: motion
      retention: 0
  - id: Stribro Most
    main:
      url: rtsp://admin:Tajne-Heslo-42@10.0.0.22:99999/
      tls_fingerprint: ab:cd
  - id: stribro-namesti
    main: {}
`
	want := strings.Join([]string{
		"t.yaml: storage.path: must not be empty",
		"t.yaml: http.listen: missing port in address (want host:port such as 127.0.0.1:8080)",
		"t.yaml: cameras[0].main.password_env: conflicts with the password in url (use one)",
		"t.yaml: cameras[0].main.password_env: environment variable TOWNWATCH_TEST_UNSET is not set",
		`t.yaml: cameras[0].main.transport: unknown value "quic" (want auto, tcp or udp)`,
		"t.yaml: cameras[0].sub.url: scheme must be rtsp or rtsps",
		`t.yaml: cameras[0].record.mode: "motion" needs motion.enabled: true`,
		"t.yaml: cameras[0].record.retention: must be > 0",
		`t.yaml: cameras[1].id: invalid id "Stribro Most" (want 1-64 lowercase letters, digits and hyphens, not starting or ending with a hyphen)`,
		`t.yaml: cameras[1].main.url: invalid port "99999" (want 1-65535)`,
		"t.yaml: cameras[1].main.tls_fingerprint: only allowed with rtsps:// URLs",
		"t.yaml: cameras[1].main.tls_fingerprint: want 64 hex digits (the certificate's SHA-256), colons allowed",
		`t.yaml: cameras[2].id: duplicate id "stribro-namesti" (also cameras[0])`,
		"t.yaml: cameras[2].main.url: required",
	}, "\n")
	_, err := Parse([]byte(src), "t.yaml")
	if err == nil || err.Error() != want {
		t.Fatalf("Parse error:\n%v\nwant:\n%s", err, want)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 14 {
		t.Fatalf("errors.As(*ValidationError) = %v, %+v", errors.As(err, &ve), ve)
	}
	if got := ve.Problems[0]; got != (Problem{Path: "storage.path", Message: "must not be empty"}) {
		t.Errorf("first problem = %#v", got)
	}
	if !strings.HasPrefix(ve.Error(), "storage.path: must not be empty\nhttp.listen: ") {
		t.Errorf("ValidationError.Error() =\n%s\nwant one problem per line without the source", ve.Error())
	}
	if strings.Contains(err.Error(), "Tajne-Heslo-42") {
		t.Errorf("error contains the password:\n%s", err)
	}
}

// Validate checks what components will see and applies no defaults: a Config built in Go
// must set every field.
func TestValidateZeroConfig(t *testing.T) {
	c := &Config{Cameras: []Camera{{ID: "cam", Main: Stream{URL: "rtsp://h/"}}}}
	want := []Problem{
		{"storage.path", "must not be empty"},
		{"http.listen", "missing port in address (want host:port such as 127.0.0.1:8080)"},
		{"webrtc.max_viewers", "must be at least 1"},
		{"webrtc.max_viewers_per_camera", "must be at least 1"},
		{"cameras[cam].main.transport", `unknown value "" (want auto, tcp or udp)`},
		{"cameras[cam].main.stall_timeout", "must be at least 1s"},
		{"cameras[cam].record.mode", `unknown value "" (want continuous, motion or off)`},
		{"cameras[cam].record.retention", "must be > 0"},
		{"cameras[cam].record.segment", "must be between 10s and 1h"},
		{"cameras[cam].motion.analyze", `unknown value "" (want auto, keyframes or all)`},
		{"cameras[cam].motion.fps", "must be above 0 and at most 30"},
		{"cameras[cam].motion.width", "must be between 64 and 1920"},
		{"cameras[cam].motion.sensitivity", "must be between 1 and 100"},
		{"cameras[cam].motion.cooldown", "must be at least 1s"},
	}
	var ve *ValidationError
	if err := c.Validate(); !errors.As(err, &ve) || !slices.Equal(ve.Problems, want) {
		t.Fatalf("Validate() = %v\nwant problems %v", err, want)
	}

	ok, err := Parse([]byte(camera("rtsp://h/")), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate() of a parsed config = %v", err)
	}
}

func TestSigningKeyFile(t *testing.T) {
	c, err := Parse([]byte("storage: {path: /srv/tw}\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.SigningKeyFile(); got != "/srv/tw/export-signing.key" {
		t.Errorf("default signing key file %q, want /srv/tw/export-signing.key", got)
	}
	c.Exports.SigningKeyFile = "/etc/townwatch/sign.key"
	if got := c.SigningKeyFile(); got != "/etc/townwatch/sign.key" {
		t.Errorf("signing key file %q, want exports.signing_key_file", got)
	}
}

// TestStreamValidate checks that a stream alone is validated like one in a file, with
// problems named by its own keys.
func TestStreamValidate(t *testing.T) {
	ok := Stream{URL: "rtsps://cam.example:322/live", Transport: TransportAuto, StallTimeout: DefaultStallTimeout,
		TLSFingerprint: strings.Repeat("ab", 32)}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid stream refused: %v", err)
	}
	bad := Stream{URL: "http://cam/live", Transport: "quic", StallTimeout: DefaultStallTimeout, TLSFingerprint: "12"}
	err := bad.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate = %v, want a *ValidationError", err)
	}
	var got []string
	for _, p := range ve.Problems {
		got = append(got, p.String())
	}
	want := []string{
		"url: scheme must be rtsp or rtsps",
		`transport: unknown value "quic" (want auto, tcp or udp)`,
		"tls_fingerprint: want 64 hex digits (the certificate's SHA-256), colons allowed",
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// namedZones is n zones z0, z1, ... in the YAML of a camera's motion.zones.
func namedZones(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "        - {name: z%d, points: [[0, 0], [1, 0], [1, 1]]}\n", i)
	}
	return b.String()
}
