package live

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

const (
	// maxGOPPackets bounds the GOP cache: about 4.9 MB of payload, 10 s of a 4 Mbit/s
	// stream. A camera with a longer GOP gets no cache; its new viewers wait for the next
	// keyframe instead of the server holding unbounded memory per camera.
	maxGOPPackets = 4096
	// videoQueue is a viewer's backlog in frames (2.5 s at 25 fps) before it drops to the
	// next keyframe; deeper would only show a slow viewer ever older video.
	videoQueue = 64
	// audioQueue is a viewer's audio backlog in packets (2.5 s of 20 ms Opus).
	audioQueue = 128
	// rampTicks spaces the cached frames of the catch-up burst 1 ms apart (90 kHz clock),
	// so the browser decodes them at once and shows the newest straight away.
	rampTicks = 90
	// catchUpRate paces the GOP-cache burst, in bytes per second (32 Mbit/s): the
	// keyframe goes out at once, and the rest of a 2 s GOP of a 4 Mbit/s camera follows
	// in a quarter of a second, slow enough for a browser's socket buffer to keep up.
	catchUpRate = 4 << 20
	// srtpPoll is how often a new viewer's writer retries until its SRTP session is up:
	// pion reports "connected" a moment before, and silently drops writes until then.
	srtpPoll = 5 * time.Millisecond
)

// frame is one access unit (video) or one audio packet, packetized once and shared by
// pointer with every viewer. Read-only once published.
type frame struct {
	ts   uint32 // on the feed's timeline, in the track's clock rate
	key  bool   // video keyframe with parameter sets; always true for audio
	pkts []*rtp.Packet
}

// sharedTrack is one camera stream's media track shared by all its viewers: a
// webrtc.TrackLocal that pion binds once per PeerConnection. Each binding keeps its own
// SSRC, payload type, sequence numbers, timestamp offset, queue and writer goroutine.
type sharedTrack struct {
	mime      string
	clockRate uint32
	id        string
	streamID  string
	ctx       context.Context // the feed's: writers stop when it ends
	wg        *sync.WaitGroup // the Manager's: owns the writers

	mu         sync.Mutex
	bound      map[string]*binding // negotiated, not yet connected; by TrackLocalContext.ID
	active     []*binding
	gop        []*frame // video: frames since the latest keyframe; nil when not cacheable
	gopPackets int
}

func newSharedTrack(ctx context.Context, wg *sync.WaitGroup, mime string, clockRate uint32, id, streamID string) *sharedTrack {
	return &sharedTrack{mime: mime, clockRate: clockRate, id: id, streamID: streamID, ctx: ctx, wg: wg,
		bound: make(map[string]*binding)}
}

func (t *sharedTrack) isVideo() bool { return strings.HasPrefix(t.mime, "video/") }

// ID, RID, StreamID and Kind implement webrtc.TrackLocal.
func (t *sharedTrack) ID() string       { return t.id }
func (t *sharedTrack) RID() string      { return "" }
func (t *sharedTrack) StreamID() string { return t.streamID }
func (t *sharedTrack) Kind() webrtc.RTPCodecType {
	if t.isVideo() {
		return webrtc.RTPCodecTypeVideo
	}
	return webrtc.RTPCodecTypeAudio
}

// Bind is called by pion when a PeerConnection has negotiated the track. The binding
// receives nothing until its session is connected (start): writes before SRTP is up are
// lost.
func (t *sharedTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	codec, ok := pickCodec(t.mime, ctx.CodecParameters())
	if !ok {
		return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
	}
	qlen := audioQueue
	if t.isVideo() {
		qlen = videoQueue
	}
	b := &binding{t: t, id: ctx.ID(), ssrc: uint32(ctx.SSRC()), pt: uint8(codec.PayloadType), ws: ctx.WriteStream(),
		queue: make(chan *frame, qlen), done: make(chan struct{})}
	t.mu.Lock()
	t.bound[b.id] = b
	t.mu.Unlock()
	return codec, nil
}

// Unbind is called by pion when the sender stops (the session closes). A binding the
// session already closed is not an error: pion would then skip closing the sender's SRTP
// streams.
func (t *sharedTrack) Unbind(ctx webrtc.TrackLocalContext) error {
	t.mu.Lock()
	b := t.bound[ctx.ID()]
	if b == nil {
		for _, x := range t.active {
			if x.id == ctx.ID() {
				b = x
			}
		}
	}
	t.mu.Unlock()
	if b != nil {
		b.close()
	}
	return nil
}

// start begins sending to the binding with the given SSRC: the cached GOP at once, then
// live frames. It returns nil if no such binding is waiting.
func (t *sharedTrack) start(ssrc uint32, sess, cam *counters) *binding {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b *binding
	for _, x := range t.bound {
		if x.ssrc == ssrc {
			b = x
		}
	}
	if b == nil {
		return nil
	}
	delete(t.bound, b.id)
	b.sess, b.cam = sess, cam
	// Snapshot and registration under one lock: the viewer gets every frame after the
	// snapshot exactly once. The snapshot's length is fixed; later appends to t.gop write
	// beyond it.
	snapshot := t.gop[:len(t.gop):len(t.gop)]
	b.waitingKey = t.isVideo() && len(snapshot) == 0
	t.active = append(t.active, b)
	t.wg.Go(func() { b.run(snapshot) })
	return b
}

