package main

import (
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/motion/report"
)

// The motion worker's protocol: two gob streams over the worker's stdin and stdout. The
// server sends the cameras to analyse first, then, while the worker runs, each change to
// them (one camera at a time: started, reconfigured, restarted, stopped) and each
// camera's analysed stream as it arrives (a stream header when a camera's stream starts,
// then its video units); the worker sends events, counters, analysis times and
// scrub-preview thumbnails back. Only video crosses: motion detection reads nothing else.
// Cameras without motion detection send only one main-stream keyframe every
// report.ThumbnailEvery, for thumbnails.

// toWorker is one message from the server to the worker; exactly one field is set.
type toWorker struct {
	Change *cameraDelta // the first message lists every camera; later ones the differences
	Stream *wireStream  // a camera's stream (re)started: the previous one ended
	Unit   *wireUnit
}

// cameraDelta changes the worker's cameras; a camera not named keeps running untouched,
// its ongoing event included.
type cameraDelta struct {
	// Cameras are analysers to start. One already running for the camera (an analyser
	// or a thumbnailer) is stopped first, ending its event: the camera was restarted
	// (see diffCameras).
	Cameras []configs.Camera
	// Reconfigure are running analysers' new motion settings, taken up in place
	// (motion.Analyzer.Reconfigure): the background and an ongoing event are kept. A
	// change the analyser cannot take in place (motion.ErrNotInPlace) starts a new one,
	// as Cameras does.
	Reconfigure []configs.Camera
	// Thumbnails are cameras without motion detection whose main-stream keyframes come
	// only to be made into thumbnails; one already running is stopped first, likewise.
	Thumbnails []string
	// Stop are cameras that left both lists: their analyser or thumbnailer stops (ending
	// an ongoing event) and their stream ends.
	Stop []string
}

type wireStream struct {
	Camera, Name string
	Codec        ingest.Codec
	ClockRate    int
}

// wireUnit is a video unit of a camera's current stream. Gap marks units dropped on the
// server's side just before it (the analyser then treats it as a discontinuity).
type wireUnit struct {
	Camera        string
	PTS, DTS      time.Duration
	Wall          time.Time
	Key, Gap      bool
	Discontinuity bool
	Payload       [][]byte
	Params        *ingest.VideoParams
}

// fromWorker is one message from the worker; exactly one field is set.
type fromWorker struct {
	Event    *workerEvent
	Stats    map[string]report.Stats // every camera's counters since the worker started
	Analysis *workerAnalysis
	Grid     *report.GridMinute // a camera-minute of the motion search grid
	Thumb    *report.Thumbnail  // a scrub-preview thumbnail
}

type workerEvent struct {
	Camera string
	Event  report.Event
}

type workerAnalysis struct {
	Camera string
	Took   time.Duration
}

// sumStats adds up the counters of a and b; Active is left out (the server tracks events).
func sumStats(a, b report.Stats) report.Stats {
	return report.Stats{DecodedFrames: a.DecodedFrames + b.DecodedFrames, AnalyzedFrames: a.AnalyzedFrames + b.AnalyzedFrames,
		DecodeErrors: a.DecodeErrors + b.DecodeErrors, Events: a.Events + b.Events}
}
