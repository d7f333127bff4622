package recorder

import (
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
)

const (
	// detectionMargin is kept in the pre-roll on top of record.pre_roll (and one whole
	// GOP more, see preRoll.add). The detector confirms an event a second or two after
	// the motion began and reports that true start, so by the time MotionStarted arrives
	// the footage pre_roll before the start is already pre_roll plus that latency old.
	// 3 s covers the detector's 1-2 s on a sub stream and a busy box's scheduling delay;
	// the extra GOP covers keyframes-only analysis, whose latency is one GOP. A trigger
	// later than that gets what the buffer still has (a shorter pre-roll, never a broken
	// one).
	detectionMargin = 3 * time.Second

	// preRollMaxBytes bounds one camera's pre-roll in memory, so that a camera with a huge
	// group of pictures or a runaway bitrate cannot eat the box's memory. 32 MiB holds
	// the default pre_roll (5 s) plus detectionMargin plus two 4 s GOPs of a 16 Mbit/s
	// main stream (32 MB), or the longest pre_roll configs allows (1 min) of a 4 Mbit/s
	// one with 1 s GOPs. When it bites, the oldest whole GOPs go first (the pre-roll gets shorter than
	// configured); a single GOP larger than the bound cannot be kept at all (its frames
	// depend on its keyframe), so the buffer is emptied and starts again at the next
	// keyframe. Either way it is counted in WriterStats.PreRollDrops and logged once.
	preRollMaxBytes = 32 << 20
)

// MotionStarted tells a motion-mode Writer that an event began at start (the true start,
// possibly a second or two ago). The recording starts at the keyframe at or before
// start - record.pre_roll that the pre-roll still holds. It never blocks on I/O (it takes
// a mutex held for a few instructions) and may be called from any goroutine; a Writer
// that is not in motion mode ignores it.
//
// Events of a camera may overlap: every MotionStarted is matched by one MotionEnded, and
// recording goes on while any event is going on. A MotionStarted that is never ended keeps
// the camera recording (as in continuous mode) rather than lose footage.
func (w *Writer) MotionStarted(start time.Time) {
	if w.cam.Record.Mode != configs.RecordMotion {
		return
	}
	if start.IsZero() {
		// A start the caller does not know: the event is at least going on now. (A zero
		// start would read as "no start reported" and never open a recording.)
		start = time.Now()
	}
	t := &w.trig
	t.mu.Lock()
	t.active++
	if t.from.IsZero() || start.Before(t.from) {
		t.from = start
	}
	t.mu.Unlock()
}

// MotionEnded tells a motion-mode Writer that an event ended at end; recording continues
// until end + record.post_roll, unless another event is going on or starts meanwhile.
// Like MotionStarted it never blocks on I/O and is ignored outside motion mode.
func (w *Writer) MotionEnded(end time.Time) {
	if w.cam.Record.Mode != configs.RecordMotion {
		return
	}
	t := &w.trig
	t.mu.Lock()
	if t.active > 0 {
		t.active--
	}
	if until := end.Add(w.cam.Record.PostRoll.Std()); until.After(t.until) {
		t.until = until
	}
	t.mu.Unlock()
}

// take returns the earliest event start reported since the last take, if any.
func (t *trigger) take() (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	start := t.from
	t.from = time.Time{}
	return start, !start.IsZero()
}

// wants reports whether footage captured at wall is to be recorded: an event is going on,
// or the post-roll of one that ended runs past wall.
func (t *trigger) wants(wall time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.active > 0 || wall.Before(t.until)
}

// motionRecording is the motion-mode part of a recording.
type motionRecording struct {
	buf  preRoll
	live bool // recording an event or its post-roll; otherwise buffering the pre-roll
	// resumeAt is the keyframe at which the last event's segment was closed cleanly. If
	// the next event's recording starts at that very unit, nothing is missing between
	// the two segments and the new one does not follow a gap.
	resumeAt *ingest.Unit
	// overflowing: the byte bound is dropping pre-roll footage; logged once per episode.
	overflowing bool
}

// motionGate decides, in motion mode, whether u is recorded now. A unit it does not pass
// on goes into the pre-roll. Decisions are taken at video units, in the footage's own
// time (Wall): an event starts the recording at the next unit, with the pre-roll before
// it; the recording stops at the first keyframe at or after the end of the post-roll.
// Stopping at a keyframe rather than at the first unit past the post-roll costs at most
// one GOP of extra footage and makes that keyframe the first unit of the next pre-roll, so
// an event starting soon after continues the recording without a hole; the rest of a GOP
// cut mid-way could not have been used as pre-roll anyway.
func (rc *recording) motionGate(u *ingest.Unit, audio *ingest.Track) bool {
	m, t := rc.mo, &rc.w.trig
	if u.Track.Kind != ingest.KindVideo {
		if !m.live {
			rc.buffer(u)
		}
		return m.live
	}
	start, started := t.take()
	switch {
	case m.live && u.Key && !started && !t.wants(u.Wall):
		rc.stopEvent(u)
		return false
	case m.live:
		return true
	case started:
		rc.startEvent(start, audio)
		return true
	default:
		rc.buffer(u)
		return false
	}
}

// startEvent starts recording an event that began at start: it writes the pre-roll from
// the keyframe at or before start - pre_roll (or from its oldest keyframe, if the trigger
// came too late for that one to be held). The segment's times are the footage's own.
func (rc *recording) startEvent(start time.Time, audio *ingest.Track) {
	m := rc.mo
	m.live = true
	units := m.buf.since(start.Add(-rc.w.cam.Record.PreRoll.Std()))
	if len(units) > 0 && units[0] == m.resumeAt {
		rc.gapNext = false
	}
	m.resumeAt = nil
	for _, u := range units {
		rc.unit(u, audio)
	}
	rc.forgetPreRoll()
}

