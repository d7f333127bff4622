package recorder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/townwatch/townwatch/recorder/catalog"
	"io"
	"math"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
)

// This file reads segment files back: the layout scan that crash recovery trusts to decide
// what to keep, and the parse that export and recovery build on. Segment files are outside
// input here (a crash, a bad disk or a hand-copied file can put anything in them), so every
// size is checked against the file before it is used and nothing is allocated on the word
// of a header alone.

// maxMoofSize bounds the moof the scanner reads to check its structure. A ~1 s fragment of
// 120 fps video and audio has a moof of a few KB, and mediacommon refuses a trun of more
// than 19200 samples (about 300 KB); anything claiming more is garbage, and refusing it
// keeps a corrupt size from making the scanner allocate gigabytes.
const maxMoofSize = 4 << 20

// errNoInit: the file does not start with a complete ftyp+moov, so nothing in it can be
// decoded. Recovery must not index such a file.
var errNoInit = errors.New("no complete ftyp+moov at the start of the file")

// fragmentSpan is one complete moof+mdat pair in a segment file.
type fragmentSpan struct{ Offset, Size int64 }

// End is the offset just after the fragment's mdat.
func (f fragmentSpan) End() int64 { return f.Offset + f.Size }

// segmentLayout is what scanSegment finds.
type segmentLayout struct {
	InitEnd   int64          // end of ftyp+moov
	Fragments []fragmentSpan // complete fragments in file order
	ValidEnd  int64          // end of the last complete fragment (InitEnd if none); bytes after it are a torn write
}

// box is a top-level box header as found in the file.
type box struct {
	typ         string
	offset      int64
	size        int64 // whole box, header included
	payloadFrom int64 // offset of the payload (after the 8- or 16-byte header)
}

func (b box) end() int64 { return b.offset + b.size }

// readBox reads the header of the box at off in a file of size bytes. ok is false when
// there is no complete, plausible box there: a header cut short, a size smaller than its
// header or running past the end, size 0 ("to the end of the file", which a torn write
// cannot be told apart from, and which no fragment writer uses), or a type that is not
// four printable ASCII characters (zeros or noise after a crash). err is only for I/O.
func readBox(r io.ReaderAt, off, size int64) (b box, ok bool, err error) {
	if size-off < 8 {
		return box{}, false, nil
	}
	var h [16]byte
	if err := readFull(r, h[:8], off); err != nil {
		return box{}, false, err
	}
	b = box{typ: string(h[4:8]), offset: off, size: int64(binary.BigEndian.Uint32(h[:4])), payloadFrom: off + 8}
	for _, c := range h[4:8] {
		if c < 0x20 || c > 0x7e {
			return box{}, false, nil
		}
	}
	if b.size == 1 { // 64-bit size follows the type
		if size-off < 16 {
			return box{}, false, nil
		}
		if err := readFull(r, h[8:16], off+8); err != nil {
			return box{}, false, err
		}
		large := binary.BigEndian.Uint64(h[8:16])
		if large > math.MaxInt64 {
			return box{}, false, nil
		}
		b.size, b.payloadFrom = int64(large), off+16
	}
	if b.size < b.payloadFrom-off || b.size > size-off {
		return box{}, false, nil
	}
	return b, true, nil
}

// readFull reads len(p) bytes at off; running into the end of the file is an
// io.ErrUnexpectedEOF, which callers only see when the file shrank under them.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %d bytes at offset %d: %w", len(p), off, err)
}

