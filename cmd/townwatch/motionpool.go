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
	"os/exec"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/motion"
)

// motionReaderQueue is the queue of the reader that forwards a camera's analysed stream
// to the worker: 2 s of a 25 fps sub stream, as the in-process analyser had. A worker that
// falls behind or restarts makes this reader drop (counted as the motion consumer's
// drops) and resume at a keyframe; it never holds up the camera or the recorder.
const motionReaderQueue = 48

// motionPool runs motion detection in a child process (townwatch motion-worker) and
// stands in for it in this one: it forwards each analysed camera's video, hands events to
// the cameras' sinks and keeps the counters. The worker also makes every camera's
// scrub-preview thumbnails: an analysed camera's from the frames it analyses, a camera
// without motion detection's from one main-stream keyframe every motion.ThumbnailEvery,
// the only units the pool forwards for it. The decoders and the detector are C code
// (libavcodec, OpenCV); a crash inside them ends the worker, which is restarted alone,
// while recording in this process goes on untouched.
//
// The cameras change with a reload (setCameras): the worker is then restarted with the
// new lists, which costs a moment of analysis and never a frame of footage.
type motionPool struct {
	hub     *ingest.Hub
	observe func(camera string, d time.Duration)
	grids   func(motion.GridMinute) // stores the search grid
	thumbs  func(motion.Thumbnail)  // receives thumbnails; must not block
	log     *slog.Logger
	// command starts the worker; tests replace it.
	command func(ctx context.Context) *exec.Cmd

	mu      sync.Mutex
	cams    []configs.Camera              // the analysed cameras
	thumbed []string                      // the cameras forwarded for thumbnails only
	streams map[string]string             // camera → analysed stream (main for thumbnails only)
	sinks   map[string]func(motion.Event) // camera → where its events go
	// changed is cancelled (and replaced) when the cameras change. A context rather than a
	// channel, so a forwarder can tie its own end to it (context.AfterFunc) without a
	// goroutine per forwarding.
	changed       context.Context
	signalChanged context.CancelFunc
	conn          *workerConn             // the running worker, nil between workers
	pid           int                     // the running worker's process id (0 between workers)
	gen           int                     // counts workers started, so forwarders see a new one
	base          map[string]motion.Stats // counters of workers that have ended
	current       map[string]motion.Stats // the running worker's last report
	active        map[string]motion.Event // ongoing events, ended here if the worker dies
	lastAt        map[string]time.Time    // wall time of each camera's last forwarded unit
}

// workerConn is one running worker's stdin, written by every forwarder in turn.
type workerConn struct {
	mu  sync.Mutex
	enc *gob.Encoder
	gen int
}

// newMotionPool makes a pool that analyses no camera yet (see setCameras); thumbs
// receives the thumbnails.
func newMotionPool(hub *ingest.Hub, observe func(string, time.Duration), grids func(motion.GridMinute), thumbs func(motion.Thumbnail), log *slog.Logger) (*motionPool, error) {
	p := &motionPool{streams: map[string]string{}, sinks: map[string]func(motion.Event){},
		hub: hub, observe: observe, grids: grids, thumbs: thumbs,
		log: log.With("component", "motion"), base: map[string]motion.Stats{}, current: map[string]motion.Stats{},
		active: map[string]motion.Event{}, lastAt: map[string]time.Time{}}
	p.changed, p.signalChanged = context.WithCancel(context.Background())
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("motion: finding townwatch's own binary for the worker: %w", err)
	}
	p.command = func(ctx context.Context) *exec.Cmd { return exec.CommandContext(ctx, self, motionWorkerCommand) }
	return p, nil
}

// setCameras makes cams the analysed cameras, their events going to sinks (by camera id),
// and thumbed the cameras without motion detection that get thumbnails from keyframes.
// When the lists differ from the running ones, the worker is restarted with them and
// every forwarder looks up its camera again.
func (p *motionPool) setCameras(cams []configs.Camera, thumbed []string, sinks map[string]func(motion.Event)) error {
	streams := make(map[string]string, len(cams)+len(thumbed))
	for _, c := range cams {
		stream, err := motion.AnalysedStream(c)
		if err != nil {
			return err
		}
		streams[c.ID] = stream
	}
	for _, id := range thumbed {
		streams[id] = ingest.StreamMain
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// A camera no longer analysed keeps its sink while it has an event going on: the
	// stopping worker reports the event's end (or endOrphans makes one), and the catalog
	// must not keep an event open for ever.
	for cam := range p.active {
		if _, ok := sinks[cam]; !ok && p.sinks[cam] != nil {
			sinks[cam] = p.sinks[cam]
		}
	}
	same := reflect.DeepEqual(p.cams, cams) && slices.Equal(p.thumbed, thumbed)
	p.cams, p.thumbed, p.streams, p.sinks = cams, thumbed, streams, sinks
	if !same {
		p.signalChanged()
		p.changed, p.signalChanged = context.WithCancel(context.Background())
	}
	return nil
}

// analysed is the analysed cameras, the cameras with keyframe thumbnails only, and the
// channel that is closed when they change.
func (p *motionPool) analysed() ([]configs.Camera, []string, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cams, p.thumbed, p.changed.Done()
}

// Stats returns a camera's motion counters over every worker since start.
func (p *motionPool) Stats(camera string) motion.Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, c := p.base[camera], p.current[camera]
	_, active := p.active[camera]
	return motion.Stats{DecodedFrames: b.DecodedFrames + c.DecodedFrames, AnalyzedFrames: b.AnalyzedFrames + c.AnalyzedFrames,
		DecodeErrors: b.DecodeErrors + c.DecodeErrors, Events: b.Events + c.Events, Active: active}
}

