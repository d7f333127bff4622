package decode

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"gocv.io/x/gocv"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/motion/internal/testclip"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// maxMAD is how far, in mean absolute gray levels, a picture may be from ffmpeg's own decode
// scaled to the same size with the same (area) filter. Both are libavcodec and libswscale, so
// they agree bit for bit; the margin only allows for a future FFmpeg's rounding. A wrong or
// stale picture is off by far more: even a still frame of the street clip differs from the
// next GOP's keyframe by about 1.3 through sensor noise and coding.
const maxMAD = 0.1

func newMat(tb testing.TB) *gocv.Mat {
	m := gocv.NewMat()
	tb.Cleanup(func() { m.Close() })
	return &m
}

// decodeMatching feeds units (all analysed) and checks every one yields a w×h picture that
// matches ref, frame by frame.
func decodeMatching(t *testing.T, d *Decoder, units []*ingest.Unit, ref [][]byte, w, h int) {
	t.Helper()
	if len(ref) != len(units) {
		t.Fatalf("%d units, ffmpeg decoded %d pictures", len(units), len(ref))
	}
	m := newMat(t)
	var sum float64
	for i, u := range units {
		ok, err := d.Decode(u, true, m)
		if err != nil || !ok {
			t.Fatalf("unit %d (key %v): got picture %v, error %v", i, u.Key, ok, err)
		}
		if m.Cols() != w || m.Rows() != h || m.Type() != gocv.MatTypeCV8UC1 {
			t.Fatalf("unit %d: picture %dx%d type %v, want %dx%d gray", i, m.Cols(), m.Rows(), m.Type(), w, h)
		}
		mad := meanAbsDiff(t, *m, ref[i])
		if mad > maxMAD {
			t.Fatalf("unit %d: mean abs diff from ffmpeg's decode %.2f > %.1f", i, mad, maxMAD)
		}
		sum += mad
	}
	t.Logf("%d pictures, mean abs diff from ffmpeg %.2f", len(units), sum/float64(len(units)))
}

func TestMatchesFFmpeg(t *testing.T) {
	for _, tc := range []struct {
		name  string
		codec ingest.Codec
		clip  func(t *testing.T) string
	}{
		{"H264 640x360", ingest.CodecH264, func(*testing.T) string { return motionClip }},
		{"H265 640x360", ingest.CodecH265, func(t *testing.T) string { return testclip.Make(t, h265Args...) }},
		// A 10-bit stream: its luma plane is read as 10-bit gray, still without range expansion.
		{"H265 Main10 640x360", ingest.CodecH265, func(t *testing.T) string {
			return testclip.Make(t, "-i", motionClip, "-frames:v", "100", "-pix_fmt", "yuv420p10le", "-c:v", "libx265",
				"-preset", "ultrafast", "-x265-params", "log-level=error:keyint=50:bframes=0", "-f", "hevc")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkMats(t)
			path := tc.clip(t)
			units := load(t, path, tc.codec, 25)
			d := newDecoder(t, tc.codec, 0)
			decodeMatching(t, d, units, reference(t, path, 320, 180), 320, 180)
			if st := d.Stats(); st != (Stats{Decoded: uint64(len(units))}) {
				t.Errorf("Stats = %+v, want %d decoded and nothing else", st, len(units))
			}
		})
	}
}

// TestKeyframesOnly feeds only keyframes, as motion does for a camera without a sub stream:
// every keyframe yields its picture, including 1080p at the default analysis width.
func TestKeyframesOnly(t *testing.T) {
	for _, tc := range []struct {
		name string
		clip func(t *testing.T) string
	}{
		{"640x360", func(*testing.T) string { return motionClip }},
		{"1920x1080", func(t *testing.T) string { return testclip.Make(t, hdShortArgs...) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkMats(t)
			path := tc.clip(t)
			var keys []*ingest.Unit
			for _, u := range load(t, path, ingest.CodecH264, 25) {
				if u.Key {
					keys = append(keys, u)
				}
			}
			d := newDecoder(t, ingest.CodecH264, 0)
			decodeMatching(t, d, keys, reference(t, path, 320, 180, "-skip_frame", "nokey"), 320, 180)
		})
	}
}

