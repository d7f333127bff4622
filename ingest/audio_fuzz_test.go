package ingest

// FuzzAudioDepacketizer feeds arbitrary RTP packet sequences to the audio depacketizer
// of a format chosen from the input (G.711 at any clock rate an SDP may declare, Opus,
// AAC with any AU-header layout RFC 3640 allows), in the packet encoding of
// depacketize_fuzz_test.go.
//
//	go test -run '^$' -fuzz '^FuzzAudioDepacketizer$' -fuzztime 30s -parallel 1 ./ingest/

import (
	"bytes"
	"errors"
	"fmt"
	"runtime/debug"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"
)

// audioFuzzFormat builds the format of a fuzzed audio track. kind's low two bits pick the
// codec (0 G.711, 1 Opus, 2 and 3 AAC), bit 2 the G.711 law (set: µ-law), bit 3 two
// channels instead of one. rate is the clock rate where the SDP sets it (G.711's rtpmap:
// 1 to 2^31-1; AAC's AudioSpecificConfig: 24 bits), with 0 standing for the usual rate
// (gortsplib drops every packet of a track whose rate is 0: no depacketizer sees one).
// The AAC AU-header field sizes are what gortsplib's SDP parser admits: sizelength 1 to
// 100 (0 is refused as "missing"), the others 0 to 100.
func audioFuzzFormat(kind uint8, rate uint32, sizeLength, indexLength, indexDeltaLength uint8) (Codec, format.Format) {
	channels := 1 + int(kind>>3&1)
	switch kind & 3 {
	case 0:
		r := int(rate % (1 << 31))
		if r == 0 {
			r = 8000
		}
		return CodecG711, &format.G711{PayloadTyp: 96, MULaw: kind&4 != 0, SampleRate: r, ChannelCount: channels}
	case 1:
		return CodecOpus, &format.Opus{PayloadTyp: 96, ChannelCount: channels}
	}
	r := int(rate % (1 << 24))
	if r == 0 {
		r = 16000
	}
	return CodecAAC, &format.MPEG4Audio{
		PayloadTyp: 96,
		Config:     &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: r, ChannelCount: channels},
		SizeLength: 1 + int(sizeLength)%100, IndexLength: int(indexLength) % 101, IndexDeltaLength: int(indexDeltaLength) % 101,
	}
}

// audioSink counts what the depacketizer reports besides the units it publishes.
type audioSink struct {
	fuzzSink
	brokenCalls int
}

func (s *audioSink) streamBroken(err error) {
	s.fuzzSink.streamBroken(err)
	s.brokenCalls++
}

// packetProbe is the depacketizer feedFuzzPackets drives: it tells the test which packet
// the depacketizer is handling, so that every unit and report is checked against the
// packet that caused it.
type packetProbe struct {
	dp            depacketizer
	before, after func(pkt *rtp.Packet, pts int64)
}

func (p *packetProbe) packet(pkt *rtp.Packet, pts int64) {
	p.before(pkt, pts)
	p.dp.packet(pkt, pts)
	p.after(pkt, pts)
}

// fuzzAudio is one fuzzed audio track and what has been checked so far.
type fuzzAudio struct {
	t     *testing.T
	codec Codec
	track *Track
	sink  *audioSink

	units     []*Unit
	snapshots [][][]byte // each unit's payload, copied when it was published

	// Per packet: its index, the counts before it, and the payload bytes received since
	// the last published unit (including this packet's).
	pkt                                   int
	errsBefore, brokenBefore, unitsBefore int
	pending                               int
	lastPTS                               int64 // RTP time of the last published unit, valid when len(units) > 0
}

