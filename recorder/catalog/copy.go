package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// copyTables are every table of the schema, in an order that puts each referenced row
// (cameras, users, cases) before the rows that reference it.
var copyTables = []string{"cameras", "users", "sessions", "segments", "locks", "deletions", "retention_holds",
	"events", "audit", "exports", "motion_grid", "cases", "bookmarks", "nodes", "camera_leases"}

// idTables are the copyTables whose id the database hands out (AUTOINCREMENT, identity).
var idTables = []string{"users", "segments", "locks", "deletions", "audit", "exports", "cases", "bookmarks"}

// TableCopy is one table's row count in the source and, after the copy, in the target.
type TableCopy struct {
	Table  string `json:"table"`
	Source int64  `json:"source"`
	Target int64  `json:"target"`
}

// CopyReport says what CopyTo moved and what it verified.
type CopyReport struct {
	Tables []TableCopy `json:"tables"`
	// SegmentsVerified counts the segments and deletion records whose path, size, SHA-256
	// and chain link were read back from the target and found equal to the source's.
	SegmentsVerified int64 `json:"segments_verified"`
}

// CopyTo copies every row of this SQLite catalog into to, an empty PostgreSQL catalog at
// the same schema version, ids included (a lock, an export, an audit row keep the id
// people know them by, and the audit chain its order). The identity sequences then start
// past every id the source ever gave, deleted ones included (its AUTOINCREMENT counters
// and the segment ids its deletion log names), so no id is ever given again.
//
// Everything is written in one transaction: an error leaves to empty. After the commit
// it verifies: each table's row count, and every segment's and deletion's path, size,
// SHA-256 and chain link, read back from to. The source is only read; stop the server
// that writes it first.
func (c *Catalog) CopyTo(ctx context.Context, to *Catalog) (CopyReport, error) {
	var rep CopyReport
	if c.dialect != sqliteDialect || to.dialect != postgresDialect {
		return rep, fmt.Errorf("catalog: copy: only from SQLite to PostgreSQL (this is %s to %s)", c.dialect, to.dialect)
	}
	if err := sameVersion(ctx, c, to); err != nil {
		return rep, fmt.Errorf("catalog: copy: %w", err)
	}
	for _, t := range copyTables {
		n, err := count(ctx, to.r, t)
		if err != nil {
			return rep, fmt.Errorf("catalog: copy: count %s in the target: %w", t, err)
		}
		if n > 0 {
			return rep, fmt.Errorf("catalog: copy: the target is not empty (%s has %d rows); copy only into a new database", t, n)
		}
	}
	floors, err := c.idFloors(ctx)
	if err != nil {
		return rep, fmt.Errorf("catalog: copy: read the id counters: %w", err)
	}
	err = to.write(ctx, func(tx *sql.Tx) error {
		for _, t := range copyTables {
			if err := copyTable(ctx, c.r, tx, t); err != nil {
				return fmt.Errorf("%s: %w", t, err)
			}
		}
		for _, t := range idTables {
			// setval(seq, n) makes the next id n+1; is_called false with n = 1 keeps 1 for
			// a table that never had a row.
			if _, err := tx.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence($1, 'id'), GREATEST($2, 1), $2 > 0)`, t, floors[t]); err != nil {
				return fmt.Errorf("move the %s id sequence past %d: %w", t, floors[t], err)
			}
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("catalog: copy: %w", err)
	}
	return c.verifyCopy(ctx, to)
}

// sameVersion refuses catalogs at different schema versions: the column lists would differ.
func sameVersion(ctx context.Context, a, b *Catalog) error {
	var va, vb int
	if err := a.r.QueryRowContext(ctx, maxVersion).Scan(&va); err != nil {
		return err
	}
	if err := b.r.QueryRowContext(ctx, maxVersion).Scan(&vb); err != nil {
		return err
	}
	if va != vb {
		return fmt.Errorf("schema versions differ (source %d, target %d)", va, vb)
	}
	return nil
}

func count(ctx context.Context, db *sql.DB, table string) (int64, error) {
	var n int64
	err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n)
	return n, err
}

// idFloors returns, per idTable, the highest id the SQLite catalog has ever given: the
// AUTOINCREMENT counter, which remembers deleted rows, or the largest id present, and
// for segments also the largest segment id in the deletion log (Salvage keeps that
// promise the same way).
func (c *Catalog) idFloors(ctx context.Context) (map[string]int64, error) {
	floors := map[string]int64{}
	rows, err := c.r.QueryContext(ctx, `SELECT name, seq FROM sqlite_sequence`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var seq int64
		if err := rows.Scan(&name, &seq); err != nil {
			return nil, err
		}
		floors[name] = seq
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	highest := func(query string, table string) error {
		var n sql.NullInt64
		if err := c.r.QueryRowContext(ctx, query).Scan(&n); err != nil {
			return err
		}
		floors[table] = max(floors[table], n.Int64)
		return nil
	}
	for _, t := range idTables {
		if err := highest(`SELECT MAX(id) FROM `+t, t); err != nil {
			return nil, err
		}
	}
	return floors, highest(`SELECT MAX(segment_id) FROM deletions`, "segments")
}

// copyTable inserts every row of table from src through tx, column for column.
func copyTable(ctx context.Context, src *sql.DB, tx *sql.Tx, table string) error {
	rows, err := src.QueryContext(ctx, `SELECT * FROM `+table)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	ph := make([]string, len(cols))
	for i := range ph {
		ph[i] = fmt.Sprintf("$%d", i+1)
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO `+table+` (`+strings.Join(cols, ", ")+`) VALUES (`+strings.Join(ph, ", ")+`)`)
	if err != nil {
		return err
	}
	defer ins.Close()
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		if _, err := ins.ExecContext(ctx, vals...); err != nil {
			return fmt.Errorf("row %v: %w", vals[0], err)
		}
	}
	return rows.Err()
}

