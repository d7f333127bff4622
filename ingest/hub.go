package ingest

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// StreamMain and StreamSub name a camera's two streams: the full-resolution one that is
// recorded, and the optional lower-resolution one for the live grid and motion analysis.
const (
	StreamMain = "main"
	StreamSub  = "sub"
)

// streamKey identifies one stream of one camera in the Hub.
type streamKey struct {
	camera string
	stream string
}

// dropKey identifies the drop counter of one consumer on one camera.
type dropKey struct {
	camera   string
	consumer string
}

// Hub is the meeting point between Sources and consumers. It holds each camera stream's
// current Stream and outlives reconnects: consumers wait on the Hub, not on a Stream. Drop
// counters live here too, so they survive reconnects. Safe for concurrent use.
type Hub struct {
	mu      sync.Mutex
	live    map[streamKey]*Stream
	waiters map[streamKey]chan struct{} // closed when a Stream starts under the key
	drops   map[dropKey]*atomic.Uint64
}

// NewHub returns an empty Hub.
func NewHub() *Hub {
	return &Hub{
		live:    make(map[streamKey]*Stream),
		waiters: make(map[streamKey]chan struct{}),
		drops:   make(map[dropKey]*atomic.Uint64),
	}
}

// Start begins a new Stream for a camera stream and wakes everyone waiting for it. It is
// called by the Source when a session starts delivering media. Any Stream still live under
// the same key is ended first (a Source never runs two sessions at once, so that is only a
// safety net).
func (h *Hub) Start(camera, stream string, tracks []*Track) *Stream {
	st := &Stream{
		Camera:  camera,
		Name:    stream,
		Tracks:  tracks,
		Started: time.Now(),
		hub:     h,
	}
	for _, t := range tracks {
		if t.Kind == KindVideo {
			st.hasVideo = true
		}
	}
	k := streamKey{camera, stream}
	h.mu.Lock()
	old := h.live[k]
	h.live[k] = st
	if ch, ok := h.waiters[k]; ok {
		close(ch)
		delete(h.waiters, k)
	}
	h.mu.Unlock()
	if old != nil {
		old.End(nil)
	}
	return st
}

// Current returns the live Stream of a camera stream, or nil when none is live.
func (h *Hub) Current(camera, stream string) *Stream {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.live[streamKey{camera, stream}]
}

// Wait returns the live Stream of a camera stream, waiting for one to start if none is
// live. It returns ctx.Err() when ctx is done first.
func (h *Hub) Wait(ctx context.Context, camera, stream string) (*Stream, error) {
	k := streamKey{camera, stream}
	for {
		h.mu.Lock()
		if st := h.live[k]; st != nil {
			h.mu.Unlock()
			return st, nil
		}
		ch, ok := h.waiters[k]
		if !ok {
			ch = make(chan struct{})
			h.waiters[k] = ch
		}
		h.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// ended removes st from the live set if it is still the current Stream under its key.
func (h *Hub) ended(st *Stream) {
	k := streamKey{st.Camera, st.Name}
	h.mu.Lock()
	if h.live[k] == st {
		delete(h.live, k)
	}
	h.mu.Unlock()
}

// dropCounter returns the cumulative drop counter of a consumer on a camera.
func (h *Hub) dropCounter(camera, consumer string) *atomic.Uint64 {
	k := dropKey{camera, consumer}
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.drops[k]
	if !ok {
		c = new(atomic.Uint64)
		h.drops[k] = c
	}
	return c
}

// DropCount is the number of units one consumer has dropped on one camera since the Hub
// was created, over all of the camera's streams and sessions.
type DropCount struct {
	Camera   string
	Consumer string
	Units    uint64
}

// DropCounts returns every consumer's drop count, sorted by camera and consumer. Consumers
// appear once they have opened a Reader, with zero until they drop.
func (h *Hub) DropCounts() []DropCount {
	h.mu.Lock()
	out := make([]DropCount, 0, len(h.drops))
	for k, c := range h.drops {
		out = append(out, DropCount{Camera: k.camera, Consumer: k.consumer, Units: c.Load()})
	}
	h.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Camera != out[j].Camera {
			return out[i].Camera < out[j].Camera
		}
		return out[i].Consumer < out[j].Consumer
	})
	return out
}
