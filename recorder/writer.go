package recorder

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/recorder/catalog"
)

const (
	// recorderQueue is the Writer's Hub queue in units: about 40 s of a 25 fps camera with
	// audio. Footage is lost only if the disk stalls longer than that.
	recorderQueue = 2048
	// fragmentTarget is the length of one fragment, the most a crash can lose: a fragment is
	// written when it spans this much camera time or when its first sample is this old on
	// the wall clock, whichever comes first (see segment.fragmentDue).
	fragmentTarget = time.Second
	// fragmentMaxBytes also ends a fragment, whatever the clocks say. A 16 Mbit/s camera
	// writes 2 MB a second, so this is four times the largest regular fragment and never
	// bites on an honest camera; it bounds what one camera can hold in memory (this, plus
	// the fragment buffer of the same size, plus one frame) when frames come faster than
	// any real camera sends them.
	fragmentMaxBytes = 8 << 20
	// fragmentMaxSamples ends a fragment of very many small samples: mediacommon, and so
	// export, refuses a track run of more than 19200, and a second of 120 fps video or of
	// any audio is a few hundred.
	fragmentMaxSamples = 4096
	// catalogProgressInterval is how often an open segment's end is written to the catalog,
	// so that search and export see live footage without a catalog write per fragment.
	catalogProgressInterval = 10 * time.Second
	// wallJumpTolerance: when a unit's wall time strays this far from what the segment's
	// start and the camera's timestamps predict (the ingest clock re-anchored), the segment
	// is cut at the next keyframe so that every segment maps media time to wall time truly.
	wallJumpTolerance = time.Second
	// diskRetryInterval is how often a Writer paused on a full disk checks for space again.
	diskRetryInterval = 2 * time.Second
	// resumeFreeBytes is the free space a paused Writer waits for before it opens a new
	// segment: a few fragments of a 16 Mbit/s camera, so it does not fail again at once.
	// It is capped by storage.min_free, which is all retention restores: waiting for more
	// would wait forever.
	resumeFreeBytes = 16 << 20
	// noKeyframeGOPs, noKeyframeMin and noKeyframeMax: a camera that has sent no keyframe
	// for noKeyframeGOPs of the longest group of pictures it has sent in this session,
	// clamped to [noKeyframeMin, noKeyframeMax] (noKeyframeMax until a second keyframe
	// gives a measure), is broken: a stuck encoder, wrong settings, or firmware that never
	// repeats its IDR. Its segment is closed, so that what it holds is indexed and a
	// segment never grows without bound between keyframes, and the Writer reports
	// no_keyframes until the next keyframe, where recording resumes after a counted gap.
	// Four GOPs tolerate a few lost keyframes; the floor keeps a camera with a 1 s GOP from
	// being flagged for a few seconds of network trouble; the ceiling is four times the
	// longest GOP "smart codec" cameras use on a still scene (about 15 s), and the most
	// that a camera which never repeats its keyframe is trusted before someone is told.
	// Times are the units' Wall (capture time, which ingest keeps within 5 s of the local
	// clock whatever the camera's timestamps say), not the Writer's clock, so that a
	// Writer catching up after a slow disk does not mistake its own delay for the camera's.
	noKeyframeGOPs = 4
	noKeyframeMin  = 10 * time.Second
	noKeyframeMax  = time.Minute
)

// State is what a Writer is doing.
type State string

// Writer states.
const (
	StateWaiting   State = "waiting"   // no stream from the camera
	StateRecording State = "recording" // writing segments
	StatePaused    State = "paused_disk_full"
	StateError     State = "error" // the last write failed for another reason; retrying
	// StateNoKeyframes: the camera streams but has sent no keyframe for several groups of
	// pictures (noKeyframeLimit); the segment was closed and recording resumes at the next
	// keyframe. Reason says how long it has been.
	StateNoKeyframes State = "no_keyframes"
	StateOff         State = "off" // record.mode is off
	// StateWaitingMotion: record.mode is motion, the camera streams and no event is going
	// on; the pre-roll is kept in memory and nothing is written.
	StateWaitingMotion State = "waiting_motion"
	// StateFenced: a catalog write was refused because this node no longer holds the
	// camera's lease (catalog.ErrFenced): another node records the camera now. The Writer
	// records nothing more until its camera is started again under a new lease.
	StateFenced State = "fenced"
)

