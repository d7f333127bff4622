package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// User is an account that may log in to the viewer. The catalog stores what it is given:
// it neither hashes passwords nor judges role names or camera ids (package viewer/access
// does both).
type User struct {
	ID           int64
	Name         string
	PasswordHash string   // an encoded Argon2id string, opaque here
	Roles        []string // sorted; never nil on return
	// AllCameras grants every camera, including ones added later; otherwise Cameras
	// lists the granted camera ids (sorted, never nil on return).
	AllCameras bool
	Cameras    []string
	Disabled   bool
	Created    time.Time
	Changed    time.Time // last change of password, grants or disabled state
}

const userColumns = `id, name, password_hash, roles, all_cameras, cameras, disabled, created_ns, changed_ns`

// userColumnsOf is userColumns qualified with a table alias, for joins.
func userColumnsOf(alias string) string {
	return alias + "." + strings.ReplaceAll(userColumns, ", ", ", "+alias+".")
}

// userFields receives the columns of userColumns, in order, for scanUser and joins.
type userFields struct {
	u                User
	roles, cameras   string
	created, changed int64
}

func (f *userFields) dest() []any {
	return []any{&f.u.ID, &f.u.Name, &f.u.PasswordHash, &f.roles, &f.u.AllCameras, &f.cameras, &f.u.Disabled, &f.created, &f.changed}
}

func (f *userFields) user() (User, error) {
	u := f.u
	u.Roles = splitRoles(f.roles)
	if err := json.Unmarshal([]byte(f.cameras), &u.Cameras); err != nil {
		return User{}, fmt.Errorf("user %s: cameras: %w", u.Name, err)
	}
	if u.Cameras == nil {
		u.Cameras = []string{}
	}
	u.Created, u.Changed = fromNanos(f.created), fromNanos(f.changed)
	return u, nil
}

func scanUser(sc scanner) (User, error) {
	var f userFields
	if err := sc.Scan(f.dest()...); err != nil {
		return User{}, err
	}
	return f.user()
}

// joinRoles returns roles as stored: sorted, without duplicates, comma-joined. A comma
// inside a name would split it in two on the way back, so it is refused.
func joinRoles(roles []string) (string, error) {
	sorted := slices.Clone(roles)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	for _, r := range sorted {
		if r == "" || strings.Contains(r, ",") {
			return "", fmt.Errorf("role %q: must be non-empty and hold no comma", r)
		}
	}
	return strings.Join(sorted, ","), nil
}

// splitRoles is the inverse of joinRoles; no roles is an empty slice, not nil.
func splitRoles(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}

// camerasJSON returns the granted cameras as stored: a sorted JSON array without
// duplicates.
func camerasJSON(cameras []string) (string, error) {
	sorted := slices.Clone(cameras)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	if sorted == nil {
		sorted = []string{}
	}
	for _, id := range sorted {
		if id == "" {
			return "", errors.New("camera id is empty")
		}
	}
	b, err := json.Marshal(sorted)
	return string(b), err
}

// CreateUser stores a new user and returns its id. Name, PasswordHash and Created are
// required; a zero Changed means Created. Cameras are stored even when AllCameras is set,
// so that withdrawing "all cameras" later falls back to the list the administrator made.
// A name already taken wraps ErrExists.
func (c *Catalog) CreateUser(ctx context.Context, u User) (int64, error) {
	id, err := c.createUser(ctx, u)
	if err != nil {
		return 0, fmt.Errorf("catalog: create user %s: %w", u.Name, err)
	}
	return id, nil
}

func (c *Catalog) createUser(ctx context.Context, u User) (int64, error) {
	if u.Name == "" {
		return 0, errors.New("name is empty")
	}
	if u.PasswordHash == "" {
		return 0, errors.New("password hash is empty")
	}
	roles, err := joinRoles(u.Roles)
	if err != nil {
		return 0, err
	}
	cameras, err := camerasJSON(u.Cameras)
	if err != nil {
		return 0, err
	}
	created, err := nanos("created", u.Created)
	if err != nil {
		return 0, err
	}
	changed := created
	if !u.Changed.IsZero() {
		if changed, err = nanos("changed", u.Changed); err != nil {
			return 0, err
		}
	}
	var id int64
	err = c.write(ctx, func(tx *sql.Tx) error {
		// Checked rather than left to the UNIQUE constraint, whose error text differs
		// between SQLite and PostgreSQL.
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE name = $1`, u.Name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return ErrExists
		}
		return tx.QueryRowContext(ctx, `INSERT INTO users (name, password_hash, roles, all_cameras, cameras, disabled, created_ns, changed_ns)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
			u.Name, u.PasswordHash, roles, boolInt(u.AllCameras), cameras, boolInt(u.Disabled), created, changed).Scan(&id)
	})
	return id, err
}

