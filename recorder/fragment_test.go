package recorder

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
)

// TestAppendFragmentMatchesMediacommon: the recorder writes fragments itself to avoid two
// copies per fragment; the bytes must be exactly what mediacommon's Part.Marshal writes,
// since the scanner, export and players were tested against that layout.
func TestAppendFragmentMatchesMediacommon(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return b
	}
	for trial := range 200 {
		var ours []fragmentTrack
		var theirs []*fmp4.PartTrack
		withAudio := trial%2 == 1
		for id := 1; id <= 1+btoi(withAudio); id++ {
			ft := fragmentTrack{id: uint32(id), baseTime: rng.Uint64N(1 << 40)}
			pt := &fmp4.PartTrack{ID: id, BaseTime: ft.baseTime}
			for range rng.IntN(30) + 1 {
				s := &sample{duration: rng.Uint32N(10000)}
				var payload []byte
				if id == 1 {
					// Some runs all sync or without composition offsets, so that every
					// combination of trun flags is covered.
					s.nonSync = trial%3 != 0 && rng.IntN(4) != 0
					if trial%5 != 0 {
						s.ptsOffset = int32(rng.IntN(20000)) - 5000
					}
					for range rng.IntN(4) + 1 {
						s.nalus = append(s.nalus, randBytes(rng.IntN(3000)+1))
					}
					var err error
					if payload, err = h264.AVCC(s.nalus).Marshal(); err != nil {
						t.Fatal(err)
					}
				} else {
					s.data = randBytes(rng.IntN(400) + 1)
					payload = s.data
				}
				ft.samples = append(ft.samples, s)
				pt.Samples = append(pt.Samples, &fmp4.Sample{Duration: s.duration, PTSOffset: s.ptsOffset, IsNonSyncSample: s.nonSync, Payload: payload})
			}
			ours = append(ours, ft)
			theirs = append(theirs, pt)
		}
		seq := rng.Uint32()
		var want seekablebuffer.Buffer
		if err := (&fmp4.Part{SequenceNumber: seq, Tracks: theirs}).Marshal(&want); err != nil {
			t.Fatal(err)
		}
		got := appendFragment([]byte("prefix"), seq, ours)
		if !bytes.Equal(got[len("prefix"):], want.Bytes()) {
			t.Fatalf("trial %d: fragment differs from mediacommon's (%d vs %d bytes)", trial, len(got)-len("prefix"), want.Len())
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// BenchmarkAppendFragment: one second of a 4 Mbit/s 25 fps camera.
func BenchmarkAppendFragment(b *testing.B) {
	ft := fragmentTrack{id: 1}
	for i := range 25 {
		ft.samples = append(ft.samples, &sample{duration: 3600, nonSync: i > 0, nalus: [][]byte{make([]byte, 20000)}})
	}
	var buf []byte
	b.ReportAllocs()
	b.SetBytes(500000)
	for b.Loop() {
		buf = appendFragment(buf[:0], 1, []fragmentTrack{ft})
	}
}

// A fragment is assembled in one allocation of its own size when the buffer has no room
// (one the shared pool dropped) and in none when it has: regrowing a buffer by doubling
// would allocate it several times over, for every fragment of every camera.
func TestAppendFragmentAllocatesAtMostOnce(t *testing.T) {
	ft := fragmentTrack{id: 1}
	for i := range 25 { // one second of a 4 Mbit/s 25 fps camera
		ft.samples = append(ft.samples, &sample{duration: 3600, nonSync: i > 0, nalus: [][]byte{make([]byte, 20000)}})
	}
	tracks := []fragmentTrack{ft}
	var frag []byte
	// One, or two under the race detector, whose instrumentation allocates as well.
	if n := testing.AllocsPerRun(10, func() { frag = appendFragment(nil, 1, tracks) }); n > 2 {
		t.Errorf("into an empty buffer: %v allocations, want 1", n)
	}
	if n := testing.AllocsPerRun(10, func() { frag = appendFragment(frag[:0], 1, tracks) }); n != 0 {
		t.Errorf("into a buffer with room: %v allocations, want 0", n)
	}
}
