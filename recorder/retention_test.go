package recorder

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/recorder/catalog"
)

const (
	retSeg  = time.Minute // segment length in the simulations
	retSize = 1000        // bytes of one simulated segment
)

// simulate records cams from the clock's time to until, sweeping every step, and calls
// check after every sweep. It fails on a hold: none of its callers plans one.
func (fx *retFixture) simulate(rc *retRecorder, until time.Time, step time.Duration, check func(SweepReport)) {
	fx.t.Helper()
	for now := fx.clock.Now(); !now.After(until); now = now.Add(step) {
		fx.clock.Set(now)
		rc.advance(now)
		rep := fx.sweep(fx.ret)
		if rep.Held {
			fx.t.Fatalf("sweep at %s held: %s", now.Format(time.RFC3339), fx.ret.Status().HoldReason)
		}
		if check != nil {
			check(rep)
		}
	}
}

// bytesOf sums the indexed bytes per camera, open segments included.
func (fx *retFixture) bytesOf() map[string]int64 {
	m := map[string]int64{}
	for _, s := range fx.segments() {
		m[s.Camera] += s.Bytes
	}
	return m
}

func TestRetentionAgeDeletesExactlyWhatIsOlderThanRetention(t *testing.T) {
	t.Parallel()
	cfg := &configs.Config{Cameras: []configs.Camera{
		retCamera("cam-a", 10*time.Minute, 0), retCamera("cam-b", 20*time.Minute, 0),
	}}
	fx := newRetFixture(t, "", cfg)
	rc := fx.recorder([]string{"cam-a", "cam-b"}, retSeg, retSize)
	seen := 0
	fx.simulate(rc, retT0.Add(30*time.Minute), sweepInterval, func(SweepReport) {
		fx.checkAge()
		seen = fx.checkDeletions(seen)
	})

	// At T0+30m the cut-offs are T0+20m (cam-a) and T0+10m (cam-b): the oldest segment
	// left ends exactly there (not older, so kept), every one before it is gone.
	now := fx.clock.Now()
	for cam, ret := range map[string]time.Duration{"cam-a": 10 * time.Minute, "cam-b": 20 * time.Minute} {
		var oldest catalog.Segment
		for _, s := range fx.segments() {
			if s.Camera == cam && (oldest.ID == 0 || s.Start.Before(oldest.Start)) {
				oldest = s
			}
		}
		if want := now.Add(-ret); !oldest.End.Equal(want) {
			t.Errorf("%s: oldest remaining segment ends %s, want %s (the retention cut-off)", cam, oldest.End, want)
		}
	}
	st := fx.ret.Status()
	wantDeleted := map[DeletionKey]int64{
		{"cam-a", ReasonAge}: 19 * retSize, // segments starting T0 … T0+18m
		{"cam-b", ReasonAge}: 9 * retSize,  // segments starting T0 … T0+8m
	}
	if !equalMaps(st.DeletedBytes, wantDeleted) {
		t.Errorf("deleted bytes %v, want %v", st.DeletedBytes, wantDeleted)
	}
	for _, d := range fx.deletions() {
		if d.Reason != ReasonAge {
			t.Errorf("deletion of %s recorded with reason %q, want %q", d.Path, d.Reason, ReasonAge)
		}
	}
	// A restarted Retention counts at its first sweep.
	r2 := fx.newRetention()
	fx.sweep(r2)
	if got, want := r2.Status().BytesByCamera, fx.bytesOf(); !equalMaps(got, want) {
		t.Errorf("Status().BytesByCamera %v, catalog has %v", got, want)
	}
}

