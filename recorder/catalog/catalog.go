package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite" // also registers the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrNotFound: no row with that id or path.
	ErrNotFound = errors.New("not found")
	// ErrExists: CreateSegment was given a path the catalog already indexes.
	ErrExists = errors.New("already exists")
	// ErrSegmentOpen: DeleteSegment was asked to delete a segment still being written.
	ErrSegmentOpen = errors.New("segment is open")
	// ErrSegmentClosed: CloseSegment or UpdateOpenSegment on a segment already closed.
	ErrSegmentClosed = errors.New("segment is closed")
	// ErrIndexDropped: CloseSegment closed the segment, but without its fragment index,
	// which was malformed (bytes overlapping, time going back). The footage and its digest
	// are indexed; playback fetches such a segment whole. The caller logs it and goes on:
	// refusing the close would leave a complete recording open and retried forever.
	ErrIndexDropped = errors.New("segment closed without its fragment index")
	// ErrLocked: DeleteSegment was asked to delete footage under an active evidence lock.
	// Retention can race with AddLock between OldestUnlocked and DeleteSegment; it should
	// skip the segment, not fail.
	ErrLocked = errors.New("under an evidence lock")
	// ErrFull: the filesystem holding the catalog is full, so the write did not happen.
	// The recorder treats it like a full disk for media: pause and let retention free
	// space (which keeps a reserve so that its own catalog writes can succeed).
	ErrFull = errors.New("disk full")
)

// writeError marks the errors of a write that failed for lack of space as ErrFull
// (SQLITE_FULL, whose extended codes keep it in the low byte, PostgreSQL's disk_full, or
// a bare ENOSPC).
func writeError(err error) error {
	var se *sqlite.Error
	var pe *pgconn.PgError
	if err != nil && (errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_FULL ||
		errors.As(err, &pe) && pe.Code == pgDiskFull || errors.Is(err, syscall.ENOSPC)) {
		return fmt.Errorf("%w: %w", ErrFull, err)
	}
	return err
}

// busyTimeout is how long a connection waits for another connection's lock before
// SQLITE_BUSY. Within this process writes are already serialised on one connection, so
// only another process (townwatch verify/export against a live catalog) or a WAL
// checkpoint can make us wait; 5 s rides that out without hiding a real deadlock.
const busyTimeout = 5 * time.Second

// readConns bounds the read pool. WAL readers block neither each other nor the writer;
// four covers the API, retention and start-up verification on a 2–4 core box without
// holding many idle SQLite page caches.
const readConns = 4

// Catalog is the index of recorded footage, in a SQLite file or a PostgreSQL database. It
// is safe for concurrent use.
type Catalog struct {
	// w is the only connection that writes: MaxOpenConns(1) makes database/sql queue
	// writers, so SQLite never has two writers in this process to arbitrate between.
	w *sql.DB
	// dialect says which database server w and r talk to; the few statements that are
	// spelled differently (see dialect.go) ask it.
	dialect dialect
	// r is a pool of read-only connections; in WAL mode they read a committed snapshot
	// while w writes.
	r *sql.DB
	// damaged holds the first error that said the file is corrupt, seen by a write or by
	// one of the reads every running system makes often (see note).
	damaged atomic.Pointer[string]
	// sessionUserStmt is the query behind every authenticated request (SessionUser),
	// prepared on first use (a catalog opened at an older schema version for a migration
	// test has no sessions table yet): parsing it anew was about a third of the access
	// check's cost. nil if preparing failed; the query then runs unprepared.
	sessionUserOnce sync.Once
	sessionUserStmt *sql.Stmt
	// node is the recorder node this process is, when several share the catalog
	// (SetNode); "" for one node.
	node string
}

// note remembers err when it says the file is damaged, and returns it.
func (c *Catalog) note(err error) error {
	if err != nil && IsCorrupt(err) {
		msg := err.Error()
		c.damaged.CompareAndSwap(nil, &msg)
	}
	return err
}

// Damaged returns the first error this Catalog met that said the file is corrupt, ""
// while none did. Writes, sessions, byte counts, the retention hold, locks and segment
// listings notice; the next start checks the whole file (Check) and rebuilds it.
func (c *Catalog) Damaged() string {
	if p := c.damaged.Load(); p != nil {
		return *p
	}
	return ""
}

// Open opens the catalog at target, creating it if needed, and brings its schema up to
// date. It refuses a catalog written by a newer townwatch. target is a SQLite file path
// (e.g. <storage>/catalog.db) or a postgres:// (postgresql://) URL of an existing
// database (see OpenPostgres).
func Open(ctx context.Context, target string) (*Catalog, error) {
	if IsPostgresURL(target) {
		return OpenPostgres(ctx, target)
	}
	// synchronous=FULL, not NORMAL. In WAL mode NORMAL fsyncs the WAL only at checkpoints,
	// so a power cut can roll back the last commits although they returned success. For
	// this catalog that is not just lost metadata: DeleteSegment returns, the caller
	// removes the file, the power fails and the segment row comes back pointing at bytes
	// that no longer exist; or CloseSegment's size and SHA-256 vanish and start-up finds
	// an "open" segment to recover that was already finished. FULL fsyncs the WAL on every
	// commit, which makes a commit durable before the recorder acts on it. Commits are
	// rare (per camera: a progress update every few seconds, a segment a minute), so
	// the extra fsync is cheap (see BenchmarkCreateAndCloseSegment).
	return open(ctx, target, "FULL")
}

