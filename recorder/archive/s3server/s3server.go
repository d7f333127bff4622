// Package s3server runs a real S3 server for tests and the cluster demo: versitygw
// (github.com/versity/versitygw, installed by make deps) with its posix backend in a
// directory, listening on 127.0.0.1 only (its default would be every interface).
package s3server

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Server is one running versitygw.
type Server struct {
	// Addr is host:port on 127.0.0.1.
	Addr string
	// Dir is the posix backend's directory: bucket b's object k is the file Dir/b/k.
	Dir string

	access, secret string
	bin            string

	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
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

// Start runs versitygw on a free port of 127.0.0.1 with its objects under dir (which
// must exist) and the given root keys, and waits until it accepts connections.
func Start(dir, accessKey, secretKey string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, access: accessKey, secret: secretKey, bin: bin}
	// The port is probed free, then handed to versitygw; another process taking it in
	// between makes the start fail, and the next attempt gets another port.
	for attempt := 1; ; attempt++ {
		port, perr := freePort()
		if perr != nil {
			return nil, perr
		}
		s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
		if err = s.start(); err == nil || attempt == 3 {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("versitygw could not be started: %w", err)
	}
	return s, nil
}

// start runs versitygw on s.Addr and waits until it accepts connections.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := exec.Command(s.bin, "-p", s.Addr, "posix", s.Dir)
	// Keys by environment, not arguments: no secret in the process list.
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+s.access, "ROOT_SECRET_ACCESS_KEY="+s.secret)
	// Its own process group: a Ctrl-C at the terminal does not stop the store under the
	// nodes still writing to it; its owner stops it (Stop) once they are done.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
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

// Stop kills the server and waits for it to exit; its objects stay in Dir. Stopping a
// stopped server does nothing.
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

// Restart starts a stopped server again on its address, with the same objects.
func (s *Server) Restart() error { return s.start() }

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
