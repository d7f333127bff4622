package recorder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// exportT0 is the wall time of the test footage's first frame.
var exportT0 = time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)

// footage is a storage directory and a real catalog with segments in them.
type footage struct {
	dir string
	st  *Storage
	cat *catalog.Catalog
}

func newFootage(t testing.TB) *footage {
	t.Helper()
	dir := t.TempDir()
	st, cat := openStore(t, dir)
	return &footage{dir: dir, st: st, cat: cat}
}

// add stores a segment of camera built from spec starting at start and indexes it as the
// Writer does (a closed segment with its size, frames and SHA-256).
func (fx *footage) add(t testing.TB, camera string, start time.Time, spec segSpec, gapBefore bool) catalog.Segment {
	t.Helper()
	data, _ := spec.build(t)
	seg := catalog.Segment{Camera: camera, Stream: ingest.StreamMain, Start: start, Path: SegmentPath(camera, start),
		Codec: string(ingest.CodecH264), Audio: spec.audio, GapBefore: gapBefore}
	var sps h264.SPS
	if err := sps.Unmarshal(spec.sps); err != nil {
		t.Fatal(err)
	}
	seg.Width, seg.Height = sps.Width(), sps.Height()
	f, err := fx.st.create(seg.Path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	id, err := fx.cat.CreateSegment(context.Background(), seg)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	seg.ID, seg.Bytes, seg.Frames, seg.SHA256 = id, int64(len(data)), int64(len(spec.aus)), hex.EncodeToString(sum[:])
	seg.End = start.Add(time.Duration(len(spec.aus)) * time.Second / 25)
	if err := fx.cat.CloseSegment(context.Background(), id, seg.End, seg.Bytes, seg.Frames, seg.SHA256, nil); err != nil {
		t.Fatal(err)
	}
	return seg
}

// frameAt is the wall time of the test footage's frame n (25 fps from exportT0).
func frameAt(n int) time.Time { return exportT0.Add(time.Duration(n) * time.Second / 25) }

// export runs Export into a file and returns the result, the file, and the progress
// calls' last values; it fails the test on progress going backwards or past the total.
func (fx *footage) export(t *testing.T, camera string, from, to time.Time) (ExportResult, string, error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "clip.mp4")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var last, lastTotal int64
	res, err := Export(context.Background(), fx.st, fx.cat, camera, from, to, f, func(done, total int64) {
		if done < last || done > total || (lastTotal != 0 && total < lastTotal) {
			t.Errorf("progress %d/%d after %d/%d", done, total, last, lastTotal)
		}
		last, lastTotal = done, total
	})
	if err == nil && (last != lastTotal || last == 0) {
		t.Errorf("progress ended at %d/%d", last, lastTotal)
	}
	if info, serr := f.Stat(); serr == nil && info.Size() != res.Bytes {
		t.Errorf("result says %d bytes, the file has %d", res.Bytes, info.Size())
	}
	return res, out, err
}

// validateClip fails unless ffprobe and ffmpeg read the whole clip without a word of complaint.
func validateClip(t *testing.T, path string) {
	t.Helper()
	if out, err := exec.Command("ffprobe", "-v", "error", path).CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("ffprobe -v error %s: %v\n%s", path, err, out)
	}
	if out, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("ffmpeg -v error -i %s -f null -: %v\n%s", path, err, out)
	}
}

