package ingest

// Fuzz targets for the parsers of what a camera sends: RTP payloads into the video
// depacketizers, and session descriptions into selectMedias. Seeds are real streams
// (libx264/libx265, with and without B-frames, packetized by gortsplib's encoders) and
// real camera SDPs; testdata/fuzz/<FuzzName>/ holds the committed corpus.
//
//	go test -run '^$' -fuzz '^FuzzVideoDepacketizerH264$' -fuzztime 20s ./ingest/

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v4/pkg/sdp"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/pion/rtp"
)

// Eight frames, a keyframe every four, as Annex-B with an access unit delimiter in front of
// every access unit, made by (SEI removed to keep them small):
//
//	ffmpeg -f lavfi -i testsrc2=size=32x32:rate=25 -frames:v 8 -c:v libx264 -preset ultrafast -crf 45 \
//	  -g 4 -keyint_min 4 -sc_threshold 0 -bf {0,2} -x264-params aud=1 -bsf:v filter_units=remove_types=6 x.mp4
//	ffmpeg -f lavfi -i testsrc2=size=64x64:rate=25 -frames:v 8 -c:v libx265 -preset ultrafast -crf 45 \
//	  -x265-params keyint=4:min-keyint=4:scenecut=0:open-gop=0:bframes={0,2}:aud=1:info=0 \
//	  -bsf:v filter_units=remove_types=39 x.mp4
//	ffmpeg -i x.mp4 -c copy -bsf:v {h264,hevc}_mp4toannexb -f {h264,hevc} x.es
//
// PTS in frames, in decode order, from ffprobe -show_packets.
var seedStreams = []struct {
	name  string
	codec Codec
	es    string // base64 Annex-B
	pts   []int  // frame numbers in decode order
}{
	{"h264", CodecH264, seedH264, []int{0, 1, 2, 3, 4, 5, 6, 7}},
	{"h264-bframes", CodecH264, seedH264B, []int{0, 3, 1, 2, 4, 7, 5, 6}},
	{"h265", CodecH265, seedH265, []int{0, 1, 2, 3, 4, 5, 6, 7}},
	{"h265-bframes", CodecH265, seedH265B, []int{0, 3, 2, 1, 4, 7, 6, 5}},
}

// seedAUs splits a seed stream into access units at its delimiters.
func seedAUs(tb testing.TB, c Codec, es string) [][][]byte {
	raw, err := base64.StdEncoding.DecodeString(es)
	if err != nil {
		tb.Fatal(err)
	}
	var nalus h264.AnnexB // start codes are the same in H.265
	if err := nalus.Unmarshal(raw); err != nil {
		tb.Fatal(err)
	}
	aud := int(h264.NALUTypeAccessUnitDelimiter)
	if c == CodecH265 {
		aud = int(h265.NALUType_AUD_NUT)
	}
	// Every access unit holds one slice; x265 leaves out the first delimiter.
	var aus [][][]byte
	var cur [][]byte
	hasSlice := false
	for _, n := range nalus {
		typ := naluType(c, n)
		slice := hasRandomAccess(c, [][]byte{n}) || typ == int(h264.NALUTypeNonIDR) && c == CodecH264 ||
			c == CodecH265 && typ < int(h265.NALUType_BLA_W_LP)
		if typ == aud || hasSlice && (slice || codecOf(c).paramSet(n) != paramNone) {
			if len(cur) > 0 {
				aus = append(aus, cur)
			}
			cur, hasSlice = nil, false
		}
		cur = append(cur, n)
		hasSlice = hasSlice || slice
	}
	return append(aus, cur)
}

// seedParams returns the parameter sets of a seed stream, as a camera would put them in
// its SDP.
func seedParams(tb testing.TB, c Codec, es string) (vps, sps, pps []byte) {
	for _, au := range seedAUs(tb, c, es) {
		for _, n := range au {
			switch k := (codecOf(c)).paramSet(n); {
			case k == paramVPS && vps == nil:
				vps = n
			case k == paramSPS && sps == nil:
				sps = n
			case k == paramPPS && pps == nil:
				pps = n
			}
		}
	}
	return vps, sps, pps
}

func codecOf(c Codec) videoCodec {
	if c == CodecH265 {
		return h265Codec{}
	}
	return h264Codec{}
}

// The fuzz input is a sequence of packets, each encoded as
//
//	flags | PTS delta (int8, in steps of 5 ms = 450 ticks) | length | payload
//
// where flags bit 0 is the RTP marker and bit 1 skips a sequence number (a lost packet).
// A short last packet takes what is left.
const fuzzTickStep = 450

type fuzzPacket struct {
	marker  bool
	lost    bool // one packet was lost before this one
	delta   int8
	payload []byte
}

func encodeFuzzPackets(pkts []fuzzPacket) []byte {
	var b []byte
	for _, p := range pkts {
		flags := byte(0)
		if p.marker {
			flags |= 1
		}
		if p.lost {
			flags |= 2
		}
		b = append(b, flags, byte(p.delta), byte(len(p.payload)))
		b = append(b, p.payload...)
	}
	return b
}

