package recorder

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// Deletion reasons, as recorded in the catalog, logged and used as the metrics label. A
// segment that several rules would delete is recorded under the first in this order.
const (
	ReasonAge          = "age"           // older than its camera's record.retention
	ReasonCameraQuota  = "camera_quota"  // its camera is over record.quota
	ReasonStorageQuota = "storage_quota" // all footage together is over storage.quota
	ReasonMinFree      = "min_free"      // the filesystem has less free space than storage.min_free
)

const (
	// sweepInterval is how often Retention sweeps on its own. 30 s is half the default
	// segment length: age deletion trails a segment's expiry by at most half a segment,
	// and in steady state one sweep has at most about one segment per camera to delete,
	// which keeps ordinary sweeps under the mass-deletion guard's floor. A steady-state
	// sweep is a handful of indexed catalog reads and one statfs. A full disk does not
	// wait for it: the Writer calls Poke.
	sweepInterval = 30 * time.Second

	// pokeGap is the least time between a sweep and one a Poke asks for. A paused Writer
	// pokes at every retry (diskRetryInterval, 2 s) and cannot resume sooner than its
	// next retry anyway; with many cameras paused out of phase their pokes would
	// otherwise chain sweeps back to back on a 2-core box.
	pokeGap = diskRetryInterval

	// massDeletionPercent is the mass-deletion guard: a sweep whose plan would delete more
	// than this share of all recorded bytes at once deletes only what min_free strictly
	// needs and waits for `townwatch retention confirm`. Ordinary sweeps delete a tiny
	// fraction (30 s of footage out of days); a plan of a tenth means something changed at
	// once — a lowered quota or retention, a clock that jumped forward, a box that was off
	// for weeks — and deleting evidence is the one thing that cannot be undone.
	massDeletionPercent = 10

	// guardGrace is the floor under the guard for age: footage whose retention ran out
	// less than guardGrace ago is ordinary expiry and never counts towards the guard,
	// however small the archive (a motion-only camera with three segments in a week must
	// not raise an alert because two of them expire in one sweep). Ten minutes covers a
	// restart or an update and a catalog that was busy for a few sweeps; a box that was
	// off longer, or a clock that jumped further, is guarded.
	guardGrace = 10 * time.Minute

	// countInterval is how old the per-camera byte counts may get when no record.quota
	// needs them exact at every sweep: they only feed Status (and so the stored-bytes
	// metric) and the list of cameras to sweep. Counting reads every segment row
	// (catalog.BytesByCamera scans the table: tens of milliseconds per 40 000 segments,
	// a week of four cameras), which would make every steady-state sweep cost as much as
	// the archive is large. Between counts, Status subtracts what retention deleted but
	// does not see what was recorded. With a record.quota or a storage.quota (whose
	// shares weigh each camera's bytes) the count runs at every sweep, in place of the
	// total storage.quota needed anyway; that stays cheap only once the catalog keeps
	// per-camera totals.
	countInterval = 5 * time.Minute

	// minFreePasses bounds how often one sweep measures the disk again and deletes more
	// when min_free is still short after its plan (see topUpMinFree). Each pass deletes
	// at least one segment, far more than the catalog writes meanwhile, so the second
	// pass settles it; the bound keeps a disk that something else is filling from
	// turning one sweep into an endless one.
	minFreePasses = 3

	// planBatch is how many deletion candidates one catalog query reads. A steady-state
	// sweep needs one or two per camera; a rule that needs more reads again with four
	// times the limit, so even a plan of a million segments takes ten queries.
	planBatch = 16
)

