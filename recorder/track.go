package recorder

import "time"

// trackWriter accumulates one track's samples for the current fragment. A sample's duration
// is only known when the next one arrives, so the newest sample waits in pending.
type trackWriter struct {
	id        int
	timescale uint32

	pending    *sample
	pendingDTS uint64 // decode time of pending, in timescale units from the segment start
	lastDur    uint32 // duration of the last completed sample, used for the final one

	samples  []*sample // completed samples of the current fragment
	baseTime uint64    // decode time of samples[0]
	written  uint64    // decode time just after the last sample written to disk
}

// ticks converts a duration to timescale units (segments are at most an hour, so the
// product stays far below int64's range).
func ticks(d time.Duration, timescale uint32) uint64 {
	if d < 0 {
		return 0
	}
	return uint64(d) * uint64(timescale) / uint64(time.Second)
}

// push adds a sample at decode time dts; the previous pending sample gets its duration and
// joins the fragment. A dts that does not advance gets a one-tick duration: the Hub never
// publishes such units, but a zero duration would make players stall.
func (t *trackWriter) push(s *sample, dts uint64) {
	if t.pending != nil {
		d := uint32(1)
		if dts > t.pendingDTS {
			d = uint32(dts - t.pendingDTS)
		}
		t.complete(d)
	}
	t.pending, t.pendingDTS = s, dts
}

// complete moves the pending sample into the fragment with duration d.
func (t *trackWriter) complete(d uint32) {
	t.pending.duration = d
	if len(t.samples) == 0 {
		t.baseTime = t.pendingDTS
	}
	t.samples = append(t.samples, t.pending)
	t.lastDur = d
	t.pending = nil
}

// finish completes the pending sample at the end of a segment, giving it the previous
// sample's duration (the best estimate of a frame interval there is).
func (t *trackWriter) finish() {
	if t.pending == nil {
		return
	}
	d := t.lastDur
	if d == 0 {
		d = t.timescale / 25 // a lone sample: assume 25 fps
	}
	t.complete(d)
}

// span is the duration of the completed samples of the current fragment, in ticks.
func (t *trackWriter) span() uint64 {
	var sum uint64
	for _, s := range t.samples {
		sum += uint64(s.duration)
	}
	return sum
}

// fragmentDuration is the duration of the completed samples of the current fragment.
func (t *trackWriter) fragmentDuration() time.Duration {
	return time.Duration(t.span() * uint64(time.Second) / uint64(t.timescale))
}

// take returns the fragment's samples as a fragment track and starts a new fragment. end
// is the decode time just after the last sample taken; the caller makes it written once
// the fragment is on disk.
func (t *trackWriter) take() (ft fragmentTrack, end uint64, ok bool) {
	if len(t.samples) == 0 {
		return fragmentTrack{}, 0, false
	}
	ft = fragmentTrack{id: uint32(t.id), baseTime: t.baseTime, samples: t.samples}
	end = t.baseTime + t.span()
	t.samples = nil
	return ft, end, true
}
