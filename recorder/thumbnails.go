package recorder

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"
)

// Scrub-preview thumbnails are kept beside their segment, in <start>.thumbs next to
// <start>.mp4, as records appended while the segment is written: the capture time (Unix
// nanoseconds, 8 bytes big-endian), the JPEG's length (4 bytes big-endian) and the JPEG.
// One write per record, no fsync: a thumbnail is a convenience, and a crash loses at most
// the last few, which reading ignores as a torn tail. They are removed with the segment
// (Storage.remove), first, so no crash can leave thumbnails of a deleted segment behind.

// maxThumbnailBytes bounds one record's JPEG: a 240 px thumbnail is about 6 KiB; a
// larger length is a corrupt file, not a picture.
const maxThumbnailBytes = 256 << 10

const thumbnailHeader = 12

// Thumbnail is one stored scrub-preview picture.
type Thumbnail struct {
	At   time.Time // capture time of the frame shown, UTC
	JPEG []byte
}

// ThumbnailsPath is the file holding the thumbnails of the segment at segment (a catalog
// path made by SegmentPath).
func ThumbnailsPath(segment string) string {
	return strings.TrimSuffix(segment, ".mp4") + ".thumbs"
}

// AppendThumbnail stores a thumbnail of the segment at segment (its catalog path). The
// segment file must exist: a thumbnail that arrives after its segment was deleted is
// refused (fs.ErrNotExist), never the start of an orphan file.
func (s *Storage) AppendThumbnail(segment string, at time.Time, jpeg []byte) error {
	if len(jpeg) == 0 || len(jpeg) > maxThumbnailBytes {
		return fmt.Errorf("thumbnail of %s at %s: %d bytes; want 1..%d", segment, at.UTC().Format(time.RFC3339Nano), len(jpeg), maxThumbnailBytes)
	}
	rec := appendThumbnailRecord(make([]byte, 0, thumbnailHeader+len(jpeg)), at, jpeg)
	// Held with remove's: the segment cannot be removed between the check that it exists
	// and the write, which would leave a thumbnails file no deletion ever removes.
	s.thumbMu.Lock()
	defer s.thumbMu.Unlock()
	if _, err := s.root.Stat(segment); err != nil {
		return err
	}
	f, err := s.root.OpenFile(ThumbnailsPath(segment), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(rec)
	return errors.Join(err, f.Close())
}

// maxThumbnailsFile bounds what is read of one sidecar: an hour's segment with a
// thumbnail every 2 s is about 11 MiB.
const maxThumbnailsFile = 64 << 20

// Thumbnails reads the thumbnails of the segment at segment, oldest first. A segment
// without any has none (no error). A torn last record (a crash while appending) is
// ignored; a record that cannot be one (a length beyond maxThumbnailBytes) ends the
// reading with an error naming the file and offset, and what precedes it is returned.
func (s *Storage) Thumbnails(segment string) ([]Thumbnail, error) {
	rel := ThumbnailsPath(segment)
	f, err := s.root.Open(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxThumbnailsFile))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	return parseThumbnails(data, rel)
}

// EncodeThumbnails lays thumbnails out as the records of a sidecar file: how a node sends
// another node the thumbnails of a segment on its disk (SegmentThumbnails reads them).
func EncodeThumbnails(thumbs []Thumbnail) []byte {
	var out []byte
	for _, th := range thumbs {
		out = appendThumbnailRecord(out, th.At, th.JPEG)
	}
	return out
}

// appendThumbnailRecord appends one sidecar record to buf.
func appendThumbnailRecord(buf []byte, at time.Time, jpeg []byte) []byte {
	buf = binary.BigEndian.AppendUint64(buf, uint64(at.UnixNano()))
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(jpeg)))
	return append(buf, jpeg...)
}

// parseThumbnails reads the records of a sidecar; name says where it came from in errors.
func parseThumbnails(data []byte, name string) ([]Thumbnail, error) {
	var out []Thumbnail
	for off := 0; len(data)-off >= thumbnailHeader; {
		at := int64(binary.BigEndian.Uint64(data[off:]))
		n := int(binary.BigEndian.Uint32(data[off+8:]))
		if n == 0 || n > maxThumbnailBytes {
			return out, fmt.Errorf("%s: record at byte %d claims %d bytes; not a thumbnails file past that point", name, off, n)
		}
		end := off + thumbnailHeader + n
		if end > len(data) {
			break // torn tail
		}
		jpg := data[off+thumbnailHeader : end]
		if !bytes.HasPrefix(jpg, []byte{0xff, 0xd8}) {
			return out, fmt.Errorf("%s: record at byte %d is not a JPEG", name, off)
		}
		out = append(out, Thumbnail{At: time.Unix(0, at).UTC(), JPEG: jpg})
		off = end
	}
	return out, nil
}

// removeThumbnails deletes a segment's thumbnails, if it has any. The caller holds
// thumbMu.
func (s *Storage) removeThumbnails(segment string) error {
	if path.Ext(segment) != ".mp4" {
		return nil
	}
	err := s.root.Remove(ThumbnailsPath(segment))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
