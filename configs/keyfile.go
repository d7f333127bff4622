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
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(data)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return werr
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists: %w", path, fs.ErrExist)
		}
		return err
	}
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
