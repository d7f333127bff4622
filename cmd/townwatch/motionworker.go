//go:build cgo

package main

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"io"
	"log/slog"
	"maps"
	"os"
	"sync"
	"time"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/motion"
	"github.com/townwatch/townwatch/motion/report"
)

// workerStatsEvery is how often the worker reports its counters.
const workerStatsEvery = time.Second

// hostsMotionWorker: built with cgo, this townwatch links libavcodec and OpenCV and runs
// its motion worker itself (see motionWorkerProgram).
const hostsMotionWorker = true

// runMotionWorker hosts motion detection for the server that started it: the decoders
// (libavcodec) and the detector (OpenCV) are C code, and a crash there ends only this
// process, which the server restarts, never the recording. It reads toWorker messages on
// stdin until EOF, then ends every stream (so ongoing events end and are reported), and
// exits.
func runMotionWorker(ctx context.Context, _ []string, stdout, stderr io.Writer) int {
	log := slog.New(slog.NewJSONHandler(stderr, nil)).With("component", "motion-worker")
	if err := serveMotionWorker(ctx, os.Stdin, stdout, log); err != nil {
		log.Error("motion worker stopped", "err", err)
		return exitFailure
	}
	return exitOK
}

func serveMotionWorker(ctx context.Context, in io.Reader, out io.Writer, log *slog.Logger) error {
	dec := gob.NewDecoder(in)
	w := newWorkerSide(out, log)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w.running.Go(func() {
		t := time.NewTicker(workerStatsEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				w.send(fromWorker{Stats: w.stats()})
			}
		}
	})
	var err error
	for {
		var m toWorker
		if err = dec.Decode(&m); err != nil {
			break
		}
		switch {
		case m.Change != nil:
			w.apply(ctx, m.Change)
		case m.Stream != nil:
			w.startStream(m.Stream)
		case m.Unit != nil:
			w.publish(m.Unit)
		}
	}
	// The server closed the pipe (stopping) or it broke: end the streams, so ongoing
	// events end and are reported, then stop the analysers.
	for _, st := range w.streams {
		st.stream.End(nil)
	}
	cancel()
	w.running.Wait()
	w.send(fromWorker{Stats: w.stats()})
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// workerSide is the worker's state: its own Hub, on which the server's units are published
// again for the analysers, the cameras' analysers and thumbnailers, and the encoder of its
// answers.
type workerSide struct {
	mu  sync.Mutex // serialises answers from the analysers' goroutines
	enc *gob.Encoder
	log *slog.Logger

	hub     *ingest.Hub
	running sync.WaitGroup // the analysers, thumbnailers and the counters' ticker
	// Used by the reading goroutine only. It never waits for an analyser: a stopping one
	// reports its event's end on stdout, and the server may be writing to stdin meanwhile.
	streams map[string]*workerStream // by camera
	cams    map[string]*workerCamera // by camera

	statsMu   sync.Mutex
	analysers map[*motion.Analyzer]bool // those running or stopping
	retired   map[string]report.Stats   // counters of analysers that have stopped, by camera
}

// newWorkerSide makes a worker with no camera yet that answers on out.
func newWorkerSide(out io.Writer, log *slog.Logger) *workerSide {
	return &workerSide{enc: gob.NewEncoder(out), hub: ingest.NewHub(), log: log, streams: map[string]*workerStream{},
		cams: map[string]*workerCamera{}, analysers: map[*motion.Analyzer]bool{}, retired: map[string]report.Stats{}}
}

// workerCamera is one camera's analyser or keyframe thumbnailer.
type workerCamera struct {
	analyser *motion.Analyzer // nil for a thumbnailer
	stop     context.CancelFunc
	done     chan struct{} // closed once it has returned, its ongoing event ended and reported
}

