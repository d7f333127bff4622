package ingest

import (
	"fmt"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
)

// selectedMedia is one SDP media townwatch will SETUP, with the Track it becomes.
type selectedMedia struct {
	media  *description.Media
	format format.Format
	track  *Track
}

// selection is what a session receives: one video track and at most one audio track.
type selection struct {
	medias     []selectedMedia
	videoCodec Codec
	audioCodec Codec
}

// selectMedias picks the first H.264 or H.265 video track and the first AAC, Opus or G.711
// audio track of a session description. A stream without supported video is an error that
// names what the camera offers, because that is what the administrator must change.
func selectMedias(desc *description.Session) (selection, error) {
	var sel selection
	var offered []string
	for _, m := range desc.Medias {
		if m.IsBackChannel {
			continue
		}
		for _, f := range m.Formats {
			offered = append(offered, f.Codec())
			codec, kind, ok := supportedCodec(f)
			if !ok {
				continue
			}
			if kind == KindVideo && sel.videoCodec == "" {
				sel.videoCodec = codec
			} else if kind == KindAudio && sel.audioCodec == "" {
				sel.audioCodec = codec
			} else {
				continue
			}
			sel.medias = append(sel.medias, selectedMedia{
				media:  m,
				format: f,
				track:  &Track{Index: len(sel.medias), Kind: kind, Codec: codec, ClockRate: f.ClockRate(), Format: f},
			})
			break // one format per media
		}
	}
	if sel.videoCodec == "" {
		if len(offered) == 0 {
			return selection{}, fmt.Errorf("%w: the camera's stream has no tracks", errUnsupportedCodec)
		}
		return selection{}, fmt.Errorf("%w: no H.264 or H.265 video in the stream (camera offers %v); set the camera's encoder to H.264 or H.265", errUnsupportedCodec, offered)
	}
	// Keep video first: consumers and tests find it at Tracks[0].
	if sel.medias[0].track.Kind != KindVideo {
		sel.medias[0], sel.medias[1] = sel.medias[1], sel.medias[0]
		sel.medias[0].track.Index, sel.medias[1].track.Index = 0, 1
	}
	return sel, nil
}

func supportedCodec(f format.Format) (Codec, Kind, bool) {
	switch f := f.(type) {
	case *format.H264:
		// Packetization mode 2 (interleaved) is beyond gortsplib's depacketizer.
		return CodecH264, KindVideo, f.PacketizationMode < 2
	case *format.H265:
		// So is H.265 with decoding-order reordering (sprop-max-don-diff).
		return CodecH265, KindVideo, f.MaxDONDiff == 0
	case *format.MPEG4Audio:
		// AU header fields wider than 32 bits are no real camera's; gortsplib's depacketizer
		// panics on them, so a crafted SDP must not reach it.
		return CodecAAC, KindAudio, f.Config != nil &&
			f.SizeLength <= 32 && f.IndexLength <= 32 && f.IndexDeltaLength <= 32
	case *format.Opus:
		return CodecOpus, KindAudio, true
	case *format.G711:
		return CodecG711, KindAudio, true
	}
	return "", "", false
}