// fuzzAudioDepacketizer feeds data's packets to an audio depacketizer for forma (if
// selectMedias would select it and newDepacketizer accepts it; TestAudioDepacketizerSeeds
// makes sure the usual formats are) and checks, packet by packet:
//   - one packet causes at most one of: a published unit, a decode error, a broken stream;
//     for G.711 and Opus (one frame per packet, nothing to reassemble) exactly one, so no
//     packet vanishes uncounted;
//   - a unit is a valid audio unit: this track, Key, DTS = PTS, no Params, no
//     Discontinuity, at least one frame and no empty frame (an empty frame is no codec
//     frame: it is counted as a decode error, not published), never more payload bytes
//     than arrived since the previous unit; for G.711 and Opus exactly the packet's
//     payload;
//   - its PTS is the packet's RTP time, exactly, and strictly after the previous unit's;
//   - a packet not after the last published one is refused: as a decode error while it is
//     at most audioJumpTolerance behind (reordering), by ending the stream (errClockJump)
//     when more; a G.711 or Opus packet is refused only then, or when it is not a frame
//     (empty, or a G.711 run that is not whole samples of every channel);
//   - published units never change afterwards (no buffer of the depacketizer is reused).
func fuzzAudioDepacketizer(t *testing.T, codec Codec, forma format.Format, data []byte) {
	if c, kind, ok := supportedCodec(forma); !ok || c != codec || kind != KindAudio {
		return // selectMedias does not select this format: no packet of it reaches a depacketizer
	}
	track := &Track{Index: 1, Kind: KindAudio, Codec: codec, ClockRate: forma.ClockRate(), Format: forma}
	a := &fuzzAudio{t: t, codec: codec, track: track, sink: &audioSink{}}
	dp, err := newDepacketizer(track, forma, a.sink, a.published)
	if err != nil {
		return // refused up front: the session ends with errUnsupportedCodec before PLAY
	}
	func() {
		// A panic fails this input without taking the rest of the package's tests down (in
		// production supervise.Call turns it into a reconnect).
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("packet %d: the depacketizer panicked: %v\n%s", a.pkt, p, debug.Stack())
			}
		}()
		feedFuzzPackets(&packetProbe{dp: dp, before: a.before, after: a.after}, decodeFuzzPackets(data))
	}()
	for i, u := range a.units {
		for j, fr := range u.Payload {
			if !bytes.Equal(fr, a.snapshots[i][j]) {
				t.Fatalf("unit %d frame %d changed after it was published: %x, was %x", i, j, fr, a.snapshots[i][j])
			}
		}
	}
}

func (a *fuzzAudio) before(pkt *rtp.Packet, _ int64) {
	a.errsBefore, a.brokenBefore, a.unitsBefore = a.sink.decodeErrors, a.sink.brokenCalls, len(a.units)
	a.pending += len(pkt.Payload)
}

// published checks a unit as it is published, while its packet is being handled.
func (a *fuzzAudio) published(u *Unit) {
	if err := a.checkUnit(u); err != nil {
		a.t.Fatalf("packet %d: unit %d: %v", a.pkt, len(a.units), err)
	}
	snap := make([][]byte, len(u.Payload))
	for i, fr := range u.Payload {
		snap[i] = bytes.Clone(fr)
	}
	a.units, a.snapshots = append(a.units, u), append(a.snapshots, snap)
}

func (a *fuzzAudio) checkUnit(u *Unit) error {
	switch {
	case u.Track != a.track:
		return fmt.Errorf("track %p, want %p", u.Track, a.track)
	case !u.Key || u.DTS != u.PTS || u.Params != nil || u.Discontinuity || !u.Wall.IsZero():
		return fmt.Errorf("Key %v PTS %v DTS %v Params %v Discontinuity %v Wall %v", u.Key, u.PTS, u.DTS, u.Params, u.Discontinuity, u.Wall)
	case len(u.Payload) == 0:
		return fmt.Errorf("no frames")
	case u.Size() > a.pending:
		return fmt.Errorf("%d payload bytes published, %d received since the previous unit", u.Size(), a.pending)
	}
	for i, fr := range u.Payload {
		if len(fr) == 0 {
			return fmt.Errorf("frame %d of %d is empty", i, len(u.Payload))
		}
	}
	if n := len(a.units); n > 0 && u.PTS <= a.units[n-1].PTS {
		return fmt.Errorf("PTS %v not after the previous unit's %v", u.PTS, a.units[n-1].PTS)
	}
	return nil
}

// after checks what one packet caused.
func (a *fuzzAudio) after(pkt *rtp.Packet, pts int64) {
	t := a.t
	defer func() { a.pkt++ }()
	units, errs, broken := len(a.units)-a.unitsBefore, a.sink.decodeErrors-a.errsBefore, a.sink.brokenCalls-a.brokenBefore
	what := fmt.Sprintf("packet %d (marker %v, seq %d, RTP time %d, %d bytes)", a.pkt, pkt.Marker, pkt.SequenceNumber, pts, len(pkt.Payload))
	if units+errs+broken > 1 {
		t.Fatalf("%s: %d units, %d decode errors, %d stream ends", what, units, errs, broken)
	}
	oneFrame := a.codec != CodecAAC
	if oneFrame && units+errs+broken == 0 {
		t.Fatalf("%s: neither published nor counted as a decode error", what)
	}
	rate := a.track.ClockRate
	// behind is how far the packet lies before the last published unit (0 if after it).
	var behind time.Duration
	started := a.unitsBefore > 0
	if started && pts <= a.lastPTS {
		behind = clockToDuration(a.lastPTS-pts, rate)
	}
	late := started && pts <= a.lastPTS
	switch {
	case units == 1:
		u := a.units[len(a.units)-1]
		if want := clockToDuration(pts, rate); u.PTS != want {
			t.Fatalf("%s: PTS %v, want %v", what, u.PTS, want)
		}
		if late {
			t.Fatalf("%s: published although %v behind the previous unit", what, behind)
		}
		if oneFrame && (len(u.Payload) != 1 || !bytes.Equal(u.Payload[0], pkt.Payload)) {
			t.Fatalf("%s: published %d frames (%d bytes), not the packet's payload", what, len(u.Payload), u.Size())
		}
		a.lastPTS, a.pending = pts, 0
	case broken == 1:
		if !errors.Is(a.sink.broken, errClockJump) {
			t.Fatalf("%s: stream ended with %v, which does not wrap errClockJump", what, a.sink.broken)
		}
		if !late || behind <= audioJumpTolerance {
			t.Fatalf("%s: stream ended (%v), but the packet is only %v behind the last unit (late %v)", what, a.sink.broken, behind, late)
		}
	case errs == 1 && oneFrame:
		// A G.711 run is whole samples: a byte per channel.
		whole := len(pkt.Payload) > 0
		if g, ok := a.track.Format.(*format.G711); ok && len(pkt.Payload)%g.ChannelCount != 0 {
			whole = false
		}
		if whole && (!late || behind > audioJumpTolerance) {
			t.Fatalf("%s: counted as a decode error, but it is a valid frame %v behind the last unit (late %v)", what, behind, late)
		}
	}
}