func decodeFuzzPackets(data []byte) []fuzzPacket {
	var out []fuzzPacket
	for len(data) >= 3 {
		p := fuzzPacket{marker: data[0]&1 != 0, lost: data[0]&2 != 0, delta: int8(data[1])}
		n := min(int(data[2]), len(data)-3)
		p.payload = data[3 : 3+n]
		data = data[3+n:]
		out = append(out, p)
	}
	return out
}

// packetizeSeed turns a seed stream into fuzz input: every access unit packetized as a
// camera would (small packets, so keyframes are fragmented), optionally without the
// access unit delimiters most cameras do not send.
func packetizeSeed(tb testing.TB, c Codec, es string, pts []int, keepAUD bool) []byte {
	aus := seedAUs(tb, c, es)
	var encode func([][]byte) ([]*rtp.Packet, error)
	if c == CodecH265 {
		e := &rtph265.Encoder{PayloadType: 96, PayloadMaxSize: 120}
		if err := e.Init(); err != nil {
			tb.Fatal(err)
		}
		encode = e.Encode
	} else {
		e := &rtph264.Encoder{PayloadType: 96, PayloadMaxSize: 120, PacketizationMode: 1}
		if err := e.Init(); err != nil {
			tb.Fatal(err)
		}
		encode = e.Encode
	}
	var out []fuzzPacket
	prev := 0
	for i, au := range aus {
		if !keepAUD {
			au = slices.DeleteFunc(slices.Clone(au), func(n []byte) bool {
				typ := naluType(c, n)
				return c == CodecH264 && typ == int(h264.NALUTypeAccessUnitDelimiter) || c == CodecH265 && typ == int(h265.NALUType_AUD_NUT)
			})
		}
		pkts, err := encode(au)
		if err != nil {
			tb.Fatal(err)
		}
		for j, p := range pkts {
			fp := fuzzPacket{marker: p.Marker, payload: p.Payload}
			if j == 0 {
				fp.delta = int8((pts[i] - prev) * 3600 / fuzzTickStep) // 3600 ticks per frame at 25 fps
				prev = pts[i]
			}
			out = append(out, fp)
		}
	}
	return encodeFuzzPackets(out)
}

// fuzzSink is the unitSink of a fuzzed depacketizer.
type fuzzSink struct {
	decodeErrors int
	params       *VideoParams
	broken       error
}

func (s *fuzzSink) decodeError()               { s.decodeErrors++ }
func (s *fuzzSink) videoParams(p *VideoParams) { s.params = p }
func (s *fuzzSink) streamBroken(err error)     { s.broken = err }

// mustDepacketizer builds a depacketizer for a format the test knows is supported.
func mustDepacketizer(t testing.TB, track *Track, f format.Format, sink unitSink, publish func(*Unit)) depacketizer {
	t.Helper()
	dp, err := newDepacketizer(track, f, sink, publish)
	if err != nil {
		t.Fatalf("newDepacketizer(%s): %v", f.Codec(), err)
	}
	return dp
}

// fuzzVideoDepacketizer feeds packets to a depacketizer and checks every unit it publishes
// against what Unit promises consumers.
func fuzzVideoDepacketizer(t *testing.T, c Codec, sdpParams bool, data []byte) {
	var forma format.Format
	if c == CodecH265 {
		f := &format.H265{PayloadTyp: 96}
		if sdpParams {
			f.VPS, f.SPS, f.PPS = seedParams(t, c, seedH265)
		}
		forma = f
	} else {
		f := &format.H264{PayloadTyp: 96, PacketizationMode: 1}
		if sdpParams {
			_, f.SPS, f.PPS = seedParams(t, c, seedH264B)
		}
		forma = f
	}
	track := &Track{Index: 0, Kind: KindVideo, Codec: c, ClockRate: 90000, Format: forma}
	sink := &fuzzSink{}
	var units []*Unit
	publish := func(u *Unit) {
		if err := checkFuzzUnit(c, track, u, units); err != nil {
			t.Fatalf("unit %d: %v", len(units), err)
		}
		units = append(units, u)
	}
	dp := mustDepacketizer(t, track, forma, sink, publish)

	feedFuzzPackets(dp, decodeFuzzPackets(data))
}

// feedFuzzPackets hands packets to dp as gortsplib's client would: RTP timestamps and
// sequence numbers that wrap early (both start just below 2^32 and 2^16), and the PTS
// gortsplib computes from them.
func feedFuzzPackets(dp depacketizer, pkts []fuzzPacket) {
	const tsBase = 0xFFFFF000
	seq := uint16(0xFFF0)
	var pts int64
	for _, p := range pkts {
		pts += int64(p.delta) * fuzzTickStep
		if p.lost {
			seq++
		}
		dp.packet(&rtp.Packet{
			Header: rtp.Header{
				Version: 2, PayloadType: 96, Marker: p.marker,
				SequenceNumber: seq, Timestamp: uint32(tsBase + pts), SSRC: 1,
			},
			Payload: p.payload,
		}, pts)
		seq++
	}
}

