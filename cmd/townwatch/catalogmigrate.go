package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// runCatalogMigrate is `townwatch catalog migrate -from FILE -to postgres://...`: it moves
// an installation's SQLite catalog into an empty PostgreSQL database (catalog.CopyTo:
// every row and id, then row counts and segment digests verified). The server must be
// stopped; the file is only read and stays as it was, so going back is changing
// catalog.url back. The move itself is recorded in the new catalog's access log, keyed
// with the installation's audit key: a data-protection officer reading the log there sees
// when and by whom its history was carried over.
func runCatalogMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("catalog migrate", stderr)
	from := fs.String("from", "", "the SQLite catalog file, e.g. /var/lib/townwatch/catalog.db (required)")
	to := fs.String("to", "", "postgres:// URL of an empty database created with LC_COLLATE 'C' (required; the password belongs in ~/.pgpass)")
	auditKey := fs.String("audit-key", "", "the access log's key file (default: audit.key beside -from, where townwatch serve keeps it unless audit.key_file says otherwise)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *from == "" || *to == "" {
		fmt.Fprintln(stderr, "catalog migrate: -from and -to are required")
		return exitUsage
	}
	if !catalog.IsPostgresURL(*to) {
		fmt.Fprintf(stderr, "catalog migrate: -to %s is not a postgres:// URL\n", catalog.RedactURL(*to))
		return exitUsage
	}
	if *auditKey == "" {
		*auditKey = filepath.Join(filepath.Dir(*from), "audit.key")
	}
	if err := migrateCatalog(ctx, *from, *to, *auditKey, stdout); err != nil {
		fmt.Fprintf(stderr, "catalog migrate: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// catalogMigration is the details object of the access-log row a migration writes.
type catalogMigration struct {
	From string `json:"from"`
	To   string `json:"to"` // redacted: no password
	catalog.CopyReport
}

func migrateCatalog(ctx context.Context, from, to, auditKeyFile string, stdout io.Writer) error {
	// Opening a missing file would create an empty catalog and copy nothing.
	if st, err := os.Stat(from); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("-from %s is not a catalog file: %v", from, err)
	}
	// The storage lock of the directory holding the file: a running townwatch serve
	// would go on writing rows the copy does not have.
	lock, err := lockStorage(filepath.Dir(from))
	if err != nil {
		if errors.Is(err, errStorageBusy) {
			return fmt.Errorf("%w: stop `townwatch serve` first", err)
		}
		return err
	}
	defer lock.Close()
	if err := catalog.Check(ctx, from); err != nil {
		return fmt.Errorf("-from: %w (run townwatch catalog rebuild first)", err)
	}
	src, err := catalog.Open(ctx, from)
	if err != nil {
		return fmt.Errorf("-from: %w", err)
	}
	defer src.Close()
	// The key is read before anything is copied: without it the moved log could not be
	// continued, and the server would refuse the new catalog at its first start. A key is
	// made only for a log without rows, as serve itself would.
	_, _, auditRows, err := src.AuditHead(ctx)
	if err != nil {
		return fmt.Errorf("-from: %w", err)
	}
	key, err := access.LoadAuditKey(auditKeyFile, auditRows == 0)
	if err != nil {
		return fmt.Errorf("-audit-key: %w", err)
	}
	dst, err := catalog.Open(ctx, to)
	if err != nil {
		return fmt.Errorf("-to: %w", err)
	}
	defer dst.Close()
	rep, err := src.CopyTo(ctx, dst)
	if err != nil {
		return err
	}
	log, err := access.NewAuditLog(dst, key)
	if err != nil {
		return fmt.Errorf("-audit-key: %w", err)
	}
	details, err := json.Marshal(catalogMigration{From: from, To: catalog.RedactURL(to), CopyReport: rep})
	if err != nil {
		return err
	}
	row, err := log.Append(ctx, catalog.AuditEntry{Time: time.Now(), Actor: access.CLIActor(), Action: access.AuditCatalogMigrated,
		Outcome: catalog.AuditOK, Details: details})
	if err != nil {
		return fmt.Errorf("every row is copied and verified, but the migration's own access-log row could not be written: %w", err)
	}
	fmt.Fprintf(stdout, "%-16s %10s %10s\n", "table", "sqlite", "postgres")
	for _, t := range rep.Tables {
		fmt.Fprintf(stdout, "%-16s %10d %10d\n", t.Table, t.Source, t.Target)
	}
	fmt.Fprintf(stdout, "Verified: every row count, and the path, size, SHA-256 and chain link of %d segment records.\n", rep.SegmentsVerified)
	fmt.Fprintf(stdout, "Recorded as access-log row %d (%s) in the new catalog.\n", row.ID, access.AuditCatalogMigrated)
	fmt.Fprintf(stdout, "Set catalog.url: %s in the configuration and start townwatch serve; %s stays as it was.\n", catalog.RedactURL(to), from)
	return nil
}