// workerPID is the running worker's process id, or 0.
func (p *motionPool) workerPID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

// errCamerasChanged ends a worker whose camera list is out of date.
var errCamerasChanged = errors.New("the analysed cameras changed")

// runWorker runs a worker for the cameras, a new one whenever they change, and none while
// there are none. It returns why a worker ended (nil after ctx); the caller (a
// supervisor) restarts it.
func (p *motionPool) runWorker(ctx context.Context) error {
	for {
		cams, thumbed, changed := p.analysed()
		if len(cams) == 0 && len(thumbed) == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-changed:
				continue
			}
		}
		if err := p.serveWorker(ctx, toWorker{Cameras: cams, Thumbnails: thumbed}, changed); !errors.Is(err, errCamerasChanged) {
			return err
		}
	}
}

// serveWorker starts one worker for the cameras of first (its first message) and serves
// it until it exits, ctx ends (nil) or changed is closed (errCamerasChanged).
func (p *motionPool) serveWorker(ctx context.Context, first toWorker, changed <-chan struct{}) error {
	cmd := p.command(context.WithoutCancel(ctx)) // stopped by closing its stdin, not killed
	cmd.Stderr = &workerLog{log: p.log}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the motion worker: %w", err)
	}
	conn := &workerConn{enc: gob.NewEncoder(stdin)}
	if err := conn.enc.Encode(first); err != nil {
		stdin.Close()
		cmd.Wait()
		return fmt.Errorf("motion worker: %w", err)
	}
	p.mu.Lock()
	p.gen++
	conn.gen = p.gen
	p.conn, p.pid = conn, cmd.Process.Pid
	p.mu.Unlock()
	p.log.Info("motion worker started", "pid", cmd.Process.Pid)

	read := make(chan error, 1)
	go func() { read <- p.readWorker(stdout) }()
	var readErr error
	reconfigured := false
	select {
	case <-changed:
		reconfigured = true
		p.stopWorker(conn, stdin, cmd, read)
	case <-ctx.Done():
		p.stopWorker(conn, stdin, cmd, read)
	case readErr = <-read:
		p.detach(conn)
		stdin.Close()
	}
	waitErr := cmd.Wait()
	p.endOrphans()
	switch {
	case ctx.Err() != nil:
		return nil
	case reconfigured:
		p.log.Info("motion worker restarted for the changed camera list")
		return errCamerasChanged
	}
	return fmt.Errorf("motion worker exited (%v, %v); events were ended, recording is not affected", waitErr, readErr)
}

// stopWorker ends a worker that is still running: closing stdin makes it end its streams
// (reporting ongoing events' ends) and exit; it gets a moment, then it is killed.
func (p *motionPool) stopWorker(conn *workerConn, stdin io.Closer, cmd *exec.Cmd, read <-chan error) {
	p.detach(conn)
	stdin.Close()
	select {
	case err := <-read:
		if err != nil {
			p.log.Warn("motion worker output", "err", err)
		}
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-read
	}
}

// detach stops forwarders from writing to conn and banks its counters.
func (p *motionPool) detach(conn *workerConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == conn {
		p.conn, p.pid = nil, 0
	}
}

// readWorker handles the worker's messages until its stdout ends.
func (p *motionPool) readWorker(r io.Reader) error {
	dec := gob.NewDecoder(r)
	defer func() {
		p.mu.Lock()
		for cam, st := range p.current {
			b := p.base[cam]
			p.base[cam] = motion.Stats{DecodedFrames: b.DecodedFrames + st.DecodedFrames, AnalyzedFrames: b.AnalyzedFrames + st.AnalyzedFrames,
				DecodeErrors: b.DecodeErrors + st.DecodeErrors, Events: b.Events + st.Events}
		}
		p.current = map[string]motion.Stats{}
		p.mu.Unlock()
	}()
	for {
		var m fromWorker
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		switch {
		case m.Event != nil:
			p.deliver(m.Event.Camera, m.Event.Event)
		case m.Stats != nil:
			p.mu.Lock()
			for cam, st := range m.Stats {
				p.current[cam] = st
			}
			p.mu.Unlock()
		case m.Analysis != nil && p.observe != nil:
			p.observe(m.Analysis.Camera, m.Analysis.Took)
		case m.Grid != nil && p.grids != nil:
			p.grids(*m.Grid)
		case m.Thumb != nil && p.thumbs != nil:
			p.thumbs(*m.Thumb)
		}
	}
}

