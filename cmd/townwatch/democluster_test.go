package main

import (
	"bufio"
	"bytes"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// demoTempDir is a TMPDIR for a demo-cluster process, so a test sees every temporary
// directory it makes. Not t.TempDir: PostgreSQL's directory inside it belongs to the
// postgres user (as root), who must be able to reach it.
func demoTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "democluster-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// The cluster demo as a person runs it: it prints both nodes, PostgreSQL, S3 and the
// logins; each node lets the printed supervisor in and lists every camera with the node
// recording it, shared between a and b; Ctrl+C (SIGINT to the terminal's process group)
// stops it cleanly, and then no process, listener or temporary directory of it is left.
func TestDemoClusterRunsAndCleansUp(t *testing.T) {
	t.Parallel()
	tmp := demoTempDir(t)
	cmd := exec.Command(binary, "demo-cluster", "-http-a", "127.0.0.1:0", "-http-b", "127.0.0.1:0", "-simcam", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	// A process group of its own, as a shell gives a foreground job: Ctrl+C signals it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })

	// What it prints, up to the last login (admin).
	var out []string
	deadline := time.After(3 * time.Minute)
	for done := false; !done; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("demo-cluster ended before printing its logins:\n%s\nstderr:\n%s", strings.Join(out, "\n"), tailLines(stderr.String(), 30))
			}
			out = append(out, l)
			done = strings.HasPrefix(strings.TrimSpace(l), "admin ")
		case <-deadline:
			t.Fatalf("demo-cluster printed no logins within 3 minutes:\n%s\nstderr:\n%s", strings.Join(out, "\n"), tailLines(stderr.String(), 30))
		}
	}
	printed := strings.Join(out, "\n")
	field := func(re string) string {
		t.Helper()
		m := regexp.MustCompile(`(?m)` + re).FindStringSubmatch(printed)
		if m == nil {
			t.Fatalf("demo-cluster's output has no %s:\n%s", re, printed)
		}
		return m[1]
	}
	nodes := map[string]string{"a": field(`^  node a +(http://\S+/)$`), "b": field(`^  node b +(http://\S+/)$`)}
	pgURL, pgDir := field(`^  PostgreSQL +(postgres://\S+) `), field(`^  PostgreSQL .*data in (\S+)\)$`)
	s3URL := field(`^  S3 +(http://\S+) `)
	files := field(`^  files +(\S+) `)
	password := field(`^  supervisor +(\S+)$`)
	var listeners []string
	for _, u := range []string{nodes["a"], nodes["b"], pgURL, s3URL} {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		if host := pu.Hostname(); host != "127.0.0.1" {
			t.Errorf("%s is not on 127.0.0.1", u)
		}
		listeners = append(listeners, pu.Host)
	}
	for _, dir := range []string{pgDir, files} {
		if filepath.Dir(dir) != tmp {
			t.Errorf("%s is not a temporary directory (TMPDIR %s)", dir, tmp)
		}
	}

	// Both nodes let the printed login in and agree on who records each camera: every
	// camera has a node, and both nodes record some.
	clients := map[string]*serveProc{}
	for n, base := range nodes {
		clients[n] = &serveProc{base: base, client: loginClient(t, base, "supervisor", password), stderr: &crashLogBuf{}}
	}
	cams := []string{"cam1", "cam2", "cam3", "cam4"}
	waitNodes(t, 90*time.Second, "the two nodes do not show the four cameras shared between a and b", clients, func(v map[string]map[string]clusterCamera) bool {
		ha, _ := holders(v["a"])
		hb, _ := holders(v["b"])
		var on []string
		for _, id := range cams {
			if ha[id] == "" || ha[id] != hb[id] {
				return false
			}
			on = append(on, ha[id])
		}
		return len(v["a"]) == len(cams) && slices.Contains(on, "a") && slices.Contains(on, "b")
	})

	// Ctrl+C.
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for range lines {
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("demo-cluster exited with %v after Ctrl+C:\n%s", err, tailLines(stderr.String(), 30))
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("demo-cluster did not stop within 3 minutes of Ctrl+C:\n%s", tailLines(stderr.String(), 30))
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("left behind after the stop: %s", filepath.Join(tmp, e.Name()))
	}
	for _, addr := range listeners {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after the stop", addr)
		}
	}
	// No process of the demo's is left: every one it started names its files or
	// PostgreSQL's in its command line.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if line := string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})); strings.Contains(line, files) || strings.Contains(line, pgDir) {
			t.Errorf("process %s still runs after the stop: %s", filepath.Base(filepath.Dir(p)), line)
		}
	}
}

// A demo cluster that cannot start a part says which and why, and leaves nothing behind.
func TestDemoClusterSaysWhatCannotStart(t *testing.T) {
	t.Parallel()
	tmp := demoTempDir(t)
	cmd := exec.Command(binary, "demo-cluster", "-http-a", "127.0.0.1:0", "-http-b", "127.0.0.1:0", "-simcam", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "PGTEST_BINDIR="+filepath.Join(tmp, "no-postgresql"))
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); err == nil || code != exitFailure {
		t.Fatalf("demo-cluster without PostgreSQL: exit %d (%v), want %d:\n%s", code, err, exitFailure, out)
	}
	if !regexp.MustCompile(`demo-cluster: PostgreSQL: initdb not found in \S+no-postgresql \(make deps installs postgresql-15\)`).Match(out) {
		t.Errorf("demo-cluster without PostgreSQL does not say so:\n%s", out)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("demo-cluster left %v behind after failing to start", left)
	}
}

// Flags that would put the demo off loopback, or leave it without cameras, are refused
// before anything starts, naming the flag.
func TestDemoClusterRejectsBadFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-http-a", "0.0.0.0:8080"}, `demo-cluster: -http-a "0.0.0.0:8080": must be a loopback address with a port`},
		{[]string{"-http-b", "127.0.0.1"}, `demo-cluster: -http-b "127.0.0.1": must be a loopback address with a port`},
		{[]string{"-cameras", "0"}, "demo-cluster: -cameras 0: must be at least 1"},
	} {
		code, _, stderr := lockRun(append([]string{"demo-cluster"}, tc.args...)...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("demo-cluster %v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr, exitUsage, tc.want)
		}
	}
}
