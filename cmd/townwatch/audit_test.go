package main

import (
	"context"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// TestExportIsInTheAccessLog: a copy of footage made on the command line leaves a row
// saying who, which camera and range, why, for which case and for whom, and the chain
// still verifies afterwards.
func TestExportIsInTheAccessLog(t *testing.T) {
	t.Parallel()
	cfg := exportSetup(t)
	out := filepath.Join(t.TempDir(), "clip.mp4")
	if code, stdout, stderr := runBinary(t, append([]string{"export", "-config", cfg, "-camera", "cam1", "-from", rfc(time.Second), "-to", rfc(3 * time.Second), "-o", out}, exportWhy...)...); code != exitOK {
		t.Fatalf("export: exit %d\n%s%s", code, stdout, stderr)
	}
	rows := auditRows(t, cfg, access.AuditExportRequest)
	if len(rows) != 1 {
		t.Fatalf("export rows %+v, want one", rows)
	}
	r := rows[0]
	if r.Camera != "cam1" || !r.From.Equal(exportT0.Add(time.Second)) || !r.To.Equal(exportT0.Add(3*time.Second)) ||
		r.Reason != exportWhy[1] || r.Case != exportWhy[3] || r.Recipient != exportWhy[5] ||
		r.Outcome != catalog.AuditOK || !strings.HasPrefix(r.Actor, "cli:") || !strings.Contains(string(r.Details), out) {
		t.Errorf("export row %+v does not say who, what, why, for which case and to whom", r)
	}
	if code, stdout, stderr := runBinary(t, "audit", "verify", "-config", cfg); code != exitOK || !strings.Contains(stdout, "audit log intact") {
		t.Errorf("audit verify after an export: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestAuditVerifyNamesTheFirstBadRow tampers with the access log the three ways someone
// with access to the database file could: change a value, delete a row, or add a row
// whose hash was made without the server's key. Each time `audit verify` exits 1 and
// names the row; the untouched log verifies.
func TestAuditVerifyNamesTheFirstBadRow(t *testing.T) {
	t.Parallel()
	cfg := exportSetup(t)
	for _, name := range []string{"novak", "svoboda", "dvorak", "cerny"} {
		addAccount(t, cfg, name, "officer", "-cameras", "cam1")
	}
	code, stdout, stderr := runBinary(t, "audit", "verify", "-config", cfg)
	if code != exitOK || !regexp.MustCompile(`audit log intact: 4 rows, head row 4, head hash [0-9a-f]{64}`).MatchString(stdout) {
		t.Fatalf("untouched log: exit %d\n%s%s", code, stdout, stderr)
	}
	db := filepath.Join(filepath.Dir(cfg), "data", "catalog.db")
	pristine := copyFile(t, db, db+".pristine")

	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T)
		want   string
	}{
		{"a value changed", func(t *testing.T) { execSQL(t, db, `UPDATE audit SET actor = 'someone-else' WHERE id = 2`) }, "row 2"},
		{"a middle row deleted", func(t *testing.T) { execSQL(t, db, `DELETE FROM audit WHERE id = 3`) }, "row 4"},
		{"a row forged without the key", func(t *testing.T) {
			cat, err := catalog.Open(context.Background(), db)
			if err != nil {
				t.Fatal(err)
			}
			defer cat.Close()
			forger := []byte("0123456789abcdef0123456789abcdef") // not the key in audit.key
			if _, err := cat.AppendAudit(context.Background(), forger, catalog.AuditEntry{Time: time.Now(), Actor: "admin",
				Action: access.AuditUserAdd, Outcome: catalog.AuditOK}); err != nil {
				t.Fatal(err)
			}
		}, "row 6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			copyFile(t, pristine, db)
			tc.tamper(t)
			code, stdout, stderr := runBinary(t, "audit", "verify", "-config", cfg)
			if code != exitFailure || !strings.Contains(stdout, "audit log BROKEN at "+tc.want) {
				t.Errorf("exit %d (want %d), stdout %q, stderr %q; want it to name %s", code, exitFailure, stdout, stderr, tc.want)
			}
		})
	}
}

// auditRows reads the access log rows of one action from the configuration's catalog.
func auditRows(t *testing.T, cfg, action string) []catalog.AuditEntry {
	t.Helper()
	cat, err := catalog.Open(context.Background(), filepath.Join(filepath.Dir(cfg), "data", "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	rows, err := cat.AuditEntries(context.Background(), catalog.AuditQuery{Action: action})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func execSQL(t *testing.T, path, stmt string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

func copyFile(t *testing.T, from, to string) string {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return to
}
