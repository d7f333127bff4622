package recorder

// FuzzFragmentBuilder feeds a segment what a broken or hostile camera can send: decode
// times that go backwards, stand still or jump by years, composition offsets far from
// them, empty and very large frames, no keyframes, audio overlapping itself, and a wall
// clock that stands or leaps. Whatever the input, the builder must not panic, must keep
// what it holds in memory within its bounds, and must leave a file that the segment
// reader (the one export and recovery use) reads back whole: every fragment complete, every
// sample there in order with its size, durations of at least one tick, and each
// fragment's decode times starting exactly where the previous one's ended.
//
//	go test -run '^$' -fuzz '^FuzzFragmentBuilder$' -fuzztime 60s ./recorder/

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"

	"github.com/townwatch/townwatch/ingest"
)

// fuzzOp is the size of one operation in FuzzFragmentBuilder's input:
//
//	byte 0: bits 0-1 kind (0, 1 video, 2 audio, 3 wall clock step), bit 2 keyframe,
//	        bit 3 large (size × 16), bits 4-5 time unit (tick, ms, s, hour)
//	byte 1-2: signed decode-time step in that unit (or wall clock step in ms)
//	byte 3: signed composition offset in ms (video) or packet count (audio)
//	byte 4-5: payload size
const fuzzOp = 6

// fuzzUnits are the time units of an op's step.
var fuzzUnits = [4]time.Duration{time.Second / 90000, time.Millisecond, time.Second, time.Hour}

// fuzzPayload is every op's payload (a prefix of it): up to 65535 × 16 bytes, so that a
// few large frames reach fragmentMaxBytes.
var fuzzPayload = make([]byte, 65535*16)

func fuzzInput(ops ...[fuzzOp]byte) []byte {
	var b []byte
	for _, op := range ops {
		b = append(b, op[:]...)
	}
	return b
}

// op builds one operation: kind, flags, step, offset or count, size.
func op(kind byte, key, large bool, unit byte, step int16, off int8, size uint16) [fuzzOp]byte {
	var o [fuzzOp]byte
	o[0] = kind | unit<<4
	if key {
		o[0] |= 4
	}
	if large {
		o[0] |= 8
	}
	binary.BigEndian.PutUint16(o[1:], uint16(step))
	o[3] = byte(off)
	binary.BigEndian.PutUint16(o[4:], size)
	return o
}

