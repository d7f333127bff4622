package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Session is a login: the browser holds a random token in a cookie, the catalog holds
// only the token's SHA-256, so reading the database (or a backup of it) does not let
// anyone act as a logged-in user.
type Session struct {
	TokenHash string // lowercase hex SHA-256 of the cookie's token
	UserID    int64
	Created   time.Time
	LastSeen  time.Time
	Client    string // the client address at login
}

const sessionColumns = `s.token_hash, s.user_id, s.created_ns, s.last_seen_ns, s.client`

// CreateSession stores a new session. TokenHash (64 lowercase hex digits: storing the
// token itself by mistake is refused), UserID and Created are required; a zero LastSeen
// means Created. An unknown user wraps ErrNotFound; a disabled user is refused, so a
// login that checked the user just before SetDisabled cannot leave a session behind it.
// (A login that verified the old password just before SetPassword can: the caller
// should compare the user's Changed time after creating the session if that matters.)
// A token hash already stored wraps ErrExists.
func (c *Catalog) CreateSession(ctx context.Context, s Session) error {
	if err := c.createSession(ctx, s); err != nil {
		return fmt.Errorf("catalog: create session for user %d: %w", s.UserID, err)
	}
	return nil
}

func (c *Catalog) createSession(ctx context.Context, s Session) error {
	if !sha256Hex.MatchString(s.TokenHash) {
		return errors.New("token hash must be 64 lowercase hex digits")
	}
	created, err := nanos("created", s.Created)
	if err != nil {
		return err
	}
	seen := created
	if !s.LastSeen.IsZero() {
		if seen, err = nanos("last seen", s.LastSeen); err != nil {
			return err
		}
	}
	return c.write(ctx, func(tx *sql.Tx) error {
		var disabled bool
		switch err := tx.QueryRowContext(ctx, `SELECT disabled FROM users WHERE id = $1`, s.UserID).Scan(&disabled); {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("user %d: %w", s.UserID, ErrNotFound)
		case err != nil:
			return err
		case disabled:
			return fmt.Errorf("user %d is disabled", s.UserID)
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions WHERE token_hash = $1`, s.TokenHash).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return ErrExists
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO sessions (token_hash, user_id, created_ns, last_seen_ns, client)
VALUES ($1, $2, $3, $4, $5)`, s.TokenHash, s.UserID, created, seen, s.Client)
		return err
	})
}

// SessionUser returns the session with the given token hash and its user, read together
// in one query so the pair is consistent (no SetDisabled between two reads). The user is
// returned even if disabled; whether that still grants anything is the caller's
// decision. An unknown hash wraps ErrNotFound.
func (c *Catalog) SessionUser(ctx context.Context, tokenHash string) (Session, User, error) {
	s, u, err := c.sessionUser(ctx, tokenHash)
	if err != nil {
		return Session{}, User{}, c.note(fmt.Errorf("catalog: session user: %w", err))
	}
	return s, u, nil
}

// sessionUserQuery reads a login session and its account (prepared at Open).
var sessionUserQuery = `SELECT ` + sessionColumns + `, ` + userColumnsOf("u") + `
FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1`

func (c *Catalog) sessionUser(ctx context.Context, tokenHash string) (Session, User, error) {
	var s Session
	var created, seen int64
	var f userFields
	c.sessionUserOnce.Do(func() { c.sessionUserStmt, _ = c.r.PrepareContext(context.Background(), sessionUserQuery) })
	row := c.r.QueryRowContext
	if c.sessionUserStmt != nil {
		row = func(ctx context.Context, _ string, args ...any) *sql.Row {
			return c.sessionUserStmt.QueryRowContext(ctx, args...)
		}
	}
	err := row(ctx, sessionUserQuery, tokenHash).Scan(
		append([]any{&s.TokenHash, &s.UserID, &created, &seen, &s.Client}, f.dest()...)...)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, User{}, ErrNotFound
	}
	if err != nil {
		return Session{}, User{}, err
	}
	s.Created, s.LastSeen = fromNanos(created), fromNanos(seen)
	u, err := f.user()
	return s, u, err
}

// TouchSession records that the session was used at `at`. It only moves last_seen
// forward: requests of one browser race each other, and a late-arriving older time must
// not make an active session look idle. Each call is a write (with an fsync), so the
// caller should touch at most every minute or so per session, not on every request. A
// session that is gone (logged out, expired, password changed) wraps ErrNotFound.
func (c *Catalog) TouchSession(ctx context.Context, tokenHash string, at time.Time) error {
	seen, err := nanos("at", at)
	if err == nil {
		err = c.write(ctx, func(tx *sql.Tx) error {
			// CASE rather than SQLite's MAX(a, b), which PostgreSQL spells GREATEST; the row
			// counts as affected either way, so "gone" stays distinguishable from "older".
			return execFound(ctx, tx, `UPDATE sessions SET last_seen_ns = CASE WHEN last_seen_ns < $2 THEN $2 ELSE last_seen_ns END
WHERE token_hash = $1`, tokenHash, seen)
		})
	}
	if err != nil {
		return fmt.Errorf("catalog: touch session: %w", err)
	}
	return nil
}

// DeleteSession ends one session (logout); one already gone wraps ErrNotFound.
func (c *Catalog) DeleteSession(ctx context.Context, tokenHash string) error {
	err := c.write(ctx, func(tx *sql.Tx) error {
		return execFound(ctx, tx, `DELETE FROM sessions WHERE token_hash = $1`, tokenHash)
	})
	if err != nil {
		return fmt.Errorf("catalog: delete session: %w", err)
	}
	return nil
}

// DeleteUserSessions ends every session of a user ("log out everywhere") and returns how
// many there were. A user without sessions, or an unknown id, deletes nothing.
func (c *Catalog) DeleteUserSessions(ctx context.Context, userID int64) (int64, error) {
	var n int64
	err := c.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = $1`, userID)
		if err == nil {
			n, err = res.RowsAffected()
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("catalog: delete sessions of user %d: %w", userID, err)
	}
	return n, nil
}

// DeleteStaleSessions deletes the sessions last seen before idleBefore (idle too long) or
// created before createdBefore (too old however busy: a stolen cookie must stop working
// some day), and returns how many. A zero time turns its criterion off.
func (c *Catalog) DeleteStaleSessions(ctx context.Context, idleBefore, createdBefore time.Time) (int64, error) {
	n, err := c.deleteStaleSessions(ctx, idleBefore, createdBefore)
	if err != nil {
		return 0, fmt.Errorf("catalog: delete stale sessions: %w", err)
	}
	return n, nil
}

func (c *Catalog) deleteStaleSessions(ctx context.Context, idleBefore, createdBefore time.Time) (int64, error) {
	idle, err := nullNanos("idle before", idleBefore)
	if err != nil {
		return 0, err
	}
	created, err := nullNanos("created before", createdBefore)
	if err != nil {
		return 0, err
	}
	var n int64
	err = c.write(ctx, func(tx *sql.Tx) error {
		// A NULL bound compares as unknown, which deletes nothing: that is "off".
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE last_seen_ns < $1 OR created_ns < $2`, idle, created)
		if err == nil {
			n, err = res.RowsAffected()
		}
		return err
	})
	return n, err
}
