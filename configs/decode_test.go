package configs

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Decoding errors name the source, the line and the key or path, and all of them in one
// file are reported together.
func TestParseDecodeErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"max resolution not WxH", "ingest: {max_resolution: 8K}\n", `t.yaml:1: ingest.max_resolution: want WIDTHxHEIGHT in pixels, e.g. 7680x4320`},
		{"max resolution too big", "ingest: {max_resolution: 20000x100}\n", `t.yaml:1: ingest.max_resolution: 20000x100: each side must be 16 to 16384 pixels`},
		{"empty file", ``, `t.yaml: empty config (want a mapping with storage, http and cameras)`},
		{"only comments", "# nothing yet\n", `t.yaml: empty config (want a mapping with storage, http and cameras)`},
		{"empty document", "---\n", `t.yaml: empty config (want a mapping with storage, http and cameras)`},
		{"null document", "~\n", `t.yaml: empty config (want a mapping with storage, http and cameras)`},
		{"two documents", "storage:\n  path: /a\n---\nstorage:\n  path: /b\n",
			`t.yaml:3: more than one YAML document (want exactly one; remove the ---)`},
		{"trailing separator", "storage:\n  path: /a\n---\n",
			`t.yaml:3: more than one YAML document (want exactly one; remove the ---)`},
		{"syntax error", "cameras: [\n", `t.yaml:1: did not find expected node content`},
		{"syntax error in second document", "storage: {}\n---\ncameras: [\n", `t.yaml:3: did not find expected node content`},
		{"tab indentation", "storage:\n\tpath: /a\n", `t.yaml:2: found character that cannot start any token`},
		{"unknown anchor", "cameras: *cams\n", `t.yaml: unknown anchor 'cams' referenced`},
		{"top level is a list", "- id: a\n", `t.yaml:1: expected a mapping (key: value lines) at the top level, got a list`},
		{"top level is a value", "storage\n", `t.yaml:1: expected a mapping (key: value lines) at the top level, got a single value`},
		{"unknown top-level key", "camera:\n  - id: a\n", `t.yaml:1: unknown key "camera" at the top level`},
		{"number expected", "webrtc: {udp_port: 81.5, max_viewers: many}\ncameras:\n  - id: a\n    main: {url: rtsp://h/}\n    motion: {fps: fast, min_area: .nan, zones: [{name: z, points: [[0, x]]}]}\n",
			`t.yaml:1: webrtc.udp_port: expected a whole number, got "81.5"` + "\n" +
				`t.yaml:1: webrtc.max_viewers: expected a whole number, got "many"` + "\n" +
				`t.yaml:5: cameras[0].motion.fps: expected a number, got "fast"` + "\n" +
				`t.yaml:5: cameras[0].motion.min_area: expected a number, got ".nan"` + "\n" +
				`t.yaml:5: cameras[0].motion.zones[0].points[0][1]: expected a number, got "x"`},
		{"unknown key with line", `
cameras:
  - id: stribro-namesti
    main:
      url: rtsp://10.0.0.21/
    record:
      mode: continuous
      retension: 30d
`, `t.yaml:8: unknown key "retension" in cameras[0].record`},
		{"unknown key in optional stream", `
cameras:
  - id: a
    main: {url: rtsp://h/}
    sub: {url: rtsp://h/2, transprot: tcp}
`, `t.yaml:5: unknown key "transprot" in cameras[0].sub`},
		{"yaml.v3 field name is not a key", "storage:\n  Path: /a\n", `t.yaml:2: unknown key "Path" in storage`},
		{"duplicate key", "http:\n  listen: :8080\n  listen: :9090\n", `t.yaml:3: duplicate key "listen" in http (first at line 2)`},
		{"duplicate top-level key", "storage: {}\nstorage: {}\n", `t.yaml:2: duplicate key "storage" at the top level (first at line 1)`},
		{"merge key", "http: &h {listen: \":80\"}\nstorage:\n  <<: *h\n", `t.yaml:3: merge key (<<) in storage: merge keys are not supported`},
		{"list as key", "storage:\n  ? [a, b]\n  : x\n", `t.yaml:2: a list or mapping as a key in storage (keys must be plain words)`},
		{"bad duration", `
cameras:
  - id: a
    main: {url: rtsp://h/}
  - id: b
    main: {url: rtsp://h/}
    record:
      retention: 7 days
`, `t.yaml:8: cameras[1].record.retention: invalid duration "7 days": unknown unit " days" (want d, h, m, s, ms, us or ns)`},
		{"duration without unit", `
cameras:
  - id: a
    main:
      url: rtsp://h/
      stall_timeout: 10
`, `t.yaml:6: cameras[0].main.stall_timeout: invalid duration "10": missing unit after "10" (want d, h, m, s, ms, us or ns)`},
		{"duration as a list", `
cameras:
  - id: a
    main: {url: rtsp://h/}
    record: {retention: [7d]}
`, `t.yaml:5: cameras[0].record.retention: expected a single value, got a list`},
		{"bool", `
cameras:
  - id: a
    main: {url: rtsp://h/}
    motion: {enabled: yes}
`, `t.yaml:5: cameras[0].motion.enabled: expected true or false, got "yes"`},
		{"quoted bool", `
cameras:
  - id: a
    main: {url: rtsp://h/}
    motion: {enabled: "true"}
`, `t.yaml:5: cameras[0].motion.enabled: expected true or false, got "true"`},
		{"cameras as a mapping", "cameras:\n  a:\n    main: {url: rtsp://h/}\n", `t.yaml:2: cameras: expected a list, got a mapping (key: value lines)`},
		{"string as a list", "storage:\n  path: [a, b]\n", `t.yaml:2: storage.path: expected a single value, got a list`},
		// The value here is a URL with a password: it must not be quoted back.
		{"url instead of a stream", `
cameras:
  - id: a
    main: rtsp://admin:Tajne-Heslo-42@10.0.0.21/
`, `t.yaml:4: cameras[0].main: expected a mapping (key: value lines), got a single value`},
		{"several mistakes at once", `
storage:
  path: ./data
  qouta: 2TiB
http:
  listen: 127.0.0.1:8080
  listen: 127.0.0.1:9090
cameras:
  - id: stribro-namesti
    main:
      url: rtsp://10.0.0.21/
      stall_timout: 5s
    record:
      retention: 1 week
  - id: stribro-most
    main: {url: rtsp://10.0.0.22/, transport: tcp}
    motion: {enabled: on}
    snapshots: true
`, strings.Join([]string{
			`t.yaml:4: unknown key "qouta" in storage`,
			`t.yaml:7: duplicate key "listen" in http (first at line 6)`,
			`t.yaml:12: unknown key "stall_timout" in cameras[0].main`,
			`t.yaml:14: cameras[0].record.retention: invalid duration "1 week": unknown unit " week" (want d, h, m, s, ms, us or ns)`,
			`t.yaml:17: cameras[1].motion.enabled: expected true or false, got "on"`,
			`t.yaml:18: unknown key "snapshots" in cameras[1]`,
		}, "\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.src), "t.yaml")
			if err == nil {
				t.Fatalf("Parse succeeded: %+v\nwant error:\n%s", c, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("Parse error:\n%s\nwant:\n%s", err, tt.want)
			}
			if strings.Contains(err.Error(), "Tajne-Heslo-42") {
				t.Errorf("error contains the password: %s", err)
			}
		})
	}
}