// scanSegment walks top-level boxes (32-bit and 64-bit sizes; unknown boxes like
// sidx/styp/free/mfra are skipped, but a box running past size, a moof without its mdat,
// or garbage ends the valid part) without reading mdat payloads. err is only for I/O
// errors or a file without a complete init.
//
// A fragment counts only when its moof is well formed and an mdat follows it directly,
// both complete. The writer writes each fragment in one write and syncs it before the
// next, so a crash can tear only the last one. What the scan cannot see is a last
// fragment whose boxes are all there but whose mdat holds pages that never reached the
// disk (a filesystem that made the new size durable before the data): that fragment is
// kept and decodes as a damaged last second, which is better than guessing it away.
// Trailing complete boxes that are not fragments (ffmpeg's mfra, say) lie beyond ValidEnd;
// recovery may cut them, which loses no media.
func scanSegment(r io.ReaderAt, size int64) (segmentLayout, error) {
	var l segmentLayout
	first, ok, err := readBox(r, 0, size)
	if err != nil {
		return l, err
	}
	if !ok || first.typ != "ftyp" {
		return l, errNoInit
	}
	for off := first.end(); ; {
		b, ok, err := readBox(r, off, size)
		if err != nil {
			return l, err
		}
		if !ok || b.typ == "moof" || b.typ == "mdat" {
			return l, errNoInit
		}
		off = b.end()
		if b.typ == "moov" {
			l.InitEnd = off
			break
		}
	}
	l.ValidEnd = l.InitEnd
	for off := l.InitEnd; off < size; {
		b, ok, err := readBox(r, off, size)
		if err != nil {
			return l, err
		}
		if !ok {
			break
		}
		switch b.typ {
		case "moof":
			valid, err := wellFormedMoof(r, b)
			if err != nil {
				return l, err
			}
			if !valid {
				return l, nil
			}
			mdat, ok, err := readBox(r, b.end(), size)
			if err != nil {
				return l, err
			}
			if !ok || mdat.typ != "mdat" {
				return l, nil
			}
			l.Fragments = append(l.Fragments, fragmentSpan{Offset: b.offset, Size: mdat.end() - b.offset})
			l.ValidEnd = mdat.end()
			off = mdat.end()
		case "mdat", "ftyp", "moov":
			// Media without its moof, or a second init: not something the writer makes.
			return l, nil
		default:
			off = b.end()
		}
	}
	return l, nil
}

// wellFormedMoof checks that a moof's children (mfhd, then trafs) and the trafs' children
// are boxes that exactly fill their parents, with an mfhd and at least one traf, each
// with a tfhd. Zeroed or stale pages inside a torn fragment fail this even when the moof's
// own header survived. The payload fields are left to mediacommon's parser.
func wellFormedMoof(r io.ReaderAt, moof box) (bool, error) {
	if moof.size > maxMoofSize {
		return false, nil
	}
	buf := make([]byte, moof.size)
	if err := readFull(r, buf, moof.offset); err != nil {
		return false, err
	}
	children, ok := childBoxes(buf[moof.payloadFrom-moof.offset:])
	if !ok || len(children) < 2 || children[0].typ != "mfhd" {
		return false, nil
	}
	trafs := 0
	for _, c := range children[1:] {
		if c.typ != "traf" {
			continue
		}
		grand, ok := childBoxes(c.payload)
		if !ok || len(grand) == 0 || grand[0].typ != "tfhd" {
			return false, nil
		}
		trafs++
	}
	return trafs > 0, nil
}

// child is a box inside an in-memory parent.
type child struct {
	typ     string
	payload []byte
}

// childBoxes splits a parent's payload into its boxes (32-bit sizes only: nothing inside
// a moof is large). ok is false unless the boxes fill the payload exactly.
func childBoxes(p []byte) (out []child, ok bool) {
	for len(p) > 0 {
		if len(p) < 8 {
			return nil, false
		}
		n := binary.BigEndian.Uint32(p[:4])
		if n < 8 || uint64(n) > uint64(len(p)) {
			return nil, false
		}
		out = append(out, child{typ: string(p[4:8]), payload: p[8:n]})
		p = p[n:]
	}
	return out, true
}

// segmentMedia is a parsed segment: its init, which tracks are video and audio, and access
// to its fragments one at a time (a segment can be an hour of video; export and recovery
// never need more than one fragment in memory).
type segmentMedia struct {
	Init   fmp4.Init
	Video  *fmp4.InitTrack // H.264 or H.265
	Audio  *fmp4.InitTrack // nil when the segment has no audio
	r      io.ReaderAt
	layout segmentLayout
}

// readSegment parses the init of a scanned segment and checks that it has the one video
// track the writer records (H.264 or H.265) and at most one other track.
func readSegment(r io.ReaderAt, layout segmentLayout) (*segmentMedia, error) {
	m := &segmentMedia{r: r, layout: layout}
	if err := m.Init.Unmarshal(io.NewSectionReader(r, 0, layout.InitEnd)); err != nil {
		return nil, fmt.Errorf("parse init: %w", err)
	}
	for _, t := range m.Init.Tracks {
		switch t.Codec.(type) {
		case *fmp4.CodecH264, *fmp4.CodecH265:
			if m.Video != nil {
				return nil, fmt.Errorf("init has two video tracks (%d and %d)", m.Video.ID, t.ID)
			}
			m.Video = t
		default:
			if m.Audio != nil {
				return nil, fmt.Errorf("init has two non-video tracks (%d and %d)", m.Audio.ID, t.ID)
			}
			m.Audio = t
		}
	}
	if m.Video == nil {
		return nil, fmt.Errorf("init has no H.264 or H.265 track (%d track(s))", len(m.Init.Tracks))
	}
	return m, nil
}

