package main

// A damaged catalog degrades townwatch, it never stops it: start-up checks the catalog
// and rebuilds a damaged one (recorder.OpenCatalog), the access log records the rebuild,
// and /healthz, /metrics and the log say so until an operator has looked.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// storageLockFile is the file under storage.path that `serve` holds an exclusive flock
// on while it runs, and `catalog rebuild` while it works: a rebuild must never move the
// catalog away under a running server, nor a server start on a half-rebuilt one. The
// kernel releases the lock when the process dies, however it dies.
const storageLockFile = "townwatch.lock"

// errStorageBusy: another process holds storageLockFile.
var errStorageBusy = errors.New("another townwatch (serve or catalog rebuild) is using this storage.path")

// lockStorage takes the exclusive lock on dir's storageLockFile without waiting. The
// returned file holds it until closed.
func lockStorage(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("storage.path: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, storageLockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("storage.path: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", dir, errStorageBusy)
		}
		return nil, fmt.Errorf("storage.path: lock %s: %w", storageLockFile, err)
	}
	f.Truncate(0)
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return f, nil
}

// catalogHealth is what the running system knows about its catalog, for /healthz and
// /metrics.
type catalogHealth struct {
	rebuild *recorder.CatalogRebuild // nil: the catalog was sound at start
	cat     *catalog.Catalog
	cams    *cameraRegistry
	// retiredFailures are the catalog write failures of recorders stopped by a reload:
	// their footage is still unindexed until the next start, so they still count.
	retiredFailures atomic.Uint64
	// retiredFenced are the fenced writes of recorders stopped since (nodes.go).
	retiredFenced atomic.Uint64
}

// reasons lists why the catalog degrades the system; none when it is sound. Public
// (/healthz): no camera ids, no paths.
func (h *catalogHealth) reasons() []string {
	var out []string
	if h.rebuild != nil {
		r := "catalog rebuilt at start from a damaged file (see the log)"
		if lost := h.rebuild.Salvage.Lost(); len(lost) > 0 {
			r += fmt.Sprintf("; rows lost from %d table(s)", len(lost))
		}
		if h.rebuild.Held {
			r += "; retention held until `townwatch retention confirm`"
		}
		out = append(out, r)
	}
	if h.cat != nil && h.cat.Damaged() != "" {
		out = append(out, "catalog file damaged while running: recording goes on, the next start rebuilds the catalog")
	}
	if n := h.writeFailures(); n > 0 {
		out = append(out, fmt.Sprintf("%d catalog write(s) failed: footage is recorded, the next start indexes it", n))
	}
	return out
}

func (h *catalogHealth) writeFailures() uint64 {
	n := h.retiredFailures.Load()
	if h.cams == nil {
		return n
	}
	for _, u := range h.cams.units() {
		n += u.writer.Stats().CatalogFailures
	}
	return n
}

// defaultCatalogCheck is how often serve runs PRAGMA quick_check on the live catalog
// (serve -catalog-check). It reads every page once: on a catalog of a few hundred MB a
// second or two of reads every ten minutes.
const defaultCatalogCheck = 10 * time.Minute

// watch checks the live catalog every interval (0: never) and logs the first damage it
// finds as an error; /healthz and the metrics show it from then on (Catalog.Damaged).
func (h *catalogHealth) watch(interval time.Duration, log *slog.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		if interval <= 0 {
			return nil
		}
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
			err := h.cat.QuickCheck(ctx)
			switch {
			case err == nil, ctx.Err() != nil:
			case catalog.IsCorrupt(err):
				log.Error("catalog damaged while running: recording goes on (segments are indexed from the files at the next start, which rebuilds the catalog); restart townwatch when convenient",
					"err", err)
				return nil // checked again at the next start
			default:
				log.Warn("catalog check failed", "err", err)
			}
		}
	}
}

// metrics are the catalog's health in Prometheus form.
func (h *catalogHealth) metrics() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "townwatch_catalog_rebuilds_total",
			Help: "Catalogs rebuilt from a damaged file by this process (at start).",
		}, func() float64 { return boolValue(h.rebuild != nil) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "townwatch_catalog_degraded",
			Help: "1 while the catalog was rebuilt at start, is damaged, or failed writes (see /healthz for why).",
		}, func() float64 { return boolValue(len(h.reasons()) > 0) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "townwatch_catalog_write_failures_total",
			Help: "Catalog writes of the recorders that failed for another reason than a full disk; the footage was recorded anyway.",
		}, func() float64 { return float64(h.writeFailures()) }),
	}
}