// stopEvent ends an event's recording at keyframe u, which starts the next pre-roll.
func (rc *recording) stopEvent(u *ingest.Unit) {
	m, w := rc.mo, rc.w
	open := rc.seg != nil
	rc.close("motion ended")
	m.resumeAt = nil
	if open && !rc.paused {
		m.resumeAt = u
	}
	// The footage until the next event is left out by design: the next segment follows a
	// hole (GapBefore, so export and the timeline show it), but not a loss. A loss while
	// the event was recorded that no later segment has counted yet is counted now.
	if rc.lost && w.segments.Load() > 0 {
		w.gaps.Add(1)
	}
	rc.gapNext, rc.lost = true, false
	m.live = false
	rc.buffer(u)
	if !rc.paused {
		w.setState(StateWaitingMotion, "")
	}
}

// buffer adds u to the pre-roll.
func (rc *recording) buffer(u *ingest.Unit) {
	m, w := rc.mo, rc.w
	windowFull, dropped := m.buf.add(u)
	if windowFull {
		// The pre-roll now reaches a whole window back without a break, so an earlier
		// loss (a reconnect, a resync) cannot cost the next event any of its pre-roll.
		rc.lost = false
		if m.overflowing && dropped == 0 {
			m.overflowing = false
			w.log.Info("pre-roll fits its memory bound again")
		}
	}
	if dropped > 0 {
		w.preRollDrops.Add(uint64(dropped))
		if !m.overflowing {
			m.overflowing = true
			w.log.Warn("pre-roll over its memory bound: dropping its oldest footage (group of pictures too long or bitrate too high)",
				"bound_bytes", m.buf.max, "window", m.buf.window)
		}
	}
	if m.resumeAt != nil && (len(m.buf.units) == 0 || m.buf.units[0] != m.resumeAt) {
		m.resumeAt = nil
	}
	w.preRollBytes.Store(uint64(m.buf.bytes))
}

// forgetPreRoll empties the pre-roll: it was written, or what comes next cannot join it
// (a new stream, a gap).
func (rc *recording) forgetPreRoll() {
	rc.mo.buf.reset()
	rc.mo.resumeAt = nil
	rc.w.preRollBytes.Store(0)
}

// preRoll holds a motion-mode camera's most recent footage while it is not recording:
// whole groups of pictures, starting at a keyframe, that cover at least window before the
// newest unit plus one GOP, within max bytes (see preRollMaxBytes). Units are shared with the Hub, never
// copied.
type preRoll struct {
	window time.Duration
	max    int
	units  []*ingest.Unit // video and audio in arrival order; units[0] is a video keyframe
	keys   []int          // indexes into units of the video keyframes
	bytes  int
}

// add appends u and lets go of what the window no longer needs. windowFull reports that
// the time rule let a GOP go (the rest still covers the window); dropped counts the GOPs
// the byte bound made it drop although the window still wanted them.
func (p *preRoll) add(u *ingest.Unit) (windowFull bool, dropped int) {
	key := u.Track.Kind == ingest.KindVideo && u.Key
	if len(p.units) == 0 && !key {
		return false, 0 // footage is usable only from a keyframe on
	}
	if key {
		p.keys = append(p.keys, len(p.units))
	}
	p.units = append(p.units, u)
	p.bytes += u.Size()
	// The oldest GOP goes once the two after it alone reach window back from u. One whole
	// GOP more than the window needs: a camera without a sub stream is analysed on its
	// keyframes only, and the detector confirms an event at its second moving keyframe,
	// one GOP after the start it reports. With a GOP longer than detectionMargin (4 s,
	// 10 s) the keyframe pre_roll before that start would already be gone: the recording
	// lost the pre-roll, all of it once the GOP reaches pre_roll + detectionMargin.
	for len(p.keys) > 2 && !p.units[p.keys[2]].Wall.After(u.Wall.Add(-p.window)) {
		p.dropFirst()
		windowFull = true
	}
	for p.bytes > p.max {
		dropped++
		if len(p.keys) > 1 {
			p.dropFirst()
			continue
		}
		// One GOP larger than the bound: none of it can be kept.
		p.reset()
	}
	return windowFull, dropped
}

// dropFirst removes the oldest GOP.
func (p *preRoll) dropFirst() {
	n := p.keys[1]
	for _, u := range p.units[:n] {
		p.bytes -= u.Size()
	}
	m := copy(p.units, p.units[n:])
	clear(p.units[m:]) // let the Hub's payloads go
	p.units = p.units[:m]
	k := copy(p.keys, p.keys[1:])
	p.keys = p.keys[:k]
	for i := range p.keys {
		p.keys[i] -= n
	}
}

// since returns the units from the last keyframe at or before t, or from the oldest
// keyframe when all are later. The slice is the buffer's own: use it before add or reset.
func (p *preRoll) since(t time.Time) []*ingest.Unit {
	if len(p.keys) == 0 {
		return nil
	}
	from := p.keys[0]
	for _, k := range p.keys[1:] {
		if p.units[k].Wall.After(t) {
			break
		}
		from = k
	}
	return p.units[from:]
}

func (p *preRoll) reset() {
	clear(p.units)
	p.units, p.keys, p.bytes = p.units[:0], p.keys[:0], 0
}
