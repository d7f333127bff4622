package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Case is a case file an officer collects footage for, by its reference (č.j.).
type Case struct {
	ID      int64
	Ref     string
	Title   string
	Actor   string
	Created time.Time
}

// Bookmark is a range of one camera's footage an officer noted, optionally in a case.
type Bookmark struct {
	ID          int64
	Camera      string
	From, To    time.Time
	Title, Note string
	CaseID      int64 // 0: in no case
	Actor       string
	Created     time.Time
}

// ErrCaseExists: a case with that reference exists already (references are unique, so
// "KRPP-77/2026" always means one file).
var ErrCaseExists = errors.New("a case with this reference exists")

// AddCase stores a new case and returns its id.
func (c *Catalog) AddCase(ctx context.Context, k Case) (int64, error) {
	k.Ref, k.Title = strings.TrimSpace(k.Ref), strings.TrimSpace(k.Title)
	if k.Ref == "" {
		return 0, errors.New("catalog: add case: reference is empty")
	}
	created, err := nanos("created", k.Created)
	if err != nil {
		return 0, fmt.Errorf("catalog: add case: %w", err)
	}
	var id int64
	err = c.write(ctx, func(tx *sql.Tx) error {
		var other int64
		switch err := tx.QueryRowContext(ctx, `SELECT id FROM cases WHERE ref = $1`, k.Ref).Scan(&other); {
		case err == nil:
			return fmt.Errorf("%w (case %d)", ErrCaseExists, other)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		return tx.QueryRowContext(ctx, `INSERT INTO cases (ref, title, actor, created_ns) VALUES ($1, $2, $3, $4) RETURNING id`,
			k.Ref, k.Title, k.Actor, created).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("catalog: add case %q: %w", k.Ref, err)
	}
	return id, nil
}

const caseColumns = `id, ref, title, actor, created_ns`

func scanCase(sc scanner) (Case, error) {
	var k Case
	var created int64
	err := sc.Scan(&k.ID, &k.Ref, &k.Title, &k.Actor, &created)
	k.Created = fromNanos(created)
	return k, err
}

// Cases returns every case, newest first.
func (c *Catalog) Cases(ctx context.Context) ([]Case, error) {
	rows, err := c.r.QueryContext(ctx, `SELECT `+caseColumns+` FROM cases ORDER BY id DESC`)
	if err != nil {
		return nil, fmt.Errorf("catalog: cases: %w", err)
	}
	defer rows.Close()
	var out []Case
	for rows.Next() {
		k, err := scanCase(rows)
		if err != nil {
			return nil, fmt.Errorf("catalog: cases: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// CaseByID returns case id, or an error wrapping ErrNotFound.
func (c *Catalog) CaseByID(ctx context.Context, id int64) (Case, error) {
	k, err := scanCase(c.r.QueryRowContext(ctx, `SELECT `+caseColumns+` FROM cases WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Case{}, fmt.Errorf("catalog: case %d: %w", id, err)
	}
	return k, nil
}

// AddBookmark stores a bookmark and returns its id. A CaseID must name an existing case.
func (c *Catalog) AddBookmark(ctx context.Context, b Bookmark) (int64, error) {
	id, err := c.addBookmark(ctx, b)
	if err != nil {
		return 0, fmt.Errorf("catalog: add bookmark: %w", err)
	}
	return id, nil
}

func (c *Catalog) addBookmark(ctx context.Context, b Bookmark) (int64, error) {
	if b.Camera == "" || strings.TrimSpace(b.Title) == "" {
		return 0, errors.New("camera and title are required")
	}
	from, to, err := timeRange(b.From, b.To)
	if err != nil {
		return 0, err
	}
	if to <= from {
		return 0, errors.New("to must be after from")
	}
	created, err := nanos("created", b.Created)
	if err != nil {
		return 0, err
	}
	caseID := sql.NullInt64{Int64: b.CaseID, Valid: b.CaseID != 0}
	var id int64
	err = c.write(ctx, func(tx *sql.Tx) error {
		if caseID.Valid {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM cases WHERE id = $1`, b.CaseID).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("case %d: %w", b.CaseID, ErrNotFound)
			}
		}
		return tx.QueryRowContext(ctx, `INSERT INTO bookmarks (camera, from_ns, to_ns, title, note, case_id, actor, created_ns)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
			b.Camera, from, to, strings.TrimSpace(b.Title), b.Note, caseID, b.Actor, created).Scan(&id)
	})
	return id, err
}

const bookmarkColumns = `id, camera, from_ns, to_ns, title, note, case_id, actor, created_ns`

// BookmarkQuery selects bookmarks: of these cameras (nil: any), of one case (0: any).
type BookmarkQuery struct {
	Cameras []string
	CaseID  int64
}

// Bookmarks returns the bookmarks q selects, by time.
func (c *Catalog) Bookmarks(ctx context.Context, q BookmarkQuery) ([]Bookmark, error) {
	where, args := []string{"1 = 1"}, []any{}
	if q.CaseID != 0 {
		args = append(args, q.CaseID)
		where = append(where, fmt.Sprintf("case_id = $%d", len(args)))
	}
	if q.Cameras != nil {
		if len(q.Cameras) == 0 {
			return nil, nil
		}
		ph := make([]string, len(q.Cameras))
		for i, cam := range q.Cameras {
			args = append(args, cam)
			ph[i] = fmt.Sprintf("$%d", len(args))
		}
		where = append(where, "camera IN ("+strings.Join(ph, ", ")+")")
	}
	rows, err := c.r.QueryContext(ctx, `SELECT `+bookmarkColumns+` FROM bookmarks WHERE `+strings.Join(where, " AND ")+` ORDER BY from_ns, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("catalog: bookmarks: %w", err)
	}
	defer rows.Close()
	var out []Bookmark
	for rows.Next() {
		b, err := scanBookmark(rows)
		if err != nil {
			return nil, fmt.Errorf("catalog: bookmarks: %w", err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

func scanBookmark(sc scanner) (Bookmark, error) {
	var b Bookmark
	var from, to, created int64
	var caseID sql.NullInt64
	err := sc.Scan(&b.ID, &b.Camera, &from, &to, &b.Title, &b.Note, &caseID, &b.Actor, &created)
	b.From, b.To, b.Created, b.CaseID = fromNanos(from), fromNanos(to), fromNanos(created), caseID.Int64
	return b, err
}

// Bookmark returns bookmark id, or an error wrapping ErrNotFound.
func (c *Catalog) Bookmark(ctx context.Context, id int64) (Bookmark, error) {
	b, err := scanBookmark(c.r.QueryRowContext(ctx, `SELECT `+bookmarkColumns+` FROM bookmarks WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Bookmark{}, fmt.Errorf("catalog: bookmark %d: %w", id, err)
	}
	return b, nil
}

// RemoveBookmark deletes bookmark id.
func (c *Catalog) RemoveBookmark(ctx context.Context, id int64) error {
	err := c.write(ctx, func(tx *sql.Tx) error {
		return execFound(ctx, tx, `DELETE FROM bookmarks WHERE id = $1`, id)
	})
	if err != nil {
		return fmt.Errorf("catalog: remove bookmark %d: %w", id, err)
	}
	return nil
}
