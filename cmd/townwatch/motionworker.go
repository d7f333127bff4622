package main

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/motion"
)

// motionWorkerCommand is the hidden subcommand the server runs itself as to host motion
// detection (see motionPool).
const motionWorkerCommand = "motion-worker"

// workerStatsEvery is how often the worker reports its counters.
const workerStatsEvery = time.Second

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
	var first toWorker
	if err := dec.Decode(&first); err != nil {
		return fmt.Errorf("reading the cameras: %w", err)
	}
	w := &workerSide{enc: gob.NewEncoder(out), hub: ingest.NewHub(), streams: map[string]*workerStream{}}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var analysers sync.WaitGroup
	var list []*motion.Analyzer
	thumb := func(th motion.Thumbnail) { w.send(fromWorker{Thumb: &th}) }
	for _, cam := range first.Cameras {
		a, err := motion.NewAnalyzer(cam, w.hub, log.With("camera", cam.ID), motion.Options{
			OnEvent: func(ev motion.Event) { w.send(fromWorker{Event: &workerEvent{Camera: cam.ID, Event: ev}}) },
			ObserveAnalysis: func(d time.Duration) {
				w.send(fromWorker{Analysis: &workerAnalysis{Camera: cam.ID, Took: d}})
			},
			OnGridMinute: func(g motion.GridMinute) { w.send(fromWorker{Grid: &g}) },
			OnThumbnail:  thumb,
		})
		if err != nil {
			return err
		}
		list = append(list, a)
		analysers.Go(func() { a.Run(ctx) })
	}
	for _, cam := range first.Thumbnails {
		k, err := motion.NewKeyframeThumbnails(cam, ingest.StreamMain, w.hub, log.With("camera", cam), thumb)
		if err != nil {
			return err
		}
		analysers.Go(func() { k.Run(ctx) })
	}
	analysers.Go(func() {
		t := time.NewTicker(workerStatsEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				stats := map[string]motion.Stats{}
				for _, a := range list {
					stats[a.Camera()] = a.Stats()
				}
				w.send(fromWorker{Stats: stats})
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
	analysers.Wait()
	stats := map[string]motion.Stats{}
	for _, a := range list {
		stats[a.Camera()] = a.Stats()
	}
	w.send(fromWorker{Stats: stats})
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// workerSide is the worker's state: its own Hub, on which the server's units are published
// again for the analysers, and the encoder of its answers.
type workerSide struct {
	mu  sync.Mutex // serialises answers from the analysers' goroutines
	enc *gob.Encoder

	hub     *ingest.Hub
	streams map[string]*workerStream // by camera; used by the reading goroutine only
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
	if old := w.streams[s.Camera]; old != nil {
		old.stream.End(nil)
	}
	track := &ingest.Track{Kind: ingest.KindVideo, Codec: s.Codec, ClockRate: s.ClockRate}
	w.streams[s.Camera] = &workerStream{stream: w.hub.Start(s.Camera, s.Name, []*ingest.Track{track}), track: track}
}

func (w *workerSide) publish(u *wireUnit) {
	st := w.streams[u.Camera]
	if st == nil {
		return // units before a stream header: not possible from the server
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
