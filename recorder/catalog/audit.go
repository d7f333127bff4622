package catalog

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// AuditEntry is one row of the access audit log: who did (or tried) what to which
// footage, when, and why.
type AuditEntry struct {
	ID      int64
	Time    time.Time
	Actor   string   // a user name, "cli:<os user>", or "system"
	Roles   []string // the actor's roles at the time; sorted, never nil on return
	Session string   // a short prefix of the session's token hash; "" = none
	Client  string   // the client address
	Action  string   // e.g. "live", "playback", "export", "lock", AuditPurgeAction
	Camera  string   // as asked for; need not exist
	// From and To are the footage range the action touched; zero = none.
	From, To  time.Time
	Reason    string
	Case      string // the case reference the user gave
	Recipient string // whom an export is for
	Outcome   string // AuditOK, AuditDenied or AuditError
	// Details is a JSON object with whatever else the action records; empty means {}.
	// It is stored byte for byte, since the row's hash covers its exact text.
	Details json.RawMessage
	// PrevHash and Hash chain the rows (lowercase hex); AppendAudit sets them.
	PrevHash, Hash string
}

// Audit outcomes.
const (
	AuditOK     = "ok"
	AuditDenied = "denied"
	AuditError  = "error"
)

// AuditPurgeAction is the action of the row PurgeAudit appends; VerifyAudit reads its
// details to know where the remaining chain starts.
const AuditPurgeAction = "audit.purge"

// AuditGenesis is the PrevHash of the first row of a chain nothing was purged from.
const AuditGenesis = "0000000000000000000000000000000000000000000000000000000000000000"

// Audit query limits: a screen of the auditor's list, and a ceiling that keeps one
// request from reading the whole log into memory.
const (
	DefaultAuditLimit = 500
	MaxAuditLimit     = 5000
)

// Variables, not constants, so that tests can cross their boundaries with a few rows.
var (
	// auditPage is how many rows VerifyAudit reads per query: enough that the per-query
	// cost vanishes, few enough that a log of millions of rows is checked in constant
	// memory.
	auditPage = 1000
	// maxAuditPurge bounds one PurgeAudit call. Deleting 10000 rows takes tens of
	// milliseconds; while it runs every other write waits, including the recorder's
	// segment updates and the audit rows that must commit before media leaves the box,
	// so a first purge of years of history is done in slices with the writer free in
	// between.
	maxAuditPurge = 10000
)

// auditFormat opens every canonical serialization, so that a future format can never be
// mistaken for this one.
const auditFormat = "townwatch-audit-v1"

const auditColumns = `id, time_ns, actor, roles, session, client, action, camera, from_ns, to_ns,
	reason, case_ref, recipient, outcome, details, prev_hash, hash`

// auditRow is an audit entry in its stored form: exactly the values the HMAC covers.
type auditRow struct {
	id                                            int64
	timeNS                                        int64
	actor, roles, session, client, action, camera string
	from, to                                      sql.NullInt64
	reason, caseRef, recipient, outcome, details  string
	prevHash, hash                                string
}

func scanAuditRow(sc scanner) (auditRow, error) {
	var r auditRow
	err := sc.Scan(&r.id, &r.timeNS, &r.actor, &r.roles, &r.session, &r.client, &r.action, &r.camera, &r.from, &r.to,
		&r.reason, &r.caseRef, &r.recipient, &r.outcome, &r.details, &r.prevHash, &r.hash)
	return r, err
}