func FuzzFragmentBuilder(f *testing.F) {
	clip := makeClip(f, "64x64", 1, 1)
	const tick, ms, sec, hour = 0, 1, 2, 3
	// A camera with a sane clock: 25 fps, audio every 20 ms.
	var sane [][fuzzOp]byte
	for i := range 60 {
		sane = append(sane, op(0, i%25 == 0, false, ms, 40, 0, 3000), op(2, true, false, ms, 0, 2, 160), op(3, false, false, 0, 40, 0, 0))
	}
	f.Add(fuzzInput(sane...))
	// Issue 14's camera: one keyframe, then large frames a tick apart arriving at 25 fps.
	var slow [][fuzzOp]byte
	slow = append(slow, op(0, true, true, tick, 0, 0, 2000))
	for range 100 {
		slow = append(slow, op(0, false, true, tick, 1, 0, 500), op(3, false, false, 0, 40, 0, 0))
	}
	f.Add(fuzzInput(slow...))
	// Timestamps standing still, going backwards, and jumping by more than a sample can say.
	f.Add(fuzzInput(op(0, true, false, ms, 0, 0, 10), op(0, false, false, ms, 0, 0, 10), op(0, false, false, ms, -500, -100, 10),
		op(0, false, false, hour, 32767, 127, 10), op(0, false, false, ms, 40, 0, 0), op(3, false, false, 0, 2000, 0, 0),
		op(0, false, false, hour, -32768, 0, 10), op(0, false, false, ms, 40, 0, 10)))
	// Audio only, overlapping itself, and audio before the first video frame.
	f.Add(fuzzInput(op(2, true, false, ms, -100, 3, 100), op(0, true, false, ms, 100, 0, 100), op(2, true, false, ms, 0, 5, 100),
		op(2, true, false, tick, -1, 5, 100), op(3, false, false, 0, 30000, 0, 0), op(2, true, false, sec, 1, 1, 0)))
	// Huge frames: the byte cap, not the clocks, must end fragments.
	f.Add(fuzzInput(op(0, true, true, tick, 0, 0, 65535), op(0, false, true, tick, 1, 0, 65535), op(0, false, true, tick, 1, 0, 1),
		op(0, false, true, tick, 1, 0, 65535)))

	video := &ingest.Track{Kind: ingest.KindVideo, Codec: ingest.CodecH264, ClockRate: 90000}
	opus := &format.Opus{PayloadTyp: 96, ChannelCount: 1}
	audio := &ingest.Track{Index: 1, Kind: ingest.KindAudio, Codec: ingest.CodecOpus, ClockRate: 48000, Format: opus}
	params := &ingest.VideoParams{SPS: clip.sps, PPS: clip.pps, Width: clip.width, Height: clip.height}

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096*fuzzOp {
			return // longer inputs find nothing new and take long
		}
		dir := fuzzDir(t)
		now := exportT0
		var dts time.Duration // the camera's decode time
		var s *segment
		var wantVideo, wantAudio []int // sizes of the samples the segment was given, in order
		budget := 64 << 20             // payload bytes left for large frames
		for ; len(data) >= fuzzOp; data = data[fuzzOp:] {
			kind, key, large, unit := data[0]&3, data[0]&4 != 0, data[0]&8 != 0, fuzzUnits[data[0]>>4&3]
			step := time.Duration(int16(binary.BigEndian.Uint16(data[1:])))
			off := int8(data[3])
			size := int(binary.BigEndian.Uint16(data[4:]))
			if large && budget >= size*16 {
				size *= 16 // a few dozen such frames per input: enough to reach the byte cap, and fast
			}
			budget -= size
			if kind == 3 {
				now = now.Add(step.Abs() * time.Millisecond) // the wall clock never goes back
				continue
			}
			// Decode times stay within ±100 years, as any Duration sum in ingest does.
			dts = min(max(dts+step*unit, -maxMediaTime), maxMediaTime)
			if kind == 2 {
				if s == nil {
					continue
				}
				u := &ingest.Unit{Track: audio, PTS: dts, DTS: dts, Wall: now, Key: true}
				for i := range int(uint8(off)) % 8 {
					u.Payload = append(u.Payload, fuzzPayload[:size>>i])
				}
				if u.PTS >= s.startDTS {
					for _, p := range u.Payload {
						wantAudio = append(wantAudio, len(p))
					}
				}
				s.addAudio(u)
				s.received(now)
				continue
			}
			u := &ingest.Unit{Track: video, DTS: dts, PTS: dts + time.Duration(off)*time.Millisecond, Wall: now, Key: key, Params: params}
			if size > 0 {
				u.Payload = [][]byte{fuzzPayload[:size]}
				wantVideo = append(wantVideo, 4+size)
			} else {
				wantVideo = append(wantVideo, 0)
			}
			if s == nil {
				s = fuzzSegment(t, dir, u, audio)
			}
			s.addVideo(u)
			s.received(now)
			if s.fragmentDue(now) {
				if _, err := s.flush(now); err != nil {
					t.Fatal(err)
				}
			}
			// What a camera can make the builder hold: under the caps, and never older than
			// fragmentTarget on the wall clock.
			if n := s.fragmentBytes(); n >= fragmentMaxBytes {
				t.Fatalf("%d bytes pending after a video unit; the cap is %d", n, fragmentMaxBytes)
			}
			if n := len(s.video.samples); n >= fragmentMaxSamples {
				t.Fatalf("%d video samples pending after a video unit; the cap is %d", n, fragmentMaxSamples)
			}
			if !s.fragSince.IsZero() && now.Sub(s.fragSince) >= fragmentTarget {
				t.Fatalf("a fragment %s old on the wall clock is still pending", now.Sub(s.fragSince))
			}
		}
		if s == nil {
			return
		}
		s.video.finish()
		s.audio.finish()
		if _, err := s.flush(now); err != nil {
			t.Fatal(err)
		}
		s.file.Close()
		checkBuilt(t, filepath.Join(dir, "seg.mp4"), s, wantVideo, wantAudio)
	})
}

