package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/archive"
)

// archivePassInterval is how often the archive job looks for due segments: every
// minute, or every `after` when that is shorter. Segments become due at `after` (days, as
// a rule), so a minute's delay is nothing; it also paces the retries while the store is
// unreachable.
func archivePassInterval(after time.Duration) time.Duration { return min(after, time.Minute) }

// attachArchive makes storage.archive's bucket readable through st (nil, nil without
// one). It reads the keys from their files and does not reach the store: a store that is
// down does not keep townwatch from starting, it only delays archiving.
func attachArchive(cfg *configs.Config, st *recorder.Storage) (*archive.Tier, *archive.Bucket, error) {
	a := cfg.Storage.Archive
	if a == nil {
		return nil, nil, nil
	}
	e, err := a.Endpoint()
	if err != nil {
		return nil, nil, fmt.Errorf("storage.archive.url: %w", err)
	}
	access, secret, err := a.Keys()
	if err != nil {
		return nil, nil, err
	}
	b, err := archive.New(archive.Options{Endpoint: e.Host, Secure: e.Secure, Bucket: e.Bucket,
		Region: a.RegionOrDefault(), AccessKey: access, SecretKey: secret})
	if err != nil {
		return nil, nil, err
	}
	tier, err := archive.NewTier(b, cfg.Storage.Path, a.CacheBytes())
	if err != nil {
		return nil, nil, err
	}
	st.SetArchive(tier)
	return tier, b, nil
}

// openArchive wires the archive tier into the system: reads, and the job that moves due
// segments, run beside the cameras.
func (sys *system) openArchive(cfg *configs.Config, log *slog.Logger) error {
	tier, b, err := attachArchive(cfg, sys.storage)
	if err != nil || tier == nil {
		return err
	}
	sys.archiveTier = tier
	sys.archiveJob = &archive.Job{Catalog: sys.catalog, Storage: sys.storage, Bucket: b,
		After: cfg.Storage.Archive.After.Std(), Log: log}
	sys.extra = append(sys.extra, func(ctx context.Context) error {
		sys.archiveJob.Run(ctx, archivePassInterval(sys.archiveJob.After))
		return nil
	})
	return nil
}

// archiveMetrics are the archive job's counters and its backlog (none without an archive).
func (sys *system) archiveMetrics() []prometheus.Collector {
	j := sys.archiveJob
	if j == nil {
		return nil
	}
	s := j.Stats()
	counter := func(name, help string, v func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v()) })
	}
	gauge := func(name, help string, v func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, v)
	}
	return []prometheus.Collector{
		counter("townwatch_archive_segments_total", "Segments moved to the archive bucket (uploaded, read back, verified).", s.ArchivedSegments.Load),
		counter("townwatch_archive_bytes_total", "Bytes moved to the archive bucket and verified by reading them back.", s.ArchivedBytes.Load),
		counter("townwatch_archive_failures_total", "Segments whose move failed a step (kept locally, retried next pass).", s.Failures.Load),
		counter("townwatch_archive_failed_passes_total", "Archive passes that ended in an error (the store unreachable, say).", s.FailedPasses.Load),
		counter("townwatch_archive_objects_removed_total", "Objects of deleted archived segments removed from the bucket by the job.", s.ObjectsRemoved.Load),
		gauge("townwatch_archive_backlog_segments", "Segments due for the archive still on the local disk after the latest pass.",
			func() float64 { return float64(j.Last().BacklogSegments) }),
		gauge("townwatch_archive_backlog_bytes", "Bytes due for the archive still on the local disk after the latest pass.",
			func() float64 { return float64(j.Last().BacklogBytes) }),
		gauge("townwatch_archive_last_pass_ok", "1 if the latest archive pass finished without an error, 0 if not (or none yet).",
			func() float64 {
				if l := j.Last(); !l.At.IsZero() && l.Err == nil {
					return 1
				}
				return 0
			}),
		gauge("townwatch_archive_cache_bytes", "Bytes of archived segments cached locally for whole-segment reads.",
			func() float64 { return float64(sys.archiveTier.CacheBytes()) }),
	}
}
