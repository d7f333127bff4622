package decode

/*
#cgo pkg-config: libavcodec libavutil libswscale
#include <libavutil/error.h>
#include <libswscale/swscale.h>
#include "avdec.h"
*/
import "C"

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"gocv.io/x/gocv"

	"github.com/townwatch/townwatch/ingest"
)

// DefaultWidth is the analysis width when New is given 0: enough for a person or car to span
// several blocks of the detector's grid, small enough to analyse 50 cameras on one core.
const DefaultWidth = 320

// MaxWidth bounds the analysis and snapshot widths: beyond 4K motion analysis gains nothing.
const MaxWidth = 4096

// maxUnitSize bounds one access unit: far above any camera's keyframe (a 4K intra picture at
// high quality is a few MiB), low enough that a corrupt length cannot exhaust memory.
const maxUnitSize = 32 << 20

// scaler is a swscale filter: grayScaler, and the alternatives BenchmarkScale measures it
// against.
type scaler C.int

const (
	fastBilinear scaler = C.SWS_FAST_BILINEAR
	bilinear     scaler = C.SWS_BILINEAR
	area         scaler = C.SWS_AREA
)

// grayScaler is the swscale filter for analysis frames. Area averaging does not alias at the
// 6x reduction of a 1080p stream (fast bilinear differs from it by 1.2–1.7 gray levels on
// average there, sensor noise that would reach the detector), and its cost, 0.1–0.6 ms per
// picture on the test machine (BenchmarkScale), is small beside decoding: 0.05 % of a core at
// 5 analysed pictures a second.
const grayScaler = area

// colourScaler is the swscale filter for snapshots and thumbnails. Area averaging is what
// a strong reduction wants (a 1080p picture to a 240 px thumbnail is 8×), and cheaper than
// bilinear there: 0.8–0.9 ms against 1.1–1.6 ms of CPU per thumbnail on the test machine
// (BenchmarkSnapshot, at a load of about 38), 2.2 levels per colour channel from ffmpeg's
// own (bicubic) rendering against 1.9. Fast bilinear costs 0.15 ms but aliases (4.6).
const colourScaler = area

// unanalysedSkip is what a picture that is decoded but not analysed may skip: non-reference
// pictures entirely, since nothing else depends on them, so analysed pictures stay bit-exact
// (TestBFrames). The loop filter stays on: skipping it on the unanalysed P-pictures of the
// 15 fps sub stream saved about 7 % of decode time but drifted the analysed pictures by 0.18
// gray levels on average (0.36 at worst) against a full decode, growing through each GOP.
const unanalysedSkip = C.TW_SKIP_NONREF

// Stats are a decoder's counters since New.
type Stats struct {
	Decoded uint64 // pictures that came out of the decoder
	Errors  uint64 // units rejected or decoded with errors (each resyncs at the next keyframe)
	Skipped uint64 // units not decoded while waiting for a keyframe
}

// Decoder decodes one camera stream (or, made by NewStill, keyframes of several). Decode, Snapshot and Close must be called from one
// goroutine at a time; Stats may be called from any.
type Decoder struct {
	c       *C.tw_decoder
	codec   ingest.Codec
	width   int
	still   bool // NewStill: keyframes only, each decoded on its own
	needKey bool // decoding waits for a keyframe: at the start and after an error

	// State of the current codec context, for trackParams.
	used          bool     // it has been fed since it was opened
	params        [][]byte // parameter sets of its last keyframe
	paramsChanged bool     // a later unit carried other parameter sets
	delay         C.int    // its output delay after its first keyframe; -1 before

	decoded, errs, skipped atomic.Uint64
}

var initLog sync.Once

// New opens a single-threaded decoder for codec (ingest.CodecH264 or ingest.CodecH265)
// producing gray frames width px wide (DefaultWidth if 0), height from the coded aspect ratio,
// rounded to even.
func New(codec ingest.Codec, width int) (*Decoder, error) {
	var h265 C.int
	switch codec {
	case ingest.CodecH264:
	case ingest.CodecH265:
		h265 = 1
	default:
		return nil, fmt.Errorf("decode: codec %q: want %s or %s", codec, ingest.CodecH264, ingest.CodecH265)
	}
	if width == 0 {
		width = DefaultWidth
	}
	if width < 2 || width > MaxWidth {
		return nil, fmt.Errorf("decode: width %d: must be 0 (default %d) or 2..%d", width, DefaultWidth, MaxWidth)
	}
	initLog.Do(func() { C.tw_init_log() })
	d := &Decoder{codec: codec, width: width, needKey: true, delay: -1}
	if rc := C.tw_open(h265, &d.c); rc < 0 {
		return nil, d.averr("open", rc)
	}
	return d, nil
}

