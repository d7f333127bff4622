// Package s3test gives tests a real S3 server: versitygw (github.com/versity/versitygw,
// installed by make deps) with its posix backend in a temporary directory, listening on
// 127.0.0.1 only (its default would be every interface). Each Start is a server of its
// own, stopped when the test ends, so tests never see each other's buckets.
//
// When versitygw cannot be found or started, Start fails the test with the reason; it
// never skips.
package s3test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fixed test keys: the server is on loopback, lives for one test and holds test data.
const (
	AccessKey = "townwatch-test-access"
	SecretKey = "townwatch-test-secret-key"
)

// Server is one running versitygw.
type Server struct {
	// Addr is host:port on 127.0.0.1.
	Addr string
	// Dir is the posix backend's directory: bucket b's object k is the file Dir/b/k,
	// which a test may change behind the server's back.
	Dir string

	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
	bin  string
}

// Binary finds versitygw: on PATH, else in $GOBIN or $(go env GOPATH)/bin, where
// `go install` (make deps) puts it.
func Binary() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	var dirs []string
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) == 2 {
			if lines[0] != "" {
				dirs = append(dirs, lines[0])
			}
			for _, gp := range filepath.SplitList(lines[1]) {
				dirs = append(dirs, filepath.Join(gp, "bin"))
			}
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, "versitygw")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("versitygw is not on PATH nor in %v: run make deps (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)", dirs)
}

// Start runs a new server for t and stops it when t ends. It fails t if the server cannot
// start.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatalf("s3test: an S3 server is needed for this test: %v", err)
	}
	s := &Server{Dir: filepath.Join(t.TempDir(), "s3"), bin: bin}
	if err := os.Mkdir(s.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// The port is probed free, then handed to versitygw; another process taking it in
	// between makes the start fail, and the next attempt gets another port.
	for attempt := 1; ; attempt++ {
		port, perr := freePort()
		if perr != nil {
			t.Fatalf("s3test: %v", perr)
		}
		s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
		if err = s.start(); err == nil || attempt == 3 {
			break
		}
	}
	if err != nil {
		t.Fatalf("s3test: versitygw could not be started: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// start runs versitygw on s.Addr and waits until it accepts connections.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := exec.Command(s.bin, "-p", s.Addr, "posix", s.Dir)
	// Keys by environment, not arguments: no secret in the process list.
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+AccessKey, "ROOT_SECRET_ACCESS_KEY="+SecretKey)
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			return fmt.Errorf("versitygw -p %s exited: %s", s.Addr, tail(out.String()))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("versitygw -p %s did not listen within 30s: %s", s.Addr, tail(out.String()))
		}
	}
	s.cmd, s.out, s.done = cmd, out, done
	return nil
}

// Stop kills the server (an outage, as a test sees it); Restart brings it back on the
// same address with the same data. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart starts a stopped server again on its address; it fails t if it cannot.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatalf("s3test: restart: %v", err)
	}
}

// ObjectFile is the backend file holding bucket's object key.
func (s *Server) ObjectFile(bucket, key string) string {
	return filepath.Join(s.Dir, bucket, filepath.FromSlash(key))
}

// KeyFiles writes the access and secret keys to files in dir, as storage.archive's
// access_key_file and secret_key_file name them.
func KeyFiles(dir string) (access, secret string, err error) {
	access, secret = filepath.Join(dir, "s3-access"), filepath.Join(dir, "s3-secret")
	err = errors.Join(os.WriteFile(access, []byte(AccessKey+"\n"), 0o600), os.WriteFile(secret, []byte(SecretKey+"\n"), 0o600))
	return access, secret, err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(s string) string {
	const n = 2000
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}
