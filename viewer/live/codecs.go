package live

import (
	"errors"
	"fmt"
	"strings"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/townwatch/townwatch/ingest"
)

// registerCodecs registers what townwatch can send. H.264 in every common profile with
// packetization mode 1 (the only one WebRTC browsers take in practice) so that pion's
// answer accepts whichever of them the browser offers; the bitstream is the camera's.
func registerCodecs(me *webrtc.MediaEngine) error {
	video := []webrtc.RTPCodecParameters{
		h264Codec(102, "42e01f"), h264Codec(103, "42001f"), h264Codec(104, "4d001f"), h264Codec(105, "64001f"),
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH265, ClockRate: 90000,
			SDPFmtpLine: "profile-id=1;tier-flag=0;tx-mode=SRST"}, PayloadType: 106},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH265, ClockRate: 90000,
			SDPFmtpLine: "profile-id=2;tier-flag=0;tx-mode=SRST"}, PayloadType: 107},
	}
	audio := []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, PayloadType: 0},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMA, ClockRate: 8000}, PayloadType: 8},
	}
	for _, c := range video {
		if err := me.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			return err
		}
	}
	for _, c := range audio {
		if err := me.RegisterCodec(c, webrtc.RTPCodecTypeAudio); err != nil {
			return err
		}
	}
	return nil
}

func h264Codec(pt webrtc.PayloadType, profile string) webrtc.RTPCodecParameters {
	return webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + profile}, PayloadType: pt}
}

// mimeFor returns the WebRTC MIME type a camera track is sent as, or "" when WebRTC cannot
// carry it (AAC, G.711 at rates other than 8 kHz mono).
func mimeFor(t *ingest.Track) string {
	switch t.Codec {
	case ingest.CodecH264:
		return webrtc.MimeTypeH264
	case ingest.CodecH265:
		return webrtc.MimeTypeH265
	case ingest.CodecOpus:
		return webrtc.MimeTypeOpus
	case ingest.CodecG711:
		g, ok := t.Format.(*format.G711)
		if !ok || g.SampleRate != 8000 || g.ChannelCount != 1 {
			return ""
		}
		if g.MULaw {
			return webrtc.MimeTypePCMU
		}
		return webrtc.MimeTypePCMA
	}
	return ""
}

// offer is what the handler needs to know of a browser's SDP offer.
type offer struct {
	video  map[string]bool // MIME types offered in a video section (H.264 only with packetization-mode=1)
	audio  map[string]bool
	hasVid bool
}

// parseOffer checks an SDP offer and lists its codecs. The error says what is wrong, for
// the 400 response.
func parseOffer(raw []byte) (*offer, error) {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(string(raw)); err != nil {
		return nil, fmt.Errorf("malformed SDP offer: %w", err)
	}
	if len(sd.MediaDescriptions) == 0 {
		return nil, errors.New("SDP offer has no media sections (m=)")
	}
	o := &offer{video: map[string]bool{}, audio: map[string]bool{}}
	for _, md := range sd.MediaDescriptions {
		var into map[string]bool
		switch md.MediaName.Media {
		case "video":
			into = o.video
			o.hasVid = true
		case "audio":
			into = o.audio
		default:
			continue
		}
		fmtps := map[string]string{}
		for _, a := range md.Attributes {
			if a.Key == "fmtp" {
				pt, params, _ := strings.Cut(a.Value, " ")
				fmtps[pt] = params
			}
		}
		for _, a := range md.Attributes {
			if a.Key != "rtpmap" {
				continue
			}
			pt, enc, ok := strings.Cut(a.Value, " ")
			name, _, _ := strings.Cut(enc, "/")
			if !ok || name == "" {
				return nil, fmt.Errorf("malformed SDP offer: a=rtpmap:%s has no encoding name", a.Value)
			}
			mime := md.MediaName.Media + "/" + name
			if strings.EqualFold(mime, webrtc.MimeTypeH264) && !strings.Contains(fmtps[pt], "packetization-mode=1") {
				continue
			}
			into[strings.ToLower(mime)] = true
		}
	}
	if !o.hasVid {
		return nil, errors.New("SDP offer has no video section (m=video): the live view sends video")
	}
	return o, nil
}

func (o *offer) offers(mime string) bool {
	return o.video[strings.ToLower(mime)] || o.audio[strings.ToLower(mime)]
}

// pickCodec chooses, among the codecs negotiated for a binding, the one to send mime as.
func pickCodec(mime string, negotiated []webrtc.RTPCodecParameters) (webrtc.RTPCodecParameters, bool) {
	for _, c := range negotiated {
		if !strings.EqualFold(c.MimeType, mime) {
			continue
		}
		if strings.EqualFold(mime, webrtc.MimeTypeH264) && !strings.Contains(c.SDPFmtpLine, "packetization-mode=1") {
			continue
		}
		return c, true
	}
	return webrtc.RTPCodecParameters{}, false
}