// canonical returns the bytes the row's HMAC covers. `audit verify` and any outside
// checker depend on this exact form; changing it needs a new auditFormat.
//
// It is a sequence of netstrings, each <decimal byte length>:<bytes>, (the comma
// included), one per value in this order:
//
//	"townwatch-audit-v1", time_ns, actor, roles, session, client, action, camera,
//	from_ns, to_ns, reason, case_ref, recipient, outcome, details, prev_hash
//
// Integers are decimal (a leading '-' if negative, no leading zeros); a NULL from_ns or
// to_ns is the empty string, which no integer is. Text is the stored bytes: roles as
// the comma-joined string, details as its exact JSON text. The id and the hash are not
// covered: the hash cannot cover itself, and ids may skip (PostgreSQL sequences do), so
// the prev_hash links, not ids, fix the order. A row at time_ns 5 by actor "ab" begins
// "18:townwatch-audit-v1,1:5,2:ab,". In Python, with every value as bytes:
// b"".join(b"%d:%s," % (len(v), v) for v in values).
//
// Not JSON: JSON encoders disagree on escaping, and Go's replaces invalid UTF-8 with
// U+FFFD, so two different stored texts could share a hash. Length prefixes need no
// escaping and map different rows to different bytes.
func (r *auditRow) canonical() []byte {
	var b []byte
	add := func(v string) {
		b = strconv.AppendInt(b, int64(len(v)), 10)
		b = append(b, ':')
		b = append(b, v...)
		b = append(b, ',')
	}
	optional := func(n sql.NullInt64) string {
		if !n.Valid {
			return ""
		}
		return strconv.FormatInt(n.Int64, 10)
	}
	add(auditFormat)
	add(strconv.FormatInt(r.timeNS, 10))
	for _, v := range []string{r.actor, r.roles, r.session, r.client, r.action, r.camera} {
		add(v)
	}
	add(optional(r.from))
	add(optional(r.to))
	for _, v := range []string{r.reason, r.caseRef, r.recipient, r.outcome, r.details, r.prevHash} {
		add(v)
	}
	return b
}

// sum is the row's hash: lowercase hex HMAC-SHA256 of canonical under key.
func (r *auditRow) sum(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(r.canonical())
	return hex.EncodeToString(m.Sum(nil))
}

func (r *auditRow) entry() AuditEntry {
	return AuditEntry{
		ID: r.id, Time: fromNanos(r.timeNS), Actor: r.actor, Roles: splitRoles(r.roles),
		Session: r.session, Client: r.client, Action: r.action, Camera: r.camera,
		From: fromNullNanos(r.from), To: fromNullNanos(r.to),
		Reason: r.reason, Case: r.caseRef, Recipient: r.recipient, Outcome: r.outcome,
		Details: json.RawMessage(r.details), PrevHash: r.prevHash, Hash: r.hash,
	}
}

// newAuditRow checks e and returns it in stored form, without id and hashes.
func newAuditRow(key []byte, e AuditEntry) (auditRow, error) {
	if len(key) == 0 {
		return auditRow{}, errors.New("audit key is empty")
	}
	if e.Actor == "" {
		return auditRow{}, errors.New("actor is empty")
	}
	if e.Action == "" {
		return auditRow{}, errors.New("action is empty")
	}
	switch e.Outcome {
	case AuditOK, AuditDenied, AuditError:
	default:
		return auditRow{}, fmt.Errorf("outcome %q: must be %s, %s or %s", e.Outcome, AuditOK, AuditDenied, AuditError)
	}
	t, err := nanos("time", e.Time)
	if err != nil {
		return auditRow{}, err
	}
	from, err := nullNanos("from", e.From)
	if err != nil {
		return auditRow{}, err
	}
	to, err := nullNanos("to", e.To)
	if err != nil {
		return auditRow{}, err
	}
	if from.Valid && to.Valid && to.Int64 < from.Int64 {
		return auditRow{}, fmt.Errorf("to %s is before from %s", e.To.UTC().Format(time.RFC3339Nano), e.From.UTC().Format(time.RFC3339Nano))
	}
	roles, err := joinRoles(e.Roles)
	if err != nil {
		return auditRow{}, err
	}
	details := "{}"
	if len(e.Details) > 0 {
		if !json.Valid(e.Details) || !bytes.HasPrefix(bytes.TrimLeft(e.Details, " \t\r\n"), []byte("{")) {
			return auditRow{}, errors.New("details is not a JSON object")
		}
		details = string(e.Details)
	}
	return auditRow{
		timeNS: t, actor: e.Actor, roles: roles, session: e.Session, client: e.Client, action: e.Action,
		camera: e.Camera, from: from, to: to, reason: e.Reason, caseRef: e.Case, recipient: e.Recipient,
		outcome: e.Outcome, details: details,
	}, nil
}

// auditHead returns the hash of the row with the highest id, or AuditGenesis.
func auditHead(ctx context.Context, tx *sql.Tx) (string, error) {
	var h string
	err := tx.QueryRowContext(ctx, `SELECT hash FROM audit ORDER BY id DESC LIMIT 1`).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return AuditGenesis, nil
	}
	return h, err
}