// apply starts, reconfigures, restarts and stops the cameras named in ch; the others run
// on untouched.
func (w *workerSide) apply(ctx context.Context, ch *cameraDelta) {
	for _, id := range ch.Stop {
		if c := w.cams[id]; c != nil {
			c.stop()
			delete(w.cams, id)
		}
		if st := w.streams[id]; st != nil {
			st.stream.End(nil)
			delete(w.streams, id)
		}
	}
	starts := ch.Cameras
	for _, cam := range ch.Reconfigure {
		c := w.cams[cam.ID]
		if c == nil || c.analyser == nil {
			// Not analysed here (its analyser could not be made): a new one, as at a start.
			starts = append(starts, cam)
			continue
		}
		err := c.analyser.Reconfigure(cam)
		switch {
		case err == nil:
			continue
		case errors.Is(err, motion.ErrNotInPlace):
			w.log.Info("motion analyser restarted for its new settings", "camera", cam.ID, "why", err)
		default:
			// The server's configuration passed configs.Config.Validate, which checks
			// these settings, before they were sent, so this is a bug; NewAnalyzer refuses them too and the analyser runs on
			// with its settings.
			w.log.Error("motion analyser not reconfigured", "camera", cam.ID, "err", err)
		}
		starts = append(starts, cam)
	}
	thumb := func(th report.Thumbnail) { w.send(fromWorker{Thumb: &th}) }
	for _, cam := range starts {
		a, err := motion.NewAnalyzer(cam, w.hub, w.log.With("camera", cam.ID), motion.Options{
			OnEvent: func(ev report.Event) { w.send(fromWorker{Event: &workerEvent{Camera: cam.ID, Event: ev}}) },
			ObserveAnalysis: func(d time.Duration) {
				w.send(fromWorker{Analysis: &workerAnalysis{Camera: cam.ID, Took: d}})
			},
			OnGridMinute: func(g report.GridMinute) { w.send(fromWorker{Grid: &g}) },
			OnThumbnail:  thumb,
		})
		if err != nil {
			// The server's configuration passed configs.Config.Validate, which checks
			// these settings, before they were sent, so this is a bug; the other cameras go on.
			w.log.Error("motion analyser not started", "camera", cam.ID, "err", err)
			continue
		}
		w.startCamera(ctx, cam.ID, a, func(ctx context.Context) { w.analyse(ctx, a) })
	}
	for _, id := range ch.Thumbnails {
		k, err := motion.NewKeyframeThumbnails(id, ingest.StreamMain, w.hub, w.log.With("camera", id), thumb)
		if err != nil {
			w.log.Error("thumbnails not started", "camera", id, "err", err)
			continue
		}
		w.startCamera(ctx, id, nil, func(ctx context.Context) { _ = k.Run(ctx) })
	}
}

// startCamera runs work for the camera in place of what ran for it before; analyser is
// the one work runs, nil for a thumbnailer. The new work begins only once the old has
// returned, so that the old analyser's event end reaches the server before anything of
// the new one; the reading goroutine does not wait for it.
func (w *workerSide) startCamera(ctx context.Context, id string, analyser *motion.Analyzer, work func(context.Context)) {
	prev := w.cams[id]
	if prev != nil {
		prev.stop()
	}
	ctx, cancel := context.WithCancel(ctx)
	c := &workerCamera{analyser: analyser, stop: cancel, done: make(chan struct{})}
	w.cams[id] = c
	w.running.Go(func() {
		defer close(c.done)
		if prev != nil {
			<-prev.done
		}
		work(ctx)
	})
}

// analyse runs a until ctx ends, its counters counted while it runs and after.
func (w *workerSide) analyse(ctx context.Context, a *motion.Analyzer) {
	w.statsMu.Lock()
	w.analysers[a] = true
	w.statsMu.Unlock()
	_ = a.Run(ctx)
	w.statsMu.Lock()
	delete(w.analysers, a)
	w.retired[a.Camera()] = sumStats(w.retired[a.Camera()], a.Stats())
	w.statsMu.Unlock()
}

// stats is every camera's counters since the worker started, over each analyser it had.
func (w *workerSide) stats() map[string]report.Stats {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	stats := maps.Clone(w.retired)
	for a := range w.analysers {
		stats[a.Camera()] = sumStats(stats[a.Camera()], a.Stats())
	}
	return stats
}

type workerStream struct {
	stream *ingest.Stream
	track  *ingest.Track
	params *ingest.VideoParams // the last parameters, shared by pointer while unchanged
}

func (w *workerSide) send(m fromWorker) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.enc.Encode(m) // the server is gone: the worker ends when its stdin does
}

func (w *workerSide) startStream(s *wireStream) {
	if w.cams[s.Camera] == nil {
		// A stopped camera's forwarder that had not yet seen its end: the server sends a
		// camera's start before any header of it, so this stream is stale, and keeping it
		// would keep its cached pictures until the worker ends.
		return
	}
	if old := w.streams[s.Camera]; old != nil {
		old.stream.End(nil)
	}
	track := &ingest.Track{Kind: ingest.KindVideo, Codec: s.Codec, ClockRate: s.ClockRate}
	w.streams[s.Camera] = &workerStream{stream: w.hub.Start(s.Camera, s.Name, []*ingest.Track{track}), track: track}
}

func (w *workerSide) publish(u *wireUnit) {
	st := w.streams[u.Camera]
	if st == nil {
		return // a camera stopped, its stream ended: the units still on their way go nowhere
	}
	if u.Params != nil && (st.params == nil || !sameParams(st.params, u.Params)) {
		st.params = u.Params
	}
	st.stream.Publish(&ingest.Unit{Track: st.track, PTS: u.PTS, DTS: u.DTS, Wall: u.Wall, Key: u.Key,
		Payload: u.Payload, Params: st.params, Discontinuity: u.Discontinuity || u.Gap})
}

func sameParams(a, b *ingest.VideoParams) bool {
	return bytes.Equal(a.VPS, b.VPS) && bytes.Equal(a.SPS, b.SPS) && bytes.Equal(a.PPS, b.PPS)
}