// Retention deletes footage when, and only when, the configured rules say so:
//
//  1. per camera, footage whose end is older than record.retention (reason age), except
//     footage that event retention keeps (below);
//  2. per camera, the oldest footage while the camera is over record.quota (camera_quota);
//  3. while all footage together is over storage.quota, the oldest footage of the camera
//     that holds the most (storage_quota; see "Shares of storage.quota");
//  4. the oldest footage of all cameras while the filesystem has less free space than
//     storage.min_free (min_free).
//
// Whichever rule bites first deletes, always oldest first within a camera.
//
// # Event retention
//
// A camera whose record.event_retention is longer than its record.retention keeps a
// segment past its retention, up to event_retention, if it overlaps the span of one of
// the camera's motion events: from record.pre_roll before the event's start to
// record.post_roll after its end (an event still going on reaches to now). This applies
// in continuous mode (the footage around events outlives the rest) and in motion mode
// (where all footage is around events, so event_retention is simply its age limit).
// The extension comes from spare room only: quotas and min_free still delete oldest
// first (storage.quota within the camera it takes from), and event footage kept past
// retention is the oldest there is, so it goes first.
// Favouring it instead would cut holes into recent continuous footage, the footage an
// incident reported tomorrow needs, which no detector flagged. Evidence locks stay
// absolute either way. Cameras no longer configured get no event retention.
//
// Cost: the age rule walks a camera's footage past retention oldest first, so a sweep
// reads every segment that event retention keeps, and that camera's events over the same
// time, once (a few thousand rows for a month of a busy camera). Retention never deletes an
// open segment (it is still being written, and the Writer owns it) and never a segment
// that overlaps an evidence lock active at the current time; the catalog enforces both
// again inside the deleting transaction, so a lock added during a sweep wins. Quotas
// count every byte on disk, open and locked footage included, because that is what fills
// the disk; when only open or locked footage is left, a quota stays exceeded rather than
// evidence being lost, and a full disk sets RetentionStatus.DiskFullLockedOnly so that
// recording shows it is paused.
//
// Every deletion is recorded in the catalog first (DeleteSegment, one transaction that
// also re-checks open and locked), then the file is removed: a crash in between leaves a
// recorded deletion whose file Recover removes at start-up, never a row pointing at
// nothing. A file that cannot be removed is retried at every sweep. Archived segments
// (storage.archive) are deleted the same way, row first, then their object; the
// deletion stays marked until the object is gone (see removeObject). The rules apply to
// both tiers alike, except that the space rules (quotas, min_free) count and delete
// only footage on the local disk: deleting archived footage frees no local space.
//
// # Shares of storage.quota
//
// Every camera is entitled to an equal share of storage.quota, and a share a camera does
// not need is open to the others. Concretely, each deletion the quota needs takes the
// oldest deletable segment of the camera that holds the most bytes (ties: the older
// segment). Since the age rule has already removed what is past each retention, a camera
// holds at most what its retention needs at its bitrate; the quota trims the largest
// holders down towards each other and never touches a camera while another holds more.
// So with one 8 Mbit/s camera and three 1 Mbit/s ones, all on 7 days, and a quota too
// small for all of it, the three keep their 7 days as long as that fits in a quarter of
// the quota each, and the big one keeps what is left. Only when the quota cannot hold
// even equal shares does every large camera come down to the same bytes.
//
// Equal bytes rather than shares proportional to each camera's need (bitrate times
// retention): proportional shares would cut every camera by the same fraction, the small
// cameras included, which is the loss this rule exists to prevent; and an equal share
// is what an operator can predict from the configuration alone ("each of my N cameras
// gets at least a quota/N"). An operator who wants a camera to take more or less sets
// its record.quota, which applies first (rule 2); what a camera's record.quota leaves
// unused of its share is open to the others like any other unused share.
//
// Bytes under an active evidence lock count against no camera's share: they come off the
// quota before it is shared, so an incident does not make its camera lose its recent
// footage first. Open segments count (they are the camera's newest footage, and small).
// Cameras no longer configured take part like any camera. The bytes weighed are counted
// at every sweep under a storage.quota.
//
// min_free stays oldest first across all cameras. It is the floor that protects the disk
// from anything that fills it (other data, the catalog, a quota set larger than the
// disk), and the mass-deletion guard lets its minimal oldest-first need through even
// while holding everything else; set storage.quota below the disk's size so that the
// shares decide before min_free does.
//
// # Retention shortfall
//
// A camera falls short when footage inside its record.retention was deleted for space
// (camera_quota, storage_quota or min_free): it then keeps history only from the end of
// the newest such footage to now. Status().Shortfall has, per configured camera, the
// retention, what it keeps and why (townwatch_retention_shortfall_seconds is retention
// less kept); a warning naming the camera, its retention, what it keeps, the reason and
// what to change is logged when the shortfall first exceeds one segment (the quotas
// delete whole segments) or its reason changes, and one line when it is back to zero.
// The newest deletions for space are read from the catalog's deletion log once per run,
// so a restart, or the configuration change it applies, does not forget a hole that is
// still inside a retention; a new run logs a shortfall it finds once more. A camera that
// recorded less because it was off or motion-triggered does not fall short: only
// deletions count.
//
// # Mass-deletion guard
//
// Each sweep plans all four rules first. If the plan would delete more than
// massDeletionPercent of the recorded bytes, Retention holds: it deletes only the
// minimal oldest-first set that restores min_free (a full disk stops every camera, so
// that need is not held back), persists the hold in the catalog (a restart keeps it),
// logs one error line and shows it in Status until an administrator runs `townwatch
// retention confirm`. The first sweep after the confirmation plans again and executes
// that plan in full, then clears the hold. If a later plan no longer exceeds the guard
// (the quota was put back, the clock was corrected), the hold is lifted without a
// confirmation: what is left is ordinary deletion. Two floors keep ordinary operation
// from tripping it, however small the archive: footage whose retention ran out within
// guardGrace does not count, and neither does a camera's deletion when the plan deletes
// only one segment of that camera (one sweep interval of recording can need that much).
//
// A lock that expires makes its footage deletable at once, usually long past its
// retention; on a small archive that can be more than the guard allows and needs a
// confirmation like any other mass deletion.
//
// # Full disk
//
// min_free is measured, not computed: after deleting, a sweep measures the disk again and
// deletes more while it is still short (topUpMinFree), since the catalog's own writes,
// the recorders and files still open for export take space meanwhile. A disk filled to
// the last byte would leave the catalog no room to record a deletion, so Retention keeps
// a reserve for it (catalogReserveFile) and releases it when it finds the disk full.
//
// # Cameras no longer configured
//
// Footage of a camera that was removed from the configuration may be evidence nobody has
// locked yet. It is kept for the longest record.retention of any configured camera (the
// longest any footage is kept by policy; configs.DefaultRetention when no camera is
// configured) and has no per-camera quota; storage.quota and min_free, which protect the
// disk, apply to it like to any footage.
//
// # Clock
//
// Ages are measured against the injected wall clock (now), so a clock that jumps forward
// makes footage look old: that is what the guard is for. Locks are judged active at the
// same clock. Sweeps are timed by the monotonic clock, which does not jump.
type Retention struct {
	// OnErase, when set (before Run), is told of every sweep of Run that deleted footage,
	// after the deletions are recorded: the access log keeps one row per erasure pass.
	OnErase func(ctx context.Context, rep SweepReport)

	cat   *catalog.Catalog
	st    *Storage
	log   *slog.Logger
	now   func() time.Time
	space func() (DiskSpace, error) // Storage.Space; tests substitute a simulated disk

	// cameraPolicy is replaced whole by Reconfigure, between sweeps (under sweepMu).
	cameraPolicy
	storageQuota int64 // 0 = none
	minFree      configs.FreeSpace

	// Shortfall (see "Retention shortfall"): the newest footage each camera lost for
	// space, read from the deletion log once per run, then kept up by execute; and the
	// cameras whose shortfall has been logged, with the reason logged.
	spaceCut       map[string]catalog.NewestDeletion
	spaceCutLoaded bool
	shortLogged    map[string]string

	poke chan struct{}

	// sweepMu serialises sweeps, so a Poke or a test's Sweep never runs next to Run's.
	sweepMu       sync.Mutex
	pendingRemove []string         // files whose deletion is recorded but whose removal failed
	holdLogged    bool             // this process has logged the current hold
	lastCount     map[string]int64 // stored bytes per camera at countedAt, less deletions since
	reserveSeen   bool             // the catalog reserve has existed in this run
	countedAt     time.Time

	mu     sync.Mutex // guards status
	status RetentionStatus
}