// NewStill opens a decoder for keyframes each decoded on its own only to be shown scaled
// down (scrub thumbnails, through Snapshot). It skips the deblocking loop filter (and
// H.265's SAO), which smooths block edges a few pixels wide that a picture scaled to 240 px
// does not show, and each keyframe's picture comes out at once whatever the stream's
// reordering delay (the codec is drained and flushed if it holds the picture back). So one
// decoder serves keyframes of any camera in turn, each picture its own keyframe's; cameras
// with the same parameter sets (encoder settings) share it without the cost of a fresh
// decoder per keyframe (another camera's parameter sets restart it: allocating and zeroing its tables and picture
// pools cost about as much CPU as decoding a 1080p keyframe). It refuses units that are
// not keyframes: their reference pictures were not decoded, or not filtered.
func NewStill(codec ingest.Codec) (*Decoder, error) {
	d, err := New(codec, 0)
	if err != nil {
		return nil, err
	}
	d.still = true
	return d, nil
}

// Codec is the codec the decoder was opened for.
func (d *Decoder) Codec() ingest.Codec { return d.codec }

// Decode feeds one access unit. When analyse is true and a picture comes out, it scales the
// luma plane straight into dst (gray CV_8UC1 at analysis size; (re)allocated if dst is empty
// or the wrong size) and returns true. When analyse is false it still decodes (later pictures
// reference this one) but skips what no later picture needs, and does not scale.
//
// A corrupt, truncated or empty unit, or one of another codec, returns an error and is
// counted; the decoder then skips units until the next keyframe, because pictures predicted
// from a damaged one show smeared blocks that would read as motion. Units before the first
// keyframe are skipped likewise, without an error.
func (d *Decoder) Decode(u *ingest.Unit, analyse bool, dst *gocv.Mat) (bool, error) {
	if d.c == nil {
		return false, fmt.Errorf("decode %s: decoder is closed", d.codec)
	}
	if d.still && u != nil && !u.Key {
		return false, fmt.Errorf("decode %s: a still decoder takes keyframes only", d.codec)
	}
	size, err := d.check(u)
	if err != nil {
		return false, d.fail(err)
	}
	if d.needKey && !u.Key {
		d.skipped.Add(1)
		return false, nil
	}
	if err := d.trackParams(u); err != nil {
		return false, d.fail(err)
	}
	p := C.tw_packet(d.c, C.int(size))
	if p == nil {
		return false, d.fail(fmt.Errorf("decode %s: cannot allocate a packet of %d bytes", d.codec, size))
	}
	// Go writes the Annex-B stream into the packet's C buffer: no Go pointer reaches C.
	buf := unsafe.Slice((*byte)(unsafe.Pointer(p)), size)
	off := 0
	for _, n := range u.Payload {
		if len(n) > 0 {
			off += copy(buf[off:], []byte{0, 0, 0, 1})
			off += copy(buf[off:], n)
		}
	}
	var skip C.int
	if !analyse {
		skip = unanalysedSkip
	}
	if d.still {
		skip |= C.TW_STILL
	}
	var pictures, corrupt C.int
	// The decoder only carries the timestamp through; microseconds cannot overflow.
	rc := C.tw_decode(d.c, C.int64_t(u.PTS.Microseconds()), skip, &pictures, &corrupt)
	d.decoded.Add(uint64(pictures))
	d.used = true
	switch {
	case rc < 0:
		return false, d.fail(d.averr("", rc))
	case corrupt > 0 || C.tw_logged(d.c) > 0:
		return false, d.fail(fmt.Errorf("decode %s: %s", d.codec, d.logText("picture decoded with concealed errors")))
	}
	if u.Key {
		d.needKey = false
		if d.delay < 0 {
			d.delay = C.tw_delay(d.c)
		}
	}
	if pictures == 0 || !analyse {
		return false, nil
	}
	if err := d.scaleGray(dst, grayScaler); err != nil {
		return false, err
	}
	return true, nil
}