// insertAuditRow links r to prev, hashes it and inserts it, setting r.id.
func insertAuditRow(ctx context.Context, tx *sql.Tx, key []byte, r *auditRow, prev string) error {
	r.prevHash = prev
	r.hash = r.sum(key)
	return tx.QueryRowContext(ctx, `INSERT INTO audit (time_ns, actor, roles, session, client, action, camera, from_ns, to_ns,
	reason, case_ref, recipient, outcome, details, prev_hash, hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id`,
		r.timeNS, r.actor, r.roles, r.session, r.client, r.action, r.camera, r.from, r.to,
		r.reason, r.caseRef, r.recipient, r.outcome, r.details, r.prevHash, r.hash).Scan(&r.id)
}

// AppendAudit appends e to the audit log and returns it as stored, with ID, PrevHash and
// Hash set: PrevHash is the hash of the row with the highest id (AuditGenesis for the
// first row) and Hash is the HMAC-SHA256 under key of the row's canonical form (see
// auditRow.canonical), so rows cannot be changed, removed or made up without the key.
//
// Reading the last hash and inserting happen in one transaction, which BEGIN IMMEDIATE
// starts with the write lock held: appends from serve and from a CLI process on the same
// catalog are serialised and can never both link to the same row. (A PostgreSQL catalog
// will need an explicit table lock for the same guarantee.)
//
// Key, Time, Actor, Action and a valid Outcome are required; Details must be a JSON
// object (empty means {}). Roles are stored sorted.
func (c *Catalog) AppendAudit(ctx context.Context, key []byte, e AuditEntry) (AuditEntry, error) {
	r, err := newAuditRow(key, e)
	if err == nil {
		err = c.write(ctx, func(tx *sql.Tx) error {
			prev, err := auditHead(ctx, tx)
			if err != nil {
				return err
			}
			return insertAuditRow(ctx, tx, key, &r, prev)
		})
	}
	if err != nil {
		return AuditEntry{}, fmt.Errorf("catalog: append audit: %w", err)
	}
	return r.entry(), nil
}

// AuditQuery selects audit rows. Zero fields do not filter.
type AuditQuery struct {
	From, To time.Time // rows with From <= Time < To
	Actor    string
	Camera   string
	Action   string
	AfterID  int64 // only rows with a higher id: the last ID of the previous page
	Limit    int   // at most this many, oldest first; 0 = DefaultAuditLimit
}

// AuditEntries returns the rows q selects, in id (append) order.
func (c *Catalog) AuditEntries(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	entries, err := c.auditEntries(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("catalog: audit entries: %w", err)
	}
	return entries, nil
}

func (c *Catalog) auditEntries(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	limit := q.Limit
	switch {
	case limit == 0:
		limit = DefaultAuditLimit
	case limit < 0 || limit > MaxAuditLimit:
		return nil, fmt.Errorf("limit %d is outside 1-%d", limit, MaxAuditLimit)
	}
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if !q.From.IsZero() {
		from, err := nanos("from", q.From)
		if err != nil {
			return nil, err
		}
		where = append(where, "time_ns >= "+arg(from))
	}
	if !q.To.IsZero() {
		to, err := nanos("to", q.To)
		if err != nil {
			return nil, err
		}
		where = append(where, "time_ns < "+arg(to))
	}
	if q.Actor != "" {
		where = append(where, "actor = "+arg(q.Actor))
	}
	if q.Camera != "" {
		where = append(where, "camera = "+arg(q.Camera))
	}
	if q.Action != "" {
		where = append(where, "action = "+arg(q.Action))
	}
	if q.AfterID != 0 {
		where = append(where, "id > "+arg(q.AfterID))
	}
	query := `SELECT ` + auditColumns + ` FROM audit`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY id LIMIT " + arg(limit)
	rows, err := c.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []AuditEntry{}
	for rows.Next() {
		r, err := scanAuditRow(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r.entry())
	}
	return out, rows.Err()
}

// AuditHead returns the id and hash of the last row and the number of rows: (0,
// AuditGenesis, 0) when the log is empty. Recording the head somewhere else (a log
// line, a printout, another machine) is what exposes the one change the chain cannot
// show by itself: deleting the newest rows.
func (c *Catalog) AuditHead(ctx context.Context) (id int64, hash string, n int64, err error) {
	// One statement, so the count and the head come from the same snapshot.
	err = c.r.QueryRowContext(ctx, `SELECT id, hash, (SELECT COUNT(*) FROM audit) FROM audit ORDER BY id DESC LIMIT 1`).Scan(&id, &hash, &n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, AuditGenesis, 0, nil
	}
	if err != nil {
		return 0, "", 0, fmt.Errorf("catalog: audit head: %w", err)
	}
	return id, hash, n, nil
}