// checkFuzzUnit checks one published unit against the Unit contract, given the units
// published before it.
func checkFuzzUnit(c Codec, track *Track, u *Unit, before []*Unit) error {
	if u.Track != track || len(u.Payload) == 0 {
		return fmt.Errorf("track %p, %d NAL units", u.Track, len(u.Payload))
	}
	for i, n := range u.Payload {
		if len(n) == 0 {
			return fmt.Errorf("NAL unit %d is empty", i)
		}
	}
	if u.Params == nil || !paramsComplete(codecOf(c), u.Params) {
		return fmt.Errorf("incomplete parameters %+v", u.Params)
	}
	if len(before) == 0 && !u.Key {
		return errors.New("the first unit is not a keyframe")
	}
	if ra := hasRandomAccess(c, u.Payload); u.Key != ra {
		return fmt.Errorf("Key %v but random access %v (types %v)", u.Key, ra, payloadTypes(c, u.Payload))
	}
	if u.Key {
		if err := carriesParams(c, u); err != nil {
			return fmt.Errorf("keyframe: %w", err)
		}
	}
	if len(before) > 0 {
		if prev := before[len(before)-1]; u.DTS <= prev.DTS {
			return fmt.Errorf("DTS %v not after the previous unit's %v", u.DTS, prev.DTS)
		}
	}
	return nil
}

// carriesParams checks that a keyframe carries, ahead of its first slice, every parameter
// set in force (those in u.Params), so a decoder can start at it.
//
// Unit's documentation promises more: that the payload starts with the parameter sets.
// With a delimiter (which H.264 and H.265 require to come first when present) it does not;
// see TestKeyframeWithDelimiterStartsWithParams.
func carriesParams(c Codec, u *Unit) error {
	need := map[paramSetKind][]byte{paramSPS: u.Params.SPS, paramPPS: u.Params.PPS}
	if c == CodecH265 {
		need[paramVPS] = u.Params.VPS
	}
	for _, n := range u.Payload {
		if isVCL(c, n) {
			break
		}
		k := codecOf(c).paramSet(n)
		if want, ok := need[k]; ok && bytes.Equal(n, want) {
			delete(need, k)
		}
	}
	if len(need) > 0 {
		return fmt.Errorf("parameter sets %v missing before the first slice (types %v)", slices.Sorted(maps.Keys(need)), payloadTypes(c, u.Payload))
	}
	return nil
}

func isVCL(c Codec, n []byte) bool {
	if c == CodecH265 {
		return naluType(c, n) < int(h265.NALUType_VPS_NUT) // 0-31 are slices (and reserved VCL)
	}
	t := naluType(c, n)
	return t >= int(h264.NALUTypeNonIDR) && t <= int(h264.NALUTypeIDR)
}

func isAUD(c Codec, n []byte) bool {
	if c == CodecH265 {
		return naluType(c, n) == int(h265.NALUType_AUD_NUT)
	}
	return naluType(c, n) == int(h264.NALUTypeAccessUnitDelimiter)
}

func addDepacketizerSeeds(f *testing.F, c Codec) {
	for _, s := range seedStreams {
		if s.codec != c {
			continue
		}
		for _, keepAUD := range []bool{false, true} {
			data := packetizeSeed(f, c, s.es, s.pts, keepAUD)
			f.Add(false, data)
			f.Add(true, data)
		}
	}
	// A lone keyframe packet, an empty payload, and a STAP-A/AP header with nothing in it.
	f.Add(true, encodeFuzzPackets([]fuzzPacket{{marker: true, payload: []byte{0x65, 0x88, 0x84}}}))
	f.Add(false, encodeFuzzPackets([]fuzzPacket{{marker: true}}))
	f.Add(true, encodeFuzzPackets([]fuzzPacket{{marker: true, payload: []byte{24, 0, 0}}, {marker: true, payload: []byte{48 << 1, 1, 0, 0}}}))
}

func FuzzVideoDepacketizerH264(f *testing.F) {
	addDepacketizerSeeds(f, CodecH264)
	f.Fuzz(func(t *testing.T, sdpParams bool, data []byte) {
		fuzzVideoDepacketizer(t, CodecH264, sdpParams, data)
	})
}

func FuzzVideoDepacketizerH265(f *testing.F) {
	addDepacketizerSeeds(f, CodecH265)
	f.Fuzz(func(t *testing.T, sdpParams bool, data []byte) {
		fuzzVideoDepacketizer(t, CodecH265, sdpParams, data)
	})
}

