package catalog

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrCorrupt: the catalog file is damaged (SQLite reports it malformed or not a
// database, or PRAGMA quick_check finds problems). Match with errors.Is, or IsCorrupt
// for an error straight from SQLite.
var ErrCorrupt = errors.New("catalog is corrupt")

// IsCorrupt reports whether err says the database file is damaged: ErrCorrupt, or
// SQLite's SQLITE_CORRUPT or SQLITE_NOTADB (in any extended form).
func IsCorrupt(err error) bool {
	if errors.Is(err, ErrCorrupt) {
		return true
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return true
		}
	}
	return false
}

// fileURI is the file: URI of path with query q, as open builds it.
func fileURI(path string, q url.Values) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String() + "?" + q.Encode(), nil
}

// Check runs PRAGMA quick_check on the catalog at path, read-only (a damaged file is
// never written to: it may be evidence of what went wrong). It returns nil when the file
// is sound or does not exist yet, an error wrapping ErrCorrupt when it is damaged, and
// another error when it cannot be read at all for another reason (permissions).
//
// quick_check reads every page once (it skips the index-to-table cross-check of
// integrity_check): about a second per few hundred MB.
func Check(ctx context.Context, path string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout("+fmt.Sprint(busyTimeout.Milliseconds())+")")
	name, err := fileURI(path, q)
	if err != nil {
		return fmt.Errorf("catalog: check %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", name)
	if err != nil {
		return fmt.Errorf("catalog: check %s: %w", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	rows, err := db.QueryContext(ctx, `PRAGMA quick_check(20)`)
	if err != nil {
		return checkError(path, err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return checkError(path, err)
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		return checkError(path, err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("catalog: %s: %w: quick_check: %s", path, ErrCorrupt, strings.Join(problems, "; "))
	}
	return nil
}

// QuickCheck runs PRAGMA quick_check on the open catalog (a read connection: it sees
// the last committed state, WAL included, and never blocks writers). Damage it finds is
// returned wrapping ErrCorrupt and remembered for Damaged. A running system calls it now
// and then: pages that no query happens to touch (or that the writer has cached) can
// be damaged for a long time before a query fails on them.
//
// On PostgreSQL it does nothing: the server guards its own pages (data checksums,
// amcheck), and what it reports as damage is an error of the query that met it.
func (c *Catalog) QuickCheck(ctx context.Context) error {
	if c.dialect == postgresDialect {
		return nil
	}
	rows, err := c.r.QueryContext(ctx, `PRAGMA quick_check(20)`)
	if err != nil {
		return c.note(checkError("quick_check", err))
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return c.note(checkError("quick_check", err))
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		return c.note(checkError("quick_check", err))
	}
	if len(problems) > 0 {
		return c.note(fmt.Errorf("catalog: %w: quick_check: %s", ErrCorrupt, strings.Join(problems, "; ")))
	}
	return nil
}

func checkError(path string, err error) error {
	if IsCorrupt(err) {
		return fmt.Errorf("catalog: %s: %w: %w", path, ErrCorrupt, err)
	}
	return fmt.Errorf("catalog: check %s: %w", path, err)
}

// salvageTables are the tables Salvage copies, in an order that puts every referenced
// row (cameras, users) before the rows that reference it. Segments are not among them:
// the recorder rebuilds them from the files themselves (recorder.Recover adopts every
// file with its own size and SHA-256), which is truer than any row of a damaged file.
var salvageTables = []string{"cameras", "users", "sessions", "locks", "retention_holds", "events", "deletions", "audit"}

// TableSalvage says what Salvage could read of one table.
type TableSalvage struct {
	Table  string `json:"table"`
	Copied int64  `json:"copied"` // rows now in the new catalog
	// Refused counts rows read but not accepted by the new catalog (a session whose
	// user was lost, a value a damaged page garbled past the schema's checks).
	Refused int64 `json:"refused,omitempty"`
	// Complete: the table was read to its end without an error, so no row was lost.
	Complete bool `json:"complete"`
	// Unread is the first read error; rows behind it up to the next readable page are
	// lost.
	Unread string `json:"unread,omitempty"`
}

// SalvageReport says what Salvage copied from a damaged catalog.
type SalvageReport struct {
	// HeaderRepaired: the file's 100-byte header was unreadable and was rebuilt on a
	// working copy to reach the pages behind it.
	HeaderRepaired bool           `json:"header_repaired,omitempty"`
	Unreadable     string         `json:"unreadable,omitempty"` // nothing could be read: why
	Tables         []TableSalvage `json:"tables"`
}

// Complete reports whether table was read in full.
func (r SalvageReport) Complete(table string) bool {
	for _, t := range r.Tables {
		if t.Table == table {
			return t.Complete
		}
	}
	return false
}

// Lost lists the tables that were not read in full.
func (r SalvageReport) Lost() []string {
	var lost []string
	for _, t := range r.Tables {
		if !t.Complete {
			lost = append(lost, t.Table)
		}
	}
	return lost
}

// String is one line for a log: rows copied per table, and what was lost.
func (r SalvageReport) String() string {
	var b strings.Builder
	if r.Unreadable != "" {
		fmt.Fprintf(&b, "nothing readable (%s); ", r.Unreadable)
	}
	if r.HeaderRepaired {
		b.WriteString("header rebuilt; ")
	}
	for i, t := range r.Tables {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", t.Table, t.Copied)
		if t.Refused > 0 {
			fmt.Fprintf(&b, " (%d refused)", t.Refused)
		}
		if !t.Complete {
			b.WriteString(" INCOMPLETE")
		}
	}
	return b.String()
}

// Salvage copies what can be read of the damaged catalog at from into c, a new and empty
// catalog: every table of salvageTables row by row, skipping rows and pages that fail to
// read, with their ids kept (audit rows keep their chain, so VerifyAudit shows where it
// breaks; a lock keeps the id people know it by). AUTOINCREMENT counters are carried
// over so that no id of the old catalog, segment ids included, is ever given again.
//
// from is never written: Salvage reads a working copy (the file and its -wal) next to
// it, removed afterwards. When the header cannot be read, the copy's header is rebuilt
// from the page layout. An error means c could not be written; what could not be read
// is in the report.
func Salvage(ctx context.Context, from string, c *Catalog) (SalvageReport, error) {
	var rep SalvageReport
	for _, t := range salvageTables {
		rep.Tables = append(rep.Tables, TableSalvage{Table: t})
	}
	work, err := os.MkdirTemp(filepath.Dir(from), ".salvage-")
	if err != nil {
		return rep, fmt.Errorf("catalog: salvage: %w", err)
	}
	defer os.RemoveAll(work)
	copyPath := filepath.Join(work, "catalog.db")
	for _, suffix := range []string{"", "-wal"} {
		if err := copyFile(from+suffix, copyPath+suffix); err != nil {
			if suffix != "" && errors.Is(err, os.ErrNotExist) {
				continue
			}
			rep.Unreadable = err.Error()
			return rep, nil
		}
	}
	old, err := openSalvage(ctx, copyPath)
	if err != nil {
		// The schema (page 1) cannot be read: most often the header is garbage.
		if rerr := repairHeader(ctx, copyPath); rerr != nil {
			rep.Unreadable = fmt.Sprintf("%v; header repair: %v", err, rerr)
			return rep, nil
		}
		rep.HeaderRepaired = true
		if old, err = openSalvage(ctx, copyPath); err != nil {
			rep.Unreadable = err.Error()
			return rep, nil
		}
	}
	defer old.Close()
	for i := range rep.Tables {
		if err := salvageTable(ctx, old, c, &rep.Tables[i]); err != nil {
			return rep, fmt.Errorf("catalog: salvage %s: %w", rep.Tables[i].Table, err)
		}
	}
	if err := salvageSequences(ctx, old, c); err != nil {
		return rep, fmt.Errorf("catalog: salvage id counters: %w", err)
	}
	return rep, nil
}

// openSalvage opens the working copy and reads its schema, which fails when page 1 is
// unreadable.
func openSalvage(ctx context.Context, path string) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(1000)")
	name, err := fileURI(path, q)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", name)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema`).Scan(&n); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// repairHeader writes a plausible SQLite header over the first 100 bytes of the working
// copy at path. Everything the header holds is either fixed for a townwatch catalog
// (UTF-8, schema format 4, no auto-vacuum) or can be derived (the page size: a size that
// divides the file and at which page 2 starts with a b-tree page type; the page count
// from the file size). The free list is dropped: its pages hold no rows.
func repairHeader(ctx context.Context, path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var page1 [101]byte
	if _, err := f.ReadAt(page1[:], 0); err != nil {
		return fmt.Errorf("read page 1: %w", err)
	}
	if t := page1[100]; t != 0x0d && t != 0x05 {
		return fmt.Errorf("page 1 holds no schema b-tree (type byte %#x)", t)
	}
	var tried []string
	for _, ps := range []int64{4096, 1024, 2048, 8192, 16384, 32768, 65536, 512} {
		if info.Size()%ps != 0 || info.Size() < ps {
			continue
		}
		if info.Size() > ps {
			var t [1]byte
			if _, err := f.ReadAt(t[:], ps); err != nil {
				continue
			}
			switch t[0] {
			case 0x02, 0x05, 0x0a, 0x0d:
			default:
				continue
			}
		}
		if _, err := f.WriteAt(sqliteHeader(ps, info.Size()/ps), 0); err != nil {
			return err
		}
		db, err := openSalvage(ctx, path)
		if err == nil {
			db.Close()
			return nil
		}
		tried = append(tried, fmt.Sprintf("page size %d: %v", ps, err))
	}
	if len(tried) == 0 {
		return errors.New("no page size fits the file")
	}
	return errors.New(strings.Join(tried, "; "))
}

// sqliteHeader is the database header of a file of pages pages of size pageSize (see
// https://www.sqlite.org/fileformat.html#the_database_header).
func sqliteHeader(pageSize, pages int64) []byte {
	h := make([]byte, 100)
	copy(h, "SQLite format 3\x00")
	ps := uint16(pageSize)
	if pageSize == 65536 {
		ps = 1
	}
	binary.BigEndian.PutUint16(h[16:], ps)
	h[18], h[19] = 2, 2 // WAL
	h[20] = 0           // reserved bytes per page
	h[21], h[22], h[23] = 64, 32, 32
	binary.BigEndian.PutUint32(h[24:], 1) // change counter
	binary.BigEndian.PutUint32(h[28:], uint32(pages))
	binary.BigEndian.PutUint32(h[40:], 1) // schema cookie
	binary.BigEndian.PutUint32(h[44:], 4) // schema format
	binary.BigEndian.PutUint32(h[56:], 1) // UTF-8
	binary.BigEndian.PutUint32(h[92:], 1) // version-valid-for = change counter
	binary.BigEndian.PutUint32(h[96:], 3046000)
	return h
}

// columnsOf lists a table's columns; none when it does not exist.
func columnsOf(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, table string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT name FROM pragma_table_info($1)`, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

// salvageTable copies one table's readable rows from old into c.
func salvageTable(ctx context.Context, old *sql.DB, c *Catalog, ts *TableSalvage) error {
	newCols, err := columnsOf(ctx, c.r, ts.Table)
	if err != nil {
		return err
	}
	from := ts.Table
	oldCols, err := columnsOf(ctx, old, from)
	if err == nil && len(oldCols) == 0 && ts.Table == "retention_holds" {
		// A catalog damaged before migration 8 keeps its hold in retention_hold (one
		// row, of the single node: a salvaged file is SQLite). A forced hold among them
		// holds back retention after evidence locks were lost; it must survive.
		from = "retention_hold"
		if oldCols, err = columnsOf(ctx, old, from); err == nil && len(oldCols) > 0 {
			oldCols = append(oldCols, "node")
		}
	}
	if err != nil {
		ts.Unread = err.Error()
		return nil
	}
	if len(oldCols) == 0 {
		// Absent from the old schema (made by an older townwatch): nothing to lose.
		ts.Complete = true
		return nil
	}
	var cols, selected []string
	for _, col := range newCols {
		if slices.Contains(oldCols, col) {
			cols = append(cols, col)
			if from == "retention_hold" && col == "node" {
				selected = append(selected, "'' AS node")
			} else {
				selected = append(selected, col)
			}
		}
	}
	list := strings.Join(cols, ", ")
	ph := make([]string, len(cols))
	for i := range ph {
		ph[i] = fmt.Sprintf("$%d", i+1)
	}
	insert := `INSERT INTO ` + ts.Table + ` (` + list + `) VALUES (` + strings.Join(ph, ", ") + `)`
	camera := slices.Index(cols, "camera")
	if ts.Table == "cameras" || ts.Table == "audit" {
		camera = -1 // cameras is the referenced table; audit.camera has no foreign key
	}
	return c.write(ctx, func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, insert)
		if err != nil {
			return err
		}
		defer ins.Close()
		readErr := scanSkipping(ctx, old, from, strings.Join(selected, ", "), len(cols), func(vals []any) error {
			if camera >= 0 {
				if s, ok := vals[camera].(string); ok {
					if err := ensureCamera(ctx, tx, s); err != nil {
						return err
					}
				}
			}
			if _, err := ins.ExecContext(ctx, vals...); err != nil {
				if IsCorrupt(err) || errors.Is(writeError(err), ErrFull) || ctx.Err() != nil {
					return err // the new catalog itself fails
				}
				ts.Refused++
				return nil
			}
			ts.Copied++
			return nil
		})
		var we writeFailure
		if errors.As(readErr, &we) {
			return we.err
		}
		if readErr != nil {
			ts.Unread = readErr.Error()
		} else {
			ts.Complete = true
		}
		return nil
	})
}

// writeFailure marks an error of scanSkipping's callback, which ends the salvage,
// apart from the read errors it skips.
type writeFailure struct{ err error }

func (w writeFailure) Error() string { return w.err.Error() }

// scanSkipping reads every row of table it can, in rowid order, and calls fn with each.
// A read error (a damaged page) ends the scan where it happened; it goes on from the
// smallest rowid after that it can seek to, so one bad page loses only its own rows. It
// returns the first read error, nil when the table was read in full.
func scanSkipping(ctx context.Context, db *sql.DB, table, cols string, n int, fn func([]any) error) error {
	query := `SELECT rowid, ` + cols + ` FROM ` + table + ` WHERE rowid >= $1 ORDER BY rowid`
	probe := `SELECT rowid FROM ` + table + ` WHERE rowid >= $1 ORDER BY rowid LIMIT 1`
	var first error
	next := int64(math.MinInt64)
	for {
		last, more, err := scanFrom(ctx, db, query, next, n, fn)
		var we writeFailure
		if errors.As(err, &we) || ctx.Err() != nil {
			return errors.Join(err, ctx.Err())
		}
		if err == nil {
			return first
		}
		if first == nil {
			first = err
		}
		if !more {
			last = max(last, next)
		}
		var ok bool
		if next, ok = skipDamage(ctx, db, probe, last); !ok {
			return first
		}
	}
}

// scanFrom runs query from rowid `from`; last is the last rowid read (more: at least
// one was).
func scanFrom(ctx context.Context, db *sql.DB, query string, from int64, n int, fn func([]any) error) (last int64, more bool, err error) {
	rows, err := db.QueryContext(ctx, query, from)
	if err != nil {
		return from, false, err
	}
	defer rows.Close()
	for rows.Next() {
		var rowid int64
		vals := make([]any, n)
		dest := []any{&rowid}
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return last, more, err
		}
		last, more = rowid, true
		if err := fn(vals); err != nil {
			return last, more, writeFailure{err}
		}
	}
	return last, more, rows.Err()
}

// skipDamage finds the smallest rowid after last from which the table can be read again:
// it probes last+1, +2, +4, … until a seek succeeds, then narrows the last step by
// bisection. Seeking into a damaged page fails and seeking past it succeeds, so the
// readable start is where that changes.
func skipDamage(ctx context.Context, db *sql.DB, probe string, last int64) (int64, bool) {
	readable := func(r int64) bool {
		var id int64
		err := db.QueryRowContext(ctx, probe, r).Scan(&id)
		return err == nil || errors.Is(err, sql.ErrNoRows)
	}
	lo := last // known unreadable (or already read)
	for step := int64(1); step > 0 && ctx.Err() == nil; step *= 2 {
		if lo > math.MaxInt64-step {
			break
		}
		hi := last + step
		if !readable(hi) {
			lo = hi
			continue
		}
		for hi-lo > 1 {
			mid := lo + (hi-lo)/2
			if readable(mid) {
				hi = mid
			} else {
				lo = mid
			}
		}
		return hi, true
	}
	return 0, false
}

// salvageSequences carries the AUTOINCREMENT counters over, and makes sure no segment id
// the deletion log names is given again even if the counters are lost.
func salvageSequences(ctx context.Context, old *sql.DB, c *Catalog) error {
	seqs := map[string]int64{}
	if rows, err := old.QueryContext(ctx, `SELECT name, seq FROM sqlite_sequence`); err == nil {
		for rows.Next() {
			var name string
			var seq int64
			if rows.Scan(&name, &seq) == nil {
				seqs[name] = seq
			}
		}
		rows.Close()
	}
	return c.write(ctx, func(tx *sql.Tx) error {
		var deleted sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(segment_id) FROM deletions`).Scan(&deleted); err != nil {
			return err
		}
		if deleted.Valid && deleted.Int64 > seqs["segments"] {
			seqs["segments"] = deleted.Int64
		}
		for name, seq := range seqs {
			var have sql.NullInt64
			err := tx.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = $1`, name).Scan(&have)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				if _, err := tx.ExecContext(ctx, `INSERT INTO sqlite_sequence (name, seq) VALUES ($1, $2)`, name, seq); err != nil {
					return err
				}
			case err != nil:
				return err
			case have.Int64 < seq:
				if _, err := tx.ExecContext(ctx, `UPDATE sqlite_sequence SET seq = $2 WHERE name = $1`, name, seq); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// AsideName is the name a damaged catalog at path is moved to: path.corrupt-<UTC time>.
func AsideName(path string, at time.Time) string {
	return path + ".corrupt-" + at.UTC().Format("20060102T150405Z")
}

// MoveAside renames the catalog at path and its -wal and -shm to AsideName(path, at)
// (with the same suffixes), so that SQLite still finds the WAL that belongs to it, and
// returns the new name. The catalog must be closed.
func MoveAside(path string, at time.Time) (string, error) {
	aside := AsideName(path, at)
	for i := 1; ; i++ {
		if _, err := os.Lstat(aside); errors.Is(err, os.ErrNotExist) {
			break
		}
		aside = fmt.Sprintf("%s.%d", AsideName(path, at), i)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Rename(path+suffix, aside+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return aside, fmt.Errorf("catalog: move %s aside: %w", path+suffix, err)
		}
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return aside, nil
}
