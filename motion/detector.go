package motion

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"time"

	"gocv.io/x/gocv"

	"github.com/townwatch/townwatch/motion/report"
)

// Detector tuning. The sensitivity and min_area settings are the operator's; these are the
// constants behind them, each chosen on the test clips (see detector_test.go).
const (
	// blurSize is the Gaussian kernel applied before differencing: at 320 px it smooths
	// sensor noise and compression ringing of a pixel or two, while a person (10+ px) stays.
	blurSize = 5
	// backgroundTau is the time constant of the running-average background. Something that
	// stops moving fades into the background within about 2 tau (a 120-level contrast
	// drops below the default threshold in 1.9 tau), so an event ends about 2 s after the
	// motion does; the bundled clip's slowest motion (25 px/s at 640 px) still leaves a
	// trail of change well above min_area. On the motion clip, 0.3 s missed the slow
	// interval (too little trail) and 2 s merged intervals 12 s apart (ghost + cooldown).
	backgroundTau = 1200 * time.Millisecond
	// globalShare is the share of the frame whose change, at once, counts as a global
	// change (lights, IR switch, auto-exposure) instead of motion. The price: something
	// that covers this much of the picture in one analysed frame raises no event.
	globalShare = 0.4
	// globalMeanShift is the jump in mean brightness, in gray levels, that counts as a
	// global change even when fewer pixels cross the threshold (dark areas brighten less).
	globalMeanShift = 12
	// settleTime suppresses motion after a global change: exposure and white balance
	// keep adjusting for a moment after the lights switch.
	settleTime = time.Second
)

// threshold maps sensitivity 1..100 to the per-pixel difference, in gray levels, that
// counts as change: 50 gives 25 (well above the noise of the test clips, about 8), 100
// gives 5 and 1 gives 45.
func threshold(sensitivity int) float32 {
	return float32(5 + 0.4*float64(100-sensitivity))
}

// polygon is a closed polygon in coordinates normalised to 0..1, origin top left.
type polygon [][2]float64

// detection is the detector's verdict on one analysed frame.
type detection struct {
	Moving bool       // at least min_area of the frame moved inside the zones
	Score  float64    // moving share of the counted area (zones minus masks), 0..1
	Box    report.Box // bounding box of the moving regions, normalised; zero unless Moving
	Zones  uint64     // bit i set: zone i was hit; zero unless Moving
	// Grid is where anything moved (noise removed, masks applied, zones and min_area
	// not): what the "when did something move here" search looks at.
	Grid report.Grid
}

// background turns a blurred gray frame into a binary foreground mask (255 = changed).
// The detector uses runningAverage; the comparison with OpenCV's MOG2 that chose it lives
// in the tests.
type background interface {
	// apply writes the foreground of frame, dt after the previous frame, into fg and
	// learns from frame. On entry fg holds the previous frame's foreground (or is empty,
	// or of another size, after a new frame size).
	apply(frame gocv.Mat, dt time.Duration, fg *gocv.Mat)
	// relearn makes frame the whole background, forgetting the past.
	relearn(frame gocv.Mat)
	// setSensitivity takes a new motion.sensitivity for the frames to come, keeping what
	// was learnt.
	setSensitivity(sensitivity int)
	close()
}

// detector finds motion in gray frames of one camera. Not safe for concurrent use; every
// Mat it holds is allocated once (again only when the frame size changes) and closed by
// close.
type detector struct {
	minArea float64 // share of the frame, 0..1
	zones   []namedPolygon
	masks   []polygon
	bg      background

	size       image.Point
	countArea  int        // pixels in the counted area
	minPixels  int        // minArea in pixels
	restricted bool       // zones or masks are configured: countMask applies
	countMask  gocv.Mat   // 255 where motion counts
	zoneMasks  []gocv.Mat // one per zone
	kernel     gocv.Mat
	blurred    gocv.Mat
	fg         gocv.Mat
	opened     gocv.Mat
	counted    gocv.Mat
	scratch    gocv.Mat
	searchMask gocv.Mat // 255 outside the masks; empty without masks
	cells      gocv.Mat // the moving pixels averaged per search-grid cell

	learned     bool
	last        time.Time // wall time of the previous frame
	lastMean    float64   // mean brightness of the previous frame
	settleUntil time.Time
}

