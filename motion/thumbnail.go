package motion

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/jpeg"
	"log/slog"
	"slices"
	"sync"
	"time"

	"gocv.io/x/gocv"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/motion/decode"
	"github.com/townwatch/townwatch/motion/report"
)

// thumbnailQuality is the thumbnails' JPEG quality: at report.ThumbnailWidth (240 px), 70
// keeps a car's shape and colour legible in about 6 KiB. They are made from the decoder's
// last picture, scaled down by swscale before encoding (a 240 px JPEG costs a fraction of a
// millisecond; a 1080p one tens).
const thumbnailQuality = 70

// thumbnailer makes a camera's thumbnails from its decoder's pictures at the cadence of
// ThumbnailEvery (ThumbnailEveryInEvent while an event goes on). It is owned by one
// goroutine.
type thumbnailer struct {
	camera string
	emit   func(report.Thumbnail) // nil: no thumbnails
	log    *slog.Logger
	bgr    gocv.Mat
	last   time.Time // wall time of the last thumbnail; zero after a new stream
}

func newThumbnailer(camera string, emit func(report.Thumbnail), log *slog.Logger) *thumbnailer {
	return &thumbnailer{camera: camera, emit: emit, log: log, bgr: gocv.NewMat()}
}

// due says whether a picture captured at wall should become a thumbnail. A picture up to
// fpsSlack of the interval early counts: frame times jitter, and a keyframe every 2 s
// would otherwise miss a 2 s cadence half the time.
func (t *thumbnailer) due(wall time.Time, inEvent bool) bool {
	if t.emit == nil {
		return false
	}
	every := report.ThumbnailEvery
	if inEvent {
		every = report.ThumbnailEveryInEvent
	}
	return t.last.IsZero() || wall.Sub(t.last) >= time.Duration(float64(every)*(1-fpsSlack)) || wall.Before(t.last)
}

// take makes a thumbnail of dec's last picture, captured at wall, and emits it. A failure
// is logged and costs that thumbnail only.
func (t *thumbnailer) take(dec *decode.Decoder, wall time.Time) {
	jpeg, err := t.encode(dec)
	if err != nil {
		t.log.Warn("motion: thumbnail", "err", err)
		return
	}
	t.last = wall
	t.emit(report.Thumbnail{Camera: t.camera, Wall: wall, JPEG: jpeg})
}

func (t *thumbnailer) encode(dec *decode.Decoder) ([]byte, error) {
	return encodeJPEG(dec, report.ThumbnailWidth, thumbnailQuality, &t.bgr)
}

// encodeJPEG scales dec's last picture to width px in colour (into bgr, reused) and
// encodes it as a JPEG of the given quality.
func encodeJPEG(dec *decode.Decoder, width, quality int, bgr *gocv.Mat) ([]byte, error) {
	if err := dec.Snapshot(width, bgr); err != nil {
		return nil, err
	}
	// Go's image/jpeg, not OpenCV's imgcodecs: that module alone links about 120 shared
	// libraries (GDAL, GDCM, codecs for formats townwatch never writes) into every
	// townwatch process (Makefile, OPENCV_LIBS).
	img, err := bgr.ToImage()
	if err != nil {
		return nil, fmt.Errorf("encode JPEG: %w", err)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality}); err != nil {
		return nil, fmt.Errorf("encode JPEG: %w", err)
	}
	return buf.Bytes(), nil
}

// restart forgets the last thumbnail's time: a new stream's first picture is due.
func (t *thumbnailer) restart() { t.last = time.Time{} }

func (t *thumbnailer) close() { t.bgr.Close() }

// KeyframeThumbnails makes thumbnails for a camera without motion analysis: it decodes one
// keyframe of the main stream every ThumbnailEvery (a keyframe depends on no other picture,
// so nothing else is decoded) and emits its thumbnail. Run blocks like Analyzer.Run.
type KeyframeThumbnails struct {
	camera, stream string
	hub            *ingest.Hub
	log            *slog.Logger
	thumbs         *thumbnailer
	decoded        uint64 // keyframes decoded, only the due ones; owned by Run's goroutine
}