func equalMaps[K comparable](a, b map[K]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestRetentionCameraQuotaKeepsTheNewest(t *testing.T) {
	t.Parallel()
	const quota = 10*retSize + retSize/2
	cfg := &configs.Config{Cameras: []configs.Camera{
		retCamera("cam-a", 7*24*time.Hour, quota), retCamera("cam-b", 7*24*time.Hour, 0),
	}}
	fx := newRetFixture(t, "", cfg)
	rc := fx.recorder([]string{"cam-a", "cam-b"}, retSeg, retSize)
	fx.simulate(rc, retT0.Add(time.Hour), sweepInterval, func(SweepReport) {
		if b := fx.bytesOf()["cam-a"]; b > quota {
			t.Fatalf("at %s cam-a stores %d bytes, over its quota %d", fx.clock.Now(), b, quota)
		}
	})
	var a []catalog.Segment
	for _, s := range fx.segments() {
		if s.Camera == "cam-a" && !s.Open {
			a = append(a, s)
		}
	}
	// Ten whole segments fit; they must be the newest ten.
	if len(a) != 10 || !a[0].Start.Equal(retT0.Add(50*time.Minute)) {
		t.Fatalf("cam-a keeps %d closed segments starting %v, want the newest 10 from %s", len(a), a[0].Start, retT0.Add(50*time.Minute))
	}
	if b := fx.bytesOf()["cam-b"]; b != 60*retSize {
		t.Errorf("cam-b (no quota) stores %d bytes, want all %d", b, 60*retSize)
	}
	for _, d := range fx.deletions() {
		if d.Camera != "cam-a" || d.Reason != ReasonCameraQuota {
			t.Errorf("deleted %s of %s for %q; only cam-a's camera_quota deletions were due", d.Path, d.Camera, d.Reason)
		}
	}
	if n := len(fx.deletions()); n != 50 {
		t.Errorf("%d deletions recorded, want 50", n)
	}
}

func TestRetentionStorageQuotaDeletesOldestOfAllCameras(t *testing.T) {
	t.Parallel()
	const quota = 25 * retSize
	cfg := &configs.Config{Storage: configs.Storage{Quota: quota}, Cameras: []configs.Camera{
		retCamera("cam-a", 7*24*time.Hour, 0), retCamera("cam-b", 7*24*time.Hour, 0),
	}}
	fx := newRetFixture(t, "", cfg)
	// cam-b starts 30 s later, so "oldest of all cameras" has one answer.
	rc := fx.recorder([]string{"cam-a"}, retSeg, retSize)
	rc.advance(retT0)
	rc.cur["cam-b"] = catalog.Segment{Camera: "cam-b"}
	fx.clock.Set(retT0.Add(30 * time.Second))
	fx.simulate(rc, retT0.Add(time.Hour), sweepInterval, func(SweepReport) {
		total := int64(0)
		for _, b := range fx.bytesOf() {
			total += b
		}
		if total > quota {
			t.Fatalf("at %s all cameras store %d bytes, over storage.quota %d", fx.clock.Now(), total, quota)
		}
	})
	ds := fx.deletions()
	var newestDeleted time.Time
	for _, d := range ds {
		if d.Reason != ReasonStorageQuota {
			t.Errorf("deletion of %s has reason %q, want %q", d.Path, d.Reason, ReasonStorageQuota)
		}
		if d.Start.After(newestDeleted) {
			newestDeleted = d.Start
		}
	}
	for _, s := range fx.segments() {
		if !s.Open && !s.Start.After(newestDeleted) {
			t.Errorf("segment %s (start %s) kept although newer footage (start %s) was deleted: not oldest first",
				s.Path, s.Start, newestDeleted)
		}
	}
	// 119 closed segments by T0+1h, 25 fit under the quota.
	if len(ds) != 94 {
		t.Errorf("%d deletions, want 94", len(ds))
	}
}

func TestRetentionMinFreeKeepsSpace(t *testing.T) {
	t.Parallel()
	const disk = 40 * retSize
	cfg := &configs.Config{Storage: configs.Storage{MinFree: configs.FreeSpace{Percent: 25}}, Cameras: []configs.Camera{
		retCamera("cam-a", 7*24*time.Hour, 0), retCamera("cam-b", 7*24*time.Hour, 0),
	}}
	fx := newRetFixture(t, "", cfg)
	fx.fakeDisk(fx.ret, disk)
	rc := fx.recorder([]string{"cam-a", "cam-b"}, retSeg, retSize)
	fx.simulate(rc, retT0.Add(time.Hour), sweepInterval, func(SweepReport) {
		sp, err := fx.ret.space()
		if err != nil {
			t.Fatal(err)
		}
		if sp.Free < disk/4 {
			t.Fatalf("at %s %d bytes free, below min_free %d", fx.clock.Now(), sp.Free, disk/4)
		}
		if st := fx.ret.Status(); st.DiskFree != sp.Free || st.DiskTotal != disk || st.MinFree != disk/4 || st.DiskFullLockedOnly {
			t.Fatalf("Status disk free %d total %d min_free %d locked-only %v; want %d %d %d false",
				st.DiskFree, st.DiskTotal, st.MinFree, st.DiskFullLockedOnly, sp.Free, disk, disk/4)
		}
	})
	ds := fx.deletions()
	for _, d := range ds {
		if d.Reason != ReasonMinFree {
			t.Errorf("deletion of %s has reason %q, want %q", d.Path, d.Reason, ReasonMinFree)
		}
	}
	// 30 segments fit above min_free: 120 recorded, the rest deleted.
	if len(ds) != 90 {
		t.Errorf("%d deletions, want 90", len(ds))
	}
}

func TestRetentionNeverDeletesLockedFootage(t *testing.T) {
	t.Parallel()
	const ret = 20 * time.Minute
	cfg := &configs.Config{Cameras: []configs.Camera{retCamera("cam-a", ret, 0)}}
	fx := newRetFixture(t, "", cfg)
	m := func(d time.Duration) time.Time { return retT0.Add(d) }
	expiry := m(40 * time.Minute)
	for _, l := range []catalog.Lock{
		{Reason: "active until T0+10h", Start: m(2 * time.Minute), End: m(5 * time.Minute), Expires: m(10 * time.Hour)},
		{Reason: "expires at T0+40m", Start: m(6 * time.Minute), End: m(8 * time.Minute), Expires: expiry},
		{Reason: "never expires", Start: m(9 * time.Minute), End: m(10 * time.Minute)},
		{Reason: "partial overlap of two segments", Start: m(12*time.Minute + 30*time.Second), End: m(13*time.Minute + 10*time.Second)},
	} {
		l.Camera, l.Created = "cam-a", retT0
		if _, err := fx.cat.AddLock(fx.ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	rc := fx.recorder([]string{"cam-a"}, retSeg, retSize)
	seen := 0
	fx.simulate(rc, retT0.Add(time.Hour), sweepInterval, func(SweepReport) {
		fx.checkAge()
		seen = fx.checkDeletions(seen)
	})

	now := fx.clock.Now()
	var kept []int // minutes after T0 of the old segments that remain
	for _, s := range fx.segments() {
		if s.End.Before(now.Add(-ret)) {
			kept = append(kept, int(s.Start.Sub(retT0)/time.Minute))
		}
	}
	if want := []int{2, 3, 4, 9, 12, 13}; !slices.Equal(kept, want) {
		t.Errorf("old segments kept start at minutes %v, want %v (the locked ones)", kept, want)
	}
	expired := 0
	for _, d := range fx.deletions() {
		if min := int(d.Start.Sub(retT0) / time.Minute); min == 6 || min == 7 {
			expired++
			if d.At.Before(expiry) {
				t.Errorf("segment at minute %d deleted at %s, before its lock expired at %s", min, d.At, expiry)
			}
		}
	}
	if expired != 2 {
		t.Errorf("%d of the 2 segments under the expired lock were deleted", expired)
	}
	if got := fx.ret.Status().LockedBytes; !equalMaps(got, map[string]int64{"cam-a": 6 * retSize}) {
		t.Errorf("Status().LockedBytes = %v, want cam-a: %d", got, 6*retSize)
	}
}

// TestRetentionSkipsSegmentLockedAfterPlanning covers the race the catalog resolves: a
// lock added between planning and deleting wins.
func TestRetentionSkipsSegmentLockedAfterPlanning(t *testing.T) {
	cfg := &configs.Config{Cameras: []configs.Camera{retCamera("cam-a", time.Hour, 0)}}
	fx := newRetFixture(t, "", cfg)
	s := fx.segment("cam-a", retT0, retSeg, retSize)
	fx.clock.Set(retT0.Add(2 * time.Hour))
	p := newPlan()
	p.add(s, ReasonAge, s.End.Add(time.Hour))
	if _, err := fx.cat.AddLock(fx.ctx, catalog.Lock{Camera: "cam-a", Start: s.Start, End: s.End, Reason: "incident 42", Created: fx.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	var rep SweepReport
	var errs []error
	if !fx.ret.execute(fx.ctx, fx.clock.Now(), p, &rep, &errs) || len(errs) > 0 {
		t.Fatalf("execute stopped or failed: %v", errs)
	}
	if rep.Skipped != 1 || len(rep.Deleted) != 0 || !fx.fileExists(s.Path) {
		t.Fatalf("skipped %d, deleted %d, file exists %v; want the locked segment skipped and kept", rep.Skipped, len(rep.Deleted), fx.fileExists(s.Path))
	}
}

func TestRetentionNeverDeletesOpenSegments(t *testing.T) {
	cfg := &configs.Config{
		Storage: configs.Storage{Quota: 1, MinFree: configs.FreeSpace{Percent: 50}},
		Cameras: []configs.Camera{retCamera("cam-a", time.Hour, 1), retCamera("cam-b", time.Hour, 1)},
	}
	fx := newRetFixture(t, "", cfg)
	fx.fakeDisk(fx.ret, 3*retSize)
	// Segments left open by a crash ten days ago, one with footage already counted.
	a := fx.openSegment("cam-a", retT0)
	fx.openSegment("cam-b", retT0)
	if _, err := fx.open[a.ID].Write(retContent(2*retSize, 1)); err != nil {
		t.Fatal(err)
	}
	if err := fx.cat.UpdateOpenSegment(fx.ctx, a.ID, retT0.Add(retSeg), 2*retSize, 25); err != nil {
		t.Fatal(err)
	}
	fx.clock.Set(retT0.Add(10 * 24 * time.Hour))
	rep := fx.sweep(fx.ret)
	if len(rep.Deleted) != 0 || len(fx.segments()) != 2 {
		t.Fatalf("deleted %v; open segments must stay whatever the rules say", rep.Deleted)
	}
	if !rep.DiskFullLockedOnly || !fx.ret.Status().DiskFullLockedOnly {
		t.Error("min_free is unreachable with only open footage, but DiskFullLockedOnly is false")
	}
}

func TestRetentionClockJump400DaysHoldsUntilConfirmed(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	cfg := &configs.Config{
		Storage: configs.Storage{MinFree: configs.FreeSpace{Percent: 5}},
		Cameras: []configs.Camera{retCamera("cam-a", day, 0), retCamera("cam-b", day, 0)},
	}
	fx := newRetFixture(t, "", cfg)
	// 2 h of both cameras: 240 closed segments on a disk of 250 segments, so min_free
	// (12.5 segments) is short by 2.5 segments: its strict need is the oldest three.
	const disk = 250 * retSize
	fx.fakeDisk(fx.ret, disk)
	rc := fx.recorder([]string{"cam-a", "cam-b"}, retSeg, retSize)
	for now := retT0; !now.After(retT0.Add(2 * time.Hour)); now = now.Add(retSeg) {
		fx.clock.Set(now)
		rc.advance(now)
	}
	// Evidence: cam-b's minutes 60–62, locked for good.
	if _, err := fx.cat.AddLock(fx.ctx, catalog.Lock{Camera: "cam-b", Start: retT0.Add(time.Hour), End: retT0.Add(63 * time.Minute),
		Reason: "incident 7", Created: retT0}); err != nil {
		t.Fatal(err)
	}
	closed := func() []catalog.Segment {
		var out []catalog.Segment
		for _, s := range fx.segments() {
			if !s.Open {
				out = append(out, s)
			}
		}
		return out
	}
	before := closed()
	slices.SortFunc(before, func(a, b catalog.Segment) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return int(a.ID - b.ID)
	})

	jump := retT0.Add(2*time.Hour + 400*day)
	fx.clock.Set(jump)
	rep := fx.sweep(fx.ret)
	if !rep.Held {
		t.Fatalf("a +400-day jump planned %d of %d bytes and was not held", rep.PlannedBytes, rep.TotalBytes)
	}
	var got []string
	for _, d := range rep.Deleted {
		got = append(got, d.Path)
		if d.Reason != ReasonMinFree {
			t.Errorf("held sweep deleted %s for %q; only min_free may delete", d.Path, d.Reason)
		}
	}
	want := []string{before[0].Path, before[1].Path, before[2].Path}
	if !slices.Equal(got, want) {
		t.Fatalf("held sweep deleted %v, want min_free's strict need %v", got, want)
	}
	st := fx.ret.Status()
	if !st.Hold || !st.HoldSince.Equal(jump) || !strings.Contains(st.HoldReason, "age: ") ||
		st.HoldTotalBytes != 240*retSize || st.HoldPlannedBytes != (240-3)*retSize {
		t.Errorf("Status hold=%v since=%s planned=%d total=%d reason=%q", st.Hold, st.HoldSince, st.HoldPlannedBytes, st.HoldTotalBytes, st.HoldReason)
	}
	if n := fx.log.count(slog.LevelWarn, "retention held"); n != 1 {
		t.Errorf("%d alert log lines after the first held sweep, want 1", n)
	}
	if rep := fx.sweep(fx.ret); !rep.Held || len(rep.Deleted) != 0 {
		t.Errorf("second sweep: held %v, deleted %d; want held, nothing deleted", rep.Held, len(rep.Deleted))
	}
	if n := fx.log.count(slog.LevelWarn, "retention"); n != 1 {
		t.Errorf("%d warning lines after two held sweeps, want the one alert", n)
	}

	// A restart keeps the hold.
	r2 := fx.newRetention()
	fx.fakeDisk(r2, disk)
	if rep := fx.sweep(r2); !rep.Held || len(rep.Deleted) != 0 {
		t.Fatalf("after a restart: held %v, deleted %d; want held, nothing deleted", rep.Held, len(rep.Deleted))
	}
	if st := r2.Status(); !st.Hold || !st.HoldSince.Equal(jump) {
		t.Fatalf("after a restart Status hold=%v since=%s, want the hold since %s", st.Hold, st.HoldSince, jump)
	}

	confirmAt := jump.Add(time.Minute)
	fx.clock.Set(confirmAt)
	if err := fx.cat.ConfirmRetention(fx.ctx, confirmAt); err != nil {
		t.Fatal(err)
	}
	rep = fx.sweep(r2)
	if rep.Held || !rep.Confirmed {
		t.Fatalf("sweep after confirmation: held %v confirmed %v", rep.Held, rep.Confirmed)
	}
	for _, d := range rep.Deleted {
		if d.Reason != ReasonAge {
			t.Errorf("confirmed sweep deleted %s for %q, want %q", d.Path, d.Reason, ReasonAge)
		}
	}
	if _, held, err := fx.cat.RetentionHold(fx.ctx); err != nil || held {
		t.Fatalf("hold still stored after the confirmed sweep (err %v)", err)
	}
	if st := r2.Status(); st.Hold {
		t.Error("Status still shows the hold after the confirmed sweep")
	}
	left := closed()
	if len(left) != 3 {
		t.Fatalf("%d closed segments left, want only the 3 locked ones", len(left))
	}
	for _, s := range left {
		if s.Camera != "cam-b" || s.Start.Before(retT0.Add(time.Hour)) || !s.Start.Before(retT0.Add(63*time.Minute)) {
			t.Errorf("segment %s survived but is not locked", s.Path)
		}
	}
	if got := len(fx.deletions()); got != 240-3 {
		t.Errorf("%d deletions recorded, want %d", got, 240-3)
	}
	if rep := fx.sweep(r2); rep.Held || len(rep.Deleted) != 0 {
		t.Errorf("the sweep after: held %v, deleted %d", rep.Held, len(rep.Deleted))
	}
}

func TestRetentionHoldLiftsWhenThePlanIsOrdinaryAgain(t *testing.T) {
	cfg := &configs.Config{Cameras: []configs.Camera{retCamera("cam-a", time.Hour, 0)}}
	fx := newRetFixture(t, "", cfg)
	rc := fx.recorder([]string{"cam-a"}, retSeg, retSize)
	for now := retT0; !now.After(retT0.Add(time.Hour)); now = now.Add(retSeg) {
		fx.clock.Set(now)
		rc.advance(now)
	}
	fx.clock.Set(retT0.Add(30 * 24 * time.Hour)) // the clock jumps forward ...
	if rep := fx.sweep(fx.ret); !rep.Held || len(rep.Deleted) != 0 {
		t.Fatalf("jump: held %v, deleted %d; want held, nothing deleted", rep.Held, len(rep.Deleted))
	}
	fx.clock.Set(retT0.Add(time.Hour + 30*time.Second)) // ... and NTP puts it back
	rep := fx.sweep(fx.ret)
	if rep.Held || len(rep.Deleted) != 0 {
		t.Fatalf("corrected clock: held %v, deleted %d; want no hold and nothing due", rep.Held, len(rep.Deleted))
	}
	if _, held, err := fx.cat.RetentionHold(fx.ctx); err != nil || held {
		t.Fatalf("hold still stored after the plan became ordinary (err %v)", err)
	}
	if n := fx.log.count(slog.LevelWarn, "hold lifted"); n != 1 {
		t.Errorf("%d 'hold lifted' lines, want 1", n)
	}
}

// TestRetentionGuardFloors pins down what the guard ignores in a small archive.
func TestRetentionGuardFloors(t *testing.T) {
	const week = 7 * 24 * time.Hour
	for _, tc := range []struct {
		name     string
		segments []time.Duration // starts after T0 of 20 s segments
		sweepAt  time.Duration   // after T0+week
		deleted  int
		held     bool
	}{
		// A motion-only camera: two clips expire in one sweep, two thirds of the archive.
		{"ordinary expiry in a tiny archive", []time.Duration{0, 20 * time.Second, 3 * 24 * time.Hour}, time.Minute, 2, false},
		// The same archive first swept an hour after it expired: the box was off.
		{"expired long ago", []time.Duration{0, 20 * time.Second, 3 * 24 * time.Hour}, time.Hour, 0, true},
		// One segment per camera is what one sweep interval can need.
		{"one segment long expired", []time.Duration{0, 3 * 24 * time.Hour}, 24 * time.Hour, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &configs.Config{Cameras: []configs.Camera{retCamera("cam-m", week, 0)}}
			fx := newRetFixture(t, "", cfg)
			for _, s := range tc.segments {
				fx.segment("cam-m", retT0.Add(s), 20*time.Second, retSize)
			}
			fx.clock.Set(retT0.Add(week + tc.sweepAt))
			rep := fx.sweep(fx.ret)
			if len(rep.Deleted) != tc.deleted || rep.Held != tc.held {
				t.Fatalf("deleted %d, held %v; want %d, %v", len(rep.Deleted), rep.Held, tc.deleted, tc.held)
			}
		})
	}
}

func TestRetentionKeepsUnconfiguredCamerasForTheLongestRetention(t *testing.T) {
	t.Parallel()
	cfg := &configs.Config{Cameras: []configs.Camera{
		retCamera("cam-a", time.Hour, 0), retCamera("cam-b", 3*time.Hour, 0),
	}}
	fx := newRetFixture(t, "", cfg)
	for start := retT0; start.Before(retT0.Add(4 * time.Hour)); start = start.Add(retSeg) {
		fx.segment("cam-gone", start, retSeg, retSize)
	}
	fx.clock.Set(retT0.Add(3*time.Hour + 5*time.Minute))
	rep := fx.sweep(fx.ret)
	// Cut-off T0+5m under cam-b's 3 h: the segments ending before it, T0 … T0+3m.
	if len(rep.Deleted) != 4 || rep.Held {
		t.Fatalf("deleted %d (held %v) of the removed camera's footage, want the 4 older than 3 h", len(rep.Deleted), rep.Held)
	}
	for _, d := range rep.Deleted {
		if d.Reason != ReasonAge || !d.End.Before(retT0.Add(5*time.Minute)) {
			t.Errorf("deleted %s ending %s for %q", d.Path, d.End, d.Reason)
		}
	}
}

func TestRetentionRetriesFilesThatCannotBeRemoved(t *testing.T) {
	cfg := &configs.Config{Cameras: []configs.Camera{retCamera("cam-a", time.Hour, 0)}}
	fx := newRetFixture(t, "", cfg)
	s := fx.segment("cam-a", retT0, retSeg, retSize)
	// A non-empty directory where the file was: remove fails until it is emptied.
	full := filepath.Join(fx.dir, filepath.FromSlash(s.Path))
	if err := os.Remove(full); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(full, "blocker"), 0o750); err != nil {
		t.Fatal(err)
	}
	fx.clock.Set(retT0.Add(2 * time.Hour))
	rep, err := fx.ret.Sweep(fx.ctx)
	if err == nil || !strings.Contains(err.Error(), s.Path) {
		t.Fatalf("sweep error %v, want one naming %s", err, s.Path)
	}
	if len(rep.Deleted) != 1 {
		t.Fatalf("deleted %d, want the segment deleted from the catalog", len(rep.Deleted))
	}
	if st := fx.ret.Status(); st.Errors == 0 || st.LastError == "" {
		t.Errorf("Status errors %d, last %q: the failure is not counted", st.Errors, st.LastError)
	}
	if err := os.Remove(filepath.Join(full, "blocker")); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.ret.Sweep(fx.ctx); err != nil {
		t.Fatalf("retry sweep: %v", err)
	}
	if fx.fileExists(s.Path) {
		t.Error("the file is still there after the retry")
	}
	if st := fx.ret.Status(); st.LastError != "" {
		t.Errorf("LastError %q after a clean sweep", st.LastError)
	}
}

func TestNewRetentionValidates(t *testing.T) {
	cfg := &configs.Config{
		Storage: configs.Storage{Quota: -1},
		Cameras: []configs.Camera{retCamera("cam-a", 0, 0), retCamera("cam-b", time.Hour, -5)},
	}
	st, cat := openStore(t, t.TempDir())
	_, err := NewRetention(cfg, st, cat, nil, time.Now)
	want := "retention: storage.quota: -1 must not be negative\n" +
		"cameras[cam-a].record.retention: 0s must be > 0\n" +
		"cameras[cam-b].record.quota: -5 must not be negative"
	if err == nil || err.Error() != want {
		t.Fatalf("NewRetention error:\n%v\nwant:\n%s", err, want)
	}
	if _, err := NewRetention(&configs.Config{}, st, cat, nil, nil); err == nil {
		t.Error("NewRetention accepted a nil clock")
	}
}

// TestRetentionRunSweepsAtStartOnTickAndOnPoke runs Run in a synctest bubble: time
// passes only when every goroutine waits, and the bubble fails if Run leaves one behind.
func TestRetentionRunSweepsAtStartOnTickAndOnPoke(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := &configs.Config{Cameras: []configs.Camera{retCamera("cam-a", time.Hour, 0)}}
		fx := newRetFixture(t, "", cfg)
		fx.clock.Set(retT0.Add(2 * time.Hour))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- fx.ret.Run(ctx) }()

		synctest.Wait()
		if n := fx.ret.Status().Sweeps; n != 1 {
			t.Fatalf("%d sweeps after start, want 1", n)
		}
		old := fx.segment("cam-a", retT0, retSeg, retSize)
		time.Sleep(pokeGap) // fake time in the bubble
		fx.ret.Poke()
		synctest.Wait()
		if n := fx.ret.Status().Sweeps; n != 2 {
			t.Fatalf("%d sweeps after Poke, want 2", n)
		}
		if fx.fileExists(old.Path) {
			t.Fatal("the poked sweep did not delete the expired segment")
		}
		// A Poke right after a sweep waits out pokeGap.
		fx.ret.Poke()
		time.Sleep(pokeGap - time.Millisecond)
		synctest.Wait()
		if n := fx.ret.Status().Sweeps; n != 2 {
			t.Fatalf("%d sweeps within pokeGap of the last, want still 2", n)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if n := fx.ret.Status().Sweeps; n != 3 {
			t.Fatalf("%d sweeps once pokeGap passed, want 3", n)
		}
		time.Sleep(sweepInterval) // the ticker, started with Run, has fired once meanwhile
		synctest.Wait()
		if n := fx.ret.Status().Sweeps; n != 4 {
			t.Fatalf("%d sweeps after one interval, want 4", n)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run returned %v after cancel, want nil", err)
		}
	})
}

