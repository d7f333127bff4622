package recorder

import (
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
)

// The codecs strings browsers are asked about (MediaSource.isTypeSupported). The H.265
// SPS is x265's Main profile, level 3.1, with its emulation prevention bytes.
func TestMIMECodecs(t *testing.T) {
	h264 := &fmp4.InitTrack{ID: 1, Codec: &fmp4.CodecH264{SPS: []byte{0x67, 0x64, 0x00, 0x28, 0xac}, PPS: []byte{0x68}}}
	h265 := &fmp4.InitTrack{ID: 1, Codec: &fmp4.CodecH265{SPS: []byte{0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90,
		0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x5d, 0xa0, 0x02}}}
	aac := &fmp4.InitTrack{ID: 2, Codec: &fmp4.CodecMPEG4Audio{Config: mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 16000, ChannelCount: 1}}}
	pcm := &fmp4.InitTrack{ID: 2, Codec: &fmp4.CodecLPCM{BitDepth: 16, SampleRate: 8000, ChannelCount: 1}}
	for _, tc := range []struct {
		tracks []*fmp4.InitTrack
		want   string
	}{
		{[]*fmp4.InitTrack{h264}, "avc1.640028"},
		{[]*fmp4.InitTrack{h264, aac}, "avc1.640028,mp4a.40.2"},
		{[]*fmp4.InitTrack{h265, pcm}, "hev1.1.6.L93.90,ipcm"},
		{[]*fmp4.InitTrack{{ID: 1, Codec: &fmp4.CodecH264{SPS: []byte{0x67}}}}, ""}, // truncated SPS: unknown, not a guess
	} {
		if got := mimeCodecs(&fmp4.Init{Tracks: tc.tracks}); got != tc.want {
			t.Errorf("mimeCodecs = %q, want %q", got, tc.want)
		}
	}
}