// WriterStats are a Writer's counters, read at scrape time.
type WriterStats struct {
	State          State
	Reason         string
	RecordedBytes  uint64
	RecordedFrames uint64
	Segments       uint64
	// Gaps counts breaks in footage that was to be recorded (reconnects, resyncs, a full
	// disk). In motion mode the time between events is not recorded by design and is not
	// a gap here, though its segments are marked GapBefore in the catalog.
	Gaps uint64
	// PreRollBytes is the memory a motion-mode Writer's pre-roll holds now.
	PreRollBytes uint64
	// PreRollDrops counts groups of pictures the pre-roll's memory bound dropped before
	// the configured pre-roll let them go (see preRollMaxBytes).
	PreRollDrops uint64
	// Lost is the time since start the recorder should have recorded and did not: waiting
	// for the camera, paused on a full disk, failing to write, or without keyframes. It
	// rises while that lasts, so an outage shows at once, not when recording resumes.
	Lost time.Duration
	// CatalogFailures counts catalog writes that failed for another reason than a full
	// disk (a damaged catalog file, an I/O error). Recording goes on without them: the
	// segments are on disk, and the next start's Recover indexes them.
	CatalogFailures uint64
	// FencedWrites counts catalog writes refused because the node had lost the camera's
	// lease (catalog.ErrFenced).
	FencedWrites uint64
}

// Writer records one camera's main stream into segments and indexes them.
type Writer struct {
	cam         configs.Camera
	st          *Storage
	cat         *catalog.Catalog
	hub         *ingest.Hub
	log         *slog.Logger
	diskFull    func() // asks Retention for an immediate sweep
	fragLatency func(time.Duration)
	minFree     configs.FreeSpace
	// progressEvery is WriterOptions.ProgressEvery or its default.
	progressEvery time.Duration
	// now is the wall clock (time.Now; tests inject their own). Fragments are flushed, and
	// disk-full retries timed, on it rather than on the camera's timestamps.
	now func() time.Time

	mu     sync.Mutex
	state  State
	reason string
	// lost accumulates time in a losing state (see losesFootage); losingSince is when the
	// current one began, zero while recording.
	lost        time.Duration
	losingSince time.Time

	trig       trigger
	preRollMax int // preRollMaxBytes; tests lower it

	bytes        atomic.Uint64
	frames       atomic.Uint64
	segments     atomic.Uint64
	gaps         atomic.Uint64
	preRollBytes atomic.Uint64
	preRollDrops atomic.Uint64
	catalogFails atomic.Uint64
	fencedWrites atomic.Uint64

	// open is the segment being written, published after every fragment for playback;
	// nil between segments.
	open atomic.Pointer[OpenSegment]
}

// OpenSegment is what playback needs of the segment a Writer is writing: its catalog row
// and the fragments synced to disk so far (the catalog gets the index only when the
// segment closes).
type OpenSegment struct {
	ID        int64 // 0 while the catalog failed: such a segment is not playable until indexed
	Start     time.Time
	Bytes     int64
	Fragments []catalog.Fragment
}

// OpenSegment returns the segment being written, if any.
func (w *Writer) OpenSegment() (OpenSegment, bool) {
	if p := w.open.Load(); p != nil {
		return *p, true
	}
	return OpenSegment{}, false
}

// publishOpen makes s's synced state visible to OpenSegment. The fragment slice is cut
// at its length, so later appends never touch what a reader holds.
func (w *Writer) publishOpen(s *segment) {
	n := len(s.index)
	w.open.Store(&OpenSegment{ID: s.id, Start: s.start, Bytes: s.bytes, Fragments: s.index[:n:n]})
}

