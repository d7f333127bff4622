package recorder

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/townwatch/townwatch/recorder/catalog"
)

// openStore opens storage and its catalog in dir, as serve does, and closes both when the
// test ends (the catalog first; a close error fails the test, since it can mean a lost
// write).
func openStore(t testing.TB, dir string) (*Storage, *catalog.Catalog) {
	t.Helper()
	st, err := OpenStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cat, err := catalog.Open(context.Background(), filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cat.Close(); err != nil {
			t.Errorf("closing the catalog: %v", err)
		}
	})
	return st, cat
}