// TestBFrames checks pictures come out in display order and that skipping unanalysed
// non-reference pictures leaves the analysed ones exactly as a full decode makes them.
func TestBFrames(t *testing.T) {
	checkMats(t)
	// testsrc2 changes every frame, so a picture out of order cannot match; at 320×180 the
	// decoder's output is not scaled, so it must equal ffmpeg's bit for bit.
	path := testclip.Make(t, "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-frames:v", "100",
		"-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-bf", "2", "-b-pyramid", "none", "-f", "h264")
	units := load(t, path, ingest.CodecH264, 25)
	ref := reference(t, path, 320, 180)
	d := newDecoder(t, ingest.CodecH264, 0)
	m := newMat(t)
	next := 0 // display index of the next picture expected
	for i, u := range units {
		analyse := i%3 == 0
		ok, err := d.Decode(u, analyse, m)
		if err != nil {
			t.Fatalf("unit %d: %v", i, err)
		}
		if !ok {
			continue
		}
		match := -1
		for j := next; j < len(ref) && match < 0; j++ {
			if meanAbsDiff(t, *m, ref[j]) == 0 {
				match = j
			}
		}
		if match < 0 {
			t.Fatalf("unit %d: picture matches none of ffmpeg's pictures from %d on", i, next)
		}
		next = match + 1
	}
	// Two B-frames between references delay output by one picture, and a third of the units
	// are analysed.
	if next < len(ref)-3 {
		t.Errorf("last analysed picture is display frame %d of %d", next-1, len(ref))
	}
	if st := d.Stats(); st.Errors != 0 || st.Decoded >= uint64(len(units)) {
		t.Errorf("Stats = %+v: want no errors and fewer than %d pictures (B-frames not analysed are skipped)", st, len(units))
	}
}

// TestStill feeds one still decoder the keyframes of two streams in turn, as the scrub
// thumbnails of two cameras share one: every keyframe yields its own picture at once, bit
// for bit as ffmpeg decodes it without the loop filter, also from a stream with B-frames,
// whose pictures a decoder holds back otherwise. A unit that is no keyframe is refused.
func TestStill(t *testing.T) {
	for _, tc := range []struct {
		name string
		fps  int
		args []string
	}{
		{"no reordering", 15, subArgs},
		{"B-frames", 25, bframesArgs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkMats(t)
			d, err := NewStill(ingest.CodecH264)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(d.Close)
			// The same encoder settings, so the same parameter sets: the decoder is not
			// restarted between the streams. The second is upside down.
			var refs [2][][]byte
			var units [2][]*ingest.Unit
			for i, args := range [][]string{tc.args, slices.Concat(tc.args[:2], []string{"-vf", "vflip"}, tc.args[2:])} {
				path := testclip.Make(t, args...)
				for _, u := range load(t, path, ingest.CodecH264, tc.fps) {
					if u.Key {
						units[i] = append(units[i], u)
					}
				}
				refs[i] = reference(t, path, 320, 180, "-skip_loop_filter", "all", "-skip_frame", "nokey")
				if len(refs[i]) != len(units[i]) || len(units[i]) < 3 {
					t.Fatalf("stream %d: %d keyframes, ffmpeg decoded %d", i, len(units[i]), len(refs[i]))
				}
			}
			m := newMat(t)
			for k := range min(len(units[0]), len(units[1])) {
				for i := range units {
					decoded := d.Stats().Decoded
					ok, err := d.Decode(units[i][k], true, m)
					if err != nil || !ok || d.Stats().Decoded != decoded+1 {
						t.Fatalf("stream %d keyframe %d: picture %v (%d pictures), error %v; want its picture at once", i, k, ok, d.Stats().Decoded-decoded, err)
					}
					if mad := meanAbsDiff(t, *m, refs[i][k]); mad > maxMAD {
						t.Fatalf("stream %d keyframe %d: mean abs diff from ffmpeg's decode %.2f > %.1f", i, k, mad, maxMAD)
					}
				}
			}
			nonKey := load(t, testclip.Make(t, tc.args...), ingest.CodecH264, tc.fps)[1]
			if _, err := d.Decode(nonKey, true, m); err == nil || !strings.Contains(err.Error(), "keyframes only") {
				t.Errorf("a unit that is no keyframe: %v, want it refused", err)
			}
		})
	}
}