type namedPolygon struct {
	name string
	poly polygon
}

func newDetector(p *params, bg background) *detector {
	d := &detector{
		bg:         bg,
		countMask:  gocv.NewMat(),
		kernel:     gocv.GetStructuringElement(gocv.MorphRect, image.Pt(3, 3)),
		blurred:    gocv.NewMat(),
		fg:         gocv.NewMat(),
		opened:     gocv.NewMat(),
		counted:    gocv.NewMat(),
		scratch:    gocv.NewMat(),
		searchMask: gocv.NewMat(),
		cells:      gocv.NewMat(),
	}
	d.setArea(p)
	return d
}

// setArea takes p's min_area, zones and masks.
func (d *detector) setArea(p *params) {
	d.minArea = p.minArea / 100
	d.zones = p.zones
	d.masks = p.masks
	d.restricted = len(p.zones) > 0 || len(p.masks) > 0
}

// reconfigure takes p's tuning, zones and masks for the next frame. The background is
// kept: it is learnt over the whole picture and zones and masks only filter the
// foreground, so an ongoing event sees no burst of change and the picture is not learnt
// again.
func (d *detector) reconfigure(p *params) {
	d.setArea(p)
	d.bg.setSensitivity(p.sensitivity)
	if d.size != (image.Point{}) {
		d.rasterise()
	}
}

func (d *detector) close() {
	d.bg.close()
	d.closeZoneMasks()
	for _, m := range []*gocv.Mat{&d.countMask, &d.kernel, &d.blurred, &d.fg, &d.opened, &d.counted, &d.scratch, &d.searchMask, &d.cells} {
		m.Close()
	}
}

func (d *detector) closeZoneMasks() {
	for i := range d.zoneMasks {
		d.zoneMasks[i].Close()
	}
	d.zoneMasks = d.zoneMasks[:0]
}

// reset forgets the background, so that the next frame is learnt rather than compared:
// for a new stream, whose picture may differ from where the last one stopped.
func (d *detector) reset() { d.learned = false }

// analyse looks at one gray frame captured at wall time t.
func (d *detector) analyse(gray gocv.Mat, t time.Time) (detection, error) {
	if gray.Empty() || gray.Type() != gocv.MatTypeCV8U {
		return detection{}, fmt.Errorf("motion: want a non-empty 8-bit gray frame, got %dx%d type %v", gray.Cols(), gray.Rows(), gray.Type())
	}
	if sz := image.Pt(gray.Cols(), gray.Rows()); sz != d.size {
		d.resize(sz)
	}
	gocv.GaussianBlur(gray, &d.blurred, image.Pt(blurSize, blurSize), 0, 0, gocv.BorderReplicate)
	mean := d.blurred.Mean().Val1
	if !d.learned {
		d.relearn(t, mean, false)
		return detection{}, nil
	}
	dt := t.Sub(d.last)
	d.last = t
	d.bg.apply(d.blurred, dt, &d.fg)

	// A sudden global change re-learns: comparing against a background from before the
	// lights switched would see the whole picture as moving for several seconds.
	shift := math.Abs(mean - d.lastMean)
	d.lastMean = mean
	if changed := gocv.CountNonZero(d.fg); float64(changed) >= globalShare*float64(d.size.X*d.size.Y) || shift >= globalMeanShift {
		d.relearn(t, mean, true)
		return detection{}, nil
	}
	if t.Before(d.settleUntil) {
		return detection{}, nil
	}

	// Opening removes isolated specks (noise, compression artefacts) without shrinking
	// anything person-sized.
	gocv.MorphologyEx(d.fg, &d.opened, gocv.MorphOpen, d.kernel)
	moving := &d.opened
	if d.restricted {
		gocv.BitwiseAnd(d.opened, d.countMask, &d.counted)
		moving = &d.counted
	}
	n := gocv.CountNonZero(*moving)
	res := detection{Score: float64(n) / float64(d.countArea), Grid: d.grid()}
	if n < d.minPixels {
		return res, nil
	}
	res.Moving = true
	res.Zones = d.zonesHit(*moving, n)
	res.Box = d.box(*moving)
	return res, nil
}

