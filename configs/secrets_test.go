package configs

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A password with every character that has a meaning in a URL's userinfo.
const awkwardPassword = "p@ss:w/rd%?#&="

func TestDialURL(t *testing.T) {
	dir := t.TempDir()
	writeFile := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	awkwardFile := writeFile("awkward", awkwardPassword+"\n")
	crlfFile := writeFile("crlf", "heslo\r\n")
	spaceFile := writeFile("space", " heslo \n") // spaces are part of the password
	emptyFile := writeFile("empty", "\n")
	t.Setenv("TOWNWATCH_TEST_PW", awkwardPassword)
	t.Setenv("TOWNWATCH_TEST_EMPTY", "")

	tests := []struct {
		name     string
		s        Stream
		want     string
		wantPass string // the password a client decodes from want
	}{
		{"no credentials", Stream{URL: "rtsp://10.0.0.21:554/Streaming/Channels/101"}, "rtsp://10.0.0.21:554/Streaming/Channels/101", ""},
		{"credentials in url", Stream{URL: "rtsp://admin:heslo@10.0.0.21/101"}, "rtsp://admin:heslo@10.0.0.21/101", "heslo"},
		{"unescaped @ in url password", Stream{URL: "rtsp://admin:p@ss@10.0.0.21/101"}, "rtsp://admin:p%40ss@10.0.0.21/101", "p@ss"},
		{"query kept", Stream{URL: "rtsp://admin:heslo@h/cam/realmonitor?channel=1&subtype=0"}, "rtsp://admin:heslo@h/cam/realmonitor?channel=1&subtype=0", "heslo"},
		{"username only", Stream{URL: "rtsp://h/", Username: "admin"}, "rtsp://admin@h/", ""},
		{"password_file", Stream{URL: "rtsp://h:554/101", Username: "admin", PasswordFile: awkwardFile},
			"rtsp://admin:p%40ss%3Aw%2Frd%25%3F%23&=@h:554/101", awkwardPassword},
		{"password_env", Stream{URL: "rtsps://h/101", Username: "ad min", PasswordEnv: "TOWNWATCH_TEST_PW"},
			"rtsps://ad%20min:p%40ss%3Aw%2Frd%25%3F%23&=@h/101", awkwardPassword},
		{"user in url and password_env", Stream{URL: "rtsp://admin@h/", PasswordEnv: "TOWNWATCH_TEST_PW"},
			"rtsp://admin:p%40ss%3Aw%2Frd%25%3F%23&=@h/", awkwardPassword},
		{"CRLF file", Stream{URL: "rtsp://h/", Username: "admin", PasswordFile: crlfFile}, "rtsp://admin:heslo@h/", "heslo"},
		{"spaces kept", Stream{URL: "rtsp://h/", Username: "admin", PasswordFile: spaceFile}, "rtsp://admin:%20heslo%20@h/", " heslo "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.s.DialURL()
			if err != nil || got != tt.want {
				t.Fatalf("DialURL() = %q, %v; want %q", got, err, tt.want)
			}
			u, err := url.Parse(got)
			if err != nil {
				t.Fatal(err)
			}
			if p, _ := u.User.Password(); p != tt.wantPass {
				t.Errorf("a client reads the password %q, want %q", p, tt.wantPass)
			}
		})
	}

	errTests := []struct {
		name string
		s    Stream
		want string
	}{
		{"env not set", Stream{URL: "rtsp://h/", Username: "admin", PasswordEnv: "TOWNWATCH_TEST_UNSET"},
			"password_env: environment variable TOWNWATCH_TEST_UNSET is not set"},
		{"env empty", Stream{URL: "rtsp://h/", Username: "admin", PasswordEnv: "TOWNWATCH_TEST_EMPTY"},
			"password_env: environment variable TOWNWATCH_TEST_EMPTY is empty"},
		{"file missing", Stream{URL: "rtsp://h/", Username: "admin", PasswordFile: dir + "/nope"},
			"password_file: open " + dir + "/nope: no such file or directory"},
		{"file only a newline", Stream{URL: "rtsp://h/", Username: "admin", PasswordFile: emptyFile},
			"password_file: " + emptyFile + " is empty"},
		{"file and env", Stream{URL: "rtsp://h/", Username: "admin", PasswordFile: awkwardFile, PasswordEnv: "TOWNWATCH_TEST_PW"},
			"password_env: conflicts with password_file (use one)"},
		{"url password and env", Stream{URL: "rtsp://admin:" + url.QueryEscape(awkwardPassword) + "@h/", PasswordEnv: "TOWNWATCH_TEST_PW"},
			"password_env: conflicts with the password in url (use one)"},
		{"no user", Stream{URL: "rtsp://h/", PasswordEnv: "TOWNWATCH_TEST_PW"},
			"password_env: needs a user name (set username)"},
		{"bad url", Stream{URL: "rtsp://admin:p%zz@h/"}, "url: cannot parse URL: invalid percent-escape (write % as %25)"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.s.DialURL()
			if err == nil || err.Error() != tt.want {
				t.Fatalf("DialURL() = %q, %v; want error %q", got, err, tt.want)
			}
		})
	}
}

