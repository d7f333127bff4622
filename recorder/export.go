package recorder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// Sentinel errors of Export; match them with errors.Is.
var (
	// ErrNoFootage: the catalog has no decodable footage of the camera's main stream in
	// the range.
	ErrNoFootage = errors.New("no recorded footage")
	// ErrConfigChanged: a later segment in the range has another codec configuration
	// (SPS/PPS, resolution, audio) than the one the clip started with. One MP4 carries one
	// init, so the clip stops before that segment; what was written is a complete,
	// playable clip up to ExportResult.End, and the rest of the range must be exported
	// separately (from ExportResult.End).
	ErrConfigChanged = errors.New("the camera's stream configuration changes")
)

// Gap is a part of the exported range with no footage.
type Gap struct{ From, To time.Time }

// ExportResult describes the clip Export wrote.
type ExportResult struct {
	// Start is the wall time of the clip's first frame: the keyframe at or before the
	// requested from (after it when from falls before the footage). End is the wall time
	// just after the last frame.
	Start, End time.Time
	Segments   int   // segment files that contributed frames
	Frames     int64 // video frames written
	Bytes      int64 // bytes written to the output
	// Sources are the catalog rows of the segments that contributed frames, in clip
	// order, so that an evidence manifest can name every file the clip came from.
	Sources []catalog.Segment
	// Gaps are the parts of [from, to) without footage: before the first frame, between
	// segments (a hole stays a hole in the clip's timeline) and after the last frame.
	Gaps []Gap
}

// Export writes one fragmented MP4 of camera's main stream covering [from, to) to w by
// remuxing the recorded samples (no transcoding): it starts at the keyframe at or before
// from, includes every frame that starts before to, and keeps real-time spacing across
// segment boundaries, so a hole in the recording is a hole in the clip's timeline (and in
// Gaps). The output is an init (the first segment's) and one fragment per source fragment
// (~1 s), with default-base-is-moof offsets as mediacommon writes them, which ffmpeg, VLC
// and browsers (MSE) play.
//
// Every segment is checked against the catalog before any of its samples is used: a
// closed segment's size and SHA-256 must match exactly, an open one must be at least as
// long as the catalog says, and the codec and picture size must agree. A mismatch is an
// error naming the file, never a silent skip: the clip is evidence. Checking the SHA-256
// reads each segment in full once more; the second read comes from the page cache.
//
// progress, if not nil, is called after each fragment with the source bytes processed and
// the total of the segments in the range. On error, the result describes what was written
// to w; only with ErrConfigChanged is that a complete clip.
func Export(ctx context.Context, st *Storage, cat *catalog.Catalog, camera string, from, to time.Time, w io.Writer, progress func(done, total int64)) (ExportResult, error) {
	x := &exporter{camera: camera, from: from, to: to, st: st, w: w, progress: progress}
	switch {
	case camera == "":
		return ExportResult{}, errors.New("export: camera is empty")
	case from.IsZero() || to.IsZero():
		return ExportResult{}, fmt.Errorf("export camera %s: from (%s) and to (%s) must both be set", camera, stamp(from), stamp(to))
	case !to.After(from):
		return ExportResult{}, fmt.Errorf("export camera %s: to (%s) must be after from (%s)", camera, stamp(to), stamp(from))
	case st == nil || cat == nil || w == nil:
		return ExportResult{}, fmt.Errorf("export camera %s: storage, catalog and output are required", camera)
	}
	if x.progress == nil {
		x.progress = func(int64, int64) {}
	}
	all, err := cat.Segments(ctx, camera, from, to)
	if err != nil {
		return ExportResult{}, x.errorf("%w", err)
	}
	var segs []catalog.Segment
	for _, s := range all {
		if s.Stream == ingest.StreamMain {
			segs = append(segs, s)
			x.total += s.Bytes
		}
	}
	for _, s := range segs {
		if x.finished {
			break
		}
		if err := x.segment(ctx, s); err != nil {
			return x.res, err
		}
	}
	if x.res.Frames == 0 {
		return x.res, x.errorf("%w", ErrNoFootage)
	}
	x.progress(x.total, x.total)
	if x.res.End.Before(x.to) && x.to.Sub(x.res.End) > x.holeTolerance() {
		x.res.Gaps = append(x.res.Gaps, Gap{From: x.res.End, To: x.to})
	}
	return x.res, nil
}