// RetentionStatus is a snapshot of Retention for the API and metrics. Byte maps are keyed
// by camera id and are copies.
type RetentionStatus struct {
	// Hold is true while the mass-deletion guard holds a plan back, waiting for
	// `townwatch retention confirm`. HoldSince, HoldReason, HoldPlannedBytes and
	// HoldTotalBytes describe the plan that raised it.
	Hold             bool
	HoldSince        time.Time
	HoldReason       string
	HoldPlannedBytes int64
	HoldTotalBytes   int64

	// DiskFullLockedOnly is true when min_free cannot be reached because everything
	// left on disk is open or under an evidence lock (or is not footage): recording will
	// stop for lack of space and retention cannot help.
	DiskFullLockedOnly bool

	DiskFree, DiskTotal uint64 // the filesystem holding storage.path, after the last sweep
	MinFree             uint64 // storage.min_free in bytes on that filesystem

	// BytesByCamera is what each camera stores, open and locked footage included, as of
	// the last count (every sweep when a camera has a record.quota, else at most
	// countInterval old) less what retention deleted since. Configured cameras are
	// always present.
	BytesByCamera map[string]int64
	LockedBytes   map[string]int64 // closed footage under an active lock

	LastSweep time.Time // wall-clock time of the last sweep (zero before the first)
	LastError string    // the last sweep's error, "" when it succeeded
	Sweeps    uint64    // sweeps run
	Errors    uint64    // sweeps that ended with an error (what failed is retried at the next)

	// DeletedBytes counts the bytes deleted since start, by camera and reason.
	DeletedBytes map[DeletionKey]int64

	// Shortfall says, per configured camera, whether it keeps less history than its
	// record.retention because retention deleted its footage for space.
	Shortfall map[string]Shortfall
}