// verifyCopy compares the row counts of every table and the identity of every segment
// and deletion record (what the recorder's verification trusts the catalog for).
func (c *Catalog) verifyCopy(ctx context.Context, to *Catalog) (CopyReport, error) {
	var rep CopyReport
	var problems []string
	for _, t := range copyTables {
		tc := TableCopy{Table: t}
		var err error
		if tc.Source, err = count(ctx, c.r, t); err != nil {
			return rep, fmt.Errorf("catalog: copy: verify %s: %w", t, err)
		}
		if tc.Target, err = count(ctx, to.r, t); err != nil {
			return rep, fmt.Errorf("catalog: copy: verify %s: %w", t, err)
		}
		if tc.Source != tc.Target {
			problems = append(problems, fmt.Sprintf("%s has %d rows, the source %d", t, tc.Target, tc.Source))
		}
		rep.Tables = append(rep.Tables, tc)
	}
	for _, v := range []struct{ table, query string }{
		{"segments", `SELECT id, path, bytes, sha256, COALESCE(prev_sha256, '-') FROM segments ORDER BY id`},
		{"deletions", `SELECT segment_id, path, bytes, sha256, COALESCE(prev_sha256, '-') FROM deletions ORDER BY id`},
	} {
		want, err := fingerprints(ctx, c.r, v.query)
		if err != nil {
			return rep, fmt.Errorf("catalog: copy: verify: %w", err)
		}
		got, err := fingerprints(ctx, to.r, v.query)
		if err != nil {
			return rep, fmt.Errorf("catalog: copy: verify: %w", err)
		}
		for i := range max(len(want), len(got)) {
			if i >= len(want) || i >= len(got) || want[i] != got[i] {
				problems = append(problems, fmt.Sprintf("%s row %d (in id order) differs in id, path, size, SHA-256 or chain link", v.table, i+1))
				break
			}
		}
		rep.SegmentsVerified += int64(min(len(want), len(got)))
	}
	if len(problems) > 0 {
		return rep, fmt.Errorf("catalog: copy: verification failed (the target holds the copy; drop that database before trying again): %s", strings.Join(problems, "; "))
	}
	return rep, nil
}

// fingerprints reads query's rows as one string each.
func fingerprints(ctx context.Context, db *sql.DB, query string) ([]string, error) {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, bytes int64
		var path, sum, prev string
		if err := rows.Scan(&id, &path, &bytes, &sum, &prev); err != nil {
			return nil, err
		}
		out = append(out, fmt.Sprintf("%d %s %d %s %s", id, path, bytes, sum, prev))
	}
	return out, rows.Err()
}