// trigger is what the motion wiring has told a motion-mode Writer (MotionStarted,
// MotionEnded); Run reads it at every video unit. Its mutex is held for a few
// instructions only, so the motion goroutine never waits on the Writer's I/O.
type trigger struct {
	mu     sync.Mutex
	active int       // events started and not yet ended
	from   time.Time // the earliest start reported since Run last took it; zero = none
	until  time.Time // the latest end + post_roll reported
}

// WriterOptions are the Writer's optional hooks.
type WriterOptions struct {
	// DiskFull is called (without blocking) when a write fails for lack of space.
	DiskFull func()
	// FragmentLatency observes how long each fragment's write+fdatasync took.
	FragmentLatency func(time.Duration)
	// MinFree is storage.min_free: a Writer paused on a full disk resumes once at most this
	// much (or resumeFreeBytes, if less) is free.
	MinFree configs.FreeSpace
	// ProgressEvery is how often the open segment's row is brought up to date (0: every
	// catalogProgressInterval). A recorder node sets it short: after a takeover the
	// catalog has the dead node's footage up to its last update, and a fenced node sets
	// aside what came after it.
	ProgressEvery time.Duration
}

// NewWriter validates its arguments. It starts nothing and does no I/O.
func NewWriter(cam configs.Camera, st *Storage, cat *catalog.Catalog, hub *ingest.Hub, log *slog.Logger, opt WriterOptions) (*Writer, error) {
	if st == nil || cat == nil || hub == nil {
		return nil, fmt.Errorf("camera %s: recorder needs storage, catalog and hub", cam.ID)
	}
	if cam.Record.Segment <= 0 {
		return nil, fmt.Errorf("cameras[%s].record.segment: must be > 0", cam.ID)
	}
	if cam.Record.PreRoll < 0 || cam.Record.PostRoll < 0 {
		return nil, fmt.Errorf("cameras[%s].record: pre_roll %s and post_roll %s must not be negative", cam.ID, cam.Record.PreRoll, cam.Record.PostRoll)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Writer{cam: cam, st: st, cat: cat, hub: hub, log: log.With("camera", cam.ID, "component", "recorder"),
		diskFull: opt.DiskFull, fragLatency: opt.FragmentLatency, minFree: opt.MinFree, state: StateWaiting,
		progressEvery: cmp.Or(opt.ProgressEvery, catalogProgressInterval),
		preRollMax:    preRollMaxBytes, now: time.Now}
	if w.diskFull == nil {
		w.diskFull = func() {}
	}
	if w.fragLatency == nil {
		w.fragLatency = func(time.Duration) {}
	}
	return w, nil
}

// Camera is the id of the camera the Writer records.
func (w *Writer) Camera() string { return w.cam.ID }

// Stats returns the Writer's state and counters.
func (w *Writer) Stats() WriterStats {
	w.mu.Lock()
	st, reason, lost := w.state, w.reason, w.lost
	if !w.losingSince.IsZero() {
		lost += w.now().Sub(w.losingSince)
	}
	w.mu.Unlock()
	return WriterStats{State: st, Reason: reason, RecordedBytes: w.bytes.Load(), RecordedFrames: w.frames.Load(),
		Segments: w.segments.Load(), Gaps: w.gaps.Load(), PreRollBytes: w.preRollBytes.Load(), PreRollDrops: w.preRollDrops.Load(),
		Lost: lost, CatalogFailures: w.catalogFails.Load(), FencedWrites: w.fencedWrites.Load()}
}

// losesFootage tells the states in which footage that should be recorded is not: every
// state but recording, waiting for motion (by design) and off.
func losesFootage(s State) bool {
	return s == StateWaiting || s == StatePaused || s == StateError || s == StateNoKeyframes
}

func (w *Writer) setState(s State, reason string) {
	w.mu.Lock()
	changed := w.state != s || w.reason != reason
	w.state, w.reason = s, reason
	switch now := w.now(); {
	case losesFootage(s) && w.losingSince.IsZero():
		w.losingSince = now
	case !losesFootage(s) && !w.losingSince.IsZero():
		w.lost += now.Sub(w.losingSince)
		w.losingSince = time.Time{}
	}
	w.mu.Unlock()
	if !changed {
		return
	}
	switch s {
	case StatePaused, StateError, StateNoKeyframes:
		w.log.Error("recording interrupted", "state", s, "reason", reason)
	case StateRecording:
		w.log.Info("recording")
	case StateWaiting:
		w.log.Info("recorder waiting for the camera")
	case StateWaitingMotion:
		w.log.Info("recorder waiting for motion")
	default:
		w.log.Info("recording off", "record.mode", w.cam.Record.Mode)
	}
}

// Run records until ctx is done. It returns after the open segment is closed and indexed.
func (w *Writer) Run(ctx context.Context) error {
	if w.cam.Record.Mode == configs.RecordOff {
		w.setState(StateOff, "")
		<-ctx.Done()
		return nil
	}
	rec := w.newRecording()
	// Catalog writes outlive ctx (the segment open at a stop must still be closed) but
	// keep its values: a camera started under a lease carries its fence in ctx
	// (catalog.WithFence), so every write below is fenced.
	rec.catCtx = context.WithoutCancel(ctx)
	defer rec.completeUnfinished()
	for {
		w.setState(StateWaiting, "")
		stream, err := w.hub.Wait(ctx, w.cam.ID, ingest.StreamMain)
		if err != nil {
			return nil // ctx done
		}
		r := stream.NewReader("recorder", recorderQueue)
		rec.stream(ctx, r)
		r.Close()
		if ctx.Err() != nil {
			return nil
		}
	}
}

// newRecording is the state Run starts with: nothing recorded yet, so the first segment
// follows a gap.
func (w *Writer) newRecording() *recording {
	rec := &recording{w: w, catCtx: context.Background(), gapNext: true, lost: true}
	if w.cam.Record.Mode == configs.RecordMotion {
		rec.mo = &motionRecording{buf: preRoll{window: w.cam.Record.PreRoll.Std() + detectionMargin, max: w.preRollMax}}
	}
	return rec
}

// recording is the state of one Writer's Run that outlives Streams.
type recording struct {
	w      *Writer
	catCtx context.Context // what every catalog write is made with (see Run)
	// fenced: a catalog write was refused for lack of the camera's lease; nothing more
	// is recorded (see fenceOff).
	fenced  bool
	seg     *segment
	gapNext bool // the next segment does not continue the previous one
	// lost: footage that was to be recorded is missing since the last segment; the next
	// segment counts it in Gaps. Always set with gapNext, except where motion mode leaves
	// footage out by design.
	lost   bool
	mo     *motionRecording // nil unless record.mode is motion
	paused bool             // disk full or write error: skip until space is back and a keyframe comes
	// lastKey is the capture time of the Stream's latest video keyframe (zero before the
	// first), gop the longest interval between two of them; they decide no_keyframes.
	lastKey time.Time
	gop     time.Duration
	retryAt time.Time
	// unfinished are segments whose catalog row could not be completed (closed or dropped)
	// because the catalog's write failed, typically on a full disk. They are retried before
	// recording resumes, so no row stays open pointing at a finished or vanished file.
	unfinished []catalog.Segment
	// catalogTrouble is the state's reason while catalog writes fail and recording goes
	// on without them; "" when the last one succeeded.
	catalogTrouble string
}

// stream records one Stream until it ends or ctx is done.
func (rc *recording) stream(ctx context.Context, r *ingest.Reader) {
	defer func() {
		rc.close("stream ended")
		rc.lose() // a reconnect always loses something
		if rc.mo != nil {
			rc.forgetPreRoll() // the next stream's footage cannot continue it
		}
	}()
	if rc.mo != nil && !rc.mo.live && !rc.paused {
		rc.w.setState(StateWaitingMotion, "")
	}
	rc.lastKey, rc.gop = time.Time{}, 0 // a new session measures its own GOP
	var audio *ingest.Track
	if rc.w.cam.Record.Audio {
		for _, t := range r.Stream().Tracks {
			if t.Kind == ingest.KindAudio {
				audio = t
			}
		}
	}
	for {
		u, gap, err := r.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				// Stopping: units already received are footage; record them before the
				// segment closes.
				for u, gap, ok := r.TryRead(); ok; u, gap, ok = r.TryRead() {
					rc.received(u, gap, audio)
				}
			}
			return
		}
		rc.received(u, gap, audio)
	}
}