// TestDepacketizerSeedStreams checks that the seeds are what the fuzz targets need them to
// be: real streams the depacketizer turns into every frame, in decode order, with exact
// timestamps. Without it a broken seed would only make fuzzing less effective, silently.
func TestDepacketizerSeedStreams(t *testing.T) {
	for _, s := range seedStreams {
		for _, sdpParams := range []bool{false, true} {
			t.Run(s.name+"/sdp-params="+strconv.FormatBool(sdpParams), func(t *testing.T) {
				codec := codecOf(s.codec)
				var forma format.Format = &format.H264{PayloadTyp: 96, PacketizationMode: 1}
				if s.codec == CodecH265 {
					forma = &format.H265{PayloadTyp: 96}
				}
				track := &Track{Kind: KindVideo, Codec: s.codec, ClockRate: 90000, Format: forma}
				var units []*Unit
				sink := &fuzzSink{}
				dp := mustDepacketizer(t, track, forma, sink, func(u *Unit) {
					if err := checkFuzzUnit(s.codec, track, u, units); err != nil {
						t.Fatalf("unit %d: %v", len(units), err)
					}
					units = append(units, u)
				})
				feedFuzzPackets(dp, decodeFuzzPackets(packetizeSeed(t, s.codec, s.es, s.pts, false)))
				if len(units) != len(s.pts) || sink.decodeErrors != 0 {
					t.Fatalf("%d units, %d decode errors from %d frames", len(units), sink.decodeErrors, len(s.pts))
				}
				for i, u := range units {
					if want := clockToDuration(int64(s.pts[i])*3600, 90000); u.PTS != want {
						t.Errorf("unit %d: PTS %v, want %v", i, u.PTS, want)
					}
					if u.Key != (i%4 == 0) {
						t.Errorf("unit %d: Key %v", i, u.Key)
					}
				}
				w, h := 32, 32
				if s.codec == CodecH265 {
					w, h = 64, 64
				}
				if p := units[0].Params; p.Width != w || p.Height != h || !paramsComplete(codec, p) {
					t.Errorf("params %+v", p)
				}
			})
		}
	}
}

// Session descriptions as cameras send them.
var seedSDPs = []string{
	// Hikvision-style: H.264 with parameter sets, G.711 µ-law.
	"v=0\r\no=- 1 1 IN IP4 192.168.1.64\r\ns=Media Presentation\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n" +
		"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 profile-level-id=420029; packetization-mode=1; sprop-parameter-sets=Z00AKp2oHgCJ+WbgICAoAAADAAgAAAMBlCA=,aO48gA==\r\na=control:trackID=1\r\n" +
		"m=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=control:trackID=2\r\n",
	// Audio first, then H.265, with a back channel.
	"v=0\r\no=- 2 1 IN IP4 10.0.0.21\r\ns=Session\r\nt=0 0\r\n" +
		"m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/16000/1\r\na=fmtp:97 streamtype=5; profile-level-id=15; mode=AAC-hbr; config=1408; sizelength=13; indexlength=3; indexdeltalength=3\r\na=control:trackID=0\r\n" +
		"m=video 0 RTP/AVP 98\r\na=rtpmap:98 H265/90000\r\na=fmtp:98 sprop-vps=QAEMAf//AWAAAAMAkAAAAwAAAwA/ugJA; sprop-sps=QgEBAWAAAAMAkAAAAwAAAwA/oAUCAXHy5bpKTC8BAQAAAwABAAADAA8I; sprop-pps=RAHAc8GJ\r\na=control:trackID=1\r\n" +
		"m=audio 0 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=sendonly\r\na=control:trackID=2\r\n",
	// ffmpeg: H.264 and Opus.
	"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\na=tool:libavformat\r\n" +
		"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:streamid=0\r\n" +
		"m=audio 0 RTP/AVP 97\r\na=rtpmap:97 opus/48000/2\r\na=control:streamid=1\r\n",
	// Two video tracks and two audio tracks: the first of each is taken.
	"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\n" +
		"m=video 0 RTP/AVP 26\r\na=control:trackID=0\r\n" +
		"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=1\r\n" +
		"m=video 0 RTP/AVP 97\r\na=rtpmap:97 H265/90000\r\na=control:trackID=2\r\n" +
		"m=audio 0 RTP/AVP 0\r\na=control:trackID=3\r\n" +
		"m=audio 0 RTP/AVP 8\r\na=control:trackID=4\r\n",
	// Nothing townwatch can record.
	"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 26\r\na=control:trackID=0\r\n",
	"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\n",
}

// FuzzSelectMedias: whatever SDP a camera sends, selecting its tracks must not panic, and a
// selection has exactly one video track, first, at most one audio track, and depacketizers
// that accept packets.
func FuzzSelectMedias(f *testing.F) {
	for _, s := range seedSDPs {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sdp string) {
		desc, err := parseSDP(sdp)
		if err != nil {
			return
		}
		sel, err := selectMedias(desc)
		if err != nil {
			if !errors.Is(err, errUnsupportedCodec) {
				t.Fatalf("selectMedias error %v does not wrap errUnsupportedCodec", err)
			}
			return
		}
		checkSelection(t, sel)
	})
}

