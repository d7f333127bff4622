package recorder

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
)

// plan is the set of segments one sweep would delete, each under the first rule that
// wants it.
type plan struct {
	items        []planItem
	ids          map[int64]bool
	bytes        int64
	bytesByCam   map[string]int64
	segsByCam    map[string]int
	minFreeShort bool // min_free stays unmet after every candidate: only open/locked footage is left
}

type planItem struct {
	seg    catalog.Segment
	reason string
	due    time.Time // when the rule began to want it; zero = not known (quotas, min_free)
}

func newPlan() *plan {
	return &plan{ids: map[int64]bool{}, bytesByCam: map[string]int64{}, segsByCam: map[string]int{}}
}

func (p *plan) add(s catalog.Segment, reason string, due time.Time) {
	p.items = append(p.items, planItem{seg: s, reason: reason, due: due})
	p.ids[s.ID] = true
	if onDisk(s) {
		// What the space rules weigh: bytes the deletion frees on the local disk.
		p.bytes += s.Bytes
		p.bytesByCam[s.Camera] += s.Bytes
	}
	p.segsByCam[s.Camera]++
}

// onDisk says whether a segment's bytes are on the local disk: not yet archived. Only
// such segments count for, and are deleted by, the space rules (quotas, min_free).
func onDisk(s catalog.Segment) bool { return s.Archived.IsZero() }

// sorted returns the items oldest footage first, the order they are deleted in.
func (p *plan) sorted() []planItem {
	items := slices.Clone(p.items)
	slices.SortFunc(items, func(a, b planItem) int {
		if c := a.seg.Start.Compare(b.seg.Start); c != 0 {
			return c
		}
		return cmp.Compare(a.seg.ID, b.seg.ID)
	})
	return items
}

// guardedBytes is the part of the plan the mass-deletion guard weighs: everything but
// the floors (see Retention): age deletions that fell due within guardGrace before now,
// and the deletions of a camera that loses only one segment.
func (p *plan) guardedBytes(now time.Time) int64 {
	var n int64
	for _, it := range p.items {
		if p.segsByCam[it.seg.Camera] <= 1 || it.reason == ReasonAge && it.due.After(now.Add(-guardGrace)) {
			continue
		}
		n += it.seg.Bytes
	}
	return n
}