// Shortfall is how much of its retention one camera lost to space.
type Shortfall struct {
	Retention time.Duration // record.retention
	// Kept is the history the camera keeps: from the end of its newest footage deleted
	// for space (Reason) to now; Retention when no such deletion is within the retention.
	Kept   time.Duration
	Reason string // ReasonStorageQuota, ReasonMinFree or ReasonCameraQuota; "" when none
}

// Short is the shortfall: Retention less Kept, 0 when the camera keeps its retention.
func (s Shortfall) Short() time.Duration { return max(0, s.Retention-s.Kept) }

// DeletionKey names one counter of deleted bytes.
type DeletionKey struct {
	Camera string
	Reason string // one of the Reason constants
}

// SweepReport says what one sweep planned and did.
type SweepReport struct {
	At           time.Time          // the wall-clock time the sweep planned at
	Deleted      []catalog.Deletion // in the order deleted, oldest footage first
	DeletedBytes int64
	Skipped      int   // candidates the catalog refused meanwhile (locked, gone)
	PlannedBytes int64 // what the rules asked for, before the guard
	TotalBytes   int64 // all recorded bytes when planned (see RetentionStatus.BytesByCamera)
	// Held: the guard held the plan back; only min_free's strict need was deleted.
	Held bool
	// Confirmed: an administrator's confirmation released a held plan in this sweep.
	Confirmed          bool
	DiskFullLockedOnly bool
}

// cameraPolicy is what retention keeps of each configured camera.
type cameraPolicy struct {
	retention        map[string]time.Duration // per configured camera
	events           map[string]eventKeep     // configured cameras whose event_retention exceeds retention
	quota            map[string]int64         // per configured camera; 0 = none
	orphanRetention  time.Duration            // cameras with footage but no configuration
	configuredCamera []string
	cameraQuotas     bool // some camera has a record.quota: count bytes at every sweep
	// shortTolerance is the shortfall a warning waits for, per configured camera (its
	// record.segment).
	shortTolerance map[string]time.Duration
}