// noKeyframeLimit is how long a camera may go without a keyframe, given the longest group
// of pictures it has sent in this session (0 when it has sent only one keyframe).
func noKeyframeLimit(gop time.Duration) time.Duration {
	if gop <= 0 {
		return noKeyframeMax
	}
	return min(max(noKeyframeGOPs*gop, noKeyframeMin), noKeyframeMax)
}

// received records a unit read from the Hub.
func (rc *recording) received(u *ingest.Unit, gap bool, audio *ingest.Track) {
	if gap || u.Discontinuity {
		// Units are missing just before this keyframe (this Writer fell behind and the Hub
		// dropped units for it, or the camera sent units that could not be used): the
		// segment ends where the footage does.
		rc.close("footage missing before this keyframe")
		rc.lose()
		if rc.mo != nil {
			rc.forgetPreRoll() // a segment cannot span the hole
		}
	}
	if rc.mo != nil && !rc.motionGate(u, audio) {
		return
	}
	rc.unit(u, audio)
}

// lose records that footage which was to be recorded is missing: the next segment
// follows a gap and counts it.
func (rc *recording) lose() {
	rc.gapNext, rc.lost = true, true
}

// unit records one unit.
func (rc *recording) unit(u *ingest.Unit, audio *ingest.Track) {
	if u.Track.Kind == ingest.KindAudio {
		if rc.seg != nil && u.Track == audio {
			rc.seg.addAudio(u)
			rc.seg.received(rc.w.now())
		}
		return
	}
	if rc.keyframeMissing(u) {
		return
	}
	if rc.seg != nil && u.Key && rc.cutBefore(u) {
		rc.close("")
	}
	if rc.seg == nil {
		if !u.Key || !rc.mayOpen() {
			return
		}
		if err := rc.open(u, audio); err != nil {
			rc.failed(err)
			return
		}
	}
	if exp := rc.seg.start.Add(u.DTS - rc.seg.startDTS); absDur(u.Wall.Sub(exp)) > wallJumpTolerance {
		rc.seg.wallDrift = true
	}
	rc.seg.addVideo(u)
	now := rc.w.now()
	rc.seg.received(now)
	if rc.seg.fragmentDue(now) {
		rc.flush()
	}
}