// fuzzDir is a directory for one input's segment: on tmpfs when there is one, where
// fdatasync costs nothing, so that the fuzzer runs more than a few inputs a second.
func fuzzDir(t *testing.T) string {
	dir, err := os.MkdirTemp("/dev/shm", "townwatch-fuzz-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// fuzzSegment opens a segment file at the first video unit as the Writer does, with an
// Opus track.
func fuzzSegment(t *testing.T, dir string, u *ingest.Unit, audio *ingest.Track) *segment {
	t.Helper()
	init, withAudio, err := initFor(u, audio)
	if err != nil || !withAudio {
		t.Fatalf("init: %v (audio %v)", err, withAudio)
	}
	s := newSegment()
	s.start, s.startDTS, s.params = u.Wall, u.DTS, u.Params
	s.audio = &trackWriter{id: 2, timescale: init.Tracks[1].TimeScale}
	if s.file, err = os.Create(filepath.Join(dir, "seg.mp4")); err != nil {
		t.Fatal(err)
	}
	if err := s.writeInit(init); err != nil {
		t.Fatal(err)
	}
	return s
}

// checkBuilt reads a finished segment back with the reader export and recovery use and
// checks the builder's invariants.
func checkBuilt(t *testing.T, path string, s *segment, wantVideo, wantAudio []int) {
	t.Helper()
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != s.bytes {
		t.Fatalf("file has %d bytes, the segment wrote %d", fi.Size(), s.bytes)
	}
	layout, err := scanSegment(file, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	if layout.ValidEnd != fi.Size() || len(layout.Fragments) != int(s.seq) {
		t.Fatalf("scan: valid to %d of %d bytes, %d fragments of %d written", layout.ValidEnd, fi.Size(), len(layout.Fragments), s.seq)
	}
	m, err := readSegment(file, layout)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int][]int{}
	ends := map[int]uint64{}
	for i := range layout.Fragments {
		part, err := m.fragment(i)
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range part.Tracks {
			if end, ok := ends[tr.ID]; ok && tr.BaseTime != end {
				t.Fatalf("fragment %d track %d starts at %d; the previous fragment ended at %d", i+1, tr.ID, tr.BaseTime, end)
			}
			if _, ok := ends[tr.ID]; !ok && tr.ID == 1 && tr.BaseTime != 0 {
				t.Fatalf("video starts at decode time %d, want 0", tr.BaseTime)
			}
			for j, smp := range tr.Samples {
				if smp.Duration == 0 {
					t.Fatalf("fragment %d track %d sample %d has no duration", i+1, tr.ID, j)
				}
				got[tr.ID] = append(got[tr.ID], len(smp.Payload))
			}
			ends[tr.ID] = trackEnd(tr)
		}
	}
	for id, want := range map[int][]int{1: wantVideo, 2: wantAudio} {
		if len(got[id]) != len(want) {
			t.Fatalf("track %d: %d samples in the file, %d given", id, len(got[id]), len(want))
		}
		for i := range want {
			if got[id][i] != want[i] {
				t.Fatalf("track %d sample %d: %d bytes in the file, %d given", id, i, got[id][i], want[i])
			}
		}
	}
	if ends[1] != s.video.written {
		t.Fatalf("video ends at %d in the file; the segment says %d", ends[1], s.video.written)
	}
}
