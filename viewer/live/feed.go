package live

import (
	"context"
	"fmt"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/ingest/supervise"
)

const (
	// consumerName names the feed's Hub reader in drop counts and metrics.
	consumerName = "live"
	// feedQueue is the feed's Hub reader queue in units. Packetizing takes microseconds
	// per unit, so live it only absorbs scheduling hiccups; it is as deep as it is so that
	// the Stream's cached group of pictures (up to 10 s at 25 fps with audio) fits in it
	// when the first viewer opens the feed. The queue holds pointers only.
	feedQueue = 512
	// maxPayload keeps RTP packets under typical path MTUs once SRTP, UDP, IP and a TURN
	// or VPN header are added (WebRTC stacks use about 1200).
	maxPayload = 1200
)

// feed is one camera stream's live media: one Hub reader while anyone watches, its units
// packetized once into the shared tracks.
type feed struct {
	m      *Manager
	key    streamKey
	ctx    context.Context
	cancel context.CancelFunc
	epoch  time.Time // origin of the feed's RTP timelines

	video *sharedTrack
	audio *sharedTrack // nil when the camera's audio is off or not WebRTC-capable

	viewers int // guarded by m.mu
	// ending is set (under m.mu) once the feed has ended its sessions for a codec change:
	// it publishes nothing more, so admit must not add a viewer to it (an offer checked
	// against the camera's old Stream can arrive after that).
	ending bool
}

// audioTrack returns the stream's first audio track WebRTC can carry, or nil.
func audioTrack(st *ingest.Stream) *ingest.Track {
	for _, t := range st.Tracks {
		if t.Kind == ingest.KindAudio && mimeFor(t) != "" {
			return t
		}
	}
	return nil
}

func newFeed(m *Manager, key streamKey, st *ingest.Stream, audio bool) (*feed, error) {
	v := st.Video()
	if v == nil {
		return nil, fmt.Errorf("camera %s stream %s has no video", key.camera, key.stream)
	}
	vmime := mimeFor(v)
	if vmime == "" {
		return nil, fmt.Errorf("camera %s stream %s sends %s video, which WebRTC cannot carry", key.camera, key.stream, v.Codec)
	}
	ctx, cancel := context.WithCancel(m.runCtx)
	streamID := "townwatch-" + key.camera + "-" + key.stream
	f := &feed{m: m, key: key, ctx: ctx, cancel: cancel, epoch: time.Now(),
		video: newSharedTrack(ctx, &m.wg, vmime, 90000, "video", streamID)}
	if a := audioTrack(st); a != nil && audio {
		f.audio = newSharedTrack(ctx, &m.wg, mimeFor(a), uint32(a.ClockRate), "audio", streamID)
	}
	return f, nil
}

// accepts reports whether st can feed the viewers negotiated with this feed's codecs.
func (f *feed) accepts(st *ingest.Stream) bool {
	v := st.Video()
	if v == nil || mimeFor(v) != f.video.mime {
		return false
	}
	if f.audio != nil {
		a := audioTrack(st)
		return a != nil && mimeFor(a) == f.audio.mime
	}
	return true
}

// run follows the camera stream across reconnects until the last viewer leaves.
func (f *feed) run() {
	// Hub.Wait returns a live Stream even when ctx is done, hence the explicit check.
	for f.ctx.Err() == nil {
		st, err := f.m.hub.Wait(f.ctx, f.key.camera, f.key.stream)
		if err != nil {
			return
		}
		if !f.accepts(st) {
			f.m.log.Info("live: camera changed codecs, ending its sessions", "camera", f.key.camera, "stream", f.key.stream)
			f.m.stopFeedSessions(f, "camera changed codecs")
			<-f.ctx.Done()
			return
		}
		// A fault in packetizing one camera ends that camera's live views (the browsers
		// reconnect to a fresh feed) instead of the process and every recording with it.
		if err := supervise.Call(func() { f.consume(st) }); err != nil {
			f.m.log.Error("live: feed failed; ending its sessions", "camera", f.key.camera, "stream", f.key.stream, "err", err)
			f.m.stopFeedSessions(f, "internal error in the live feed")
			<-f.ctx.Done()
			return
		}
		f.video.streamEnded()
	}
}

// consume reads one Stream until it ends or the feed stops.
func (f *feed) consume(st *ingest.Stream) {
	// The first viewer of a feed starts from the Stream's latest keyframe, so the picture
	// appears at once instead of after the camera's next keyframe (up to a GOP later).
	r := st.NewReaderFromLatestKeyframe(consumerName, feedQueue)
	defer r.Close()
	vt := st.Video()
	var at *ingest.Track
	if f.audio != nil {
		at = audioTrack(st)
	}
	pack, err := newVideoPacketizer(vt.Codec)
	if err != nil {
		f.m.log.Error("live: cannot packetize", "camera", f.key.camera, "stream", f.key.stream, "error", err)
		<-f.ctx.Done()
		return
	}
	for {
		u, _, err := r.Read(f.ctx)
		if err != nil {
			return
		}
		switch u.Track {
		case vt:
			pkts, err := pack(u.Payload)
			if err != nil {
				// A unit the encoder refuses (an empty access unit) is skipped; the next
				// keyframe resyncs every viewer's decoder.
				continue
			}
			f.video.publish(&frame{ts: ticks(u.Wall.Sub(f.epoch), 90000), key: u.Key, pkts: pkts})
		case at:
			f.publishAudio(u)
		}
	}
}

// publishAudio sends each codec frame of an audio unit as its own packet(s): Opus packets
// as they are, G.711 samples in runs of at most maxPayload bytes (one byte per sample).
func (f *feed) publishAudio(u *ingest.Unit) {
	ts := ticks(u.Wall.Sub(f.epoch), f.audio.clockRate)
	for _, p := range u.Payload {
		if f.audio.mime == webrtc.MimeTypeOpus {
			f.audio.publish(&frame{ts: ts, key: true, pkts: []*rtp.Packet{{Payload: p}}})
			continue
		}
		for len(p) > 0 {
			n := min(len(p), maxPayload)
			f.audio.publish(&frame{ts: ts, key: true, pkts: []*rtp.Packet{{Payload: p[:n]}}})
			ts += uint32(n)
			p = p[n:]
		}
	}
}

// ticks converts a duration to clock ticks without overflowing for long uptimes; the
// result wraps modulo 2^32 as RTP timestamps do.
func ticks(d time.Duration, rate uint32) uint32 {
	s, ns := d/time.Second, d%time.Second
	return uint32(int64(s)*int64(rate) + int64(ns)*int64(rate)/int64(time.Second))
}

// newVideoPacketizer returns a function turning an access unit into RTP packets of at
// most maxPayload bytes (FU-A/FU fragmentation, small NAL units aggregated). Header
// fields other than Marker are set per viewer.
func newVideoPacketizer(c ingest.Codec) (func([][]byte) ([]*rtp.Packet, error), error) {
	switch c {
	case ingest.CodecH264:
		e := &rtph264.Encoder{PayloadType: 96, PayloadMaxSize: maxPayload, PacketizationMode: 1}
		if err := e.Init(); err != nil {
			return nil, err
		}
		return e.Encode, nil
	case ingest.CodecH265:
		e := &rtph265.Encoder{PayloadType: 96, PayloadMaxSize: maxPayload}
		if err := e.Init(); err != nil {
			return nil, err
		}
		return e.Encode, nil
	}
	return nil, fmt.Errorf("no RTP packetizer for %s", c)
}
