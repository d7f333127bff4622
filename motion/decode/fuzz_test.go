package decode

import (
	"path/filepath"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"gocv.io/x/gocv"

	"github.com/townwatch/townwatch/ingest"
)

// fuzzClips are the small clips FuzzDecode plays around the mutated unit: 160×90, 8 frames, a
// keyframe every 4; the seed corpus in testdata/fuzz/FuzzDecode holds their units.
var fuzzClips = map[bool]struct {
	path  string
	codec ingest.Codec
}{
	false: {filepath.Join("testdata", "small.h264"), ingest.CodecH264},
	true:  {filepath.Join("testdata", "small.h265"), ingest.CodecH265},
}

// FuzzDecode feeds one arbitrary access unit (Annex-B bytes, flagged keyframe or not) after the
// first two units of a real clip, then the clip's next P-frame and keyframe. Whatever the bytes,
// Decode must not crash or leak, and the keyframe must decode exactly as it does without them.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, h265, key bool, data []byte) {
		checkMats(t)
		clip := fuzzClips[h265]
		units := load(t, clip.path, clip.codec, 25)
		if !units[4].Key {
			t.Fatalf("%s: unit 4 is not a keyframe", clip.path)
		}
		want := newMat(t)
		if ok, err := newDecoder(t, clip.codec, 64).Decode(units[4], true, want); !ok || err != nil {
			t.Fatalf("keyframe alone: picture %v, error %v", ok, err)
		}

		d := newDecoder(t, clip.codec, 64)
		m := newMat(t)
		for i, u := range units[:2] {
			if ok, err := d.Decode(u, true, m); !ok || err != nil {
				t.Fatalf("unit %d: picture %v, error %v", i, ok, err)
			}
		}
		var nalus h264.AnnexB
		if nalus.Unmarshal(data) != nil {
			nalus = [][]byte{data}
		}
		d.Decode(&ingest.Unit{Track: units[0].Track, Key: key, Payload: nalus}, true, m)
		d.Decode(units[2], true, m)
		ok, err := d.Decode(units[4], true, m)
		if !ok || err != nil {
			t.Fatalf("keyframe after the fuzzed unit: picture %v, error %v", ok, err)
		}
		if mad := meanAbsDiff(t, *m, toBytes(t, *want)); mad != 0 {
			t.Fatalf("keyframe after the fuzzed unit differs from its decode alone by %.2f", mad)
		}
	})
}

func toBytes(tb testing.TB, m gocv.Mat) []byte {
	b, err := m.DataPtrUint8()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