// gridCellShare is how much of a grid cell must move for the cell to count: about 3 %,
// a distant pedestrian in a cell of a 320-pixel-wide analysis frame (20×11 pixels).
const gridCellShare = 8 // of 255

// grid is the search grid of the opened foreground, outside the masks: each cell's share
// of moving pixels, by area averaging, against gridCellShare.
func (d *detector) grid() report.Grid {
	src := d.opened
	if !d.searchMask.Empty() {
		gocv.BitwiseAnd(d.opened, d.searchMask, &d.scratch)
		src = d.scratch
	}
	var g report.Grid
	if gocv.CountNonZero(src) == 0 {
		return g
	}
	gocv.Resize(src, &d.cells, image.Pt(report.GridSize, report.GridSize), 0, 0, gocv.InterpolationArea)
	for y := range report.GridSize {
		for x := range report.GridSize {
			if d.cells.GetUCharAt(y, x) >= gridCellShare {
				g.Set(x, y)
			}
		}
	}
	return g
}

func (d *detector) relearn(t time.Time, mean float64, settle bool) {
	d.bg.relearn(d.blurred)
	d.learned = true
	d.last = t
	d.lastMean = mean
	if settle {
		d.settleUntil = t.Add(settleTime)
	}
}

// zonesHit returns the zones in which at least min_area moved or, when motion spreads
// over several zones without filling min_area in any, the zone with the most of it.
func (d *detector) zonesHit(moving gocv.Mat, total int) uint64 {
	var hit uint64
	best, bestN := -1, 0
	for i, zm := range d.zoneMasks {
		gocv.BitwiseAnd(moving, zm, &d.scratch)
		n := gocv.CountNonZero(d.scratch)
		if n >= d.minPixels && n > 0 {
			hit |= 1 << i
		}
		if n > bestN {
			best, bestN = i, n
		}
	}
	if hit == 0 && best >= 0 {
		hit = 1 << best
	}
	return hit
}

// box is the bounding box of every moving region. Contours are found only on moving
// frames, the only per-frame allocation (inside OpenCV) of the detector.
func (d *detector) box(moving gocv.Mat) report.Box {
	contours := gocv.FindContours(moving, gocv.RetrievalExternal, gocv.ChainApproxSimple)
	defer contours.Close()
	var r image.Rectangle
	for i := range contours.Size() {
		r = r.Union(gocv.BoundingRect(contours.At(i)))
	}
	w, h := float64(d.size.X), float64(d.size.Y)
	return report.Box{X: float64(r.Min.X) / w, Y: float64(r.Min.Y) / h, W: float64(r.Dx()) / w, H: float64(r.Dy()) / h}
}

// resize rasterises zones and masks for a new frame size and forgets the background.
func (d *detector) resize(sz image.Point) {
	d.size = sz
	d.learned = false
	d.rasterise()
}

