// Package benchkit holds what the benchmark programs (cmd/recbench, cmd/livebench) share:
// the cached 1080p clip they serve through simcam, so both measure against the same
// footage; their flags; and the processes they start and measure: townwatch (built as
// make build does, with its account made as an operator would) and MediaMTX beside it,
// their CPU time and peak RSS read from /proc.
package benchkit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The benchmark clip, as the recorder issue specifies it: 1080p, 25 fps,
// about 4 Mbit/s, an IDR every 50 frames and nowhere else, no B-frames,
// SPS/PPS before every IDR (so a camera joined mid-stream is decodable at
// the next one). testsrc2 moves everywhere in every frame, so the encoder
// spends the bitrate evenly instead of coasting on a still picture.
const (
	ClipSeconds = 60
	ClipFPS     = 25
	ClipSize    = "1920x1080"
	ClipBitrate = "4M"
	ClipGOP     = 50
)

// clipArgs are ffmpeg's arguments to write the clip to out. yuv420p because
// testsrc2 is RGB and libx264 would otherwise pick 4:4:4, which cameras do
// not send and many decoders refuse.
func clipArgs(out string) []string {
	return []string{"-y", "-v", "error", "-nostdin",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%s:rate=%d", ClipSize, ClipFPS), "-t", strconv.Itoa(ClipSeconds),
		"-an", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "veryfast",
		"-b:v", ClipBitrate, "-maxrate", ClipBitrate, "-bufsize", "8M",
		"-g", strconv.Itoa(ClipGOP), "-keyint_min", strconv.Itoa(ClipGOP), "-sc_threshold", "0", "-bf", "0",
		"-x264-params", "repeat-headers=1", "-f", "h264", out}
}

// DefaultCacheDir is where the clip is kept between runs: the user cache
// directory (~/.cache/townwatch-bench), next to Go's build cache.
func DefaultCacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "townwatch-bench")
	}
	return filepath.Join(dir, "townwatch-bench")
}

// EnsureClip returns the path of the clip in cacheDir, generating it first
// unless a complete one is there. The file name carries a hash of the
// ffmpeg arguments, so changing them makes a new clip; a ".size" stamp,
// written after the clip is complete, tells a finished clip from one an
// interrupted run left behind.
func EnsureClip(ctx context.Context, cacheDir string, logf func(string, ...any)) (string, error) {
	h := sha256.Sum256([]byte(strings.Join(clipArgs("OUT"), "\x00")))
	path := filepath.Join(cacheDir, "clip-"+hex.EncodeToString(h[:6])+".h264")
	stamp := path + ".size"
	if want, err := os.ReadFile(stamp); err == nil {
		if fi, err := os.Stat(path); err == nil && strconv.FormatInt(fi.Size(), 10) == strings.TrimSpace(string(want)) {
			return path, nil
		}
	}

	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return "", fmt.Errorf("ffmpeg not found (install it with `make deps`): %w", err)
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(cacheDir, "clip-*.h264.part")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name()) // after a failure; renamed away on success

	logf("generating the benchmark clip with ffmpeg (%s, %d fps, %sbit/s, %d s; takes about a minute on 2 cores) ...",
		ClipSize, ClipFPS, ClipBitrate, ClipSeconds)
	start := time.Now()
	out, err := exec.CommandContext(ctx, ffmpeg, clipArgs(tmp.Name())...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ffmpeg: %w\n%s", err, out)
	}
	fi, err := os.Stat(tmp.Name())
	if err != nil {
		return "", err
	}
	if fi.Size() == 0 {
		return "", fmt.Errorf("ffmpeg wrote an empty clip")
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	if err := os.WriteFile(stamp, []byte(strconv.FormatInt(fi.Size(), 10)+"\n"), 0o644); err != nil {
		return "", err
	}
	logf("clip ready in %.0f s: %s", time.Since(start).Seconds(), path)
	return path, nil
}
