package recorder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// The catalog lives on the disk it indexes (storage.path/catalog.db), so a disk filled to
// the last byte — by other data, or faster than min_free could act — leaves SQLite no
// room to record a deletion ("database or disk is full"), and since a deletion is
// recorded before its file is removed, nothing could ever be freed again. Retention
// therefore keeps a reserve: a file of catalogReserveBytes at the top of the storage
// directory, made while there is room above min_free and removed by the first sweep that
// finds the disk full, so that its catalog writes succeed. Until it is made again,
// min_free plans for its size on top (Retention.catalogReserve).
const (
	// catalogReserveFile is the reserve's name under storage.path: outside recordings/,
	// so it is never taken for footage.
	catalogReserveFile = "catalog.reserve"
	// catalogReserveBytes is the reserve's size. Recording one deletion appends a few
	// 4 KiB pages to the catalog's write-ahead log (the segment, the deletion and their
	// index entries: about 40 KiB), and the first deletion frees a whole segment, far
	// more; 1 MiB leaves room for a hold and a couple of dozen deletions before that.
	catalogReserveBytes = 1 << 20
)

// releaseCatalogReserve removes the reserve so that the catalog can write on a full
// disk. It reports whether there was one.
func (s *Storage) releaseCatalogReserve() (bool, error) {
	err := s.root.Remove(catalogReserveFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("releasing the catalog reserve %s: %w", catalogReserveFile, err)
	}
	return true, nil
}

// hasCatalogReserve reports whether the reserve is in place, whole.
func (s *Storage) hasCatalogReserve() (bool, error) {
	info, err := s.root.Stat(catalogReserveFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("catalog reserve %s: %w", catalogReserveFile, err)
	}
	return info.Size() == catalogReserveBytes, nil
}

// makeCatalogReserve creates the reserve if it is missing or short (a crash while making
// it). It reports whether it wrote one. The bytes are written, not just a size set, so
// that the filesystem really allocates them.
func (s *Storage) makeCatalogReserve() (bool, error) {
	if ok, err := s.hasCatalogReserve(); ok || err != nil {
		return false, err
	}
	f, err := s.root.OpenFile(catalogReserveFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return false, fmt.Errorf("making the catalog reserve %s: %w", catalogReserveFile, err)
	}
	_, err = f.Write(make([]byte, catalogReserveBytes))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// A partial reserve would only take space; the next sweep tries again.
		s.root.Remove(catalogReserveFile)
		return false, fmt.Errorf("making the catalog reserve %s: %w", catalogReserveFile, err)
	}
	return true, nil
}
