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
	"github.com/townwatch/townwatch/motion/report"
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
// without motion detection's from one main-stream keyframe every report.ThumbnailEvery,
// the only units the pool forwards for it. The decoders and the detector are C code
// (libavcodec, OpenCV); a crash inside them ends the worker, which is restarted alone,
// while recording in this process goes on untouched.
//
// The cameras change with a reload (setCameras): the running worker is sent only the
// difference, so an unchanged camera's analyser runs on and its ongoing event goes on; a
// camera added gets an analyser or thumbnailer, one removed loses it (its event ends), one
// whose motion settings changed has them applied to its running analyser
// (motion.Analyzer.Reconfigure, its event going on), and one restarted by the reload gets
// a new one (see diffCameras). A worker started after a crash gets the full current lists.
type motionPool struct {
	hub     *ingest.Hub
	observe func(camera string, d time.Duration)
	grids   func(report.GridMinute) // stores the search grid
	thumbs  func(report.Thumbnail)  // receives thumbnails; must not block
	log     *slog.Logger
	// command starts the worker; tests replace it.
	command func(ctx context.Context) *exec.Cmd
	// inputBound is how long a write to the worker's stdin may wait for the worker to
	// read (see workerConn.send); tests shorten it.
	inputBound time.Duration

	mu      sync.Mutex
	cams    []configs.Camera              // the analysed cameras
	thumbed []string                      // the cameras forwarded for thumbnails only
	routes  map[string]*route             // camera → how its video goes to the worker
	sinks   map[string]func(report.Event) // camera → where its events go
	// pending holds a camera's sink from the last reload (nil: the camera was removed)
	// while its old sink has an event going on: the end goes where the start went (the
	// recorder that started recording for it, the sink that knows its snapshot).
	pending map[string]func(report.Event)
	// listed is cancelled (and replaced) when a camera gets a new route or the lists
	// become empty: idle forwarders look their camera up again, and the worker is started
	// or stopped.
	listed       context.Context
	signalListed context.CancelFunc
	conn         *workerConn             // the running worker, nil between workers
	pid          int                     // the running worker's process id (0 between workers)
	gen          int                     // counts workers started, so forwarders see a new one
	base         map[string]report.Stats // counters of workers that have ended
	current      map[string]report.Stats // the running worker's last report
	active       map[string]report.Event // ongoing events, ended here if the worker dies
	lastAt       map[string]time.Time    // wall time of each camera's last forwarded unit
}

// route is how a camera's video goes to the worker: which stream, and whether only a
// keyframe every report.ThumbnailEvery (a camera without motion detection). A reload that
// leaves both alone keeps the route, and so the camera's forwarding; otherwise ended is
// cancelled, which ends the forwarding. A context rather than a channel, so a forwarder
// can tie its own end to it (context.AfterFunc) without a goroutine per forwarding.
type route struct {
	stream        string
	keyframesOnly bool
	ended         context.Context
	end           context.CancelFunc
}

// workerInputBound is how long a write to the worker's stdin may wait. The worker reads
// its stdin on its own, never waiting for anything but the pipe, so a write that waits
// this long means a worker that is stopped (SIGSTOP) or stuck in C code: it is killed and
// restarted, rather than holding up the forwarders and, worse, a reload, which sends its
// change under the pool's lock.
const workerInputBound = 5 * time.Second

// workerConn is one running worker's stdin, written by every forwarder in turn.
type workerConn struct {
	mu    sync.Mutex
	pipe  *os.File // the write end, which takes deadlines
	enc   *gob.Encoder
	gen   int
	bound time.Duration
	// broken is the first failed write's error: a message cut off mid-way leaves the gob
	// stream unreadable, so nothing more is sent to this worker.
	broken error
	kill   func() // ends the worker, whose restart then gets the full lists
}

