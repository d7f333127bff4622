package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/pion/rtp"
)

// depacketizer turns one track's RTP packets into published Units. Each track's packets
// arrive on one goroutine, so a depacketizer needs no locking.
type depacketizer interface {
	packet(pkt *rtp.Packet, pts int64)
}

// unitSink is what a depacketizer reports to besides publishing: what it could not use,
// the parameter sets in force, and a stream whose timeline broke.
type unitSink interface {
	decodeError()
	videoParams(p *VideoParams)
	// streamBroken ends the session: its timeline cannot continue (the camera's clock
	// jumped back), so consumers must start afresh with a new Stream.
	streamBroken(err error)
}

func (s *Source) decodeError() { s.decodeErrs.Add(1) }

func (s *Source) videoParams(p *VideoParams) { s.setResolution(p.Width, p.Height) }

// errClockJump ends a session whose camera clock went backwards.
var errClockJump = errors.New("camera clock jumped backwards")

// audioJumpTolerance tells a reordered or duplicated audio packet (dropped) from a camera
// clock that went back (the session restarts): no network reorders by a second.
const audioJumpTolerance = time.Second

// newDepacketizer returns the depacketizer for a format selectMedias admitted. An error
// means the format's parameters are beyond what gortsplib can depacketize.
func newDepacketizer(t *Track, f format.Format, sink unitSink, publish func(*Unit)) (depacketizer, error) {
	switch f := f.(type) {
	case *format.H264:
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		sps, pps := f.SafeParams()
		return newVideoDepacketizer(t, sink, publish, h264Codec{}, dec.Decode, func(err error) bool {
			return errors.Is(err, rtph264.ErrMorePacketsNeeded) || errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious)
		}, [][]byte{sps, pps}), nil
	case *format.H265:
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		vps, sps, pps := f.SafeParams()
		return newVideoDepacketizer(t, sink, publish, h265Codec{}, dec.Decode, func(err error) bool {
			return errors.Is(err, rtph265.ErrMorePacketsNeeded) || errors.Is(err, rtph265.ErrNonStartingPacketAndNoPrevious)
		}, [][]byte{vps, sps, pps}), nil
	case *format.MPEG4Audio:
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		return &audioDepacketizer{track: t, sink: sink, publish: publish, decode: dec.Decode,
			partial: func(err error) bool { return errors.Is(err, rtpmpeg4audio.ErrMorePacketsNeeded) }}, nil
	case *format.Opus:
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		return &audioDepacketizer{track: t, sink: sink, publish: publish, decode: single(dec.Decode)}, nil
	case *format.G711:
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		return &audioDepacketizer{track: t, sink: sink, publish: publish, decode: single(dec.Decode)}, nil
	}
	return nil, fmt.Errorf("no depacketizer for %s", f.Codec())
}

func newVideoDepacketizer(t *Track, sink unitSink, publish func(*Unit), c videoCodec,
	decode func(*rtp.Packet) ([][]byte, error), partial func(error) bool, sdpParams [][]byte) *videoDepacketizer {
	v := &videoDepacketizer{track: t, sink: sink, publish: publish, decode: decode, partial: partial, codec: c}
	v.params = updateParams(c, &VideoParams{}, sdpParams)
	sink.videoParams(v.params)
	return v
}

// single adapts a decoder that yields one frame per packet.
func single(dec func(*rtp.Packet) ([]byte, error)) func(*rtp.Packet) ([][]byte, error) {
	return func(p *rtp.Packet) ([][]byte, error) {
		b, err := dec(p)
		if err != nil {
			return nil, err
		}
		return [][]byte{b}, nil
	}
}

// videoCodec holds what differs between H.264 and H.265.
type videoCodec interface {
	// paramSet says which parameter set a NAL unit is, or paramNone.
	paramSet(nalu []byte) paramSetKind
	// needsVPS tells whether a VPS is required to decode (H.265).
	needsVPS() bool
	// size parses the picture size from an SPS; ok is false when it cannot be parsed.
	size(sps []byte) (w, h int, ok bool)
	isRandomAccess(au [][]byte) bool
	// isDelimiter tells an access unit delimiter.
	isDelimiter(nalu []byte) bool
	newDTSExtractor() dtsExtractor
}

type paramSetKind int

const (
	paramNone paramSetKind = iota
	paramVPS
	paramSPS
	paramPPS
)

type dtsExtractor interface {
	Extract(au [][]byte, pts int64) (int64, error)
}