func TestRetentionPokeNeverBlocks(t *testing.T) {
	fx := newRetFixture(t, "", &configs.Config{})
	for range 3 {
		fx.ret.Poke() // nobody runs: the first is pending, the others merge with it
	}
	if len(fx.ret.poke) != 1 {
		t.Fatalf("%d pokes pending, want 1", len(fx.ret.poke))
	}
}

func TestRetentionDeletionIsLogged(t *testing.T) {
	cfg := &configs.Config{Cameras: []configs.Camera{retCamera("cam-a", time.Hour, 0)}}
	fx := newRetFixture(t, "", cfg)
	fx.segment("cam-a", retT0, retSeg, retSize)
	fx.clock.Set(retT0.Add(2 * time.Hour))
	fx.sweep(fx.ret)
	fx.log.mu.Lock()
	defer fx.log.mu.Unlock()
	var attrs map[string]string
	for _, r := range fx.log.recs {
		if r.Message == "footage deleted" {
			attrs = map[string]string{}
			r.Attrs(func(a slog.Attr) bool {
				attrs[a.Key] = a.Value.String()
				return true
			})
		}
	}
	if attrs == nil {
		t.Fatal("no 'footage deleted' line")
	}
	for k, want := range map[string]string{"camera": "cam-a", "reason": ReasonAge, "bytes": "1000",
		"start": retT0.String(), "end": retT0.Add(retSeg).String()} {
		if attrs[k] != want {
			t.Errorf("deletion line %s=%q, want %q", k, attrs[k], want)
		}
	}
}