// AuditProblem is the first row VerifyAudit found wrong, and why.
type AuditProblem struct {
	ID     int64
	Reason string
}

// AuditVerification is VerifyAudit's report: how many rows there are, the last one, and
// the first bad one (nil when the chain is intact).
type AuditVerification struct {
	Rows     int64
	HeadID   int64
	Head     string
	FirstBad *AuditProblem
}

// auditPurge is the details object of a purge row.
type auditPurge struct {
	PurgedThrough  int64  `json:"purged_through"`   // the last purged id
	LastPurgedHash string `json:"last_purged_hash"` // its hash: the first remaining row's prev_hash
	Rows           int64  `json:"rows"`
	FirstPurged    int64  `json:"first_purged"`
}

// VerifyAudit checks the whole chain in id order: each row's prev_hash must equal the
// previous row's hash, and its hash the HMAC of its content under key. The first row
// links to AuditGenesis or, when rows were purged, to the last_purged_hash of the purge
// row with the highest purged_through below the first id (ids may skip, so "the id just
// before" would be too strict); that purge row is part of the chain and checked like any
// other, so forging one is caught.
//
// This detects any changed byte in any row, a deleted row anywhere but at the end, rows
// deleted at the start without a purge, and a chain recomputed with another key. It
// cannot detect deleting the newest rows (or all of them): compare the report's head
// with one recorded elsewhere (AuditHead). Only the first bad row is reported, since
// every later row's standing depends on it; Rows and Head still cover the whole log.
//
// It reads one snapshot, a page at a time, so its memory does not grow with the log and
// appends or purges meanwhile do not look like damage.
func (c *Catalog) VerifyAudit(ctx context.Context, key []byte) (AuditVerification, error) {
	v, err := c.verifyAudit(ctx, key)
	if err != nil {
		return AuditVerification{}, fmt.Errorf("catalog: verify audit: %w", err)
	}
	return v, nil
}

func (c *Catalog) verifyAudit(ctx context.Context, key []byte) (AuditVerification, error) {
	v := AuditVerification{Head: AuditGenesis}
	if len(key) == 0 {
		return v, errors.New("audit key is empty")
	}
	tx, err := c.r.BeginTx(ctx, nil)
	if err != nil {
		return v, err
	}
	defer tx.Rollback()
	var first int64
	switch err := tx.QueryRowContext(ctx, `SELECT id FROM audit ORDER BY id LIMIT 1`).Scan(&first); {
	case errors.Is(err, sql.ErrNoRows):
		return v, nil
	case err != nil:
		return v, err
	}
	prev, purgeID, err := auditStart(ctx, tx, first)
	if err != nil {
		return v, err
	}
	var prevID int64
	for after := first - 1; ; {
		page, err := auditPageAfter(ctx, tx, after)
		if err != nil {
			return v, err
		}
		for _, r := range page {
			if v.FirstBad == nil {
				v.FirstBad = checkAuditRow(key, &r, prev, prevID, purgeID)
			}
			v.Rows++
			v.HeadID, v.Head = r.id, r.hash
			prev, prevID = r.hash, r.id
		}
		if len(page) < auditPage {
			return v, nil
		}
		after = page[len(page)-1].id
	}
}

// auditStart returns what the prev_hash of the row with id first must be, and the id of
// the purge row that says so (0: none, the chain starts at genesis).
func auditStart(ctx context.Context, tx *sql.Tx, first int64) (string, int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, details FROM audit WHERE action = $1 ORDER BY id`, AuditPurgeAction)
	if err != nil {
		return "", 0, err
	}
	defer rows.Close()
	start, purgeID, through := AuditGenesis, int64(0), int64(0)
	for rows.Next() {
		var id int64
		var details string
		if err := rows.Scan(&id, &details); err != nil {
			return "", 0, err
		}
		var p auditPurge
		// A purge row whose details do not parse is not trusted to start the chain; its
		// own hash check reports it if it was tampered with.
		if json.Unmarshal([]byte(details), &p) != nil || p.PurgedThrough >= first || p.PurgedThrough <= through {
			continue
		}
		start, purgeID, through = p.LastPurgedHash, id, p.PurgedThrough
	}
	return start, purgeID, rows.Err()
}

func auditPageAfter(ctx context.Context, tx *sql.Tx, after int64) ([]auditRow, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit WHERE id > $1 ORDER BY id LIMIT $2`, after, auditPage)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	page := make([]auditRow, 0, auditPage)
	for rows.Next() {
		r, err := scanAuditRow(rows)
		if err != nil {
			return nil, err
		}
		page = append(page, r)
	}
	return page, rows.Err()
}