// UserByName returns the user called name; an unknown name wraps ErrNotFound.
func (c *Catalog) UserByName(ctx context.Context, name string) (User, error) {
	u, err := scanUser(c.r.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = $1`, name))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return User{}, c.note(fmt.Errorf("catalog: user %s: %w", name, err))
	}
	return u, nil
}

// UserByID returns the user with the given id; an unknown id wraps ErrNotFound.
func (c *Catalog) UserByID(ctx context.Context, id int64) (User, error) {
	u, err := scanUser(c.r.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("catalog: user %d: %w", id, err)
	}
	return u, nil
}

// Users returns every user, disabled ones included, ordered by name.
func (c *Catalog) Users(ctx context.Context) ([]User, error) {
	users, err := c.users(ctx)
	if err != nil {
		return nil, fmt.Errorf("catalog: users: %w", err)
	}
	return users, nil
}

func (c *Catalog) users(ctx context.Context) ([]User, error) {
	rows, err := c.r.QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// CountUsers returns how many users exist, disabled ones included (start-up asks it to
// decide whether the first administrator still has to be created).
func (c *Catalog) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := c.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("catalog: count users: %w", err)
	}
	return n, nil
}

// SetPassword replaces name's password hash and, in the same transaction, deletes every
// session of that user: a password is changed because it may be known to someone else,
// and a session that person already opened must not outlive the change. An unknown name
// wraps ErrNotFound.
func (c *Catalog) SetPassword(ctx context.Context, name, hash string, at time.Time) error {
	err := c.setPassword(ctx, name, hash, at)
	if err != nil {
		return fmt.Errorf("catalog: set password of %s: %w", name, err)
	}
	return nil
}

func (c *Catalog) setPassword(ctx context.Context, name, hash string, at time.Time) error {
	if hash == "" {
		return errors.New("password hash is empty")
	}
	changed, err := nanos("at", at)
	if err != nil {
		return err
	}
	return c.write(ctx, func(tx *sql.Tx) error {
		if err := execFound(ctx, tx, `UPDATE users SET password_hash = $2, changed_ns = $3 WHERE name = $1`, name, hash, changed); err != nil {
			return err
		}
		return deleteSessionsOf(ctx, tx, name)
	})
}

// SetDisabled disables or re-enables name. Disabling deletes the user's sessions in the
// same transaction, so the user is logged out everywhere the moment the call returns;
// CreateSession refuses a disabled user, so no login in flight can slip a session in
// afterwards. An unknown name wraps ErrNotFound.
func (c *Catalog) SetDisabled(ctx context.Context, name string, disabled bool, at time.Time) error {
	err := c.setDisabled(ctx, name, disabled, at)
	if err != nil {
		op := "enable"
		if disabled {
			op = "disable"
		}
		return fmt.Errorf("catalog: %s user %s: %w", op, name, err)
	}
	return nil
}

func (c *Catalog) setDisabled(ctx context.Context, name string, disabled bool, at time.Time) error {
	changed, err := nanos("at", at)
	if err != nil {
		return err
	}
	return c.write(ctx, func(tx *sql.Tx) error {
		if err := execFound(ctx, tx, `UPDATE users SET disabled = $2, changed_ns = $3 WHERE name = $1`, name, boolInt(disabled), changed); err != nil {
			return err
		}
		if !disabled {
			return nil
		}
		return deleteSessionsOf(ctx, tx, name)
	})
}

func deleteSessionsOf(ctx context.Context, tx *sql.Tx, name string) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE name = $1)`, name)
	return err
}

// SetGrants replaces name's roles and camera grants. Sessions stay: every request reads
// the user afresh (SessionUser), so the new grants apply from the next request on. An
// unknown name wraps ErrNotFound.
func (c *Catalog) SetGrants(ctx context.Context, name string, roles []string, all bool, cameras []string, at time.Time) error {
	err := c.setGrants(ctx, name, roles, all, cameras, at)
	if err != nil {
		return fmt.Errorf("catalog: set grants of %s: %w", name, err)
	}
	return nil
}

func (c *Catalog) setGrants(ctx context.Context, name string, roles []string, all bool, cameras []string, at time.Time) error {
	r, err := joinRoles(roles)
	if err != nil {
		return err
	}
	cams, err := camerasJSON(cameras)
	if err != nil {
		return err
	}
	changed, err := nanos("at", at)
	if err != nil {
		return err
	}
	return c.write(ctx, func(tx *sql.Tx) error {
		return execFound(ctx, tx, `UPDATE users SET roles = $2, all_cameras = $3, cameras = $4, changed_ns = $5 WHERE name = $1`,
			name, r, boolInt(all), cams, changed)
	})
}
