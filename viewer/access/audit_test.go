package access

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"

	_ "modernc.org/sqlite" // the "sqlite" driver, to tamper with the catalog behind its back
)

func TestLoadAuditKeyCreates(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "state", "keys")
	path := filepath.Join(dir, "audit.key")
	key, err := LoadAuditKey(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != 32 {
		t.Fatalf("new key is %d bytes, want 32", len(key))
	}
	if bytes.Equal(key, make([]byte, 32)) {
		t.Fatal("new key is all zeros")
	}

	// Only the owner may read the key, and only the owner may list or add to its
	// directory: whoever reads it can forge the access log.
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %v, want 0600", perm)
	}
	if !fi.Mode().IsRegular() {
		t.Errorf("key file is %v, not a regular file", fi.Mode())
	}
	for _, d := range []string{dir, filepath.Dir(dir)} {
		di, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if perm := di.Mode().Perm(); perm != 0o700 {
			t.Errorf("created directory %s has mode %v, want 0700", d, perm)
		}
	}

	// Hex with a newline: readable, and copyable into a safe.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != hex.EncodeToString(key)+"\n" {
		t.Errorf("key file holds %q, want the key in hex and a newline", data)
	}

	// Loading again, with or without create, gives the same key: a restart must never
	// replace it, or every existing row would look forged.
	for _, create := range []bool{false, true} {
		again, err := LoadAuditKey(path, create)
		if err != nil {
			t.Fatalf("LoadAuditKey(create=%v): %v", create, err)
		}
		if !bytes.Equal(again, key) {
			t.Fatalf("LoadAuditKey(create=%v) returned another key", create)
		}
	}

	// Nothing is left behind but the key.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "audit.key" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("key directory holds %v, want only audit.key", names)
	}

	// Another installation gets another key.
	other, err := LoadAuditKey(filepath.Join(base, "other.key"), true)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(other, key) {
		t.Fatal("two new keys are equal")
	}
}

func TestLoadAuditKeyMissing(t *testing.T) {
	// Commands that read or append to an existing log must not invent a key for a
	// mistyped path: the error names the path, and nothing is created.
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "audit.key")
	key, err := LoadAuditKey(path, false)
	if err == nil {
		t.Fatalf("LoadAuditKey(missing, create=false) = %x, want an error", key)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
	if _, err := os.Stat(filepath.Join(dir, "sub")); !os.IsNotExist(err) {
		t.Errorf("LoadAuditKey(create=false) created the directory: %v", err)
	}
}

func TestLoadAuditKeyBadFile(t *testing.T) {
	dir := t.TempDir()
	key32 := strings.Repeat("5a", 32)
	bad := map[string]string{
		"empty":              "",
		"newline only":       "\n",
		"not hex":            strings.Repeat("zz", 32),
		"31 bytes":           strings.Repeat("5a", 31),
		"16 bytes":           strings.Repeat("5a", 16),
		"odd digit count":    key32[:63],
		"space inside":       key32[:32] + " " + key32[32:],
		"raw binary":         string(bytes.Repeat([]byte{0x5a}, 32)),
		"base64":             "WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo=",
		"0x prefix":          "0x" + key32,
		"two lines, half ok": key32[:32] + "\n" + key32[32:],
	}
	for name, content := range bad {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".key")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, create := range []bool{false, true} {
				key, err := LoadAuditKey(path, create)
				if err == nil {
					t.Fatalf("LoadAuditKey(create=%v) accepted %q as key %x", create, content, key)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error %q does not name the file", err)
				}
				// The error goes to logs: it must not quote the key material.
				if len(content) >= 16 && strings.Contains(err.Error(), content[:16]) {
					t.Errorf("error %q quotes the file's content", err)
				}
			}
			// A bad key file is an error, never a reason to write a new key over it.
			if data, _ := os.ReadFile(path); string(data) != content {
				t.Fatalf("LoadAuditKey(create=true) overwrote a bad key file")
			}
		})
	}

	// Surrounding white space (an editor's newline, CRLF) is fine.
	for _, content := range []string{key32, key32 + "\r\n", "  " + key32 + "\n\n", strings.ToUpper(key32) + "\n"} {
		path := filepath.Join(dir, "ok.key")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		key, err := LoadAuditKey(path, false)
		if err != nil {
			t.Errorf("LoadAuditKey(%q): %v", content, err)
		} else if hex.EncodeToString(key) != key32 {
			t.Errorf("LoadAuditKey(%q) = %x", content, key)
		}
	}

	// A directory where the file should be is an error for both modes.
	if _, err := LoadAuditKey(dir, true); err == nil {
		t.Error("LoadAuditKey accepted a directory")
	}
}

