package recorder

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// verify-archive's promise: footage as recorded passes, across retention's deletions; a
// byte changed in a file is named; a row changed to match its edited file breaks the next
// segment's link; a segment removed behind the catalog's back is named.
func TestVerifyArchiveFindsEveryKindOfTampering(t *testing.T) {
	t.Parallel()
	rig := newRecorderRig(t)
	rig.startCamera(t)
	ctx, cancel := context.WithCancel(context.Background())
	w, src := rig.writerAndSource(t, 2*time.Second)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); w.Run(ctx) }()
	go func() { defer wg.Done(); src.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for w.Stats().Segments < 6 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	bg := context.Background()
	segs, err := rig.catalog.AllSegments(bg)
	if err != nil || len(segs) < 5 {
		t.Fatalf("%d segments (%v); want at least 5", len(segs), err)
	}
	verify := func() ArchiveReport {
		t.Helper()
		rep, err := VerifyArchive(bg, rig.storage, rig.catalog, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if rep := verify(); len(rep.Problems) != 0 || rep.Checked != len(segs) || rep.Unchained != 0 {
		t.Fatalf("untouched archive: %+v, want %d segments checked and no problem", rep, len(segs))
	}
	// Retention deletes the oldest and a middle one: the chain runs through the deletion log.
	for _, s := range []int{0, 2} {
		if _, err := rig.catalog.DeleteSegment(bg, segs[s].ID, "retention: test", time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := rig.storage.remove(segs[s].Path); err != nil {
			t.Fatal(err)
		}
	}
	if rep := verify(); len(rep.Problems) != 0 || rep.Checked != len(segs)-2 {
		t.Fatalf("after retention: %+v, want no problem", rep)
	}

	// One byte flipped in segment 3's file.
	path := filepath.Join(rig.dir, filepath.FromSlash(segs[3].Path))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	rep := verify()
	if len(rep.Problems) != 1 || rep.Problems[0].Segment.ID != segs[3].ID || !strings.Contains(rep.Problems[0].What, "bytes changed") {
		t.Fatalf("flipped byte: problems %v, want segment %d's bytes named", rep.Problems, segs[3].ID)
	}
	// The forger updates the row to the edited file's digest: now the next link breaks.
	_, sum := fileSHA(t, path)
	forge(t, rig.dir, `UPDATE segments SET sha256 = $1 WHERE id = $2`, sum, segs[3].ID)
	rep = verify()
	if len(rep.Problems) != 1 || rep.Problems[0].Segment.ID != segs[4].ID || !strings.Contains(rep.Problems[0].What, "hash chain broken") {
		t.Fatalf("row forged to match: problems %v, want segment %d's link named", rep.Problems, segs[4].ID)
	}
	// A segment's row removed without a deletion record: the segment after it (deleted
	// by retention, its link kept in the deletion log) no longer links.
	forge(t, rig.dir, `DELETE FROM segments WHERE id = $1`, segs[1].ID)
	rep = verify()
	if len(rep.Problems) != 2 || rep.Problems[0].Segment.ID != segs[2].ID || !strings.Contains(rep.Problems[0].What, "(deleted) hash chain broken") ||
		rep.Problems[1].Segment.ID != segs[4].ID {
		t.Fatalf("row removed: problems %v, want segment %d (deleted, linking to the removed one) and %d", rep.Problems, segs[2].ID, segs[4].ID)
	}
}

// forge changes the catalog file behind townwatch's back, as someone with access to the
// database would.
func forge(t *testing.T, dir, stmt string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmt, args...); err != nil {
		t.Fatal(err)
	}
}