// rasterise draws the zones and masks at the frame size, and sizes min_area.
func (d *detector) rasterise() {
	sz := d.size
	d.closeZoneMasks()
	area := sz.X * sz.Y
	if d.restricted {
		// Without zones the whole frame counts, minus the masks.
		fill := 0.0
		if len(d.zones) == 0 {
			fill = 255
		}
		d.countMask.Close()
		d.countMask = gocv.NewMatWithSizeFromScalar(gocv.NewScalar(fill, 0, 0, 0), sz.Y, sz.X, gocv.MatTypeCV8U)
		for _, z := range d.zones {
			zm := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(0, 0, 0, 0), sz.Y, sz.X, gocv.MatTypeCV8U)
			fillpolygon(&zm, z.poly, sz, 255)
			fillpolygon(&d.countMask, z.poly, sz, 255)
			d.zoneMasks = append(d.zoneMasks, zm)
		}
		for _, m := range d.masks {
			fillpolygon(&d.countMask, m, sz, 0)
		}
		// Masks apply to zones too: motion under a mask never counts anywhere.
		for i := range d.zoneMasks {
			gocv.BitwiseAnd(d.zoneMasks[i], d.countMask, &d.zoneMasks[i])
		}
		area = gocv.CountNonZero(d.countMask)
	}
	d.searchMask.Close()
	if len(d.masks) > 0 {
		// Masked areas are out of the search too: a mask hides what must not be watched.
		d.searchMask = gocv.NewMatWithSizeFromScalar(gocv.NewScalar(255, 0, 0, 0), sz.Y, sz.X, gocv.MatTypeCV8U)
		for _, m := range d.masks {
			fillpolygon(&d.searchMask, m, sz, 0)
		}
	} else {
		d.searchMask = gocv.NewMat() // empty: the whole frame is searched
	}
	d.countArea = max(area, 1)
	// min_area is a share of the whole frame, not of the zones, so that it means the same
	// object size whatever the zones are.
	d.minPixels = max(int(math.Ceil(d.minArea*float64(sz.X*sz.Y))), 1)
}

// fillpolygon paints a normalised polygon onto m (sized sz) with value v.
func fillpolygon(m *gocv.Mat, p polygon, sz image.Point, v uint8) {
	pts := make([]image.Point, len(p))
	for i, xy := range p {
		pts[i] = image.Pt(int(math.Round(xy[0]*float64(sz.X-1))), int(math.Round(xy[1]*float64(sz.Y-1))))
	}
	pv := gocv.NewPointsVectorFromPoints([][]image.Point{pts})
	defer pv.Close()
	gocv.FillPoly(m, pv, color.RGBA{R: v, G: v, B: v, A: 255})
}

// runningAverage is frame differencing against an exponentially weighted running average
// of past frames: cheap (a few passes over a small frame) and, on the test clips, as
// accurate as MOG2 at a fraction of its cost (figures in detector_test.go).
//
// Before comparing, the background is matched to the frame's brightness and contrast
// (same mean and standard deviation): a change of exposure, gain or lighting that is too
// slow for the global-change rule (street lights dimming over seconds, auto-exposure
// hunting) would otherwise leave the average lagging behind the picture by more than the
// threshold in some parts of it and not others, and those parts would look like motion.
// Something small moving hardly moves either statistic, so it keeps its contrast.
//
// The threshold adapts to the camera's noise: it is at least noiseFactor times the mean
// difference of the pixels that did not change (noise, compression flicker), so that a
// grainy night picture or a high sensitivity setting does not turn noise into motion.
type runningAverage struct {
	thresh float32 // from the sensitivity setting: the least the threshold is
	tau    time.Duration
	noise  float64  // mean difference of unchanged pixels; 0 until measured
	avg    gocv.Mat // CV_32F
	avg8   gocv.Mat // avg matched to the frame, 8-bit
	diff   gocv.Mat
	still  gocv.Mat // diff where the last frame did not change, else 0
	mean   gocv.Mat // 1×1 results of MeanStdDev
	stddev gocv.Mat
}

const (
	// noiseFactor is the threshold over the noise level (mean absolute difference): for
	// Gaussian noise about 6.4 standard deviations. Encoded noise is not Gaussian: the
	// encoder turns it into blotches with heavier tails, and 6 (about 5 deviations) still
	// let the heavy-noise night clip raise events at sensitivity 80.
	noiseFactor = 8
	// noiseTau is how slowly the noise level falls; it rises at once, so that the first
	// grainy frames after the infrared switch or a keyframe full of fresh compression
	// artefacts already meet the higher threshold.
	noiseTau = 5 * time.Second
)

