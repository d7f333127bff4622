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
	// 3: access control. Users with their roles and camera grants, login sessions, who
	// made each evidence lock, and the access audit log.
	//
	// Roles are one comma-joined string (role names are plain words) so the audit log can
	// copy them verbatim; cameras are a JSON array like events.zones, since a camera id
	// may hold any character. A session row holds the SHA-256 of the cookie's token, never
	// the token: a copy of the database must not let anyone log in.
	//
	// audit.camera has no foreign key: a denied request may name a camera that does not
	// exist, and that attempt must be recorded as asked. details stays TEXT (not jsonb in
	// PostgreSQL) because the chain's HMAC covers its exact bytes. The filter indexes end
	// in id because results are read in id order: SQLite adds the rowid on its own,
	// PostgreSQL needs it spelled out.
	`
CREATE TABLE users (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	name          TEXT    NOT NULL UNIQUE,
	password_hash TEXT    NOT NULL, -- encoded Argon2id, made by the caller
	roles         TEXT    NOT NULL, -- sorted, comma-joined
	all_cameras   INTEGER NOT NULL,
	cameras       TEXT    NOT NULL DEFAULT '[]', -- sorted JSON array of camera ids
	disabled      INTEGER NOT NULL DEFAULT 0,
	created_ns    INTEGER NOT NULL,
	changed_ns    INTEGER NOT NULL,
	CHECK (name <> '')
);

CREATE TABLE sessions (
	token_hash   TEXT    PRIMARY KEY, -- hex SHA-256 of the cookie's token
	user_id      INTEGER NOT NULL REFERENCES users (id),
	created_ns   INTEGER NOT NULL,
	last_seen_ns INTEGER NOT NULL,
	client       TEXT    NOT NULL -- client address at login
);
CREATE INDEX sessions_user ON sessions (user_id);

ALTER TABLE locks ADD COLUMN actor TEXT NOT NULL DEFAULT '';

CREATE TABLE audit (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	time_ns   INTEGER NOT NULL,
	actor     TEXT    NOT NULL,
	roles     TEXT    NOT NULL,
	session   TEXT    NOT NULL, -- prefix of sessions.token_hash; '' = none
	client    TEXT    NOT NULL,
	action    TEXT    NOT NULL,
	camera    TEXT    NOT NULL,
	from_ns   INTEGER, -- footage range; NULL = none
	to_ns     INTEGER,
	reason    TEXT    NOT NULL,
	case_ref  TEXT    NOT NULL,
	recipient TEXT    NOT NULL,
	outcome   TEXT    NOT NULL CHECK (outcome IN ('ok', 'denied', 'error')),
	details   TEXT    NOT NULL DEFAULT '{}', -- a JSON object
	prev_hash TEXT    NOT NULL,
	hash      TEXT    NOT NULL
);
CREATE INDEX audit_time ON audit (time_ns);
CREATE INDEX audit_actor ON audit (actor, id);
CREATE INDEX audit_camera ON audit (camera, id);
CREATE INDEX audit_action ON audit (action, id);
`,
	// 4: a retention hold that only an operator lifts. A catalog rebuilt from a damaged
	// file that could not read every evidence lock holds all deletion until someone
	// confirms, however ordinary the plan looks: a lock it lost may cover any footage.
	`
ALTER TABLE retention_hold ADD COLUMN forced INTEGER NOT NULL DEFAULT 0;
`,
	// 5: playback and tamper evidence. fragments is a closed segment's fragment index
	// (encodeFragments; NULL: none kept) and mime_codecs its RFC 6381 codecs string, so
	// playback finds byte ranges and codecs without reading files. prev_sha256 links each segment to the camera's previous one, making the
	// catalog a hash chain per camera and stream ('': the first; NULL: closed before
	// chaining existed); a deletion keeps the link, so the chain stays checkable across
	// what retention removed. deletions_camera_start finds a deleted predecessor's digest,
	// deletions_segment the deletion a playback request for a deleted segment is told of.
	// exports are the officers' evidence export jobs, kept after they finish so that what
	// was handed out stays on record with its digest. motion_grid is the motion search
	// grid, one row per camera-minute with motion. cases and bookmarks are what officers
	// note while searching: a bookmarked range, optionally filed under a case (č.j.).
	`
ALTER TABLE segments ADD COLUMN fragments BLOB;
ALTER TABLE segments ADD COLUMN mime_codecs TEXT NOT NULL DEFAULT '';
ALTER TABLE segments ADD COLUMN prev_sha256 TEXT;
ALTER TABLE deletions ADD COLUMN prev_sha256 TEXT;
CREATE INDEX deletions_camera_start ON deletions (camera, stream, start_ns);
CREATE INDEX deletions_segment ON deletions (segment_id);

CREATE TABLE exports (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	created_ns  INTEGER NOT NULL,
	actor       TEXT    NOT NULL,
	cameras     TEXT    NOT NULL, -- JSON array of camera ids
	from_ns     INTEGER NOT NULL,
	to_ns       INTEGER NOT NULL,
	reason      TEXT    NOT NULL,
	case_ref    TEXT    NOT NULL,
	recipient   TEXT    NOT NULL,
	audit_id    INTEGER NOT NULL, -- the export.request row
	state       TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled', 'expired')),
	error       TEXT    NOT NULL DEFAULT '',
	file        TEXT    NOT NULL DEFAULT '', -- under the storage path; '' until done
	bytes       INTEGER NOT NULL DEFAULT 0,
	sha256      TEXT    NOT NULL DEFAULT '',
	finished_ns INTEGER, -- NULL: not finished
	CHECK (to_ns > from_ns),
	CHECK (reason <> '' AND case_ref <> '' AND recipient <> '')
);
CREATE INDEX exports_actor ON exports (actor, id);

CREATE TABLE motion_grid (
	camera    TEXT    NOT NULL,
	minute_ns INTEGER NOT NULL,
	seconds   BLOB    NOT NULL, -- encodeGridMinute
	PRIMARY KEY (camera, minute_ns)
) WITHOUT ROWID;

CREATE TABLE cases (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	ref        TEXT    NOT NULL UNIQUE, -- the case reference (č.j.)
	title      TEXT    NOT NULL,
	actor      TEXT    NOT NULL,
	created_ns INTEGER NOT NULL,
	CHECK (ref <> '')
);

CREATE TABLE bookmarks (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	camera     TEXT    NOT NULL,
	from_ns    INTEGER NOT NULL,
	to_ns      INTEGER NOT NULL,
	title      TEXT    NOT NULL,
	note       TEXT    NOT NULL,
	case_id    INTEGER REFERENCES cases (id), -- NULL: in no case
	actor      TEXT    NOT NULL,
	created_ns INTEGER NOT NULL,
	CHECK (to_ns > from_ns),
	CHECK (title <> '')
);
CREATE INDEX bookmarks_camera ON bookmarks (camera, from_ns);
CREATE INDEX bookmarks_case ON bookmarks (case_id);
`,
	// 6: the archive tier (recorder/archive). archived_ns is when a segment's bytes were
	// verified in the object store (NULL: on the local disk only); the partial index is
	// the archive job's work list. A deletion records whether the segment was archived,
	// and object_pending keeps an archived segment's object listed until it is removed
	// from the bucket: the row goes first, so a crash in between leaves a pending
	// deletion the job finishes, never an object nobody knows about.
	`
ALTER TABLE segments ADD COLUMN archived_ns INTEGER;
CREATE INDEX segments_archivable ON segments (end_ns) WHERE archived_ns IS NULL AND open = 0;
ALTER TABLE deletions ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deletions ADD COLUMN object_pending INTEGER NOT NULL DEFAULT 0;
CREATE INDEX deletions_object_pending ON deletions (id) WHERE object_pending = 1;
`,
	// 7: Several recorder nodes sharing a PostgreSQL catalog (recorder/cluster, docs/nodes.md).
	// A SQLite catalog has one node and never uses the two tables; they exist so that a
	// version means the same tables on both backends. segments.node is the node whose
	// disk holds the file ('' for a single-node installation).
	`
CREATE TABLE nodes (
	name      TEXT PRIMARY KEY,
	advertise TEXT NOT NULL,
	heartbeat TEXT NOT NULL
);
CREATE TABLE camera_leases (
	camera     TEXT    PRIMARY KEY,
	node       TEXT    NOT NULL,
	epoch      INTEGER NOT NULL,
	expires_at TEXT    NOT NULL
);
ALTER TABLE segments ADD COLUMN node TEXT NOT NULL DEFAULT '';
`,
	// 8: the mass-deletion guard's hold is per node (retention_holds.node, '' on a single
	// node): a node's retention weighs only its own disk, so a hold raised by one node's
	// sweep must not stop retention on the others. A hold from before, which stopped every
	// node, is kept for the single node and for every node known so far, so nothing it held
	// is deleted before someone confirms it where it applies.
	`
CREATE TABLE retention_holds (
	node          TEXT    NOT NULL PRIMARY KEY,
	since_ns      INTEGER NOT NULL,
	reason        TEXT    NOT NULL,
	planned_bytes INTEGER NOT NULL,
	total_bytes   INTEGER NOT NULL,
	confirmed_ns  INTEGER, -- NULL: not confirmed yet
	forced        INTEGER NOT NULL DEFAULT 0
);
` + copyLegacyHold + `
DROP TABLE retention_hold;
`,
}

