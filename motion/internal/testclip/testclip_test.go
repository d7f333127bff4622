package testclip

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"go.uber.org/goleak"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/ingest/simcam"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	motionClip = filepath.Join("..", "..", "..", "ingest", "simcam", "clips", "motion.h264")
	epoch      = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
)

// writeUnits writes units' payloads as an Annex-B file and returns its path.
func writeUnits(t *testing.T, units []*Unit) string {
	t.Helper()
	var b bytes.Buffer
	for _, u := range units {
		for _, n := range u.Payload {
			b.Write([]byte{0, 0, 0, 1})
			b.Write(n)
		}
	}
	path := filepath.Join(t.TempDir(), "clip")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// paramsOnceAtStart rewrites the Annex-B file at path without the parameter sets that follow
// its first picture (ffmpeg's encoders repeat them before every keyframe when writing a raw
// stream), as cameras that send them only in the SDP or once per session do.
func paramsOnceAtStart(t *testing.T, path string, c codecRules) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	seenPicture := false
	for _, n := range splitNALUs(raw) {
		if seenPicture && c.param(n) != notParam {
			continue
		}
		seenPicture = seenPicture || c.picture(n)
		b.Write([]byte{0, 0, 0, 1})
		b.Write(n)
	}
	out := filepath.Join(t.TempDir(), "params-once")
	if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// Unit shortens test signatures.
type Unit = ingest.Unit

func TestLoadH264(t *testing.T) {
	units, err := Load(motionClip, ingest.CodecH264, 25, epoch)
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 1500 {
		t.Fatalf("%d units, want the clip's 1500 frames", len(units))
	}
	tr := units[0].Track
	if tr.Kind != ingest.KindVideo || tr.Codec != ingest.CodecH264 || tr.ClockRate != 90000 {
		t.Errorf("Track = %+v", tr)
	}
	if f, ok := tr.Format.(*format.H264); !ok || !bytes.Equal(f.SPS, units[0].Params.SPS) {
		t.Errorf("Track.Format = %#v, want H264 with the clip's SPS", tr.Format)
	}
	for i, u := range units {
		if u.Track != tr {
			t.Fatalf("unit %d has its own Track", i)
		}
		if want := i%50 == 0; u.Key != want {
			t.Fatalf("unit %d: Key %v, want %v (an IDR every 50 frames)", i, u.Key, want)
		}
		if want := time.Duration(i) * 40 * time.Millisecond; u.PTS != want || u.DTS != want || !u.Wall.Equal(epoch.Add(want)) {
			t.Fatalf("unit %d: PTS %v DTS %v Wall %v, want %v", i, u.PTS, u.DTS, u.Wall, want)
		}
		if u.Params != units[0].Params {
			t.Fatalf("unit %d: Params changed, but the clip repeats the same SPS/PPS", i)
		}
		if u.Key {
			typ := func(n []byte) h264.NALUType { return h264.NALUType(n[0] & 0x1f) }
			if len(u.Payload) != 3 || typ(u.Payload[0]) != h264.NALUTypeSPS || typ(u.Payload[1]) != h264.NALUTypePPS ||
				typ(u.Payload[2]) != h264.NALUTypeIDR {
				t.Fatalf("keyframe %d: NAL units %v, want SPS, PPS, IDR", i, types(u))
			}
		} else if len(u.Payload) != 1 || h264.NALUType(u.Payload[0][0]&0x1f) != h264.NALUTypeNonIDR {
			t.Fatalf("unit %d: NAL units %v, want one non-IDR slice", i, types(u))
		}
	}
	if p := units[0].Params; p.Width != 640 || p.Height != 360 {
		t.Errorf("Params size %dx%d, want 640x360", p.Width, p.Height)
	}
}

func types(u *Unit) []int {
	var ts []int
	for _, n := range u.Payload {
		ts = append(ts, int(n[0]))
	}
	return ts
}

// TestLoadH265 checks an H.265 stream whose parameter sets come only once, at the start: every
// keyframe must still begin with VPS, SPS and PPS.
func TestLoadH265(t *testing.T) {
	path := paramsOnceAtStart(t, Make(t, "-f", "lavfi", "-i", "testsrc2=size=352x288:rate=25", "-frames:v", "30",
		"-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error:keyint=10:min-keyint=10:scenecut=0:bframes=0",
		"-f", "hevc"), h265Rules{})
	units, err := Load(path, ingest.CodecH265, 10, epoch)
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 30 {
		t.Fatalf("%d units, want 30", len(units))
	}
	typ := func(n []byte) h265.NALUType { return h265.NALUType((n[0] >> 1) & 0x3f) }
	for i, u := range units {
		if want := i%10 == 0; u.Key != want {
			t.Fatalf("unit %d: Key %v, want %v", i, u.Key, want)
		}
		if want := time.Duration(i) * 100 * time.Millisecond; u.DTS != want || !u.Wall.Equal(epoch.Add(want)) {
			t.Fatalf("unit %d: DTS %v Wall %v, want %v", i, u.DTS, u.Wall, want)
		}
		if u.Key && (len(u.Payload) < 4 || typ(u.Payload[0]) != h265.NALUType_VPS_NUT ||
			typ(u.Payload[1]) != h265.NALUType_SPS_NUT || typ(u.Payload[2]) != h265.NALUType_PPS_NUT) {
			t.Fatalf("keyframe %d: NAL units %v, want VPS, SPS, PPS first", i, types(u))
		}
	}
	if p := units[0].Params; p.Width != 352 || p.Height != 288 || len(p.VPS) == 0 {
		t.Errorf("Params %dx%d VPS %x, want 352x288 with a VPS", p.Width, p.Height, p.VPS)
	}
	if _, ok := units[0].Track.Format.(*format.H265); !ok {
		t.Errorf("Track.Format = %#v, want H265", units[0].Track.Format)
	}
}

func TestLoadSkipsUnitsBeforeTheFirstKeyframe(t *testing.T) {
	all, err := Load(motionClip, ingest.CodecH264, 25, epoch)
	if err != nil {
		t.Fatal(err)
	}
	units, err := Load(writeUnits(t, all[20:120]), ingest.CodecH264, 25, epoch)
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 70 || !units[0].Key || units[0].PTS != 0 {
		t.Fatalf("%d units, first key %v at %v; want 70 starting with the keyframe at 0", len(units), units[0].Key, units[0].PTS)
	}
	for i, u := range units {
		if !equalPayload(u.Payload, all[50+i].Payload) {
			t.Fatalf("unit %d differs from the clip's unit %d", i, 50+i)
		}
	}
}

func TestLoadParamsChange(t *testing.T) {
	small := Make(t, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-frames:v", "10",
		"-c:v", "libx264", "-g", "5", "-bf", "0", "-f", "h264")
	a, err := Load(motionClip, ingest.CodecH264, 25, epoch)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(small, ingest.CodecH264, 25, epoch)
	if err != nil {
		t.Fatal(err)
	}
	units, err := Load(writeUnits(t, append(a[:60:60], b...)), ingest.CodecH264, 25, epoch)
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 70 {
		t.Fatalf("%d units, want 70", len(units))
	}
	if p := units[59].Params; p.Width != 640 || p.Height != 360 {
		t.Errorf("unit 59: %dx%d, want 640x360", p.Width, p.Height)
	}
	if p := units[60].Params; p == units[59].Params || p.Width != 320 || p.Height != 240 {
		t.Errorf("unit 60: %dx%d (new params %v), want new 320x240 params", p.Width, p.Height, p != units[59].Params)
	}
	if units[69].Params != units[60].Params {
		t.Error("params changed within the second clip")
	}
}

func TestLoadRejects(t *testing.T) {
	garbage := filepath.Join(t.TempDir(), "garbage")
	os.WriteFile(garbage, []byte("not a video"), 0o644)
	onlyP := filepath.Join(t.TempDir(), "onlyp")
	all, _ := Load(motionClip, ingest.CodecH264, 25, epoch)
	os.WriteFile(onlyP, []byte("\x00\x00\x01"+string(all[1].Payload[0])), 0o644)
	for _, tc := range []struct {
		path  string
		codec ingest.Codec
		fps   int
		want  string
	}{
		{motionClip, ingest.CodecAAC, 25, `testclip: codec "AAC": want H264 or H265`},
		{motionClip, ingest.CodecH264, 0, "testclip: fps 0: must be > 0"},
		{"/nonexistent/clip", ingest.CodecH264, 25, "testclip: open /nonexistent/clip: no such file or directory"},
		{garbage, ingest.CodecH264, 25, "testclip: " + garbage + ": no Annex-B NAL units"},
		{onlyP, ingest.CodecH264, 25, "testclip: " + onlyP + ": no decodable H264 keyframe"},
	} {
		if _, err := Load(tc.path, tc.codec, tc.fps, epoch); err == nil || err.Error() != tc.want {
			t.Errorf("Load(%s, %s, %d) error %v, want %q", tc.path, tc.codec, tc.fps, err, tc.want)
		}
	}
}

// TestLoadMatchesIngest is the point of the package: a clip served by simcam and received by
// ingest.Source arrives as the same units Load makes of the file.
func TestLoadMatchesIngest(t *testing.T) {
	// Parameter sets only at the start and access unit delimiters, so that both the
	// prepending of parameter sets and the dropping of delimiters are compared.
	path := paramsOnceAtStart(t, Make(t, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-frames:v", "50",
		"-c:v", "libx264", "-preset", "veryfast", "-g", "10", "-keyint_min", "10", "-sc_threshold", "0", "-bf", "0",
		"-x264-params", "aud=1", "-f", "h264"), h264Rules{})
	const fps = 100
	want, err := Load(path, ingest.CodecH264, fps, epoch)
	if err != nil {
		t.Fatal(err)
	}
	cam, err := simcam.New(simcam.Config{Listen: "127.0.0.1:0", Cameras: []simcam.CameraSpec{{Path: "cam", File: path, FPS: fps}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() { defer wg.Done(); cam.Run(ctx) }()
	<-cam.Ready() // the camera's URL has its port from here on
	hub := ingest.NewHub()
	src, err := ingest.NewSource("cam", ingest.StreamMain, configs.Stream{URL: cam.URL("cam"), Transport: configs.TransportTCP}, hub, nil)
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); src.Run(ctx) }()

	st, err := hub.Wait(ctx, "cam", ingest.StreamMain)
	if err != nil {
		t.Fatal(err)
	}
	r := st.NewReader("testclip", 1000)
	defer r.Close()
	var got []*Unit
	for len(got) < len(want)+10 { // more than one loop of the clip
		u, _, err := r.Read(ctx)
		if err != nil {
			t.Fatalf("after %d units: %v", len(got), err)
		}
		if u.Track.Kind == ingest.KindVideo {
			got = append(got, u)
		}
	}
	// The reader joins the looping clip at some keyframe: find which.
	first := -1
	for i, u := range want {
		if u.Key && equalPayload(u.Payload, got[0].Payload) {
			first = i
			break
		}
	}
	if first < 0 {
		t.Fatal("ingest's first unit matches no keyframe of the clip")
	}
	for i, g := range got {
		w := want[(first+i)%len(want)]
		if g.Key != w.Key || !equalPayload(g.Payload, w.Payload) {
			t.Fatalf("unit %d (clip unit %d): ingest key %v %v, Load key %v %v", i, (first+i)%len(want), g.Key, describe(g), w.Key, describe(w))
		}
		if g.Params.Width != w.Params.Width || g.Params.Height != w.Params.Height ||
			!bytes.Equal(g.Params.SPS, w.Params.SPS) || !bytes.Equal(g.Params.PPS, w.Params.PPS) {
			t.Fatalf("unit %d: ingest params %+v, Load params %+v", i, *g.Params, *w.Params)
		}
		if d := g.DTS - got[0].DTS; d != time.Duration(i)*time.Second/fps {
			t.Fatalf("unit %d: ingest DTS +%v, want +%v", i, d, time.Duration(i)*time.Second/fps)
		}
	}
}

func equalPayload(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func describe(u *Unit) string {
	var s []string
	for _, n := range u.Payload {
		s = append(s, fmt.Sprintf("type %d (%d B)", n[0]&0x1f, len(n)))
	}
	return "[" + strings.Join(s, ", ") + "]"
}