// describe summarises the plan for the hold's reason: what an administrator reads before
// confirming.
func (p *plan) describe(total int64) string {
	type sum struct {
		segs, bytes int64
		cams        map[string]bool
		oldest      time.Time
	}
	by := map[string]*sum{}
	for _, it := range p.items {
		s := by[it.reason]
		if s == nil {
			s = &sum{cams: map[string]bool{}, oldest: it.seg.Start}
			by[it.reason] = s
		}
		s.segs++
		s.bytes += it.seg.Bytes
		s.cams[it.seg.Camera] = true
		if it.seg.Start.Before(s.oldest) {
			s.oldest = it.seg.Start
		}
	}
	var parts []string
	for _, reason := range []string{ReasonAge, ReasonCameraQuota, ReasonStorageQuota, ReasonMinFree} {
		if s := by[reason]; s != nil {
			parts = append(parts, fmt.Sprintf("%s: %d segment(s), %s, of %d camera(s), oldest from %s",
				reason, s.segs, mib(s.bytes), len(s.cams), s.oldest.Format(time.RFC3339)))
		}
	}
	return fmt.Sprintf("one sweep would delete %s of %s recorded (%.1f%%, the guard allows %d%%); %s",
		mib(p.bytes), mib(total), percent(p.bytes, total), massDeletionPercent, strings.Join(parts, "; "))
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func percent(part, whole int64) float64 {
	if whole == 0 {
		return 0
	}
	return 100 * float64(part) / float64(whole)
}

// planner plans one sweep at one instant.
type planner struct {
	r       *Retention
	ctx     context.Context
	now     time.Time
	reserve uint64           // the catalog reserve owed on top of min_free (see Retention.catalogReserve)
	locked  map[string]int64 // bytes under an active lock, per camera: outside every share
}

// plan applies the four rules in order, each to what the earlier ones left.
func (pl *planner) plan(stored map[string]int64, total int64, space DiskSpace, spaceKnown bool) (*plan, error) {
	p := newPlan()
	// Configured cameras too: one that started recording since the last count.
	cams := slices.Sorted(maps.Keys(stored))
	for _, c := range pl.r.configuredCamera {
		if _, ok := stored[c]; !ok {
			cams = append(cams, c)
		}
	}
	for _, cam := range cams {
		if err := pl.age(p, cam); err != nil {
			return nil, err
		}
	}
	for _, cam := range cams {
		quota := pl.r.quota[cam]
		if quota <= 0 || stored[cam]-p.bytesByCam[cam] <= quota {
			continue
		}
		err := pl.walk(p, cam, func(s catalog.Segment) bool {
			if !onDisk(s) {
				return true
			}
			p.add(s, ReasonCameraQuota, time.Time{})
			return stored[cam]-p.bytesByCam[cam] > quota
		})
		if err != nil {
			return nil, err
		}
	}
	if q := pl.r.storageQuota; q > 0 && total-p.bytes > q {
		if err := pl.storageQuota(p, stored, cams, total, q); err != nil {
			return nil, err
		}
	}
	if spaceKnown {
		if err := pl.minFree(p, space); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// storageQuota adds segments until all footage together fits quota, each time the
// oldest deletable segment of the camera that holds the most footage that is not locked
// (see "Shares of storage.quota" at Retention). Ties go to the older segment, so cameras
// that hold the same go oldest first among them. stored must be fresh (countBytes counts
// at every sweep under a storage.quota).
func (pl *planner) storageQuota(p *plan, stored map[string]int64, cams []string, total, quota int64) error {
	cursors := make([]*shareCursor, 0, len(cams))
	for _, cam := range cams {
		held := stored[cam] - p.bytesByCam[cam] - pl.locked[cam]
		cursors = append(cursors, &shareCursor{camera: cam, held: held, more: true})
	}
	for total-p.bytes > quota {
		// Largest first, so that a smaller camera is read only when it could win.
		slices.SortFunc(cursors, func(a, b *shareCursor) int { return cmp.Compare(b.held, a.held) })
		var best *shareCursor
		var bestSeg catalog.Segment
		for _, c := range cursors {
			if best != nil && c.held < best.held {
				break
			}
			s, ok, err := c.peek(pl, p)
			if err != nil {
				return err
			}
			if ok && (best == nil || s.Start.Before(bestSeg.Start) || s.Start.Equal(bestSeg.Start) && s.ID < bestSeg.ID) {
				best, bestSeg = c, s
			}
		}
		if best == nil {
			return nil // only open or locked footage is left
		}
		p.add(bestSeg, ReasonStorageQuota, time.Time{})
		best.held -= bestSeg.Bytes
	}
	return nil
}

// shareCursor reads one camera's deletion candidates for storageQuota, oldest first, in
// growing batches like walk.
type shareCursor struct {
	camera string
	held   int64 // the camera's bytes the share weighs: stored, less planned and locked
	segs   []catalog.Segment
	limit  int
	more   bool // the last read was full: there may be more candidates
}

// peek returns the camera's oldest candidate that p does not have yet, or false when
// there is none (only open or locked footage is left). A camera without candidates
// sinks to the bottom for good.
func (c *shareCursor) peek(pl *planner, p *plan) (catalog.Segment, bool, error) {
	for {
		for len(c.segs) > 0 && (p.ids[c.segs[0].ID] || !onDisk(c.segs[0])) {
			c.segs = c.segs[1:]
		}
		if len(c.segs) > 0 {
			return c.segs[0], true, nil
		}
		if !c.more {
			c.held = math.MinInt64
			return catalog.Segment{}, false, nil
		}
		c.limit = max(planBatch, 4*c.limit)
		segs, err := pl.r.cat.OldestUnlocked(pl.ctx, c.camera, pl.now, c.limit)
		if err != nil {
			return catalog.Segment{}, false, err
		}
		c.segs, c.more = segs, len(segs) == c.limit
	}
}

// age adds camera's segments that are older than its retention, except those its event
// retention keeps.
func (pl *planner) age(p *plan, cam string) error {
	ret := pl.r.retentionOf(cam)
	cutoff := pl.now.Add(-ret)
	keep, withEvents := pl.r.events[cam]
	spans := eventSpans{keep: keep}
	var err error
	werr := pl.walk(p, cam, func(s catalog.Segment) bool {
		if !s.Start.Before(cutoff) {
			return false // this and every later segment are younger than the retention
		}
		if !s.End.Before(cutoff) {
			return true // a segment straddling the cutoff stays; a later one may still go
		}
		due := s.End.Add(ret)
		// Event footage is looked up until guardGrace past its event retention, so that
		// the guard sees when its deletion really fell due.
		if withEvents && !s.End.Before(pl.now.Add(-keep.retention-guardGrace)) {
			var covered bool
			if covered, err = spans.covers(pl, cam, s, cutoff); err != nil {
				return false
			}
			if covered {
				if !s.End.Before(pl.now.Add(-keep.retention)) {
					return true // kept for its event
				}
				due = s.End.Add(keep.retention)
			}
		}
		p.add(s, ReasonAge, due)
		return true
	})
	if werr != nil {
		return werr
	}
	return err
}

// minFree adds the oldest segments of all cameras until the space the plan frees
// restores storage.min_free (and an owed catalog reserve), counting what p already
// deletes as freed. On its own (an empty p) it is min_free's strict need: the minimal
// oldest-first set. p.minFreeShort says whether min_free itself stays unmet.
func (pl *planner) minFree(p *plan, space DiskSpace) error {
	need := pl.r.minFree.Of(space.Total)
	short := func(need uint64) bool { return space.Free+uint64(p.bytes) < need }
	if !short(need + pl.reserve) {
		return nil
	}
	err := pl.walk(p, "", func(s catalog.Segment) bool {
		if !onDisk(s) {
			return true
		}
		p.add(s, ReasonMinFree, time.Time{})
		return short(need + pl.reserve)
	})
	p.minFreeShort = short(need)
	return err
}

// walk offers take the deletion candidates of camera ("" = all), oldest first, that p
// does not have yet, until take returns false or the candidates run out. It reads them
// in growing batches.
func (pl *planner) walk(p *plan, camera string, take func(catalog.Segment) bool) error {
	for limit := planBatch; ; limit *= 4 {
		segs, err := pl.r.cat.OldestUnlocked(pl.ctx, camera, pl.now, limit)
		if err != nil {
			return err
		}
		for _, s := range segs {
			if p.ids[s.ID] {
				continue
			}
			if !take(s) {
				return nil
			}
		}
		if len(segs) < limit {
			return nil
		}
	}
}