// Absent and null keys take their defaults; present keys keep what was written.
func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte(`
storage:
http: ~
cameras:
  - id: stribro-namesti
    main:
      url: rtsp://10.0.0.21/101
    sub:
      url: rtsp://10.0.0.21/102
      transport: tcp
    record:
      retention:
  - id: stribro-most
    name: "Stříbro – most"
    main: {url: rtsp://10.0.0.22/, stall_timeout: 3s}
    record: {mode: off, retention: 30d}
    motion: {enabled: true}
`), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Storage.Path != "./data" || c.HTTP.Listen != "127.0.0.1:8080" {
		t.Errorf("storage/http = %+v %+v, want ./data and 127.0.0.1:8080", c.Storage, c.HTTP)
	}
	want := []Camera{{
		ID:     "stribro-namesti",
		Name:   "stribro-namesti",
		Main:   Stream{URL: "rtsp://10.0.0.21/101", Transport: "tcp", StallTimeout: Duration(10e9), MaxResolution: DefaultMaxResolution},
		Sub:    &Stream{URL: "rtsp://10.0.0.21/102", Transport: "tcp", StallTimeout: Duration(10e9), MaxResolution: DefaultMaxResolution},
		Record: Record{Mode: "continuous", Retention: Duration(7 * 24 * 3600e9), Segment: DefaultSegment, PreRoll: DefaultPreRoll, PostRoll: DefaultPostRoll},
		Motion: defaultMotion(false),
	}, {
		ID:     "stribro-most",
		Name:   "Stříbro – most",
		Main:   Stream{URL: "rtsp://10.0.0.22/", Transport: "tcp", StallTimeout: Duration(3e9), MaxResolution: DefaultMaxResolution},
		Record: Record{Mode: "off", Retention: Duration(30 * 24 * 3600e9), Segment: DefaultSegment, PreRoll: DefaultPreRoll, PostRoll: DefaultPostRoll},
		Motion: defaultMotion(true),
	}}
	if len(c.Cameras) != len(want) {
		t.Fatalf("got %d cameras, want %d", len(c.Cameras), len(want))
	}
	for i := range want {
		got := c.Cameras[i]
		if got.Sub != nil && want[i].Sub != nil && *got.Sub != *want[i].Sub || (got.Sub == nil) != (want[i].Sub == nil) {
			t.Errorf("camera %d sub = %#v, want %#v", i, got.Sub, want[i].Sub)
		}
		got.Sub, want[i].Sub = nil, nil
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("camera %d =\n%#v\nwant\n%#v", i, got, want[i])
		}
	}
}

