package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// auditHousekeepingEvery is how often the head of the access log is logged and old rows
// purged: daily, as the access-control issue asks for the head hash.
const auditHousekeepingEvery = 24 * time.Hour

// auditHousekeeping logs the access log's head at start, daily and at shutdown — so a
// log cut short can be compared with what the server said in its own log — and purges
// rows past audit.retention daily, oldest first.
type auditHousekeeping struct {
	cat *catalog.Catalog
	log *access.AuditLog
	cfg configs.Audit
	out *slog.Logger
	now func() time.Time
}

func (h *auditHousekeeping) run(ctx context.Context) error {
	h.logHead(ctx, "start")
	h.purge(ctx)
	tick := time.NewTicker(auditHousekeepingEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			h.logHead(context.WithoutCancel(ctx), "shutdown")
			return nil
		case <-tick.C:
			h.purge(ctx)
			h.logHead(ctx, "daily")
		}
	}
}

func (h *auditHousekeeping) logHead(ctx context.Context, when string) {
	id, hash, n, err := h.log.Head(ctx)
	if err != nil {
		h.out.Error("audit log head", "err", err)
		return
	}
	h.out.Info("audit log head", "at", when, "rows", n, "head_id", id, "head_hash", hash)
}

// expired is the retention rule for one row: audit.retention when set, else the end of
// the calendar year after the row's own year.
func (h *auditHousekeeping) expired(now time.Time) func(row time.Time) bool {
	if h.cfg.Retention > 0 {
		keep := h.cfg.Retention.Std()
		return func(row time.Time) bool { return !row.Add(keep).After(now) }
	}
	return func(row time.Time) bool {
		end := time.Date(row.UTC().Year()+2, 1, 1, 0, 0, 0, 0, time.UTC)
		return !now.Before(end)
	}
}

// purge deletes expired rows in bounded batches (the catalog leaves a purge row in the
// chain for each); a failure is logged and retried the next day.
func (h *auditHousekeeping) purge(ctx context.Context) {
	now := h.now()
	var total int64
	for {
		n, err := h.cat.PurgeAudit(ctx, h.log.Key(), h.expired(now), now, access.ActorSystem)
		if err != nil {
			h.out.Error("audit log purge", "err", err)
			return
		}
		total += n
		if n == 0 {
			break
		}
	}
	if total > 0 {
		h.out.Info("audit log rows past their retention purged", "rows", total)
	}
}

// recordErasure is retention's OnErase hook: one access-log row per erasure pass,
// pointing at the deletion rows it wrote.
func recordErasure(log *access.AuditLog, out *slog.Logger) func(context.Context, recorder.SweepReport) {
	return func(ctx context.Context, rep recorder.SweepReport) {
		first, last := rep.Deleted[0].ID, rep.Deleted[0].ID
		cameras := map[string]int{}
		for _, d := range rep.Deleted {
			first, last = min(first, d.ID), max(last, d.ID)
			cameras[d.Camera]++
		}
		details, _ := json.Marshal(map[string]any{"deletions_from": first, "deletions_to": last, "segments": len(rep.Deleted),
			"bytes": rep.DeletedBytes, "per_camera": cameras, "held": rep.Held, "confirmed": rep.Confirmed})
		if _, err := log.Append(ctx, catalog.AuditEntry{Time: rep.At, Actor: access.ActorSystem, Action: access.AuditRetentionPass,
			Outcome: catalog.AuditOK, Details: details}); err != nil {
			out.Error("audit: recording a retention pass", "err", err)
		}
	}
}