// open is Open with the synchronous level as a parameter, so the benchmark can measure
// what FULL costs against NORMAL.
func open(ctx context.Context, path, synchronous string) (*Catalog, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("catalog: open %s: %w", path, err)
	}
	// A file: URI (not a plain name) so that SQLite sees mode=ro on the read pool; the
	// driver passes file: names to sqlite3_open_v2 whole and reads its own _pragma and
	// _txlock keys from the same query string. url.URL escapes '?', '#' and '%' in the path.
	name := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
	ms := fmt.Sprint(busyTimeout.Milliseconds())

	wq := url.Values{}
	wq.Add("_pragma", "busy_timeout("+ms+")")
	wq.Add("_pragma", "journal_mode(WAL)")
	wq.Add("_pragma", "synchronous("+synchronous+")")
	wq.Add("_pragma", "foreign_keys(1)")
	// BEGIN IMMEDIATE takes the write lock when the transaction starts, so a transaction
	// that reads before it writes (DeleteSegment checks locks first) waits in busy_timeout
	// instead of failing with SQLITE_BUSY on upgrade if another process wrote meanwhile.
	wq.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite", name+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("catalog: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1) // database/sql keeps it idle, not closed, between writes
	if err := migrate(ctx, w, sqliteDialect); err != nil {
		w.Close()
		return nil, fmt.Errorf("catalog: open %s: %w", path, err)
	}

	// The read pool opens after the writer has created the file and switched it to WAL
	// (persistent in the file), since mode=ro can do neither. query_only is a second
	// guard should someone drop mode=ro from the name.
	rq := url.Values{}
	rq.Set("mode", "ro")
	rq.Add("_pragma", "busy_timeout("+ms+")")
	rq.Add("_pragma", "query_only(1)")
	r, err := sql.Open("sqlite", name+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("catalog: open %s for reading: %w", path, err)
	}
	r.SetMaxOpenConns(readConns)
	r.SetMaxIdleConns(readConns) // keep them: each new connection re-reads the schema
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("catalog: open %s for reading: %w", path, err)
	}
	return &Catalog{w: w, r: r, dialect: sqliteDialect}, nil
}

// Close closes both connection pools. The writer closes last: as the last connection it
// checkpoints the WAL into the database file.
func (c *Catalog) Close() error {
	if c.sessionUserStmt != nil {
		c.sessionUserStmt.Close()
	}
	rerr := c.r.Close()
	if werr := c.w.Close(); werr != nil {
		return fmt.Errorf("catalog: close: %w", werr)
	}
	if rerr != nil {
		return fmt.Errorf("catalog: close read pool: %w", rerr)
	}
	return nil
}

// write runs fn in one transaction on the writer connection. It waits while another write
// is in progress (or ctx ends). When ctx carries a fence (WithFence), fn runs only if the
// node still holds that lease, else the write is refused with ErrFenced.
func (c *Catalog) write(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := c.dialect.beginWrite(ctx, c.w)
	if err != nil {
		return c.note(writeError(err))
	}
	if f, ok := fenceOf(ctx); ok {
		if err := c.checkFence(ctx, tx, f); err != nil {
			tx.Rollback()
			return err
		}
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return c.note(writeError(err))
	}
	return c.note(writeError(tx.Commit()))
}

// execFound runs a statement that must affect a row; none affected is ErrNotFound.
func execFound(ctx context.Context, tx *sql.Tx, query string, args ...any) error {
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	return err
}

// Times are stored as int64 Unix nanoseconds, which cover 1677–2262; time.Time.UnixNano
// is undefined outside that range, so every time crossing into SQL is checked here.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// nanos converts t for storage; field names the value in the error.
func nanos(field string, t time.Time) (int64, error) {
	if t.IsZero() {
		return 0, fmt.Errorf("%s is not set", field)
	}
	if t.Before(minTime) || t.After(maxTime) {
		return 0, fmt.Errorf("%s %s is outside the storable range", field, t.Format(time.RFC3339Nano))
	}
	return t.UnixNano(), nil
}

// fromNanos is the inverse of nanos: every time leaving the catalog is UTC.
func fromNanos(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// nullNanos converts an optional time: the zero time is stored as NULL.
func nullNanos(field string, t time.Time) (sql.NullInt64, error) {
	if t.IsZero() {
		return sql.NullInt64{}, nil
	}
	ns, err := nanos(field, t)
	return sql.NullInt64{Int64: ns, Valid: err == nil}, err
}

// fromNullNanos maps NULL back to the zero time.
func fromNullNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromNanos(n.Int64)
}

// boolInt stores a flag as the 0 or 1 of its INTEGER column: SQLite's driver converts a
// bool itself, PostgreSQL's refuses to put one in an integer column.
func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ensureCamera creates the cameras row other tables reference. ON CONFLICT DO NOTHING is
// SQLite's INSERT OR IGNORE in the spelling PostgreSQL also accepts.
func ensureCamera(ctx context.Context, tx *sql.Tx, camera string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO cameras (id) VALUES ($1) ON CONFLICT (id) DO NOTHING`, camera)
	return err
}
