package recorder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Storage is the recording area under storage.path: every media file is created, opened
// and removed through an os.Root, so that no path computed from a camera id or a catalog
// row can reach outside it.
type Storage struct {
	dir  string
	root *os.Root
	// thumbMu orders thumbnail appends with segment removals (see AppendThumbnail).
	thumbMu sync.Mutex
	// archive is the archive tier (nil: none); set once by SetArchive before use.
	archive ArchiveTier
	// peers reaches the other nodes' disks, self is this node (SetPeers; nil, "": one
	// node, or a process that does not reach the others).
	peers PeerNodes
	self  string
}

// ArchiveTier is where the bytes of archived segments are (recorder/archive): an object
// per segment, named by the segment's catalog path. Errors for an object that does not
// exist wrap fs.ErrNotExist.
type ArchiveTier interface {
	// OpenWhole returns a local file holding the whole object (a cached copy), for
	// readers that read all of a segment or need a file (export, verification, stills).
	OpenWhole(ctx context.Context, key string) (*os.File, error)
	// OpenRange returns a reader that fetches only the ranges read (browser playback).
	OpenRange(ctx context.Context, key string) (MediaReader, error)
	// RemoveObject removes the object; one that is already gone is not an error.
	RemoveObject(ctx context.Context, key string) error
}

// MediaReader reads a segment's bytes at offsets, wherever they are stored.
type MediaReader interface {
	io.ReaderAt
	io.Closer
}

// SetArchive makes the archive tier readable through Open and OpenMedia and lets
// retention remove archived segments' objects. Call it before the storage is shared.
func (s *Storage) SetArchive(a ArchiveTier) { s.archive = a }

// RecordingsDir is the folder under the storage path that holds the segments.
const RecordingsDir = "recordings"

// segmentTimeLayout names segment files by their start in UTC, to the millisecond, in a
// form that sorts by time and is valid on every filesystem (no colons).
const segmentTimeLayout = "20060102T150405.000Z"

// OpenStorage opens (creating it if needed) the storage directory.
func OpenStorage(dir string) (*Storage, error) {
	// Footage is personal data: only townwatch's own user may read it. Directories are
	// made 0700 and files 0600, and a storage directory someone made by hand with wider
	// permissions is narrowed here.
	if err := os.MkdirAll(filepath.Join(dir, RecordingsDir), 0o700); err != nil {
		return nil, fmt.Errorf("storage.path %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("storage.path %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("storage.path %s: %w", dir, err)
	}
	return &Storage{dir: dir, root: root}, nil
}

// Close releases the storage root.
func (s *Storage) Close() error { return s.root.Close() }

// Dir returns the storage directory as configured.
func (s *Storage) Dir() string { return s.dir }

// SegmentPath returns the catalog path of a segment of camera starting at start:
// recordings/<camera>/<YYYY>/<MM>/<DD>/<start-UTC>.mp4 (slash-separated, relative).
func SegmentPath(camera string, start time.Time) string {
	t := start.UTC()
	return path.Join(RecordingsDir, camera, t.Format("2006"), t.Format("01"), t.Format("02"), t.Format(segmentTimeLayout)+".mp4")
}

// ParseSegmentPath recovers the camera and start time from a segment path made by
// SegmentPath; it is how files the catalog does not know are adopted.
func ParseSegmentPath(p string) (camera string, start time.Time, err error) {
	parts := strings.Split(p, "/")
	if len(parts) != 6 || parts[0] != RecordingsDir || !strings.HasSuffix(parts[5], ".mp4") {
		return "", time.Time{}, fmt.Errorf("%s: not a segment path (want %s/<camera>/<YYYY>/<MM>/<DD>/<start>.mp4)", p, RecordingsDir)
	}
	start, err = time.Parse(segmentTimeLayout, strings.TrimSuffix(parts[5], ".mp4"))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("%s: file name is not a start time: %w", p, err)
	}
	if start.Format("2006/01/02") != strings.Join(parts[2:5], "/") {
		return "", time.Time{}, fmt.Errorf("%s: folder does not match the start time", p)
	}
	return parts[1], start, nil
}

