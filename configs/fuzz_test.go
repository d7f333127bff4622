package configs

import (
	"errors"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// FuzzParse: no input panics Parse; a config it returns is valid and survives a round trip
// through YAML; an error is never empty.
func FuzzParse(f *testing.F) {
	f.Add(DemoYAML)
	f.Add([]byte("cameras:\n  - id: a\n    main: {url: rtsp://u:p@h/, transport: tcp}\n    record: {retention: 1d12h}\n"))
	f.Add([]byte("cameras:\n  - &c {id: a, main: {url: rtsp://h/}}\n  - *c\n"))
	f.Add([]byte("storage: {path: ''}\nhttp: {listen: x}\ncameras: [{id: A-, main: {url: 'http://:x@'}}]\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("---\n---\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "f.yaml")
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			var ve *ValidationError
			if errors.As(err, &ve) && len(ve.Problems) == 0 {
				t.Fatal("ValidationError without problems")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse returned a config that Validate rejects: %v", err)
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("yaml.Marshal: %v", err)
		}
		back, err := Parse(out, "marshalled.yaml")
		if err != nil {
			t.Fatalf("Parse of the marshalled config: %v\n%s", err, out)
		}
		if len(c.Cameras) == 0 {
			c.Cameras, back.Cameras = nil, nil // "cameras: []" and no cameras are the same
		}
		if !reflect.DeepEqual(c, back) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", c, back)
		}
	})
}

// FuzzParseDuration: no panic; a parsed duration prints and parses back to itself; and
// ParseDuration agrees with time.ParseDuration wherever that accepts the input.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"7d", "1d12h", "90s", "1.5d", "-2h45m", "0", "7 days", "106752d", "10µs", ".5d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if std, stdErr := time.ParseDuration(s); stdErr == nil && std != -1<<63 && (err != nil || d.Std() != std) {
			t.Fatalf("ParseDuration(%q) = %v, %v; time.ParseDuration says %v", s, d.Std(), err, std)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "invalid duration "+strconv.Quote(s)+": ") {
				t.Fatalf("error does not name the input: %v", err)
			}
			return
		}
		back, err := ParseDuration(d.String())
		if err != nil || back != d {
			t.Fatalf("ParseDuration(%q) = %d; String() = %q parses as %d, %v", s, d, d.String(), back, err)
		}
	})
}

// FuzzParseByteSize: no panic; sizes are never negative and round-trip through String.
func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"500MiB", "2TiB", "10GB", "1024", "1024B", "-1", "1.5GB", "8388608TiB", "9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseByteSize(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "invalid size "+strconv.Quote(s)+": ") {
				t.Fatalf("error does not name the input: %v", err)
			}
			return
		}
		if b < 0 {
			t.Fatalf("ParseByteSize(%q) = %d", s, b)
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && int64(b) != n {
			t.Fatalf("ParseByteSize(%q) = %d, want %d bytes", s, b, n)
		}
		back, err := ParseByteSize(b.String())
		if err != nil || back != b {
			t.Fatalf("ParseByteSize(%q) = %d; String() = %q parses as %d, %v", s, b, b.String(), back, err)
		}
	})
}

// FuzzRedactURL: the output never depends on the password. For an input that parses with a
// password, the same input with only the password's bytes changed must redact to the same
// string, and the output must not contain a password of 3 or more characters (unless it
// also occurs in the redaction without it, e.g. a password equal to the host name).
func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{
		"rtsp://admin:secret@10.0.0.21:554/Streaming/Channels/101",
		"rtsp://admin:p%40ss%3Aw%2Frd@h/",
		"rtsp://admin:p@ss@h/a?password=x#f",
		"rtsp://:secret@h/",
		"//u:pw@h",
		"rtsp:admin:secret@h",
		"rtsp://admin:pa%zz@h/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out := RedactURL(raw)
		u, err := url.Parse(raw)
		if err != nil || u.User == nil {
			return
		}
		pw, ok := u.User.Password()
		if !ok {
			return
		}
		start, end := rawPasswordSpan(raw)
		other := strings.Repeat("x", end-start)
		if raw[start:end] == other {
			other = strings.Repeat("y", end-start)
		}
		raw2 := raw[:start] + other + raw[end:]
		if u2, err := url.Parse(raw2); err != nil || u2.User.Username() != u.User.Username() {
			t.Fatalf("test bug: changing the password of %q to %q gives %q (%v)", raw, other, raw2, err)
		}
		out2 := RedactURL(raw2)
		if out != out2 {
			t.Fatalf("the output depends on the password:\nRedactURL(%q) = %q\nRedactURL(%q) = %q", raw, out, raw2, out2)
		}
		if len(pw) >= 3 && strings.Contains(out, pw) && !strings.Contains(out2, pw) {
			t.Fatalf("RedactURL(%q) = %q contains the password %q", raw, out, pw)
		}
	})
}

// rawPasswordSpan finds the password in a URL that net/url parses with one, the way
// url.Parse splits it: fragment at the first '#', query at the first '?', authority after
// "//" up to the next '/', userinfo before the last '@', password after the first ':'.
func rawPasswordSpan(raw string) (start, end int) {
	s, _, _ := strings.Cut(raw, "#")
	s, _, _ = strings.Cut(s, "?")
	i := strings.Index(s, "//") + 2
	authority := s[i:]
	if j := strings.Index(authority, "/"); j >= 0 {
		authority = authority[:j]
	}
	userinfo := authority[:strings.LastIndex(authority, "@")]
	colon := strings.Index(userinfo, ":")
	return i + colon + 1, i + len(userinfo)
}
