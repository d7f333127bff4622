package recorder

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A snapshot lands at snapshots/<camera>/<event>.jpg, a later one replaces it, no
// temporary file is left, and it can be opened and removed through the storage.
func TestSnapshotWriteReplaceRemove(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	id := "0192f5c4-7a10-7abc-8def-0123456789ab"
	rel, err := st.WriteSnapshot("namesti", id, []byte("first"))
	if err != nil || rel != "snapshots/namesti/"+id+".jpg" {
		t.Fatalf("WriteSnapshot = %q, %v", rel, err)
	}
	if _, err := st.WriteSnapshot("namesti", id, []byte("better peak")); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, rel))
	if err != nil || !bytes.Equal(got, []byte("better peak")) {
		t.Errorf("snapshot file = %q, %v; want the later picture", got, err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "snapshots", "namesti"))
	if len(entries) != 1 {
		t.Errorf("snapshot folder holds %d entries, want 1 (no temporary file left)", len(entries))
	}
	if err := st.RemoveSnapshot(rel); err != nil {
		t.Fatal(err)
	}
	if err := st.RemoveSnapshot(rel); err != nil {
		t.Errorf("removing a snapshot already gone: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, rel)); !os.IsNotExist(err) {
		t.Errorf("snapshot still there after RemoveSnapshot: %v", err)
	}
}

// Ids that are not the detector's UUIDs and empty pictures are refused with the value named.
func TestSnapshotRejects(t *testing.T) {
	st, err := OpenStorage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, id := range []string{"", "../../etc/passwd", "ABC", "a/b"} {
		if _, err := st.WriteSnapshot("namesti", id, []byte("x")); err == nil || !strings.Contains(err.Error(), "invalid event id") {
			t.Errorf("WriteSnapshot(id %q) = %v, want invalid event id", id, err)
		}
	}
	if _, err := st.WriteSnapshot("namesti", "0a", nil); err == nil || !strings.Contains(err.Error(), "empty picture") {
		t.Errorf("WriteSnapshot(empty) = %v", err)
	}
}