// fragment reads and parses fragment i. The samples' payloads point into a buffer of
// their own, which the caller may keep.
func (m *segmentMedia) fragment(i int) (*fmp4.Part, error) {
	span := m.layout.Fragments[i]
	buf := make([]byte, span.Size)
	if err := readFull(m.r, buf, span.Offset); err != nil {
		return nil, fmt.Errorf("fragment %d at offset %d: %w", i+1, span.Offset, err)
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(buf); err != nil {
		return nil, fmt.Errorf("fragment %d at offset %d: %w", i+1, span.Offset, err)
	}
	if len(parts) != 1 {
		return nil, fmt.Errorf("fragment %d at offset %d: %d moof boxes, want 1", i+1, span.Offset, len(parts))
	}
	for _, t := range parts[0].Tracks {
		var ts uint32
		switch {
		case t.ID == m.Video.ID:
			ts = m.Video.TimeScale
		case m.Audio != nil && t.ID == m.Audio.ID:
			ts = m.Audio.TimeScale
		default:
			return nil, fmt.Errorf("fragment %d at offset %d: track %d is not in the init", i+1, span.Offset, t.ID)
		}
		// Checked once here so that every later conversion of these decode times to wall
		// time is exact.
		if end := trackEnd(t); end < t.BaseTime || mediaDurationErr(end, ts) != nil {
			return nil, fmt.Errorf("fragment %d at offset %d: track %d: decode times out of range (base %d)", i+1, span.Offset, t.ID, t.BaseTime)
		}
	}
	return parts[0], nil
}

// trackEnd is the decode time just after a part track's last sample.
func trackEnd(t *fmp4.PartTrack) uint64 {
	end := t.BaseTime
	for _, s := range t.Samples {
		end += uint64(s.Duration)
	}
	return end
}

// maxMediaTime bounds decode times: a segment is at most hours long, and anything near
// time.Duration's 292 years is a corrupt tfdt. A bound well below that keeps every sum of
// a segment's start and a media time exact.
const maxMediaTime = 100 * 365 * 24 * time.Hour

// mediaDurationErr checks that ticks of timescale are within maxMediaTime.
func mediaDurationErr(ticks uint64, timescale uint32) error {
	if ticks/uint64(timescale) > uint64(maxMediaTime/time.Second) {
		return fmt.Errorf("media time %d/%d s is out of range", ticks, timescale)
	}
	return nil
}

// mediaDuration converts ticks of timescale to a duration. Callers pass decode times that
// fragment has checked (or small multiples of a frame duration), which
// mediaDurationErr bounds.
func mediaDuration(ticks uint64, timescale uint32) time.Duration {
	sec, rem := ticks/uint64(timescale), ticks%uint64(timescale)
	return time.Duration(sec)*time.Second + time.Duration(rem*uint64(time.Second)/uint64(timescale))
}

// segmentDuration returns the media duration of the complete fragments (video track: last
// sample's base time + duration), the number of video samples and the fragment index the
// writer would have kept; recovery uses them for the catalog row of a segment the writer
// could not close.
func segmentDuration(r io.ReaderAt, layout segmentLayout) (dur time.Duration, videoFrames int64, index []catalog.Fragment, err error) {
	m, err := readSegment(r, layout)
	if err != nil {
		return 0, 0, nil, err
	}
	var end uint64
	for i, span := range layout.Fragments {
		p, err := m.fragment(i)
		if err != nil {
			return 0, 0, nil, err
		}
		entry := catalog.Fragment{Offset: span.Offset, Length: span.Size, Keyframe: -1,
			Start: mediaDuration(end, m.Video.TimeScale)}
		for _, t := range p.Tracks {
			if t.ID != m.Video.ID {
				continue
			}
			entry.Start = mediaDuration(t.BaseTime, m.Video.TimeScale)
			entry.Duration = mediaDuration(trackEnd(t), m.Video.TimeScale) - entry.Start
			dts := t.BaseTime
			for _, smp := range t.Samples {
				if !smp.IsNonSyncSample {
					entry.Keyframe = mediaDuration(dts, m.Video.TimeScale)
					break
				}
				dts += uint64(smp.Duration)
			}
			end = max(end, trackEnd(t))
			videoFrames += int64(len(t.Samples))
		}
		index = append(index, entry)
	}
	return mediaDuration(end, m.Video.TimeScale), videoFrames, index, nil
}
