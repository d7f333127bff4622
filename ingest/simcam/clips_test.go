package simcam

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// clipFile is the committed source of each embedded clip.
var clipFile = map[Clip]string{
	ClipMotion: "clips/motion.h264",
	ClipStatic: "clips/static.h264",
}

// loadTestClip returns the parsed embedded clip or fails the test.
func loadTestClip(t *testing.T, c Clip) *clipData {
	t.Helper()
	cd, err := clipLoaders[c]()
	if err != nil {
		t.Fatalf("load %s: %v", c, err)
	}
	return cd
}

// needTool finds an ffmpeg tool. They are a build dependency (make deps),
// so a missing one is a broken environment, not a reason to skip.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found (%v): install ffmpeg, e.g. with `make deps`", name, err)
	}
	return p
}

func TestClipsParse(t *testing.T) {
	for c := range clipFile {
		t.Run(string(c), func(t *testing.T) {
			cd := loadTestClip(t, c)
			if got, want := len(cd.frames), 1500; got != want {
				t.Errorf("frames = %d, want %d", got, want)
			}
			if got, want := ClipDuration(c), 60*time.Second; got != want {
				t.Errorf("ClipDuration = %v, want %v", got, want)
			}

			var sps h264.SPS
			if err := sps.Unmarshal(cd.sps); err != nil {
				t.Fatalf("SPS: %v", err)
			}
			if sps.Width() != 640 || sps.Height() != 360 || sps.ProfileIdc != 66 {
				t.Errorf("SPS: %dx%d profile_idc %d, want 640x360 baseline (66)",
					sps.Width(), sps.Height(), sps.ProfileIdc)
			}

			// An IDR exactly every 50 frames, each preceded in its own access
			// unit by the same SPS/PPS as the SDP carries.
			for i, au := range cd.frames {
				if au.keyframe != (i%50 == 0) {
					t.Errorf("frame %d: keyframe = %v", i, au.keyframe)
				}
				if au.keyframe != h264.IsRandomAccess(au.nalus) {
					t.Errorf("frame %d: keyframe flag disagrees with its NAL units", i)
				}
				if au.keyframe && (!slices.ContainsFunc(au.nalus, func(n []byte) bool { return bytes.Equal(n, cd.sps) }) ||
					!slices.ContainsFunc(au.nalus, func(n []byte) bool { return bytes.Equal(n, cd.pps) })) {
					t.Errorf("frame %d: IDR without SPS/PPS in its access unit", i)
				}
			}
		})
	}
	if got := ClipDuration("nope"); got != 0 {
		t.Errorf("ClipDuration(unknown) = %v, want 0", got)
	}
}