// stamp formats a time for error messages.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "unset"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// exporter is the state of one Export.
type exporter struct {
	camera   string
	from, to time.Time
	st       *Storage
	w        io.Writer
	progress func(done, total int64)

	done, total int64 // source bytes processed, and in the range

	// The clip's init and where its timeline starts: output time 0 is decode time keyDTS
	// of the segment that started at originStart.
	started     bool
	init        *fmp4.Init
	videoID     int
	audioID     int // 0 without audio
	videoScale  uint32
	audioScale  uint32
	originStart time.Time
	keyDTS      uint64

	// Where each output track ends so far, in its own timescale.
	videoEnd, audioEnd uint64
	lastFrame          uint32 // duration of the last video sample written
	seq                uint32 // fragments written
	finished           bool   // a frame at or after to was reached

	buf seekablebuffer.Buffer
	res ExportResult
}

// errorf makes an error that names the camera and the range.
func (x *exporter) errorf(format string, a ...any) error {
	return fmt.Errorf("export camera %s [%s, %s): "+format, append([]any{x.camera, stamp(x.from), stamp(x.to)}, a...)...)
}

// holeTolerance is how far apart two frames may be before the time between them counts as
// a gap: two frame intervals, so that jitter of the wall clock that stamps segment starts
// is not reported as lost footage, while a lost keyframe interval always is.
func (x *exporter) holeTolerance() time.Duration {
	return mediaDuration(2*uint64(x.lastFrame), max(x.videoScale, 1))
}

// segment checks one segment against the catalog and exports its part of the range.
func (x *exporter) segment(ctx context.Context, seg catalog.Segment) error {
	f, err := x.st.OpenSegment(ctx, seg)
	if err != nil {
		return x.errorf("segment %s: %w", seg.Path, err)
	}
	defer f.Close()
	base := x.done
	m, size, err := x.checkSegment(f, seg)
	if err != nil {
		return x.errorf("segment %s: %w", seg.Path, err)
	}
	if x.started && !sameConfig(x.init, &m.Init) {
		return x.errorf("segment %s starting %s: %w: %s; the clip ends at %s, export from there separately",
			seg.Path, stamp(seg.Start), ErrConfigChanged, describeChange(x.init, &m.Init), stamp(x.res.End))
	}
	// Every segment resumes at a keyframe. The writer starts each one with a keyframe, so
	// this drops nothing of its files; of any other file it drops frames that reference
	// pictures the clip lacks, and the hole they leave is reported as a gap.
	s := &sourceSegment{seg: seg, media: m, needKey: true, firstFragment: true}
	contributed := false
	for i, span := range m.layout.Fragments {
		if err := ctx.Err(); err != nil {
			return x.errorf("%w", err)
		}
		p, err := m.fragment(i)
		if err != nil {
			return x.errorf("segment %s: %w", seg.Path, err)
		}
		wrote, err := x.fragment(s, p)
		if err != nil {
			return x.errorf("segment %s: %w", seg.Path, err)
		}
		contributed = contributed || wrote
		x.done = base + span.End()
		x.progress(x.done, x.total)
		if x.finished {
			break
		}
	}
	if s.pending != nil { // the whole segment lies before from: start at its last keyframe
		wrote, err := x.flushPending(s)
		if err != nil {
			return x.errorf("segment %s: %w", seg.Path, err)
		}
		contributed = contributed || wrote
	}
	if contributed {
		x.res.Segments++
		x.res.Sources = append(x.res.Sources, seg)
	}
	x.done = base + size
	return nil
}