// trackParams starts a keyframe on a fresh codec context when the decoder's state may not be
// the stream's any more: the keyframe's parameter sets differ from those the context has seen
// (a new resolution, or a corrupt SPS that slipped through), or the context's output delay
// grew since its first keyframe. libavcodec never lowers that delay (has_b_frames) by itself,
// so one bogus SPS or a garbled slice order would otherwise hold every later picture back
// for good: seconds of lag when only keyframes are fed (FuzzDecode found this).
func (d *Decoder) trackParams(u *ingest.Unit) error {
	var sets [][]byte
	for _, n := range u.Payload {
		if isParamSet(d.codec, n) {
			sets = append(sets, n)
		}
	}
	if !u.Key {
		for _, n := range sets {
			if !slices.ContainsFunc(d.params, func(p []byte) bool { return bytes.Equal(p, n) }) {
				d.paramsChanged = true // applies from the next keyframe, which restarts the context
			}
		}
		return nil
	}
	if d.used && (d.paramsChanged || !slices.EqualFunc(sets, d.params, bytes.Equal) || C.tw_delay(d.c) > d.delay) {
		if err := d.reset(); err != nil {
			return err
		}
	}
	d.params = d.params[:0]
	for _, n := range sets {
		d.params = append(d.params, bytes.Clone(n))
	}
	d.paramsChanged = false
	return nil
}

// isParamSet tells a parameter set NAL unit: H.264 SPS, PPS, SPS extension or subset SPS;
// H.265 VPS, SPS or PPS.
func isParamSet(codec ingest.Codec, n []byte) bool {
	if len(n) == 0 {
		return false
	}
	if codec == ingest.CodecH265 {
		t := n[0] >> 1 & 0x3f
		return t >= 32 && t <= 34
	}
	switch n[0] & 0x1f {
	case 7, 8, 13, 15:
		return true
	}
	return false
}

// hasStartCode reports whether a NAL unit contains 0x000000, 0x000001 or 0x000002, which
// emulation prevention rules out (H.264 7.4.1, H.265 7.4.2). Such a unit is corrupt, and the
// decoder would split it into NAL units this package never saw.
func hasStartCode(n []byte) bool {
	for i := 0; ; {
		j := bytes.Index(n[i:], []byte{0, 0})
		if j < 0 || i+j+2 >= len(n) {
			return false
		}
		if n[i+j+2] <= 2 {
			return true
		}
		i += j + 1
	}
}

// scaleGray scales the last picture's luma into dst at analysis size with swscale flags.
func (d *Decoder) scaleGray(dst *gocv.Mat, s scaler) error {
	w, h := d.pictureSize()
	dh := scaledHeight(d.width, w, h)
	return d.scale(dst, d.width, dh, gocv.MatTypeCV8UC1, func(data *C.uint8_t, step C.int) C.int {
		return C.tw_gray(d.c, data, C.int(d.width), C.int(dh), step, C.int(s))
	})
}

// Snapshot converts the last decoded picture to BGR at width px (0 = full size; height keeps
// the aspect ratio, rounded to even) into dst, which is (re)allocated as needed.
func (d *Decoder) Snapshot(width int, dst *gocv.Mat) error {
	return d.snapshot(width, dst, colourScaler)
}

// snapshot is Snapshot with the swscale filter s.
func (d *Decoder) snapshot(width int, dst *gocv.Mat, s scaler) error {
	if d.c == nil {
		return fmt.Errorf("decode %s: decoder is closed", d.codec)
	}
	if width < 0 || width > MaxWidth {
		return fmt.Errorf("decode %s: snapshot width %d: must be 0 (full size) or 1..%d", d.codec, width, MaxWidth)
	}
	w, h := d.pictureSize()
	if w == 0 {
		return fmt.Errorf("decode %s: snapshot: no picture decoded yet", d.codec)
	}
	dw, dh := w, h
	if width > 0 {
		dw, dh = width, scaledHeight(width, w, h)
	}
	return d.scale(dst, dw, dh, gocv.MatTypeCV8UC3, func(data *C.uint8_t, step C.int) C.int {
		return C.tw_bgr(d.c, data, C.int(dw), C.int(dh), step, C.int(s))
	})
}

