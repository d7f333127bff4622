package benchkit

import "testing"

func TestParseProcStat(t *testing.T) {
	// A command name with spaces and parentheses, as a process may set it;
	// utime 1234 and stime 567 are fields 14 and 15.
	const stat = "4242 (town (watch) x) S 1 4242 4242 0 -1 4194560 3500 0 0 0 1234 567 0 0 20 0 12 0 98765 1234567890 4321 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	got, err := ParseProcStat([]byte(stat))
	if err != nil || got != (ProcCPU{Utime: 1234, Stime: 567}) || got.Total() != 1801 {
		t.Errorf("ParseProcStat = %+v, %v; want utime 1234, stime 567", got, err)
	}
	for _, bad := range []string{"", "4242 townwatch S 1", "4242 (townwatch) S 1 2 3", "4242 (t) S 1 1 1 0 -1 0 0 0 0 0 x 567 0"} {
		if _, err := ParseProcStat([]byte(bad)); err == nil {
			t.Errorf("ParseProcStat(%q): no error", bad)
		}
	}
}

func TestParseStatusKB(t *testing.T) {
	const status = "Name:\ttownwatch\nVmPeak:\t 1300000 kB\nVmHWM:\t   45678 kB\nVmRSS:\t   40000 kB\nThreads:\t12\n"
	if got, err := ParseStatusKB([]byte(status), "VmHWM"); err != nil || got != 45678*1024 {
		t.Errorf("VmHWM = %d, %v; want %d", got, err, 45678*1024)
	}
	if got, err := ParseStatusKB([]byte(status), "VmRSS"); err != nil || got != 40000*1024 {
		t.Errorf("VmRSS = %d, %v", got, err)
	}
	for key, want := range map[string]string{
		"VmSwap":  "proc status: no VmSwap",
		"Threads": `proc status: Threads: unexpected value "12"`,
	} {
		if _, err := ParseStatusKB([]byte(status), key); err == nil || err.Error() != want {
			t.Errorf("%s: err %v, want %q", key, err, want)
		}
	}
}