// ffprobeValue returns one ffprobe value (like "format=duration") as text.
func ffprobeValue(t *testing.T, path string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ffprobe", append([]string{"-v", "error", "-of", "default=nw=1:nk=1"}, append(args, path)...)...).Output()
	if err != nil {
		t.Fatalf("ffprobe %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

func ffprobeSeconds(t *testing.T, path string, args ...string) time.Duration {
	t.Helper()
	s := ffprobeValue(t, path, args...)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("ffprobe %v: %q is not a number", args, s)
	}
	return time.Duration(f * float64(time.Second))
}

// readClip parses an exported clip with the package's own reader: its video samples'
// payloads and decode times in order, and the fragments' sequence numbers.
func readClip(t *testing.T, path string) (payloads [][]byte, dts []uint64, keys []bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, _ := f.Stat()
	l, err := scanSegment(f, info.Size())
	if err != nil || l.ValidEnd != info.Size() {
		t.Fatalf("clip layout: %+v of %d bytes, %v", l, info.Size(), err)
	}
	m, err := readSegment(f, l)
	if err != nil {
		t.Fatal(err)
	}
	for i := range l.Fragments {
		p, err := m.fragment(i)
		if err != nil {
			t.Fatal(err)
		}
		if p.SequenceNumber != uint32(i+1) {
			t.Fatalf("fragment %d has sequence number %d", i+1, p.SequenceNumber)
		}
		if vt := trackByID(p, m.Video.ID); vt != nil {
			d := vt.BaseTime
			if len(dts) > 0 && d < dts[len(dts)-1] {
				t.Fatalf("fragment %d: decode time %d goes back (previous %d)", i+1, d, dts[len(dts)-1])
			}
			for _, s := range vt.Samples {
				payloads, dts, keys = append(payloads, s.Payload), append(dts, d), append(keys, !s.IsNonSyncSample)
				d += uint64(s.Duration)
			}
		}
	}
	return payloads, dts, keys
}

// avcc is an access unit as the MP4 stores it.
func avcc(t *testing.T, au [][]byte) []byte {
	t.Helper()
	b, err := h264.AVCC(au).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestExportAcrossSegments exports a range that starts in the middle of a GOP in the
// middle of a segment (with fragments that do not line up with GOPs, as the Writer's do)
// and ends in the fifth: the clip must start at the keyframe before from, hold every frame
// up to to exactly as recorded, and play.
func TestExportAcrossSegments(t *testing.T) {
	t.Parallel()
	clip := makeClip(t, "320x240", 500, 25) // 20 s, a keyframe every second
	fx := newFootage(t)
	var segs []catalog.Segment
	for k := range 5 { // five 4 s segments, 0.8 s fragments
		segs = append(segs, fx.add(t, "cam1", frameAt(k*100), segSpec{sps: clip.sps, pps: clip.pps, aus: clip.aus[k*100 : (k+1)*100], fragFrames: 20, audio: true}, k == 0))
	}
	from, to := frameAt(137), exportT0.Add(17300*time.Millisecond) // 5.48 s (keyframe at 5 s) to 17.3 s
	res, out, err := fx.export(t, "cam1", from, to)
	if err != nil {
		t.Fatal(err)
	}
	first, last := 125, 432 // the keyframe at 5 s; the last frame starting before 17.3 s
	want := ExportResult{Start: frameAt(first), End: frameAt(last + 1), Segments: 4, Frames: int64(last - first + 1), Bytes: res.Bytes}
	if res.Start != want.Start || res.End != want.End || res.Segments != want.Segments || res.Frames != want.Frames || len(res.Gaps) != 0 {
		t.Fatalf("result %+v\nwant   %+v", res, want)
	}
	// The sources are the four segments the clip came from, in order, as catalogued.
	if len(res.Sources) != 4 {
		t.Fatalf("sources %+v, want segments 2-5", res.Sources)
	}
	for i, s := range res.Sources {
		if w := segs[i+1]; s.ID != w.ID || s.Path != w.Path || s.SHA256 != w.SHA256 || !s.Start.Equal(w.Start) {
			t.Errorf("source %d is %+v, want %+v", i, s, w)
		}
	}
	validateClip(t, out)

	// The frames are the recorded ones, in order, from 0 at 25 fps, the first a keyframe.
	payloads, dts, keys := readClip(t, out)
	if len(payloads) != last-first+1 {
		t.Fatalf("clip has %d frames, want %d", len(payloads), last-first+1)
	}
	for i, p := range payloads {
		if !bytes.Equal(p, avcc(t, clip.aus[first+i])) || dts[i] != uint64(i*frameTicks) || keys[i] != ((first+i)%25 == 0) {
			t.Fatalf("clip frame %d (dts %d, key %v) is not recorded frame %d at %d", i, dts[i], keys[i], first+i, i*frameTicks)
		}
	}

	// What a user checks: the duration is the range's, give or take the GOP the clip
	// starts early; ffmpeg counts every frame; the first decoded frame is a keyframe.
	dur := ffprobeSeconds(t, out, "-show_entries", "format=duration")
	if gop := time.Second; dur < to.Sub(from)-gop || dur > to.Sub(from)+gop {
		t.Errorf("clip lasts %v; the range is %v (GOP %v)", dur, to.Sub(from), gop)
	}
	if n := ffprobeValue(t, out, "-select_streams", "v", "-count_frames", "-show_entries", "stream=nb_read_frames"); n != strconv.Itoa(last-first+1) {
		t.Errorf("ffprobe decodes %s frames, want %d", n, last-first+1)
	}
	if k := ffprobeValue(t, out, "-select_streams", "v", "-read_intervals", "%+#1", "-show_entries", "frame=key_frame,pict_type"); k != "1\nI" {
		t.Errorf("first frame: %q, want a keyframe (1, I)", k)
	}
	// The audio came along and lasts as long as the video.
	if a := ffprobeSeconds(t, out, "-select_streams", "a", "-show_entries", "stream=duration"); a < dur-100*time.Millisecond || a > dur+100*time.Millisecond {
		t.Errorf("audio lasts %v, the clip %v", a, dur)
	}
}

// TestExportSpansAHole: a hole between segments stays a hole in the clip's timeline (the
// next fragment's decode time jumps) and is reported.
func TestExportSpansAHole(t *testing.T) {
	t.Parallel()
	clip := makeClip(t, "320x240", 500, 25)
	fx := newFootage(t)
	// 0–4 s, 4–8 s, then nothing until 14 s (a reconnect), 14–18 s, 18–22 s.
	fx.add(t, "cam1", frameAt(0), segSpec{sps: clip.sps, pps: clip.pps, aus: clip.aus[0:100], fragFrames: 25}, true)
	fx.add(t, "cam1", frameAt(100), segSpec{sps: clip.sps, pps: clip.pps, aus: clip.aus[100:200], fragFrames: 25}, false)
	fx.add(t, "cam1", frameAt(350), segSpec{sps: clip.sps, pps: clip.pps, aus: clip.aus[200:300], fragFrames: 25}, true)
	fx.add(t, "cam1", frameAt(450), segSpec{sps: clip.sps, pps: clip.pps, aus: clip.aus[300:400], fragFrames: 25}, false)

	res, out, err := fx.export(t, "cam1", frameAt(60), frameAt(500))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Gaps) != 1 || res.Gaps[0] != (Gap{From: frameAt(200), To: frameAt(350)}) {
		t.Fatalf("gaps %+v, want one from %s to %s", res.Gaps, frameAt(200), frameAt(350))
	}
	if res.Start != frameAt(50) || res.End != frameAt(500) || res.Frames != 300 || res.Segments != 4 {
		t.Fatalf("result %+v; want 300 frames from %s to %s in 4 segments", res, frameAt(50), frameAt(500))
	}
	validateClip(t, out)
	_, dts, _ := readClip(t, out)
	if len(dts) != 300 || dts[149] != 149*frameTicks || dts[150] != 300*frameTicks {
		t.Fatalf("decode times around the hole: %d then %d (of %d frames); want %d then %d", dts[149], dts[150], len(dts), 149*frameTicks, 300*frameTicks)
	}
	// The hole is in the timeline: the clip lasts from the first frame to the last.
	if dur := ffprobeSeconds(t, out, "-show_entries", "format=duration"); dur < 17900*time.Millisecond || dur > 18100*time.Millisecond {
		t.Errorf("clip lasts %v, want 18 s (12 s of footage around a 6 s hole)", dur)
	}

	// A range that starts in the hole begins at the next segment's keyframe; the part of
	// the range before it is a gap.
	res, out, err = fx.export(t, "cam1", frameAt(250), frameAt(400))
	if err != nil {
		t.Fatal(err)
	}
	if res.Start != frameAt(350) || res.Frames != 50 || len(res.Gaps) != 1 || res.Gaps[0] != (Gap{From: frameAt(250), To: frameAt(350)}) {
		t.Fatalf("range starting in the hole: %+v", res)
	}
	validateClip(t, out)

	// A range that runs past the footage ends with a gap.
	res, _, err = fx.export(t, "cam1", frameAt(500), frameAt(600))
	if err != nil {
		t.Fatal(err)
	}
	if res.End != frameAt(550) || len(res.Gaps) != 1 || res.Gaps[0] != (Gap{From: frameAt(550), To: frameAt(600)}) {
		t.Fatalf("range past the footage: %+v", res)
	}
}

// TestExportNoFootage: a range without footage, or of another camera, is ErrNoFootage,
// and the error names the camera and the range.
func TestExportNoFootage(t *testing.T) {
	fx := newFootage(t)
	fx.add(t, "cam1", frameAt(0), syntheticSpec(50, 25, 25, false), true)
	for _, tc := range []struct {
		camera   string
		from, to time.Time
	}{
		{"cam1", frameAt(100), frameAt(200)},
		{"cam1", frameAt(-100), frameAt(0)}, // ends exactly where the footage starts
		{"cam2", frameAt(0), frameAt(50)},
	} {
		res, out, err := fx.export(t, tc.camera, tc.from, tc.to)
		if !errors.Is(err, ErrNoFootage) {
			t.Fatalf("%s [%s, %s): err %v, want ErrNoFootage", tc.camera, tc.from, tc.to, err)
		}
		for _, s := range []string{tc.camera, stamp(tc.from), stamp(tc.to)} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not name %q", err, s)
			}
		}
		if info, _ := os.Stat(out); res.Bytes != 0 || info.Size() != 0 {
			t.Errorf("%s: wrote %d bytes without footage", tc.camera, info.Size())
		}
	}
}