// parseSDP parses a session description the way gortsplib's client does with DESCRIBE's
// answer.
func parseSDP(s string) (*description.Session, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal([]byte(s)); err != nil {
		return nil, err
	}
	var desc description.Session
	if err := desc.Unmarshal(&sd); err != nil {
		return nil, err
	}
	return &desc, nil
}

func checkSelection(t *testing.T, sel selection) {
	t.Helper()
	if len(sel.medias) == 0 || len(sel.medias) > 2 {
		t.Fatalf("%d medias selected", len(sel.medias))
	}
	if sel.medias[0].track.Kind != KindVideo || sel.medias[0].track.Codec != sel.videoCodec {
		t.Fatalf("first track %+v, video codec %q", sel.medias[0].track, sel.videoCodec)
	}
	if len(sel.medias) == 2 && (sel.medias[1].track.Kind != KindAudio || sel.medias[1].track.Codec != sel.audioCodec) {
		t.Fatalf("second track %+v, audio codec %q", sel.medias[1].track, sel.audioCodec)
	}
	if len(sel.medias) == 1 && sel.audioCodec != "" {
		t.Fatalf("audio codec %q without an audio track", sel.audioCodec)
	}
	for i, m := range sel.medias {
		if m.track.Index != i || m.track.Format != m.format || m.track.ClockRate != m.format.ClockRate() {
			t.Fatalf("track %d: %+v", i, m.track)
		}
		if !containsFormat(m.media, m.format) {
			t.Fatalf("track %d: format not in its media", i)
		}
		// The depacketizer must take packets without panicking, whatever the SDP said.
		dp := mustDepacketizer(t, m.track, m.format, &fuzzSink{}, func(*Unit) {})
		for _, payload := range [][]byte{{0x65, 0x88, 0x84, 0x00}, {0x26, 0x01, 0xaf}, {0x00, 0x10, 0x02, 0x00, 0x01, 0x02}, {}} {
			dp.packet(&rtp.Packet{Header: rtp.Header{Marker: true, PayloadType: m.format.PayloadType()}, Payload: payload}, 0)
		}
	}
}

func containsFormat(m *description.Media, f format.Format) bool {
	for _, x := range m.Formats {
		if x == f {
			return true
		}
	}
	return false
}

// TestSelectMediasSeeds pins down what the seed SDPs select, so the fuzz seeds exercise
// what they claim to.
func TestSelectMediasSeeds(t *testing.T) {
	want := []string{"H264+G711", "H265+AAC", "H264+Opus", "H264+G711", "error", "unparsable"}
	for i, s := range seedSDPs {
		desc, err := parseSDP(s)
		if err != nil {
			if want[i] != "unparsable" {
				t.Errorf("seed %d: %v", i, err)
			}
			continue
		}
		sel, err := selectMedias(desc)
		got := "error"
		if err == nil {
			checkSelection(t, sel)
			got = string(sel.videoCodec)
			if sel.audioCodec != "" {
				got += "+" + string(sel.audioCodec)
			}
		} else if !strings.Contains(err.Error(), "H.264") && !strings.Contains(err.Error(), "no tracks") {
			t.Errorf("seed %d: error %q does not say what is needed", i, err)
		}
		if got != want[i] {
			t.Errorf("seed %d selects %s, want %s", i, got, want[i])
		}
	}
}

// regressionDepacketizer is an H.264 depacketizer (parameter sets in the SDP, as from the
// seed stream without B-frames, where DTS equals PTS) and what it published.
type regressionDepacketizer struct {
	t     *testing.T
	dp    depacketizer
	aus   [][][]byte // the seed's access units without delimiters: 0 and 4 are keyframes
	audKF [][]byte   // the seed's first keyframe with its delimiter
	units []*Unit
	sink  *fuzzSink
	enc   *rtph264.Encoder
	seq   uint16
}

func newRegressionDepacketizer(t *testing.T) *regressionDepacketizer {
	k := &regressionDepacketizer{t: t}
	_, sps, pps := seedParams(t, CodecH264, seedH264)
	forma := &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: sps, PPS: pps}
	track := &Track{Kind: KindVideo, Codec: CodecH264, ClockRate: 90000, Format: forma}
	k.sink = &fuzzSink{}
	k.dp = mustDepacketizer(t, track, forma, k.sink, func(u *Unit) { k.units = append(k.units, u) })
	for _, au := range seedAUs(t, CodecH264, seedH264) {
		if k.audKF == nil {
			k.audKF = au
		}
		k.aus = append(k.aus, slices.DeleteFunc(slices.Clone(au), func(n []byte) bool { return isAUD(CodecH264, n) }))
	}
	k.enc = &rtph264.Encoder{PayloadType: 96, PacketizationMode: 1}
	if err := k.enc.Init(); err != nil {
		t.Fatal(err)
	}
	return k
}

