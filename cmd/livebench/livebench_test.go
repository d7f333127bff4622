package main

import (
	"bytes"
	"strings"
	"testing"
)

// Only a payload that starts an IDR slice makes a frame count as the first a viewer can
// decode: a single IDR NAL, a STAP-A holding one (after SPS and PPS, as cameras send
// them), or the first fragment of a fragmented one.
func TestCarriesIDR(t *testing.T) {
	for _, c := range []struct {
		name    string
		payload []byte
		want    bool
	}{
		{"IDR slice", []byte{0x65, 0x88, 0x84}, true},
		{"P slice", []byte{0x41, 0x9a}, false},
		{"SPS alone", []byte{0x67, 0x42}, false},
		{"STAP-A with SPS, PPS, IDR", []byte{0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce, 0, 2, 0x65, 0x88}, true},
		{"STAP-A with SPS, PPS only", []byte{0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce}, false},
		{"STAP-A cut short", []byte{0x78, 0, 9, 0x65}, false},
		{"FU-A start of an IDR", []byte{0x7c, 0x85, 0x88}, true},
		{"FU-A middle of an IDR", []byte{0x7c, 0x05, 0x88}, false},
		{"FU-A start of a P slice", []byte{0x7c, 0x81, 0x9a}, false},
		{"FU-A without its header", []byte{0x7c}, false},
		{"empty", nil, false},
	} {
		if got := carriesIDR(c.payload); got != c.want {
			t.Errorf("%s: carriesIDR = %v, want %v", c.name, got, c.want)
		}
	}
}

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