// maxContrastMatch bounds the contrast factor applied to the background: beyond it the
// picture is no longer the same scene (and the global-change rule re-learns it).
const maxContrastMatch = 2

func newRunningAverage(sensitivity int, tau time.Duration) *runningAverage {
	return &runningAverage{thresh: threshold(sensitivity), tau: tau, avg: gocv.NewMat(), avg8: gocv.NewMat(),
		diff: gocv.NewMat(), still: gocv.NewMat(), mean: gocv.NewMat(), stddev: gocv.NewMat()}
}

func (r *runningAverage) apply(frame gocv.Mat, dt time.Duration, fg *gocv.Mat) {
	// Statistics of 8-bit pictures: on the float average they cost 20 times more.
	r.avg.ConvertTo(&r.avg8, gocv.MatTypeCV8U)
	fMean, fDev := r.meanStdDev(frame)
	bMean, bDev := r.meanStdDev(r.avg8)
	gain := 1.0
	if bDev > 1 && fDev > 1 {
		gain = min(max(fDev/bDev, 1/maxContrastMatch), maxContrastMatch)
	}
	r.avg8.ConvertToWithParams(&r.avg8, gocv.MatTypeCV8U, float32(gain), float32(fMean-gain*bMean))
	gocv.AbsDiff(frame, r.avg8, &r.diff)
	r.measureNoise(*fg, dt)
	gocv.Threshold(r.diff, fg, max(r.thresh, float32(noiseFactor*r.noise)), 255, gocv.ThresholdBinary)
	gocv.AccumulatedWeighted(frame, &r.avg, decay(dt, r.tau))
}

// measureNoise updates the noise level from r.diff where lastFG, the last frame's
// foreground, is clear: something moving would raise it. It runs before thresholding, so
// that a burst of noise (the first grainy frame after the infrared switch, a keyframe full
// of fresh compression artefacts) meets its own threshold.
func (r *runningAverage) measureNoise(lastFG gocv.Mat, dt time.Duration) {
	total := r.diff.Rows() * r.diff.Cols()
	still := total
	src := r.diff
	if lastFG.Rows() == r.diff.Rows() && lastFG.Cols() == r.diff.Cols() {
		// Zeroing the changed pixels and averaging is 50 times cheaper than OpenCV's
		// masked mean.
		still -= gocv.CountNonZero(lastFG)
		gocv.BitwiseNot(lastFG, &r.still)
		gocv.BitwiseAnd(r.diff, r.still, &r.still)
		src = r.still
	}
	if still == 0 {
		return
	}
	noise := src.Mean().Val1 * float64(total) / float64(still)
	if noise >= r.noise {
		r.noise = noise
	} else {
		r.noise += decay(dt, noiseTau) * (noise - r.noise)
	}
}

// decay is the weight of a new value in an exponential average with time constant tau,
// dt after the last one: it follows the time between analysed frames, so that an average
// forgets at the same pace whether it sees 5 frames a second or one keyframe every 2 s.
func decay(dt, tau time.Duration) float64 {
	return min(max(1-math.Exp(-dt.Seconds()/tau.Seconds()), 0), 1)
}

func (r *runningAverage) meanStdDev(m gocv.Mat) (mean, stddev float64) {
	gocv.MeanStdDev(m, &r.mean, &r.stddev)
	return r.mean.GetDoubleAt(0, 0), r.stddev.GetDoubleAt(0, 0)
}

func (r *runningAverage) relearn(frame gocv.Mat) { frame.ConvertTo(&r.avg, gocv.MatTypeCV32F) }

func (r *runningAverage) setSensitivity(sensitivity int) { r.thresh = threshold(sensitivity) }

func (r *runningAverage) close() {
	for _, m := range []*gocv.Mat{&r.avg, &r.avg8, &r.diff, &r.still, &r.mean, &r.stddev} {
		m.Close()
	}
}