func TestResolutionChange(t *testing.T) {
	checkMats(t)
	small := testclip.Make(t, "-f", "lavfi", "-i", "testsrc2=size=480x360:rate=25", "-frames:v", "60",
		"-c:v", "libx264", "-preset", "veryfast", "-g", "25", "-bf", "0", "-f", "h264")
	street := load(t, motionClip, ingest.CodecH264, 25)[:100]
	d := newDecoder(t, ingest.CodecH264, 0)
	t.Run("640x360", func(t *testing.T) {
		decodeMatching(t, d, street, reference(t, motionClip, 320, 180)[:100], 320, 180)
	})
	t.Run("480x360", func(t *testing.T) {
		decodeMatching(t, d, load(t, small, ingest.CodecH264, 25), reference(t, small, 320, 240), 320, 240)
	})
	t.Run("back to 640x360", func(t *testing.T) {
		decodeMatching(t, d, street, reference(t, motionClip, 320, 180)[:100], 320, 180)
	})
}

func TestStartsWithPFrames(t *testing.T) {
	checkMats(t)
	units := load(t, motionClip, ingest.CodecH264, 25)
	d := newDecoder(t, ingest.CodecH264, 0)
	m := newMat(t)
	for i, u := range units[1:50] {
		if ok, err := d.Decode(u, true, m); ok || err != nil {
			t.Fatalf("P-frame %d before any keyframe: picture %v, error %v; want neither", i+1, ok, err)
		}
	}
	if st := d.Stats(); st != (Stats{Skipped: 49}) {
		t.Errorf("Stats = %+v, want 49 skipped", st)
	}
	decodeMatching(t, d, units[50:150], reference(t, motionClip, 320, 180)[50:150], 320, 180)
}

// TestCorruptInput feeds a bad unit in the middle of a GOP: it is an error and counted, the
// rest of the GOP is skipped (its references are damaged), and decoding resumes, correct, at
// the next keyframe.
func TestCorruptInput(t *testing.T) {
	units := load(t, motionClip, ingest.CodecH264, 25)
	h265 := load(t, testclip.Make(t, h265Args...), ingest.CodecH265, 25)
	ref := reference(t, motionClip, 320, 180)
	truncate := func(u *ingest.Unit, frac float64) *ingest.Unit {
		c := *u
		last := len(c.Payload) - 1
		c.Payload = append(append([][]byte{}, c.Payload[:last]...), c.Payload[last][:int(float64(len(c.Payload[last]))*frac)])
		return &c
	}
	garbage := make([]byte, 4000)
	r := rand.New(rand.NewPCG(5, 5))
	for i := range garbage {
		garbage[i] = byte(r.Uint32())
	}
	const at = 60 // a P-frame; the next keyframe is unit 100
	for _, tc := range []struct {
		name    string
		bad     *ingest.Unit
		wantErr string
	}{
		{"truncated P-frame", truncate(units[at], 0.5), "decode H264: error while decoding MB"},
		{"truncated keyframe", truncate(units[50], 0.3), "decode H264: error while decoding MB"},
		{"garbage", &ingest.Unit{Track: units[0].Track, Payload: [][]byte{garbage}},
			"decode H264: Invalid data found when processing input"},
		{"garbage keyframe", &ingest.Unit{Track: units[0].Track, Key: true, Payload: [][]byte{garbage}},
			"decode H264: Invalid data found when processing input"},
		{"empty payload", &ingest.Unit{Track: units[0].Track}, "decode H264: empty access unit"},
		{"empty NAL units", &ingest.Unit{Track: units[0].Track, Payload: [][]byte{{}, {}}}, "decode H264: empty access unit"},
		{"start code inside a NAL unit", &ingest.Unit{Track: units[0].Track, Payload: [][]byte{
			slices.Concat(units[at].Payload[0][:100], []byte{0, 0, 1}, units[at].Payload[0][100:])}},
			"decode H264: NAL unit 0 contains a start code"},
		{"wrong codec", h265[at], `decode H264: unit of codec "H265"`},
		{"H.265 bytes labelled H.264", &ingest.Unit{Track: units[0].Track, Payload: h265[0].Payload}, "decode H264: "},
		{"nil unit", nil, "decode H264: nil unit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkMats(t)
			d := newDecoder(t, ingest.CodecH264, 0)
			m := newMat(t)
			for i, u := range units[:at] {
				if ok, err := d.Decode(u, true, m); !ok || err != nil {
					t.Fatalf("unit %d: picture %v, error %v", i, ok, err)
				}
			}
			ok, err := d.Decode(tc.bad, true, m)
			if ok || err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Fatalf("bad unit: picture %v, error %v; want no picture and an error starting %q", ok, err, tc.wantErr)
			}
			for i, u := range units[at+1 : 100] {
				if ok, err := d.Decode(u, true, m); ok || err != nil {
					t.Fatalf("unit %d after the bad one: picture %v, error %v; want it skipped", at+1+i, ok, err)
				}
			}
			if st := d.Stats(); st.Errors != 1 || st.Skipped != 100-at-1 {
				t.Errorf("Stats = %+v, want 1 error and %d skipped", st, 100-at-1)
			}
			decodeMatching(t, d, units[100:200], ref[100:200], 320, 180)
		})
	}
}