// TestExportBadArguments: each bad argument is an error naming it.
func TestExportBadArguments(t *testing.T) {
	fx := newFootage(t)
	var w bytes.Buffer
	for _, tc := range []struct {
		name     string
		camera   string
		from, to time.Time
		want     string
	}{
		{"to equals from", "cam1", frameAt(0), frameAt(0), "to (2025-03-14T09:00:00Z) must be after from (2025-03-14T09:00:00Z)"},
		{"to before from", "cam1", frameAt(25), frameAt(0), "to (2025-03-14T09:00:00Z) must be after from (2025-03-14T09:00:01Z)"},
		{"from unset", "cam1", time.Time{}, frameAt(0), "from (unset) and to (2025-03-14T09:00:00Z) must both be set"},
		{"no camera", "", frameAt(0), frameAt(25), "camera is empty"},
	} {
		_, err := Export(context.Background(), fx.st, fx.cat, tc.camera, tc.from, tc.to, &w, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
	if w.Len() != 0 {
		t.Errorf("wrote %d bytes for bad arguments", w.Len())
	}
}

// TestExportRefusesMismatchedFiles: a file that does not match its catalog row is an error
// naming the file, never skipped.
func TestExportRefusesMismatchedFiles(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(path string) error
		want   string
	}{
		{"grown", func(p string) error {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			f.Write([]byte{0})
			return f.Close()
		}, "the catalog says"},
		{"altered", func(p string) error {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b[len(b)-1] ^= 0xff
			return os.WriteFile(p, b, 0o640)
		}, "SHA-256 is"},
		{"missing", os.Remove, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFootage(t)
			fx.add(t, "cam1", frameAt(0), syntheticSpec(50, 25, 25, false), true)
			bad := fx.add(t, "cam1", frameAt(50), syntheticSpec(50, 25, 25, false), false)
			if err := tc.damage(filepath.Join(fx.dir, bad.Path)); err != nil {
				t.Fatal(err)
			}
			_, _, err := fx.export(t, "cam1", frameAt(0), frameAt(100))
			if err == nil || !strings.Contains(err.Error(), bad.Path) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v; want one naming %s and saying %q", err, bad.Path, tc.want)
			}
		})
	}
}

