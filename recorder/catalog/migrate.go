package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations is the schema history: migrations[i] brings the schema to version i+1.
// Append only; never edit an entry that has shipped, since catalogs in the field have
// already applied it.
//
// Conventions: times are *_ns INTEGER Unix nanoseconds (UTC); every table that is about
// a camera references cameras(id), so events, exports and the audit log can join on it.
// Ids are AUTOINCREMENT so that an id is never reused after its row is deleted: a lock,
// an export or an audit entry that names segment 42 must never come to mean a different
// segment 42.
var migrations = []string{
	// 1: segments, evidence locks, deletion log, retention's mass-deletion hold.
	`
CREATE TABLE cameras (
	id TEXT PRIMARY KEY
);

CREATE TABLE segments (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	camera     TEXT    NOT NULL REFERENCES cameras (id),
	stream     TEXT    NOT NULL,
	start_ns   INTEGER NOT NULL,
	end_ns     INTEGER NOT NULL,
	path       TEXT    NOT NULL UNIQUE,
	bytes      INTEGER NOT NULL,
	sha256     TEXT    NOT NULL,
	codec      TEXT    NOT NULL,
	width      INTEGER NOT NULL,
	height     INTEGER NOT NULL,
	audio      INTEGER NOT NULL,
	gap_before INTEGER NOT NULL,
	open       INTEGER NOT NULL,
	frames     INTEGER NOT NULL,
	CHECK (end_ns >= start_ns),
	CHECK (bytes >= 0 AND frames >= 0)
);
CREATE INDEX segments_camera_start ON segments (camera, start_ns);
-- Partial: only open segments are ever looked up by state (start-up recovery), and a
-- full index on a column that is almost always 0 would tempt the planner into using it
-- for "open = 0" instead of walking start_ns in order.
CREATE INDEX segments_open ON segments (open) WHERE open = 1;
CREATE INDEX segments_start ON segments (start_ns);
-- Longest segment per camera, read in O(log n): it bounds how far before a query's
-- start a segment overlapping it can begin, so range queries scan only the index
-- entries near the range instead of every older segment of the camera.
CREATE INDEX segments_camera_duration ON segments (camera, (end_ns - start_ns));

CREATE TABLE locks (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	camera     TEXT    NOT NULL REFERENCES cameras (id),
	start_ns   INTEGER NOT NULL,
	end_ns     INTEGER NOT NULL,
	reason     TEXT    NOT NULL,
	created_ns INTEGER NOT NULL,
	expires_ns INTEGER, -- NULL: until removed
	CHECK (end_ns > start_ns),
	CHECK (reason <> '')
);
CREATE INDEX locks_camera_start ON locks (camera, start_ns);

CREATE TABLE deletions (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	segment_id INTEGER NOT NULL, -- the deleted segments.id; never reused
	camera     TEXT    NOT NULL REFERENCES cameras (id),
	stream     TEXT    NOT NULL,
	start_ns   INTEGER NOT NULL,
	end_ns     INTEGER NOT NULL,
	path       TEXT    NOT NULL,
	bytes      INTEGER NOT NULL,
	sha256     TEXT    NOT NULL,
	reason     TEXT    NOT NULL,
	deleted_ns INTEGER NOT NULL,
	CHECK (reason <> '')
);
CREATE INDEX deletions_deleted ON deletions (deleted_ns);
CREATE INDEX deletions_path ON deletions (path);

CREATE TABLE retention_hold (
	id            INTEGER PRIMARY KEY CHECK (id = 1),
	since_ns      INTEGER NOT NULL,
	reason        TEXT    NOT NULL,
	planned_bytes INTEGER NOT NULL,
	total_bytes   INTEGER NOT NULL,
	confirmed_ns  INTEGER -- NULL: not confirmed yet
);
`,
	// 2: motion events. The id is the detector's UUIDv7, so it is known before the row
	// exists and sorts by time. Zones are a JSON array of names (names may hold any
	// character, so no separator would do); the zone filter reads them with json_each.
	`
CREATE TABLE events (
	id       TEXT    PRIMARY KEY,
	camera   TEXT    NOT NULL REFERENCES cameras (id),
	start_ns INTEGER NOT NULL,
	end_ns   INTEGER, -- NULL: still going on
	score    REAL    NOT NULL,
	box_x    REAL    NOT NULL,
	box_y    REAL    NOT NULL,
	box_w    REAL    NOT NULL,
	box_h    REAL    NOT NULL,
	zones    TEXT    NOT NULL DEFAULT '[]',
	snapshot TEXT    NOT NULL DEFAULT '', -- path under the storage directory; '' = none
	CHECK (end_ns IS NULL OR end_ns >= start_ns),
	CHECK (score >= 0 AND score <= 1)
);
CREATE INDEX events_camera_start ON events (camera, start_ns);
CREATE INDEX events_start ON events (start_ns);
`,
}

// migrate applies the migrations the database has not seen, each in its own transaction
// together with its schema_migrations row, so a crash leaves the schema at a whole
// version. It refuses a database whose version is newer than this build: running old
// code on a newer schema could silently misread or drop what the newer code relies on.
func migrate(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version       INTEGER PRIMARY KEY,
	applied_at_ns INTEGER NOT NULL
)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var current int
	if err := db.QueryRowContext(ctx, maxVersion).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this townwatch knows (%d): refusing to use it; run the newer townwatch or restore a backup made by this version", current, len(migrations))
	}
	for version := current + 1; version <= len(migrations); version++ {
		if err := applyMigration(ctx, db, version); err != nil {
			return fmt.Errorf("schema migration %d: %w", version, err)
		}
	}
	return nil
}

const maxVersion = `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`

// applyMigration applies migrations[version-1] and records it. The version is read again
// inside the (immediate) transaction, so two processes opening the same catalog at once
// cannot both apply it.
func applyMigration(ctx context.Context, db *sql.DB, version int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var current int
	if err := tx.QueryRowContext(ctx, maxVersion).Scan(&current); err != nil {
		return err
	}
	if current >= version {
		return nil
	}
	if _, err := tx.ExecContext(ctx, migrations[version-1]); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at_ns) VALUES ($1, $2)`, version, time.Now().UnixNano()); err != nil {
		return err
	}
	return tx.Commit()
}