// Stats returns the counters; safe from any goroutine.
func (d *Decoder) Stats() Stats {
	return Stats{Decoded: d.decoded.Load(), Errors: d.errs.Load(), Skipped: d.skipped.Load()}
}

// Close frees every C allocation. It is idempotent.
func (d *Decoder) Close() {
	if d.c != nil {
		C.tw_close(d.c)
		d.c = nil
	}
}

// check validates a unit before any of it reaches the decoder and returns its Annex-B size.
func (d *Decoder) check(u *ingest.Unit) (int, error) {
	switch {
	case u == nil:
		return 0, fmt.Errorf("decode %s: nil unit", d.codec)
	case u.Track != nil && u.Track.Codec != d.codec:
		return 0, fmt.Errorf("decode %s: unit of codec %q", d.codec, u.Track.Codec)
	}
	size := 0
	for i, n := range u.Payload {
		if len(n) == 0 {
			continue
		}
		if hasStartCode(n) {
			return 0, fmt.Errorf("decode %s: NAL unit %d contains a start code", d.codec, i)
		}
		size += 4 + len(n)
	}
	switch {
	case size == 0:
		return 0, fmt.Errorf("decode %s: empty access unit", d.codec)
	case size > maxUnitSize:
		return 0, fmt.Errorf("decode %s: access unit of %d bytes exceeds %d", d.codec, size, maxUnitSize)
	}
	return size, nil
}

// fail counts err and makes decoding resume at the next keyframe with a fresh codec context.
func (d *Decoder) fail(err error) error {
	d.errs.Add(1)
	d.needKey = true
	if rerr := d.reset(); rerr != nil {
		return errors.Join(err, rerr)
	}
	return err
}

// reset replaces the codec context with a fresh one.
func (d *Decoder) reset() error {
	d.used, d.delay, d.params, d.paramsChanged = false, -1, d.params[:0], false
	if rc := C.tw_reset(d.c); rc < 0 {
		return d.averr("reset", rc)
	}
	return nil
}

func (d *Decoder) averr(op string, rc C.int) error {
	var buf [C.AV_ERROR_MAX_STRING_SIZE]C.char
	C.av_strerror(rc, &buf[0], C.size_t(len(buf)))
	msg := C.GoString(&buf[0])
	if op != "" {
		msg = op + ": " + msg
	}
	if l := d.logText(""); l != "" && d.c != nil {
		msg += " (" + l + ")"
	}
	return fmt.Errorf("decode %s: %s", d.codec, msg)
}

// logText returns the decoder's last logged error for this unit, or def.
func (d *Decoder) logText(def string) string {
	if d.c == nil {
		return def
	}
	if s := C.GoString(C.tw_last_log(d.c)); s != "" {
		return s
	}
	return def
}

func (d *Decoder) pictureSize() (int, int) {
	var w, h C.int
	if C.tw_picture_size(d.c, &w, &h) == 0 {
		return 0, 0
	}
	return int(w), int(h)
}

// scale makes dst a continuous rows×cols Mat of type t and lets fill write into its C memory.
func (d *Decoder) scale(dst *gocv.Mat, cols, rows int, t gocv.MatType, fill func(*C.uint8_t, C.int) C.int) error {
	if dst == nil {
		return fmt.Errorf("decode %s: nil destination Mat", d.codec)
	}
	if dst.Ptr() == nil || dst.Empty() || dst.Rows() != rows || dst.Cols() != cols || dst.Type() != t || !dst.IsContinuous() {
		if dst.Ptr() != nil {
			dst.Close()
		}
		*dst = gocv.NewMatWithSize(rows, cols, t)
	}
	data, err := dst.DataPtrUint8()
	if err != nil {
		return fmt.Errorf("decode %s: %w", d.codec, err)
	}
	if rc := fill((*C.uint8_t)(unsafe.Pointer(&data[0])), C.int(dst.Step())); rc < 0 {
		return d.averr("scale", rc)
	} else if int(rc) != rows {
		return fmt.Errorf("decode %s: scale: wrote %d of %d rows", d.codec, rc, rows)
	}
	return nil
}

// scaledHeight is h scaled by width/w, rounded to the nearest even number (video formats and
// OpenCV's pyramid operations prefer even sizes), at least 2.
func scaledHeight(width, w, h int) int {
	if w <= 0 || h <= 0 {
		return 2
	}
	return max(2, 2*((width*h+w)/(2*w)))
}
