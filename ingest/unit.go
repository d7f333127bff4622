package ingest

import (
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
)

// Kind tells video from audio.
type Kind string

// Track kinds.
const (
	KindVideo Kind = "video"
	KindAudio Kind = "audio"
)

// Codec names a codec as townwatch reports it (status, API, metrics).
type Codec string

// Supported codecs. Video is recorded and shown; audio is carried along for consumers that
// are configured to use it.
const (
	CodecH264 Codec = "H264"
	CodecH265 Codec = "H265"
	CodecAAC  Codec = "AAC"
	CodecOpus Codec = "Opus"
	CodecG711 Codec = "G711"
)

// Track is one media track of a Stream, as negotiated in the session's SDP. Read-only.
type Track struct {
	Index     int   // position in Stream.Tracks
	Kind      Kind  // video or audio
	Codec     Codec // codec name
	ClockRate int   // RTP clock rate in Hz
	// Format is the SDP format of the track (codec configuration such as AAC's
	// AudioSpecificConfig or G.711's law). Consumers must treat it as read-only; video
	// parameter sets that change in-band travel in Unit.Params instead.
	Format format.Format
}

// VideoParams are the parameter sets in force for a video track. A new *VideoParams is
// created whenever they change (in-band SPS/PPS/VPS differing from the previous ones), so
// consumers detect a change by comparing pointers. Read-only once published.
type VideoParams struct {
	VPS    []byte // H.265 only
	SPS    []byte
	PPS    []byte
	Width  int // coded picture size after cropping, from the SPS; 0 if it could not be parsed
	Height int
}

// Unit is one access unit of one track, published once and shared by pointer with every
// Reader. It is immutable: no consumer may modify it or the slices it refers to.
type Unit struct {
	Track *Track
	// PTS is the presentation time relative to the start of the session's time base. For
	// video with B-frames it is not monotonic; DTS is.
	PTS time.Duration
	// DTS is the decode time on the same base; strictly increasing per track.
	DTS time.Duration
	// Wall is the wall-clock time at which the unit was captured, derived from the local
	// clock at the session's first unit plus the camera's timestamps (camera clocks are not
	// trusted; see Source). It follows PTS.
	Wall time.Time
	// Key marks a random access point: a video keyframe (IDR / IRAP) whose Payload starts
	// with its parameter sets, so decoding can start here. Audio units are always Key.
	Key bool
	// Payload holds the media: for video the NAL units of one access unit (without start
	// codes); for audio one or more codec frames (AAC access units, one Opus packet, or a
	// run of G.711 samples).
	Payload [][]byte
	// Params are the video parameter sets in force for this unit; nil for audio.
	Params *VideoParams
	// Discontinuity marks the first keyframe after units the Source could not use and did
	// not publish (a unit that could not be timed, and the rest of its group of pictures):
	// footage is missing just before it.
	Discontinuity bool
}

// Size returns the payload size in bytes.
func (u *Unit) Size() int {
	n := 0
	for _, p := range u.Payload {
		n += len(p)
	}
	return n
}