// send packetizes au as one access unit (marker on its last packet) at pts (90 kHz).
func (k *regressionDepacketizer) send(au [][]byte, pts int64) {
	pkts, err := k.enc.Encode(au)
	if err != nil {
		k.t.Fatal(err)
	}
	for _, p := range pkts {
		p.SequenceNumber, p.Timestamp = k.seq, uint32(pts)
		k.seq++
		k.dp.packet(p, pts)
	}
}

func (k *regressionDepacketizer) checkDTS() {
	for i := 1; i < len(k.units); i++ {
		if k.units[i].DTS <= k.units[i-1].DTS {
			k.t.Errorf("unit %d: DTS %v not after %v (published DTS must strictly increase)", i, k.units[i].DTS, k.units[i-1].DTS)
		}
	}
}

// TestDepacketizerRegressions keeps fixed the depacketizer bugs the fuzz targets found.
func TestDepacketizerRegressions(t *testing.T) {
	const frame = 3600 // 90 kHz ticks at 25 fps

	// The first unit of every session has PTS 0 (gortsplib starts the time base at the
	// first packet), and with DTS = PTS its DTS is 0, which videoDepacketizer's lastDTS
	// also uses to mean "nothing published yet": the next unit is not checked.
	t.Run("dts-repeats-after-zero", func(t *testing.T) {
		k := newRegressionDepacketizer(t)
		k.send(k.aus[0], 0)
		k.send(k.aus[1], 0) // a second access unit with the same timestamp
		k.send(k.aus[2], frame)
		k.checkDTS()
	})

	// A camera whose RTP clock jumps back (encoder restart without a new RTSP session):
	// the unit after the jump is dropped and the depacketizer waits for a keyframe, as
	// doc.go says, but then publishes it with a DTS before everything already published.
	t.Run("dts-backwards-after-resync", func(t *testing.T) {
		k := newRegressionDepacketizer(t)
		for i := range 4 {
			k.send(k.aus[i], int64(100+i)*frame)
		}
		// The camera's clock goes back by 3.6 s: nothing after the jump may be published
		// with a DTS in the past; the session must end so consumers start afresh.
		for i := 4; i < 8; i++ {
			k.send(k.aus[i], int64(10+i-4)*frame)
		}
		for i := range 4 {
			k.send(k.aus[i], int64(14+i)*frame)
		}
		k.checkDTS()
		if !errors.Is(k.sink.broken, errClockJump) {
			t.Errorf("stream not ended after the clock jumped back: %v", k.sink.broken)
		}
	})

	// Units dropped mid-GOP leave a hole: the keyframe where publishing resumes says so, so
	// that the recorder ends its segment there instead of stretching the last frame over it.
	t.Run("discontinuity-after-dropped-units", func(t *testing.T) {
		k := newRegressionDepacketizer(t)
		k.send(k.aus[0], 0)
		k.send(k.aus[1], frame)
		k.send(k.aus[2], frame) // repeats the previous timestamp: dropped with the rest of its GOP
		k.send(k.aus[3], 3*frame)
		k.send(k.aus[4], 4*frame) // the next keyframe
		if len(k.units) != 3 || !k.units[2].Key {
			t.Fatalf("published %d units, want the first two and the next keyframe", len(k.units))
		}
		if k.units[0].Discontinuity || k.units[1].Discontinuity || !k.units[2].Discontinuity {
			t.Errorf("discontinuity flags %v %v %v, want only the keyframe after the hole",
				k.units[0].Discontinuity, k.units[1].Discontinuity, k.units[2].Discontinuity)
		}
	})

	// A keyframe that carries its SPS in band but not its PPS (the camera sends the PPS
	// only in the SDP, or a single-NAL-unit packet with the PPS was lost): withParams sees
	// an SPS and adds nothing, so the keyframe lacks the PPS a decoder needs to start.
	t.Run("keyframe-without-in-band-pps", func(t *testing.T) {
		k := newRegressionDepacketizer(t)
		kf := slices.DeleteFunc(slices.Clone(k.aus[0]), func(n []byte) bool { return naluType(CodecH264, n) == int(h264.NALUTypePPS) })
		k.send(kf, 0)
		if len(k.units) != 1 {
			t.Fatalf("%d units", len(k.units))
		}
		if err := carriesParams(CodecH264, k.units[0]); err != nil {
			t.Error(err)
		}
	})

	// Unit.Key promises a payload that starts with the parameter sets; a camera that sends
	// access unit delimiters (which must come first) gets keyframes that start with one.
	t.Run("keyframe-starts-with-delimiter", func(t *testing.T) {
		k := newRegressionDepacketizer(t)
		k.send(k.audKF, 0)
		if len(k.units) != 1 {
			t.Fatalf("%d units", len(k.units))
		}
		if err := startsWithParams(CodecH264, k.units[0]); err != nil {
			t.Error(err)
		}
	})
}

