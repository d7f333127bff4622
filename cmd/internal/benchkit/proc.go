package benchkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// StopTimeout is how long a Child gets to exit after SIGTERM before it is
// killed: townwatch closes its segments and catalog, simcam its sessions,
// both within a second or two; more means it hangs, which is reported.
const StopTimeout = 15 * time.Second

// Child is a process a benchmark started. Its stdout and stderr go to files
// in the work directory, so nothing it prints can block it.
type Child struct {
	Name    string
	LogPath string // its stderr
	cmd     *exec.Cmd
	done    chan struct{} // closed when it has exited
	err     error         // Wait's result, valid after done
}

// StartChild starts bin with args, stdout to outPath and stderr to logPath.
// The Child gets its own process group, so a Ctrl+C at the terminal reaches
// only the benchmark, which then stops its children in order; Pdeathsig stops
// them should the benchmark itself die.
func StartChild(name, bin string, args []string, outPath, logPath string) (*Child, error) {
	out, err := os.Create(outPath)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &Child{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// Pid is the process id (also its process group's).
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Err is how the Child exited (Wait's result), valid once Exited.
func (c *Child) Err() error { return c.err }

// Exited reports whether the Child has exited.
func (c *Child) Exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and waits for the Child to exit, killing its process
// group after StopTimeout. It returns the child's exit error (nil for a
// clean exit) or an error saying it had to be killed. Idempotent.
func (c *Child) Stop() error {
	if !c.Exited() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(StopTimeout):
			_ = syscall.Kill(-c.Pid(), syscall.SIGKILL) // its own group (Setpgid)
			<-c.done
			return fmt.Errorf("%s did not exit within %v of SIGTERM and was killed", c.Name, StopTimeout)
		}
	}
	if c.err != nil {
		return fmt.Errorf("%s: %w", c.Name, c.err)
	}
	return nil
}

// LogTail is the end of the child's stderr, for error messages.
func (c *Child) LogTail() string {
	b, err := os.ReadFile(c.LogPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-15):], "\n")
}

// ProcCPU is a process's CPU time so far in clock ticks.
type ProcCPU struct{ Utime, Stime uint64 }

func (p ProcCPU) Total() uint64 { return p.Utime + p.Stime }

// ParseProcStat reads utime and stime from the text of /proc/<pid>/stat
// (proc(5): fields 14 and 15). The command name (field 2) is in
// parentheses and may itself contain spaces and parentheses, so fields are
// counted from the last ')'.
func ParseProcStat(b []byte) (ProcCPU, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return ProcCPU{}, errors.New("proc stat: no ')' after the command name")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 13 {
		return ProcCPU{}, fmt.Errorf("proc stat: %d fields after the command name, want >= 13", len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return ProcCPU{}, fmt.Errorf("proc stat: utime/stime: %w", err)
	}
	return ProcCPU{Utime: ut, Stime: st}, nil
}

func ReadProcCPU(pid int) (ProcCPU, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcCPU{}, err
	}
	return ParseProcStat(b)
}

// ParseStatusKB returns a "Key:   123 kB" field of /proc/<pid>/status in
// bytes, e.g. VmHWM (peak resident set size) or VmRSS.
func ParseStatusKB(b []byte, key string) (uint64, error) {
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != key {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("proc status: %s: unexpected value %q", key, strings.TrimSpace(v))
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc status: %s: %w", key, err)
		}
		return n * 1024, nil
	}
	return 0, fmt.Errorf("proc status: no %s", key)
}

func ReadStatusKB(pid int, key string) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return ParseStatusKB(b, key)
}

// ClockTicks is the kernel's USER_HZ, the unit of /proc CPU times: what
// `getconf CLK_TCK` prints, 100 on every Linux port Go supports.
func ClockTicks(ctx context.Context) (int, error) {
	out, err := exec.CommandContext(ctx, "getconf", "CLK_TCK").Output()
	if err != nil {
		return 0, fmt.Errorf("getconf CLK_TCK: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("getconf CLK_TCK: unexpected output %q", out)
	}
	return n, nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for a server whose
// configuration needs a number (simcam, which prints its address, binds :0 itself).
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Sleep waits d, or returns the context's error when it ends first (Ctrl+C stops a
// benchmark in the middle of a window).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// MiB is a byte count in mebibytes, as the reports print them.
func MiB(b uint64) float64 { return float64(b) / (1 << 20) }