// keyframeMissing keeps track of the camera's keyframes and reports whether video unit u
// comes too long after the latest one (noKeyframeLimit). Then the open segment is closed
// at u, u is dropped (it cannot start a segment) and the Writer reports no_keyframes;
// recording resumes at the next keyframe.
func (rc *recording) keyframeMissing(u *ingest.Unit) bool {
	if u.Key {
		if !rc.lastKey.IsZero() {
			rc.gop = max(rc.gop, u.Wall.Sub(rc.lastKey))
		}
		rc.lastKey = u.Wall
		return false
	}
	if rc.seg == nil || rc.lastKey.IsZero() {
		return false
	}
	since, limit := u.Wall.Sub(rc.lastKey), noKeyframeLimit(rc.gop)
	if since < limit {
		return false
	}
	rc.close("no keyframe")
	rc.lose()
	gop := "none yet"
	if rc.gop > 0 {
		gop = rc.gop.Round(time.Millisecond).String()
	}
	rc.w.setState(StateNoKeyframes, fmt.Sprintf("the camera has sent no keyframe for %s (longest group of pictures this session: %s; limit %s); segment closed, recording resumes at the next keyframe",
		since.Round(time.Second), gop, limit))
	return true
}

// cutBefore reports whether a keyframe must start a new segment.
func (rc *recording) cutBefore(u *ingest.Unit) bool {
	s := rc.seg
	return u.Params != s.params || s.wallDrift || u.DTS-s.startDTS >= rc.w.cam.Record.Segment.Std()
}

