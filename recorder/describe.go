package recorder

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
)

// SegmentFile is what the catalog keeps about a closed segment file, read from the file
// itself: what CreateSegment and CloseSegment need to index it.
type SegmentFile struct {
	Bytes      int64 // the valid length: up to the end of the last complete fragment
	Duration   time.Duration
	Frames     int64 // video frames
	Fragments  []catalog.Fragment
	Codec      string // "H264" or "H265"
	Width      int
	Height     int
	MIMECodecs string // RFC 6381, e.g. "avc1.640028"
	Audio      bool
	SHA256     string // of the first Bytes bytes, lowercase hex
}

// DescribeSegmentFile reads a segment file of size bytes (ftyp+moov, then moof+mdat
// fragments, one video track) the way recovery indexes one: the same scan, the same
// fragment index and codec strings, so a file described here plays back like a recorded
// one. Bytes after the last complete fragment (ffmpeg's mfra, a torn write) are not part
// of it; a file without a complete fragment is an error.
func DescribeSegmentFile(r io.ReaderAt, size int64) (SegmentFile, error) {
	layout, err := scanSegment(r, size)
	if err != nil {
		return SegmentFile{}, err
	}
	if len(layout.Fragments) == 0 {
		return SegmentFile{}, errors.New("no complete fragment after the init")
	}
	m, err := readSegment(r, layout)
	if err != nil {
		return SegmentFile{}, err
	}
	out := SegmentFile{Bytes: layout.ValidEnd, MIMECodecs: mimeCodecs(&m.Init), Audio: m.Audio != nil}
	out.Codec, out.Width, out.Height = describeVideo(&m.Init)
	if out.Duration, out.Frames, out.Fragments, err = segmentDuration(r, layout); err != nil {
		return SegmentFile{}, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, layout.ValidEnd)); err != nil {
		return SegmentFile{}, fmt.Errorf("hash: %w", err)
	}
	out.SHA256 = hex.EncodeToString(h.Sum(nil))
	return out, nil
}
