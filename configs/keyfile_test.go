package configs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// A key file is made once, private, and never replaced.
func TestCreateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "a.key")
	if err := CreateKeyFile(path, []byte("first\n")); err != nil {
		t.Fatal(err)
	}
	if err := CreateKeyFile(path, []byte("second\n")); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second create: %v, want fs.ErrExist", err)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "first\n" {
		t.Errorf("key file holds %q (%v), want the first key", b, err)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		if info, err := os.Stat(p); err != nil || info.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", p, info.Mode().Perm(), err, want)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*")); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}
