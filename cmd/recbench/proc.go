package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/townwatch/townwatch/cmd/internal/benchkit"
)

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
func childrenCPU(pid int) (benchkit.ProcCPU, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return benchkit.ProcCPU{}, err
	}
	var sum benchkit.ProcCPU
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
		c, err := benchkit.ParseProcStat(b)
		if err != nil {
			return benchkit.ProcCPU{}, err
		}
		sum.Utime += c.Utime
		sum.Stime += c.Stime
	}
	return sum, nil
}
