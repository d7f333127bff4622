package rtsptest

import (
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Video codecs ffmpeg can publish.
const (
	H264  = "h264"  // libx264
	H265  = "h265"  // libx265
	MJPEG = "mjpeg" // not supported by ingest: for the unsupported-codec tests
)

// Audio codecs ffmpeg can publish.
const (
	AAC  = "aac"  // MPEG-4 AAC-LC (RFC 3640 mpeg4-generic)
	Opus = "opus" // libopus
)

// Publish describes what StartFFmpeg sends: a testsrc2 pattern and optionally a sine tone.
type Publish struct {
	Video   string // H264 (default), H265, MJPEG, or "none" for an audio-only stream
	BFrames bool   // two B-frames between references (-bf 2) instead of none
	Audio   string // "", AAC or Opus
	Width   int    // default 320
	Height  int    // default 240
	FPS     int    // default 25
	GOP     int    // frames from one keyframe to the next, fixed (no scene cuts); default FPS
}

func (p *Publish) defaults() {
	if p.Video == "" {
		p.Video = H264
	}
	if p.Width == 0 {
		p.Width, p.Height = 320, 240
	}
	if p.FPS == 0 {
		p.FPS = 25
	}
	if p.GOP == 0 {
		p.GOP = p.FPS
	}
}

// FFmpeg is a running ffmpeg publisher.
type FFmpeg struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}
	err    error // Wait's result, set before done is closed
}

// Args returns ffmpeg's command line (without the program name) for publishing p to url
// over RTSP/TCP in real time.
func (p Publish) Args(url string) []string {
	p.defaults()
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error"}
	var maps []string
	in := 0
	if p.Video != "none" {
		src := fmt.Sprintf("testsrc2=size=%dx%d:rate=%d", p.Width, p.Height, p.FPS)
		args = append(args, "-re", "-f", "lavfi", "-i", src)
		maps = append(maps, "-map", strconv.Itoa(in)+":v")
		in++
	}
	if p.Audio != "" {
		args = append(args, "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000")
		maps = append(maps, "-map", strconv.Itoa(in)+":a")
	}
	args = append(args, maps...)

	bf := 0
	if p.BFrames {
		bf = 2
	}
	gop := strconv.Itoa(p.GOP)
	switch p.Video {
	case H264:
		// A fixed GOP (no scene cuts, min = max keyint) so tests can check the cadence.
		args = append(args, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
			"-g", gop, "-keyint_min", gop, "-sc_threshold", "0", "-bf", strconv.Itoa(bf))
	case H265:
		// Closed GOPs: every keyframe is an IDR, so a decoder starting at any keyframe
		// decodes every frame after it.
		args = append(args, "-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
			"-x265-params", fmt.Sprintf("log-level=error:keyint=%s:min-keyint=%s:scenecut=0:open-gop=0:bframes=%d", gop, gop, bf))
	case MJPEG:
		args = append(args, "-c:v", "mjpeg", "-pix_fmt", "yuvj420p", "-q:v", "8",
			"-huffman", "default") // RFC 2435 (RTP) allows only the standard tables
	case "none":
	default:
		panic("rtsptest: unknown video codec " + p.Video)
	}
	switch p.Audio {
	case "":
	case AAC:
		args = append(args, "-c:a", "aac", "-b:a", "64k", "-ac", "1")
	case Opus:
		args = append(args, "-c:a", "libopus", "-b:a", "32k", "-ac", "1")
	default:
		panic("rtsptest: unknown audio codec " + p.Audio)
	}
	return append(args, "-f", "rtsp", "-rtsp_transport", "tcp", url)
}

// StartFFmpeg runs ffmpeg publishing p to url (typically Server.URL(path)) until the test
// ends; cleanup kills it and waits for it. ffmpeg's stderr (errors only) goes to the test
// log when the test has failed.
func StartFFmpeg(t testing.TB, url string, p Publish) *FFmpeg {
	t.Helper()
	bin, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatalf("rtsptest: ffmpeg is needed (apt-get install ffmpeg): %v", err)
	}
	f := &FFmpeg{stderr: &lockedBuffer{}, done: make(chan struct{})}
	f.cmd = exec.Command(bin, p.Args(url)...)
	f.cmd.Stderr = f.stderr
	if err := f.cmd.Start(); err != nil {
		t.Fatalf("rtsptest: start ffmpeg: %v", err)
	}
	go func() { // owned by the cleanup below, which waits for done
		f.err = f.cmd.Wait()
		close(f.done)
	}()
	t.Cleanup(func() {
		f.Stop()
		if t.Failed() {
			if out := strings.TrimSpace(f.stderr.String()); out != "" {
				t.Logf("ffmpeg %s stderr:\n%s", strings.Join(f.cmd.Args[1:], " "), out)
			}
		}
	})
	return f
}

// Stop kills ffmpeg and waits for it to exit. Safe to call more than once.
func (f *FFmpeg) Stop() {
	select {
	case <-f.done:
		return
	default:
	}
	_ = f.cmd.Process.Kill()
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
		// Kill cannot be ignored; only a stuck stderr reader could get here.
	}
}

// Exited is closed when ffmpeg has exited (killed or on its own).
func (f *FFmpeg) Exited() <-chan struct{} { return f.done }

// Stderr is what ffmpeg printed so far.
func (f *FFmpeg) Stderr() string { return f.stderr.String() }

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
