package motion

import (
	"time"

	"github.com/townwatch/townwatch/motion/report"
)

// Event confirmation and snapshot policy.
const (
	// confirmFrames is how many consecutive analysed frames must move before an event
	// starts: one or two moving frames are what a bird, a raindrop on the lens or a
	// compression glitch look like. At the default 5 fps it is 0.4 s of motion.
	confirmFrames = 3
	// confirmKeyframes replaces confirmFrames when only keyframes are analysed: at one
	// frame every 1-2 s, three would put the confirmation 4 s or more after the start.
	confirmKeyframes = 2
	// snapshotGain and snapshotGap bound snapshot cost (decode to colour and JPEG-encode,
	// a few ms): a new one only when the score has grown by a quarter since the last one,
	// and not more than once a second.
	snapshotGain = 1.25
	snapshotGap  = time.Second
	// snapshotWidth is the JPEG's width: the detail an officer needs to recognise what moved.
	snapshotWidth = 640
	// snapshotQuality is OpenCV's default JPEG quality, which snapshots always had.
	snapshotQuality = 95
)

// tracker turns per-frame detections into events. It is the analyser's state machine and
// does no I/O: emit delivers an event (start, then end), snap makes a snapshot of the frame
// just analysed (nil if it cannot).
type tracker struct {
	p       *params
	confirm int
	emit    func(report.Event)
	snap    func() []byte

	// Before confirmation: the run of consecutive moving frames.
	pending      int
	pendingStart time.Time
	peak         detection
	hits         uint64

	active     bool
	ev         report.Event
	lastMotion time.Time
	snapScore  float64
	snapAt     time.Time
}

func newTracker(p *params, emit func(report.Event), snap func() []byte) *tracker {
	t := &tracker{p: p, confirm: confirmFrames, emit: emit, snap: snap}
	if p.keyframesOnly {
		t.confirm = confirmKeyframes
	}
	return t
}

// observe takes the detection of the frame captured at wall time at.
func (t *tracker) observe(at time.Time, d detection) {
	if !d.Moving {
		t.pending = 0
		if t.active && at.Sub(t.lastMotion) >= t.p.cooldown {
			t.end()
		}
		return
	}
	if !t.active {
		if t.pending == 0 {
			t.pendingStart, t.peak, t.hits = at, d, 0
		}
		t.pending++
		t.hits |= d.Zones
		if d.Score > t.peak.Score {
			t.peak = d
		}
		if t.pending < t.confirm {
			return
		}
		t.start(at)
		return
	}
	t.lastMotion = at
	if d.Zones&^t.hits != 0 {
		t.hits |= d.Zones
		t.ev.Zones = t.p.zoneNames(t.hits)
	}
	if d.Score > t.ev.Score {
		t.ev.Score, t.ev.Box = d.Score, d.Box
		if d.Score >= t.snapScore*snapshotGain && at.Sub(t.snapAt) >= snapshotGap {
			t.takeSnapshot(at, d.Score)
		}
	}
}

func (t *tracker) start(at time.Time) {
	t.active = true
	t.pending = 0
	t.lastMotion = at
	t.ev = report.Event{
		ID:     newUUIDv7(t.pendingStart),
		Camera: t.p.camera,
		Start:  t.pendingStart,
		Score:  t.peak.Score,
		Box:    t.peak.Box,
		Zones:  t.p.zoneNames(t.hits),
	}
	// The frame in the decoder is the confirming one, not necessarily the peak so far;
	// close enough to show what moved, and replaced if the score grows.
	t.takeSnapshot(at, t.peak.Score)
	t.emit(t.ev)
}

func (t *tracker) takeSnapshot(at time.Time, score float64) {
	if jpg := t.snap(); jpg != nil {
		t.ev.Snapshot = jpg
		t.snapScore, t.snapAt = score, at
	}
}

// reconfigure puts p in force. The zones hit so far are kept by name where p still
// configures them, so that an ongoing event names no zone that is gone and goes on
// adding the zones it hits.
func (t *tracker) reconfigure(p *params) {
	t.hits = p.zoneBits(t.p.zoneNames(t.hits))
	t.p = p
	if t.active {
		t.ev.Zones = p.zoneNames(t.hits)
	}
}

// interrupt forgets the run of moving frames before a gap in the footage: frames on both
// sides of it are not consecutive. An ongoing event is kept; its cooldown runs on.
func (t *tracker) interrupt() { t.pending = 0 }

// end ends the ongoing event, if any, at its last moving frame.
func (t *tracker) end() {
	t.pending = 0
	if !t.active {
		return
	}
	t.active = false
	t.ev.End = t.lastMotion
	t.emit(t.ev)
	t.ev = report.Event{}
	t.snapScore, t.snapAt = 0, time.Time{}
}