// TestExportStopsAtConfigChange: one MP4 has one init, so a segment with another
// resolution ends the clip before it; what was written plays, and the error says where.
func TestExportStopsAtConfigChange(t *testing.T) {
	t.Parallel()
	big := makeClip(t, "320x240", 200, 25)
	small := makeClip(t, "160x120", 100, 25)
	fx := newFootage(t)
	fx.add(t, "cam1", frameAt(0), segSpec{sps: big.sps, pps: big.pps, aus: big.aus[:100], fragFrames: 25}, true)
	fx.add(t, "cam1", frameAt(100), segSpec{sps: big.sps, pps: big.pps, aus: big.aus[100:200], fragFrames: 25}, false)
	changed := fx.add(t, "cam1", frameAt(200), segSpec{sps: small.sps, pps: small.pps, aus: small.aus, fragFrames: 25}, false)

	res, out, err := fx.export(t, "cam1", frameAt(10), frameAt(300))
	if !errors.Is(err, ErrConfigChanged) {
		t.Fatalf("err %v, want ErrConfigChanged", err)
	}
	for _, s := range []string{changed.Path, "320x240 to H264 160x120", "the clip ends at " + stamp(frameAt(200))} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	if res.Start != frameAt(0) || res.End != frameAt(200) || res.Frames != 200 {
		t.Fatalf("result %+v; want 200 frames up to %s", res, frameAt(200))
	}
	validateClip(t, out)
}

