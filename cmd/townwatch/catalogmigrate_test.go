package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/recorder/catalog/pgtest"
	"github.com/townwatch/townwatch/viewer/access"
)

// TestCatalogMigrate moves a SQLite catalog with footage, a deletion and an evidence
// lock into a real PostgreSQL database through the binary, as an operator would: the
// PostgreSQL catalog then answers the same, and a second run into the same (no longer
// empty) database is refused.
func TestCatalogMigrate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	from := filepath.Join(dir, "catalog.db")
	src, err := catalog.Open(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	var ids []int64
	for i := range 4 {
		start := t0.Add(time.Duration(i) * time.Minute)
		id, err := src.CreateSegment(ctx, catalog.Segment{Camera: "namesti", Stream: "main", Start: start,
			Path: fmt.Sprintf("recordings/namesti/%d.mp4", i), Codec: "H264", Width: 1920, Height: 1080})
		if err != nil {
			t.Fatal(err)
		}
		if err := src.CloseSegment(ctx, id, start.Add(time.Minute), 1000+int64(i), 1500, fmt.Sprintf("%064x", i+1), nil); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if _, err := src.DeleteSegment(ctx, ids[3], "age", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := src.AddLock(ctx, catalog.Lock{Camera: "namesti", Start: t0, End: t0.Add(time.Minute), Reason: "spis 123/2026", Created: t0}); err != nil {
		t.Fatal(err)
	}
	want, err := src.AllSegments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	src.Close()
	before, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}

	to := pgtest.URL(t)
	code, stdout, stderr := runBinary(t, "catalog", "migrate", "-from", from, "-to", to)
	if code != exitOK {
		t.Fatalf("catalog migrate exited %d: %s", code, stderr)
	}
	for _, line := range []string{"segments                  3          3", "deletions                 1          1", "locks                     1          1",
		"SHA-256 and chain link of 4 segment records", "Set catalog.url: " + to} {
		if !strings.Contains(stdout, line) {
			t.Errorf("stdout lacks %q:\n%s", line, stdout)
		}
	}
	dst, err := catalog.Open(ctx, to)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	got, err := dst.AllSegments(ctx)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("PostgreSQL segments = %+v (%v), want %+v", got, err, want)
	}
	if locks, err := dst.Locks(ctx, t0); err != nil || len(locks) != 1 || locks[0].Reason != "spis 123/2026" {
		t.Errorf("PostgreSQL locks = %+v (%v)", locks, err)
	}
	// The move is in the new catalog's access log, as the operator, and the chain
	// (the copied rows plus that one) verifies with the key made beside the file.
	key, err := access.LoadAuditKey(filepath.Join(dir, "audit.key"), false)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := dst.AuditEntries(ctx, catalog.AuditQuery{Action: access.AuditCatalogMigrated})
	if err != nil || len(rows) != 1 || !strings.HasPrefix(rows[0].Actor, "cli:") ||
		!strings.Contains(string(rows[0].Details), `"segments_verified":4`) {
		t.Errorf("catalog.migrate rows = %+v (%v); want one by the CLI operator with the verification report", rows, err)
	}
	if v, err := dst.VerifyAudit(ctx, key); err != nil || v.FirstBad != nil || v.Rows != 1 {
		t.Errorf("audit chain after migrate: %+v (%v)", v, err)
	}
	if after, err := os.ReadFile(from); err != nil || string(after) != string(before) {
		t.Errorf("the SQLite file changed (%v): migrate must only read it", err)
	}

	code, _, stderr = runBinary(t, "catalog", "migrate", "-from", from, "-to", to)
	if code != exitFailure || !strings.Contains(stderr, "the target is not empty") {
		t.Errorf("second migrate: exit %d, stderr %q; want a refusal naming the non-empty target", code, stderr)
	}
	code, _, stderr = runBinary(t, "catalog", "migrate", "-from", filepath.Join(dir, "nothing.db"), "-to", to)
	if code != exitFailure || !strings.Contains(stderr, "is not a catalog file") {
		t.Errorf("migrate from a missing file: exit %d, stderr %q", code, stderr)
	}
}

// TestServeRecordsIntoPostgres: with catalog.url set, the whole server runs on
// PostgreSQL: accounts are made there, two simulated cameras record with their segments
// indexed there (no catalog.db appears under storage.path), and verify-archive re-hashes
// the files against the PostgreSQL rows and walks each camera's chain.
func TestServeRecordsIntoPostgres(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	cfgPath, storage := crashSetup(t, "catalog:\n  url: "+strconv.Quote(url)+"\n")
	p := startServe(t, cfgPath)
	p.waitRecording(t, "velitel")

	// Wait for a closed segment of every camera (10 s segments), read from PostgreSQL.
	ctx := context.Background()
	cat, err := catalog.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	closed := map[string]int{}
	for deadline := time.Now().Add(40 * time.Second); len(closed) < len(crashCameras) && time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		segs, err := cat.AllSegments(ctx)
		if err != nil {
			t.Fatal(err)
		}
		clear(closed)
		for _, s := range segs {
			if !s.Open && s.Bytes > 0 {
				closed[s.Camera]++
			}
		}
	}
	if len(closed) < len(crashCameras) {
		t.Fatalf("closed segments in PostgreSQL per camera: %v; want every camera's\n%s", closed, p.stderr.String())
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop within 30 s of SIGTERM:\n%s", p.stderr.String())
	}
	if _, err := os.Stat(filepath.Join(storage, catalogFile)); !os.IsNotExist(err) {
		t.Errorf("storage.path holds %s (%v): the SQLite catalog was used", catalogFile, err)
	}
	if code, out, errOut := runBinary(t, "verify-archive", "-config", cfgPath); code != 0 || !strings.Contains(out, "OK:") {
		t.Errorf("verify-archive against PostgreSQL: exit %d\n%s%s", code, out, errOut)
	}
}

// catalog rebuild repairs the SQLite file; with catalog.url set there is none, and it
// says so instead of touching storage.path.
func TestCatalogRebuildRefusesPostgres(t *testing.T) {
	storage := t.TempDir()
	cfg := &configs.Config{Storage: configs.Storage{Path: storage}, Catalog: configs.Catalog{URL: "postgres://townwatch@127.0.0.1:1/townwatch"}}
	err := rebuildCatalog(context.Background(), cfg, true, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "catalog.url names a PostgreSQL database") {
		t.Errorf("rebuild with catalog.url = %v, want a refusal naming catalog.url", err)
	}
	if entries, _ := os.ReadDir(storage); len(entries) != 0 {
		t.Errorf("rebuild wrote into storage.path: %v", entries)
	}
}
