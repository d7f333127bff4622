package simcam

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
)

// maxLateness is how far behind its schedule a camera may fall before it
// stops catching up and instead skips to the next keyframe that is due.
// One second absorbs scheduler and GC hiccups (even under -race) without
// skipping; beyond that the host was suspended or starved, and bursting
// every missed frame would only flood readers with stale video.
const maxLateness = time.Second

// camera is one simulated camera: a clip looped on a wall-clock schedule.
type camera struct {
	spec   CameraSpec
	frames []accessUnit // one loop; tests may shorten it before Run
	first  uint64       // the loop frame sent first (CameraSpec.LoopStart)
	desc   *description.Session
	forma  *format.H264

	frozen atomic.Bool
}

// newCamera builds the camera for spec from its parsed clip; spec.FPS 0
// means FrameRate.
func newCamera(spec CameraSpec, cd *clipData) *camera {
	spec.FPS = spec.frameRate()
	forma := &format.H264{
		PayloadTyp:        96,
		PacketizationMode: 1,
		SPS:               cd.sps,
		PPS:               cd.pps,
	}
	return &camera{
		spec:   spec,
		frames: cd.frames,
		first:  loopStartFrame(spec),
		forma:  forma,
		desc: &description.Session{
			Medias: []*description.Media{{
				Type:    description.MediaTypeVideo,
				Formats: []format.Format{forma},
			}},
		},
	}
}

// frameRate is the camera's frame rate: spec.FPS, or FrameRate when it is 0.
func (spec CameraSpec) frameRate() int {
	if spec.FPS == 0 {
		return FrameRate
	}
	return spec.FPS
}

// loopStartFrame is the loop frame at spec.LoopStart.
func loopStartFrame(spec CameraSpec) uint64 {
	return uint64(spec.LoopStart * time.Duration(spec.frameRate()) / time.Second)
}

// checkLoopStart says why spec.LoopStart cannot start cd's loop: it must fall on one of
// its frames, and that frame must be a keyframe (a reader could decode nothing before the
// next one).
func checkLoopStart(spec CameraSpec, cd *clipData) error {
	if spec.LoopStart == 0 {
		return nil
	}
	k := loopStartFrame(spec)
	switch {
	case spec.LoopStart < 0:
		return fmt.Errorf("%v is negative", spec.LoopStart)
	case k >= uint64(len(cd.frames)):
		return fmt.Errorf("%v is past the end of the %d-frame loop", spec.LoopStart, len(cd.frames))
	case (spec.LoopStart*time.Duration(spec.frameRate()))%time.Second != 0:
		return fmt.Errorf("%v is not the time of a frame at %d fps", spec.LoopStart, spec.frameRate())
	case !cd.frames[k].keyframe:
		return fmt.Errorf("%v (frame %d) is not a keyframe", spec.LoopStart, k)
	}
	return nil
}

// media is the camera's only media, as passed to ServerStream writes.
func (c *camera) media() *description.Media { return c.desc.Medias[0] }

// frameTime is when frame n is due after the start. It is computed from n,
// not accumulated, so due times never drift, whatever the rate (no
// overflow for centuries of frames).
func (c *camera) frameTime(n uint64) time.Duration {
	return time.Duration(n * uint64(time.Second) / uint64(c.spec.FPS))
}

// rtpOffset is frame n's RTP timestamp minus RTPTimestampStart: n*3600 at
// 25 fps. The uint32 conversion wraps exactly as RTP timestamps must.
func (c *camera) rtpOffset(n uint64) uint32 {
	if c.spec.TicksPerFrame > 0 {
		return uint32(n * uint64(c.spec.TicksPerFrame))
	}
	return uint32(n * rtpClockRate / uint64(c.spec.FPS))
}

// packetWriter sends one RTP packet stamped with its capture time;
// in production it is ServerStream.WritePacketRTPWithNTP for c.media().
type packetWriter func(pkt *rtp.Packet, ntp time.Time) error

// run sends the clip in a loop until ctx is done. Frame n (counted from
// start, across loops and across freezes) is due at start+n/FPS s and
// carries RTP timestamp RTPTimestampStart+n*90000/FPS (mod 2^32; n*3600 at
// 25 fps), so media time is one linear function of wall time: RTCP sender
// reports, which gortsplib extrapolates from the last packet, stay
// truthful, and due times never accumulate drift. The NTP time of a frame
// is its due time, i.e. the start wall clock plus elapsed monotonic time,
// so a wall-clock step on the host does not bend the RTP/NTP mapping.
//
// Sequence numbers count only packets actually sent, so skipped frames
// (frozen or late) are not reported to receivers as loss: they see a stall
// followed by a timestamp jump, like a camera whose encoder hung. After a
// skip, sending resumes at the next keyframe so that no receiver is ever
// handed a P-frame whose reference it never got.
//
// run returns nil when ctx is done and an error only if packetizing or
// writing fails, which with a valid clip and an open stream cannot happen.
func (c *camera) run(ctx context.Context, start time.Time, write packetWriter) error {
	enc, err := c.forma.CreateEncoder()
	if err != nil {
		return fmt.Errorf("camera %s: rtp encoder: %w", c.spec.Path, err)
	}
	// Packets are numbered here rather than by the encoder (which starts
	// at a random number) so that SequenceStart holds exactly.
	seq := c.spec.SequenceStart
	// Start as after a skip: the first frame sent must be a keyframe.
	// The loop's first frame is one (frame 0, or LoopStart's, which New
	// checks), so this costs nothing.
	resync := true

	for n := uint64(0); ; n++ {
		due := start.Add(c.frameTime(n))
		if wait := time.Until(due); wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		} else if ctx.Err() != nil {
			return nil
		}

		au := c.frames[(n+c.first)%uint64(len(c.frames))]
		skip := c.frozen.Load() || time.Since(due) > maxLateness || (resync && !au.keyframe)
		if c.spec.StopKeyframesAfter > 0 && c.frameTime(n) > c.spec.StopKeyframesAfter {
			// Never another keyframe, and no waiting for one after a skip either.
			skip = c.frozen.Load() || time.Since(due) > maxLateness || au.keyframe
		}
		resync = skip
		if skip {
			continue
		}

		pkts, err := enc.Encode(au.nalus)
		if err != nil {
			return fmt.Errorf("camera %s: packetize frame %d: %w", c.spec.Path, n, err)
		}
		// uint32 arithmetic wraps exactly as RTP timestamps must.
		ts := c.spec.RTPTimestampStart + c.rtpOffset(n)
		for _, pkt := range pkts {
			pkt.Timestamp = ts
			pkt.SequenceNumber = seq
			seq++
			if err := write(pkt, due); err != nil {
				return fmt.Errorf("camera %s: write: %w", c.spec.Path, err)
			}
		}
	}
}
