package ingest

// FuzzSessionClock drives a sessionClock with arbitrary sequences of PTS and local clock
// readings and checks what clock.go promises: Wall stays within maxWallDrift of the local
// (wall) clock it is given, and otherwise follows the camera's PTS exactly.
//
//	go test -run '^$' -fuzz '^FuzzSessionClock$' -fuzztime 30s -parallel 1 ./ingest/

import (
	"encoding/binary"
	"log/slog"
	"math"
	"testing"
	"time"
	"unsafe"
)

// A clock step of the fuzz input is five bytes:
//
//	PTS delta (int16, 10 ms units) | local clock delta (int16, 10 ms units) | wall step (int8, s)
//
// The local clock advances by the clock delta; the wall step moves only its wall reading,
// as an NTP step does (time.Now's monotonic reading is not stepped). For readings without
// a monotonic clock (monotonic false) both simply add up.
const clockFuzzUnit = 10 * time.Millisecond

type clockStep struct {
	pts, now time.Duration
	wallStep int64 // seconds
}

func decodeClockSteps(data []byte) []clockStep {
	var out []clockStep
	for ; len(data) >= 5; data = data[5:] {
		out = append(out, clockStep{
			pts:      time.Duration(int16(binary.BigEndian.Uint16(data))) * clockFuzzUnit,
			now:      time.Duration(int16(binary.BigEndian.Uint16(data[2:]))) * clockFuzzUnit,
			wallStep: int64(int8(data[4])),
		})
	}
	return out
}

func encodeClockSteps(steps ...clockStep) []byte {
	var b []byte
	for _, s := range steps {
		b = binary.BigEndian.AppendUint16(b, uint16(int16(s.pts/clockFuzzUnit)))
		b = binary.BigEndian.AppendUint16(b, uint16(int16(s.now/clockFuzzUnit)))
		b = append(b, byte(int8(s.wallStep)))
	}
	return b
}

// repeatSteps is n copies of s.
func repeatSteps(n int, s clockStep) []clockStep {
	out := make([]clockStep, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// timeLayout mirrors time.Time's fields. With the hasMonotonic bit, wall holds 33 bits of
// seconds since 1885 and 30 bits of nanoseconds, ext the monotonic reading.
type timeLayout struct {
	wall uint64
	ext  int64
	loc  *time.Location
}

// stepWall returns t, which must carry a monotonic reading, with its wall reading moved by
// sec seconds and its monotonic reading unchanged: what time.Now returns after the system
// clock was stepped. No exported API makes such a Time. ok is false when the result is not
// exactly that (time.Time's layout changed, or the wall time is out of the packed range).
func stepWall(t time.Time, sec int64) (time.Time, bool) {
	const (
		hasMonotonic = 1 << 63
		nsecShift    = 30
		nsecMask     = 1<<nsecShift - 1
	)
	if unsafe.Sizeof(t) != unsafe.Sizeof(timeLayout{}) {
		return t, false
	}
	orig := t
	p := (*timeLayout)(unsafe.Pointer(&t))
	s := int64(p.wall<<1>>(nsecShift+1)) + sec
	if p.wall&hasMonotonic == 0 || s < 0 || s > 1<<33-1 {
		return orig, false
	}
	p.wall = p.wall&nsecMask | uint64(s)<<nsecShift | hasMonotonic
	wantWall := orig.Round(0).Add(time.Duration(sec) * time.Second)
	if !t.Round(0).Equal(wantWall) || t.Sub(orig) != 0 {
		return orig, false
	}
	return t, true
}

// stepWallWorks tells whether stepWall can model a stepped clock in this Go release.
func stepWallWorks() bool {
	now := time.Now()
	stepped, ok := stepWall(now, 3600)
	return ok && stepped.Sub(now) == 0 && stepped.Round(0).Sub(now.Round(0)) == time.Hour
}

// absDuration is |d|, saturating.
func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		if d == math.MinInt64 {
			return math.MaxInt64
		}
		return -d
	}
	return d
}

