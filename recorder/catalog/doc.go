// Package catalog owns the index of recorded footage: a SQLite database (storage.path/
// catalog.db) or a PostgreSQL database (catalog.url; see Portability) holding the segments on disk, evidence locks, the log of every deletion and
// retention's mass-deletion hold, motion events, and the access-control data below. It is
// the only answer to "what exists on disk": every segment row names a file, relative to
// the storage path, whose size and SHA-256 it records.
//
// # Users and sessions
//
// Users are the viewer's accounts: name, an Argon2id password hash made by the caller,
// roles and camera grants, and whether the account is disabled. The catalog stores them
// without judging them; package viewer/access decides what they allow. A password
// change or disabling deletes the user's sessions in the same transaction.
//
// Sessions are logins. A row holds the SHA-256 of the browser's cookie token, never the
// token, so a copy of the database lets no one log in; SessionUser reads a session with
// its user in one query for every request.
//
// # Audit log
//
// The audit log records who watched, played back, exported or locked which footage, and
// every denied attempt. Rows are append-only and chained: each holds the previous row's
// hash and an HMAC-SHA256, under a key kept outside the database, of its own content and
// that link, so VerifyAudit finds a changed, removed or made-up row. Old rows leave only
// through PurgeAudit, oldest first, which records what it removed in a row of its own.
//
// # Truth
//
// Rows are only as true as the recorder keeps them. The catalog never looks at the
// files; the recorder indexes a segment once its file exists (CreateSegment), reports its
// progress (UpdateOpenSegment), closes it with its final size and digest (CloseSegment),
// deletes the row before the file (DeleteSegment), and at start-up verifies every row's
// size and SHA-256 against the disk, recovers OpenSegments and adopts or removes files
// the catalog does not know (SegmentByPath, DeletionByPath).
//
// # Damage
//
// Check runs PRAGMA quick_check on a closed catalog, QuickCheck on an open one; Damaged
// reports the first corruption a write or a frequent read met. MoveAside keeps a damaged
// file (with its -wal and -shm) for forensics, and Salvage copies what can be read of
// it into a new catalog, row by row, skipping damaged pages (see docs/catalog-faults.md).
//
// # Durability and concurrency
//
// The database runs in WAL mode with synchronous=FULL: when a write returns, it survives
// a crash or power cut. Every write is one transaction on the single writer connection,
// so writes from all cameras, retention and the API are serialised: a write blocks while
// another is in progress (a commit includes an fsync: about a millisecond on an SSD, more
// on a spinning disk) and returns early only if its context ends. Reads use a
// separate pool of read-only connections and see the last committed state; they never
// wait for writes. Nothing is dropped under load; callers wait.
//
// # Time
//
// Times are stored as int64 Unix nanoseconds in UTC (columns named *_ns), nanosecond
// exact, and every time.Time the package returns is in UTC. Ranges are half-open,
// [start, end). Zero times mean "not set" where a field is optional (Lock.Expires,
// RetentionHold.Confirmed) and are rejected where it is not.
//
// # Portability
//
// Open takes a SQLite file path or a postgres:// URL. Queries are written once, with $N
// placeholders and the ON CONFLICT / RETURNING forms both accept; what each spells its own
// way is in dialect.go, and the schema is two versioned migration lists (migrations,
// postgresMigrations) whose versions mean the same tables. On PostgreSQL every write
// transaction takes an advisory lock, so writes stay serialised across processes as
// they are on one SQLite file; ids are identity columns, never reused. CopyTo moves a
// SQLite catalog into PostgreSQL. The damage checks and Salvage are SQLite's alone. The
// tests run the whole suite on both (see docs/catalog-backends.md).
package catalog