// create makes a new segment file (never overwriting one) and makes its directory entry
// durable, so that a crash cannot leave a catalog row whose file vanished with the
// directory's unsynced metadata.
func (s *Storage) create(rel string) (*os.File, error) {
	dir := path.Dir(rel)
	if err := s.root.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := s.root.OpenFile(rel, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if err := s.syncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (s *Storage) syncDir(dir string) error {
	d, err := s.root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// open opens a segment file for reading and, with write, for truncation during recovery.
func (s *Storage) open(rel string, write bool) (*os.File, error) {
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	return s.root.OpenFile(rel, flag, 0)
}

// Open opens a file of the storage by its path (event snapshots). A segment whose local
// file is gone is read from the archive tier, if there is one: the archive job removes
// the local file only after the object was verified and the row marked, so a file missing
// here is either archived or deleted, and the archive says which. Readers of a segment
// whose row they hold use OpenSegment, which also reaches other nodes' disks.
func (s *Storage) Open(rel string) (*os.File, error) {
	f, err := s.open(rel, false)
	if errors.Is(err, fs.ErrNotExist) && s.archive != nil {
		// Open's callers have no context to pass; the fetch ends with the store's
		// own timeouts.
		return s.archive.OpenWhole(context.Background(), rel)
	}
	return f, err
}

// OpenLocal opens a segment's local file only, never the archive's copy: what the archive
// job uploads.
func (s *Storage) OpenLocal(rel string) (*os.File, error) { return s.open(rel, false) }

// OpenMedia opens a segment for range reads: its local file, or else its archived object,
// read range by range rather than fetched whole.
func (s *Storage) OpenMedia(ctx context.Context, rel string) (MediaReader, error) {
	f, err := s.open(rel, false)
	if errors.Is(err, fs.ErrNotExist) && s.archive != nil {
		return s.archive.OpenRange(ctx, rel)
	}
	return f, err
}

// RemoveLocalCopy removes the local file of a segment the archive tier holds, and makes
// the removal durable. Its thumbnails stay: they are small, and scrubbing archived
// footage still shows them; retention removes them with the segment.
func (s *Storage) RemoveLocalCopy(rel string) error {
	err := s.root.Remove(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.syncDir(path.Dir(rel))
}

// removeObject removes an archived segment's object, if there is an archive tier.
func (s *Storage) removeObject(ctx context.Context, rel string) error {
	if s.archive == nil {
		return fmt.Errorf("segment %s is archived, but storage.archive is not configured: its object stays in the bucket", rel)
	}
	return s.archive.RemoveObject(ctx, rel)
}

// remove deletes a segment file and, first, its thumbnails; one that is already gone is
// not an error (an interrupted deletion being finished). Every deletion of a segment file
// (retention, recovery, an abandoned empty segment) comes here, so thumbnails never
// outlive their footage.
func (s *Storage) remove(rel string) error {
	s.thumbMu.Lock()
	defer s.thumbMu.Unlock()
	if err := s.removeThumbnails(rel); err != nil {
		return err
	}
	err := s.root.Remove(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// walkSegments calls fn for every .mp4 file under recordings/, with its catalog path.
func (s *Storage) walkSegments(fn func(rel string, size int64) error) error {
	return fs.WalkDir(s.root.FS(), RecordingsDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".mp4") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return fn(p, info.Size())
	})
}

// DiskSpace is the filesystem's size and free space as an unprivileged writer sees it.
type DiskSpace struct {
	Total, Free uint64
}

// Space reports the filesystem holding the storage directory.
func (s *Storage) Space() (DiskSpace, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.dir, &st); err != nil {
		return DiskSpace{}, fmt.Errorf("statfs %s: %w", s.dir, err)
	}
	bs := uint64(st.Bsize)
	return DiskSpace{Total: st.Blocks * bs, Free: st.Bavail * bs}, nil
}