// NewRetention validates the retention settings of cfg. It starts no goroutine and does
// no I/O; the first sweep reads the catalog (including a hold left by an earlier run).
// now is the wall clock (time.Now outside tests).
func NewRetention(cfg *configs.Config, st *Storage, cat *catalog.Catalog, log *slog.Logger, now func() time.Time) (*Retention, error) {
	if cfg == nil || st == nil || cat == nil || now == nil {
		return nil, errors.New("retention needs a config, storage, catalog and clock")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Retention{
		cat: cat, st: st, log: log, now: now, space: st.Space,
		storageQuota: int64(cfg.Storage.Quota),
		minFree:      cfg.Storage.MinFree,
		poke:         make(chan struct{}, 1),
		lastCount:    map[string]int64{},
		spaceCut:     map[string]catalog.NewestDeletion{},
		shortLogged:  map[string]string{},
	}
	var problems []error
	if cfg.Storage.Quota < 0 {
		problems = append(problems, fmt.Errorf("storage.quota: %d must not be negative", cfg.Storage.Quota))
	}
	if mf := cfg.Storage.MinFree; mf.Bytes < 0 || mf.Percent < 0 || mf.Percent >= 100 {
		problems = append(problems, fmt.Errorf("storage.min_free: %s must be a size or a share from 0%% to below 100%%", mf))
	}
	pol, err := newCameraPolicy(cfg.Cameras)
	if err != nil {
		problems = append(problems, err)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("retention: %w", errors.Join(problems...))
	}
	r.cameraPolicy = pol
	r.status = RetentionStatus{BytesByCamera: map[string]int64{}, LockedBytes: map[string]int64{}, DeletedBytes: map[DeletionKey]int64{},
		Shortfall: map[string]Shortfall{}}
	return r, nil
}

// newCameraPolicy reads the cameras' record settings.
func newCameraPolicy(cams []configs.Camera) (cameraPolicy, error) {
	pol := cameraPolicy{
		retention:       make(map[string]time.Duration, len(cams)),
		events:          map[string]eventKeep{},
		quota:           make(map[string]int64, len(cams)),
		orphanRetention: configs.DefaultRetention.Std(),
		shortTolerance:  make(map[string]time.Duration, len(cams)),
	}
	var problems []error
	longest := time.Duration(0)
	for _, c := range cams {
		ret := c.Record.Retention.Std()
		if ret <= 0 {
			problems = append(problems, fmt.Errorf("cameras[%s].record.retention: %s must be > 0", c.ID, c.Record.Retention))
		}
		if c.Record.Quota < 0 {
			problems = append(problems, fmt.Errorf("cameras[%s].record.quota: %d must not be negative", c.ID, c.Record.Quota))
		}
		pol.retention[c.ID], pol.quota[c.ID] = ret, int64(c.Record.Quota)
		rec := c.Record
		if rec.EventRetention < 0 || rec.PreRoll < 0 || rec.PostRoll < 0 {
			problems = append(problems, fmt.Errorf("cameras[%s].record: event_retention %s, pre_roll %s and post_roll %s must not be negative",
				c.ID, rec.EventRetention, rec.PreRoll, rec.PostRoll))
		} else if rec.EventRetention.Std() > ret {
			pol.events[c.ID] = eventKeep{retention: rec.EventRetention.Std(), preRoll: rec.PreRoll.Std(), postRoll: rec.PostRoll.Std()}
		}
		pol.cameraQuotas = pol.cameraQuotas || c.Record.Quota > 0
		pol.shortTolerance[c.ID] = cmp.Or(c.Record.Segment.Std(), configs.DefaultSegment.Std())
		pol.configuredCamera = append(pol.configuredCamera, c.ID)
		longest = max(longest, ret)
	}
	if longest > 0 {
		pol.orphanRetention = longest
	}
	return pol, errors.Join(problems...)
}

// Reconfigure takes the cameras' record settings of a reloaded configuration
// (retention, quota, event_retention; added and removed cameras). It applies between two
// sweeps, never within one, and asks for a sweep. A removed camera's footage is from now
// on kept like that of any camera no longer configured; storage.* is not reloaded.
func (r *Retention) Reconfigure(cams []configs.Camera) error {
	pol, err := newCameraPolicy(cams)
	if err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	r.sweepMu.Lock()
	r.cameraPolicy = pol
	r.sweepMu.Unlock()
	r.Poke()
	return nil
}

// retentionOf is camera's maximum age; see "Cameras no longer configured" for those
// without a configuration.
func (r *Retention) retentionOf(camera string) time.Duration {
	if d, ok := r.retention[camera]; ok {
		return d
	}
	return r.orphanRetention
}

// Poke asks for a sweep now. It never blocks: pokes while a sweep is pending merge.
func (r *Retention) Poke() {
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

// Run sweeps at once, then every sweepInterval and after every Poke (at once, or
// pokeGap after the previous sweep), until ctx is done. A failed sweep (catalog busy, a
// file that cannot be removed) is logged, counted in Status and retried at the next one;
// Run itself never fails.
func (r *Retention) Run(ctx context.Context) error {
	tick := time.NewTicker(sweepInterval)
	defer tick.Stop()
	for {
		rep, err := r.Sweep(ctx)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("retention sweep incomplete; retrying at the next sweep", "err", err)
		}
		if len(rep.Deleted) > 0 && r.OnErase != nil {
			r.OnErase(ctx, rep)
		}
		last := time.Now()
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-r.poke:
			if wait := pokeGap - time.Since(last); wait > 0 {
				gap := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					gap.Stop()
					return nil
				case <-gap.C:
				}
			}
		}
	}
}

// Status returns a snapshot of the last sweep and the counters.
func (r *Retention) Status() RetentionStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	s.BytesByCamera = maps.Clone(s.BytesByCamera)
	s.LockedBytes = maps.Clone(s.LockedBytes)
	s.DeletedBytes = maps.Clone(s.DeletedBytes)
	s.Shortfall = maps.Clone(s.Shortfall)
	return s
}

// Sweep plans the rules and deletes what they and the guard allow: one pass. Errors are
// returned (joined), not logged; the report says what was done before them.
func (r *Retention) Sweep(ctx context.Context) (SweepReport, error) {
	r.sweepMu.Lock()
	defer r.sweepMu.Unlock()
	now := r.now().UTC()
	rep := SweepReport{At: now}
	err := r.sweep(ctx, now, &rep)
	r.mu.Lock()
	r.status.Sweeps++
	r.status.LastSweep = now
	r.status.LastError = ""
	if err != nil && ctx.Err() == nil { // not a failure: shutting down
		r.status.Errors++
		r.status.LastError = err.Error()
	}
	r.mu.Unlock()
	return rep, err
}

