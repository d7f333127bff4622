package recorder

import (
	"math"
	"time"
)

// trackWriter accumulates one track's samples for the current fragment. A sample's duration
// is only known when the next one arrives, so the newest sample waits in pending.
//
// Its bookkeeping is O(1) per sample: the fragment's duration and size are running sums,
// never recomputed from the samples (a camera with a wrong clock can pile thousands of
// them into one fragment, and re-summing them at every frame was quadratic).
type trackWriter struct {
	id        int
	timescale uint32

	pending    *sample
	pendingDTS uint64 // decode time of pending, in timescale units from the segment start
	lastDur    uint32 // duration of the last completed sample, used for the final one
	skew       uint64 // ticks taken off incoming decode times after steps too long for one sample

	samples  []*sample // completed samples of the current fragment
	baseTime uint64    // decode time of samples[0]
	span     uint64    // sum of the samples' durations
	bytes    int       // sum of the samples' sizes
	written  uint64    // decode time just after the last sample written to disk
}

// ticks converts a duration to timescale units. Seconds and the rest are converted apart so
// that no camera timestamp, however far it jumps, overflows the product.
func ticks(d time.Duration, timescale uint32) uint64 {
	if d < 0 {
		return 0
	}
	sec, rem := uint64(d/time.Second), uint64(d%time.Second)
	return sec*uint64(timescale) + rem*uint64(timescale)/uint64(time.Second)
}

// push adds a sample at decode time dts; the previous pending sample gets its duration and
// joins the fragment. Decode times written to the file always advance, so that every
// fragment's samples add up to exactly where the next fragment starts:
//   - a dts that does not advance is moved one tick after the pending sample's (the Hub
//     never publishes such video units, but audio packets may overlap, and a zero
//     duration would make players stall); its composition offset moves with it, so that
//     its presentation time stays;
//   - a step longer than a sample duration can say (2^32 ticks: 13 h of video) is a clock
//     jump, not a frame: the sample gets the longest duration and later samples keep their
//     spacing from it (skew).
func (t *trackWriter) push(s *sample, dts uint64) {
	dts -= min(dts, t.skew)
	if t.pending != nil {
		if dts <= t.pendingDTS {
			shift := t.pendingDTS + 1 - dts
			dts = t.pendingDTS + 1
			s.ptsOffset = int32(max(int64(s.ptsOffset)-int64(min(shift, math.MaxInt32)), math.MinInt32))
		} else if step := dts - t.pendingDTS; step > math.MaxUint32 {
			t.skew += step - math.MaxUint32
			dts = t.pendingDTS + math.MaxUint32
		}
		t.complete(uint32(dts - t.pendingDTS))
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
	t.span += uint64(d)
	t.bytes += t.pending.size()
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

// fragmentDuration is the duration of the completed samples of the current fragment.
func (t *trackWriter) fragmentDuration() time.Duration {
	return mediaDuration(t.span, t.timescale)
}

// take returns the fragment's samples as a fragment track and starts a new fragment. end
// is the decode time just after the last sample taken; the caller makes it written once
// the fragment is on disk.
func (t *trackWriter) take() (ft fragmentTrack, end uint64, ok bool) {
	if len(t.samples) == 0 {
		return fragmentTrack{}, 0, false
	}
	ft = fragmentTrack{id: uint32(t.id), baseTime: t.baseTime, samples: t.samples}
	end = t.baseTime + t.span
	t.samples, t.span, t.bytes = nil, 0, 0
	return ft, end, true
}
