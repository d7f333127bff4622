package simcam

import (
	"fmt"
	"os/exec"
	"strconv"
)

// NoiseClip describes a clip GenerateClip makes: testsrc2 under temporal noise, so the
// encoder spends its bitrate on every frame as a busy or dark (noisy) scene makes a
// camera do.
type NoiseClip struct {
	Width, Height int
	FPS           int
	Frames        int    // length; simcam loops it
	GOP           int    // frames from one IDR (with SPS/PPS) to the next
	Bitrate       string // x264 -b:v, e.g. "4M"
}

// GenerateClip writes c as a raw Annex-B H.264 file at path, for CameraSpec.File: tests
// and benchmarks that need a camera unlike the bundled clips (a high bitrate, a long
// GOP). It runs ffmpeg (libx264, no B-frames, as cameras send).
func GenerateClip(path string, c NoiseClip) error {
	g := strconv.Itoa(c.GOP)
	out, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%d", c.Width, c.Height, c.FPS),
		"-vf", "noise=alls=30:allf=t", "-frames:v", strconv.Itoa(c.Frames),
		"-c:v", "libx264", "-preset", "ultrafast", "-g", g, "-keyint_min", g, "-sc_threshold", "0", "-bf", "0",
		"-pix_fmt", "yuv420p", "-x264-params", "repeat-headers=1",
		"-b:v", c.Bitrate, "-maxrate", c.Bitrate, "-bufsize", "2M", "-f", "h264", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ffmpeg: %w\n%s", err, out)
	}
	return nil
}
