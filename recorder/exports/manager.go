// Package exports runs officers' evidence exports as background jobs: one at a time, with
// progress, cancellation and a retention of their own, the job's record kept in the
// catalog. What goes into a bundle is the Bundler's business (package evidence); this
// package owns the job's life: locks first, the file written under a temporary name and
// renamed only once complete, never a partial file left behind.
package exports

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/townwatch/townwatch/recorder/catalog"
)

// Bundler writes the bundle of job to w, calling progress with source bytes done and
// total. It must stop soon after ctx is cancelled.
type Bundler func(ctx context.Context, w io.Writer, job catalog.ExportJob, progress func(done, total int64)) error

// Options configure a Manager.
type Options struct {
	Catalog *catalog.Catalog
	// Dir is where bundles are written (<storage>/exports); created 0700.
	Dir    string
	Bundle Bundler
	// Retention is how long a finished bundle is kept (exports.retention); 0 keeps them.
	Retention time.Duration
	// Name makes a job's file name (without directory); evidence.FileName in production.
	Name func(catalog.ExportJob) string
	// WriteRate caps the bundle's disk writes in bytes per second, so that an export
	// never makes the recorders' fragment writes wait; 0 means defaultWriteRate.
	WriteRate int
	Log       *slog.Logger
	Now       func() time.Time // nil: time.Now
}

// defaultWriteRate is twice what "1 h of a 4 Mbit/s camera within 60 s" needs (30 MB/s),
// and a fraction of any disk's sequential rate: the recorders' fsyncs keep their share.
const defaultWriteRate = 64 << 20

// syncEvery bounds the dirty pages an export accumulates: a recorder's fdatasync on the
// same disk must not wait behind a gigabyte of export being flushed at once.
const syncEvery = 32 << 20

// cancelWait is how long Cancel waits for a running job to stop and remove its file.
const cancelWait = time.Second

// Request is a new export: everything the job's row records.
type Request struct {
	Actor                   string
	Cameras                 []string
	From, To                time.Time
	Reason, Case, Recipient string
	AuditID                 int64
	// Lock places an evidence lock over the range on every camera (the default in the
	// API), so that retention cannot delete the footage while it is exported, nor after.
	Lock bool
}

// Status is a job and, while it runs, its progress.
type Status struct {
	catalog.ExportJob
	Done, Total int64         // source bytes
	ETA         time.Duration // 0 when unknown
}

// Manager queues and runs export jobs.
type Manager struct {
	opt  Options
	log  *slog.Logger
	wake chan struct{}

	mu      sync.Mutex
	running *runningJob
}

type runningJob struct {
	id          int64
	cancel      context.CancelFunc
	stopped     chan struct{} // closed once the job's end is recorded and its file is gone or final
	started     time.Time
	done, total int64
}