// publish hands f to every connected viewer and updates the GOP cache. It never blocks.
func (t *sharedTrack) publish(f *frame) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.isVideo() {
		switch {
		case f.key:
			// A new slice, not a reuse of the old array: snapshots still being sent share it.
			t.gop, t.gopPackets = []*frame{f}, len(f.pkts)
		case t.gop != nil && t.gopPackets+len(f.pkts) <= maxGOPPackets:
			t.gop = append(t.gop, f)
			t.gopPackets += len(f.pkts)
		default:
			t.gop, t.gopPackets = nil, 0
		}
	}
	for _, b := range t.active {
		b.offer(f)
	}
}

// streamEnded forgets the cache: a camera's next stream starts with a keyframe, and
// frames of the old one must not reach a new viewer as if they were current.
func (t *sharedTrack) streamEnded() {
	t.mu.Lock()
	t.gop, t.gopPackets = nil, 0
	t.mu.Unlock()
}

// viewers returns the number of bindings, waiting or active (tests check none leak).
func (t *sharedTrack) viewers() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.bound) + len(t.active)
}

// binding is one viewer's end of a sharedTrack.
type binding struct {
	t    *sharedTrack
	id   string
	ssrc uint32
	pt   uint8
	ws   webrtc.TrackLocalWriter

	queue     chan *frame
	done      chan struct{}
	closeOnce sync.Once
	sess, cam *counters

	// Guarded by t.mu.
	waitingKey bool // skip video until the next keyframe
	dropping   bool // frames were dropped since the last one queued
}

// offer queues f or drops it for this viewer alone; called with t.mu held.
func (b *binding) offer(f *frame) {
	if b.waitingKey && !f.key {
		if b.dropping {
			b.countDrop(len(f.pkts))
		}
		return
	}
	select {
	case b.queue <- f:
		b.waitingKey, b.dropping = false, false
	default:
		// This viewer cannot keep up. Drop the frame and, for video, everything up to the
		// next keyframe: a decoder fed a group of pictures with a hole shows garbage.
		b.countDrop(len(f.pkts))
		b.waitingKey = b.t.isVideo()
		b.dropping = true
	}
}

func (b *binding) countDrop(n int) {
	b.sess.dropped.Add(uint64(n))
	b.cam.dropped.Add(uint64(n))
}

// close stops the writer and detaches the binding. Safe to call more than once.
func (b *binding) close() {
	b.closeOnce.Do(func() {
		close(b.done)
		t := b.t
		t.mu.Lock()
		delete(t.bound, b.id)
		for i, x := range t.active {
			if x == b {
				t.active = append(t.active[:i], t.active[i+1:]...)
				break
			}
		}
		t.mu.Unlock()
	})
}

// run is the viewer's writer: the cached frames squeezed onto a short timestamp ramp, then
// live frames at their own spacing, continuing from the ramp's end.
func (b *binding) run(snapshot []*frame) {
	w := writer{b: b, seq: uint16(randUint32())}
	var offset uint32
	started := false
	if n := len(snapshot); n > 0 {
		base := randUint32()
		began, sent := time.Now(), 0
		for i, f := range snapshot {
			if !w.write(f, base+uint32(i)*rampTicks) {
				return
			}
			// Paced after the keyframe: a whole GOP at once (a megabyte at 4 Mbit/s)
			// overflows a viewer's UDP receive buffer and loses packets mid-picture.
			for _, p := range f.pkts {
				sent += len(p.Payload)
			}
			if wait := time.Duration(float64(sent)/catchUpRate*float64(time.Second)) - time.Since(began); wait > 0 {
				select {
				case <-b.done:
					return
				case <-b.t.ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}
		offset = base + uint32(n-1)*rampTicks - snapshot[n-1].ts
		started = true
	}
	for {
		select {
		case <-b.done:
			return
		case <-b.t.ctx.Done():
			return
		case f := <-b.queue:
			if !started {
				offset, started = randUint32()-f.ts, true
			}
			if !w.write(f, f.ts+offset) {
				return
			}
		}
	}
}

// writer sends one viewer's packets.
type writer struct {
	b      *binding
	seq    uint16
	srtpUp bool
}

// write sends f's packets with timestamp ts; false when the viewer is gone.
func (w *writer) write(f *frame, ts uint32) bool {
	b := w.b
	for _, p := range f.pkts {
		// A new header for every packet, never one reused: the NACK history keeps a
		// reference to it (and to p.Payload) to send the packet again (newAPI).
		hdr := &rtp.Header{Version: 2, Marker: p.Marker, PayloadType: b.pt, SequenceNumber: w.seq, Timestamp: ts, SSRC: b.ssrc}
		n, err := b.ws.WriteRTP(hdr, p.Payload)
		for n == 0 && err == nil && !w.srtpUp {
			select {
			case <-b.done:
				return false
			case <-time.After(srtpPoll):
			}
			n, err = b.ws.WriteRTP(hdr, p.Payload)
		}
		if err != nil {
			// The connection is closed or broken; the session notices through its state.
			// Detach now so the feed stops queueing (and counting drops) for it.
			b.close()
			return false
		}
		w.srtpUp = true
		w.seq++
		sent := uint64(hdr.MarshalSize() + len(p.Payload))
		b.sess.sent.Add(sent)
		b.cam.sent.Add(sent)
	}
	return true
}

func randUint32() uint32 {
	var b [4]byte
	rand.Read(b[:]) // never fails (Go 1.24+: it crashes the program instead)
	return binary.BigEndian.Uint32(b[:])
}
