package catalog

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog/pgtest"
)

// backends lists the catalog backends the suite runs against, in turn: every test that
// opens its catalog with newTarget or openTest runs once per backend, and both must pass
// with the same results. -catalog.backends narrows it while working on one of them.
var backends = flag.String("catalog.backends", "sqlite,postgres", "comma-separated catalog backends to test: sqlite, postgres")

// backend is the backend of the pass now running.
var backend string

// TestMain runs the whole suite once per backend. Test names are the same in each pass;
// openTest logs the backend, so a failure's output says which pass it failed in.
func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(pgtest.Main(func() int {
		code := 0
		for _, b := range strings.Split(*backends, ",") {
			if b != "sqlite" && b != "postgres" {
				fmt.Fprintf(os.Stderr, "-catalog.backends: unknown backend %q (want sqlite or postgres)\n", b)
				return 2
			}
			backend = b
			fmt.Printf("=== catalog backend: %s\n", b)
			if c := m.Run(); c != 0 {
				code = c
			}
		}
		return code
	}))
}

// newTarget returns where a new, empty catalog of this pass's backend goes: a file in a
// temporary directory, or a fresh PostgreSQL database.
func newTarget(t testing.TB) string {
	t.Helper()
	t.Logf("catalog backend: %s", backend)
	if backend == "postgres" {
		return pgtest.URL(t)
	}
	return filepath.Join(t.TempDir(), "catalog.db")
}

// testMigrations is this pass's schema history, for tests that open a catalog at an
// older version or add a migration. Restore it with t.Cleanup.
func testMigrations() *[]string {
	if backend == "postgres" {
		return &postgresMigrations
	}
	return &migrations
}

// t0 is a fixed instant with a nanosecond part, so round trips prove nanosecond exactness.
var t0 = time.Date(2026, 3, 14, 9, 26, 53, 589793238, time.UTC)

// at returns t0 plus d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// openTest opens a new catalog of this pass's backend; the string is its target (a path
// or URL), for opening it again.
func openTest(t testing.TB) (*Catalog, string) {
	t.Helper()
	path := newTarget(t)
	c, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c, path
}

// segPath is the path the recorder would give a segment of camera starting at start.
func segPath(camera, stream string, start time.Time) string {
	s := start.UTC()
	return fmt.Sprintf("recordings/%s/%s/%s.%s.mp4", camera, s.Format("2006/01/02"), s.Format("20060102T150405.000000000Z"), stream)
}

// sha returns a valid digest derived from n.
func sha(n int) string { return fmt.Sprintf("%064x", n) }

// addClosed indexes and closes a main-stream segment of camera covering [start, end).
func addClosed(t testing.TB, c *Catalog, camera string, start, end time.Time, bytes int64) int64 {
	t.Helper()
	id := addOpen(t, c, camera, start)
	if err := c.CloseSegment(context.Background(), id, end, bytes, 25, sha(int(id)), nil); err != nil {
		t.Fatal(err)
	}
	return id
}

// addOpen indexes an open, empty main-stream segment of camera at start.
func addOpen(t testing.TB, c *Catalog, camera string, start time.Time) int64 {
	t.Helper()
	id, err := c.CreateSegment(context.Background(), Segment{
		Camera: camera, Stream: "main", Start: start, Path: segPath(camera, "main", start),
		Codec: "H264", Width: 1920, Height: 1080,
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// wantErr fails unless err is non-nil, matches target (if any) and mentions every part.
func wantErr(t *testing.T, err, target error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want an error mentioning %q", parts)
	}
	if target != nil && !errors.Is(err, target) {
		t.Errorf("err = %v, want errors.Is %v", err, target)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("err = %q, want it to mention %q", err, p)
		}
	}
}

// wantForeignKeyError fails unless err is the backend's foreign key violation (SQLite
// says FOREIGN KEY, PostgreSQL foreign key).
func wantForeignKeyError(t *testing.T, err error) {
	t.Helper()
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "foreign key") {
		t.Errorf("err = %v, want a foreign key violation", err)
	}
}

func ids(segs []Segment) []int64 {
	out := []int64{}
	for _, s := range segs {
		out = append(out, s.ID)
	}
	return out
}