func defaultMotion(enabled bool) Motion {
	return Motion{Enabled: enabled, Analyze: "auto", FPS: 5, Width: 320, Sensitivity: 50, MinArea: 0.1, Cooldown: Duration(10e9)}
}

// Anchors and aliases of whole values work, so cameras can share settings.
func TestParseAliases(t *testing.T) {
	c, err := Parse([]byte(`
cameras:
  - id: a
    main: {url: rtsp://h/a}
    record: &month {mode: continuous, retention: 30d}
  - id: b
    main: {url: rtsp://h/b}
    record: *month
`), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Cameras[1].Record.Retention.String(); got != "30d" {
		t.Errorf("camera b retention = %s, want 30d", got)
	}
}

// Zero cameras is a valid, empty system: the server starts and cameras are added later.
func TestParseNoCameras(t *testing.T) {
	for _, src := range []string{"{}", "storage: {path: /srv/townwatch}\n", "cameras: []\n", "cameras:\n"} {
		c, err := Parse([]byte(src), "t.yaml")
		if err != nil {
			t.Errorf("Parse(%q): %v", src, err)
			continue
		}
		if len(c.Cameras) != 0 {
			t.Errorf("Parse(%q) has %d cameras", src, len(c.Cameras))
		}
	}
}

func TestLoad(t *testing.T) {
	if _, err := Load("testdata/does-not-exist.yaml"); err == nil || err.Error() != "open testdata/does-not-exist.yaml: no such file or directory" {
		t.Errorf("Load of a missing file: %v", err)
	}
	// Messages name the file as given.
	path := filepath.Join(t.TempDir(), "townwatch.yaml")
	if err := os.WriteFile(path, []byte("storage:\n  path: /srv\nhttp:\n  listen: 8080\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	want := path + ": http.listen: missing port in address (want host:port such as 127.0.0.1:8080)"
	if _, err := Load(path); err == nil || err.Error() != want {
		t.Errorf("Load error = %v, want %s", err, want)
	}
}

func TestCameraLookup(t *testing.T) {
	c, err := Parse([]byte("cameras:\n  - {id: a, main: {url: rtsp://h/a}}\n  - {id: b, main: {url: rtsp://h/b}}\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cam, ok := c.Camera("b"); !ok || cam.Main.URL != "rtsp://h/b" {
		t.Errorf(`Camera("b") = %+v, %v`, cam, ok)
	}
	if cam, ok := c.Camera("c"); ok {
		t.Errorf(`Camera("c") = %+v, true`, cam)
	}
}