// checkSegment verifies a segment file against its catalog row and parses its init.
func (x *exporter) checkSegment(f *os.File, seg catalog.Segment) (*segmentMedia, int64, error) {
	m, size, err := checkSegmentFile(f, seg)
	if seg.Open && err == nil {
		// Being written: it grew since the catalog's last progress update.
		x.total += size - seg.Bytes
	}
	return m, size, err
}

// checkSegmentFile verifies a segment file against its catalog row, scans it and parses
// its init; size is the file's size.
func checkSegmentFile(f *os.File, seg catalog.Segment) (*segmentMedia, int64, error) {
	info, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	size := info.Size()
	switch {
	case seg.Open && size < seg.Bytes:
		return nil, 0, fmt.Errorf("file has %d bytes, fewer than the %d the catalog has for this open segment", size, seg.Bytes)
	case seg.Open:
		// Its tail may be a fragment in flight, which the scan leaves out.
	case size != seg.Bytes:
		return nil, 0, fmt.Errorf("file has %d bytes, the catalog says %d", size, seg.Bytes)
	default:
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
			return nil, 0, fmt.Errorf("hash: %w", err)
		}
		if sum := hex.EncodeToString(h.Sum(nil)); sum != seg.SHA256 {
			return nil, 0, fmt.Errorf("SHA-256 is %s, the catalog says %s: the file changed after it was recorded", sum, seg.SHA256)
		}
	}
	layout, err := scanSegment(f, size)
	if err != nil {
		return nil, 0, err
	}
	if !seg.Open && layout.ValidEnd != size {
		return nil, 0, fmt.Errorf("only %d of its %d bytes are complete fragments", layout.ValidEnd, size)
	}
	m, err := readSegment(f, layout)
	if err != nil {
		return nil, 0, err
	}
	codec, w, h := describeVideo(&m.Init)
	if codec != seg.Codec || w != seg.Width || h != seg.Height {
		return nil, 0, fmt.Errorf("file holds %s %dx%d, the catalog says %s %dx%d", codec, w, h, seg.Codec, seg.Width, seg.Height)
	}
	return m, size, nil
}

// sameConfig reports whether two inits describe the same tracks: one MP4 init can only
// describe samples that decode with it.
func sameConfig(a, b *fmp4.Init) bool {
	if len(a.Tracks) != len(b.Tracks) {
		return false
	}
	for i, t := range a.Tracks {
		u := b.Tracks[i]
		if t.ID != u.ID || t.TimeScale != u.TimeScale || !reflect.DeepEqual(t.Codec, u.Codec) {
			return false
		}
	}
	return true
}

// describeChange says in a few words how b differs from a, for the error message.
func describeChange(a, b *fmp4.Init) string {
	ac, aw, ah := describeVideo(a)
	bc, bw, bh := describeVideo(b)
	switch {
	case ac != bc || aw != bw || ah != bh:
		return fmt.Sprintf("video changes from %s %dx%d to %s %dx%d", ac, aw, ah, bc, bw, bh)
	case len(a.Tracks) != len(b.Tracks):
		return fmt.Sprintf("the number of tracks changes from %d to %d (audio switched on or off)", len(a.Tracks), len(b.Tracks))
	default:
		return "the codec parameters (SPS/PPS or audio configuration) change"
	}
}

// sourceSegment is the segment being exported and, while the clip has not started, the
// fragments since the best keyframe found so far.
type sourceSegment struct {
	seg   catalog.Segment
	media *segmentMedia

	pending       []*fmp4.Part // fragments from the one holding the keyframe candidate
	keyIndex      int          // the candidate's index in pending[0]'s video samples
	keyDTS        uint64
	needKey       bool // video resumes only at a keyframe
	firstFragment bool // no video of this segment written yet
}