// newMotionPool makes a pool that analyses no camera yet (see setCameras); thumbs
// receives the thumbnails.
func newMotionPool(hub *ingest.Hub, observe func(string, time.Duration), grids func(report.GridMinute), thumbs func(report.Thumbnail), log *slog.Logger) (*motionPool, error) {
	p := &motionPool{routes: map[string]*route{}, sinks: map[string]func(report.Event){}, pending: map[string]func(report.Event){},
		hub: hub, observe: observe, grids: grids, thumbs: thumbs,
		log: log.With("component", "motion"), base: map[string]report.Stats{}, current: map[string]report.Stats{},
		active: map[string]report.Event{}, lastAt: map[string]time.Time{}}
	p.listed, p.signalListed = context.WithCancel(context.Background())
	program, err := motionWorkerProgram()
	if err != nil {
		return nil, err
	}
	// Said once, plainly, at start: the retries' log lines alone do not say what is lost.
	// The server must not refuse to start for it, or every continuously recording camera
	// would stop too.
	if _, err := os.Stat(program); err != nil {
		p.log.Error("motion worker program missing: no motion detection and no thumbnails, and cameras with record.mode motion record nothing, until it is installed",
			"program", program, "err", err)
	}
	p.command = func(ctx context.Context) *exec.Cmd { return exec.CommandContext(ctx, program, motionWorkerCommand) }
	p.inputBound = workerInputBound
	return p, nil
}

// setCameras makes cams the analysed cameras, their events going to sinks (by camera id),
// and thumbed the cameras without motion detection that get thumbnails from keyframes.
// The running worker is sent what differs from its lists (see cameraDelta); a camera
// whose analysed stream changed is forwarded anew.
func (p *motionPool) setCameras(cams []configs.Camera, thumbed []string, sinks map[string]func(report.Event)) {
	routes := make(map[string]*route, len(cams)+len(thumbed))
	for _, c := range cams {
		routes[c.ID] = &route{stream: report.AnalysedStream(c)}
	}
	for _, id := range thumbed {
		routes[id] = &route{stream: ingest.StreamMain, keyframesOnly: true}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setSinks(sinks)
	rerouted := false
	for id, r := range routes {
		if old := p.routes[id]; old != nil && old.stream == r.stream && old.keyframesOnly == r.keyframesOnly {
			routes[id] = old
			continue
		}
		if old := p.routes[id]; old != nil {
			old.end()
		}
		r.ended, r.end = context.WithCancel(context.Background())
		rerouted = true
	}
	for id, old := range p.routes {
		if routes[id] == nil {
			old.end()
		}
	}
	change := diffCameras(p.cams, p.thumbed, cams, thumbed)
	emptied := len(routes) == 0 && len(p.routes) > 0
	p.cams, p.thumbed, p.routes = cams, thumbed, routes
	// The change goes to the worker under p.mu, before a forwarder can see the new routes:
	// a camera removed and added again must not have its new stream header overtaken by
	// the removal, which would end that stream in the worker. (The worker reads its stdin
	// without ever waiting for its stdout, so this write cannot wait on p.mu.) With no
	// worker running, the next one is sent the full lists.
	if p.conn != nil && !change.empty() {
		if err := p.conn.send(toWorker{Change: &change}); err != nil {
			// Its output ends too: it is restarted, with the full lists.
			p.log.Warn("motion worker did not take the camera change", "err", err)
		}
	}
	if rerouted || emptied {
		p.signalListed()
		p.listed, p.signalListed = context.WithCancel(context.Background())
	}
}

// setSinks makes sinks the cameras' event sinks, except that a camera with an event
// going on keeps its sink until that event ends (see pending). A camera removed keeps its
// sink while its event goes on: the worker reports the end as it stops the analyser (or
// endOrphans makes one), and the catalog must not keep an event open for ever.
func (p *motionPool) setSinks(sinks map[string]func(report.Event)) {
	for cam := range p.sinks {
		if _, going := p.active[cam]; going {
			p.pending[cam] = sinks[cam] // nil when removed
		} else if _, listed := sinks[cam]; !listed {
			delete(p.sinks, cam)
		}
	}
	for cam, sink := range sinks {
		if _, going := p.active[cam]; !going {
			p.sinks[cam] = sink
		}
	}
}

// diffCameras is what a worker running oldCams and oldThumbed must change to run cams and
// thumbed. The worker hears only of what its analysers use:
//   - a camera the reload restarts (changeOf: its streams or its recording changed) gets a
//     new analyser: its recorder is a new one, which in record mode motion must see the
//     next event start rather than the end of an event that began before it, and a new
//     stream is learnt from scratch anyway;
//   - a camera updated in place whose motion settings changed has them reconfigured in
//     its running analyser, which keeps its event (the worker falls back to a new analyser
//     for the settings that change decoding, see motion.ErrNotInPlace);
//   - a rename or a change of retention or live audio is not sent at all.
func diffCameras(oldCams []configs.Camera, oldThumbed []string, cams []configs.Camera, thumbed []string) cameraDelta {
	var ch cameraDelta
	for _, c := range cams {
		i := slices.IndexFunc(oldCams, func(o configs.Camera) bool { return o.ID == c.ID })
		switch {
		case i < 0 || changeOf(oldCams[i], c) == cameraRestart:
			ch.Cameras = append(ch.Cameras, c)
		case !reflect.DeepEqual(oldCams[i].Motion, c.Motion):
			ch.Reconfigure = append(ch.Reconfigure, c)
		}
	}
	for _, id := range thumbed {
		if !slices.Contains(oldThumbed, id) {
			ch.Thumbnails = append(ch.Thumbnails, id)
		}
	}
	listed := func(id string) bool {
		return slices.Contains(thumbed, id) || slices.ContainsFunc(cams, func(c configs.Camera) bool { return c.ID == id })
	}
	for _, c := range oldCams {
		if !listed(c.ID) {
			ch.Stop = append(ch.Stop, c.ID)
		}
	}
	for _, id := range oldThumbed {
		if !listed(id) {
			ch.Stop = append(ch.Stop, id)
		}
	}
	return ch
}

func (ch *cameraDelta) empty() bool {
	return len(ch.Cameras) == 0 && len(ch.Reconfigure) == 0 && len(ch.Thumbnails) == 0 && len(ch.Stop) == 0
}

// listedNow says whether any camera is listed, and returns the channel closed when a
// camera gets a new route or the lists become empty.
func (p *motionPool) listedNow() (bool, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.routes) > 0, p.listed.Done()
}