// mayOpen reports whether recording may (re)start: after a disk-full pause, only once there
// is room again.
func (rc *recording) mayOpen() bool {
	if rc.fenced {
		return false
	}
	if !rc.paused {
		return true
	}
	now := rc.w.now()
	if now.Before(rc.retryAt) {
		return false
	}
	rc.retryAt = now.Add(diskRetryInterval)
	space, err := rc.w.st.Space()
	need := uint64(resumeFreeBytes)
	if m := rc.w.minFree.Of(space.Total); m > 0 && m < need {
		need = m
	}
	if err != nil || space.Free < need || !rc.completeUnfinished() {
		rc.w.diskFull()
		return false
	}
	return true
}

// completeUnfinished retries the catalog completion of segments whose row could not be
// written, the way start-up recovery completes them. It reports whether none is left.
func (rc *recording) completeUnfinished() bool {
	var left []catalog.Segment
	for _, seg := range rc.unfinished {
		var rep RecoveryReport
		if err := completeOpen(rc.catCtx, rc.w.st, rc.w.cat, seg, &rep, rc.w.log); err != nil {
			rc.w.log.Warn("segment still not indexed; will retry", "path", seg.Path, "err", err)
			left = append(left, seg)
		}
	}
	rc.unfinished = left
	return len(left) == 0
}

// open starts a segment at keyframe u.
func (rc *recording) open(u *ingest.Unit, audio *ingest.Track) error {
	w := rc.w
	init, withAudio, err := initFor(u, audio)
	if err != nil {
		return err
	}
	s := newSegment()
	s.start, s.startDTS, s.params = u.Wall.UTC(), u.DTS, u.Params
	s.path = SegmentPath(w.cam.ID, s.start)
	if withAudio {
		s.audio = &trackWriter{id: 2, timescale: init.Tracks[1].TimeScale}
	}
	// The row comes first: a crash after it leaves an open row that Recover completes from
	// the file; a file without a row would have to be adopted blind.
	s.row = catalog.Segment{
		Camera: w.cam.ID, Stream: ingest.StreamMain, Start: s.start, End: s.start, Path: s.path,
		Codec: string(u.Track.Codec), MIMECodecs: mimeCodecs(init), Width: u.Params.Width, Height: u.Params.Height,
		Audio: withAudio, GapBefore: rc.gapNext, Open: true,
	}
	s.id, err = w.cat.CreateSegment(rc.catCtx, s.row)
	if errors.Is(err, catalog.ErrFull) || errors.Is(err, catalog.ErrFenced) {
		return fmt.Errorf("index segment %s: %w", s.path, err)
	}
	if err != nil {
		// The catalog is failing (damaged, I/O errors), not the disk: footage must not
		// stop because its index did. Record without a row; the segment is indexed when
		// it closes if the catalog works again, else by the next start's Recover, which
		// adopts it from the file.
		rc.catalogFailed("index segment "+s.path, err)
		s.id = 0
	} else if rc.catalogTrouble != "" {
		// The catalog writes again: complete the rows left behind while it failed.
		if rc.completeUnfinished() {
			rc.catalogTrouble = ""
		}
	}
	if s.file, err = w.st.create(s.path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Someone else's file (one Recover could not adopt): never remove it.
			s.path = ""
		}
		rc.abandon(s, err)
		return fmt.Errorf("create %s: %w", SegmentPath(w.cam.ID, s.start), err)
	}
	if err := s.writeInit(init); err != nil {
		s.file.Close()
		rc.abandon(s, err)
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	s.initBytes = s.bytes
	if rc.gapNext && rc.lost && w.segments.Load() > 0 {
		w.gaps.Add(1)
	}
	rc.seg, rc.gapNext, rc.lost, rc.paused = s, false, false, false
	w.segments.Add(1)
	w.bytes.Add(uint64(s.bytes))
	w.setState(StateRecording, rc.catalogTrouble)
	return nil
}

