package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stopTimeout is how long a child gets to exit after SIGTERM before it is
// killed: townwatch closes its segments and catalog, simcam its sessions,
// both within a second or two; more means it hangs, which is reported.
const stopTimeout = 15 * time.Second

// child is a process recbench started. Its stdout and stderr go to files
// in the work directory, so nothing it prints can block it.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when it has exited
	err     error         // Wait's result, valid after done
}

// startChild starts bin with args, stdout to outPath and stderr to logPath.
// The child gets its own process group, so a Ctrl+C at the terminal reaches
// only recbench, which then stops its children in order; Pdeathsig stops
// them should recbench itself die.
func startChild(name, bin string, args []string, outPath, logPath string) (*child, error) {
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
	c := &child{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// exited reports whether the child has exited.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits for the child to exit, killing its process
// group after stopTimeout. It returns the child's exit error (nil for a
// clean exit) or an error saying it had to be killed. Idempotent.
func (c *child) stop() error {
	if !c.exited() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(stopTimeout):
			_ = syscall.Kill(-c.pid(), syscall.SIGKILL) // its own group (Setpgid)
			<-c.done
			return fmt.Errorf("%s did not exit within %v of SIGTERM and was killed", c.name, stopTimeout)
		}
	}
	if c.err != nil {
		return fmt.Errorf("%s: %w", c.name, c.err)
	}
	return nil
}

// logTail is the end of the child's stderr, for error messages.
func (c *child) logTail() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-15):], "\n")
}

// procCPU is a process's CPU time so far in clock ticks.
type procCPU struct{ utime, stime uint64 }

func (p procCPU) total() uint64 { return p.utime + p.stime }

// parseProcStat reads utime and stime from the text of /proc/<pid>/stat
// (proc(5): fields 14 and 15). The command name (field 2) is in
// parentheses and may itself contain spaces and parentheses, so fields are
// counted from the last ')'.
func parseProcStat(b []byte) (procCPU, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procCPU{}, errors.New("proc stat: no ')' after the command name")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 13 {
		return procCPU{}, fmt.Errorf("proc stat: %d fields after the command name, want >= 13", len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return procCPU{}, fmt.Errorf("proc stat: utime/stime: %w", err)
	}
	return procCPU{utime: ut, stime: st}, nil
}

func readProcCPU(pid int) (procCPU, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procCPU{}, err
	}
	return parseProcStat(b)
}

// parseStatusKB returns a "Key:   123 kB" field of /proc/<pid>/status in
// bytes, e.g. VmHWM (peak resident set size) or VmRSS.
func parseStatusKB(b []byte, key string) (uint64, error) {
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

func readStatusKB(pid int, key string) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseStatusKB(b, key)
}

// hostCPU is the machine's CPU time from the first line of /proc/stat, in
// ticks: busy excludes idle and iowait.
type hostCPU struct{ busy, total uint64 }

func parseHostStat(b []byte) (hostCPU, error) {
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return hostCPU{}, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var h hostCPU
	for i, s := range f[1:] {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return hostCPU{}, fmt.Errorf("/proc/stat: %w", err)
		}
		// user nice system idle iowait irq softirq steal guest guest_nice;
		// guest time is already counted in user and nice.
		if i >= 8 {
			break
		}
		h.total += n
		if i != 3 && i != 4 {
			h.busy += n
		}
	}
	return h, nil
}

func readHostCPU() (hostCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return hostCPU{}, err
	}
	return parseHostStat(b)
}

// clockTicks is the kernel's USER_HZ, the unit of /proc CPU times: what
// `getconf CLK_TCK` prints, 100 on every Linux port Go supports.
func clockTicks(ctx context.Context) (int, error) {
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

// dirBytes is the total size of the regular files under dir. Files that
// vanish during the walk (retention, renames) are skipped.
func dirBytes(dir string) (uint64, error) {
	var total uint64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		total += uint64(info.Size())
		return nil
	})
	return total, err
}

// parsePPid reads the parent's pid (field 4) from the text of /proc/<pid>/stat.
func parsePPid(b []byte) (int, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("proc stat: no ')' after the command name")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, errors.New("proc stat: no ppid")
	}
	return strconv.Atoi(f[1])
}

// childrenCPU is the CPU time so far of the running children of pid (townwatch's motion
// worker, which also makes the scrub-preview thumbnails), summed. A child that exited
// takes its time with it: compare two readings only while the same children run.
func childrenCPU(pid int) (procCPU, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return procCPU{}, err
	}
	var sum procCPU
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		if ppid, err := parsePPid(b); err != nil || ppid != pid {
			continue
		}
		c, err := parseProcStat(b)
		if err != nil {
			return procCPU{}, err
		}
		sum.utime += c.utime
		sum.stime += c.stime
	}
	return sum, nil
}
