package decode

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/motion/internal/testclip"
)

// motionClip is simcam's 640×360 25 fps street clip (60 s, IDR every 2 s, no B-frames).
var motionClip = filepath.Join("..", "..", "ingest", "simcam", "clips", "motion.h264")

// epoch is an arbitrary wall-clock start for loaded clips.
var epoch = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// Clips made from motionClip with ffmpeg (cached by testclip.Make).
var (
	// h265Args: 20 s of the street clip in H.265, IRAP every 2 s.
	h265Args = []string{"-i", motionClip, "-frames:v", "500", "-c:v", "libx265", "-preset", "ultrafast",
		"-x265-params", "log-level=error:keyint=50:min-keyint=50:scenecut=0:bframes=0", "-f", "hevc"}
	// hdArgs: the street clip scaled to 1080p, 25 fps, 4 Mbit/s H.264 High, GOP 2 s: a
	// camera's main stream.
	hdArgs = []string{"-i", motionClip, "-vf", "scale=1920:1080", "-c:v", "libx264", "-preset", "veryfast",
		"-profile:v", "high", "-b:v", "4M", "-maxrate", "4M", "-bufsize", "8M",
		"-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-bf", "0", "-f", "h264"}
	// hdShortArgs: the first 10 s of hdArgs, enough for tests and quicker to make.
	hdShortArgs = slices.Concat(hdArgs[:2], []string{"-frames:v", "250"}, hdArgs[2:])
	// subArgs: the street clip at 15 fps, GOP 30 (2 s): a camera's sub stream.
	subArgs = []string{"-i", motionClip, "-r", "15", "-c:v", "libx264", "-preset", "veryfast",
		"-profile:v", "main", "-b:v", "400k", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0",
		"-bf", "0", "-f", "h264"}
	// bframesArgs: 10 s of motion with two B-frames between references, as some encoders send.
	bframesArgs = []string{"-i", motionClip, "-ss", "10", "-frames:v", "250", "-c:v", "libx264", "-preset", "veryfast",
		"-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-bf", "2", "-b-pyramid", "none", "-f", "h264"}
)

func load(tb testing.TB, path string, codec ingest.Codec, fps int) []*ingest.Unit {
	tb.Helper()
	units, err := testclip.Load(path, codec, fps, epoch)
	if err != nil {
		tb.Fatal(err)
	}
	return units
}

// reference returns ffmpeg's own decode of path, scaled to w×h gray with swscale's area
// filter, one slice per picture in display order. inputArgs go before -i (e.g. -skip_frame
// nokey). The luma plane is taken as is: ffmpeg's format=gray would also expand limited range
// (16–235) to full, which the decoder deliberately does not do.
// Results are kept for the test binary's life: several tests compare against the same clip.
func reference(tb testing.TB, path string, w, h int, inputArgs ...string) [][]byte {
	tb.Helper()
	args := append([]string{"-hide_banner", "-nostdin", "-v", "error"}, inputArgs...)
	key := strings.Join(append(args, path, strconv.Itoa(w), strconv.Itoa(h)), "\x00")
	refsMu.Lock()
	defer refsMu.Unlock()
	if frames, ok := refs[key]; ok {
		return frames
	}
	args = append(args, "-i", path, "-vf", "scale="+strconv.Itoa(w)+":"+strconv.Itoa(h)+":flags=area,format=yuv420p,extractplanes=y",
		"-fps_mode", "passthrough", "-f", "rawvideo", "-")
	cmd := exec.Command("ffmpeg", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("ffmpeg reference: %v\n%s", err, stderr.Bytes())
	}
	if len(out)%(w*h) != 0 {
		tb.Fatalf("ffmpeg reference: %d bytes is not a whole number of %dx%d frames", len(out), w, h)
	}
	var frames [][]byte
	for len(out) > 0 {
		frames, out = append(frames, out[:w*h]), out[w*h:]
	}
	refs[key] = frames
	return frames
}

var (
	refsMu sync.Mutex
	refs   = map[string][][]byte{}
)

// ffmpegBGR returns ffmpeg's rendering of picture k of path as packed BGR at w×h.
func ffmpegBGR(tb testing.TB, path string, k, w, h int) []byte {
	tb.Helper()
	cmd := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", path,
		"-vf", "select=eq(n\\,"+strconv.Itoa(k)+"),scale="+strconv.Itoa(w)+":"+strconv.Itoa(h),
		"-frames:v", "1", "-pix_fmt", "bgr24", "-f", "rawvideo", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || len(out) != w*h*3 {
		tb.Fatalf("ffmpeg BGR picture %d: %d bytes, %v\n%s", k, len(out), err, stderr.Bytes())
	}
	return out
}

// meanAbsDiff compares a gray Mat with a reference picture of the same size, in gray levels.
func meanAbsDiff(tb testing.TB, m gocv.Mat, ref []byte) float64 {
	tb.Helper()
	if m.Type() != gocv.MatTypeCV8UC1 || m.Rows()*m.Cols() != len(ref) {
		tb.Fatalf("picture is %dx%d type %v, reference has %d bytes", m.Cols(), m.Rows(), m.Type(), len(ref))
	}
	data, err := m.DataPtrUint8()
	if err != nil {
		tb.Fatal(err)
	}
	sum := 0
	for i, v := range ref {
		d := int(data[i]) - int(v)
		sum += max(d, -d)
	}
	return float64(sum) / float64(len(ref))
}

func newDecoder(tb testing.TB, codec ingest.Codec, width int) *Decoder {
	tb.Helper()
	d, err := New(codec, width)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(d.Close)
	return d
}
