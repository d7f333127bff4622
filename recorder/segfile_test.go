package recorder

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

// testClip is an H.264 stream at 25 fps made by ffmpeg (libx264, no B-frames, an IDR with
// in-band SPS/PPS every gop frames), split into access units.
type testClip struct {
	sps, pps      []byte
	aus           [][][]byte // in decode order
	width, height int
	gop           int
}

// frameTicks is one frame at 25 fps in the 90 kHz video timescale.
const frameTicks = videoTimescale / 25

var (
	clipsMu sync.Mutex
	clips   = map[string]*testClip{}
)

// makeClip returns (and caches for the test binary's lifetime) a testsrc2 clip of size
// (like "320x240") and the given number of frames.
func makeClip(t testing.TB, size string, frames, gop int) *testClip {
	t.Helper()
	key := fmt.Sprint(size, frames, gop)
	clipsMu.Lock()
	defer clipsMu.Unlock()
	if c := clips[key]; c != nil {
		return c
	}
	cmd := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error",
		"-f", "lavfi", "-i", "testsrc2=size="+size+":rate=25", "-frames:v", fmt.Sprint(frames),
		"-c:v", "libx264", "-g", fmt.Sprint(gop), "-keyint_min", fmt.Sprint(gop), "-sc_threshold", "0", "-bf", "0",
		"-pix_fmt", "yuv420p", "-x264-params", "repeat-headers=1:aud=1", "-f", "h264", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, stderr.Bytes())
	}
	var nalus h264.AnnexB
	if err := nalus.Unmarshal(out); err != nil {
		t.Fatalf("split ffmpeg's Annex-B output: %v", err)
	}
	c := &testClip{gop: gop}
	var au [][]byte
	for _, n := range nalus {
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeAccessUnitDelimiter:
			if au != nil {
				c.aus = append(c.aus, au)
			}
			au = nil
			continue
		case h264.NALUTypeSPS:
			c.sps = n
		case h264.NALUTypePPS:
			c.pps = n
		}
		au = append(au, n)
	}
	c.aus = append(c.aus, au)
	if len(c.aus) != frames || c.sps == nil || c.pps == nil {
		t.Fatalf("ffmpeg made %d access units (want %d), SPS %x, PPS %x", len(c.aus), frames, c.sps, c.pps)
	}
	var sps h264.SPS
	if err := sps.Unmarshal(c.sps); err != nil {
		t.Fatal(err)
	}
	c.width, c.height = sps.Width(), sps.Height()
	clips[key] = c
	return c
}

// opusSilence is one 20 ms Opus packet (CELT, fullband, mono) that decodes to silence.
var opusSilence = []byte{0xf8, 0xff, 0xfe}

// opusFrameTicks is 20 ms at Opus's 48 kHz.
const opusFrameTicks = 960

// segSpec describes a segment file to build the way the Writer does: mediacommon's Init and
// Part marshallers, track 1 video at 90 kHz, optional track 2 Opus at 48 kHz, decode times
// from 0 at the first video sample, one Marshal per fragment.
type segSpec struct {
	sps, pps   []byte
	aus        [][][]byte // the segment's access units; the first must be a keyframe
	fragFrames int        // video frames per fragment
	audio      bool       // add 20 ms Opus packets covering the video's time
}

