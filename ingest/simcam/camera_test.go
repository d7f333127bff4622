package simcam

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/pion/rtp"
)

// sentFrame is one access unit as a camera wrote it, reassembled.
type sentFrame struct {
	ts                uint32
	ntp               time.Time // as passed to the writer
	at                time.Time // clock when its last packet was written
	firstSeq, lastSeq uint16
	nalus             [][]byte
}

// frameRecorder is a packetWriter that depacketizes what a camera writes.
type frameRecorder struct {
	dec *rtph264.Decoder

	mu       sync.Mutex
	frames   []sentFrame
	firstSeq uint16
	inFrame  bool
	// stall, if set, is called before each packet is recorded.
	stall func(pkt *rtp.Packet)
}

func newFrameRecorder(t *testing.T, c *camera) *frameRecorder {
	t.Helper()
	dec, err := c.forma.CreateDecoder()
	if err != nil {
		t.Fatal(err)
	}
	return &frameRecorder{dec: dec}
}

func (r *frameRecorder) write(pkt *rtp.Packet, ntp time.Time) error {
	if r.stall != nil {
		r.stall(pkt)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.inFrame {
		r.firstSeq, r.inFrame = pkt.SequenceNumber, true
	}
	nalus, err := r.dec.Decode(pkt)
	if errors.Is(err, rtph264.ErrMorePacketsNeeded) {
		return nil
	}
	if err != nil {
		return err
	}
	r.inFrame = false
	r.frames = append(r.frames, sentFrame{
		ts: pkt.Timestamp, ntp: ntp, at: time.Now(),
		firstSeq: r.firstSeq, lastSeq: pkt.SequenceNumber, nalus: nalus,
	})
	return nil
}

func (r *frameRecorder) sent() []sentFrame {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.frames)
}

// runCamera runs c in the current synctest bubble until the returned stop
// is called; stop (idempotent) fails the test if run returned an error.
func runCamera(t *testing.T, c *camera, w packetWriter) (start time.Time, stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	start = time.Now()
	go func() { done <- c.run(ctx, start, w) }()
	return start, sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
}

// checkFrame asserts that f is frame n of c's schedule: content, RTP
// timestamp and NTP time all follow from n alone (and the frame rate: n*3600
// ticks and n*40 ms at 25 fps; rounded down at rates that do not divide
// 90000 or a second).
func checkFrame(t *testing.T, c *camera, start time.Time, n uint64, f sentFrame) {
	t.Helper()
	fps := uint64(c.spec.FPS)
	if want := c.spec.RTPTimestampStart + uint32(n*rtpClockRate/fps); f.ts != want {
		t.Errorf("frame %d: ts = %d, want %d", n, f.ts, want)
	}
	if want := start.Add(time.Duration(n * uint64(time.Second) / fps)); !f.ntp.Equal(want) {
		t.Errorf("frame %d: ntp = %v after start, want %v", n, f.ntp.Sub(start), want.Sub(start))
	}
	if k := (n + c.first) % uint64(len(c.frames)); !slices.EqualFunc(f.nalus, c.frames[k].nalus, bytes.Equal) {
		t.Errorf("frame %d: content differs from clip frame %d", n, k)
	}
}

// checkSeq asserts that frames were sent with no gap in sequence numbers.
func checkSeq(t *testing.T, frames []sentFrame) {
	t.Helper()
	for i := 1; i < len(frames); i++ {
		if frames[i].firstSeq != frames[i-1].lastSeq+1 {
			t.Errorf("sent frame %d: first seq %d after %d", i, frames[i].firstSeq, frames[i-1].lastSeq)
		}
	}
}

// shortLoop is a 3 s loop of the motion clip: IDRs at loop frames 0 and 50.
func shortLoop(t *testing.T, spec CameraSpec) *camera {
	c := newCamera(spec, loadTestClip(t, ClipMotion))
	c.frames = c.frames[:75]
	return c
}

func TestCameraSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Timestamps wrap at frame 30, sequence numbers within the first
		// second, the loop restarts at frames 75 and 150.
		c := shortLoop(t, CameraSpec{Path: "cam", RTPTimestampStart: 1<<32 - 30*rtpTicksPerFrame, SequenceStart: 65500})
		rec := newFrameRecorder(t, c)
		start, stop := runCamera(t, c, rec.write)
		time.Sleep(8*time.Second + frameInterval/2)
		stop()

		frames := rec.sent()
		if len(frames) != 201 {
			t.Fatalf("sent %d frames in 8.02 s, want 201 (frames 0..200)", len(frames))
		}
		for i, f := range frames {
			checkFrame(t, c, start, uint64(i), f)
			if !f.at.Equal(f.ntp) {
				t.Errorf("frame %d written %v late", i, f.at.Sub(f.ntp))
			}
		}
		checkSeq(t, frames)
		if frames[0].firstSeq != 65500 || frames[30].ts != 0 {
			t.Errorf("first seq %d, ts of frame 30 %d; want 65500 and 0 (wrapped)", frames[0].firstSeq, frames[30].ts)
		}
		if frames[len(frames)-1].lastSeq > 1000 {
			t.Errorf("last seq %d: sequence numbers did not wrap", frames[len(frames)-1].lastSeq)
		}
	})
}