// wall is the wall time of decode time dts of this segment's track with timescale ts.
func (s *sourceSegment) wall(dts uint64, ts uint32) time.Time {
	return s.seg.Start.Add(mediaDuration(dts, ts))
}

// fragment takes one source fragment. Before the clip has started it looks for the keyframe
// to start at; after, it writes the fragment's samples that fall in the range.
func (x *exporter) fragment(s *sourceSegment, p *fmp4.Part) (bool, error) {
	if x.started {
		return x.write(s, p, 0)
	}
	vt := trackByID(p, s.media.Video.ID)
	if vt == nil {
		if s.pending != nil {
			s.pending = append(s.pending, p)
		}
		return false, nil
	}
	ts := s.media.Video.TimeScale
	dts := vt.BaseTime
	passed := false
	for j, smp := range vt.Samples {
		at := s.wall(dts, ts)
		if at.After(x.from) {
			passed = true
		}
		// The last keyframe at or before from; failing that (from lies before the footage,
		// or in a hole), the first keyframe after it.
		if !smp.IsNonSyncSample && (!at.After(x.from) || s.pending == nil) {
			s.pending, s.keyIndex, s.keyDTS = []*fmp4.Part{p}, j, dts
		}
		if passed && s.pending != nil {
			break
		}
		dts += uint64(smp.Duration)
	}
	if s.pending != nil && s.pending[len(s.pending)-1] != p {
		s.pending = append(s.pending, p)
	}
	if passed && s.pending != nil {
		return x.flushPending(s)
	}
	return false, nil
}

// flushPending starts the clip at the candidate keyframe and writes the fragments held
// since.
func (x *exporter) flushPending(s *sourceSegment) (bool, error) {
	m := s.media
	x.started = true
	x.init = &m.Init
	x.videoID, x.videoScale = m.Video.ID, m.Video.TimeScale
	if m.Audio != nil {
		x.audioID, x.audioScale = m.Audio.ID, m.Audio.TimeScale
	}
	x.originStart, x.keyDTS = s.seg.Start, s.keyDTS
	x.res.Start = s.wall(s.keyDTS, x.videoScale)
	if x.res.Start.After(x.from) {
		x.res.Gaps = append(x.res.Gaps, Gap{From: x.from, To: x.res.Start})
	}
	x.res.End = x.res.Start
	x.buf.Reset()
	if err := x.init.Marshal(&x.buf); err != nil {
		return false, fmt.Errorf("marshal init: %w", err)
	}
	if err := x.emit(); err != nil {
		return false, err
	}
	pending, skip := s.pending, s.keyIndex
	s.pending = nil
	wrote := false
	for _, p := range pending {
		ok, err := x.write(s, p, skip)
		if err != nil {
			return wrote, err
		}
		wrote = wrote || ok
		skip = 0
		if x.finished {
			break
		}
	}
	return wrote, nil
}

// trackByID returns p's track with id, or nil.
func trackByID(p *fmp4.Part, id int) *fmp4.PartTrack {
	for _, t := range p.Tracks {
		if t.ID == id {
			return t
		}
	}
	return nil
}

// write writes the samples of p that belong to the clip, rebased onto the clip's timeline,
// as one fragment; skip video samples at its head are left out (they precede the keyframe
// the clip starts at).
func (x *exporter) write(s *sourceSegment, p *fmp4.Part, skip int) (bool, error) {
	var out []*fmp4.PartTrack
	// Offsets from this segment's decode times to the clip's: the segment's start relative
	// to the clip's origin. The origin segment gets exactly -keyDTS, so the clip's first
	// frame is at 0.
	since := s.seg.Start.Sub(x.originStart)
	for _, t := range p.Tracks {
		if t.ID == x.videoID {
			if vt := x.videoPart(s, t, skip, signedTicks(since, x.videoScale)-int64(x.keyDTS)); vt != nil {
				out = append(out, vt)
			}
		} else if t.ID == x.audioID {
			off := signedTicks(since, x.audioScale) - int64(x.keyDTS*uint64(x.audioScale)/uint64(x.videoScale))
			if at := x.audioPart(s, t, off); at != nil {
				out = append(out, at)
			}
		}
	}
	if len(out) == 0 {
		return false, nil
	}
	x.seq++
	x.buf.Reset()
	part := &fmp4.Part{SequenceNumber: x.seq, Tracks: out}
	if err := part.Marshal(&x.buf); err != nil {
		return false, fmt.Errorf("marshal fragment %d: %w", x.seq, err)
	}
	return true, x.emit()
}