// Stats returns a camera's motion counters over every worker since start.
func (p *motionPool) Stats(camera string) report.Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := sumStats(p.base[camera], p.current[camera])
	_, st.Active = p.active[camera]
	return st
}

// workerPID is the running worker's process id, or 0.
func (p *motionPool) workerPID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

// errNoCameras ends a worker once no camera is listed.
var errNoCameras = errors.New("no camera is analysed or thumbnailed")

// runWorker runs a worker while any camera is listed. It returns why a worker ended (nil
// after ctx); the caller (a supervisor) restarts it.
func (p *motionPool) runWorker(ctx context.Context) error {
	for {
		some, listed := p.listedNow()
		if !some {
			select {
			case <-ctx.Done():
				return nil
			case <-listed:
				continue
			}
		}
		if err := p.serveWorker(ctx); !errors.Is(err, errNoCameras) {
			return err
		}
	}
}

// serveWorker starts one worker for the listed cameras and serves it until it exits, ctx
// ends (nil) or no camera is listed any more (errNoCameras). Changes to the lists reach it
// from setCameras.
func (p *motionPool) serveWorker(ctx context.Context) error {
	cmd := p.command(context.WithoutCancel(ctx)) // stopped by closing its stdin, not killed
	cmd.Stderr = &workerLog{log: p.log}
	// A pipe of our own rather than cmd.StdinPipe: its write end takes deadlines.
	stdinRead, stdin, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdin = stdinRead
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		stdinRead.Close()
		stdin.Close()
		return err
	}
	err = cmd.Start()
	stdinRead.Close() // the worker has its copy
	if err != nil {
		stdin.Close()
		return fmt.Errorf("starting the motion worker: %w", err)
	}
	// The full lists are taken and sent under p.mu together with making this the running
	// worker: a reload meanwhile is either in them or sent to this worker as a change.
	conn := &workerConn{pipe: stdin, enc: gob.NewEncoder(stdin), bound: p.inputBound, kill: func() {
		p.log.Warn("motion worker stopped reading its input: killing it", "pid", cmd.Process.Pid, "waited", p.inputBound)
		cmd.Process.Kill()
	}}
	p.mu.Lock()
	err = conn.send(toWorker{Change: &cameraDelta{Cameras: p.cams, Thumbnails: p.thumbed}})
	if err == nil {
		p.gen++
		conn.gen = p.gen
		p.conn, p.pid = conn, cmd.Process.Pid
	}
	p.mu.Unlock()
	if err != nil {
		stdin.Close()
		cmd.Wait()
		return fmt.Errorf("motion worker: %w", err)
	}
	p.log.Info("motion worker started", "pid", cmd.Process.Pid)

	read := make(chan error, 1)
	go func() { read <- p.readWorker(stdout) }()
	var readErr error
	emptied := false
	for running := true; running; {
		_, listed := p.listedNow()
		select {
		case <-listed:
			if some, _ := p.listedNow(); !some {
				emptied, running = true, false
				p.stopWorker(conn, stdin, cmd, read)
			}
		case <-ctx.Done():
			running = false
			p.stopWorker(conn, stdin, cmd, read)
		case readErr = <-read:
			running = false
			p.detach(conn)
			stdin.Close()
		}
	}
	waitErr := cmd.Wait()
	p.endOrphans()
	switch {
	case ctx.Err() != nil:
		return nil
	case emptied:
		p.log.Info("motion worker stopped: no camera left")
		return errNoCameras
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
			p.base[cam] = sumStats(p.base[cam], st)
		}
		p.current = map[string]report.Stats{}
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
func (p *motionPool) deliver(camera string, ev report.Event) {
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
		// The event that kept the camera's old sink is over: the last reload's takes over.
		if next, ok := p.pending[camera]; ok {
			delete(p.pending, camera)
			if next == nil {
				delete(p.sinks, camera)
			} else {
				p.sinks[camera] = next
			}
		}
	}
	p.mu.Unlock()
	sink(ev)
}