// TestLoadAuditKeyRefusesLongKey: the brief says a key file of the wrong size is
// refused, and LoadAuditKey's own message reads "not 32 hex-encoded bytes"; a longer key
// (two keys pasted into one file, a 512-bit key from another tool) is the wrong size too.
// LoadAuditKey only refuses keys shorter than 32 bytes (audit.go:125, `len(key) <
// auditKeyLen`), so this test fails until it checks for exactly 32.
func TestLoadAuditKeyRefusesLongKey(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{33, 64} {
		path := filepath.Join(dir, fmt.Sprintf("%d.key", n))
		if err := os.WriteFile(path, []byte(strings.Repeat("5a", n)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if key, err := LoadAuditKey(path, false); err == nil {
			t.Errorf("LoadAuditKey accepted a %d-byte key (%d bytes returned)", n, len(key))
		}
	}
}

func TestLoadAuditKeyConcurrentCreators(t *testing.T) {
	// Two processes starting at once (serve and a CLI command, or two serves) must end
	// up with one key, and neither may read a half-written file. Goroutines stand in for
	// the processes: the file system calls are the same.
	for round := range 20 {
		dir := filepath.Join(t.TempDir(), "keys")
		path := filepath.Join(dir, "audit.key")
		const n = 8
		keys := make([][]byte, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				keys[i], errs[i] = LoadAuditKey(path, true)
			})
		}
		close(start)
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("round %d, creator %d: %v", round, i, errs[i])
			}
			if !bytes.Equal(keys[i], keys[0]) {
				t.Fatalf("round %d: creators got different keys %x and %x", round, keys[0], keys[i])
			}
		}
		onDisk, err := LoadAuditKey(path, false)
		if err != nil || !bytes.Equal(onDisk, keys[0]) {
			t.Fatalf("round %d: the key on disk is not the one the creators use: %v", round, err)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 {
			t.Fatalf("round %d: %d files left in the key directory, want 1", round, len(entries))
		}
	}
}

// openCatalog opens a fresh catalog in a temporary file and returns it with its path.
func openCatalog(t *testing.T) (*catalog.Catalog, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "catalog.db")
	cat, err := catalog.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	return cat, path
}

// tamper changes the catalog file directly, as someone with write access to the
// database (but not to the key) could.
func tamper(t *testing.T, path, query string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("%s changed %d rows (%v), want 1", query, n, err)
	}
}

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// sampleEntries are rows like the viewer writes: a login, a live view, an export
// request with its reason, case and recipient.
func sampleEntries() []catalog.AuditEntry {
	at := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	return []catalog.AuditEntry{
		{Time: at, Actor: "jnovak", Roles: []string{"dispatcher"}, Session: "0123456789ab", Client: "192.0.2.1",
			Action: AuditLoginOK, Outcome: catalog.AuditOK},
		{Time: at.Add(time.Minute), Actor: "jnovak", Roles: []string{"dispatcher"}, Session: "0123456789ab",
			Client: "192.0.2.1", Action: AuditLiveStart, Camera: "stribro-namesti", Outcome: catalog.AuditOK},
		{Time: at.Add(2 * time.Minute), Actor: "kral", Roles: []string{"officer"}, Session: "ba9876543210",
			Client: "192.0.2.2", Action: AuditExportRequest, Camera: "stribro-most",
			From: at.Add(-time.Hour), To: at.Add(-30 * time.Minute),
			Reason: "dopravní nehoda", Case: "KRPP-1234/2026", Recipient: "Policie ČR, OOP Stříbro",
			Outcome: catalog.AuditOK, Details: json.RawMessage(`{"format":"mp4"}`)},
		{Time: at.Add(3 * time.Minute), Actor: "jnovak", Roles: []string{"dispatcher"}, Session: "0123456789ab",
			Client: "192.0.2.1", Action: AuditDenied, Camera: "stribro-most", Outcome: catalog.AuditDenied},
		{Time: at.Add(4 * time.Minute), Actor: "cli:root", Action: AuditUserAdd, Outcome: catalog.AuditOK,
			Details: json.RawMessage(`{"user":"dpo","roles":["auditor"]}`)},
	}
}

