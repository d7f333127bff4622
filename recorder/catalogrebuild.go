package recorder

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
)

// CatalogRebuild says what RebuildCatalog did with a damaged catalog.
type CatalogRebuild struct {
	Reason  string                `json:"reason"` // why: the check's or the open's error
	Aside   string                `json:"aside"`  // where the damaged file was moved
	At      time.Time             `json:"at"`
	Salvage catalog.SalvageReport `json:"salvage"`
	// Held: the evidence locks could not all be read, so retention is held (forced)
	// until an administrator confirms with `townwatch retention confirm`.
	Held bool `json:"retention_held"`
}

// Summary is one line for people: where the old file is, what was lost.
func (r *CatalogRebuild) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "catalog rebuilt: the damaged file is kept as %s; salvaged %s", r.Aside, r.Salvage)
	if lost := r.Salvage.Lost(); len(lost) > 0 {
		fmt.Fprintf(&b, "; rows lost from %s", strings.Join(lost, ", "))
	} else {
		b.WriteString("; no row lost")
	}
	if r.Held {
		b.WriteString("; evidence locks may be lost: retention deletes nothing until `townwatch retention confirm`")
	}
	return b.String()
}

// OpenCatalog opens the catalog at path after checking it (PRAGMA quick_check). A
// damaged catalog, whether the check or the open finds it, is rebuilt (RebuildCatalog)
// and the report returned; nil when the catalog was sound. Start-up must then run
// Recover, which indexes the segment files the new catalog does not know yet.
//
// A PostgreSQL catalog (path is a postgres:// URL) is only opened: the server checks and
// keeps its own storage, and there is no file to move aside.
func OpenCatalog(ctx context.Context, path string, log *slog.Logger) (*catalog.Catalog, *CatalogRebuild, error) {
	if catalog.IsPostgresURL(path) {
		cat, err := catalog.Open(ctx, path)
		return cat, nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	err := catalog.Check(ctx, path)
	if err == nil {
		log.Debug("catalog checked", "path", path, "took", time.Since(start).Round(time.Millisecond))
		var cat *catalog.Catalog
		if cat, err = catalog.Open(ctx, path); err == nil {
			return cat, nil, nil
		}
	}
	if !catalog.IsCorrupt(err) {
		return nil, nil, err
	}
	log.Error("catalog is damaged; moving it aside and rebuilding it", "path", path, "err", err)
	return RebuildCatalog(ctx, path, err.Error(), log)
}

// RebuildCatalog replaces the (closed) catalog at path: it moves the file and its -wal
// and -shm aside (catalog.MoveAside, kept for forensics), creates a new catalog, copies
// what can be read of the old one into it (catalog.Salvage: accounts, sessions, evidence
// locks, the retention hold, events, deletions and the access log), and, when the
// evidence locks could not all be read, sets a forced retention hold so that nothing is
// deleted until an administrator confirms. Segments are not copied: the caller runs
// Recover, which indexes every segment file from its own content. One ERROR line names
// the file kept aside and what was lost.
func RebuildCatalog(ctx context.Context, path, reason string, log *slog.Logger) (*catalog.Catalog, *CatalogRebuild, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rep := &CatalogRebuild{Reason: reason, At: time.Now().UTC()}
	aside, err := catalog.MoveAside(path, rep.At)
	if err != nil {
		return nil, nil, err
	}
	rep.Aside = aside
	cat, err := catalog.Open(ctx, path)
	if err != nil {
		return nil, nil, fmt.Errorf("catalog: create a new catalog after moving the damaged one to %s: %w", aside, err)
	}
	fail := func(err error) (*catalog.Catalog, *CatalogRebuild, error) {
		cat.Close()
		return nil, nil, err
	}
	if rep.Salvage, err = catalog.Salvage(ctx, aside, cat); err != nil {
		return fail(err)
	}
	if !rep.Salvage.Complete("locks") {
		rep.Held = true
		hold := catalog.RetentionHold{Since: rep.At, Forced: true,
			Reason: "catalog rebuilt from a damaged file (" + aside + ") that could not be read in full: evidence locks may be lost"}
		if err := cat.SetRetentionHold(ctx, hold); err != nil {
			return fail(err)
		}
	}
	log.Error(rep.Summary(), "aside", aside, "lost_tables", strings.Join(rep.Salvage.Lost(), ","),
		"retention_held", rep.Held, "reason", reason)
	return cat, rep, nil
}
