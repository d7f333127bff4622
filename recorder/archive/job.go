// Package archive is the archive tier: closed segments older than storage.archive.after
// move to an S3-compatible bucket, and are read from there transparently afterwards
// (recorder.Storage and Tier).
//
// A segment moves in four steps, each safe to repeat after a crash at any point:
//
//  1. PUT the local file as the object named by the segment's catalog path (skipped when
//     the object is already there and intact: a copy an interrupted pass left, adopted).
//  2. Read the object back and compare its SHA-256 and length with the catalog row. A
//     server-side checksum is not trusted; only the bytes read back are.
//  3. Mark the row archived (catalog.MarkArchived, one transaction).
//  4. Remove the local file (its .thumbs sidecar stays local; retention removes it).
//
// Until step 3 the row says "local" and the local file is untouched, so any failure
// leaves the footage where it was; after step 3 the object is known intact, so the local
// copy is redundant and removing it (now, at the next pass or by recorder.Recover) loses
// nothing. See docs/archive.md for the argument step by step.
package archive

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// Job moves segments to the bucket and removes the objects of deleted archived segments.
type Job struct {
	Catalog *catalog.Catalog
	Storage *recorder.Storage
	Bucket  *Bucket
	// After is how old (since its end) a closed segment must be to move.
	After time.Duration
	Now   func() time.Time // time.Now if nil
	Log   *slog.Logger

	// afterPut, when set (tests), runs between the PUT and the read-back.
	afterPut func(key string)

	stats Stats
	mu    sync.Mutex
	last  PassReport
	ready bool // the bucket is known to exist (Pass's goroutine only)
}

// Stats are the job's running totals, for metrics.
type Stats struct {
	ArchivedSegments atomic.Int64
	ArchivedBytes    atomic.Int64 // bytes uploaded and verified
	Failures         atomic.Int64 // segments that failed a step (retried at the next pass)
	FailedPasses     atomic.Int64 // passes that ended in an error (the store down, say)
	ObjectsRemoved   atomic.Int64 // objects of deleted archived segments
}

// PassReport is what one pass did and what is left.
type PassReport struct {
	At                 time.Time
	Archived, Failed   int
	Err                error // the first failure, if any
	BacklogSegments    int64 // due segments still on the local disk after the pass
	BacklogBytes       int64
	PendingObjectsLeft bool // deleted archived segments whose object is not removed yet
}

// batch is how many rows a pass reads at once.
const batch = 100

// Stats returns the job's totals.
func (j *Job) Stats() *Stats { return &j.stats }

// Last returns the latest pass's report.
func (j *Job) Last() PassReport {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.last
}

func (j *Job) now() time.Time {
	if j.Now != nil {
		return j.Now()
	}
	return time.Now()
}