func (r *Retention) sweep(ctx context.Context, now time.Time, rep *SweepReport) error {
	var errs []error
	fail := func(err error) error { return errors.Join(append(errs, err)...) }
	r.retryRemovals(&errs)

	// The hold is read first: while its state is unknown, nothing is deleted.
	hold, held, err := r.cat.RetentionHold(ctx)
	if err != nil {
		return fail(err)
	}
	if !r.spaceCutLoaded {
		r.loadSpaceCuts(ctx, now, &errs)
	}
	if !held {
		// While the guard holds deletions (a clock that jumped, say), events stay too:
		// they are what an officer would look for in the footage being argued about.
		r.expireEvents(ctx, now, &errs)
	}
	stored, fresh, err := r.countBytes(ctx, now)
	if err != nil {
		return fail(err)
	}
	locked, err := r.cat.LockedBytes(ctx, now)
	if err != nil {
		return fail(err)
	}
	// Without the disk's numbers min_free cannot be planned; the other rules still run,
	// so a failing statfs never makes footage outlive its retention.
	space, spaceErr := r.space()
	if spaceErr != nil {
		errs = append(errs, fmt.Errorf("min_free not applied: %w", spaceErr))
	}
	spaceKnown := spaceErr == nil
	reserveOwed := false
	if spaceKnown {
		reserveOwed = r.catalogReserve(&space, &errs)
	}
	var total int64
	for _, b := range stored {
		total += b
	}
	totalKnown := fresh
	knowTotal := func() error {
		if totalKnown {
			return nil
		}
		n, err := r.cat.TotalBytes(ctx)
		total, totalKnown = n, err == nil
		return err
	}
	if r.storageQuota > 0 {
		if err := knowTotal(); err != nil {
			return fail(err)
		}
	}

	pl := &planner{r: r, ctx: ctx, now: now, locked: locked}
	if reserveOwed {
		pl.reserve = catalogReserveBytes
	}
	full, err := pl.plan(stored, total, space, spaceKnown)
	if err != nil {
		return fail(err)
	}
	trips := false
	if guarded := full.guardedBytes(now); guarded > 0 {
		if err := knowTotal(); err != nil {
			return fail(err)
		}
		// The guard weighs footage in both tiers: total counts the local disk (what
		// the space rules need), so the archive's bytes are added here.
		archived, err := r.cat.ArchivedBytes(ctx)
		if err != nil {
			return fail(err)
		}
		trips = guarded*100 > (total+archived)*massDeletionPercent
	}
	rep.PlannedBytes, rep.TotalBytes = full.bytes, total

	exec := full
	switch {
	case held && !hold.Confirmed.IsZero():
		r.log.Warn("retention hold confirmed by an administrator: executing the plan",
			"confirmed", hold.Confirmed, "held_since", hold.Since, "planned_bytes", full.bytes, "total_bytes", total)
		rep.Confirmed = true
	case held && hold.Forced:
		// A rebuilt catalog that lost evidence locks: a lost lock may cover any footage,
		// so nothing is deleted, not even for min_free (recording pausing on a full
		// disk loses no evidence; deleting locked footage would), until confirmed.
		exec, rep.Held = newPlan(), true
		if !r.holdLogged {
			r.log.Error("retention held: nothing is deleted until an administrator runs `townwatch retention confirm` (check `townwatch locks` against the case files first)",
				"since", hold.Since, "reason", hold.Reason, "planned_bytes", full.bytes, "total_bytes", total)
		}
		r.holdLogged = true
	case trips:
		// Only min_free's strict need, planned on its own: the rest is what is held.
		exec, rep.Held = newPlan(), true
		if spaceKnown {
			if err := pl.minFree(exec, space); err != nil {
				return fail(err)
			}
		}
		if !held {
			hold = catalog.RetentionHold{Since: now, Reason: full.describe(total), PlannedBytes: full.bytes, TotalBytes: total}
			if err := r.cat.SetRetentionHold(ctx, hold); err != nil {
				errs = append(errs, fmt.Errorf("persisting the hold (held in memory meanwhile): %w", err))
			}
			r.log.Error("retention held: this sweep would delete too much at once; only min_free's strict need is deleted until an administrator runs `townwatch retention confirm` (check the clock, record.retention and the quotas first)",
				"reason", hold.Reason, "planned_bytes", full.bytes, "total_bytes", total, "guard_percent", massDeletionPercent)
		} else if !r.holdLogged {
			r.log.Error("retention is held since an earlier run, waiting for `townwatch retention confirm`",
				"since", hold.Since, "reason", hold.Reason, "planned_bytes", full.bytes, "total_bytes", total)
		}
		held, r.holdLogged = true, true
	case held:
		r.log.Warn("retention hold lifted without confirmation: the plan no longer exceeds the guard",
			"held_since", hold.Since, "planned_bytes", full.bytes, "total_bytes", total)
	}

	complete := r.execute(ctx, now, exec, rep, &errs)
	rep.DiskFullLockedOnly = exec.minFreeShort
	if complete && spaceKnown && len(rep.Deleted) > 0 {
		complete = r.topUpMinFree(pl, &space, rep, &errs)
	}
	if held && !rep.Held && complete {
		// A confirmed or lifted hold is cleared only once its plan has run in full, so
		// a sweep interrupted half-way resumes under the same confirmation.
		if err := r.cat.ClearRetentionHold(ctx); err != nil {
			errs = append(errs, err)
		} else {
			held, r.holdLogged = false, false
		}
	}
	if was := r.Status().DiskFullLockedOnly; rep.DiskFullLockedOnly && !was {
		r.log.Error("disk full of open or locked footage: min_free cannot be restored, recording stops for lack of space; release evidence locks or add space",
			"free_bytes", space.Free, "min_free_bytes", r.minFree.Of(space.Total))
	} else if was && !rep.DiskFullLockedOnly {
		r.log.Info("min_free can be restored again")
	}

	if spaceKnown && space.Free >= r.minFree.Of(space.Total)+catalogReserveBytes {
		// Room above min_free: make the reserve for the next full disk.
		made, err := r.st.makeCatalogReserve()
		if err != nil {
			errs = append(errs, err)
		} else if made {
			r.reserveSeen = true
			r.log.Info("catalog reserve made for a full disk", "bytes", catalogReserveBytes)
			if s, err := r.space(); err == nil {
				space = s
			}
		}
	}
	short := r.shortfalls(now)
	r.publish(locked, space, spaceKnown, held, hold, rep, short)
	if len(rep.Deleted) > 0 || rep.Skipped > 0 {
		r.log.Info("retention sweep", "deleted_segments", len(rep.Deleted), "deleted_bytes", rep.DeletedBytes,
			"skipped", rep.Skipped, "planned_bytes", rep.PlannedBytes, "total_bytes", total, "held", rep.Held)
	} else {
		r.log.Debug("retention sweep: nothing to delete", "total_bytes", total, "held", rep.Held)
	}
	return errors.Join(errs...)
}

