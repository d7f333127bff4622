// Package report holds what motion detection reports (events, search-grid minutes,
// scrub-preview thumbnails, counters) and which stream it analyses, in plain Go. The
// server reads, forwards and stores these without linking the C libraries detection needs
// (libavcodec, OpenCV): only the motion worker, a process of its own, links package motion
// (docs/architecture.md, Processes). Keep C out of this package: importing it must never
// pull cgo into the server.
package report

import (
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
)

// Box is a rectangle over the picture in coordinates normalised to 0..1, origin top left.
type Box struct {
	X, Y, W, H float64
}

// Event is one span of motion on one camera.
type Event struct {
	ID       string    // UUIDv7 carrying Start's millisecond
	Camera   string    // camera id
	Start    time.Time // wall time of the first moving frame, not of the confirmation
	End      time.Time // wall time of the last moving frame; zero while the event is ongoing
	Score    float64   // peak score: moving share of the counted area (zones minus masks), 0..1
	Box      Box       // bounding box of the motion at the peak
	Zones    []string  // zones hit, in configuration order; empty when no zones are configured
	Snapshot []byte    // JPEG near the peak; set at the start and at the end notification
}

// Stats are an analyser's counters since it was made.
type Stats struct {
	DecodedFrames  uint64 // access units decoded (analysed or not)
	AnalyzedFrames uint64 // frames the detector looked at
	DecodeErrors   uint64 // access units the decoder rejected (corrupt, truncated)
	Events         uint64 // events started
	Active         bool   // an event is ongoing
}

// Scrub-preview thumbnails: small JPEGs of pictures motion detection decodes anyway, for
// the player's timeline.
const (
	// ThumbnailWidth is the thumbnails' width; the height keeps the aspect ratio.
	ThumbnailWidth = 240
	// ThumbnailEvery is the spacing of thumbnails while nothing moves, and of the keyframes
	// decoded for a camera without motion analysis.
	ThumbnailEvery = 10 * time.Second
	// ThumbnailEveryInEvent is the spacing while an event is going on, when the picture
	// changes and an officer scrubs for it.
	ThumbnailEveryInEvent = 2 * time.Second
)

// Thumbnail is one scrub-preview picture: a JPEG ThumbnailWidth px wide of the frame
// captured at Wall.
type Thumbnail struct {
	Camera string
	Wall   time.Time
	JPEG   []byte
}

// AnalysedStream names the stream motion detection reads for cam: the sub stream when the
// camera has one (cheap to decode fully), else the main stream (of which only keyframes
// are analysed by default). It is what a process that feeds an analyser elsewhere must
// forward; cam's motion settings are checked by configs (and again by the analyser).
func AnalysedStream(cam configs.Camera) string {
	if cam.Sub != nil {
		return ingest.StreamSub
	}
	return ingest.StreamMain
}