func TestSnapshot(t *testing.T) {
	checkMats(t)
	units := load(t, motionClip, ingest.CodecH264, 25)
	d := newDecoder(t, ingest.CodecH264, 0)
	snap := newMat(t)
	if err := d.Snapshot(0, snap); err == nil || !strings.Contains(err.Error(), "no picture decoded yet") {
		t.Errorf("Snapshot before decoding: %v, want 'no picture decoded yet'", err)
	}
	m := newMat(t)
	const k = 300 // the car is moving
	for _, u := range units[:k+1] {
		if _, err := d.Decode(u, k%7 == 0, m); err != nil {
			t.Fatal(err)
		}
	}
	// ffmpeg's own BGR rendering of picture k is the reference.
	for _, tc := range []struct{ width, w, h int }{{0, 640, 360}, {320, 320, 180}, {160, 160, 90}} {
		if err := d.Snapshot(tc.width, snap); err != nil {
			t.Fatalf("Snapshot(%d): %v", tc.width, err)
		}
		if snap.Cols() != tc.w || snap.Rows() != tc.h || snap.Type() != gocv.MatTypeCV8UC3 {
			t.Fatalf("Snapshot(%d) is %dx%d type %v, want %dx%d BGR", tc.width, snap.Cols(), snap.Rows(), snap.Type(), tc.w, tc.h)
		}
		ref := ffmpegBGR(t, motionClip, k, tc.w, tc.h)
		got, _ := snap.DataPtrUint8()
		sum := 0
		for i, v := range ref {
			diff := int(got[i]) - int(v)
			sum += max(diff, -diff)
		}
		if mad := float64(sum) / float64(len(ref)); mad > 3 {
			t.Errorf("Snapshot(%d): mean abs diff from ffmpeg's BGR %.2f > 3", tc.width, mad)
		}
	}
	for _, w := range []int{-1, MaxWidth + 1} {
		if err := d.Snapshot(w, snap); err == nil || !strings.Contains(err.Error(), "snapshot width") {
			t.Errorf("Snapshot(%d): %v, want a width error", w, err)
		}
	}
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		codec ingest.Codec
		width int
		want  string
	}{
		{ingest.CodecAAC, 0, `decode: codec "AAC": want H264 or H265`},
		{"", 0, `decode: codec "": want H264 or H265`},
		{ingest.CodecH264, -1, "decode: width -1: must be 0 (default 320) or 2..4096"},
		{ingest.CodecH264, 1, "decode: width 1: must be 0 (default 320) or 2..4096"},
		{ingest.CodecH265, 4097, "decode: width 4097: must be 0 (default 320) or 2..4096"},
	} {
		d, err := New(tc.codec, tc.width)
		if err == nil || err.Error() != tc.want {
			t.Errorf("New(%q, %d) error %v, want %q", tc.codec, tc.width, err, tc.want)
		}
		if d != nil {
			t.Errorf("New(%q, %d) returned a decoder with its error", tc.codec, tc.width)
		}
	}
}