// New validates the options and creates the directory.
func New(opt Options) (*Manager, error) {
	if opt.Catalog == nil || opt.Bundle == nil || opt.Name == nil || opt.Dir == "" {
		return nil, errors.New("exports: catalog, bundler, name and directory are required")
	}
	if err := os.MkdirAll(opt.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("exports directory: %w", err)
	}
	if opt.WriteRate <= 0 {
		opt.WriteRate = defaultWriteRate
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{opt: opt, log: log.With("component", "exports"), wake: make(chan struct{}, 1)}, nil
}

// Submit locks the range (if asked) and queues the job; it returns the job id.
func (m *Manager) Submit(ctx context.Context, r Request) (int64, error) {
	now := m.opt.Now()
	if r.Lock {
		for _, cam := range r.Cameras {
			if _, err := m.opt.Catalog.AddLock(ctx, catalog.Lock{Camera: cam, Start: r.From, End: r.To, Created: now, Actor: r.Actor,
				Reason: "evidence export for case " + r.Case + " to " + r.Recipient}); err != nil {
				return 0, fmt.Errorf("locking camera %s: %w", cam, err)
			}
		}
	}
	id, err := m.opt.Catalog.CreateExport(ctx, catalog.ExportJob{Created: now, Actor: r.Actor, Cameras: r.Cameras, From: r.From, To: r.To,
		Reason: r.Reason, Case: r.Case, Recipient: r.Recipient, AuditID: r.AuditID})
	if err != nil {
		return 0, err
	}
	m.poke()
	return id, nil
}

func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Status returns job id with its progress.
func (m *Manager) Status(ctx context.Context, id int64) (Status, error) {
	j, err := m.opt.Catalog.Export(ctx, id)
	if err != nil {
		return Status{}, err
	}
	return m.withProgress(j), nil
}

func (m *Manager) withProgress(j catalog.ExportJob) Status {
	st := Status{ExportJob: j}
	m.mu.Lock()
	if r := m.running; r != nil && r.id == j.ID {
		st.Done, st.Total = r.done, r.total
		if elapsed := m.opt.Now().Sub(r.started); r.done > 0 && r.total > r.done {
			st.ETA = time.Duration(float64(elapsed) * float64(r.total-r.done) / float64(r.done))
		}
	}
	m.mu.Unlock()
	if j.State == catalog.ExportDone {
		st.Done, st.Total = j.Bytes, j.Bytes
	}
	return st
}

// Recent returns the newest jobs, at most limit, with the running one's progress.
func (m *Manager) Recent(ctx context.Context, limit int) ([]Status, error) {
	jobs, err := m.opt.Catalog.Exports(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Status, len(jobs))
	for i, j := range jobs {
		out[i] = m.withProgress(j)
	}
	return out, nil
}

// Cancel stops a queued or running job. A running one is stopped and its partial file
// removed before Cancel returns (within about a second).
func (m *Manager) Cancel(ctx context.Context, id int64) error {
	m.mu.Lock()
	r := m.running
	m.mu.Unlock()
	if r != nil && r.id == id {
		r.cancel()
		select {
		case <-r.stopped:
		case <-time.After(cancelWait):
			return fmt.Errorf("export %d did not stop within %s", id, cancelWait)
		}
		j, err := m.opt.Catalog.Export(ctx, id)
		if err == nil && j.State != catalog.ExportCancelled {
			return fmt.Errorf("export %d had already ended (%s)", id, j.State)
		}
		return err
	}
	return m.opt.Catalog.SetExportState(ctx, id, catalog.ExportCancelled, "cancelled before it started", "", 0, "", m.opt.Now())
}

// Open opens a finished job's bundle for download.
func (m *Manager) Open(ctx context.Context, id int64) (*os.File, catalog.ExportJob, error) {
	j, err := m.opt.Catalog.Export(ctx, id)
	if err != nil {
		return nil, j, err
	}
	if j.State != catalog.ExportDone {
		return nil, j, fmt.Errorf("export %d is %s, not done", id, j.State)
	}
	f, err := os.Open(filepath.Join(m.opt.Dir, filepath.Base(j.File)))
	return f, j, err
}

// Run works the queue until ctx ends: jobs a crash interrupted are queued again first
// (their partial files removed), then each queued job runs in turn, oldest first; finished
// bundles past Retention are removed hourly.
func (m *Manager) Run(ctx context.Context) error {
	if err := m.recover(ctx); err != nil {
		return err
	}
	sweep := time.NewTicker(time.Hour)
	defer sweep.Stop()
	m.expire(ctx)
	for {
		if err := m.runQueued(ctx); err != nil && ctx.Err() == nil {
			m.log.Error("export queue", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-m.wake:
		case <-sweep.C:
			m.expire(ctx)
		}
	}
}

// recover requeues jobs that were running when the process stopped and removes partial
// files: a bundle is only ever complete under its final name.
func (m *Manager) recover(ctx context.Context) error {
	running, err := m.opt.Catalog.Exports(ctx, 1000, catalog.ExportRunning)
	if err != nil {
		return err
	}
	for _, j := range running {
		if err := m.opt.Catalog.SetExportState(ctx, j.ID, catalog.ExportQueued, "", "", 0, "", m.opt.Now()); err != nil {
			return err
		}
		m.log.Warn("export interrupted by a restart; running it again", "export", j.ID)
	}
	parts, err := filepath.Glob(filepath.Join(m.opt.Dir, "*.part"))
	if err != nil {
		return err
	}
	for _, p := range parts {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) runQueued(ctx context.Context) error {
	for ctx.Err() == nil {
		queued, err := m.opt.Catalog.Exports(ctx, 1000, catalog.ExportQueued)
		if err != nil || len(queued) == 0 {
			return err
		}
		m.runJob(ctx, queued[len(queued)-1]) // oldest first
	}
	return nil
}

// runJob runs one job to its end and records it.
func (m *Manager) runJob(ctx context.Context, j catalog.ExportJob) {
	jobCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &runningJob{id: j.ID, cancel: cancel, stopped: make(chan struct{}), started: m.opt.Now()}
	defer close(r.stopped)
	if err := m.opt.Catalog.SetExportState(ctx, j.ID, catalog.ExportRunning, "", "", 0, "", m.opt.Now()); err != nil {
		m.log.Warn("export not started", "export", j.ID, "err", err) // cancelled meanwhile
		return
	}
	m.mu.Lock()
	m.running = r
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.running = nil
		m.mu.Unlock()
	}()
	name := strconv.FormatInt(j.ID, 10) + "-" + m.opt.Name(j)
	final := filepath.Join(m.opt.Dir, name)
	size, sum, err := m.write(jobCtx, j, final, r)
	// The record is written with a context that outlives the job's: a cancel or shutdown
	// must still leave the job's end on record.
	rec := context.WithoutCancel(ctx)
	now := m.opt.Now()
	switch {
	case err == nil:
		err = m.opt.Catalog.SetExportState(rec, j.ID, catalog.ExportDone, "", name, size, sum, now)
		m.log.Info("export done", "export", j.ID, "bytes", size, "sha256", sum, "took", now.Sub(r.started).Round(time.Millisecond))
	case jobCtx.Err() != nil && ctx.Err() == nil:
		err = m.opt.Catalog.SetExportState(rec, j.ID, catalog.ExportCancelled, "cancelled while running", "", 0, "", now)
		m.log.Info("export cancelled", "export", j.ID)
	case ctx.Err() != nil:
		return // shutting down: the job stays running and is requeued at the next start
	default:
		m.log.Error("export failed", "export", j.ID, "err", err)
		err = m.opt.Catalog.SetExportState(rec, j.ID, catalog.ExportFailed, err.Error(), "", 0, "", now)
	}
	if err != nil {
		m.log.Error("recording the end of an export", "export", j.ID, "err", err)
	}
}

// write produces the bundle under final+".part" and renames it once complete and synced;
// on any error the partial file is removed.
func (m *Manager) write(ctx context.Context, j catalog.ExportJob, final string, r *runningJob) (size int64, sum string, err error) {
	part := final + ".part"
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, "", err
	}
	defer func() {
		if err != nil {
			f.Close()
			if rmErr := os.Remove(part); rmErr != nil {
				m.log.Error("removing a partial export", "file", part, "err", rmErr)
			}
		}
	}()
	h := sha256.New()
	out := &pacedWriter{ctx: ctx, f: f, limit: rate.NewLimiter(rate.Limit(m.opt.WriteRate), m.opt.WriteRate/4)}
	progress := func(done, total int64) {
		m.mu.Lock()
		r.done, r.total = done, total
		m.mu.Unlock()
	}
	if err = m.opt.Bundle(ctx, io.MultiWriter(out, h), j, progress); err != nil {
		return 0, "", err
	}
	if err = ctx.Err(); err != nil {
		return 0, "", err
	}
	if err = f.Sync(); err != nil {
		return 0, "", err
	}
	if err = f.Close(); err != nil {
		return 0, "", err
	}
	if err = os.Rename(part, final); err != nil {
		return 0, "", err
	}
	// The job's row says done only once the new name would survive a crash too.
	d, err := os.Open(m.opt.Dir)
	if err != nil {
		return 0, "", err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, "", err
	}
	return out.n, hex.EncodeToString(h.Sum(nil)), nil
}

// pacedWriter writes at most limit bytes per second and syncs every syncEvery bytes.
type pacedWriter struct {
	ctx      context.Context
	f        *os.File
	limit    *rate.Limiter
	n        int64
	unsynced int64
}

func (w *pacedWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), w.limit.Burst())]
		if err := w.limit.WaitN(w.ctx, len(chunk)); err != nil {
			return written, err
		}
		n, err := w.f.Write(chunk)
		written += n
		w.n += int64(n)
		w.unsynced += int64(n)
		if err != nil {
			return written, err
		}
		if w.unsynced >= syncEvery {
			if err := w.f.Sync(); err != nil {
				return written, err
			}
			w.unsynced = 0
		}
		p = p[n:]
	}
	return written, nil
}