// FuzzSessionClock feeds sessionClock.wall a PTS sequence starting at startPTS (any
// int64: the camera's timeline may start anywhere and wrap) and local clock readings
// starting at startNano (Unix nanoseconds, readings without a monotonic clock) or, with
// monotonic, at time.Now() with its monotonic reading, as session.go passes it. Checked on
// the wall readings (what recordings and events store):
//   - the first unit gets the local time;
//   - every Wall is within maxWallDrift of the local wall clock it was given (clock.go:
//     "recordings and event times must stay within seconds of real time"), however the
//     camera's timestamps or the local clock (NTP steps included) jump;
//   - Wall follows the camera exactly (Wall - previous Wall = PTS - previous PTS) as long
//     as that stays within maxWallDrift of the local clock, and is re-anchored to the local
//     time otherwise: it never re-anchors without need.
//
// Wall is not claimed to be monotonic (it follows PTS, which with B-frames is not), and is
// not checked to be.
func FuzzSessionClock(f *testing.F) {
	monoOK := stepWallWorks()
	frame := clockStep{pts: 40 * time.Millisecond, now: 40 * time.Millisecond}
	base := time.Date(2026, 11, 23, 14, 5, 0, 0, time.UTC).UnixNano()
	seeds := []struct {
		startPTS, startNano int64
		steps               []clockStep
	}{
		// 25 fps, camera and host agree.
		{0, base, repeatSteps(10, frame)},
		// The camera's clock runs fast (1.1 s per second) until it is more than 5 s ahead.
		{0, base, repeatSteps(60, clockStep{pts: 1100 * time.Millisecond, now: time.Second})},
		// Exactly maxWallDrift ahead (kept), then 10 ms more (re-anchored), and behind.
		{0, base, []clockStep{frame, {pts: 5 * time.Second}, {pts: 10 * time.Millisecond}, {now: 5 * time.Second}, {now: 10 * time.Millisecond}}},
		// The camera's clock jumps back 10 s, then forward 300 s.
		{90000, base, []clockStep{frame, frame, {pts: -10 * time.Second, now: 40 * time.Millisecond}, frame, {pts: 300 * time.Second, now: 40 * time.Millisecond}, frame}},
		// The local clock goes back a minute, then is stepped forward an hour in 127 s steps.
		{0, base, append([]clockStep{frame, {pts: 40 * time.Millisecond, now: -60 * time.Second}, frame}, repeatSteps(30, clockStep{pts: 40 * time.Millisecond, now: 40 * time.Millisecond, wallStep: 127})...)},
		// B-frames: PTS goes back and forth.
		{0, base, []clockStep{frame, {pts: 120 * time.Millisecond, now: 40 * time.Millisecond}, {pts: -80 * time.Millisecond, now: 40 * time.Millisecond}, {pts: 40 * time.Millisecond, now: 40 * time.Millisecond}}},
		// PTS around the ends of int64, wrapping; times at the ends of Unix nanoseconds.
		{math.MaxInt64 - int64(time.Second), base, repeatSteps(40, clockStep{pts: 100 * time.Millisecond, now: 100 * time.Millisecond})},
		{math.MinInt64, math.MaxInt64, repeatSteps(3, clockStep{pts: -time.Second, now: -time.Second})},
		{0, math.MinInt64, repeatSteps(3, frame)},
		{0, base, nil},
	}
	for _, s := range seeds {
		for _, monotonic := range []bool{false, true} {
			if monotonic && s.steps != nil && s.steps[len(s.steps)-1].wallStep != 0 {
				continue // in testdata/fuzz/FuzzSessionClock: see ntp-step-*
			}
			f.Add(s.startPTS, s.startNano, monotonic, encodeClockSteps(s.steps...))
		}
	}

	f.Fuzz(func(t *testing.T, startPTS, startNano int64, monotonic bool, data []byte) {
		if monotonic && !monoOK {
			// Not a skip: without stepWall the NTP-step entries would check nothing.
			t.Fatal("stepWall cannot model a stepped clock with this Go release's time.Time; update timeLayout")
		}
		c := &sessionClock{log: slog.New(slog.DiscardHandler)}
		pts := time.Duration(startPTS)
		var now time.Time
		if monotonic {
			now = time.Now()
		} else {
			now = time.Unix(0, startNano)
		}
		var prevWall time.Time
		var prevPTS time.Duration
		for i, s := range append([]clockStep{{}}, decodeClockSteps(data)...) {
			if i > 0 {
				pts += s.pts // wraps like the camera's int64 timeline would
				now = now.Add(s.now)
				if s.wallStep != 0 {
					if monotonic {
						var ok bool
						if now, ok = stepWall(now, s.wallStep); !ok {
							t.Fatalf("step %d: stepWall(%v, %ds) failed", i, now, s.wallStep)
						}
					} else {
						now = now.Add(time.Duration(s.wallStep) * time.Second)
					}
				}
			}
			got := c.wall(pts, now)
			local, wall := now.Round(0), got.Round(0) // the wall readings
			if d := wall.Sub(local); absDuration(d) > maxWallDrift {
				t.Fatalf("step %d (PTS %v): Wall %v is %v from the local clock %v, more than %v",
					i, pts, wall, d, local, maxWallDrift)
			}
			if i == 0 {
				if !wall.Equal(local) {
					t.Fatalf("first unit: Wall %v, want the local time %v", wall, local)
				}
			} else {
				follow := prevWall.Add(pts - prevPTS) // where the camera's timestamps put it
				if absDuration(follow.Sub(local)) <= maxWallDrift {
					if !wall.Equal(follow) {
						t.Fatalf("step %d (PTS %v after %v): Wall %v, want %v (the previous %v plus %v): within %v of the local clock %v, no reason to re-anchor",
							i, pts, prevPTS, wall, follow, prevWall, pts-prevPTS, maxWallDrift, local)
					}
				} else if !wall.Equal(local) {
					t.Fatalf("step %d (PTS %v after %v): Wall %v; the camera's timestamps put it at %v, %v from the local clock %v: want it re-anchored to the local time",
						i, pts, prevPTS, wall, follow, follow.Sub(local), local)
				}
			}
			prevWall, prevPTS = wall, pts
		}
	})
}