// aacFuzzLayouts are the AU-header layouts of RFC 3640's AAC modes, as audioFuzzFormat
// arguments (sizelength - 1, indexlength, indexdeltalength): AAC-hbr (13/3/3) and AAC-lbr
// (6/2/2, AUs of at most 63 bytes).
var aacFuzzLayouts = [][3]uint8{{12, 3, 3}, {5, 2, 2}}

// aacSeedPackets packetizes AUs with gortsplib's encoder for the layout, one call of
// Encode per group: small AUs share packets, a big one is fragmented. Every packet that
// starts an AU or a batch of AUs is one step (450 ticks) after the previous one.
func aacSeedPackets(tb testing.TB, layout [3]uint8, groups ...[][]byte) []byte {
	e := &rtpmpeg4audio.Encoder{PayloadType: 96, SizeLength: 1 + int(layout[0]), IndexLength: int(layout[1]),
		IndexDeltaLength: int(layout[2]), PayloadMaxSize: min(200, 1<<(1+layout[0])-1)}
	if err := e.Init(); err != nil {
		tb.Fatal(err)
	}
	var out []fuzzPacket
	for _, g := range groups {
		pkts, err := e.Encode(g)
		if err != nil {
			tb.Fatal(err)
		}
		for i, p := range pkts {
			fp := fuzzPacket{marker: p.Marker, payload: p.Payload}
			if i == 0 || pkts[i-1].Marker {
				fp.delta = 1
			}
			out = append(out, fp)
		}
	}
	return encodeFuzzPackets(out)
}

// seedFrames returns n frames of size bytes, each different.
func seedFrames(n, size int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = bytes.Repeat([]byte{byte(0x21 + i)}, size)
	}
	return out
}

// oneFramePackets is a packet per frame, with the given PTS deltas (1 for the rest).
func oneFramePackets(frames [][]byte, deltas ...int8) []byte {
	out := make([]fuzzPacket, len(frames))
	for i, fr := range frames {
		out[i] = fuzzPacket{marker: true, delta: 1, payload: fr}
		if i < len(deltas) {
			out[i].delta = deltas[i]
		}
	}
	return encodeFuzzPackets(out)
}

