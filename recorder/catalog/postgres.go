package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// pgDiskFull is PostgreSQL's SQLSTATE disk_full.
const pgDiskFull = "53100"

// IsPostgresURL reports whether target names a PostgreSQL database rather than a SQLite
// file: a postgres:// or postgresql:// URL.
func IsPostgresURL(target string) bool {
	return strings.HasPrefix(target, "postgres://") || strings.HasPrefix(target, "postgresql://")
}

// RedactURL returns target with any password replaced by xxxxx, for errors and logs: a
// catalog URL may carry the database password, which must never be shown.
func RedactURL(target string) string {
	u, err := url.Parse(target)
	if err != nil {
		if IsPostgresURL(target) {
			return "postgres://(unparsable URL)"
		}
		return target
	}
	return u.Redacted()
}

// OpenPostgres opens the catalog in the existing PostgreSQL database at rawURL (libpq
// URL syntax: postgres://user:password@host:port/dbname?sslmode=...) and brings its
// schema up to date.
//
// As with SQLite, one connection writes and a pool of read-only connections
// (default_transaction_read_only) reads; every write transaction also holds an advisory
// lock, so several townwatch processes sharing the database write one at a time.
//
// The database must sort text by bytes (LC_COLLATE C, as SQLite does): lists ordered by
// camera or user name must come out the same on either backend. Create it with
// CREATE DATABASE townwatch TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'.
func OpenPostgres(ctx context.Context, rawURL string) (*Catalog, error) {
	name := RedactURL(rawURL)
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("catalog: open %s: not a valid URL", name)
	}
	w, err := sql.Open("pgx", rawURL)
	if err != nil {
		return nil, fmt.Errorf("catalog: open %s: %w", name, err)
	}
	w.SetMaxOpenConns(1)
	if err := checkCollation(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("catalog: open %s: %w", name, err)
	}
	if err := migrate(ctx, w, postgresDialect); err != nil {
		w.Close()
		return nil, fmt.Errorf("catalog: open %s: %w", name, err)
	}
	// pgx passes query parameters it does not know to the server as settings.
	q := u.Query()
	q.Set("default_transaction_read_only", "on")
	u.RawQuery = q.Encode()
	r, err := sql.Open("pgx", u.String())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("catalog: open %s for reading: %w", name, err)
	}
	r.SetMaxOpenConns(readConns)
	r.SetMaxIdleConns(readConns)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("catalog: open %s for reading: %w", name, err)
	}
	return &Catalog{w: w, r: r, dialect: postgresDialect}, nil
}

// checkCollation refuses a database whose text order is not byte order.
func checkCollation(ctx context.Context, db *sql.DB) error {
	var collate string
	if err := db.QueryRowContext(ctx, `SELECT datcollate FROM pg_database WHERE datname = current_database()`).Scan(&collate); err != nil {
		return err
	}
	switch collate {
	case "C", "POSIX", "C.UTF-8", "C.utf8":
		return nil
	}
	return fmt.Errorf("database collation is %q, want C (byte order, as SQLite sorts): create the database with TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'", collate)
}

// Backend names the database server the catalog is in: "sqlite" or "postgres".
func (c *Catalog) Backend() string { return c.dialect.String() }