// deliver hands an event to its camera's sink and tracks whether one is going on.
func (p *motionPool) deliver(camera string, ev motion.Event) {
	p.mu.Lock()
	sink := p.sinks[camera]
	if sink == nil {
		p.mu.Unlock()
		return
	}
	if ev.End.IsZero() {
		p.active[camera] = ev
	} else {
		delete(p.active, camera)
	}
	p.mu.Unlock()
	sink(ev)
}

// endOrphans ends the events a dead worker left going: their camera's recorder would
// otherwise keep recording "during motion" for ever, and the event would stay open. The
// end is the last moment the worker was given footage of that camera.
func (p *motionPool) endOrphans() {
	p.mu.Lock()
	var orphans []motion.Event
	for cam, ev := range p.active {
		ev.End = p.lastAt[cam]
		if ev.End.Before(ev.Start) {
			ev.End = ev.Start
		}
		ev.Snapshot = nil
		orphans = append(orphans, ev)
	}
	p.mu.Unlock()
	for _, ev := range orphans {
		p.log.Warn("motion event ended because the motion worker stopped", "camera", ev.Camera, "event", ev.ID)
		p.deliver(ev.Camera, ev)
	}
}

// forward sends one camera's analysed stream to whichever worker runs, until ctx ends.
// While the camera is not analysed it waits for the analysed cameras to change; when they
// change it looks its camera up again (the analysed stream may be another one now).
func (p *motionPool) forward(ctx context.Context, camera string) error {
	for ctx.Err() == nil {
		p.mu.Lock()
		stream, analysed := p.streams[camera]
		changed := p.changed
		p.mu.Unlock()
		if !analysed {
			select {
			case <-ctx.Done():
			case <-changed.Done():
			}
			continue
		}
		// A change of the analysed cameras ends this forwarding, so the loop looks up the
		// camera again.
		fctx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(changed, cancel)
		p.forwardCamera(fctx, camera, stream)
		stop()
		cancel()
	}
	return nil
}

// forwardCamera forwards each of the camera's sessions of stream in turn until ctx ends.
func (p *motionPool) forwardCamera(ctx context.Context, camera, stream string) {
	for {
		st, err := p.hub.Wait(ctx, camera, stream)
		if err != nil {
			return // ctx done
		}
		p.forwardStream(ctx, st)
		if ctx.Err() != nil {
			return
		}
	}
}

func (p *motionPool) forwardStream(ctx context.Context, st *ingest.Stream) {
	video := st.Video()
	r := st.NewReader("motion", motionReaderQueue)
	defer r.Close()
	header := &wireStream{Camera: st.Camera, Name: st.Name, Codec: video.Codec, ClockRate: video.ClockRate}
	sentTo := 0     // the worker generation the header went to
	needKey := true // a worker that has just got the header can only start at a keyframe
	gapped := false // units were lost since the last one sent
	// A camera forwarded only for thumbnails sends one keyframe every ThumbnailEvery:
	// the worker decodes nothing else of it, so nothing else need cross the pipe. (A
	// change of the lists ends this forwarding, so the answer holds while it runs.)
	p.mu.Lock()
	keyframesOnly := slices.Contains(p.thumbed, st.Camera)
	p.mu.Unlock()
	var lastKey time.Time
	for {
		u, gap, err := r.Read(ctx)
		if err != nil {
			return
		}
		if video == nil || u.Track != video {
			continue // nothing to analyse until the camera's next session
		}
		gapped = gapped || gap
		p.mu.Lock()
		conn := p.conn
		p.lastAt[st.Camera] = u.Wall
		p.mu.Unlock()
		if conn == nil {
			needKey, gapped = true, true // no worker now: this unit is lost to analysis
			continue
		}
		if conn.gen != sentTo {
			if err := conn.send(toWorker{Stream: header}); err != nil {
				continue
			}
			sentTo, needKey = conn.gen, true
		}
		if needKey && !u.Key {
			continue
		}
		if keyframesOnly {
			if !u.Key || (!lastKey.IsZero() && u.Wall.After(lastKey) && u.Wall.Sub(lastKey) < motion.ThumbnailEvery*9/10) {
				continue
			}
			lastKey = u.Wall
		}
		w := &wireUnit{Camera: st.Camera, PTS: u.PTS, DTS: u.DTS, Wall: u.Wall, Key: u.Key, Gap: gapped,
			Discontinuity: u.Discontinuity, Payload: u.Payload, Params: u.Params}
		if err := conn.send(toWorker{Unit: w}); err != nil {
			needKey, gapped = true, true
			continue
		}
		needKey, gapped = false, false
	}
}

func (c *workerConn) send(m toWorker) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.enc.Encode(m)
}

// workerLog passes the worker's JSON log lines on to the server's log.
type workerLog struct {
	log *slog.Logger
	mu  sync.Mutex
	buf []byte
}

func (w *workerLog) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		if line := string(w.buf[:i]); line != "" {
			w.log.Info("motion worker says", "line", line)
		}
		w.buf = w.buf[i+1:]
	}
	return len(b), nil
}
