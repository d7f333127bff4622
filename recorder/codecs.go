package recorder

import (
	"fmt"
	"math/bits"
	"strings"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
)

// mimeCodecs is the RFC 6381 codecs parameter of a segment's init ("avc1.640028,
// mp4a.40.2"): what a browser's MediaSource.isTypeSupported and addSourceBuffer need.
// It is worked out once, when the segment opens, and kept in the catalog, so that a
// playlist never reads a file header. "" when a track's string cannot be derived.
func mimeCodecs(init *fmp4.Init) string {
	var out []string
	for _, t := range init.Tracks {
		var s string
		switch c := t.Codec.(type) {
		case *fmp4.CodecH264:
			// avc1.PPCCLL: profile_idc, constraint flags and level_idc, the SPS's
			// bytes 1 to 3 after the NAL header.
			if len(c.SPS) >= 4 {
				s = fmt.Sprintf("avc1.%02x%02x%02x", c.SPS[1], c.SPS[2], c.SPS[3])
			}
		case *fmp4.CodecH265:
			s = hevcCodecs(c.SPS)
		case *fmp4.CodecMPEG4Audio:
			s = fmt.Sprintf("mp4a.40.%d", c.Config.Type)
		case *fmp4.CodecOpus:
			s = "opus"
		case *fmp4.CodecLPCM:
			s = "ipcm"
		}
		if s == "" {
			return ""
		}
		out = append(out, s)
	}
	return strings.Join(out, ",")
}

// hevcCodecs builds "hev1.P.C.Tl.B…" (ISO/IEC 14496-15 annex E) from the SPS's
// profile_tier_level: profile space and idc, the 32 compatibility flags bit-reversed, tier
// and level, and the six constraint bytes without trailing zero bytes. mediacommon writes
// the hev1 sample entry.
func hevcCodecs(sps []byte) string {
	// NAL header (2 bytes), vps id / sub-layers / nesting (1), then 12 bytes of
	// profile_tier_level; emulation prevention bytes must go first.
	raw := h264.EmulationPreventionRemove(sps)
	if len(raw) < 15 {
		return ""
	}
	ptl := raw[3:15]
	space := [...]string{"", "A", "B", "C"}[ptl[0]>>6]
	tier := "L"
	if ptl[0]&0x20 != 0 {
		tier = "H"
	}
	compat := bits.Reverse32(uint32(ptl[1])<<24 | uint32(ptl[2])<<16 | uint32(ptl[3])<<8 | uint32(ptl[4]))
	s := fmt.Sprintf("hev1.%s%d.%X.%s%d", space, ptl[0]&0x1f, compat, tier, ptl[11])
	constraints := ptl[5:11]
	n := len(constraints)
	for n > 0 && constraints[n-1] == 0 {
		n--
	}
	for _, b := range constraints[:n] {
		s += fmt.Sprintf(".%X", b)
	}
	return s
}
