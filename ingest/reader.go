package ingest

import (
	"context"
	"errors"
	"sync/atomic"
)

// ErrReaderClosed is returned by Read after Close.
var ErrReaderClosed = errors.New("reader closed")

// maxReaderBytes bounds the payload bytes queued for one Reader, whatever its queue
// length in units. Units are at most 8 MiB, so a deep queue (the recorder's 2048) could
// otherwise pin 16 GiB for one camera sending huge frames. 64 MiB is about 30 s of a
// 16 Mbit/s main stream and longer for any ordinary one, so an honest camera reaches the
// unit bound first; since Readers share the units, it also bounds what one camera's
// backlog can pin, however many consumers it has.
const maxReaderBytes = 64 << 20

// delivery is one queued unit and whether units were dropped just before it.
type delivery struct {
	unit *Unit
	gap  bool
	size int64 // unit.Size(), taken off queuedBytes when the unit is read
}

// Reader is one consumer's view of a Stream: a bounded queue of the Stream's units. Read
// from one goroutine; Close may be called from any.
type Reader struct {
	Consumer string

	stream *Stream
	queue  chan delivery
	drops  *atomic.Uint64 // the Hub's cumulative counter for this camera and consumer
	own    atomic.Uint64  // drops of this Reader alone
	// queuedBytes is the payload bytes in queue: added by offer, taken off by the reads.
	queuedBytes atomic.Int64

	// Guarded by stream.mu (offer runs under it).
	waitingKey bool // skip units until the next keyframe
	gapPending bool // the next delivered unit follows dropped units
	closed     bool

	userClosed atomic.Bool
}

// offer queues u or drops it; called by Stream.Publish with stream.mu held.
func (r *Reader) offer(u *Unit) {
	if r.waitingKey {
		// Resume only on a unit a decoder can start from: a video keyframe, or any audio
		// unit when the stream has no video.
		if !u.Key || (r.stream.hasVideo && u.Track.Kind != KindVideo) {
			if r.gapPending {
				r.countDrop()
			}
			return
		}
	}
	size := int64(u.Size())
	// The byte bound counts a backlog: a unit on its own always fits, however large.
	if q := r.queuedBytes.Load(); q == 0 || q+size <= maxReaderBytes {
		r.queuedBytes.Add(size) // before the send, so that a read never takes it below zero
		select {
		case r.queue <- delivery{unit: u, gap: r.gapPending, size: size}:
			r.waitingKey = false
			r.gapPending = false
			return
		default:
			r.queuedBytes.Add(-size)
		}
	}
	// Queue full, in units or in bytes: this consumer is too slow. Drop for it alone and
	// resync at the next keyframe so it never sees a group of pictures with a hole in it.
	r.countDrop()
	r.waitingKey = true
	r.gapPending = true
}

func (r *Reader) countDrop() {
	r.own.Add(1)
	r.drops.Add(1)
}

// Read returns the next unit. gap is true when units were dropped for this Reader just
// before it (the unit is then a keyframe where the Reader resynchronised). Read returns an
// error wrapping ErrStreamEnded once the Stream has ended and the queue is drained,
// ErrReaderClosed after Close, or ctx.Err().
func (r *Reader) Read(ctx context.Context) (u *Unit, gap bool, err error) {
	if r.userClosed.Load() {
		return nil, false, ErrReaderClosed
	}
	select {
	case d, ok := <-r.queue:
		if !ok {
			if r.userClosed.Load() {
				return nil, false, ErrReaderClosed
			}
			return nil, false, r.stream.endError()
		}
		r.queuedBytes.Add(-d.size)
		return d.unit, d.gap, nil
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}

// TryRead returns the next queued unit without waiting; ok is false when the queue is
// empty, the Stream has ended or the Reader is closed. A consumer that is stopping drains
// its queue with it, so that units already received are not thrown away.
func (r *Reader) TryRead() (u *Unit, gap bool, ok bool) {
	if r.userClosed.Load() {
		return nil, false, false
	}
	select {
	case d, open := <-r.queue:
		if !open {
			return nil, false, false
		}
		r.queuedBytes.Add(-d.size)
		return d.unit, d.gap, true
	default:
		return nil, false, false
	}
}

// Dropped returns how many units this Reader has dropped.
func (r *Reader) Dropped() uint64 { return r.own.Load() }

// Stream returns the Stream the Reader reads.
func (r *Reader) Stream() *Stream { return r.stream }

// Close detaches the Reader from its Stream. Units still queued are discarded.
func (r *Reader) Close() {
	r.userClosed.Store(true)
	r.stream.detach(r)
}
