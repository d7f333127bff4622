package recorder

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/configs"
)

// fakeJPEG is enough of a JPEG for the store, which checks only the start marker.
func fakeJPEG(seed byte) []byte { return []byte{0xff, 0xd8, 0xff, 0xe0, seed, seed, 0xff, 0xd9} }

// Thumbnails are stored beside their segment and read back in order with their times; a
// torn last record (a crash while appending) is ignored; a corrupt length is reported by
// file and offset.
func TestThumbnailsStoredBesideTheSegment(t *testing.T) {
	fx := newRetFixture(t, "", &configs.Config{Cameras: []configs.Camera{retCamera("cam", time.Hour, 0)}})
	seg := fx.openSegment("cam", retT0)
	if err := fx.st.AppendThumbnail(seg.Path, retT0, nil); err == nil || !strings.Contains(err.Error(), "0 bytes") {
		t.Errorf("empty thumbnail: %v, want an error naming its size", err)
	}
	for i := range 3 {
		if err := fx.st.AppendThumbnail(seg.Path, retT0.Add(time.Duration(i)*2*time.Second), fakeJPEG(byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(fx.dir, filepath.FromSlash(strings.TrimSuffix(seg.Path, ".mp4")+".thumbs"))
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("thumbnails are not beside the segment: %v", err)
	}
	got, err := fx.st.Thumbnails(seg.Path)
	if err != nil || len(got) != 3 {
		t.Fatalf("read %d thumbnails, %v; want 3", len(got), err)
	}
	for i, th := range got {
		if want := retT0.Add(time.Duration(i) * 2 * time.Second); !th.At.Equal(want) || th.JPEG[4] != byte(i) {
			t.Errorf("thumbnail %d: %v, byte %d; want %v, byte %d", i, th.At, th.JPEG[4], want, i)
		}
	}
	// A crash in the middle of the next append.
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 8, 0xff})
	f.Close()
	if got, err := fx.st.Thumbnails(seg.Path); err != nil || len(got) != 3 {
		t.Errorf("after a torn append: %d thumbnails, %v; want the 3 complete ones", len(got), err)
	}
	// A length no thumbnail has.
	os.Truncate(file, int64(3*(thumbnailHeader+8)))
	f, _ = os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 0, 0, 0})
	f.Close()
	if got, err := fx.st.Thumbnails(seg.Path); len(got) != 3 || err == nil || !strings.Contains(err.Error(), "at byte 60") {
		t.Errorf("corrupt record: %d thumbnails, %v; want the 3 before it and an error naming byte 60", len(got), err)
	}
	// A segment without thumbnails has none.
	other := fx.openSegment("cam", retT0.Add(time.Minute))
	if got, err := fx.st.Thumbnails(other.Path); len(got) != 0 || err != nil {
		t.Errorf("segment without thumbnails: %d, %v", len(got), err)
	}
}

// Retention deletes a segment's thumbnails with it, and a thumbnail arriving for a
// deleted segment does not bring its file back.
func TestRetentionDeletesThumbnailsWithTheSegment(t *testing.T) {
	cfg := &configs.Config{Cameras: []configs.Camera{retCamera("cam", 10*time.Minute, 0)}}
	fx := newRetFixture(t, "", cfg)
	old := fx.segment("cam", retT0, time.Minute, 1000)
	kept := fx.segment("cam", retT0.Add(30*time.Minute), time.Minute, 1000)
	for _, s := range []string{old.Path, kept.Path} {
		if err := fx.st.AppendThumbnail(s, retT0, fakeJPEG(1)); err != nil {
			t.Fatal(err)
		}
	}
	fx.clock.Set(retT0.Add(40 * time.Minute))
	fx.sweep(fx.ret)
	thumbsOf := func(seg string) error {
		_, err := os.Stat(filepath.Join(fx.dir, filepath.FromSlash(ThumbnailsPath(seg))))
		return err
	}
	if err := thumbsOf(old.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("thumbnails of the deleted segment: %v, want them gone", err)
	}
	if err := thumbsOf(kept.Path); err != nil {
		t.Errorf("thumbnails of the kept segment: %v", err)
	}
	if err := fx.st.AppendThumbnail(old.Path, retT0.Add(10*time.Second), fakeJPEG(2)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("thumbnail for a deleted segment: %v, want fs.ErrNotExist", err)
	}
	if err := thumbsOf(old.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a late thumbnail recreated the deleted segment's thumbnails: %v", err)
	}
}

// A deletion the catalog recorded but a crash interrupted is finished at start-up,
// thumbnails included.
func TestRecoverFinishesDeletionWithThumbnails(t *testing.T) {
	t.Parallel()
	rig := newRecorderRig(t)
	segs := recordSome(t, rig, 5*time.Second)
	ctx := context.Background()
	if err := rig.storage.AppendThumbnail(segs[0].Path, segs[0].Start, fakeJPEG(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := rig.catalog.DeleteSegment(ctx, segs[0].ID, "age", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := Recover(ctx, rig.storage, rig.catalog, nil); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{segs[0].Path, ThumbnailsPath(segs[0].Path)} {
		if _, err := os.Stat(filepath.Join(rig.dir, filepath.FromSlash(rel))); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after recovery: %v, want it removed", rel, err)
		}
	}
}