// TestExportOpenSegment: footage still being written is exported up to its last complete
// fragment; the fragment in flight is left out.
func TestExportOpenSegment(t *testing.T) {
	fx := newFootage(t)
	spec := syntheticSpec(100, 25, 25, false)
	data, spans := spec.build(t)
	seg := catalog.Segment{Camera: "cam1", Stream: ingest.StreamMain, Start: frameAt(0), Path: SegmentPath("cam1", frameAt(0)),
		Codec: string(ingest.CodecH264), Width: 64, Height: 48, GapBefore: true}
	id, err := fx.cat.CreateSegment(context.Background(), seg)
	if err != nil {
		t.Fatal(err)
	}
	// The catalog's last progress update saw the first fragment; two more are on disk and
	// the fourth is half written.
	if err := fx.cat.UpdateOpenSegment(context.Background(), id, frameAt(25), spans[0].End(), 25); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(filepath.Join(fx.dir, seg.Path)), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fx.dir, seg.Path), data[:spans[3].Offset+100], 0o640); err != nil {
		t.Fatal(err)
	}
	res, _, err := fx.export(t, "cam1", frameAt(0), frameAt(100))
	if err != nil {
		t.Fatal(err)
	}
	if res.Frames != 75 || res.End != frameAt(75) || len(res.Gaps) != 1 || res.Gaps[0] != (Gap{From: frameAt(75), To: frameAt(100)}) {
		t.Fatalf("result %+v; want 75 frames and the fragment in flight as a gap", res)
	}
}

// BenchmarkExport exports five minutes of a 25 fps camera at about 8 Mbit/s (five 60 s
// segments, ~300 MB) to io.Discard; MB/s is source footage read, checked and remuxed per
// second. The files were just written, so they are read from the page cache: this is the
// CPU cost, which a disk slower than the result would cap.
func BenchmarkExport(b *testing.B) {
	clip := makeClip(b, "320x240", 250, 25)
	// Pad every frame with a filler NAL unit to the size of an 8 Mbit/s frame: remuxing
	// costs per byte and per sample, not per decoded pixel.
	filler := append([]byte{byte(h264.NALUTypeFillerData)}, bytes.Repeat([]byte{0xff}, 40<<10)...)
	filler = append(filler, 0x80)
	aus := make([][][]byte, len(clip.aus))
	for i, au := range clip.aus {
		aus[i] = append(au[:len(au):len(au)], filler)
	}
	fx := newFootage(b)
	var total int64
	for k := range 5 {
		seg := make([][][]byte, 0, 1500)
		for len(seg) < 1500 {
			seg = append(seg, aus...)
		}
		s := fx.add(b, "cam1", frameAt(k*1500), segSpec{sps: clip.sps, pps: clip.pps, aus: seg[:1500], fragFrames: 25, audio: true}, k == 0)
		total += s.Bytes
	}
	b.SetBytes(total)
	for b.Loop() {
		res, err := Export(context.Background(), fx.st, fx.cat, "cam1", frameAt(0), frameAt(5*1500), io.Discard, nil)
		if err != nil || res.Frames != 5*1500 {
			b.Fatalf("exported %d frames: %v", res.Frames, err)
		}
	}
}

// TestExportCancelled: a cancelled export stops with the context's error.
func TestExportCancelled(t *testing.T) {
	fx := newFootage(t)
	fx.add(t, "cam1", frameAt(0), syntheticSpec(50, 25, 25, false), true)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Export(ctx, fx.st, fx.cat, "cam1", frameAt(0), frameAt(50), io.Discard, nil)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "export camera cam1") {
		t.Fatalf("err %v, want context.Canceled naming the camera", err)
	}
}
