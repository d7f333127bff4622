// Package testclip turns raw Annex-B H.264/H.265 files into the access units ingest publishes, at
// full speed, for the motion package's tests and benchmarks; and makes such files with ffmpeg,
// cached between runs.
//
// Nothing here runs in real time or starts a goroutine. Load holds the whole file in memory;
// test clips are small.
package testclip

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"

	"github.com/townwatch/townwatch/ingest"
)

// Load reads an Annex-B H.264 or H.265 elementary stream and returns its access units as ingest
// publishes them: one shared Track{Kind video, Codec, ClockRate 90000}; DTS = PTS = i/fps for
// the i-th unit (units are in decode order, so a clip with B-frames gets decode-order times);
// Wall = start + PTS; Key on IDR/IRAP units, whose Payload begins with the parameter sets in
// force; Params set (a new pointer whenever the parameter sets change, Width/Height from the
// SPS). Like ingest, it drops access unit delimiters and every unit before the first keyframe.
func Load(path string, codec ingest.Codec, fps int, start time.Time) ([]*ingest.Unit, error) {
	var c codecRules
	switch codec {
	case ingest.CodecH264:
		c = h264Rules{}
	case ingest.CodecH265:
		c = h265Rules{}
	default:
		return nil, fmt.Errorf("testclip: codec %q: want %s or %s", codec, ingest.CodecH264, ingest.CodecH265)
	}
	if fps <= 0 {
		return nil, fmt.Errorf("testclip: fps %d: must be > 0", fps)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("testclip: %w", err)
	}
	nalus := splitNALUs(raw)
	if len(nalus) == 0 {
		return nil, fmt.Errorf("testclip: %s: no Annex-B NAL units", path)
	}
	track := &ingest.Track{Kind: ingest.KindVideo, Codec: codec, ClockRate: 90000}
	var (
		units  []*ingest.Unit
		params = &ingest.VideoParams{}
	)
	publish := func(au [][]byte) {
		params = updateParams(c, params, au)
		key := c.randomAccess(au) && len(params.SPS) > 0 && len(params.PPS) > 0 &&
			(codec != ingest.CodecH265 || len(params.VPS) > 0)
		if !key && len(units) == 0 {
			return // a decoder cannot start here; ingest skips these too
		}
		if key {
			au = withParams(c, params, au)
		}
		if track.Format == nil {
			track.Format = c.format(params)
		}
		d := time.Duration(len(units)) * time.Second / time.Duration(fps)
		units = append(units, &ingest.Unit{
			Track: track, PTS: d, DTS: d, Wall: start.Add(d), Key: key, Payload: au, Params: params,
		})
	}
	var au [][]byte
	hasPicture := false
	for _, n := range nalus {
		if hasPicture && c.startsAU(n) {
			publish(au)
			au, hasPicture = nil, false
		}
		if c.delimiter(n) {
			continue
		}
		hasPicture = hasPicture || c.picture(n)
		au = append(au, n)
	}
	if hasPicture {
		publish(au)
	}
	if len(units) == 0 {
		return nil, fmt.Errorf("testclip: %s: no decodable %s keyframe", path, codec)
	}
	return units, nil
}

// splitNALUs returns the NAL units of an Annex-B stream without start codes, as sub-slices of
// raw. mediacommon's AnnexB.Unmarshal is meant for one access unit and caps its size, which a
// whole file exceeds. Bytes before the first start code are ignored.
func splitNALUs(raw []byte) [][]byte {
	startCode := []byte{0, 0, 1}
	i := bytes.Index(raw, startCode)
	if i < 0 {
		return nil
	}
	var nalus [][]byte
	for rest := raw[i+3:]; ; {
		end := bytes.Index(rest, startCode)
		n := rest
		if end >= 0 {
			n = rest[:end]
		}
		// A NAL unit ends in its RBSP stop bit, never in a zero byte: trailing zeros are the
		// zero_byte of the next 4-byte start code or trailing_zero_8bits.
		if n = bytes.TrimRight(n, "\x00"); len(n) > 0 {
			nalus = append(nalus, n)
		}
		if end < 0 {
			return nalus
		}
		rest = rest[end+3:]
	}
}

type paramKind int

const (
	notParam paramKind = iota
	vps
	sps
	pps
)

// codecRules holds what differs between H.264 and H.265 when splitting and labelling units.
type codecRules interface {
	param(n []byte) paramKind
	// startsAU tells a NAL unit that begins a new access unit once the current one holds a
	// picture (H.264 7.4.1.2.3, H.265 7.4.2.4.4).
	startsAU(n []byte) bool
	picture(n []byte) bool
	delimiter(n []byte) bool
	randomAccess(au [][]byte) bool
	size(sps []byte) (w, h int)
	format(p *ingest.VideoParams) format.Format
}

type h264Rules struct{}