// TestRetentionCatalogHoldDeletesNothingUntilConfirmed: after a catalog rebuild that
// could not read every evidence lock, the hold is forced: not even ordinary deletion by
// age runs (a lost lock may cover it) until an administrator confirms, and the hold is
// not lifted because the plan looks ordinary.
func TestRetentionCatalogHoldDeletesNothingUntilConfirmed(t *testing.T) {
	t.Parallel()
	cfg := &configs.Config{Cameras: []configs.Camera{retCamera("cam-a", time.Hour, 0)}}
	fx := newRetFixture(t, "", cfg)
	rc := fx.recorder([]string{"cam-a"}, retSeg, retSize)
	for now := retT0; !now.After(retT0.Add(time.Hour)); now = now.Add(retSeg) {
		fx.clock.Set(now)
		rc.advance(now)
	}
	if err := fx.cat.SetRetentionHold(fx.ctx, catalog.RetentionHold{Since: fx.clock.Now(), Forced: true,
		Reason: "catalog rebuilt: evidence locks could not all be read"}); err != nil {
		t.Fatal(err)
	}
	end := retT0.Add(90 * time.Minute)
	for now := retT0.Add(time.Hour); !now.After(end); now = now.Add(retSeg) {
		fx.clock.Set(now)
		rc.advance(now)
		if rep := fx.sweep(fx.ret); !rep.Held || len(rep.Deleted) != 0 {
			t.Fatalf("%s: held %v, deleted %d; want held and nothing deleted", now.Format(time.TimeOnly), rep.Held, len(rep.Deleted))
		}
	}
	if st := fx.ret.Status(); !st.Hold || !strings.Contains(st.HoldReason, "catalog rebuilt") {
		t.Errorf("status: hold %v reason %q; want the catalog hold", st.Hold, st.HoldReason)
	}
	if n := fx.log.count(slog.LevelError, "nothing is deleted until"); n != 1 {
		t.Errorf("%d error lines naming the catalog hold; want 1", n)
	}
	if err := fx.cat.ConfirmRetention(fx.ctx, fx.clock.Now()); err != nil {
		t.Fatal(err)
	}
	rep := fx.sweep(fx.ret)
	if rep.Held || !rep.Confirmed || len(rep.Deleted) == 0 {
		t.Fatalf("after confirmation: held %v, confirmed %v, deleted %d; want the due footage deleted", rep.Held, rep.Confirmed, len(rep.Deleted))
	}
	if _, held, err := fx.cat.RetentionHold(fx.ctx); err != nil || held {
		t.Fatalf("hold still stored after the confirmed plan ran (err %v)", err)
	}
	fx.checkAge()
}