// A camera with LoopStart sends the clip from there, wrapping to the clip's start at the
// end of the loop, on the same schedule and RTP timestamps as from the clip's start.
func TestCameraLoopStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := shortLoop(t, CameraSpec{Path: "cam", RTPTimestampStart: 1000, SequenceStart: 7, LoopStart: 2 * time.Second})
		if c.first != 50 || !c.frames[50].keyframe {
			t.Fatalf("first loop frame %d (keyframe %v), want keyframe 50 (2 s at 25 fps)", c.first, c.frames[c.first].keyframe)
		}
		rec := newFrameRecorder(t, c)
		start, stop := runCamera(t, c, rec.write)
		time.Sleep(2*time.Second + frameInterval/2) // frames 0..50: loop frames 50..74, then 0..25
		stop()

		frames := rec.sent()
		if len(frames) != 51 {
			t.Fatalf("sent %d frames in 2.02 s, want 51", len(frames))
		}
		for i, f := range frames {
			checkFrame(t, c, start, uint64(i), f)
		}
		checkSeq(t, frames)
	})
}

func TestCameraFreezeResumesOnKeyframe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := shortLoop(t, CameraSpec{Path: "cam", RTPTimestampStart: 1000, SequenceStart: 7})
		rec := newFrameRecorder(t, c)
		start, stop := runCamera(t, c, rec.write)
		defer stop()

		time.Sleep(time.Second + frameInterval/2) // frames 0..25 sent
		c.frozen.Store(true)
		time.Sleep(2 * time.Second) // until 3.02 s: frames 26..75 due, none sent
		if got := len(rec.sent()); got != 26 {
			t.Fatalf("sent %d frames by the end of the freeze, want 26", got)
		}
		c.frozen.Store(false)
		// The next keyframe due after 3.02 s is frame 125 (loop frame 50) at 5 s.
		time.Sleep(3 * time.Second) // until 6.02 s: frames 125..150
		stop()

		frames := rec.sent()
		if len(frames) != 26+26 {
			t.Fatalf("sent %d frames, want 26 before and 26 after the freeze", len(frames))
		}
		for i, f := range frames {
			n := uint64(i)
			if i >= 26 {
				n = uint64(125 + i - 26)
			}
			checkFrame(t, c, start, n, f)
		}
		// Resumed on an IDR, with the media clock having run on and no
		// sequence gap reported to readers.
		if !c.frames[125%75].keyframe {
			t.Error("resumed on a non-keyframe")
		}
		checkSeq(t, frames)
	})
}

func TestCameraLateSkipsToKeyframe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := shortLoop(t, CameraSpec{Path: "cam", RTPTimestampStart: 1, SequenceStart: 1})
		rec := newFrameRecorder(t, c)
		// The write of frame 10 stalls for 3 s, as if the host were suspended.
		stalled := false
		rec.stall = func(pkt *rtp.Packet) {
			if pkt.Timestamp == 1+10*rtpTicksPerFrame && !stalled {
				stalled = true
				time.Sleep(3 * time.Second)
			}
		}
		start, stop := runCamera(t, c, rec.write)
		time.Sleep(5 * time.Second)
		stop()

		frames := rec.sent()
		// Frames 11..74 are more than maxLateness late or not keyframes;
		// frame 75 (loop frame 0, due 3 s) is the first keyframe within
		// maxLateness of 3.4 s. From there the camera catches up.
		want := slices.Concat(seq(0, 10), seq(75, 125))
		if len(frames) != len(want) {
			t.Fatalf("sent %d frames, want %d (0..10, 75..125)", len(frames), len(want))
		}
		for i, f := range frames {
			checkFrame(t, c, start, want[i], f)
			if late := f.at.Sub(f.ntp); want[i] != 10 && late > maxLateness {
				t.Errorf("frame %d sent %v late", want[i], late)
			}
		}
		checkSeq(t, frames)
	})
}

// seq returns from, from+1, ..., to.
func seq(from, to uint64) []uint64 {
	var s []uint64
	for n := from; n <= to; n++ {
		s = append(s, n)
	}
	return s
}
