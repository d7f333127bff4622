package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder/archive/s3test"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// With storage.archive, townwatch serve moves a closed segment to the bucket once it is
// older than `after`: its object holds the recorded bytes, its local file goes, and an
// officer plays it back as before (whole and by Range, byte-identical to what was on the
// disk); export and verify-archive, other processes, read it too; the metrics show it.
func TestServeArchivesAndPlaysBackArchivedFootage(t *testing.T) {
	t.Parallel()
	s3 := s3test.Start(t)
	dir := t.TempDir()
	access, secret, err := s3test.KeyFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	archiveCfg := fmt.Sprintf("  archive: {url: 's3://%s/townwatch-e2e', after: 12s, access_key_file: %q, secret_key_file: %q}\n", s3.Addr, access, secret)
	_, cfgPath, p := startOfficerServerIn(t, dir, "most", "", archiveCfg)
	storage := filepath.Join(dir, "data")
	ctx := context.Background()
	cat, err := catalog.Open(ctx, filepath.Join(storage, catalogFile))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()

	// The first closed segment of namesti, and its bytes while still on the local disk.
	var seg catalog.Segment
	var local []byte
	for deadline := time.Now().Add(60 * time.Second); local == nil; time.Sleep(300 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no closed segment of namesti within 60 s")
		}
		segs, err := cat.Segments(ctx, "namesti", time.Now().Add(-time.Hour), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range segs {
			if !s.Open && s.Stream == "main" && s.Archived.IsZero() {
				seg = s
				if local, err = os.ReadFile(filepath.Join(storage, filepath.FromSlash(s.Path))); err != nil {
					t.Fatalf("closed segment %d, not yet due, has no local file: %v", s.ID, err)
				}
				break
			}
		}
	}
	// Archived within `after` plus a pass (every `after` here).
	for deadline := time.Now().Add(90 * time.Second); seg.Archived.IsZero(); time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("segment %d not archived within 90 s of closing (after: 12s)", seg.ID)
		}
		if seg, err = cat.Segment(ctx, seg.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(storage, filepath.FromSlash(seg.Path))); !os.IsNotExist(err) {
		t.Errorf("archived segment %d: local file still there (%v)", seg.ID, err)
	}
	obj, err := os.ReadFile(s3.ObjectFile("townwatch-e2e", seg.Path))
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(obj); hex.EncodeToString(sum[:]) != seg.SHA256 || !bytes.Equal(obj, local) {
		t.Fatalf("segment %d: the object is not the recorded bytes", seg.ID)
	}

	officer := loginClient(t, p.base, "straznik", accountPassword)
	if status, _, body := e2eDo(t, officer, "POST", p.base+"api/playback", "application/json", `{"cameras":["namesti"],"reason":"archiv test"}`); status != http.StatusCreated {
		t.Fatalf("start playback: %d %s", status, body)
	}
	media := fmt.Sprintf("%sapi/segments/%d/media", p.base, seg.ID)
	if full := fetch(t, officer, media, "", http.StatusOK); !bytes.Equal(full, local) {
		t.Errorf("archived segment served whole: %d bytes, not the %d recorded", len(full), len(local))
	}
	from, to := int64(len(local)/3), int64(len(local)/3+200_000)
	if part := fetch(t, officer, media, fmt.Sprintf("bytes=%d-%d", from, to), http.StatusPartialContent); !bytes.Equal(part, local[from:to+1]) {
		t.Errorf("archived segment's Range %d-%d differs from the recorded bytes", from, to)
	}

	out := filepath.Join(dir, "archived.mp4")
	rfc := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	if code, _, stderr := runBinary(t, append([]string{"export", "-config", cfgPath, "-camera", "namesti",
		"-from", rfc(seg.Start.Add(time.Second)), "-to", rfc(seg.End.Add(-time.Second)), "-o", out}, exportWhy...)...); code != exitOK {
		t.Errorf("export of archived footage: exit %d: %s", code, stderr)
	}
	if code, stdout, stderr := runBinary(t, "verify-archive", "-config", cfgPath, "-camera", "namesti"); code != exitOK {
		t.Errorf("verify-archive with archived footage: exit %d\n%s%s", code, stdout, stderr)
	}
	metrics := httpGet(t, loginClient(t, p.base, "velitel", accountPassword), p.base+"metrics")
	for _, m := range []string{"townwatch_archive_segments_total ", "townwatch_archive_last_pass_ok 1"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("metrics lack %q", m)
		}
	}
}