// appendAll appends the sample rows and returns them as stored.
func appendAll(t *testing.T, log *AuditLog) []catalog.AuditEntry {
	t.Helper()
	var out []catalog.AuditEntry
	for _, e := range sampleEntries() {
		got, err := log.Append(context.Background(), e)
		if err != nil {
			t.Fatalf("Append(%s): %v", e.Action, err)
		}
		out = append(out, got)
	}
	return out
}

func TestNewAuditLogKeyLength(t *testing.T) {
	cat, _ := openCatalog(t)
	for _, key := range [][]byte{nil, {}, testKey(1)[:16], testKey(1)[:31]} {
		if _, err := NewAuditLog(cat, key); err == nil {
			t.Errorf("NewAuditLog accepted a %d-byte key", len(key))
		}
	}
	log, err := NewAuditLog(cat, testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(log.Key(), testKey(1)) {
		t.Error("Key() is not the key the log was made with")
	}
}

func TestAuditLogAppendAndVerify(t *testing.T) {
	ctx := context.Background()
	cat, _ := openCatalog(t)
	log, err := NewAuditLog(cat, testKey(7))
	if err != nil {
		t.Fatal(err)
	}

	// An empty log verifies, with the genesis head.
	v, err := log.Verify(ctx)
	if err != nil || v.FirstBad != nil || v.Rows != 0 || v.Head != catalog.AuditGenesis {
		t.Fatalf("empty log: %+v, %v", v, err)
	}

	stored := appendAll(t, log)
	prev := catalog.AuditGenesis
	for i, e := range stored {
		if e.ID == 0 || !lowerHex64.MatchString(e.Hash) {
			t.Fatalf("row %d stored without id or hash: %+v", i, e)
		}
		// Each row links to the one before: removing or reordering rows breaks the chain.
		if e.PrevHash != prev {
			t.Fatalf("row %d links to %s, want %s", e.ID, e.PrevHash, prev)
		}
		prev = e.Hash
	}

	// What an auditor reads back is what was written: who, what, which camera, which
	// footage, why, for which case, for whom.
	read, err := log.Entries(ctx, catalog.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(read) != len(stored) {
		t.Fatalf("Entries returned %d rows, want %d", len(read), len(stored))
	}
	want := sampleEntries()
	for i, e := range read {
		w := want[i]
		if e.ID != stored[i].ID || e.Hash != stored[i].Hash || e.Actor != w.Actor || e.Action != w.Action ||
			e.Camera != w.Camera || e.Reason != w.Reason || e.Case != w.Case || e.Recipient != w.Recipient ||
			e.Outcome != w.Outcome || e.Client != w.Client || e.Session != w.Session ||
			!e.Time.Equal(w.Time) || !e.From.Equal(w.From) || !e.To.Equal(w.To) {
			t.Errorf("row %d reads back as %+v, want %+v", i, e, w)
		}
	}
	if got, err := log.Entries(ctx, catalog.AuditQuery{Action: AuditExportRequest}); err != nil || len(got) != 1 || got[0].Case != "KRPP-1234/2026" {
		t.Errorf("Entries(action=export.request) = %+v, %v", got, err)
	}

	id, hash, n, err := log.Head(ctx)
	last := stored[len(stored)-1]
	if err != nil || id != last.ID || hash != last.Hash || n != int64(len(stored)) {
		t.Fatalf("Head = %d, %s, %d, %v; want %d, %s, %d", id, hash, n, err, last.ID, last.Hash, len(stored))
	}
	v, err = log.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.FirstBad != nil || v.Rows != int64(len(stored)) || v.HeadID != last.ID || v.Head != last.Hash {
		t.Fatalf("Verify of an untouched log = %+v (first bad %+v)", v, v.FirstBad)
	}

	// Rows written with another key are not this log's: a chain made without the key
	// does not verify from its first row.
	other, err := NewAuditLog(cat, testKey(8))
	if err != nil {
		t.Fatal(err)
	}
	v, err = other.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.FirstBad == nil || v.FirstBad.ID != stored[0].ID {
		t.Fatalf("Verify with the wrong key = first bad %+v, want row %d", v.FirstBad, stored[0].ID)
	}

	// Invalid rows are refused before anything is written.
	for _, e := range []catalog.AuditEntry{
		{Time: time.Now(), Action: AuditLoginFail, Outcome: catalog.AuditDenied},                    // no actor
		{Time: time.Now(), Actor: "x", Outcome: catalog.AuditOK},                                    // no action
		{Time: time.Now(), Actor: "x", Action: AuditLoginOK, Outcome: "maybe"},                      // bad outcome
		{Time: time.Now(), Actor: "x", Action: AuditLoginOK, Outcome: "ok", Details: []byte(`[1]`)}, // not an object
	} {
		if _, err := log.Append(ctx, e); err == nil {
			t.Errorf("Append(%+v) accepted an invalid row", e)
		}
	}
	if _, _, n, _ := log.Head(ctx); n != int64(len(stored)) {
		t.Fatalf("refused appends left %d rows, want %d", n, len(stored))
	}
}

func TestAuditLogDetectsTampering(t *testing.T) {
	ctx := context.Background()
	cat, path := openCatalog(t)
	log, err := NewAuditLog(cat, testKey(7))
	if err != nil {
		t.Fatal(err)
	}
	stored := appendAll(t, log)
	target := stored[2] // the export request: the row someone would most like to change

	verifyBad := func(t *testing.T, wantID int64) {
		t.Helper()
		v, err := log.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v.FirstBad == nil {
			t.Fatalf("Verify found nothing wrong (%d rows)", v.Rows)
		}
		if v.FirstBad.ID != wantID {
			t.Fatalf("Verify reports row %d (%s), want row %d", v.FirstBad.ID, v.FirstBad.Reason, wantID)
		}
		if v.FirstBad.Reason == "" {
			t.Fatal("Verify reports a bad row without a reason")
		}
	}
	verifyOK := func(t *testing.T) {
		t.Helper()
		v, err := log.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v.FirstBad != nil {
			t.Fatalf("Verify reports row %d (%s) after the change was undone", v.FirstBad.ID, v.FirstBad.Reason)
		}
	}

	// Every column the row's HMAC covers, changed one at a time in the file and put back.
	changes := []struct{ column, value string }{
		{"reason", "kontrola"},
		{"case_ref", "KRPP-9999/2026"},
		{"recipient", "neznámý"},
		{"actor", "supervisor1"},
		{"roles", "supervisor"},
		{"session", "ffffffffffff"},
		{"client", "203.0.113.5"},
		{"action", AuditLiveStart},
		{"camera", "stribro-namesti"},
		{"outcome", catalog.AuditDenied},
		{"details", `{"format":"mkv"}`},
		{"time_ns", "1"},
		{"from_ns", "2"},
		{"to_ns", "3"},
	}
	for _, c := range changes {
		t.Run(c.column, func(t *testing.T) {
			var orig any
			db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
			if err != nil {
				t.Fatal(err)
			}
			err = db.QueryRow(`SELECT `+c.column+` FROM audit WHERE id = ?`, target.ID).Scan(&orig)
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			tamper(t, path, `UPDATE audit SET `+c.column+` = ? WHERE id = ?`, c.value, target.ID)
			verifyBad(t, target.ID)
			tamper(t, path, `UPDATE audit SET `+c.column+` = ? WHERE id = ?`, orig, target.ID)
			verifyOK(t)
		})
	}

	t.Run("rehashed without the key", func(t *testing.T) {
		// Changing a row and writing a fresh plain hash (or anything but the HMAC) into it
		// is found at that row.
		tamper(t, path, `UPDATE audit SET reason = 'kontrola', hash = ? WHERE id = ?`, strings.Repeat("ab", 32), target.ID)
		verifyBad(t, target.ID)
		tamper(t, path, `UPDATE audit SET reason = ?, hash = ? WHERE id = ?`, target.Reason, target.Hash, target.ID)
		verifyOK(t)
	})

	t.Run("row deleted", func(t *testing.T) {
		// Removing a row from the middle breaks the next row's link.
		tamper(t, path, `DELETE FROM audit WHERE id = ?`, target.ID)
		verifyBad(t, stored[3].ID)
	})
}

func TestAuditLogForgedAppend(t *testing.T) {
	// Someone who can write the catalog but not read the key appends a row of their own
	// (with any other key): it is found at that row.
	ctx := context.Background()
	cat, _ := openCatalog(t)
	log, err := NewAuditLog(cat, testKey(7))
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, log)
	forger, err := NewAuditLog(cat, testKey(9))
	if err != nil {
		t.Fatal(err)
	}
	forged, err := forger.Append(ctx, catalog.AuditEntry{Time: time.Now(), Actor: "admin", Action: AuditConfigChange, Outcome: catalog.AuditOK})
	if err != nil {
		t.Fatal(err)
	}
	v, err := log.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.FirstBad == nil || v.FirstBad.ID != forged.ID {
		t.Fatalf("Verify = first bad %+v, want the forged row %d", v.FirstBad, forged.ID)
	}
}

func TestAuditLogTruncationNeedsTheHead(t *testing.T) {
	// The documented limit: deleting the newest rows leaves a chain that verifies. What
	// exposes it is the head recorded elsewhere (the server logs it at start, daily and
	// at shutdown): the verification's head and row count no longer match it.
	ctx := context.Background()
	cat, path := openCatalog(t)
	log, err := NewAuditLog(cat, testKey(7))
	if err != nil {
		t.Fatal(err)
	}
	stored := appendAll(t, log)
	headID, head, rows, err := log.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tamper(t, path, `DELETE FROM audit WHERE id = ?`, stored[len(stored)-1].ID)
	v, err := log.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.FirstBad != nil {
		t.Fatalf("Verify reports %+v; the chain itself is intact after cutting the end", v.FirstBad)
	}
	if v.HeadID == headID || v.Head == head || v.Rows == rows {
		t.Fatalf("after deleting the newest row, Verify still reports head %d %s and %d rows", v.HeadID, v.Head, v.Rows)
	}
}

func TestCLIActor(t *testing.T) {
	// Rows written from the command line name the person at the host: the sudo user
	// before the login user.
	t.Setenv("SUDO_USER", "jnovak")
	t.Setenv("USER", "root")
	if got := CLIActor(); got != "cli:jnovak" {
		t.Errorf("CLIActor with SUDO_USER = %q, want cli:jnovak", got)
	}
	t.Setenv("SUDO_USER", "")
	if got := CLIActor(); got != "cli:root" {
		t.Errorf("CLIActor with USER = %q, want cli:root", got)
	}
	t.Setenv("USER", "")
	if got := CLIActor(); got != fmt.Sprintf("cli:uid%d", os.Getuid()) {
		t.Errorf("CLIActor with neither = %q", got)
	}
}