func (h264Rules) typ(n []byte) h264.NALUType { return h264.NALUType(n[0] & 0x1f) }

func (r h264Rules) param(n []byte) paramKind {
	switch r.typ(n) {
	case h264.NALUTypeSPS:
		return sps
	case h264.NALUTypePPS:
		return pps
	}
	return notParam
}

func (r h264Rules) startsAU(n []byte) bool {
	switch t := r.typ(n); {
	case t == h264.NALUTypeNonIDR || t == h264.NALUTypeIDR:
		return len(n) > 1 && n[1]&0x80 != 0 // first_mb_in_slice == 0: ue(v) 0 is the bit 1
	case t == h264.NALUTypeAccessUnitDelimiter, t == h264.NALUTypeSPS, t == h264.NALUTypePPS,
		t == h264.NALUTypeSEI, t >= 14 && t <= 18:
		return true
	}
	return false
}

func (r h264Rules) picture(n []byte) bool {
	t := r.typ(n)
	return t >= h264.NALUTypeNonIDR && t <= h264.NALUTypeIDR
}

func (r h264Rules) delimiter(n []byte) bool { return r.typ(n) == h264.NALUTypeAccessUnitDelimiter }

func (h264Rules) randomAccess(au [][]byte) bool { return h264.IsRandomAccess(au) }

func (h264Rules) size(b []byte) (int, int) {
	var s h264.SPS
	if s.Unmarshal(b) != nil {
		return 0, 0
	}
	return s.Width(), s.Height()
}

func (h264Rules) format(p *ingest.VideoParams) format.Format {
	return &format.H264{PayloadTyp: 96, SPS: p.SPS, PPS: p.PPS, PacketizationMode: 1}
}

type h265Rules struct{}

func (h265Rules) typ(n []byte) h265.NALUType { return h265.NALUType((n[0] >> 1) & 0x3f) }

func (r h265Rules) param(n []byte) paramKind {
	if len(n) < 2 {
		return notParam
	}
	switch r.typ(n) {
	case h265.NALUType_VPS_NUT:
		return vps
	case h265.NALUType_SPS_NUT:
		return sps
	case h265.NALUType_PPS_NUT:
		return pps
	}
	return notParam
}

func (r h265Rules) startsAU(n []byte) bool {
	if len(n) < 3 {
		return false
	}
	switch t := r.typ(n); {
	case t <= 31:
		return n[2]&0x80 != 0 // first_slice_segment_in_pic_flag
	case t >= h265.NALUType_VPS_NUT && t <= h265.NALUType_AUD_NUT, t == h265.NALUType_PREFIX_SEI_NUT,
		t >= 41 && t <= 44, t >= 48 && t <= 55:
		return true
	}
	return false
}

func (r h265Rules) picture(n []byte) bool { return len(n) > 2 && r.typ(n) <= 31 }

func (r h265Rules) delimiter(n []byte) bool { return r.typ(n) == h265.NALUType_AUD_NUT }

func (h265Rules) randomAccess(au [][]byte) bool { return h265.IsRandomAccess(au) }

func (h265Rules) size(b []byte) (int, int) {
	var s h265.SPS
	if s.Unmarshal(b) != nil {
		return 0, 0
	}
	return s.Width(), s.Height()
}

func (h265Rules) format(p *ingest.VideoParams) format.Format {
	return &format.H265{PayloadTyp: 96, VPS: p.VPS, SPS: p.SPS, PPS: p.PPS}
}

// updateParams returns cur, or a new VideoParams when au carries different parameter sets:
// published params are never modified, and consumers detect a change by pointer.
func updateParams(c codecRules, cur *ingest.VideoParams, au [][]byte) *ingest.VideoParams {
	next := cur
	for _, n := range au {
		k := c.param(n)
		if k == notParam {
			continue
		}
		if bytes.Equal(*slot(next, k), n) {
			continue
		}
		if next == cur {
			cp := *cur
			next = &cp
		}
		*slot(next, k) = n
		if k == sps {
			next.Width, next.Height = c.size(n)
		}
	}
	return next
}

func slot(p *ingest.VideoParams, k paramKind) *[]byte {
	switch k {
	case vps:
		return &p.VPS
	case sps:
		return &p.SPS
	}
	return &p.PPS
}

// withParams returns a keyframe's NAL units led by the parameter sets in force, without
// duplicates of them, as ingest publishes keyframes.
func withParams(c codecRules, p *ingest.VideoParams, au [][]byte) [][]byte {
	out := make([][]byte, 0, len(au)+3)
	if len(p.VPS) > 0 {
		out = append(out, p.VPS)
	}
	out = append(out, p.SPS, p.PPS)
	for _, n := range au {
		if k := c.param(n); k != notParam && bytes.Equal(n, *slot(p, k)) {
			continue
		}
		out = append(out, n)
	}
	return out
}