// The password file is read at every dial, so rotating it needs no restart.
func TestDialURLRereadsPasswordFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pw")
	s := Stream{URL: "rtsp://h/", Username: "admin", PasswordFile: p}
	for _, pw := range []string{"old", "new"} {
		if err := os.WriteFile(p, []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := s.DialURL(); err != nil || got != "rtsp://admin:"+pw+"@h/" {
			t.Errorf("DialURL() = %q, %v; want the password %q", got, err, pw)
		}
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"rtsp://admin:secret@10.0.0.21:554/Streaming/Channels/101", "rtsp://admin:***@10.0.0.21:554/Streaming/Channels/101"},
		{"rtsp://10.0.0.21:554/Streaming/Channels/101", "rtsp://10.0.0.21:554/Streaming/Channels/101"},
		{"rtsp://admin@10.0.0.21/", "rtsp://admin@10.0.0.21/"},
		{"rtsp://admin:@10.0.0.21/", "rtsp://admin:***@10.0.0.21/"}, // an empty password is still a password field
		{"rtsp://:secret@10.0.0.21/", "rtsp://:***@10.0.0.21/"},
		{"rtsp://admin:p@ss@10.0.0.21/", "rtsp://admin:***@10.0.0.21/"},
		{"rtsp://admin:p%40ss%3A@10.0.0.21/", "rtsp://admin:***@10.0.0.21/"},
		{"rtsp://ad%20min:secret@10.0.0.21/", "rtsp://ad%20min:***@10.0.0.21/"},
		{"rtsp://us:er:secret@10.0.0.21/", "rtsp://us:***@10.0.0.21/"},
		{"rtsp://admin:secret@[fe80::1%25eth0]:554/", "rtsp://admin:***@[fe80::1%25eth0]:554/"},
		{"rtsp://admin:secret@h/a?x=1#frag", "rtsp://admin:***@h/a?x=1#frag"},
		{"rtsp://h/cam?user=admin&password=secret&channel=1", "rtsp://h/cam?user=admin&password=***&channel=1"},
		{"rtsp://h/cam?PWD=secret&Token=abc&pass", "rtsp://h/cam?PWD=***&Token=***&pass"},
		{"rtsp://h/cam?pass%77ord=secret", "rtsp://h/cam?pass%77ord=***"},
		{"//admin:secret@10.0.0.21/x", "//admin:***@10.0.0.21/x"},
		{"https://key:secret@s3.example.cz/bucket", "https://key:***@s3.example.cz/bucket"},
		{"", ""},
		// Inputs that do not parse as a hierarchical URL have no telling where a password is.
		{"rtsp://admin:pa%zzword@10.0.0.21/", "<invalid URL>"},
		{"rtsp:admin:secret@10.0.0.21", "<invalid URL>"},
		{"admin:secret@10.0.0.21", "<invalid URL>"},
		{"rtsp://admin:secret@10.0.0.21:x/", "<invalid URL>"},
		{"rtsp://admin:sec\nret@10.0.0.21/", "<invalid URL>"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestStreamRedactedURL(t *testing.T) {
	tests := []struct {
		s    Stream
		want string
	}{
		{Stream{URL: "rtsp://admin:secret@10.0.0.21:554/Streaming/Channels/101"}, "rtsp://admin:***@10.0.0.21:554/Streaming/Channels/101"},
		{Stream{URL: "rtsp://10.0.0.21/101", Username: "admin", PasswordEnv: "CAM1_PASS"}, "rtsp://admin:***@10.0.0.21/101"},
		{Stream{URL: "rtsp://10.0.0.21/101", Username: "admin", PasswordFile: "/run/secrets/cam1"}, "rtsp://admin:***@10.0.0.21/101"},
		{Stream{URL: "rtsp://admin@10.0.0.21/101", PasswordEnv: "CAM1_PASS"}, "rtsp://admin:***@10.0.0.21/101"},
		{Stream{URL: "rtsp://10.0.0.21/101", Username: "admin"}, "rtsp://admin@10.0.0.21/101"},
		{Stream{URL: "rtsp://10.0.0.21/101", Username: "ad@min", PasswordEnv: "CAM1_PASS"}, "rtsp://ad%40min:***@10.0.0.21/101"},
		{Stream{URL: "rtsp://10.0.0.21/101"}, "rtsp://10.0.0.21/101"},
		{Stream{URL: "rtsp:admin:secret@10.0.0.21"}, "<invalid URL>"},
	}
	for _, tt := range tests {
		if got := tt.s.RedactedURL(); got != tt.want {
			t.Errorf("%#v.RedactedURL() = %q, want %q", tt.s, got, tt.want)
		}
	}
}

// Printing a config with fmt or logging a stream with slog shows no password.
func TestStreamPrintsRedacted(t *testing.T) {
	c, err := Parse([]byte(`
cameras:
  - id: stribro-namesti
    main: {url: "rtsp://admin:Tajne-Heslo-42@10.0.0.21/101"}
    sub: {url: "rtsp://admin:Tajne-Heslo-42@10.0.0.21/102"}
`), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cam := c.Cameras[0]
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	log.Info("connecting", "stream", cam.Main, "sub", cam.Sub)
	log.Info("camera", "camera", cam)
	for _, out := range []string{
		fmt.Sprint(cam.Main), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%+v", cam), fmt.Sprintf("%s", cam.Sub),
		buf.String(),
	} {
		if strings.Contains(out, "Tajne-Heslo-42") {
			t.Errorf("output contains the password: %s", out)
		}
		if !strings.Contains(out, "rtsp://admin:***@10.0.0.21/10") {
			t.Errorf("output lacks the redacted URL: %s", out)
		}
	}
}
