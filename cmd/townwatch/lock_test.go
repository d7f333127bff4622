package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/recorder/catalog/pgtest"
)

var lockT0 = time.Date(2026, 3, 14, 8, 0, 0, 0, time.UTC)

// lockSetup writes a configuration with two cameras whose storage holds a catalog with
// ten minutes of cam-a and of a camera no longer configured, and returns the config
// path and the catalog (open, as a running serve would have it).
func lockSetup(t *testing.T) (string, *catalog.Catalog) {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfg := filepath.Join(dir, "townwatch.yaml")
	yaml := fmt.Sprintf(`storage:
  path: %s
  quota: 100GiB
cameras:
  - id: cam-a
    main: {url: "rtsp://127.0.0.1/a"}
    record: {retention: 7d}
  - id: cam-b
    main: {url: "rtsp://127.0.0.1/b"}
    record: {retention: 30d, quota: 10GiB}
`, data)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(data, 0o750); err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Open(context.Background(), filepath.Join(data, catalogFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	for _, cam := range []string{"cam-a", "cam-gone"} {
		for i := range 10 {
			start := lockT0.Add(time.Duration(i) * time.Minute)
			id, err := cat.CreateSegment(context.Background(), catalog.Segment{Camera: cam, Stream: "main", Start: start,
				Path: recorder.SegmentPath(cam, start), Codec: "H264", Width: 1280, Height: 720})
			if err != nil {
				t.Fatal(err)
			}
			if err := cat.CloseSegment(context.Background(), id, start.Add(time.Minute), 1<<20, 1500, strings.Repeat("ab", 32), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	return cfg, cat
}

// run dispatches a command in-process.
func lockRun(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = dispatch(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func rfc3339(d time.Duration) string { return lockT0.Add(d).Format(time.RFC3339) }

func TestLockLocksUnlock(t *testing.T) {
	t.Parallel()
	cfg, cat := lockSetup(t)
	code, stdout, stderr := lockRun("lock", "-config", cfg, "-camera", "cam-a", "-from", rfc3339(2*time.Minute),
		"-to", rfc3339(4*time.Minute), "-reason", "case 2026/117: hit and run", "-for", "30d")
	if code != 0 {
		t.Fatalf("lock: exit %d, stderr %q", code, stderr)
	}
	id, err := strconv.ParseInt(strings.TrimSpace(stdout), 10, 64)
	if err != nil {
		t.Fatalf("lock printed %q, want the lock id", stdout)
	}
	if !strings.Contains(stderr, "covers 2 recorded segment(s), 2.0 MiB") {
		t.Errorf("lock's description %q does not say what it covers", stderr)
	}
	locks, err := cat.Locks(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(locks) != 1 || locks[0].ID != id || locks[0].Camera != "cam-a" || !locks[0].Start.Equal(lockT0.Add(2*time.Minute)) ||
		!locks[0].End.Equal(lockT0.Add(4*time.Minute)) || locks[0].Reason != "case 2026/117: hit and run" {
		t.Fatalf("stored locks %+v, want the one just made", locks)
	}
	if d := time.Until(locks[0].Expires); d < 29*24*time.Hour || d > 30*24*time.Hour {
		t.Errorf("-for 30d stored expiry %s, %s from now", locks[0].Expires, d)
	}
	locked, err := cat.LockedBytes(context.Background(), time.Now())
	if err != nil || locked["cam-a"] != 2<<20 {
		t.Errorf("locked bytes %v (err %v), want cam-a: 2 MiB", locked, err)
	}

	// A camera that left the configuration keeps footage that can be locked, forever.
	code, stdout, stderr = lockRun("lock", "-config", cfg, "-camera", "cam-gone", "-from", rfc3339(0),
		"-to", rfc3339(time.Hour), "-reason", "case 2026/118")
	if code != 0 {
		t.Fatalf("lock of an unconfigured camera's footage: exit %d, stderr %q", code, stderr)
	}
	goneID := strings.TrimSpace(stdout)

	code, stdout, stderr = lockRun("locks", "-config", cfg)
	if code != 0 {
		t.Fatalf("locks: exit %d, stderr %q", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || !strings.HasPrefix(lines[1], strconv.FormatInt(id, 10)+" ") ||
		!strings.Contains(lines[1], "case 2026/117: hit and run") || !strings.Contains(lines[2], "never") {
		t.Errorf("locks printed:\n%s\nwant a header and both locks, the second never expiring", stdout)
	}

	for _, l := range []string{strconv.FormatInt(id, 10), goneID} {
		if code, stdout, stderr = lockRun("unlock", "-config", cfg, "-id", l); code != 0 || !strings.Contains(stdout, "lock "+l+" removed") {
			t.Fatalf("unlock %s: exit %d, stdout %q, stderr %q", l, code, stdout, stderr)
		}
	}
	if code, stdout, _ = lockRun("locks", "-config", cfg); code != 0 || stdout != "no active evidence locks\n" {
		t.Errorf("locks after unlocking: exit %d, %q", code, stdout)
	}
	if code, _, stderr = lockRun("unlock", "-config", cfg, "-id", strconv.FormatInt(id, 10)); code != 1 || !strings.Contains(stderr, "no lock") {
		t.Errorf("unlocking twice: exit %d, stderr %q; want 1 and 'no lock'", code, stderr)
	}
}

func TestLockRejectsBadFlags(t *testing.T) {
	t.Parallel()
	cfg, cat := lockSetup(t)
	base := func(extra ...string) []string {
		args := []string{"lock", "-config", cfg, "-camera", "cam-a", "-from", rfc3339(0), "-to", rfc3339(time.Minute), "-reason", "case 1"}
		return append(args, extra...)
	}
	without := func(flag string) []string {
		args := base()
		for i, a := range args {
			if a == "-"+flag {
				return append(args[:i:i], args[i+2:]...)
			}
		}
		t.Fatalf("no -%s in %v", flag, args)
		return nil
	}
	future := time.Now().Add(time.Hour).Format(time.RFC3339)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no config", without("config"), "-config is required"},
		{"no camera", without("camera"), "-camera is required"},
		{"no from", without("from"), "-from is required"},
		{"no reason", without("reason"), "-reason is required"},
		{"blank reason", append(without("reason"), "-reason", "  "), "-reason is required"},
		{"bad from", append(without("from"), "-from", "yesterday"), `-from "yesterday" is not an RFC 3339 time`},
		{"bad to", append(without("to"), "-to", "2026-03-14 09:00"), `-to "2026-03-14 09:00" is not an RFC 3339 time`},
		{"to before from", append(without("to"), "-to", rfc3339(-time.Minute)), "-to (" + rfc3339(-time.Minute) + ") must be after -from"},
		{"both expiries", base("-expires", future, "-for", "1d"), "-expires and -for"},
		{"expires past", base("-expires", rfc3339(0)), "-expires (" + rfc3339(0) + ") is not in the future"},
		{"bad for", base("-for", "a while"), `-for "a while" is not a positive duration`},
		{"zero for", base("-for", "0s"), `-for "0s" is not a positive duration`},
		{"unknown camera", append(without("camera"), "-camera", "cam-x"), `-camera "cam-x" is not in`},
		{"unknown flag", base("-until", future), "flag provided but not defined: -until"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := lockRun(tc.args...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) || stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and %q", code, stdout, stderr, tc.want)
			}
		})
	}
	if locks, err := cat.Locks(context.Background(), time.Now()); err != nil || len(locks) != 0 {
		t.Errorf("rejected commands stored locks %v (err %v)", locks, err)
	}
	if code, _, stderr := lockRun("unlock", "-config", cfg); code != exitUsage || !strings.Contains(stderr, "-id") {
		t.Errorf("unlock without -id: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := lockRun("locks"); code != exitUsage || !strings.Contains(stderr, "-config FILE is required") {
		t.Errorf("locks without -config: exit %d, stderr %q", code, stderr)
	}
}

func TestLockRefusesStorageWithoutCatalog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "townwatch.yaml")
	yaml := fmt.Sprintf("storage:\n  path: %s\ncameras:\n  - id: cam-a\n    main: {url: \"rtsp://127.0.0.1/a\"}\n", filepath.Join(dir, "typo"))
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"lock", "-config", cfg, "-camera", "cam-a", "-from", rfc3339(0), "-to", rfc3339(time.Minute), "-reason", "case 1"},
		{"locks", "-config", cfg},
		{"retention", "status", "-config", cfg},
		{"retention", "confirm", "-config", cfg},
	} {
		code, _, stderr := lockRun(args...)
		if code != exitFailure || !strings.Contains(stderr, "holds no catalog") {
			t.Errorf("%v: exit %d, stderr %q; want 1 and 'holds no catalog'", args, code, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "typo")); !os.IsNotExist(err) {
		t.Errorf("a command created the storage directory of a wrong config (stat: %v)", err)
	}
}

// On recorder nodes sharing a PostgreSQL catalog, each node's retention has its own
// hold: retention status and confirm take the node (-node), and confirm one node's hold
// only. -node on a single box's SQLite catalog is refused, naming the flag.
func TestRetentionConfirmOnANode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	url := pgtest.URL(t)
	cfg := filepath.Join(dir, "townwatch.yaml")
	yaml := fmt.Sprintf("storage:\n  path: %s\naudit:\n  key_file: %s\ncatalog:\n  url: %q\ncameras:\n  - id: cam-a\n    main: {url: \"rtsp://127.0.0.1/a\"}\n",
		filepath.Join(dir, "data"), filepath.Join(dir, "audit.key"), url)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	cat := openNodeCatalog(t, url, "a")
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `INSERT INTO nodes (name, advertise, heartbeat) VALUES ('a', 'http://a', clock_timestamp()), ('b', 'http://b', clock_timestamp())`); err != nil {
		t.Fatal(err)
	}
	if err := cat.SetRetentionHold(ctx, catalog.RetentionHold{Since: lockT0, Reason: "a's sweep would delete 9.0 MiB of 10.0 MiB recorded",
		PlannedBytes: 9 << 20, TotalBytes: 10 << 20}); err != nil {
		t.Fatal(err)
	}
	// Without -node, or naming a node that never joined, nothing is read or confirmed.
	if code, _, stderr := lockRun("retention", "confirm", "-config", cfg); code != exitUsage || !strings.Contains(stderr, "-node: required, this catalog is shared by recorder nodes a, b") {
		t.Errorf("confirm without -node on a cluster: exit %d, stderr %q; want 2 naming the nodes", code, stderr)
	}
	if code, _, stderr := lockRun("retention", "status", "-config", cfg, "-node", "c"); code != exitUsage || !strings.Contains(stderr, "-node c: no such recorder node in this catalog (its nodes: a, b)") {
		t.Errorf("status -node c: exit %d, stderr %q; want 2 naming the nodes", code, stderr)
	}
	if code, stdout, stderr := lockRun("retention", "status", "-config", cfg, "-node", "b"); code != 0 || !strings.Contains(stdout, "Retention: running, no hold.") {
		t.Errorf("status of node b: exit %d, stdout %q, stderr %q; want no hold (a's is a's)", code, stdout, stderr)
	}
	if code, _, stderr := lockRun("retention", "confirm", "-config", cfg, "-node", "b"); code != exitFailure || !strings.Contains(stderr, "no retention hold is pending") {
		t.Errorf("confirm on node b: exit %d, stderr %q; want 1 and no hold", code, stderr)
	}
	if code, stdout, stderr := lockRun("retention", "status", "-config", cfg, "-node", "a"); code != 0 || !strings.Contains(stdout, "Retention: HELD since") {
		t.Errorf("status of node a: exit %d, stdout %q, stderr %q; want its hold", code, stdout, stderr)
	}
	if code, stdout, stderr := lockRun("retention", "confirm", "-config", cfg, "-node", "a"); code != 0 || !strings.Contains(stdout, "confirmed the hold") {
		t.Fatalf("confirm on node a: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if hold, held, err := cat.RetentionHold(ctx); err != nil || !held || hold.Confirmed.IsZero() {
		t.Errorf("a's hold after confirm -node a: %+v (held %v, err %v), want confirmed", hold, held, err)
	}

	single, _ := lockSetup(t)
	if code, _, stderr := lockRun("retention", "status", "-config", single, "-node", "a"); code != exitUsage || !strings.Contains(stderr, "-node a: catalog: several recorder nodes need a PostgreSQL catalog") {
		t.Errorf("status -node on SQLite: exit %d, stderr %q; want 2 naming -node", code, stderr)
	}
}

func TestRetentionStatusAndConfirm(t *testing.T) {
	t.Parallel()
	cfg, cat := lockSetup(t)
	ctx := context.Background()

	code, stdout, stderr := lockRun("retention", "status", "-config", cfg, "-since", "100000d")
	if code != 0 {
		t.Fatalf("retention status: exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"Retention: running, no hold.", "Stored: 20.0 MiB (storage.quota 100.0 GiB)",
		"cam-a     7d ", "cam-b     30d ", "10.0 GiB", "cam-gone  longest (not configured)",
		"Deleted in the last 100000d: 0 segment(s), 0 B"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("retention status lacks %q:\n%s", want, stdout)
		}
	}
	if code, _, stderr = lockRun("retention", "confirm", "-config", cfg); code != exitFailure || !strings.Contains(stderr, "no retention hold is pending") {
		t.Errorf("confirm without a hold: exit %d, stderr %q; want 1 and a plain 'no hold'", code, stderr)
	}

	// What serve's retention leaves when the guard trips, and a deletion it made.
	if err := cat.SetRetentionHold(ctx, catalog.RetentionHold{Since: lockT0.Add(time.Hour), Reason: "one sweep would delete 20.0 MiB of 20.0 MiB recorded",
		PlannedBytes: 20 << 20, TotalBytes: 20 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := cat.DeleteSegment(ctx, 1, recorder.ReasonMinFree, time.Now()); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = lockRun("retention", "status", "-config", cfg)
	if code != 0 {
		t.Fatalf("retention status: exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"Retention: HELD since", "would delete 20.0 MiB of 20.0 MiB recorded", "townwatch retention confirm",
		"Deleted in the last 1d: 1 segment(s), 1.0 MiB; min_free 1.0 MiB", "cam-a   " + localTime(lockT0)} {
		if !strings.Contains(stdout, want) {
			t.Errorf("retention status with a hold lacks %q:\n%s", want, stdout)
		}
	}

	code, stdout, stderr = lockRun("retention", "confirm", "-config", cfg)
	if code != 0 || !strings.Contains(stdout, "confirmed the hold") {
		t.Fatalf("confirm: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	hold, held, err := cat.RetentionHold(ctx)
	if err != nil || !held || hold.Confirmed.IsZero() {
		t.Fatalf("after confirm the stored hold is %+v (held %v, err %v), want confirmed", hold, held, err)
	}
	if code, stdout, _ = lockRun("retention", "confirm", "-config", cfg); code != 0 || !strings.Contains(stdout, "already confirmed") {
		t.Errorf("confirming twice: exit %d, stdout %q", code, stdout)
	}
	if code, stdout, _ = lockRun("retention", "status", "-config", cfg); code != 0 || !strings.Contains(stdout, "hold confirmed at") {
		t.Errorf("status after confirm: exit %d:\n%s", code, stdout)
	}

	for _, args := range [][]string{{"retention"}, {"retention", "purge", "-config", cfg}, {"retention", "status", "-config", cfg, "-since", "soon"}} {
		if code, _, stderr := lockRun(args...); code != exitUsage {
			t.Errorf("%v: exit %d, stderr %q; want 2", args, code, stderr)
		}
	}
}