func addAudioSeeds(f *testing.F) {
	const (
		g711, opus, aac = 0, 1, 2
		pcmu            = 4 // kind bit: µ-law
		stereo          = 8 // kind bit: two channels
	)
	// G.711: 20 ms runs of samples, in order; duplicated, reordered, and a clock that goes
	// back by 2 s (16000 ticks at 8 kHz: deltas of 450 ticks) or jumps forward.
	pcm := seedFrames(6, 160)
	f.Add(uint8(g711|pcmu), uint32(0), uint8(0), uint8(0), uint8(0), oneFramePackets(pcm))
	f.Add(uint8(g711), uint32(0), uint8(0), uint8(0), uint8(0), oneFramePackets(pcm, 0, 1, 0, -1, 2, 1))
	f.Add(uint8(g711), uint32(0), uint8(0), uint8(0), uint8(0), oneFramePackets(pcm, 0, 40, 1, -36, -1, 3))
	f.Add(uint8(g711|stereo), uint32(16000), uint8(0), uint8(0), uint8(0), oneFramePackets(pcm, 0, 127, -128, 127))
	f.Add(uint8(g711|pcmu), uint32(1), uint8(0), uint8(0), uint8(0), oneFramePackets(pcm, 0, 1, -1, 1))
	// Opus: TOC byte (config 15, stereo) and a frame; a reorder of 10 ms and a clock jump.
	op := seedFrames(5, 60)
	for _, fr := range op {
		fr[0] = 0x7c
	}
	f.Add(uint8(opus|stereo), uint32(0), uint8(0), uint8(0), uint8(0), oneFramePackets(op))
	f.Add(uint8(opus), uint32(0), uint8(0), uint8(0), uint8(0), oneFramePackets(op, 0, 1, -1, 1, -120))
	// AAC, both RFC 3640 layouts: one AU per packet, several in one, one AU fragmented over
	// packets (2000 bytes: beyond one packet), and ADTS-wrapped AUs, which some cameras send.
	adts := func(au []byte) []byte {
		b, err := mpeg4audio.ADTSPackets{{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 16000, ChannelCount: 1, AU: au}}.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	aus := seedFrames(6, 40)
	for _, l := range aacFuzzLayouts {
		small := seedFrames(4, 20)
		f.Add(uint8(aac), uint32(0), l[0], l[1], l[2], aacSeedPackets(f, l, aus[:1], aus[1:2], aus[2:3], aus[3:4]))
		f.Add(uint8(aac), uint32(48000), l[0], l[1], l[2], aacSeedPackets(f, l, small, aus[:1], small[1:3]))
		f.Add(uint8(aac), uint32(0), l[0], l[1], l[2], aacSeedPackets(f, l, aus[:1], seedFrames(1, 600), aus[1:2]))
		f.Add(uint8(aac), uint32(0), l[0], l[1], l[2], aacSeedPackets(f, l, [][]byte{adts(aus[0])}, [][]byte{adts(aus[1])}, [][]byte{adts(aus[2])}))
	}
	// An AU-headers-length of 0. (Empty frames, from a padding-only G.711 or Opus packet
	// or an AAC AU-size of 0, are in testdata/fuzz/FuzzAudioDepacketizer.)
	f.Add(uint8(aac), uint32(0), uint8(12), uint8(3), uint8(3), encodeFuzzPackets([]fuzzPacket{{marker: true, delta: 1, payload: []byte{0, 0, 1, 2}}}))
}

func FuzzAudioDepacketizer(f *testing.F) {
	addAudioSeeds(f)
	f.Fuzz(func(t *testing.T, kind uint8, rate uint32, sizeLength, indexLength, indexDeltaLength uint8, data []byte) {
		codec, forma := audioFuzzFormat(kind, rate, sizeLength, indexLength, indexDeltaLength)
		fuzzAudioDepacketizer(t, codec, forma, data)
	})
}

// TestAudioDepacketizerSeeds checks that the seeds reach what they are meant to: valid
// G.711, Opus and AAC streams (fragmented, aggregated, ADTS-wrapped) are published whole,
// a unit for every packet with the marker bit, frame for frame, without a decode error.
func TestAudioDepacketizerSeeds(t *testing.T) {
	check := func(name string, kind uint8, layout [3]uint8, data []byte, wantFrames int) {
		t.Run(name, func(t *testing.T) {
			codec, forma := audioFuzzFormat(kind, 0, layout[0], layout[1], layout[2])
			track := &Track{Kind: KindAudio, Codec: codec, ClockRate: forma.ClockRate(), Format: forma}
			sink := &audioSink{}
			var units []*Unit
			dp := mustDepacketizer(t, track, forma, sink, func(u *Unit) { units = append(units, u) })
			pkts := decodeFuzzPackets(data)
			feedFuzzPackets(dp, pkts)
			wantUnits, frames := 0, 0
			for _, p := range pkts {
				if p.marker {
					wantUnits++
				}
			}
			for _, u := range units {
				frames += len(u.Payload)
			}
			if len(units) != wantUnits || frames != wantFrames || sink.decodeErrors != 0 || sink.brokenCalls != 0 {
				t.Fatalf("%d units, %d frames, %d decode errors, %d stream ends; want %d units, %d frames",
					len(units), frames, sink.decodeErrors, sink.brokenCalls, wantUnits, wantFrames)
			}
		})
	}
	check("g711", 0, [3]uint8{}, oneFramePackets(seedFrames(6, 160)), 6)
	check("opus", 1, [3]uint8{}, oneFramePackets(seedFrames(5, 60)), 5)
	for _, l := range aacFuzzLayouts {
		name := fmt.Sprintf("aac-%d-%d-%d", 1+l[0], l[1], l[2])
		aus := seedFrames(4, 40)
		check(name+"/one-per-packet", 2, l, aacSeedPackets(t, l, aus[:1], aus[1:2]), 2)
		check(name+"/aggregated", 2, l, aacSeedPackets(t, l, seedFrames(4, 20), aus[:1]), 5)
		check(name+"/fragmented", 2, l, aacSeedPackets(t, l, aus[:1], seedFrames(1, 600), aus[1:2]), 3)
	}
}
