package motion

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/motion/decode"
	"github.com/townwatch/townwatch/motion/report"
)

// readerQueue is the motion Reader's queue: 2 s of a 15-25 fps sub stream. Deeper would
// only delay detection when analysis falls behind; a full queue drops and resumes at the
// next keyframe, which the analyser treats as a gap.
const readerQueue = 48

// fpsSlack lets an analysed frame come up to a tenth of the interval early: frame times
// jitter, and a strict cap would analyse a 15 fps stream at 3.75 fps instead of 5.
const fpsSlack = 0.1

// Options are an Analyzer's callbacks.
type Options struct {
	// OnEvent is called from the analyser's goroutine when an event starts (End zero) and
	// when it ends. It must not block long: frames queue up meanwhile and are dropped.
	OnEvent func(report.Event)
	// ObserveAnalysis, if set, receives the time each analysed frame took (detection,
	// event tracking and snapshots; decoding excluded), for a histogram.
	ObserveAnalysis func(time.Duration)
	// OnGridMinute, if set, receives each camera-minute in which anything moved, when the
	// next minute's first frame is analysed or the stream ends (see GridMinute).
	OnGridMinute func(report.GridMinute)
	// OnThumbnail, if set, receives a scrub-preview thumbnail of an analysed frame every
	// ThumbnailEvery, every ThumbnailEveryInEvent while an event goes on. It runs on the
	// analyser's goroutine and must not block.
	OnThumbnail func(report.Thumbnail)
}

// Analyzer detects motion on one camera: it reads the camera's analysis stream from the
// Hub, decodes what it needs and reports events through Options.OnEvent.
type Analyzer struct {
	// made is the configuration the analyser was made with, never changed: its camera,
	// stream, frame selection and width are fixed for the analyser's life (see
	// Reconfigure).
	made *params
	hub  *ingest.Hub
	log  *slog.Logger
	opt  Options

	decoded, analyzed, decodeErrs, events atomic.Uint64
	active                                atomic.Bool
	// next is the configuration Reconfigure was last given, taken up by the Run goroutine
	// at the next unit it processes; nil once taken.
	next atomic.Pointer[params]

	// Used by the Run goroutine only. p is the configuration in force (made, or the last
	// one Reconfigure gave). The detector and tracker outlive Streams; the decoder is made
	// per Stream, whose codec may differ from the last.
	p            *params
	dec          *decode.Decoder
	det          *detector
	tr           *tracker
	gray, bgr    gocv.Mat
	lastAnalysed time.Time
	grid         gridMinutes
	thumbs       *thumbnailer
}

// NewAnalyzer checks cam's motion settings and prepares an analyser. It does no I/O and
// starts no goroutine; Run does the work.
func NewAnalyzer(cam configs.Camera, hub *ingest.Hub, log *slog.Logger, opt Options) (*Analyzer, error) {
	p, err := newParams(cam)
	if err != nil {
		return nil, err
	}
	if hub == nil {
		return nil, fmt.Errorf("camera %s: motion: nil hub", cam.ID)
	}
	if opt.OnEvent == nil {
		return nil, fmt.Errorf("camera %s: motion: Options.OnEvent is required", cam.ID)
	}
	return newAnalyzer(p, hub, log, opt), nil
}

func newAnalyzer(p *params, hub *ingest.Hub, log *slog.Logger, opt Options) *Analyzer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Analyzer{made: p, p: p, hub: hub, log: log, opt: opt}
}

// Camera is the id of the camera analysed.
func (a *Analyzer) Camera() string { return a.made.camera }

// ErrNotInPlace is returned by Reconfigure for a change that needs a new Analyzer.
var ErrNotInPlace = errors.New("motion: this change needs a new analyser")

// Reconfigure checks cam's motion settings and has the running analyser take them up at
// the next unit it processes, on its own goroutine: zones, masks, sensitivity, min_area,
// cooldown and fps. Safe from any goroutine, before or during Run; the last call wins.
//
// What the analyser has learnt is kept: the background model (learnt over the whole
// picture, which masks and zones only filter afterwards, so no geometry makes it stale)
// and an ongoing event, which goes on under its id. The event's zones are those it has hit
// that are still configured, by name; zones hit from then on are added, and if the motion
// is now outside every zone the event ends after the cooldown like any other.
//
// A change of the analysed stream, of the frame selection (analyze) or of the width
// returns an error wrapping ErrNotInPlace: they change what is decoded, so they need a new
// Analyzer (and its event ends).
func (a *Analyzer) Reconfigure(cam configs.Camera) error {
	p, err := newParams(cam)
	if err != nil {
		return err
	}
	switch m := a.made; {
	case p.camera != m.camera:
		return fmt.Errorf("%w: camera %s is not %s", ErrNotInPlace, p.camera, m.camera)
	case p.stream != m.stream:
		return fmt.Errorf("camera %s: %w: the analysed stream changes from %s to %s", m.camera, ErrNotInPlace, m.stream, p.stream)
	case p.keyframesOnly != m.keyframesOnly:
		return fmt.Errorf("camera %s: %w: motion.analyze changes which frames are decoded", m.camera, ErrNotInPlace)
	case p.width != m.width:
		return fmt.Errorf("camera %s: %w: motion.width changes from %d to %d", m.camera, ErrNotInPlace, m.width, p.width)
	}
	a.next.Store(p)
	return nil
}

// takeConfiguration puts the configuration Reconfigure last gave, if any, in force.
func (a *Analyzer) takeConfiguration() {
	p := a.next.Swap(nil)
	if p == nil {
		return
	}
	a.p = p
	a.det.reconfigure(p)
	a.tr.reconfigure(p)
}