// catalogReserve releases the catalog's reserve when the disk is full, before the
// sweep's first catalog write, and updates space if it did. It reports whether the
// reserve is owed: it existed once in this run and is missing now, so min_free plans for
// its size too, to make room to remake it (otherwise a disk filled by other data would
// settle at min_free with no reserve left for the next time it fills). A reserve that
// never existed is not owed: on a filesystem too small to hold it beside min_free, it
// would make min_free delete everything.
func (r *Retention) catalogReserve(space *DiskSpace, errs *[]error) bool {
	if space.Free < catalogReserveBytes {
		released, err := r.st.releaseCatalogReserve()
		if err != nil {
			*errs = append(*errs, err)
		}
		if released {
			r.reserveSeen = true
			r.log.Warn("disk full: released the catalog reserve so that deletions can be recorded",
				"free_bytes", space.Free, "reserve_bytes", catalogReserveBytes)
			if s, err := r.space(); err == nil {
				*space = s
			}
		}
	}
	present, err := r.st.hasCatalogReserve()
	if err != nil {
		*errs = append(*errs, err)
	}
	r.reserveSeen = r.reserveSeen || present
	return r.reserveSeen && !present
}

// topUpMinFree measures the disk again after deleting and, while it is still short of
// min_free, deletes the oldest footage again (at most minFreePasses times a sweep). The
// plan counts a segment's bytes as freed, but the catalog's own writes (its write-ahead
// log grows while retention deletes) and the recorders keep taking space meanwhile; a
// file an export still reads frees its blocks only when closed. It updates space and
// rep, and reports whether everything planned was worked through.
func (r *Retention) topUpMinFree(pl *planner, space *DiskSpace, rep *SweepReport, errs *[]error) bool {
	for range minFreePasses {
		s, err := r.space()
		if err != nil {
			*errs = append(*errs, err)
			return true
		}
		*space = s
		more := newPlan()
		if err := pl.minFree(more, s); err != nil {
			*errs = append(*errs, err)
			return false
		}
		rep.DiskFullLockedOnly = more.minFreeShort
		if len(more.items) == 0 {
			return true
		}
		if !r.execute(pl.ctx, pl.now, more, rep, errs) {
			return false
		}
	}
	return true
}

// countBytes returns the stored bytes per camera and whether they were counted just now:
// at every sweep when a camera quota or storage.quota's shares need them, else at most
// every countInterval (see there); in between, the last count less what retention
// deleted since. Under a storage.quota the count replaces the total it needs anyway
// (one GROUP BY over the same rows as catalog.TotalBytes' SUM).
func (r *Retention) countBytes(ctx context.Context, now time.Time) (map[string]int64, bool, error) {
	if !r.cameraQuotas && r.storageQuota <= 0 && !r.countedAt.IsZero() && !now.Before(r.countedAt) && now.Sub(r.countedAt) < countInterval {
		return maps.Clone(r.lastCount), false, nil
	}
	m, err := r.cat.BytesByCamera(ctx)
	if err != nil {
		return nil, false, err
	}
	r.lastCount, r.countedAt = maps.Clone(m), now
	return m, true, nil
}

