package recorder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"

	"github.com/townwatch/townwatch/recorder/catalog"
)

// PeerNodes reaches the disks of the other recorder nodes sharing the catalog (serve
// -node; viewer.Peers, over each owner's node routes). It is the third place a segment's
// bytes may be, after this disk and the archive: a segment recorded on another node and
// not archived yet is only on that node's disk.
type PeerNodes interface {
	// FetchSegment streams the whole file of seg from the disk of seg.Node.
	FetchSegment(ctx context.Context, seg catalog.Segment) (io.ReadCloser, error)
	// FetchThumbnails streams the scrub-preview sidecar of seg (its records as stored,
	// empty when it has none) from the disk of seg.Node.
	FetchThumbnails(ctx context.Context, seg catalog.Segment) (io.ReadCloser, error)
}

// SetPeers makes the other nodes' disks readable through OpenSegment and
// SegmentThumbnails; self is this node's name (segments.node of the files on this disk).
// Call it before the storage is shared.
func (s *Storage) SetPeers(self string, p PeerNodes) { s.self, s.peers = self, p }

// OnAnotherNode reports whether seg's file is only on the disk of another node than self:
// recorded there and not archived (every node reads the archive itself).
func OnAnotherNode(seg catalog.Segment, self string) bool {
	return seg.Node != "" && seg.Node != self && seg.Archived.IsZero()
}

// PeerReadError is a segment that had to come from its owner node's disk and did not:
// the node is down, refuses, or sent bytes that are not the catalog's. It names the node
// and the segment, so an export fails saying where the footage is, never with a hole.
type PeerReadError struct {
	Node    string
	Segment int64
	Path    string
	Err     error
}

func (e *PeerReadError) Error() string {
	return fmt.Sprintf("segment %d (%s) is on the disk of node %q: %v", e.Segment, e.Path, e.Node, e.Err)
}

func (e *PeerReadError) Unwrap() error { return e.Err }

// errNotAsRecorded: the owner node answered, with bytes that are not the catalog's.
var errNotAsRecorded = errors.New("its bytes are not what was recorded")

// OpenSegment opens the whole of seg for reading (export, verification, stills), wherever
// its bytes are: another node's disk (seg.Node, when it is not this node and the segment
// is not archived), else this disk, else the archive (a local file that is gone is either
// archived or deleted, and the archive says which).
func (s *Storage) OpenSegment(ctx context.Context, seg catalog.Segment) (*os.File, error) {
	if s.peers != nil && OnAnotherNode(seg, s.self) {
		return s.fetchFromPeer(ctx, seg)
	}
	f, err := s.open(seg.Path, false)
	if errors.Is(err, fs.ErrNotExist) && s.archive != nil {
		// Archived since its row was read, or deleted: the archive says which.
		f, err = s.archive.OpenWhole(ctx, seg.Path)
	}
	if errors.Is(err, fs.ErrNotExist) && s.peers == nil && OnAnotherNode(seg, s.self) {
		// A process that does not know the other nodes (a command without -node): say
		// where the footage is rather than that it is missing.
		return nil, &PeerReadError{Node: seg.Node, Segment: seg.ID, Path: seg.Path,
			Err: errors.New("not archived, and this process does not reach the other nodes (serve -node, or the command's -node flag)")}
	}
	return f, err
}

// fetchFromPeer copies seg from its owner node into a nameless file in the storage
// directory (O_TMPFILE: it takes space only while the caller holds it open, and a crash
// leaves nothing behind), hashing as it goes: the bytes are streamed, never held in
// memory, and a closed segment is used only if its size and SHA-256 are the catalog's, as
// for an archived one; the node cannot make it longer than its row. An open segment
// (being written on its node) has no digest yet: its readers check it is at least as long
// as its row. Only what the node does is a PeerReadError; a failure of this disk (full,
// say) is returned as itself, so it is not blamed on the node.
func (s *Storage) fetchFromPeer(ctx context.Context, seg catalog.Segment) (f *os.File, err error) {
	fail := func(err error) error {
		return &PeerReadError{Node: seg.Node, Segment: seg.ID, Path: seg.Path, Err: err}
	}
	rc, err := s.peers.FetchSegment(ctx, seg)
	if err != nil {
		return nil, fail(err)
	}
	defer rc.Close()
	tmp, err := anonymousFile(s.dir)
	if err != nil {
		return nil, fmt.Errorf("segment %d from node %q: a file for it in %s: %w", seg.ID, seg.Node, s.dir, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
		}
	}()
	var body io.Reader = rc
	if !seg.Open {
		body = io.LimitReader(rc, seg.Bytes+1) // one byte more shows a longer file
	}
	peer := &peerReader{r: body}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), peer)
	switch {
	case peer.err != nil:
		return nil, fail(fmt.Errorf("fetching it: %w", peer.err))
	case err != nil:
		return nil, fmt.Errorf("segment %d from node %q: writing it to %s: %w", seg.ID, seg.Node, s.dir, err)
	}
	if !seg.Open {
		if sum := hex.EncodeToString(h.Sum(nil)); n != seg.Bytes || sum != seg.SHA256 {
			return nil, fail(fmt.Errorf("%w: the node sent %d bytes with SHA-256 %s, the catalog recorded %d bytes, %s",
				errNotAsRecorded, n, short(sum), seg.Bytes, short(seg.SHA256)))
		}
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return tmp, nil
}

// peerReader keeps the error of reading from the owner node apart from this disk's.
type peerReader struct {
	r   io.Reader
	err error
}

func (p *peerReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if err != nil && err != io.EOF {
		p.err = err
	}
	return n, err
}

// SegmentThumbnails reads seg's scrub-preview thumbnails: from this disk, or from the
// disk of the node that recorded it. The sidecar stays on that disk when the segment is
// archived (it is not in the bucket), so an archived segment of another node is asked
// there too.
func (s *Storage) SegmentThumbnails(ctx context.Context, seg catalog.Segment) ([]Thumbnail, error) {
	if s.peers == nil || seg.Node == "" || seg.Node == s.self {
		return s.Thumbnails(seg.Path)
	}
	rc, err := s.peers.FetchThumbnails(ctx, seg)
	if err != nil {
		return nil, &PeerReadError{Node: seg.Node, Segment: seg.ID, Path: ThumbnailsPath(seg.Path), Err: err}
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxThumbnailsFile))
	if err != nil {
		return nil, &PeerReadError{Node: seg.Node, Segment: seg.ID, Path: ThumbnailsPath(seg.Path), Err: err}
	}
	return parseThumbnails(data, "node "+seg.Node+": "+ThumbnailsPath(seg.Path))
}

// anonymousFile is a file in dir without a name: O_TMPFILE, or on a file system without
// it (NFS, some older ones) a temporary file unlinked at once.
func anonymousFile(dir string) (*os.File, error) {
	f, err := os.OpenFile(dir, os.O_RDWR|unix.O_TMPFILE, 0o600)
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EISDIR) {
		return f, err
	}
	if f, err = os.CreateTemp(dir, ".peer-segment-*"); err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