// Stats returns the counters; safe from any goroutine.
func (a *Analyzer) Stats() report.Stats {
	return report.Stats{
		DecodedFrames:  a.decoded.Load(),
		AnalyzedFrames: a.analyzed.Load(),
		DecodeErrors:   a.decodeErrs.Load(),
		Events:         a.events.Load(),
		Active:         a.active.Load(),
	}
}

// Run analyses the camera's stream until ctx is done, across reconnects, and returns nil
// then, after ending an ongoing event. It starts no goroutine.
func (a *Analyzer) Run(ctx context.Context) error {
	a.open()
	defer a.close()
	for {
		st, err := a.hub.Wait(ctx, a.p.camera, a.p.stream)
		if err != nil {
			return nil // ctx done
		}
		a.consume(ctx, st)
		// An event does not outlive its stream: nothing is known of the picture until the
		// camera is back, and the recorder's footage stops here too.
		a.tr.end()
		a.grid.flush()
		if ctx.Err() != nil {
			return nil
		}
	}
}

// consume analyses one Stream until it ends or ctx is done.
func (a *Analyzer) consume(ctx context.Context, st *ingest.Stream) {
	video := st.Video()
	if video == nil {
		a.log.Warn("motion: stream has no video track; waiting for the next session", "stream", st.Name)
	}
	r := st.NewReader("motion", readerQueue)
	defer r.Close()
	if video != nil {
		if err := a.startStream(video.Codec); err != nil {
			a.log.Warn("motion: cannot decode stream; waiting for the next session", "stream", st.Name, "err", err)
			video = nil
		}
	}
	for {
		u, gap, err := r.Read(ctx)
		if err != nil {
			if !errors.Is(err, ingest.ErrStreamEnded) && ctx.Err() == nil {
				a.log.Warn("motion: read", "err", err)
			}
			return
		}
		if video != nil {
			a.process(u, gap)
		}
	}
}

// open allocates what outlives Streams; close frees it.
func (a *Analyzer) open() {
	a.det = newDetector(a.p, newRunningAverage(a.p.sensitivity, backgroundTau))
	a.tr = newTracker(a.p, a.emit, a.snapshot)
	a.grid = gridMinutes{camera: a.p.camera, emit: a.opt.OnGridMinute}
	a.gray, a.bgr = gocv.NewMat(), gocv.NewMat()
	a.thumbs = newThumbnailer(a.p.camera, a.opt.OnThumbnail, a.log)
}

func (a *Analyzer) close() {
	a.tr.end()
	a.grid.flush()
	if a.dec != nil {
		a.dec.Close()
		a.dec = nil
	}
	a.det.close()
	a.gray.Close()
	a.bgr.Close()
	a.thumbs.close()
}

// startStream prepares for a new Stream of the given codec: a fresh decoder, and a
// detector that learns the picture again rather than comparing it with the last one
// before the reconnect.
func (a *Analyzer) startStream(codec ingest.Codec) error {
	if a.dec != nil {
		a.dec.Close()
		a.dec = nil
	}
	dec, err := decode.New(codec, a.p.width)
	if err != nil {
		return err
	}
	a.dec = dec
	a.det.reset()
	a.tr.interrupt()
	a.lastAnalysed = time.Time{}
	a.thumbs.restart()
	return nil
}

// process decodes one unit of the current Stream and analyses it when it is due. gap says
// units were dropped just before it. This is the analyser's offline core: tests feed it
// units from a file at full speed.
func (a *Analyzer) process(u *ingest.Unit, gap bool) {
	if u.Track == nil || u.Track.Kind != ingest.KindVideo {
		return
	}
	a.takeConfiguration()
	if gap || u.Discontinuity {
		// Frames on both sides of a hole are not consecutive; the background is kept
		// (it changes slowly) and so is an ongoing event, whose cooldown runs on.
		a.tr.interrupt()
	}
	due := a.lastAnalysed.IsZero() || u.Wall.Sub(a.lastAnalysed) >= time.Duration(float64(a.p.interval)*(1-fpsSlack))
	if a.p.keyframesOnly && (!u.Key || !due) {
		return // a keyframe depends on nothing, so skipped units need no decoding
	}
	ok, err := a.dec.Decode(u, due, &a.gray)
	if err != nil {
		a.decodeErrs.Add(1)
		return
	}
	a.decoded.Add(1)
	if !ok || !due {
		return
	}
	a.lastAnalysed = u.Wall
	began := time.Now()
	d, err := a.det.analyse(a.gray, u.Wall)
	if err != nil {
		// Only a decoder bug can produce a frame the detector refuses; count it with
		// decoding errors rather than stop watching the camera.
		a.decodeErrs.Add(1)
		return
	}
	a.tr.observe(u.Wall, d)
	a.grid.add(u.Wall, &d.Grid)
	a.analyzed.Add(1)
	if a.opt.ObserveAnalysis != nil {
		a.opt.ObserveAnalysis(time.Since(began))
	}
	// The thumbnail reuses the picture just decoded for analysis: no extra decoding.
	if a.thumbs.due(u.Wall, a.active.Load()) {
		a.thumbs.take(a.dec, u.Wall)
	}
}

// emit counts and delivers an event notification.
func (a *Analyzer) emit(ev report.Event) {
	if ev.End.IsZero() {
		a.events.Add(1)
		a.active.Store(true)
	} else {
		a.active.Store(false)
	}
	a.opt.OnEvent(ev)
}

// snapshot JPEG-encodes the last decoded picture in colour, or returns nil (logged) when
// that fails: an event without a picture is still an event.
func (a *Analyzer) snapshot() []byte {
	jpeg, err := encodeJPEG(a.dec, snapshotWidth, snapshotQuality, &a.bgr)
	if err != nil {
		a.log.Warn("motion: snapshot", "err", err)
		return nil
	}
	return jpeg
}