// checkAuditRow checks r against the previous row's hash (prevID 0: r is the first row,
// and prev comes from purge row purgeID, or is genesis when purgeID is 0).
func checkAuditRow(key []byte, r *auditRow, prev string, prevID, purgeID int64) *AuditProblem {
	if r.prevHash != prev {
		reason := fmt.Sprintf("previous hash does not match row %d's hash (a row before it was deleted or changed)", prevID)
		switch {
		case prevID == 0 && purgeID == 0:
			reason = "previous hash is not the chain's start and no purge row accounts for the rows before it (rows before it were deleted, or it was changed)"
		case prevID == 0:
			reason = fmt.Sprintf("previous hash does not match the last purged hash recorded by purge row %d (rows after the purge were deleted, or a row was changed)", purgeID)
		}
		return &AuditProblem{ID: r.id, Reason: reason}
	}
	if !hmac.Equal([]byte(r.hash), []byte(r.sum(key))) {
		return &AuditProblem{ID: r.id, Reason: "hash does not match its content (changed, or the chain was recomputed without the key)"}
	}
	return nil
}

// PurgeAudit deletes the oldest audit rows: the leading run, in id order, of rows for
// which cutoff(row time) is true, stopping at the first row for which it is false (a
// row with an earlier time after it stays, so the remaining log is always one unbroken
// chain). In the same transaction it appends a purge row (actor as given, action
// AuditPurgeAction, outcome ok, time at) whose details
// {"purged_through", "last_purged_hash", "rows", "first_purged"} let VerifyAudit check
// the chain that remains. Purging nothing appends nothing and returns 0.
//
// One call deletes at most 10000 rows, so that it does not hold the single writer (and
// with it recording and other audit rows) for long; the caller calls again until it
// returns 0.
func (c *Catalog) PurgeAudit(ctx context.Context, key []byte, cutoff func(rowTime time.Time) bool, at time.Time, actor string) (purged int64, err error) {
	n, err := c.purgeAudit(ctx, key, cutoff, at, actor)
	if err != nil {
		return 0, fmt.Errorf("catalog: purge audit: %w", err)
	}
	return n, nil
}

func (c *Catalog) purgeAudit(ctx context.Context, key []byte, cutoff func(time.Time) bool, at time.Time, actor string) (int64, error) {
	if cutoff == nil {
		return 0, errors.New("cutoff is nil")
	}
	entry := AuditEntry{Time: at, Actor: actor, Action: AuditPurgeAction, Outcome: AuditOK}
	if _, err := newAuditRow(key, entry); err != nil { // refuse before deleting anything
		return 0, err
	}
	var n int64
	err := c.write(ctx, func(tx *sql.Tx) error {
		var p auditPurge
		rows, err := tx.QueryContext(ctx, `SELECT id, time_ns, hash FROM audit ORDER BY id LIMIT $1`, maxAuditPurge)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id, t int64
			var hash string
			if err := rows.Scan(&id, &t, &hash); err != nil {
				rows.Close()
				return err
			}
			if !cutoff(fromNanos(t)) {
				break
			}
			if n == 0 {
				p.FirstPurged = id
			}
			p.PurgedThrough, p.LastPurgedHash = id, hash
			n++
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil || n == 0 {
			return err
		}
		p.Rows = n
		// The head is read before the delete: if every row goes, the purge row is the new
		// first row and must link to the last purged hash, which is then the head.
		prev, err := auditHead(ctx, tx)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM audit WHERE id >= $1 AND id <= $2`, p.FirstPurged, p.PurgedThrough)
		if err != nil {
			return err
		}
		// Every id in the range was just read in the same transaction; anything else
		// means the chain that remains would not be the one the purge row describes.
		deleted, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if deleted != n {
			return fmt.Errorf("deleted %d rows of ids %d-%d, expected %d", deleted, p.FirstPurged, p.PurgedThrough, n)
		}
		details, err := json.Marshal(p)
		if err != nil {
			return err
		}
		entry.Details = details
		r, err := newAuditRow(key, entry)
		if err != nil {
			return err
		}
		return insertAuditRow(ctx, tx, key, &r, prev)
	})
	return n, err
}