// copyLegacyHold is migration 8's copy of the one cluster-wide hold, the same SQL on both
// backends: to the single node (node "") when no recorder node ever joined, else to every node
// that did (a row for node "" would be one nobody runs retention as, and confirming it would clear
// nothing). A confirmation is not copied to the nodes: it approved one plan, weighed
// against the disk of whichever node raised the hold, not each node's own, which its
// operator confirms for that node (an unforced hold that is no longer needed lifts itself
// at the node's next sweep).
const copyLegacyHold = `
INSERT INTO retention_holds (node, since_ns, reason, planned_bytes, total_bytes, confirmed_ns, forced)
SELECT '', since_ns, reason, planned_bytes, total_bytes, confirmed_ns, forced FROM retention_hold
WHERE NOT EXISTS (SELECT 1 FROM nodes WHERE name <> '');
INSERT INTO retention_holds (node, since_ns, reason, planned_bytes, total_bytes, confirmed_ns, forced)
SELECT n.name, h.since_ns, h.reason, h.planned_bytes, h.total_bytes, NULL, h.forced
FROM retention_hold h CROSS JOIN nodes n WHERE n.name <> '';
`

// migrate applies the migrations the database has not seen, each in its own transaction
// together with its schema_migrations row, so a crash leaves the schema at a whole
// version. It refuses a database whose version is newer than this build: running old
// code on a newer schema could silently misread or drop what the newer code relies on.
// Both dialects count the same versions: version N means the same tables and columns in
// either, which is what lets townwatch catalog migrate copy one into the other.
func migrate(ctx context.Context, db *sql.DB, d dialect) error {
	// BIGINT is what PostgreSQL needs for nanoseconds; SQLite reads it as INTEGER.
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version       INTEGER PRIMARY KEY,
	applied_at_ns BIGINT NOT NULL
)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	steps := d.migrations()
	var current int
	if err := db.QueryRowContext(ctx, maxVersion).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current > len(steps) {
		return fmt.Errorf("schema version %d is newer than this townwatch knows (%d): refusing to use it; run the newer townwatch or restore a backup made by this version", current, len(steps))
	}
	for version := current + 1; version <= len(steps); version++ {
		if err := applyMigration(ctx, db, d, version); err != nil {
			return fmt.Errorf("schema migration %d: %w", version, err)
		}
	}
	return nil
}

const maxVersion = `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`

// applyMigration applies the dialect's migration version and records it. The version is
// read again inside the write transaction (BEGIN IMMEDIATE, or the advisory lock), so two
// processes opening the same catalog at once cannot both apply it.
func applyMigration(ctx context.Context, db *sql.DB, d dialect, version int) error {
	tx, err := d.beginWrite(ctx, db)
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
	if _, err := tx.ExecContext(ctx, d.migrations()[version-1]); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at_ns) VALUES ($1, $2)`, version, time.Now().UnixNano()); err != nil {
		return err
	}
	return tx.Commit()
}