// catalogFailed counts and logs a catalog write that failed for another reason than a
// full disk. Recording goes on: the footage is on disk, and Recover indexes it at the
// next start at the latest.
func (rc *recording) catalogFailed(what string, err error) {
	rc.w.catalogFails.Add(1)
	rc.catalogTrouble = "catalog write failed; recording without the index until it works again or the next start: " + err.Error()
	rc.w.log.Error("catalog write failed; the footage is still written to disk and indexed from the files at the next start",
		"what", what, "err", err, "catalog_failures", rc.w.catalogFails.Load())
}

// abandon removes a segment that never got a fragment: its row and whatever file exists.
func (rc *recording) abandon(s *segment, cause error) {
	if s.path != "" {
		if err := rc.w.st.remove(s.path); err != nil {
			rc.w.log.Error("could not remove an empty segment file; Recover will", "path", s.path, "err", err)
		}
	}
	if s.id == 0 {
		return // never indexed
	}
	seg := catalog.Segment{ID: s.id, Path: s.path, Start: s.start}
	if err := dropRow(rc.catCtx, rc.w.cat, seg, "recorder: segment without footage: "+cause.Error()); err != nil {
		if rc.refused(err) {
			return // the open row stays for this node's next start to drop
		}
		rc.w.log.Warn("could not drop the row of an empty segment; retrying later", "path", s.path, "err", err)
		rc.unfinished = append(rc.unfinished, seg)
	}
}

// flush writes the current fragment.
func (rc *recording) flush() {
	start := rc.w.now()
	before := rc.seg.bytes
	frames, err := rc.seg.flush(start)
	if err != nil {
		rc.failed(fmt.Errorf("write %s: %w", rc.seg.path, err))
		return
	}
	if rc.seg.bytes == before {
		return // nothing was complete yet
	}
	rc.w.fragLatency(rc.w.now().Sub(start))
	rc.w.publishOpen(rc.seg)
	rc.w.bytes.Add(uint64(rc.seg.bytes - before))
	rc.w.frames.Add(uint64(frames))
	if now := rc.w.now(); rc.seg.id != 0 && now.Sub(rc.seg.lastProgress) >= rc.w.progressEvery {
		rc.seg.lastProgress = now
		err := rc.w.cat.UpdateOpenSegment(rc.catCtx, rc.seg.id, rc.seg.end(), rc.seg.bytes, rc.seg.frames)
		if err == nil {
			rc.seg.cataloged = rc.seg.bytes
		} else if rc.refused(err) {
			rc.fenceOff()
		} else {
			rc.w.catalogFails.Add(1)
			rc.w.log.Warn("catalog progress update failed; the segment is indexed when it closes", "err", err)
		}
	}
}

// failed handles a write or create error: the segment (if any) is closed at its last
// complete fragment and recording pauses until space is back.
func (rc *recording) failed(err error) {
	if rc.refused(err) {
		rc.fenceOff()
		return
	}
	full := errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, catalog.ErrFull)
	if full {
		// Free the catalog's reserve so that closing this segment's row, and retention's
		// deletions, can still be written on a disk that is full to the last byte.
		if _, rerr := rc.w.st.releaseCatalogReserve(); rerr != nil {
			rc.w.log.Warn("could not release the catalog reserve", "err", rerr)
		}
	}
	if rc.seg != nil {
		rc.closeSegment()
	}
	rc.paused = true
	rc.lose()
	rc.retryAt = rc.w.now().Add(diskRetryInterval)
	if full {
		rc.w.setState(StatePaused, err.Error())
		rc.w.diskFull()
		return
	}
	rc.w.setState(StateError, err.Error())
}

