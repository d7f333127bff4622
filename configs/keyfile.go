package configs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// CreateKeyFile writes a new secret file (a key townwatch makes at its first start) at
// path: 0600, in a 0700 directory, whole and synced before it has its name. It is written
// to a private temporary file and linked into place, because link, unlike rename, fails
// when the name exists: two processes creating the same key at once end up sharing one
// complete key, and nobody ever reads half of one. A name that exists already is an error
// wrapping fs.ErrExist, and the caller reads that key instead: a key in use is never
// replaced. The directory is synced, so the name survives a power cut as well as the bytes.
func CreateKeyFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := writeSyncedTemp(dir, filepath.Base(path), data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists: %w", path, fs.ErrExist)
		}
		return err
	}
	return syncDir(dir)
}

// WriteFileAtomic replaces path with data so that a reader, and the file after a crash or
// a power cut, is either the old content or the new, never a mix or a truncated file:
// the bytes go to a temporary file beside it (mode 0600), which is synced, renamed over
// path, and the directory is synced so that the rename itself is durable. A crash leaves
// at most a temporary file whose name starts with a dot, which loaders ignore.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := writeSyncedTemp(dir, filepath.Base(path), data)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// writeSyncedTemp writes data to a new 0600 file ".<base>-<random>" in dir and syncs it;
// it returns the file's path. Nothing is left behind when it fails.
func writeSyncedTemp(dir, base string, data []byte) (string, error) {
	tmp, err := os.CreateTemp(dir, "."+base+"-*")
	if err != nil {
		return "", err
	}
	_, werr := tmp.Write(data)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return "", werr
	}
	return tmp.Name(), nil
}

// syncDir makes the names in dir (a new link, a rename, a removal) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