// execute deletes the plan's segments, oldest first. It reports whether the whole plan
// was worked through (a catalog failure or a cancelled ctx stops it; the next sweep plans
// the rest again).
func (r *Retention) execute(ctx context.Context, now time.Time, p *plan, rep *SweepReport, errs *[]error) bool {
	for _, it := range p.sorted() {
		d, err := r.cat.DeleteSegment(ctx, it.seg.ID, it.reason, now)
		switch {
		case errors.Is(err, catalog.ErrLocked), errors.Is(err, catalog.ErrNotFound), errors.Is(err, catalog.ErrSegmentOpen):
			// A lock added, the segment removed or reopened since planning: the
			// catalog's answer wins.
			rep.Skipped++
			r.log.Info("retention skipped a segment that changed since planning", "camera", it.seg.Camera, "path", it.seg.Path, "why", err)
			continue
		case err != nil:
			*errs = append(*errs, err)
			return false
		}
		r.log.Info("footage deleted", "camera", d.Camera, "stream", d.Stream, "start", d.Start, "end", d.End,
			"bytes", d.Bytes, "reason", d.Reason, "path", d.Path)
		rep.Deleted = append(rep.Deleted, d)
		rep.DeletedBytes += d.Bytes
		if spaceReason(d.Reason) && d.End.After(r.spaceCut[d.Camera].End) {
			r.spaceCut[d.Camera] = catalog.NewestDeletion{End: d.End, Reason: d.Reason}
		}
		r.lastCount[d.Camera] -= d.Bytes
		r.mu.Lock()
		r.status.DeletedBytes[DeletionKey{Camera: d.Camera, Reason: d.Reason}] += d.Bytes
		r.mu.Unlock()
		if err := r.st.remove(d.Path); err != nil {
			r.pendingRemove = append(r.pendingRemove, d.Path)
			*errs = append(*errs, fmt.Errorf("deleted segment %d from the catalog but its file stays until the next sweep: %w", d.SegmentID, err))
		}
		if d.Archived {
			r.removeObject(ctx, d, errs)
		}
	}
	return true
}

// removeObject removes the object of an archived segment whose deletion the catalog has
// just recorded, then clears the deletion's pending mark. Row first, then the object: a
// crash or an unreachable store in between leaves the deletion pending, and the archive
// job removes the object later (archive.Job), so no object outlives its row unlisted.
func (r *Retention) removeObject(ctx context.Context, d catalog.Deletion, errs *[]error) {
	if err := r.st.removeObject(ctx, d.Path); err != nil {
		*errs = append(*errs, fmt.Errorf("deleted archived segment %d from the catalog; its object stays listed for removal: %w", d.SegmentID, err))
		return
	}
	if err := r.cat.ObjectDeleted(ctx, d.ID); err != nil {
		*errs = append(*errs, err)
	}
}

// retryRemovals removes files whose deletion an earlier sweep recorded but could not
// finish.
func (r *Retention) retryRemovals(errs *[]error) {
	pending := r.pendingRemove
	r.pendingRemove = nil
	for _, rel := range pending {
		if err := r.st.remove(rel); err != nil {
			r.pendingRemove = append(r.pendingRemove, rel)
			*errs = append(*errs, fmt.Errorf("removing deleted segment file, again: %w", err))
			continue
		}
		r.log.Info("deleted segment's file removed on retry", "path", rel)
	}
}

// publish updates the status after a sweep.
func (r *Retention) publish(locked map[string]int64, space DiskSpace, spaceKnown, held bool, hold catalog.RetentionHold, rep *SweepReport,
	short map[string]Shortfall) {
	bytes := maps.Clone(r.lastCount)
	for _, cam := range r.configuredCamera {
		if _, ok := bytes[cam]; !ok {
			bytes[cam] = 0 // present for metrics and the API before it has footage
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &r.status
	s.BytesByCamera, s.LockedBytes = bytes, locked
	if spaceKnown {
		s.DiskFree, s.DiskTotal, s.MinFree = space.Free, space.Total, r.minFree.Of(space.Total)
	}
	s.DiskFullLockedOnly = rep.DiskFullLockedOnly
	s.Shortfall = short
	s.Hold = held
	s.HoldSince, s.HoldReason, s.HoldPlannedBytes, s.HoldTotalBytes = time.Time{}, "", 0, 0
	if held {
		s.HoldSince, s.HoldReason, s.HoldPlannedBytes, s.HoldTotalBytes = hold.Since, hold.Reason, hold.PlannedBytes, hold.TotalBytes
	}
}