// build returns the segment's bytes and where its fragments are.
func (s segSpec) build(t testing.TB) ([]byte, []fragmentSpan) {
	t.Helper()
	init := &fmp4.Init{Tracks: []*fmp4.InitTrack{{ID: 1, TimeScale: videoTimescale, Codec: &mp4.CodecH264{SPS: s.sps, PPS: s.pps}}}}
	if s.audio {
		init.Tracks = append(init.Tracks, &fmp4.InitTrack{ID: 2, TimeScale: 48000, Codec: &mp4.CodecOpus{ChannelCount: 1}})
	}
	var buf seekablebuffer.Buffer
	if err := init.Marshal(&buf); err != nil {
		t.Fatal(err)
	}
	out := bytes.Clone(buf.Bytes())
	var spans []fragmentSpan
	for i := 0; i < len(s.aus); i += s.fragFrames {
		vt := &fmp4.PartTrack{ID: 1, BaseTime: uint64(i) * frameTicks}
		for _, au := range s.aus[i:min(i+s.fragFrames, len(s.aus))] {
			smp := &fmp4.Sample{Duration: frameTicks}
			if err := smp.FillH264(0, au); err != nil {
				t.Fatal(err)
			}
			vt.Samples = append(vt.Samples, smp)
		}
		part := &fmp4.Part{SequenceNumber: uint32(len(spans) + 1), Tracks: []*fmp4.PartTrack{vt}}
		if s.audio {
			// 25 fps video frames are two 20 ms Opus packets each.
			at := &fmp4.PartTrack{ID: 2, BaseTime: uint64(i) * 2 * opusFrameTicks}
			for range 2 * len(vt.Samples) {
				at.Samples = append(at.Samples, &fmp4.Sample{Duration: opusFrameTicks, Payload: opusSilence})
			}
			part.Tracks = append(part.Tracks, at)
		}
		buf.Reset()
		if err := part.Marshal(&buf); err != nil {
			t.Fatal(err)
		}
		spans = append(spans, fragmentSpan{Offset: int64(len(out)), Size: int64(buf.Len())})
		out = append(out, buf.Bytes()...)
	}
	return out, spans
}

// syntheticAUs are access units that are H.264 only by their NAL headers: enough for the
// scanner and the MP4 layer, which never decode pictures, and small enough for fuzz seeds.
func syntheticSpec(frames, fragFrames, gop int, audio bool) segSpec {
	s := segSpec{
		// SPS and PPS of a 64x48 stream made by libx264.
		sps:        []byte{0x67, 0x64, 0x00, 0x0a, 0xac, 0xb2, 0x08, 0xf6, 0x02, 0x20, 0x00, 0x00, 0x03, 0x00, 0x20, 0x00, 0x00, 0x06, 0x41, 0xe2, 0x44, 0xc9},
		pps:        []byte{0x68, 0xeb, 0xc3, 0xcb, 0x22, 0xc0},
		fragFrames: fragFrames,
		audio:      audio,
	}
	for i := range frames {
		if i%gop == 0 {
			s.aus = append(s.aus, [][]byte{s.sps, s.pps, {0x65, 0x88, 0x80, byte(i)}})
		} else {
			s.aus = append(s.aus, [][]byte{{0x41, 0x9a, byte(i)}})
		}
	}
	return s
}

func scanBytes(t testing.TB, b []byte) (segmentLayout, error) {
	t.Helper()
	return scanSegment(bytes.NewReader(b), int64(len(b)))
}

// checkLayout fails unless l has exactly the fragments want and ends after the last one.
func checkLayout(t *testing.T, what string, l segmentLayout, initEnd int64, want []fragmentSpan) {
	t.Helper()
	end := initEnd
	if len(want) > 0 {
		end = want[len(want)-1].End()
	}
	if l.InitEnd != initEnd || l.ValidEnd != end || len(l.Fragments) != len(want) {
		t.Fatalf("%s: InitEnd %d ValidEnd %d with %d fragments; want %d, %d, %d", what, l.InitEnd, l.ValidEnd, len(l.Fragments), initEnd, end, len(want))
	}
	for i := range want {
		if l.Fragments[i] != want[i] {
			t.Fatalf("%s: fragment %d is %+v, want %+v", what, i, l.Fragments[i], want[i])
		}
	}
}

