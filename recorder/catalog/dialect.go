package catalog

import (
	"context"
	"database/sql"
	"fmt"
)

// dialect is the database server a Catalog talks to. Queries are written once, in the SQL
// both accept ($N placeholders, ON CONFLICT, RETURNING); what each spells its own way
// lives here and in the two migration lists.
type dialect int

const (
	sqliteDialect dialect = iota
	postgresDialect
)

func (d dialect) String() string {
	if d == postgresDialect {
		return "postgres"
	}
	return "sqlite"
}

// writerLock is the key of the PostgreSQL advisory lock every write transaction holds.
// Its value only has to differ from other applications' keys in the same database.
const writerLock = 0x746f776e77617463 // "townwatc"

// beginWrite starts a write transaction on db that no other writer, in this process or
// another, runs alongside. SQLite gets that from BEGIN IMMEDIATE (the writer's _txlock).
// PostgreSQL would run concurrent transactions side by side, but the catalog's writes
// read before they write (the audit chain's last hash, a segment's predecessor, the locks
// that forbid a deletion) and rely on nothing changing in between, so each takes one
// transaction-scoped advisory lock: writes from every townwatch sharing the database are
// serialised exactly as they are on one SQLite file.
func (d dialect) beginWrite(ctx context.Context, db *sql.DB) (*sql.Tx, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil || d != postgresDialect {
		return tx, err
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(writerLock)); err != nil {
		tx.Rollback()
		return nil, fmt.Errorf("take the catalog write lock: %w", err)
	}
	return tx, nil
}

// migrations returns the dialect's schema history.
func (d dialect) migrations() []string {
	if d == postgresDialect {
		return postgresMigrations
	}
	return migrations
}

// jsonArrayText is a table of the elements of the JSON array (of strings) in col, as
// text in a column named value.
func (d dialect) jsonArrayText(col string) string {
	if d == postgresDialect {
		return "json_array_elements_text(" + col + "::json) AS e (value)"
	}
	return "json_each(" + col + ")"
}
