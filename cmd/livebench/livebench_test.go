package main

import (
	"bytes"
	"strings"
	"testing"
)

// The verdict holds townwatch's peak RSS to 0.8 × MediaMTX's for each viewer count, with
// the CPU ratio beside it.
func TestSideBySideVerdicts(t *testing.T) {
	const mb = 1 << 20
	got := sideBySideVerdicts([]sbsRow{
		{server: 0, n: 16, peakRSS: 60 * mb, cpuSec: 1.5}, {server: 1, n: 16, peakRSS: 100 * mb, cpuSec: 2},
		{server: 0, n: 32, peakRSS: 90 * mb, cpuSec: 3}, {server: 1, n: 32, peakRSS: 100 * mb, cpuSec: 3},
	})
	want := []string{
		"side by side: 16 viewers: townwatch/MediaMTX peak RSS 60.0/100.0 MiB = 0.60× (target <= 0.8×: met); CPU 1.50/2.00 s = 0.75×",
		"side by side: 32 viewers: townwatch/MediaMTX peak RSS 90.0/100.0 MiB = 0.90× (target <= 0.8×: NOT met); CPU 3.00/3.00 s = 1.00×",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("verdicts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// -townwatch names the binary of the side-by-side run; without -mediamtx the stand-in
// server runs, so it is refused rather than ignored, before anything starts.
func TestTownwatchFlagNeedsMediaMTX(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"-townwatch", "/nonexistent/townwatch"}, strings.NewReader(""), &stdout, &stderr); code != 2 {
		t.Errorf("exit code %d, want 2; stderr: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "-townwatch applies with -mediamtx only") {
		t.Errorf("stderr does not say why: %q", stderr.String())
	}
}
