// Package catalog owns the index of recorded footage: a SQLite database (storage.path/
// catalog.db) holding the segments on disk, evidence locks, the log of every deletion and
// retention's mass-deletion hold. It is the only answer to "what exists on disk": every
// segment row names a file, relative to the storage path, whose size and SHA-256 it
// records.
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
// SQL uses $N placeholders and the ON CONFLICT / RETURNING forms PostgreSQL shares, so a
// PostgreSQL catalog can follow with new migrations and few query changes.
package catalog