// TestDestination checks dst handling: a zero or wrongly sized Mat is replaced, a right one
// is reused in place.
func TestDestination(t *testing.T) {
	checkMats(t)
	units := load(t, motionClip, ingest.CodecH264, 25)
	d := newDecoder(t, ingest.CodecH264, 160)
	var zero gocv.Mat
	t.Cleanup(func() { zero.Close() })
	if ok, err := d.Decode(units[0], true, &zero); !ok || err != nil {
		t.Fatalf("zero Mat: picture %v, error %v", ok, err)
	}
	if zero.Cols() != 160 || zero.Rows() != 90 {
		t.Errorf("zero Mat became %dx%d, want 160x90", zero.Cols(), zero.Rows())
	}
	wrong := gocv.NewMatWithSize(10, 10, gocv.MatTypeCV8UC3)
	t.Cleanup(func() { wrong.Close() })
	if ok, err := d.Decode(units[1], true, &wrong); !ok || err != nil {
		t.Fatalf("10x10 BGR Mat: picture %v, error %v", ok, err)
	}
	if wrong.Cols() != 160 || wrong.Rows() != 90 || wrong.Type() != gocv.MatTypeCV8UC1 {
		t.Errorf("10x10 BGR Mat became %dx%d type %v, want 160x90 gray", wrong.Cols(), wrong.Rows(), wrong.Type())
	}
	before, _ := wrong.DataPtrUint8()
	if ok, err := d.Decode(units[2], true, &wrong); !ok || err != nil {
		t.Fatalf("reused Mat: picture %v, error %v", ok, err)
	}
	if after, _ := wrong.DataPtrUint8(); &after[0] != &before[0] {
		t.Error("a Mat of the right size and type was reallocated")
	}
	if _, err := d.Decode(units[3], true, nil); err == nil || !strings.Contains(err.Error(), "nil destination Mat") {
		t.Errorf("nil dst: %v, want 'nil destination Mat'", err)
	}
}

func TestClose(t *testing.T) {
	units := load(t, motionClip, ingest.CodecH264, 25)
	d, err := New(ingest.CodecH264, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := newMat(t)
	if ok, err := d.Decode(units[0], true, m); !ok || err != nil {
		t.Fatalf("picture %v, error %v", ok, err)
	}
	d.Close()
	d.Close()
	if _, err := d.Decode(units[1], true, m); err == nil || err.Error() != "decode H264: decoder is closed" {
		t.Errorf("Decode after Close: %v", err)
	}
	if err := d.Snapshot(0, m); err == nil || err.Error() != "decode H264: decoder is closed" {
		t.Errorf("Snapshot after Close: %v", err)
	}
	if st := d.Stats(); st.Decoded != 1 {
		t.Errorf("Stats after Close = %+v, want 1 decoded", st)
	}
}

// TestNoCMemoryGrowth opens, uses and closes decoders repeatedly: if Close missed a C
// allocation, the resident set would grow by at least the decoder's picture pool (several MiB
// at 640×360) each round. The test goroutine keeps one OS thread so that glibc serves every
// allocation from one arena: spread over threads, the arenas' own growth takes some forty
// rounds to level off.
func TestNoCMemoryGrowth(t *testing.T) {
	checkMats(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	units := load(t, motionClip, ingest.CodecH264, 25)[:60]
	m := newMat(t)
	snap := newMat(t)
	round := func() {
		d, err := New(ingest.CodecH264, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		for _, u := range units {
			if _, err := d.Decode(u, true, m); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.Snapshot(0, snap); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 { // let malloc reach its steady state
		round()
	}
	before := rss(t)
	const rounds = 40
	for range rounds {
		round()
	}
	after := rss(t)
	t.Logf("RSS %d KiB before, %d KiB after %d more decoders", before>>10, after>>10, rounds)
	if after-before > 8<<20 {
		t.Errorf("RSS grew by %d KiB over %d decoders", (after-before)>>10, rounds)
	}
}

func rss(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	var size, resident int64
	if _, err := fmt.Sscan(string(b), &size, &resident); err != nil {
		t.Fatal(err)
	}
	return resident * int64(os.Getpagesize())
}