// TestSelectMediasUndecodableFormats: gortsplib parses SDP parameters its depacketizers do
// not support (H.264 packetization-mode 2, H.265 sprop-max-don-diff), and CreateDecoder
// fails for them. Such a format must be refused up front, never reach a nil decoder on
// gortsplib's reading goroutine, where a panic takes the whole process down.
func TestSelectMediasUndecodableFormats(t *testing.T) {
	for name, sdp := range map[string]string{
		"h264-packetization-mode-2": "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\n" +
			"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=2\r\na=control:trackID=1\r\n",
		"h265-sprop-max-don-diff": "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\n" +
			"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\na=fmtp:96 sprop-max-don-diff=2\r\na=control:trackID=1\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			desc, err := parseSDP(sdp)
			if err != nil {
				t.Fatal(err)
			}
			sel, err := selectMedias(desc)
			if err != nil {
				if !errors.Is(err, errUnsupportedCodec) {
					t.Fatalf("error %v does not wrap errUnsupportedCodec", err)
				}
				return // refusing the format is a fix
			}
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("panic on the first packet: %v", p)
				}
			}()
			checkSelection(t, sel)
		})
	}
}

// The seed streams (see seedStreams).
const (
	seedH264  = "AAAAAQkQAAAAAWdCwAraJbARAAADAAEAAAMAMg8SJqAAAAABaM4BNyAAAAFliIQ6DGAGHz8wGf1TUJnmZEzJ5M4XTWqywp8IFXYcwehAwwiIjhihQE20n7hH0aYUAmSAn7c+QHyuXRFZBfAM75bbAMccmR35F9O4466Zisx2HsejZ3aG2mNxpRossTmo0zgQUMMCRBkZSx6zXEHLN84nrjf4LKakkOVpHo4Xs/Y+GHCoANF1+tfjQxI6u5CV3IRe+Au+AvZQ0AwAMFD/7fsWfYgAAAABCTAAAAFBmiBiLAAAAAEJMAAAAUGaQFIsAAAAAQkwAAABQZpgiLAAAAABCRAAAAABZ0LACtolsBEAAAMAAQAAAwAyDxImoAAAAAFozgE3IAAAAWWIghIMYIVh2ztpiZlvUzCw2sLTRhEhKGoUEClnFvvRqATJB9pA9MJUVkF8CM+8YA5MtMt9e2Vh3Vb5mE2VDDBI6UBp7G4g5ZvnFcYboMehBOVpdHaW/DDiAWFr9a/HMYDK+E18KR3go7wF4XFAMAMFP/svsXgAAAABCTAAAAFBmiBi88XqAXGXqELHET5IAAAAAQkwAAABQZpAUiwAAAABCTAAAAFBmmDLzwdygVZ+zn4T4NmOh/JA"
	seedH264B = "AAAAAQkQAAAAAWdNQArspLYCIAAAAwAgAAAGQeJEssAAAAABaM4BNyAAAAFliIQA6DGAGHz8wGf1TUJnmZEzJ5M4XTWqywp8IFXYcwehAwwiIjhihQE20n7hH0aYUAmSAn7c+QHyuXRFZBfAM75bbAMccmR35F9O4466Zisx2HsejZ3aG2mNxpRossTmo0zgQUMMCRBkZSx6zXEHLN84nrjf4LKakkOVpHo4Xs/Y+GHCoANF1+tfjQxI6u5CV3IRe+Au+AvZQ0AwAMFD/7fsWfYgAAAAAQkwAAABQZojAYiwAAAAAQlQAAABQZ5BQGIsAAAAAQlQAAABAZ5iQMRYAAAAAQkQAAAAAWdNQArspLYCIAAAAwAgAAAGQeJEssAAAAABaM4BNyAAAAFliIIAMgxghWO2emLfWjezRhEhKGooQmxi33o1AJofaQPTC8EwXwG/D8Crbbt8rF1U6pkqGGCRGSA0+CSgcboNmMehiVaijgxjiBYGmMGV8Jr4Uvgr4C8SPHAxg/4vF4AAAAABCTAAAAFBmiMBi88JbyAAWbfZz8BdpDXx0P5IAAAAAQlQAAABQZ5BQGLPwg1l/5IAAAABCVAAAAEBnmJAxFg="
	seedH265  = "AAAAAUABDAH//wFgAAADAJAAAAMAAAMAHroCQAAAAAFCAQEBYAAAAwCQAAADAAADAB6gIIEFlukpMLwFoCAAAAMAIAAAAwMhAAAAAUQBwHPAiQAAAAEoAawYYD7XsGzgy2s8JzuS33D6j/C0VMYOfI8+SNbe/pMO/6+zn3YFQ+3d8/greJOXH85+/j3f4KnIoCpcSLnP7nLtG2H/wn87IqWcRJFddTObbma0d6MJSi6tnUK4lw7hFXQ03zfQeOJ4q/1WVUnsZjolqNkPxuSVXq6z7l2gMMN3NQubtEFr+RerUeAvjsIMDSowuCvc+fEAYBwTDZRikNcaPvVIOCb0yL8Y1urVCQWBtvCo9h3bSCjU4jgkLywBmuxmdU1zcTUqvaZpxTLjMBQytrFGjXtbig+ua512KUbyVzp+gNH7cnOAAAAAAUYBMAAAAAECAdAJeIDDOSAAAAABRgEwAAAAAQIB0BH+IDBAOSAAAAABRgEwAAAAAQIB0Bn+IDBAOSAAAAABRgEQAAAAAUABDAH//wFgAAADAJAAAAMAAAMAHroCQAAAAAFCAQEBYAAAAwCQAAADAAADAB6gIIEFlukpMLwFoCAAAAMAIAAAAwMhAAAAAUQBwHPAiQAAAAEoAawWYL6Tw0KG+QLsKc87l3riFuyu7CV7gNw+f3/rCokurUE/urXH5eDMvsSlGPLJdtkdGkciH1l5N0kAdkLU2bpqUXVvz/VV7/xn1Ggo3wn/rvNa/Pzi1Aqle+kQs1Bd7dhg79W12ZAHL2pY+0+KGRw/830E8prP6GfJUuLVwC79H/Nb3r3PTgXIHluzEzDegCicJir4WzBn5VhaEPmYdK5iETotcJRjVpBUFl4Sog+WaOrrNXGSYjbkoILQWmDWllIFG2W+Wa+xRJKC+056hVMEw0LDEfjv8+IZQaFPejvs07LZqQwV3T43hephTxxYGt15GPM9gkDsAhQrpoRWVUdNj2/aDJWe3IpBepQfXA8xi1yzIqD4jiT9S/K0Q+pwteVPveWrlOw55uFaVZPO2wYHHw0XBMpLQeIGoVLP6B9l3ixEqfc8WC7TUljCKbwyAj+rvL8gN1I9r3yOxhexDgBDPXPifISa9S7M2WBvIj7NcJItZ+qAAAAAAUYBMAAAAAECAdAJeIDBOSAAAAABRgEwAAAAAQIB0BH+IDDAOSAAAAABRgEwAAAAAQIB0Bn+IDBAVJVEPmd1Ew=="
	seedH265B = "AAAAAUABDAH//wFgAAADAJAAAAMAAAMAHpWQCQAAAAFCAQEBYAAAAwCQAAADAAADAB6gIIEFllZEpMLwFoCAAAADAIAAAAyEAAAAAUQBwHPAiQAAAAEoAawYYD7rjnyezMNtxB3QGkccOc3aZxuci0inyBhse36xxxv/r/iJ0nd+OI1U5NTQZ/a+LpvYx3zTBAGe89RzXy/MU0K+4Eof+mpjrVignHfk8trcD0kX22n98f5dGs9oGiCy3aNEL9P/hzln3liyYB+mTAccslW/SpzinPxYw+8L27h5IitjxmETtXRfXjX1I+n7j2onnCoJUW2FSXGr8QwYfoIwdR7BTW748MYZn7qI/KLcfd1aDc0B+uRJHe5GHgfm+2jI3UpOMoOvTLjCewY3m5PUTwAAAAFGATAAAAABAgHQGV4gMEA5IAAAAAFGAVAAAAABAgHgRJeCAyQwoAAAAAFGAVAAAAABAAHgJP/okBlgMKAAAAABRgEQAAAAAUABDAH//wFgAAADAJAAAAMAAAMAHpWQCQAAAAFCAQEBYAAAAwCQAAADAAADAB6gIIEFllZEpMLwFoCAAAADAIAAAAyEAAAAAUQBwHPAiQAAAAEoAawXYMKMtIq8mGWM3PmSCv6OyzK6PT9SP+7+aOwH0+IGeoC/9fUX/cu336Led8RF+Rba1CDPNi4PQpjgqEHJmUHf3ubifIxhDzC5j+9d9/wQx7+IFLTdmDQu1r7n5XMBC1SbH+hn7GKR5eB5SpM/QIv0TJNSyzvyiwCmEbcHIsIPnPYDgIIrF6ZUCnYweN4AXVT9lPvI6D3lOyQWOjDAguy2LaNe9Kquq9KqcZohyw9dTOkfEw6TCc8e67YClsp7sniIuvCbyboFhWtcGUqnDqD6u6taDK3LlM5m9d8TVJXZuPbq43Gjixi6AUGuXIUD4uSkA/HUf1mVeGCB9yHPVDwdkJsYhH4zZqwwtE6OhAyDfepXRuYrnCtA9u1F/VBYf/vlmu7OHvkoTFAZh8hjE9wTUl47F4Qw5bLAKL3uhwO8AAAAAUYBMAAAAAECAdAZXiAwQFSVRD5ndRMAAAABRgFQAAAAAQIB4ESXggMsMKAAAAABRgFQAAAAAQAB4CT/6JAZIDCg"
)