// updateParams returns cur, or new parameters when au carries parameter sets that differ
// from cur. Published *VideoParams are never modified, so a change makes a copy.
func updateParams(c videoCodec, cur *VideoParams, au [][]byte) *VideoParams {
	var next *VideoParams
	for _, n := range au {
		kind := c.paramSet(n)
		if kind == paramNone {
			continue
		}
		slot := func(p *VideoParams) *[]byte {
			switch kind {
			case paramVPS:
				return &p.VPS
			case paramSPS:
				return &p.SPS
			}
			return &p.PPS
		}
		if bytes.Equal(*slot(cur), n) || next != nil && bytes.Equal(*slot(next), n) {
			continue
		}
		if next == nil {
			next = &VideoParams{}
			*next = *cur
		}
		*slot(next) = bytes.Clone(n)
		if kind == paramSPS {
			next.Width, next.Height, _ = c.size(n)
		}
	}
	if next == nil {
		return cur
	}
	return next
}

// paramsComplete tells whether a decoder can start with p.
func paramsComplete(c videoCodec, p *VideoParams) bool {
	return len(p.SPS) > 0 && len(p.PPS) > 0 && (!c.needsVPS() || len(p.VPS) > 0)
}

// withParams returns a keyframe's access unit starting with the parameter sets in force
// (which updateParams already refreshed from this unit), followed by the unit's other NAL
// units: every consumer can then start decoding at any keyframe, whether the camera sends
// its parameter sets in band, only in the SDP, or in part. Access unit delimiters are
// dropped, since they would have to come first.
func withParams(c videoCodec, p *VideoParams, au [][]byte) [][]byte {
	out := make([][]byte, 0, len(au)+3)
	if c.needsVPS() {
		out = append(out, p.VPS)
	}
	out = append(out, p.SPS, p.PPS)
	for _, n := range au {
		switch c.paramSet(n) {
		case paramVPS:
			if bytes.Equal(n, p.VPS) {
				continue
			}
		case paramSPS:
			if bytes.Equal(n, p.SPS) {
				continue
			}
		case paramPPS:
			if bytes.Equal(n, p.PPS) {
				continue
			}
		}
		if c.isDelimiter(n) {
			continue
		}
		out = append(out, n)
	}
	return out
}

// videoDepacketizer reassembles access units, tracks parameter sets, waits for a keyframe,
// computes DTS and drops what would break a consumer's decoder.
type videoDepacketizer struct {
	track   *Track
	sink    unitSink
	publish func(*Unit)
	decode  func(*rtp.Packet) ([][]byte, error)
	partial func(error) bool // errors that only mean "more packets needed"
	codec   videoCodec

	params    *VideoParams
	dts       dtsExtractor // nil until the first keyframe, and again after a unit that could not be timed
	lastDTS   int64        // decode time of the last published unit, valid when published
	published bool
	dropped   bool // units were dropped since the last published one; flag the next keyframe
}

func (v *videoDepacketizer) packet(pkt *rtp.Packet, pts int64) {
	au, err := v.decode(pkt)
	if err != nil {
		if !v.partial(err) {
			v.sink.decodeError()
		}
		return
	}
	if p := updateParams(v.codec, v.params, au); p != v.params {
		v.params = p
		v.sink.videoParams(p)
	}
	key := v.codec.isRandomAccess(au) && paramsComplete(v.codec, v.params)
	if v.dts == nil {
		if !key {
			return // a decoder cannot start before the first keyframe of the session
		}
		v.dts = v.codec.newDTSExtractor()
	}
	if key {
		au = withParams(v.codec, v.params, au)
	}
	dts, err := v.dts.Extract(au, pts)
	if err == nil && v.published && dts <= v.lastDTS {
		if key {
			// Even a fresh start at a keyframe lands in the past: the camera's clock went
			// back. Consumers cannot continue this timeline, so the session restarts.
			v.sink.streamBroken(fmt.Errorf("%w: %v after %v", errClockJump,
				clockToDuration(dts, v.track.ClockRate), clockToDuration(v.lastDTS, v.track.ClockRate)))
			return
		}
		err = errors.New("decode time does not advance")
	}
	if err != nil {
		// A unit that cannot be placed in decode order would corrupt every consumer's
		// timeline. Drop it and everything up to the next keyframe, which starts afresh.
		v.sink.decodeError()
		v.dts, v.dropped = nil, v.published
		return
	}
	discontinuity := v.dropped
	v.lastDTS, v.published, v.dropped = dts, true, false
	rate := v.track.ClockRate
	v.publish(&Unit{
		Track:         v.track,
		PTS:           clockToDuration(pts, rate),
		DTS:           clockToDuration(dts, rate),
		Key:           key,
		Payload:       au,
		Params:        v.params,
		Discontinuity: discontinuity,
	})
}

