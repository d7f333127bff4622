package recorder

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/townwatch/townwatch/recorder/catalog"
)

// FencedDir is the folder under the storage path that holds footage a node recorded
// after it had lost a camera's lease (see recording.setAside). Nothing there is in the
// catalog, and retention never touches it: an administrator decides what to do with it.
const FencedDir = "fenced"

// refused reports whether err is the catalog refusing a write because this node lost the
// camera's lease, and counts it.
func (rc *recording) refused(err error) bool {
	if !errors.Is(err, catalog.ErrFenced) {
		return false
	}
	rc.w.fencedWrites.Add(1)
	return true
}

// fenceOff stops recording for good after a fenced write: another node records the
// camera now, and whatever this Writer recorded from here on could never be indexed.
// The open segment's file is closed and what the catalog does not have of it is set
// aside.
func (rc *recording) fenceOff() {
	if s := rc.seg; s != nil {
		rc.seg = nil
		if err := s.file.Close(); err != nil {
			rc.w.log.Error("closing segment file", "path", s.path, "err", err)
		}
		rc.w.open.Store(nil)
		rc.setAside(s)
	}
	if !rc.fenced {
		rc.w.log.Warn("camera lease lost: the catalog refused this node's write; recording stopped, another node records the camera")
	}
	rc.fenced = true
	rc.w.setState(StateFenced, "this node no longer holds the camera's lease; another node records it")
}

// setAside moves the part of closed segment s that the catalog does not index (written
// after its last successful write, so possibly after the lease ended) out of the
// recordings: it is copied, behind the file's MP4 header so that it plays on its own, to
// FencedDir/<path>, and the segment file is cut back to what its open row says. The row
// stays open; this node's next start completes it from the file (Recover), which then
// holds only footage indexed under the lease. Nothing is deleted: footage that cannot be
// shown as the camera's is kept for a person to look at, never lost.
func (rc *recording) setAside(s *segment) {
	keep := s.cataloged
	if s.id == 0 {
		keep = 0 // no row at all: the whole file goes aside
	}
	if s.bytes <= keep {
		return
	}
	if err := rc.w.st.setAside(s.path, s.initBytes, keep); err != nil {
		rc.w.log.Error("footage recorded after the lease was lost could not be set aside; it stays in the segment file", "path", s.path, "err", err)
		return
	}
	rc.w.log.Warn("footage recorded after the lease was lost set aside, not indexed", "path", path.Join(FencedDir, s.path), "bytes", s.bytes-keep)
}

// setAside copies bytes [0, header) and [keep, end) of segment file rel to FencedDir/rel,
// syncs the copy, then truncates rel to keep (removing it when keep is 0).
func (st *Storage) setAside(rel string, header, keep int64) error {
	src, err := st.open(rel, true)
	if err != nil {
		return err
	}
	defer src.Close()
	dst := path.Join(FencedDir, rel)
	if err := st.root.MkdirAll(path.Dir(dst), 0o700); err != nil {
		return err
	}
	out, err := st.root.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	start := keep
	if keep == 0 {
		header = 0 // the whole file, its header included
	}
	_, err = io.Copy(out, io.NewSectionReader(src, 0, header))
	if err == nil {
		_, err = io.Copy(out, io.NewSectionReader(src, start, 1<<62))
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = st.syncDir(path.Dir(dst))
	}
	if err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	if keep == 0 {
		src.Close()
		return st.remove(rel)
	}
	if err := src.Truncate(keep); err != nil {
		return err
	}
	return src.Sync()
}
