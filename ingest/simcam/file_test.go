package simcam

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// Clip files made by encodeFile: 1 s at 30 fps, an IDR every 15 frames.
const (
	fileFrames = 30
	fileGOP    = 15
)

// encodeFile has ffmpeg write a small moving test pattern as a raw H.264
// Annex-B file (what `townwatch simcam -clip` and cmd/recbench serve) and
// returns its path. bframes > 0 makes a file New must reject.
func encodeFile(t *testing.T, bframes int) string {
	t.Helper()
	ffmpeg := needTool(t, "ffmpeg")
	path := filepath.Join(t.TempDir(), "clip.h264")
	out, err := exec.Command(ffmpeg, "-v", "error", "-f", "lavfi",
		"-i", fmt.Sprintf("testsrc2=size=320x180:rate=30:duration=%g", float64(fileFrames)/30),
		"-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast", "-threads", "1",
		"-g", fmt.Sprint(fileGOP), "-keyint_min", fmt.Sprint(fileGOP), "-sc_threshold", "0",
		"-bf", fmt.Sprint(bframes), "-x264-params", "repeat-headers=1", "-f", "h264", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	return path
}

// TestNewFileSharedFrames serves one file as three cameras, two of them
// naming it differently: New parses it once (the cameras share the frames)
// and applies each camera's frame rate, 25 by default.
func TestNewFileSharedFrames(t *testing.T) {
	path := encodeFile(t, 0)
	alias := filepath.Join(filepath.Dir(path), ".", "..", filepath.Base(filepath.Dir(path)), "clip.h264")
	s, err := New(Config{Listen: "127.0.0.1:0", Cameras: []CameraSpec{
		{Path: "a", File: path},
		{Path: "b", File: path, FPS: 30},
		{Path: "c", File: alias, FPS: 10},
		{Path: "d", Clip: ClipStatic},
	}})
	if err != nil {
		t.Fatal(err)
	}
	a := s.cameras["a"]
	if len(a.frames) != fileFrames {
		t.Fatalf("%d frames, want %d", len(a.frames), fileFrames)
	}
	for i, au := range a.frames {
		if au.keyframe != (i%fileGOP == 0) || au.keyframe != h264.IsRandomAccess(au.nalus) {
			t.Errorf("frame %d: keyframe = %v", i, au.keyframe)
		}
	}
	var sps h264.SPS
	if err := sps.Unmarshal(a.forma.SPS); err != nil || sps.Width() != 320 || sps.Height() != 180 {
		t.Errorf("SDP SPS: %dx%d (%v), want the file's 320x180", sps.Width(), sps.Height(), err)
	}
	for path, fps := range map[string]int{"a": FrameRate, "b": 30, "c": 10, "d": FrameRate} {
		c := s.cameras[path]
		if c.spec.FPS != fps {
			t.Errorf("camera %s: fps %d, want %d", path, c.spec.FPS, fps)
		}
		if path != "d" && (&c.frames[0] != &a.frames[0] || len(c.frames) != len(a.frames)) {
			t.Errorf("camera %s: frames not shared with camera a: the file was parsed again", path)
		}
	}
	if cd := loadTestClip(t, ClipStatic); &s.cameras["d"].frames[0] != &cd.frames[0] {
		t.Error("camera d: not the bundled static clip")
	}
}

// TestNewFileErrors checks that New reports every unusable file once, with
// the file named, after the config is valid.
func TestNewFileErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.h264")
	startsWithP := filepath.Join(dir, "p.h264")
	ref := loadTestClip(t, ClipStatic)
	raw, err := h264.AnnexB{ref.sps, ref.pps, {0x41, 0x9a, 0x00}, {0x65, 0x88, 0x84}}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(startsWithP, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	bframes := encodeFile(t, 2)

	_, err = New(Config{Listen: "127.0.0.1:0", Cameras: []CameraSpec{
		{Path: "a", File: missing}, {Path: "b", File: missing},
		{Path: "c", File: startsWithP},
		{Path: "d", File: bframes},
	}})
	want := "simcam: read file: open " + missing + ": no such file or directory\n" +
		"simcam: parse file " + startsWithP + ": first access unit is not an IDR\n" +
		"simcam: parse file " + bframes + ": B-frame at access unit 2: not supported (encode with -bf 0)"
	if err == nil || err.Error() != want {
		t.Errorf("New() error:\n%v\nwant:\n%s", err, want)
	}
}

func TestCopies(t *testing.T) {
	spec := CameraSpec{Path: "x", File: "clip.h264", FPS: 30, Username: "u", Password: "p",
		RTPTimestampStart: 5, SequenceStart: 6}
	got := Copies(spec, 3)
	want := []CameraSpec{
		{Path: "cam1", File: "clip.h264", FPS: 30, Username: "u", Password: "p"},
		{Path: "cam2", File: "clip.h264", FPS: 30, Username: "u", Password: "p"},
		{Path: "cam3", File: "clip.h264", FPS: 30, Username: "u", Password: "p"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Copies = %+v\nwant %+v", got, want)
	}
	if got := Copies(spec, 0); len(got) != 0 {
		t.Errorf("Copies(0) = %+v, want none", got)
	}
}

// TestCameraFileSchedule runs a camera on a file clip at rates that do and
// do not divide 90000 and a second: frame n is due at exactly n/fps s with
// timestamp n*90000/fps (rounded down), so a second of frames is exactly a
// second of wall and media time, through the loop points.
func TestCameraFileSchedule(t *testing.T) {
	cd, err := loadFile(encodeFile(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	for _, fps := range []int{30, 7} {
		t.Run(fmt.Sprint(fps), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newCamera(CameraSpec{Path: "cam", File: "clip.h264", FPS: fps, RTPTimestampStart: 1 << 31, SequenceStart: 1}, cd)
				rec := newFrameRecorder(t, c)
				start, stop := runCamera(t, c, rec.write)
				// Until just after frame 3*fps: three seconds, crossing the
				// 30-frame loop point at least twice.
				time.Sleep(3*time.Second + time.Second/time.Duration(2*fps))
				stop()

				frames := rec.sent()
				if len(frames) != 3*fps+1 {
					t.Fatalf("sent %d frames in 3 s, want %d", len(frames), 3*fps+1)
				}
				for i, f := range frames {
					checkFrame(t, c, start, uint64(i), f)
					if !f.at.Equal(f.ntp) {
						t.Errorf("frame %d written %v late", i, f.at.Sub(f.ntp))
					}
				}
				checkSeq(t, frames)
				for s := 1; s <= 3; s++ {
					f := frames[s*fps]
					if f.ts-frames[0].ts != uint32(s*rtpClockRate) || f.ntp.Sub(start) != time.Duration(s)*time.Second {
						t.Errorf("frame %d: %d ticks and %v after frame 0, want exactly %d s", s*fps,
							f.ts-frames[0].ts, f.ntp.Sub(start), s)
					}
				}
			})
		})
	}
}

// TestPlayFile plays one of two cameras serving the same file at 30 fps over
// RTSP: the SDP carries the file's parameter sets, the first frame is an
// IDR, and the frames are the file's, one 3000-tick interval apart through
// the loop point.
func TestPlayFile(t *testing.T) {
	path := encodeFile(t, 0)
	s, _ := startServer(t, Copies(CameraSpec{File: path, FPS: 30}, 2), nil)
	clip := s.cameras["cam2"].frames

	p := play(t, s.URL("cam2"), gortsplib.TransportTCP)
	if !bytes.Equal(p.forma.SPS, s.cameras["cam2"].forma.SPS) {
		t.Error("SDP SPS is not the file's")
	}
	first := p.next(t)
	if !h264.IsRandomAccess(first.nalus) {
		t.Error("first frame is not an IDR")
	}
	i := slices.IndexFunc(clip, func(f accessUnit) bool { return slices.EqualFunc(f.nalus, first.nalus, bytes.Equal) })
	if i < 0 {
		t.Fatal("first frame is not one of the file's")
	}
	const ticks = rtpClockRate / 30
	loops := 0
	prev := first
	for range 2 * fileFrames {
		au := p.next(t)
		if d := au.ts - prev.ts; d != ticks || au.firstSeq != prev.lastSeq+1 {
			t.Fatalf("ts advanced %d (want %d), seq %d after %d", d, ticks, au.firstSeq, prev.lastSeq)
		}
		n := int((au.ts - first.ts) / ticks)
		if k := (i + n) % len(clip); !slices.EqualFunc(au.nalus, clip[k].nalus, bytes.Equal) {
			t.Fatalf("frame %d after the first: not file frame %d", n, k)
		}
		if (i+n)%len(clip) == 0 {
			loops++
		}
		prev = au
	}
	if loops == 0 {
		t.Error("did not cross the loop point")
	}
	// (Decode errors are expected: frames before the first IDR a reader
	// gets cannot be timed.)
	if n := p.lost.Load() + p.overflow.Load(); n > 0 {
		t.Errorf("%d packets lost, %d frames overflowed", p.lost.Load(), p.overflow.Load())
	}
}
