package recorder

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// What a node recorded after its last indexed fragment is moved out of the recordings,
// playable (behind the file's header), and the segment file ends where its row does; with
// no row at all, the whole file goes aside. Nothing is lost either way.
func TestSetAsideKeepsTheUnindexedTail(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	header, indexed, tail := bytes.Repeat([]byte("H"), 100), bytes.Repeat([]byte("I"), 400), bytes.Repeat([]byte("T"), 300)
	write := func(rel string) {
		f, err := st.create(rel)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(append(append(append([]byte{}, header...), indexed...), tail...))
		f.Close()
	}
	rel := SegmentPath("gate", time.Date(2026, 12, 5, 20, 0, 0, 0, time.UTC))
	write(rel)
	keep := int64(len(header) + len(indexed))
	if err := st.setAside(rel, int64(len(header)), keep); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, rel))
	if !bytes.Equal(got, append(append([]byte{}, header...), indexed...)) {
		t.Errorf("segment file after setting aside: %d bytes, want the %d its row covers", len(got), keep)
	}
	aside, _ := os.ReadFile(filepath.Join(dir, FencedDir, rel))
	if !bytes.Equal(aside, append(append([]byte{}, header...), tail...)) {
		t.Errorf("set-aside file: %d bytes, want header + tail (%d)", len(aside), len(header)+len(tail))
	}

	whole := SegmentPath("gate", time.Date(2026, 12, 5, 20, 1, 0, 0, time.UTC))
	write(whole)
	if err := st.setAside(whole, int64(len(header)), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, whole)); !os.IsNotExist(err) {
		t.Errorf("a segment without a row stays in recordings (%v)", err)
	}
	if aside, _ := os.ReadFile(filepath.Join(dir, FencedDir, whole)); len(aside) != len(header)+len(indexed)+len(tail) {
		t.Errorf("set-aside file of a segment without a row: %d bytes, want the whole file", len(aside))
	}
}