// endOrphans ends the events a dead worker left going: their camera's recorder would
// otherwise keep recording "during motion" for ever, and the event would stay open. The
// end is the last moment the worker was given footage of that camera.
func (p *motionPool) endOrphans() {
	p.mu.Lock()
	var orphans []report.Event
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

// forward sends one camera's video to whichever worker runs, until ctx ends. While the
// camera is not listed it waits for a camera to get a route; when its route changes it
// looks its camera up again (the analysed stream may be another one now). A reload that
// leaves its route alone leaves its forwarding alone.
func (p *motionPool) forward(ctx context.Context, camera string) error {
	for ctx.Err() == nil {
		p.mu.Lock()
		r := p.routes[camera]
		listed := p.listed
		p.mu.Unlock()
		if r == nil {
			select {
			case <-ctx.Done():
			case <-listed.Done():
			}
			continue
		}
		fctx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(r.ended, cancel)
		p.forwardCamera(fctx, camera, r)
		stop()
		cancel()
	}
	return nil
}

// forwardCamera forwards each of the camera's sessions of r's stream in turn until ctx
// ends.
func (p *motionPool) forwardCamera(ctx context.Context, camera string, r *route) {
	for {
		st, err := p.hub.Wait(ctx, camera, r.stream)
		if err != nil {
			return // ctx done
		}
		p.forwardStream(ctx, st, r.keyframesOnly)
		if ctx.Err() != nil {
			return
		}
	}
}

// forwardStream forwards st, or with keyframesOnly (a camera forwarded for thumbnails
// only) one keyframe every ThumbnailEvery: the worker decodes nothing else of such a
// camera, so nothing else need cross the pipe.
func (p *motionPool) forwardStream(ctx context.Context, st *ingest.Stream, keyframesOnly bool) {
	video := st.Video()
	r := st.NewReader("motion", motionReaderQueue)
	defer r.Close()
	header := &wireStream{Camera: st.Camera, Name: st.Name, Codec: video.Codec, ClockRate: video.ClockRate}
	sentTo := 0     // the worker generation the header went to
	needKey := true // a worker that has just got the header can only start at a keyframe
	gapped := false // units were lost since the last one sent
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
			if !u.Key || (!lastKey.IsZero() && u.Wall.After(lastKey) && u.Wall.Sub(lastKey) < report.ThumbnailEvery*9/10) {
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

// send writes m to the worker, waiting at most c.bound for it to read; a worker that
// does not is killed (see workerInputBound).
func (c *workerConn) send(m toWorker) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return c.broken
	}
	if err := c.pipe.SetWriteDeadline(time.Now().Add(c.bound)); err != nil {
		return err
	}
	err := c.enc.Encode(m)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.broken = fmt.Errorf("the motion worker has not read its input for %v: killed, to be restarted", c.bound)
		c.kill()
	case err != nil:
		c.broken = err
	}
	return c.broken
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