// close ends the current segment after writing what is pending.
func (rc *recording) close(why string) {
	if rc.seg == nil {
		return
	}
	rc.seg.video.finish()
	if rc.seg.audio != nil {
		rc.seg.audio.finish()
	}
	rc.flush()
	if rc.seg != nil { // flush may have failed and closed it
		rc.closeSegment()
	}
	if why != "" {
		rc.w.log.Debug("segment closed", "why", why)
	}
}

// closeSegment closes the file and indexes the segment as complete.
func (rc *recording) closeSegment() {
	s := rc.seg
	rc.seg = nil
	// Cleared only after the row below is closed with its index: playback finds the
	// fragments in the catalog from then on.
	defer rc.w.open.Store(nil)
	if err := s.file.Close(); err != nil {
		rc.w.log.Error("closing segment file", "path", s.path, "err", err)
	}
	if s.frames == 0 {
		rc.abandon(s, errors.New("no complete fragment"))
		return
	}
	if s.id == 0 {
		rc.indexLate(s)
		return
	}
	err := rc.w.cat.CloseSegment(rc.catCtx, s.id, s.end(), s.bytes, s.frames, s.sha256(), s.index)
	if rc.refused(err) {
		rc.setAside(s)
		rc.fenceOff()
		return
	}
	if err = closedWithoutIndex(err, rc.w.log, s.path); err != nil {
		// The file is complete and synced: index it from the file once the catalog can
		// write again, or at the next start.
		rc.unfinished = append(rc.unfinished, catalog.Segment{ID: s.id, Path: s.path, Start: s.start})
		if !errors.Is(err, catalog.ErrFull) {
			// A failing catalog, not a full disk: keep recording (retried at the next
			// segment, and Recover completes the row at the next start).
			rc.catalogFailed("close segment "+s.path, err)
			return
		}
		rc.w.log.Warn("could not index a closed segment; retrying before recording resumes", "path", s.path, "err", err)
		rc.paused = true
		rc.lose()
		rc.retryAt = rc.w.now().Add(diskRetryInterval)
		rc.w.setState(StatePaused, err.Error())
		rc.w.diskFull()
	}
}

// indexLate indexes a closed segment that was recorded without a row because the
// catalog failed when it opened. If the catalog still fails, the file waits for the next
// start's Recover, which adopts it.
func (rc *recording) indexLate(s *segment) {
	ctx := rc.catCtx
	id, err := rc.w.cat.CreateSegment(ctx, s.row)
	if rc.refused(err) {
		rc.setAside(s) // no row: the whole file goes aside
		rc.fenceOff()
		return
	}
	if err == nil {
		err = closedWithoutIndex(rc.w.cat.CloseSegment(ctx, id, s.end(), s.bytes, s.frames, s.sha256(), s.index), rc.w.log, s.path)
		if err != nil {
			rc.unfinished = append(rc.unfinished, catalog.Segment{ID: id, Path: s.path, Start: s.start})
		}
	}
	if err != nil {
		rc.catalogFailed("index closed segment "+s.path, err)
		return
	}
	rc.catalogTrouble = ""
	rc.w.log.Warn("segment recorded while the catalog failed is indexed now", "path", s.path)
}

// closedWithoutIndex turns CloseSegment's ErrIndexDropped into a warning: the segment is
// closed and its footage indexed, only its fragment index is missing (playback fetches it
// whole). Any other error is returned as it is.
func closedWithoutIndex(err error, log *slog.Logger, path string) error {
	if errors.Is(err, catalog.ErrIndexDropped) {
		log.Warn("segment indexed without its fragment index; playback fetches it whole", "path", path, "err", err)
		return nil
	}
	return err
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