// audioDepacketizer publishes audio frames; every audio unit is a random access point.
type audioDepacketizer struct {
	track   *Track
	sink    unitSink
	publish func(*Unit)
	decode  func(*rtp.Packet) ([][]byte, error)
	partial func(error) bool

	started bool
	lastPTS int64
}

func (a *audioDepacketizer) packet(pkt *rtp.Packet, pts int64) {
	frames, err := a.decode(pkt)
	if err != nil {
		if a.partial == nil || !a.partial(err) {
			a.sink.decodeError()
		}
		return
	}
	// An empty frame (a padding-only packet, a zero-sized AU) carries no sound; published,
	// it would become a zero-length sample in the recording.
	frames = slices.DeleteFunc(frames, func(f []byte) bool { return len(f) == 0 })
	if len(frames) == 0 {
		a.sink.decodeError()
		return
	}
	if a.started && pts <= a.lastPTS {
		if clockToDuration(a.lastPTS-pts, a.track.ClockRate) > audioJumpTolerance {
			a.sink.streamBroken(fmt.Errorf("%w: audio", errClockJump))
			return
		}
		a.sink.decodeError() // a duplicate or reordered packet; its time has already passed
		return
	}
	a.started, a.lastPTS = true, pts
	d := clockToDuration(pts, a.track.ClockRate)
	a.publish(&Unit{Track: a.track, PTS: d, DTS: d, Key: true, Payload: frames})
}

// clockToDuration converts RTP clock ticks to a Duration without overflowing: a plain
// v*1e9 overflows int64 after about 28 hours at 90 kHz.
func clockToDuration(v int64, rate int) time.Duration {
	r := int64(rate)
	return time.Duration(v/r)*time.Second + time.Duration(v%r)*time.Second/time.Duration(r)
}

// h264Codec implements videoCodec for H.264.
type h264Codec struct{}

func (h264Codec) paramSet(n []byte) paramSetKind {
	if len(n) == 0 {
		return paramNone
	}
	switch h264.NALUType(n[0] & 0x1f) {
	case h264.NALUTypeSPS:
		return paramSPS
	case h264.NALUTypePPS:
		return paramPPS
	}
	return paramNone
}

func (h264Codec) needsVPS() bool { return false }

func (h264Codec) size(sps []byte) (int, int, bool) {
	var p h264.SPS
	if p.Unmarshal(sps) != nil {
		return 0, 0, false
	}
	return p.Width(), p.Height(), true
}

func (h264Codec) isRandomAccess(au [][]byte) bool { return h264.IsRandomAccess(au) }

func (h264Codec) isDelimiter(n []byte) bool {
	return len(n) > 0 && h264.NALUType(n[0]&0x1f) == h264.NALUTypeAccessUnitDelimiter
}

func (h264Codec) newDTSExtractor() dtsExtractor {
	d := &h264.DTSExtractor{}
	d.Initialize()
	return d
}

// h265Codec implements videoCodec for H.265.
type h265Codec struct{}

func (h265Codec) paramSet(n []byte) paramSetKind {
	if len(n) < 2 {
		return paramNone
	}
	switch h265.NALUType((n[0] >> 1) & 0x3f) {
	case h265.NALUType_VPS_NUT:
		return paramVPS
	case h265.NALUType_SPS_NUT:
		return paramSPS
	case h265.NALUType_PPS_NUT:
		return paramPPS
	}
	return paramNone
}

func (h265Codec) needsVPS() bool { return true }

func (h265Codec) size(sps []byte) (int, int, bool) {
	var p h265.SPS
	if p.Unmarshal(sps) != nil {
		return 0, 0, false
	}
	return p.Width(), p.Height(), true
}

func (h265Codec) isRandomAccess(au [][]byte) bool { return h265.IsRandomAccess(au) }

func (h265Codec) isDelimiter(n []byte) bool {
	return len(n) > 1 && h265.NALUType((n[0]>>1)&0x3f) == h265.NALUType_AUD_NUT
}

func (h265Codec) newDTSExtractor() dtsExtractor {
	d := &h265.DTSExtractor{}
	d.Initialize()
	return d
}