// NewKeyframeThumbnails prepares thumbnails of camera's stream (usually "main") on hub.
// It does no I/O and starts no goroutine.
func NewKeyframeThumbnails(camera, stream string, hub *ingest.Hub, log *slog.Logger, emit func(report.Thumbnail)) (*KeyframeThumbnails, error) {
	if hub == nil || emit == nil {
		return nil, fmt.Errorf("camera %s: thumbnails: a hub and an emit function are required", camera)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &KeyframeThumbnails{camera: camera, stream: stream, hub: hub, log: log, thumbs: newThumbnailer(camera, emit, log)}, nil
}

// Run makes thumbnails until ctx is done, across reconnects; it returns nil then.
func (k *KeyframeThumbnails) Run(ctx context.Context) error {
	stillDecoders.join()
	defer stillDecoders.leave()
	defer k.thumbs.close()
	for {
		st, err := k.hub.Wait(ctx, k.camera, k.stream)
		if err != nil {
			return nil // ctx done
		}
		k.consume(ctx, st)
		if ctx.Err() != nil {
			return nil
		}
	}
}

func (k *KeyframeThumbnails) consume(ctx context.Context, st *ingest.Stream) {
	video := st.Video()
	if video == nil {
		return
	}
	// Checked once per session here, so that a stream this package cannot decode is
	// reported once, not at every keyframe.
	dec, err := decode.New(video.Codec, 0)
	if err != nil {
		k.log.Warn("thumbnails: cannot decode stream; waiting for the next session", "stream", st.Name, "err", err)
		return
	}
	dec.Close()
	k.thumbs.restart()
	r := st.NewReader("thumbnails", readerQueue)
	defer r.Close()
	for {
		u, _, err := r.Read(ctx)
		if err != nil {
			if !errors.Is(err, ingest.ErrStreamEnded) && ctx.Err() == nil {
				k.log.Warn("thumbnails: read", "err", err)
			}
			return
		}
		k.process(video.Codec, u)
	}
}

// stillDecoders are the keyframe decoders of the process, lent in turn to every camera's
// KeyframeThumbnails. At most two exist: a decoder kept per camera held its picture buffers
// between keyframes 10 s apart, about 12 MB per 1080p camera (190 MB of the worker's memory
// with 16 cameras), and cameras started together have their keyframes, and so their
// thumbnails, due at the same moments. A thumbnail waits at most a few decodes of about
// 10 ms each, well within its Reader's queue. They are kept and lent rather than opened per
// keyframe: a fresh decoder allocates and zeroes its tables and picture pools, which cost
// about as much CPU as decoding the 1080p keyframe itself (decode.NewStill).
var stillDecoders = newDecoderPool(2)

// decoderPool lends still decoders, at most cap(lent) at once. A returned decoder is kept
// for the next keyframe, of any camera, while a KeyframeThumbnails runs (join, leave);
// the most recently returned is lent first, so a second decoder is opened only when two
// keyframes are decoded at the same moment.
type decoderPool struct {
	lent  chan struct{} // a token per decoder lent
	mu    sync.Mutex
	free  []*decode.Decoder // open and not lent
	users int               // running KeyframeThumbnails
}

func newDecoderPool(n int) *decoderPool { return &decoderPool{lent: make(chan struct{}, n)} }

// get waits until fewer than cap(lent) decoders are lent and returns one for codec: the
// kept one of that codec returned last, else one opened anew. Kept and lent decoders
// together stay within cap(lent) (each holds a 1080p picture's tables, about 12 MiB): a
// new one replaces the kept one returned first. The caller gives it back with put.
func (p *decoderPool) get(codec ingest.Codec) (*decode.Decoder, error) {
	p.lent <- struct{}{}
	p.mu.Lock()
	var dec, other *decode.Decoder
	for i := len(p.free) - 1; i >= 0; i-- {
		if p.free[i].Codec() == codec {
			dec = p.free[i]
			p.free = slices.Delete(p.free, i, i+1)
			break
		}
	}
	if dec == nil && len(p.free) > 0 && len(p.free)+len(p.lent) > cap(p.lent) {
		other, p.free = p.free[0], p.free[1:]
	}
	p.mu.Unlock()
	if dec != nil {
		return dec, nil
	}
	if other != nil {
		other.Close()
	}
	dec, err := decode.NewStill(codec)
	if err != nil {
		<-p.lent
		return nil, err
	}
	return dec, nil
}

// put takes back a decoder get lent: kept while a KeyframeThumbnails runs, else closed.
func (p *decoderPool) put(dec *decode.Decoder) {
	p.mu.Lock()
	if p.users > 0 {
		p.free = append(p.free, dec)
	} else {
		dec.Close()
	}
	p.mu.Unlock()
	<-p.lent
}

func (p *decoderPool) join() {
	p.mu.Lock()
	p.users++
	p.mu.Unlock()
}

// leave closes the kept decoders when no KeyframeThumbnails runs any more: a worker whose
// cameras all have motion analysis again keeps none.
func (p *decoderPool) leave() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.users--; p.users > 0 {
		return
	}
	for _, dec := range p.free {
		dec.Close()
	}
	p.free = nil
}

// process decodes u if it is a due keyframe and makes its thumbnail.
func (k *KeyframeThumbnails) process(codec ingest.Codec, u *ingest.Unit) {
	if u.Track == nil || u.Track.Kind != ingest.KindVideo || !u.Key || !k.thumbs.due(u.Wall, false) {
		return
	}
	dec, err := stillDecoders.get(codec)
	if err != nil {
		k.log.Warn("thumbnails: open decoder", "err", err)
		return
	}
	defer stillDecoders.put(dec)
	before := dec.Stats().Decoded
	if _, err := dec.Decode(u, false, nil); err != nil {
		k.log.Debug("thumbnails: decode", "err", err)
		return
	}
	n := dec.Stats().Decoded - before
	k.decoded += n
	if n == 0 {
		return // no picture came out: the last one is another keyframe's, maybe another camera's
	}
	k.thumbs.take(dec, u.Wall)
}