// TestScanSegmentFFmpeg scans a fragmented MP4 made by another muxer (ffmpeg, with a
// trailing mfra) intact and cut at many offsets: every fragment complete before the cut
// must be found, and nothing after it.
func TestScanSegmentFFmpeg(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg.mp4")
	out, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
		"-t", "6", "-c:v", "libx264", "-g", "50", "-bf", "0", "-pix_fmt", "yuv420p", "-f", "mp4",
		"-movflags", "frag_keyframe+empty_moov+default_base_moof", "-frag_duration", "1000000", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	l, err := scanBytes(t, data)
	if err != nil {
		t.Fatal(err)
	}
	// Cross-check with mediacommon's own parser: the init parses, and the fragments
	// between InitEnd and ValidEnd are exactly the parts it finds there.
	var init fmp4.Init
	if err := init.Unmarshal(bytes.NewReader(data[:l.InitEnd])); err != nil {
		t.Fatalf("init [0, %d): %v", l.InitEnd, err)
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(data[l.InitEnd:l.ValidEnd]); err != nil {
		t.Fatalf("fragments [%d, %d): %v", l.InitEnd, l.ValidEnd, err)
	}
	if len(l.Fragments) < 6 || len(parts) != len(l.Fragments) {
		t.Fatalf("scan found %d fragments, mediacommon %d; want the same, at least 6 (6 s in ~1 s fragments)", len(l.Fragments), len(parts))
	}
	for i, f := range l.Fragments {
		if string(data[f.Offset+4:f.Offset+8]) != "moof" || (i > 0 && f.Offset != l.Fragments[i-1].End()) {
			t.Fatalf("fragment %d %+v does not start with the moof after fragment %d", i, f, i-1)
		}
	}
	// ffmpeg ends the file with an mfra index, which is not a fragment.
	if got := string(data[l.ValidEnd+4 : l.ValidEnd+8]); got != "mfra" || int64(len(data)) == l.ValidEnd {
		t.Fatalf("after ValidEnd %d of %d: %q, want the mfra box", l.ValidEnd, len(data), got)
	}
	dur, frames, _, err := segmentDuration(bytes.NewReader(data), l)
	if err != nil || dur != 6*time.Second || frames != 150 {
		t.Fatalf("segmentDuration = %v, %d frames, %v; want 6s, 150 frames", dur, frames, err)
	}

	cuts := []int64{0, 7, 8, 27, 28, l.InitEnd - 1}
	for _, f := range l.Fragments {
		cuts = append(cuts, f.Offset-1, f.Offset, f.Offset+1, f.Offset+8, f.Offset+300, f.End()-1, f.End(), f.End()+1)
	}
	for c := int64(0); c < int64(len(data)); c += 997 {
		cuts = append(cuts, c)
	}
	for _, cut := range cuts {
		l2, err := scanBytes(t, data[:cut])
		if cut < l.InitEnd {
			if !errors.Is(err, errNoInit) {
				t.Fatalf("cut at %d (inside the init): err %v, want errNoInit", cut, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		var want []fragmentSpan
		for _, f := range l.Fragments {
			if f.End() <= cut {
				want = append(want, f)
			}
		}
		checkLayout(t, fmt.Sprintf("cut at %d", cut), l2, l.InitEnd, want)
	}
}

// TestScanSegmentWriterFiles scans files made exactly as the Writer makes them, including
// a torn last fragment in every way a crash can leave it.
func TestScanSegmentWriterFiles(t *testing.T) {
	t.Parallel()
	clip := makeClip(t, "320x240", 100, 25)
	spec := segSpec{sps: clip.sps, pps: clip.pps, aus: clip.aus, fragFrames: 25, audio: true}
	data, spans := spec.build(t)
	initEnd := spans[0].Offset
	l, err := scanBytes(t, data)
	if err != nil {
		t.Fatal(err)
	}
	checkLayout(t, "intact", l, initEnd, spans)

	m, err := readSegment(bytes.NewReader(data), l)
	if err != nil {
		t.Fatal(err)
	}
	if m.Video.ID != 1 || m.Video.TimeScale != videoTimescale || m.Audio == nil || m.Audio.ID != 2 || m.Audio.TimeScale != 48000 {
		t.Fatalf("tracks: video %+v, audio %+v", m.Video, m.Audio)
	}
	for i := range spans {
		p, err := m.fragment(i)
		if err != nil {
			t.Fatal(err)
		}
		v := trackByID(p, 1)
		if p.SequenceNumber != uint32(i+1) || v.BaseTime != uint64(i*25*frameTicks) || len(v.Samples) != 25 || v.Samples[0].IsNonSyncSample {
			t.Fatalf("fragment %d: seq %d, video base %d, %d samples, first sync %v", i, p.SequenceNumber, v.BaseTime, len(v.Samples), !v.Samples[0].IsNonSyncSample)
		}
		want, _ := h264.AVCC(clip.aus[i*25]).Marshal()
		if !bytes.Equal(v.Samples[0].Payload, want) {
			t.Fatalf("fragment %d: first sample's payload differs from access unit %d", i, i*25)
		}
	}
	dur, frames, _, err := segmentDuration(bytes.NewReader(data), l)
	if err != nil || dur != 4*time.Second || frames != 100 {
		t.Fatalf("segmentDuration = %v, %d frames, %v; want 4s, 100 frames", dur, frames, err)
	}

	// A cut anywhere keeps exactly the fragments before it.
	for cut := initEnd; cut <= int64(len(data)); cut++ {
		var want []fragmentSpan
		for _, f := range spans {
			if f.End() <= cut {
				want = append(want, f)
			}
		}
		l, err := scanBytes(t, data[:cut])
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		checkLayout(t, fmt.Sprintf("cut at %d", cut), l, initEnd, want)
	}
	for cut := range initEnd {
		if _, err := scanBytes(t, data[:cut]); !errors.Is(err, errNoInit) {
			t.Fatalf("cut at %d (inside the init): err %v, want errNoInit", cut, err)
		}
	}
	// An init alone: no fragments, zero duration.
	l, err = scanBytes(t, data[:initEnd])
	if err != nil || len(l.Fragments) != 0 || l.ValidEnd != initEnd {
		t.Fatalf("init only: %+v, %v", l, err)
	}
	if dur, frames, _, err := segmentDuration(bytes.NewReader(data[:initEnd]), l); dur != 0 || frames != 0 || err != nil {
		t.Fatalf("segmentDuration of an init alone = %v, %d, %v", dur, frames, err)
	}

	last := spans[len(spans)-1]
	complete := spans[:len(spans)-1]
	lastMoofEnd := last.Offset + int64(binary.BigEndian.Uint32(data[last.Offset:]))
	zeroed := func(from, to int64) []byte {
		b := bytes.Clone(data)
		clear(b[from:to])
		return b
	}
	tests := []struct {
		name string
		data []byte
		want []fragmentSpan
	}{
		// The file's size grew but the last fragment's pages never reached the disk.
		{"zeros after the last fragment", append(bytes.Clone(data), make([]byte, 4096)...), spans},
		{"last fragment zeroed", zeroed(last.Offset, last.End()), complete},
		{"last moof's body zeroed", zeroed(last.Offset+8, last.Offset+40), complete},
		{"last mdat's header zeroed", zeroed(lastMoofEnd, lastMoofEnd+8), complete},
		{"noise after the last fragment", append(bytes.Clone(data), "\x13\x37garbage\xff\x00noise"...), spans},
		{"a moof claiming more than the file has", append(bytes.Clone(data), 0, 0, 1, 0, 'm', 'o', 'o', 'f', 0, 0, 0, 16, 'm', 'f', 'h', 'd'), spans},
		{"a moof followed by a box that is not mdat", append(bytes.Clone(data), append(bytes.Clone(data[last.Offset:lastMoofEnd]), 0, 0, 0, 8, 'f', 'r', 'e', 'e')...), spans},
		{"an mdat without a moof", append(bytes.Clone(data), 0, 0, 0, 9, 'm', 'd', 'a', 't', 1), spans},
		{"a second init", append(bytes.Clone(data), data[:initEnd]...), spans},
		{"a box of size 0 (to the end of the file)", append(bytes.Clone(data), 0, 0, 0, 0, 'f', 'r', 'e', 'e', 1, 2, 3), spans},
	}
	for _, tc := range tests {
		l, err := scanBytes(t, tc.data)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		checkLayout(t, tc.name, l, initEnd, tc.want)
	}
}

// box32 and box64 make a box with a 32-bit or a 64-bit size.
func box32(typ string, payload []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(8+len(payload))), append([]byte(typ), payload...)...)
}

func box64(typ string, payload []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, 1)
	b = append(b, typ...)
	b = binary.BigEndian.AppendUint64(b, uint64(16+len(payload)))
	return append(b, payload...)
}

// TestScanSegmentOtherBoxes: boxes that are not fragments (free, styp, sidx, with 32- or
// 64-bit sizes) are walked over, and a 64-bit mdat completes its fragment.
func TestScanSegmentOtherBoxes(t *testing.T) {
	data, spans := syntheticSpec(50, 10, 25, false).build(t)
	initEnd := spans[0].Offset
	ftypEnd := int64(binary.BigEndian.Uint32(data))

	var b []byte
	b = append(b, data[:ftypEnd]...)
	b = append(b, box64("free", make([]byte, 5))...)
	b = append(b, data[ftypEnd:initEnd]...)
	newInitEnd := int64(len(b))
	var want []fragmentSpan
	for i, f := range spans {
		if i%2 == 1 {
			b = append(b, box32("styp", []byte("msdhmsdh"))...)
			b = append(b, box64("sidx", make([]byte, 24))...)
		}
		want = append(want, fragmentSpan{Offset: int64(len(b)), Size: f.Size})
		b = append(b, data[f.Offset:f.End()]...)
	}
	b = append(b, box32("mfra", make([]byte, 8))...)
	l, err := scanBytes(t, b)
	if err != nil {
		t.Fatal(err)
	}
	checkLayout(t, "with other boxes", l, newInitEnd, want)
	// The fragments still parse, and the duration is the video's.
	if dur, frames, _, err := segmentDuration(bytes.NewReader(b), l); err != nil || dur != 2*time.Second || frames != 50 {
		t.Fatalf("segmentDuration = %v, %d, %v; want 2s, 50 frames", dur, frames, err)
	}

	// A fragment whose mdat has a 64-bit size (the scan does not parse samples, so the
	// payload need not move).
	f := spans[0]
	moofSize := int64(binary.BigEndian.Uint32(data[f.Offset:]))
	mdat := data[f.Offset+moofSize : f.End()]
	var c []byte
	c = append(c, data[:f.Offset]...)
	c = append(c, data[f.Offset:f.Offset+moofSize]...)
	c = append(c, box64("mdat", mdat[8:])...)
	l, err = scanBytes(t, c)
	if err != nil {
		t.Fatal(err)
	}
	checkLayout(t, "64-bit mdat", l, initEnd, []fragmentSpan{{Offset: f.Offset, Size: moofSize + int64(len(mdat)) + 8}})
	// Cut inside its 16-byte header: the fragment is torn.
	l, err = scanBytes(t, c[:f.Offset+moofSize+12])
	if err != nil {
		t.Fatal(err)
	}
	checkLayout(t, "64-bit mdat cut in its header", l, initEnd, nil)

	// Files that do not start with a complete init.
	for name, bad := range map[string][]byte{
		"empty":               nil,
		"no ftyp":             data[ftypEnd:],
		"moof before moov":    append(bytes.Clone(data[:ftypEnd]), data[f.Offset:]...),
		"ftyp only":           data[:ftypEnd],
		"moov cut short":      data[:initEnd-1],
		"garbage":             []byte("not an mp4 file at all, just text"),
		"64-bit size too big": box64("ftyp", nil)[:8],
	} {
		if _, err := scanBytes(t, bad); !errors.Is(err, errNoInit) {
			t.Errorf("%s: err %v, want errNoInit", name, err)
		}
	}
}

// TestReadSegmentRejects: readSegment and fragment name what is wrong with a file whose
// layout is sound but whose content is not a recording.
func TestReadSegmentRejects(t *testing.T) {
	data, spans := syntheticSpec(25, 25, 25, false).build(t)
	l, err := scanBytes(t, data)
	if err != nil {
		t.Fatal(err)
	}
	// Track 1's trun points past its mdat: make the sample sizes huge.
	b := bytes.Clone(data)
	moof := b[spans[0].Offset:]
	i := bytes.Index(moof, []byte("trun"))
	binary.BigEndian.PutUint32(moof[i+4+4+4+4+4:], 1<<30) // first entry's size (after duration)
	m, err := readSegment(bytes.NewReader(b), l)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.fragment(0); err == nil || !bytes.Contains([]byte(err.Error()), []byte(fmt.Sprintf("fragment 1 at offset %d", spans[0].Offset))) {
		t.Fatalf("fragment with a sample past its mdat: err %v, want one naming fragment 1 and its offset", err)
	}

	// An init with only an audio track has no video to export.
	init := &fmp4.Init{Tracks: []*fmp4.InitTrack{{ID: 1, TimeScale: 48000, Codec: &mp4.CodecOpus{ChannelCount: 1}}}}
	var buf seekablebuffer.Buffer
	if err := init.Marshal(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := readSegment(bytes.NewReader(buf.Bytes()), segmentLayout{InitEnd: int64(buf.Len()), ValidEnd: int64(buf.Len())}); err == nil {
		t.Fatal("readSegment accepted an init without video")
	}
}

// FuzzScanSegment: on any bytes the scanner must not panic, and what it accepts must be
// a well-formed layout inside the file; parsing what it accepts must not panic either.
func FuzzScanSegment(f *testing.F) {
	seg, spans := syntheticSpec(30, 10, 15, true).build(f)
	f.Add(seg)
	f.Add(seg[:spans[1].Offset+17])
	f.Add(append(bytes.Clone(seg), 0, 0, 0, 1, 'm', 'o', 'o', 'f'))
	f.Fuzz(func(t *testing.T, data []byte) {
		size := int64(len(data))
		l, err := scanSegment(bytes.NewReader(data), size)
		if err != nil {
			if !errors.Is(err, errNoInit) {
				t.Fatalf("error other than errNoInit on an in-memory file: %v", err)
			}
			return
		}
		if l.InitEnd < 16 || l.InitEnd > l.ValidEnd || l.ValidEnd > size {
			t.Fatalf("InitEnd %d, ValidEnd %d, size %d", l.InitEnd, l.ValidEnd, size)
		}
		prev := l.InitEnd
		for i, fr := range l.Fragments {
			if fr.Offset < prev || fr.Size < 16 || fr.End() > l.ValidEnd {
				t.Fatalf("fragment %d %+v: after %d, inside %d?", i, fr, prev, l.ValidEnd)
			}
			prev = fr.End()
		}
		if len(l.Fragments) > 0 && prev != l.ValidEnd || len(l.Fragments) == 0 && l.ValidEnd != l.InitEnd {
			t.Fatalf("ValidEnd %d is not the end of the last fragment (%d)", l.ValidEnd, prev)
		}
		// Only for the absence of panics: mediacommon decides what parses.
		m, err := readSegment(bytes.NewReader(data), l)
		if err != nil {
			return
		}
		for i := range l.Fragments {
			m.fragment(i)
		}
		segmentDuration(bytes.NewReader(data), l)
	})
}
