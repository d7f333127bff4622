package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// clipName is the cached clip: 1080p, 25 fps, 4 Mbit/s, an IDR with SPS/PPS every 2 s,
// no B-frames (as cameras send for live view), 60 s looped by simcam.
// TODO(lead): recbench's ensureClip makes the same clip; one shared helper should serve
// both benchmarks (see the report).
const clipName = "live-1080p25-4M-gop50.h264"

func ensureClip(ctx context.Context, dir string, logf func(string, ...any)) (string, error) {
	path := filepath.Join(dir, clipName)
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp := path + ".part"
	defer os.Remove(tmp)
	logf("generating the benchmark clip with ffmpeg (about a minute) ...")
	out, err := exec.CommandContext(ctx, "ffmpeg", "-y", "-v", "error", "-nostdin",
		"-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=25", "-t", "60", "-an", "-pix_fmt", "yuv420p",
		"-c:v", "libx264", "-preset", "veryfast", "-b:v", "4M", "-maxrate", "4M", "-bufsize", "8M",
		"-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-bf", "0", "-x264-params", "repeat-headers=1",
		"-f", "h264", tmp).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ffmpeg: %w\n%s", err, out)
	}
	// Renamed only once complete: an interrupted run leaves no half clip behind.
	return path, os.Rename(tmp, path)
}