// recordRebuild appends the access-log row that says the catalog was rebuilt: what was
// salvaged, what was lost, and how many segment files were indexed again, so that the
// gap a verification finds in the chain is itself explained in the log.
func recordRebuild(ctx context.Context, log *access.AuditLog, rb *recorder.CatalogRebuild, rec recorder.RecoveryReport, actor string) error {
	details, err := json.Marshal(map[string]any{
		"aside": rb.Aside, "reason": rb.Reason, "salvage": rb.Salvage, "lost_tables": rb.Salvage.Lost(),
		"retention_held": rb.Held, "segments_adopted": len(rec.Adopted), "segments_unadoptable": len(rec.Failed),
	})
	if err != nil {
		return err
	}
	outcome := catalog.AuditOK
	if len(rb.Salvage.Lost()) > 0 {
		outcome = catalog.AuditError
	}
	_, err = log.Append(ctx, catalog.AuditEntry{Time: time.Now(), Actor: actor, Action: access.AuditCatalogRebuilt,
		Outcome: outcome, Reason: "catalog damaged: " + rb.Reason, Details: details})
	return err
}

// runCatalog is `townwatch catalog rebuild -config FILE`: the start-up rebuild by hand,
// with the server stopped; and `townwatch catalog migrate` (runCatalogMigrate).
func runCatalog(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "migrate" {
		return runCatalogMigrate(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "rebuild" {
		fmt.Fprintln(stderr, "usage: townwatch catalog rebuild -config FILE [-force]")
		fmt.Fprintln(stderr, "       townwatch catalog migrate -from FILE -to postgres://...")
		return exitUsage
	}
	fs := newFlagSet("catalog rebuild", stderr)
	path := fs.String("config", "", "configuration file (required)")
	force := fs.Bool("force", false, "rebuild even when PRAGMA quick_check finds the catalog sound")
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return code
	}
	cfg, code, ok := loadConfig("catalog rebuild", *path, stderr)
	if !ok {
		return code
	}
	if err := rebuildCatalog(ctx, cfg, *force, stdout); err != nil {
		fmt.Fprintf(stderr, "catalog rebuild: %v\n", err)
		return exitFailure
	}
	return exitOK
}

func rebuildCatalog(ctx context.Context, cfg *configs.Config, force bool, stdout io.Writer) error {
	if cfg.Catalog.URL != "" {
		return errors.New("catalog.url names a PostgreSQL database: rebuild repairs the SQLite file under storage.path only (PostgreSQL is restored from its own backups)")
	}
	lock, err := lockStorage(cfg.Storage.Path)
	if err != nil {
		if errors.Is(err, errStorageBusy) {
			return fmt.Errorf("%w: stop `townwatch serve` first (the running server rebuilds a damaged catalog itself at its next start)", err)
		}
		return err
	}
	defer lock.Close()
	path := filepath.Join(cfg.Storage.Path, catalogFile)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("storage.path %s holds no catalog: %w", cfg.Storage.Path, err)
	}
	reason := "rebuilt by hand (`townwatch catalog rebuild`)"
	switch err := catalog.Check(ctx, path); {
	case err == nil && !force:
		fmt.Fprintln(stdout, "The catalog passes PRAGMA quick_check; nothing to rebuild (-force rebuilds it anyway).")
		return nil
	case err != nil && !catalog.IsCorrupt(err):
		return err
	case err != nil:
		reason = err.Error()
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cat, rb, err := recorder.RebuildCatalog(ctx, path, reason, log)
	if err != nil {
		return err
	}
	defer cat.Close()
	st, err := recorder.OpenStorage(cfg.Storage.Path)
	if err != nil {
		return err
	}
	defer st.Close()
	rec, err := recorder.Recover(ctx, st, cat, log)
	if err != nil {
		return err
	}
	audit, err := openAuditLog(ctx, cfg, cat)
	if err != nil {
		return err
	}
	if err := recordRebuild(ctx, audit, rb, rec, access.CLIActor()); err != nil {
		return fmt.Errorf("access log: %w", err)
	}
	fmt.Fprintln(stdout, rb.Summary())
	fmt.Fprintf(stdout, "Segment files indexed from disk: %d", len(rec.Adopted))
	if len(rec.Failed) > 0 {
		fmt.Fprintf(stdout, " (%d could not be read and are left in place)", len(rec.Failed))
	}
	fmt.Fprintln(stdout)
	return nil
}