func (j *Job) log() *slog.Logger {
	if j.Log != nil {
		return j.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Run makes a pass at once (start-up: it finishes what a crash interrupted) and then
// every interval until ctx ends. A failed pass is logged; the next one retries it.
func (j *Job) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		j.Pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Pass removes the objects of deleted archived segments, then moves every due segment. It
// stops at the first error that is not one segment's own (the store or the catalog
// unreachable); a segment's own failure is counted, logged and retried next pass.
func (j *Job) Pass(ctx context.Context) PassReport {
	rep := PassReport{At: j.now()}
	if !j.ready {
		rep.Err = j.Bucket.Ensure(ctx)
		j.ready = rep.Err == nil
	}
	if rep.Err == nil {
		rep.Err = j.removeDeletedObjects(ctx, &rep)
	}
	if rep.Err == nil {
		rep.Err = j.moveDue(ctx, &rep)
	}
	if n, b, err := j.Catalog.ArchiveBacklog(ctx, j.now().Add(-j.After)); err == nil {
		rep.BacklogSegments, rep.BacklogBytes = n, b
	}
	if rep.Err == nil && rep.Failed > 0 {
		rep.Err = fmt.Errorf("%d segments not archived; see the log", rep.Failed)
	}
	if rep.Err != nil {
		j.stats.FailedPasses.Add(1)
		j.log().Error("archive: pass failed; local footage stays and the next pass retries", "err", rep.Err,
			"backlog_segments", rep.BacklogSegments)
	}
	j.mu.Lock()
	j.last = rep
	j.mu.Unlock()
	return rep
}

// moveDue moves the due segments, oldest first. The ones that failed stay candidates, so
// each read asks for as many more as have failed, and skips them.
func (j *Job) moveDue(ctx context.Context, rep *PassReport) error {
	failed := map[int64]bool{}
	for {
		limit := batch + len(failed)
		segs, err := j.Catalog.ArchiveCandidates(ctx, j.now().Add(-j.After), limit)
		if err != nil {
			return err
		}
		moved := 0
		for _, s := range segs {
			if failed[s.ID] {
				continue
			}
			err := j.move(ctx, s)
			if err == nil {
				rep.Archived++
				moved++
				continue
			}
			j.stats.Failures.Add(1)
			rep.Failed++
			failed[s.ID] = true
			j.log().Error("archive: segment not moved; its local file stays and the next pass retries", "segment", s.ID, "path", s.Path, "err", err)
			if !errors.Is(err, errSegment) {
				return err // the store or the catalog failed, not this segment: wait for the next pass
			}
		}
		if moved == 0 || len(segs) < limit {
			return nil
		}
	}
}

// errSegment marks a failure of one segment (its bytes, its row), as opposed to the
// store or the catalog failing for all of them.
var errSegment = errors.New("segment")

// move takes one segment through the four steps (see the package doc).
func (j *Job) move(ctx context.Context, s catalog.Segment) error {
	intact, err := j.verify(ctx, s)
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, errSegment) {
		return err
	}
	if !intact {
		if err := j.put(ctx, s); err != nil {
			return err
		}
		if j.afterPut != nil {
			j.afterPut(s.Path)
		}
		if intact, err = j.verify(ctx, s); err != nil {
			return err
		}
	}
	err = j.Catalog.MarkArchived(ctx, s.ID, s.SHA256, j.now())
	if errors.Is(err, catalog.ErrNotFound) {
		// Retention deleted the row while it was uploaded: the object is nobody's.
		return errors.Join(fmt.Errorf("%w %d was deleted while archived", errSegment, s.ID), j.Bucket.Remove(ctx, s.Path))
	}
	if errors.Is(err, catalog.ErrDigestMismatch) || errors.Is(err, catalog.ErrSegmentOpen) {
		return fmt.Errorf("%w %d changed while archived: %w", errSegment, s.ID, err)
	}
	if err != nil {
		return err
	}
	j.stats.ArchivedSegments.Add(1)
	j.stats.ArchivedBytes.Add(s.Bytes)
	if err := j.Storage.RemoveLocalCopy(s.Path); err != nil {
		// Archived and verified; the copy is removed by recorder.Recover at the next start.
		return fmt.Errorf("%w %d archived, but its local copy stays: %w", errSegment, s.ID, err)
	}
	return nil
}

// verify reads the object back and says whether it is exactly the catalog row's bytes. A
// missing object wraps fs.ErrNotExist; different bytes wrap errSegment.
func (j *Job) verify(ctx context.Context, s catalog.Segment) (bool, error) {
	sum, n, err := j.Bucket.Digest(ctx, s.Path)
	if err != nil {
		return false, err
	}
	if n != s.Bytes || sum != s.SHA256 {
		return false, fmt.Errorf("%w %d: the object read back has %d bytes and SHA-256 %s; the catalog has %d bytes and %s",
			errSegment, s.ID, n, sum, s.Bytes, s.SHA256)
	}
	return true, nil
}

// put uploads the local file; a file whose size differs from the row is not uploaded.
func (j *Job) put(ctx context.Context, s catalog.Segment) error {
	f, err := j.Storage.OpenLocal(s.Path)
	if err != nil {
		return fmt.Errorf("%w %d: open the local file: %w", errSegment, s.ID, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if info.Size() != s.Bytes {
		return fmt.Errorf("%w %d: the local file has %d bytes, the catalog %d", errSegment, s.ID, info.Size(), s.Bytes)
	}
	return j.Bucket.Put(ctx, s.Path, f, s.Bytes)
}

// removeDeletedObjects removes the objects of archived segments that were deleted (row
// first), clearing each deletion's pending mark once its object is gone.
func (j *Job) removeDeletedObjects(ctx context.Context, rep *PassReport) error {
	for {
		ds, err := j.Catalog.PendingObjectDeletions(ctx, batch)
		if err != nil {
			return err
		}
		for _, d := range ds {
			if err := j.Bucket.Remove(ctx, d.Path); err != nil {
				rep.PendingObjectsLeft = true
				return err
			}
			if err := j.Catalog.ObjectDeleted(ctx, d.ID); err != nil {
				rep.PendingObjectsLeft = true
				return err
			}
			j.stats.ObjectsRemoved.Add(1)
		}
		if len(ds) < batch {
			return nil
		}
	}
}