func TestParseAnnexBRejects(t *testing.T) {
	ref := loadTestClip(t, ClipStatic)
	sps, pps := ref.sps, ref.pps
	// Slice headers: first_mb_in_slice 0 (bit 1), then slice_type as ue(v):
	// 7 (I), 5 (P) and 6 (B).
	idr := []byte{0x65, 0x88, 0x84}
	p := []byte{0x41, 0x9a, 0x00}
	bSlice := []byte{0x01, 0x9c, 0x00}
	annexB := func(nalus ...[]byte) []byte {
		b, err := h264.AnnexB(nalus).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		raw  []byte
		want string
	}{
		{"empty", nil, h264.ErrAnnexBNoNALUs.Error()},
		{"no parameter sets", annexB(idr, p), "no SPS/PPS"},
		{"no pictures", annexB(sps, pps), "no pictures"},
		{"starts with P", annexB(sps, pps, p, idr), "first access unit is not an IDR"},
		{"B-frame", annexB(sps, pps, idr, p, bSlice, p), "B-frame at access unit 2: not supported (encode with -bf 0)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseAnnexB(tc.raw)
			if err == nil || err.Error() != tc.want {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}

	cd, err := parseAnnexB(annexB(sps, pps, idr, p, p))
	if err != nil {
		t.Fatal(err)
	}
	if len(cd.frames) != 3 || !cd.frames[0].keyframe || len(cd.frames[0].nalus) != 3 {
		t.Errorf("got %d frames, first %+v; want 3 frames, first = SPS+PPS+IDR", len(cd.frames), cd.frames[0])
	}
}

// TestClipsFFprobe checks the committed files with the tools that will read
// our recordings: the stream parameters the README promises, and a full
// decode without a single error.
func TestClipsFFprobe(t *testing.T) {
	ffprobe, ffmpeg := needTool(t, "ffprobe"), needTool(t, "ffmpeg")
	for c, file := range clipFile {
		t.Run(string(c), func(t *testing.T) {
			t.Parallel()
			out, err := exec.Command(ffprobe, "-v", "error", "-count_frames",
				"-show_entries", "stream=codec_name,profile,width,height,r_frame_rate,has_b_frames,nb_read_frames",
				"-of", "json", file).CombinedOutput()
			if err != nil {
				t.Fatalf("ffprobe: %v\n%s", err, out)
			}
			var probe struct {
				Streams []struct {
					CodecName    string `json:"codec_name"`
					Profile      string `json:"profile"`
					Width        int    `json:"width"`
					Height       int    `json:"height"`
					RFrameRate   string `json:"r_frame_rate"`
					HasBFrames   int    `json:"has_b_frames"`
					NbReadFrames string `json:"nb_read_frames"`
				} `json:"streams"`
			}
			if err := json.Unmarshal(out, &probe); err != nil {
				t.Fatalf("ffprobe output %q: %v", out, err)
			}
			if len(probe.Streams) != 1 {
				t.Fatalf("streams = %d, want 1", len(probe.Streams))
			}
			s := probe.Streams[0]
			if s.CodecName != "h264" || s.Profile != "Constrained Baseline" || s.Width != 640 || s.Height != 360 ||
				s.RFrameRate != "25/1" || s.HasBFrames != 0 || s.NbReadFrames != "1500" {
				t.Errorf("ffprobe: %+v; want h264 Constrained Baseline 640x360 25/1, no B-frames, 1500 frames", s)
			}

			out, err = exec.Command(ffmpeg, "-v", "error", "-xerror", "-i", file, "-f", "null", "-").CombinedOutput()
			if err != nil || len(out) != 0 {
				t.Errorf("ffmpeg decode: %v\n%s", err, out)
			}
		})
	}
}

// Detector parameters for TestClipMotionGroundTruth; clips/README.md quotes
// them with the margins measured on the committed clips.
const (
	gtWidth, gtHeight = 160, 90 // 4x4 area average of 640x360
	gtPixelDelta      = 20      // gray levels for a block to count as changed
	gtMinBlocks       = 6       // changed blocks for a frame to count as moving
)

// TestClipMotionGroundTruth decodes each clip with ffmpeg and checks that a
// frame differs from its predecessor exactly inside MotionIntervals (motion
// clip) or never (static clip), including across the loop point.
func TestClipMotionGroundTruth(t *testing.T) {
	ffmpeg := needTool(t, "ffmpeg")
	for c, file := range clipFile {
		t.Run(string(c), func(t *testing.T) {
			t.Parallel()
			moving := movingFrames(t, ffmpeg, file)
			if len(moving) != 1500 {
				t.Fatalf("decoded %d frames, want 1500", len(moving))
			}
			for k, got := range moving {
				offset := time.Duration(k) * frameInterval
				want := false
				if c == ClipMotion {
					want = slices.ContainsFunc(MotionIntervals, func(iv Interval) bool {
						return iv.Start <= offset && offset < iv.End
					})
				}
				if got != want {
					t.Errorf("frame %d (%v): moving = %v, want %v", k, offset, got, want)
				}
			}
		})
	}
}

// movingFrames reports for each frame k whether it differs from frame k-1,
// where frame 0 is compared with the last frame (the loop point).
func movingFrames(t *testing.T, ffmpeg, file string) []bool {
	t.Helper()
	cmd := exec.Command(ffmpeg, "-v", "error", "-i", file,
		"-vf", "scale=160:90:flags=area", "-pix_fmt", "gray", "-f", "rawvideo", "-")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)

	changed := func(a, b []byte) bool {
		n := 0
		for i := range a {
			if d := int(a[i]) - int(b[i]); d > gtPixelDelta || d < -gtPixelDelta {
				n++
			}
		}
		return n >= gtMinBlocks
	}
	var first, prev []byte
	var moving []bool
	for {
		cur := make([]byte, gtWidth*gtHeight)
		if _, err := io.ReadFull(r, cur); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("read frame %d: %v", len(moving), err)
			}
			break
		}
		if first == nil {
			first = cur
			moving = append(moving, false) // filled in below
		} else {
			moving = append(moving, changed(cur, prev))
		}
		prev = cur
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, stderr.Bytes())
	}
	if first != nil {
		moving[0] = changed(first, prev)
	}
	return moving
}

// TestSplitAnnexB checks the clip splitter against mediacommon's access-unit
// parser on the bundled clips, and on what that parser cannot take: mixed
// start codes with trailing zeros, and a stream over its 8 MiB cap.
func TestSplitAnnexB(t *testing.T) {
	for c, file := range clipFile {
		raw, err := clipFiles.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var want h264.AnnexB
		if err := want.Unmarshal(raw); err != nil {
			t.Fatal(err)
		}
		got, err := splitAnnexB(raw)
		if err != nil || !slices.EqualFunc(got, want, bytes.Equal) {
			t.Errorf("%s: split into %d NAL units (err %v), mediacommon into %d", c, len(got), err, len(want))
		}
	}

	big := bytes.Repeat([]byte{0x41, 0x9a}, h264.MaxAccessUnitSize/2+1)
	raw := slices.Concat([]byte{0, 0, 0, 1, 0x67, 0x42}, []byte{0, 0, 1, 0x68, 0xce, 0, 0},
		[]byte{0, 0, 0, 1}, big, []byte{0, 0, 0})
	got, err := splitAnnexB(raw)
	if want := [][]byte{{0x67, 0x42}, {0x68, 0xce}, big}; err != nil || !slices.EqualFunc(got, want, bytes.Equal) {
		t.Errorf("split %d NAL units (err %v), want SPS, PPS and the %d-byte slice", len(got), err, len(big))
	}

	for _, tc := range []struct {
		raw  []byte
		want error
	}{
		{nil, h264.ErrAnnexBNoNALUs},
		{[]byte{0, 0, 0, 0}, h264.ErrAnnexBNoNALUs},
		{[]byte{0, 0, 1, 0, 0, 1}, h264.ErrAnnexBNoNALUs},
		{[]byte{0x67, 0x42}, h264.ErrAnnexBNoInitialDelimiter},
		{[]byte{0, 1, 0x67}, h264.ErrAnnexBNoInitialDelimiter},
	} {
		if _, err := splitAnnexB(tc.raw); !errors.Is(err, tc.want) {
			t.Errorf("splitAnnexB(% x) = %v, want %v", tc.raw, err, tc.want)
		}
	}
}