// videoPart picks and rebases the video samples of one source track run.
func (x *exporter) videoPart(s *sourceSegment, t *fmp4.PartTrack, skip int, off int64) *fmp4.PartTrack {
	dts := t.BaseTime
	for _, smp := range t.Samples[:skip] {
		dts += uint64(smp.Duration)
	}
	samples := t.Samples[skip:]
	if s.needKey {
		i := 0
		for i < len(samples) && samples[i].IsNonSyncSample {
			dts += uint64(samples[i].Duration)
			i++
		}
		samples = samples[i:]
		s.needKey = len(samples) == 0
	}
	n := 0
	end := dts
	for _, smp := range samples {
		if !s.wall(end, x.videoScale).Before(x.to) {
			x.finished = true
			break
		}
		end += uint64(smp.Duration)
		n++
	}
	if n == 0 {
		return nil
	}
	samples = samples[:n]
	outBase := int64(dts) + off
	if hole := outBase - int64(x.videoEnd); x.res.Frames > 0 && hole > 0 {
		if mediaDuration(uint64(hole), x.videoScale) > x.holeTolerance() || (s.firstFragment && s.seg.GapBefore) {
			x.res.Gaps = append(x.res.Gaps, Gap{From: x.res.End, To: s.wall(dts, x.videoScale)})
		}
	}
	// An overlap (a segment's start stamped a little before the previous one's end) is
	// absorbed by starting where the previous fragment ended: decode times must never go
	// back, and a clip cannot show two pictures at once.
	base := uint64(max(outBase, int64(x.videoEnd)))
	pt := &fmp4.PartTrack{ID: x.videoID, BaseTime: base, Samples: samples}
	x.videoEnd = trackEnd(pt)
	x.lastFrame = samples[len(samples)-1].Duration
	x.res.Frames += int64(n)
	x.res.End = s.wall(end, x.videoScale)
	s.firstFragment = false
	return pt
}

// audioPart picks and rebases the audio samples of one source track run: those at or after
// the clip's start and before to.
func (x *exporter) audioPart(s *sourceSegment, t *fmp4.PartTrack, off int64) *fmp4.PartTrack {
	dts := t.BaseTime
	var samples []*fmp4.Sample
	var base int64
	for _, smp := range t.Samples {
		out := int64(dts) + off
		if out >= 0 && s.wall(dts, x.audioScale).Before(x.to) {
			if samples == nil {
				base = out
			}
			samples = append(samples, smp)
		}
		dts += uint64(smp.Duration)
	}
	if samples == nil {
		return nil
	}
	pt := &fmp4.PartTrack{ID: x.audioID, BaseTime: max(uint64(base), x.audioEnd), Samples: samples}
	x.audioEnd = trackEnd(pt)
	return pt
}

// emit writes the buffer to the output.
func (x *exporter) emit() error {
	n, err := x.w.Write(x.buf.Bytes())
	x.res.Bytes += int64(n)
	if err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// signedTicks converts a duration that may be negative to ticks of timescale, without
// overflowing for durations of years.
func signedTicks(d time.Duration, timescale uint32) int64 {
	ts := int64(timescale)
	return int64(d/time.Second)*ts + int64(d%time.Second)*ts/int64(time.Second)
}
