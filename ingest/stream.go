package ingest

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrStreamEnded is returned by Reader.Read once the Stream's session has ended and the
// Reader's queue is drained. The consumer should wait on the Hub for the next Stream.
var ErrStreamEnded = errors.New("stream ended")

// Stream is one RTSP session's media for one camera stream. Its Tracks are fixed for its
// lifetime; a reconnect makes a new Stream.
type Stream struct {
	Camera  string    // camera id
	Name    string    // StreamMain or StreamSub
	Tracks  []*Track  // as negotiated in the session's SDP
	Started time.Time // when the session started delivering media

	hub      *Hub
	hasVideo bool

	mu       sync.Mutex
	readers  []*Reader
	ended    bool
	endErr   error
	gop      []*Unit // units since the latest video keyframe; nil when none or too large
	gopBytes int
}

// The latest group of pictures is kept so that a consumer that starts now (a dispatcher
// opening a camera) can begin at once instead of waiting up to a GOP for the next
// keyframe. It holds pointers to units already published, so it costs at most one GOP's
// memory per stream for a little longer than the readers' queues would. A GOP beyond
// these bounds is not cached (such a consumer waits for the next keyframe instead): a
// camera with a 10 s GOP at 16 Mbit/s would otherwise pin 20 MB per stream.
const (
	maxGOPUnits = 1024    // 40 s at 25 fps with audio
	maxGOPBytes = 8 << 20 // a 4 s GOP at 16 Mbit/s
)

// Video returns the stream's video track, or nil if it has none.
func (s *Stream) Video() *Track {
	for _, t := range s.Tracks {
		if t.Kind == KindVideo {
			return t
		}
	}
	return nil
}

// Publish hands u to every Reader. It never blocks: a Reader whose queue is full drops u
// and resynchronises at the next keyframe (see the package documentation). Publish may be
// called from several goroutines (gortsplib reads UDP tracks on separate goroutines); each
// track's units must be published in order. Publishing to an ended Stream does nothing.
func (s *Stream) Publish(u *Unit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	s.cacheGOP(u)
	for _, r := range s.readers {
		r.offer(u)
	}
}

// cacheGOP keeps u in the latest group of pictures; called with s.mu held.
func (s *Stream) cacheGOP(u *Unit) {
	if !s.hasVideo {
		return
	}
	switch {
	case u.Key && u.Track.Kind == KindVideo:
		// A new slice: readers being filled from the old one are not disturbed.
		s.gop, s.gopBytes = []*Unit{u}, u.Size()
	case s.gop != nil && len(s.gop) < maxGOPUnits && s.gopBytes+u.Size() <= maxGOPBytes:
		s.gop = append(s.gop, u)
		s.gopBytes += u.Size()
	default:
		s.gop, s.gopBytes = nil, 0
	}
}

// End ends the Stream: Readers return ErrStreamEnded after draining their queues, and the
// Hub forgets the Stream. cause, if not nil, is wrapped into the error Readers return.
// Safe to call more than once.
func (s *Stream) End(cause error) {
	// Leave the Hub first: a consumer woken by its closed queue must not get this ended
	// Stream back from Hub.Wait and spin on it.
	s.hub.ended(s)
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	s.endErr = ErrStreamEnded
	if cause != nil {
		s.endErr = fmt.Errorf("%w: %w", ErrStreamEnded, cause)
	}
	for _, r := range s.readers {
		close(r.queue)
	}
	s.readers = nil
	s.mu.Unlock()
}

// NewReader attaches a consumer to the Stream with a queue of queueLen units. consumer
// names it in drop counts and metrics ("recorder", "motion", "viewer"). The Reader starts
// at the next keyframe. The caller must Close it.
func (s *Stream) NewReader(consumer string, queueLen int) *Reader {
	return s.newReader(consumer, queueLen, false)
}

// NewReaderFromLatestKeyframe is NewReader for a consumer that wants to start at once:
// its queue begins with the latest keyframe and every unit published since, then
// continues live, with nothing missed or repeated in between. When that group of
// pictures is not cached (none yet, too large) or does not fit in queueLen, the Reader
// starts at the next keyframe as with NewReader. The live view uses it so that a
// dispatcher sees a picture without waiting for the camera's next keyframe.
func (s *Stream) NewReaderFromLatestKeyframe(consumer string, queueLen int) *Reader {
	return s.newReader(consumer, queueLen, true)
}

func (s *Stream) newReader(consumer string, queueLen int, fromLatestKey bool) *Reader {
	if queueLen < 1 {
		queueLen = 1
	}
	r := &Reader{
		stream:     s,
		Consumer:   consumer,
		queue:      make(chan delivery, queueLen),
		waitingKey: true,
		drops:      s.hub.dropCounter(s.Camera, consumer),
	}
	s.mu.Lock()
	if s.ended {
		close(r.queue)
		r.closed = true
	} else {
		if fromLatestKey && len(s.gop) > 0 && len(s.gop) <= queueLen {
			// Under s.mu: no unit can be published between the cached ones and the
			// Reader's registration, so it sees each unit exactly once.
			for _, u := range s.gop { // at most maxGOPBytes, well under maxReaderBytes
				size := int64(u.Size())
				r.queuedBytes.Add(size)
				r.queue <- delivery{unit: u, size: size}
			}
			r.waitingKey = false
		}
		s.readers = append(s.readers, r)
	}
	s.mu.Unlock()
	return r
}

// Readers returns how many Readers are attached now. A consumer that left without its
// Reader being detached would be offered every unit for the rest of the session, so the
// tests of the consumers (the live view, motion) check that they leave it as they found it.
func (s *Stream) Readers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.readers)
}

// detach removes r from the Stream's readers and closes its queue.
func (s *Stream) detach(r *Reader) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.closed {
		return
	}
	r.closed = true
	for i, x := range s.readers {
		if x == r {
			s.readers = append(s.readers[:i], s.readers[i+1:]...)
			break
		}
	}
	if !s.ended {
		close(r.queue)
	}
}

// endError returns the error Readers report once the queue is drained.
func (s *Stream) endError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.endErr != nil {
		return s.endErr
	}
	return ErrStreamEnded
}
