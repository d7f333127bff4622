package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Export job states. A job is queued, runs, and ends done, failed or cancelled; a done
// job's file is removed by exports.retention and the job becomes expired.
const (
	ExportQueued    = "queued"
	ExportRunning   = "running"
	ExportDone      = "done"
	ExportFailed    = "failed"
	ExportCancelled = "cancelled"
	ExportExpired   = "expired"
)

// ExportJob is one evidence export requested through the API: what, why, for which case,
// to whom, and how it ended.
type ExportJob struct {
	ID                      int64
	Created                 time.Time
	Actor                   string
	Cameras                 []string
	From, To                time.Time
	Reason, Case, Recipient string
	AuditID                 int64 // the export.request row, committed before the job was created
	State, Error            string
	File                    string // relative to the storage path; "" until done
	Bytes                   int64
	SHA256                  string // of the bundle
	Finished                time.Time
}

const exportColumns = `id, created_ns, actor, cameras, from_ns, to_ns, reason, case_ref, recipient, audit_id, state, error, file, bytes, sha256, finished_ns`

func scanExport(sc scanner) (ExportJob, error) {
	var j ExportJob
	var created, from, to int64
	var cams string
	var finished sql.NullInt64
	err := sc.Scan(&j.ID, &created, &j.Actor, &cams, &from, &to, &j.Reason, &j.Case, &j.Recipient, &j.AuditID,
		&j.State, &j.Error, &j.File, &j.Bytes, &j.SHA256, &finished)
	if err != nil {
		return j, err
	}
	if err := json.Unmarshal([]byte(cams), &j.Cameras); err != nil {
		return j, fmt.Errorf("export %d: cameras: %w", j.ID, err)
	}
	j.Created, j.From, j.To, j.Finished = fromNanos(created), fromNanos(from), fromNanos(to), fromNullNanos(finished)
	return j, nil
}

// CreateExport stores a new, queued export job and returns its id. Cameras, the range,
// reason, case, recipient and the audit row are required: an export without them could
// not be accounted for.
func (c *Catalog) CreateExport(ctx context.Context, j ExportJob) (int64, error) {
	id, err := c.createExport(ctx, j)
	if err != nil {
		return 0, fmt.Errorf("catalog: create export: %w", err)
	}
	return id, nil
}

func (c *Catalog) createExport(ctx context.Context, j ExportJob) (int64, error) {
	switch {
	case len(j.Cameras) == 0:
		return 0, errors.New("cameras: none")
	case strings.TrimSpace(j.Reason) == "" || strings.TrimSpace(j.Case) == "" || strings.TrimSpace(j.Recipient) == "":
		return 0, errors.New("reason, case and recipient are required")
	case j.AuditID <= 0:
		return 0, errors.New("audit row: missing")
	case !j.To.After(j.From):
		return 0, errors.New("to must be after from")
	}
	created, err := nanos("created", j.Created)
	if err != nil {
		return 0, err
	}
	from, err := nanos("from", j.From)
	if err != nil {
		return 0, err
	}
	to, err := nanos("to", j.To)
	if err != nil {
		return 0, err
	}
	cams, _ := json.Marshal(j.Cameras)
	var id int64
	err = c.write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO exports (created_ns, actor, cameras, from_ns, to_ns, reason, case_ref, recipient, audit_id, state)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued') RETURNING id`,
			created, j.Actor, string(cams), from, to, j.Reason, j.Case, j.Recipient, j.AuditID).Scan(&id)
	})
	return id, err
}

// SetExportState moves a job to state. A finished state (done, failed, cancelled,
// expired) records finished; done also records the bundle's file, size and digest.
// Moving a job that is already finished (other than done to expired) is refused: a
// cancelled job must not turn done because its last write raced the cancel.
func (c *Catalog) SetExportState(ctx context.Context, id int64, state, errText, file string, bytes int64, sha256 string, at time.Time) error {
	if err := c.setExportState(ctx, id, state, errText, file, bytes, sha256, at); err != nil {
		return fmt.Errorf("catalog: export %d: %w", id, err)
	}
	return nil
}

func (c *Catalog) setExportState(ctx context.Context, id int64, state, errText, file string, bytes int64, sha256 string, at time.Time) error {
	var from []string
	switch state {
	case ExportRunning:
		from = []string{ExportQueued}
	case ExportDone, ExportFailed:
		from = []string{ExportRunning}
	case ExportCancelled:
		from = []string{ExportQueued, ExportRunning}
	case ExportExpired:
		from = []string{ExportDone}
	case ExportQueued:
		from = []string{ExportRunning} // requeued after a restart
	default:
		return fmt.Errorf("state %q is not an export state", state)
	}
	atNS, err := nanos("at", at)
	if err != nil {
		return err
	}
	finished := sql.NullInt64{Int64: atNS, Valid: state != ExportRunning && state != ExportQueued}
	return c.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE exports SET state = $2, error = $3, file = $4, bytes = $5, sha256 = $6, finished_ns = $7
WHERE id = $1 AND state IN ($8, $9)`, id, state, errText, file, bytes, sha256, finished, from[0], from[len(from)-1])
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		var cur string
		switch err := tx.QueryRowContext(ctx, `SELECT state FROM exports WHERE id = $1`, id).Scan(&cur); {
		case errors.Is(err, sql.ErrNoRows):
			return ErrNotFound
		case err != nil:
			return err
		}
		return fmt.Errorf("%w: it is %s, not %s", ErrExportState, cur, strings.Join(from, " or "))
	})
}

// ErrExportState: the job is not in a state the change applies to.
var ErrExportState = errors.New("export is in another state")

// Export returns job id, or an error wrapping ErrNotFound.
func (c *Catalog) Export(ctx context.Context, id int64) (ExportJob, error) {
	j, err := scanExport(c.r.QueryRowContext(ctx, `SELECT `+exportColumns+` FROM exports WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return ExportJob{}, fmt.Errorf("catalog: export %d: %w", id, err)
	}
	return j, nil
}

// Exports returns the jobs in states (all if none given), newest first, at most limit.
func (c *Catalog) Exports(ctx context.Context, limit int, states ...string) ([]ExportJob, error) {
	q := `SELECT ` + exportColumns + ` FROM exports`
	var args []any
	if len(states) > 0 {
		ph := make([]string, len(states))
		for i, s := range states {
			ph[i] = fmt.Sprintf("$%d", i+1)
			args = append(args, s)
		}
		q += ` WHERE state IN (` + strings.Join(ph, ", ") + `)`
	}
	q += fmt.Sprintf(` ORDER BY id DESC LIMIT %d`, max(limit, 1))
	rows, err := c.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("catalog: exports: %w", err)
	}
	defer rows.Close()
	var out []ExportJob
	for rows.Next() {
		j, err := scanExport(rows)
		if err != nil {
			return nil, fmt.Errorf("catalog: exports: %w", err)
		}
		out = append(out, j)
	}
	return out, rows.Err()
}