// expire removes bundles older than Retention and marks their jobs expired.
func (m *Manager) expire(ctx context.Context) {
	if m.opt.Retention <= 0 {
		return
	}
	done, err := m.opt.Catalog.Exports(ctx, 100000, catalog.ExportDone)
	if err != nil {
		m.log.Error("export retention", "err", err)
		return
	}
	cutoff := m.opt.Now().Add(-m.opt.Retention)
	for _, j := range done {
		if !j.Finished.Before(cutoff) {
			continue
		}
		// The file first: a crash between leaves a done job without its file, which the
		// next sweep marks expired; the reverse would leave a file no job accounts for.
		if err := os.Remove(filepath.Join(m.opt.Dir, filepath.Base(j.File))); err != nil && !errors.Is(err, os.ErrNotExist) {
			m.log.Error("export retention: removing the bundle", "export", j.ID, "err", err)
			continue
		}
		if err := m.opt.Catalog.SetExportState(ctx, j.ID, catalog.ExportExpired, "removed by exports.retention", j.File, j.Bytes, j.SHA256, m.opt.Now()); err != nil {
			m.log.Error("export retention", "export", j.ID, "err", err)
			continue
		}
		m.log.Info("export bundle removed by exports.retention", "export", j.ID, "file", j.File)
	}
}
