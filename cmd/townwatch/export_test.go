package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// exportFixtures are recorder/testdata/export's segments (2 s each, 25 fps, 64x48) and
// where the test puts them: a and b back to back, then a 2 s hole, then c.
var exportFixtures = []struct {
	file  string
	start time.Duration
	gap   bool
}{{"a.mp4", 0, true}, {"b.mp4", 2 * time.Second, false}, {"c.mp4", 6 * time.Second, true}}

var exportT0 = time.Date(2025, 3, 14, 8, 0, 0, 0, time.UTC)

// exportSetup makes a storage directory holding the fixtures, indexed in a catalog, and a
// configuration pointing at it with camera cam1; it returns the configuration's path.
func exportSetup(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	st, err := recorder.OpenStorage(data)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	ctx := context.Background()
	cat, err := catalog.Open(ctx, filepath.Join(data, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	for _, f := range exportFixtures {
		b, err := os.ReadFile(filepath.Join("..", "..", "recorder", "testdata", "export", f.file))
		if err != nil {
			t.Fatal(err)
		}
		start := exportT0.Add(f.start)
		rel := recorder.SegmentPath("cam1", start)
		if err := os.MkdirAll(filepath.Dir(filepath.Join(data, rel)), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(data, rel), b, 0o640); err != nil {
			t.Fatal(err)
		}
		id, err := cat.CreateSegment(ctx, catalog.Segment{Camera: "cam1", Stream: "main", Start: start, Path: rel,
			Codec: "H264", Width: 64, Height: 48, GapBefore: f.gap})
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if err := cat.CloseSegment(ctx, id, start.Add(2*time.Second), int64(len(b)), 50, hex.EncodeToString(sum[:]), nil); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "townwatch.yaml")
	yaml := "storage:\n  path: " + data + "\ncameras:\n  - id: cam1\n    main:\n      url: rtsp://127.0.0.1:8554/cam1\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// outDirEntries lists what is in the output directory, to catch leftover temporary files.
func outDirEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// exportWhy are the answers the access log needs for every copy of footage.
var exportWhy = []string{"-reason", "hit and run, Náměstí", "-case", "MP-123/2025", "-recipient", "Policie ČR, KŘ Plzeň"}

func rfc(d time.Duration) string { return exportT0.Add(d).Format(time.RFC3339Nano) }

func TestExportCommand(t *testing.T) {
	t.Parallel()
	cfg := exportSetup(t)
	outDir := t.TempDir()
	out := filepath.Join(outDir, "clip.mp4")

	// From 1.5 s (the keyframe is at 1 s) to 7 s, across the hole.
	code, stdout, stderr := runBinary(t, append([]string{"export", "-config", cfg, "-camera", "cam1", "-from", rfc(1500 * time.Millisecond), "-to", rfc(7 * time.Second), "-o", out}, exportWhy...)...)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	// 1 s–4 s and 6 s–7 s: 75 + 25 frames, the hole reported.
	for _, want := range []string{out + ": camera cam1 from " + rfc(time.Second) + " to " + rfc(7*time.Second) + " (6s), 100 frames from 3 segment(s)",
		"1 gap(s) without footage: " + rfc(4*time.Second) + "–" + rfc(6*time.Second) + " (2s)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary %q does not say %q", stdout, want)
		}
	}
	if strings.Count(stdout, "\n") != 1 || stderr != "" {
		t.Errorf("want one summary line and a silent stderr (not a terminal: no progress bar)\nstdout: %s\nstderr: %s", stdout, stderr)
	}
	if got := outDirEntries(t, outDir); len(got) != 1 || got[0] != "clip.mp4" {
		t.Errorf("output directory holds %v, want just clip.mp4", got)
	}
	if o, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", out, "-f", "null", "-").CombinedOutput(); err != nil || len(o) > 0 {
		t.Fatalf("ffmpeg cannot decode the clip cleanly: %v\n%s", err, o)
	}

	// An existing file is never replaced.
	before, _ := os.ReadFile(out)
	code, _, stderr = runBinary(t, append([]string{"export", "-config", cfg, "-camera", "cam1", "-from", rfc(0), "-to", rfc(time.Second), "-o", out}, exportWhy...)...)
	if after, _ := os.ReadFile(out); code != exitUsage || !strings.Contains(stderr, "-o "+out+" already exists") || !bytes.Equal(before, after) {
		t.Errorf("export over an existing file: exit %d, stderr %q, file changed: %v", code, stderr, !bytes.Equal(before, after))
	}
}

func TestExportCommandFailures(t *testing.T) {
	t.Parallel()
	cfg := exportSetup(t)
	outDir := t.TempDir()
	out := filepath.Join(outDir, "clip.mp4")
	ok := append([]string{"-config", cfg, "-camera", "cam1", "-from", rfc(0), "-to", rfc(time.Second), "-o", out}, exportWhy...)
	// with returns the good arguments with some flags' values replaced.
	with := func(flagValues ...string) []string {
		args := append([]string{"export"}, ok...)
		for i := 0; i < len(flagValues); i += 2 {
			args[slices.Index(args, flagValues[i])+1] = flagValues[i+1]
		}
		return args
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no camera", with("-camera", ""), exitUsage, "export: -camera is required"},
		{"no reason", with("-reason", ""), exitUsage, "export: -reason is required"},
		{"blank case", with("-case", "  "), exitUsage, "export: -case is required and must not be blank"},
		{"no recipient", with("-recipient", ""), exitUsage, "export: -recipient is required"},
		{"no output", with("-o", ""), exitUsage, "export: -o is required"},
		{"bad from", with("-from", "yesterday"), exitUsage, `-from "yesterday" is not an RFC 3339 time`},
		{"to before from", with("-to", rfc(-time.Second)), exitUsage, "-to (" + rfc(-time.Second) + ") must be after -from (" + rfc(0) + ")"},
		{"unknown flag", append([]string{"export", "-format", "avi"}, ok...), exitUsage, "flag provided but not defined: -format"},
		{"no footage", with("-from", rfc(time.Hour), "-to", rfc(2*time.Hour)), exitFailure, "no recorded footage"},
		{"missing config", with("-config", filepath.Join(outDir, "none.yaml")), exitUsage, "none.yaml"},
		{"camera not configured, no footage", with("-camera", "cam9"), exitFailure, `camera "cam9" is not in ` + cfg + " (cameras: cam1) and has no footage"},
	} {
		code, stdout, stderr := runBinary(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) || stdout != "" {
			t.Errorf("%s: exit %d (want %d)\nstdout: %s\nstderr: %s\nwant stderr to say %q", tc.name, code, tc.code, stdout, stderr, tc.want)
		}
		if got := outDirEntries(t, outDir); len(got) != 0 {
			t.Errorf("%s: left %v in the output directory", tc.name, got)
		}
	}
}

// TestProgressBar: the bar fills to 100% and ends its line.
func TestProgressBar(t *testing.T) {
	var b bytes.Buffer
	bar := &progressBar{w: &b}
	bar.update(0, 4<<20)
	bar.update(4<<20, 4<<20) // the end is drawn however soon it comes
	bar.finish()
	want := "\rexport [                              ]   0% 0 B of 4.0 MiB" +
		"\rexport [##############################] 100% 4.0 MiB of 4.0 MiB\n"
	if b.String() != want {
		t.Errorf("bar drew %q\nwant      %q", b.String(), want)
	}
}
