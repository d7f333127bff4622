package recorder

import (
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// The share scenario: one camera recording eight times the bytes of three others, all
// with the same retention, under a storage.quota that holds the small cameras' full
// retention but not the big one's.
const (
	shareRet   = time.Hour
	shareSmall = retSize     // bytes per 1-minute segment: "1 Mbit/s"
	shareBig   = 8 * retSize // "8 Mbit/s"
	// Each small camera keeps at most 61 segments (60 within retention plus the one
	// straddling the cut-off) and its open one: 61 000 bytes. Equal shares of 300 000
	// are 75 000, so the small cameras need less than theirs and the big one gets what
	// they leave: 300 000 - 3*61 000 = 117 000, fourteen of its segments, far below the
	// 61 its retention asks for. (While the small cameras fill up, a sweep deletes two
	// of the big camera's segments: 16 000 bytes, 5 % of the archive, under the
	// mass-deletion guard.)
	shareQuota = 300 * retSize
	shareRun   = 2 * time.Hour // of recording and sweeping
)

var shareSmallCams = []string{"cam-s1", "cam-s2", "cam-s3"}

// shareDir is where a share test keeps storage and catalog: a tmpfs when the test runs
// as root (CI does), because two hours of four cameras are thousands of catalog commits,
// each fsynced, which on a busy disk took minutes of waiting. What is tested (the quota
// split) does not depend on the filesystem, so elsewhere a temporary directory serves.
func shareDir(t *testing.T) string {
	if os.Geteuid() != 0 {
		return t.TempDir()
	}
	return mountTmpfs(t, 64<<20)
}

func shareConfig() *configs.Config {
	cfg := &configs.Config{Storage: configs.Storage{Quota: shareQuota}}
	for _, c := range append([]string{"cam-big"}, shareSmallCams...) {
		cfg.Cameras = append(cfg.Cameras, retCamera(c, shareRet, 0))
	}
	return cfg
}

// shareRecord records the four cameras from the clock's time to until, sweeping every
// sweepInterval, and checks the quota after every sweep.
func (fx *retFixture) shareRecord(big, small *retRecorder, until time.Time) {
	fx.t.Helper()
	for now := fx.clock.Now(); !now.After(until); now = now.Add(sweepInterval) {
		fx.clock.Set(now)
		big.advance(now)
		small.advance(now)
		rep := fx.sweep(fx.ret)
		if rep.Held {
			fx.t.Fatalf("sweep at %s held: %s", now.Format(time.RFC3339), fx.ret.Status().HoldReason)
		}
		var total int64
		for _, b := range fx.bytesOf() {
			total += b
		}
		if total > shareQuota {
			fx.t.Fatalf("at %s all cameras store %d bytes, over storage.quota %d", now.Format(time.RFC3339), total, shareQuota)
		}
	}
}

// oldestClosed returns camera's oldest closed segment that no lock in locks covers.
func (fx *retFixture) oldestClosed(camera string, locks []catalog.Lock) catalog.Segment {
	fx.t.Helper()
	var oldest catalog.Segment
	for _, s := range fx.segments() {
		if s.Camera == camera && !s.Open && !retLocked(locks, s) && (oldest.ID == 0 || s.Start.Before(oldest.Start)) {
			oldest = s
		}
	}
	return oldest
}

// checkShare asserts the outcome the share promises at the clock's time: the small
// cameras keep exactly their retention and lost footage only to age, the big camera
// lost footage to the quota and keeps less; the shortfall says so for the big camera
// only, and the warning came once.
func (fx *retFixture) checkShare(locks []catalog.Lock) {
	fx.t.Helper()
	now := fx.clock.Now()
	cutoff := now.Add(-shareRet)
	for _, cam := range shareSmallCams {
		if s := fx.oldestClosed(cam, locks); !s.End.Equal(cutoff) {
			fx.t.Errorf("%s: oldest kept segment ends %s, want %s: a small camera must keep its whole retention",
				cam, s.End.Format(time.RFC3339), cutoff.Format(time.RFC3339))
		}
	}
	quotaDeleted := 0
	for _, d := range fx.deletions() {
		switch {
		case d.Camera == "cam-big" && d.Reason == ReasonStorageQuota:
			quotaDeleted++
		case d.Reason != ReasonAge:
			fx.t.Errorf("%s of %s deleted for %q; only the big camera may lose footage to the quota", d.Path, d.Camera, d.Reason)
		}
		if retLocked(locks, catalog.Segment{Camera: d.Camera, Start: d.Start, End: d.End}) {
			fx.t.Errorf("locked segment %s of %s deleted for %q", d.Path, d.Camera, d.Reason)
		}
	}
	if quotaDeleted == 0 {
		fx.t.Error("nothing of the big camera was deleted for the quota")
	}
	big := fx.oldestClosed("cam-big", locks)
	if !big.Start.After(cutoff) {
		fx.t.Errorf("cam-big keeps footage from %s, want it trimmed well inside its retention (after %s)", big.Start, cutoff)
	}

	st := fx.ret.Status()
	sf := st.Shortfall["cam-big"]
	// The big camera keeps from the end of its newest deleted segment, which is at
	// most one segment before its oldest kept one.
	keptFrom := now.Add(-sf.Kept)
	if sf.Reason != ReasonStorageQuota || sf.Retention != shareRet || sf.Short() <= 0 ||
		keptFrom.After(big.Start) || keptFrom.Before(big.Start.Add(-retSeg)) {
		fx.t.Errorf("cam-big shortfall %+v (keeps from %s); want storage_quota, retention %s, kept from about %s",
			sf, keptFrom.Format(time.RFC3339), shareRet, big.Start.Format(time.RFC3339))
	}
	for _, cam := range shareSmallCams {
		sf, ok := st.Shortfall[cam]
		if !ok || sf.Short() != 0 || sf.Reason != "" {
			fx.t.Errorf("%s shortfall %+v (present %v), want none", cam, sf, ok)
		}
	}
	if n := fx.log.count(slog.LevelWarn, "keeps less history than its retention"); n != 1 {
		fx.t.Errorf("%d shortfall warnings, want 1 (cam-big, once)", n)
	}
	if n := fx.log.countAttr(slog.LevelWarn, "keeps less history than its retention", "camera", "cam-big"); n != 1 {
		fx.t.Errorf("%d shortfall warnings name cam-big, want 1", n)
	}
}

// countAttr is count restricted to records with attribute key = value.
func (l *retLog) countAttr(level slog.Level, substr, key, value string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if r.Level < level || !strings.Contains(r.Message, substr) {
			continue
		}
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == key && a.Value.String() == value {
				n++
				return false
			}
			return true
		})
	}
	return n
}

// TestRetentionShareTrimsTheBigCameraFirst is issue 14's high-bitrate camera: under a
// global quota it is trimmed to what the others leave, and they keep their retention.
func TestRetentionShareTrimsTheBigCameraFirst(t *testing.T) {
	t.Parallel()
	fx := newRetFixture(t, shareDir(t), shareConfig())
	big := fx.recorder([]string{"cam-big"}, retSeg, shareBig)
	small := fx.recorder(shareSmallCams, retSeg, shareSmall)
	fx.shareRecord(big, small, retT0.Add(shareRun))
	fx.checkShare(nil)
	st := fx.ret.Status()
	t.Logf("stored %v; cam-big shortfall %s (keeps %s of %s)", st.BytesByCamera,
		st.Shortfall["cam-big"].Short(), st.Shortfall["cam-big"].Kept, shareRet)

	// A restart finds the shortfall again in the deletion log and says so once more.
	r2 := fx.newRetention()
	fx.sweep(r2)
	if sf := r2.Status().Shortfall["cam-big"]; sf.Reason != ReasonStorageQuota || sf.Short() <= 0 {
		t.Errorf("after a restart cam-big shortfall %+v, want the storage_quota shortfall", sf)
	}
	if n := fx.log.countAttr(slog.LevelWarn, "keeps less history than its retention", "camera", "cam-big"); n != 2 {
		t.Errorf("%d shortfall warnings after a restart, want 2 (one per run)", n)
	}
}

// TestRetentionShareLocksStillWin: evidence under a lock is never deleted for the share,
// counts against no camera's share, and the small cameras still keep their retention.
func TestRetentionShareLocksStillWin(t *testing.T) {
	t.Parallel()
	fx := newRetFixture(t, shareDir(t), shareConfig())
	m := func(d time.Duration) time.Time { return retT0.Add(d) }
	var locks []catalog.Lock
	for _, l := range []catalog.Lock{
		{Camera: "cam-big", Reason: "incident 9", Start: m(2 * time.Minute), End: m(5 * time.Minute)},
		{Camera: "cam-big", Reason: "incident 10", Start: m(100 * time.Minute), End: m(102 * time.Minute)},
		{Camera: "cam-s1", Reason: "incident 11", Start: m(30 * time.Minute), End: m(31 * time.Minute)},
	} {
		l.Created = retT0
		if _, err := fx.cat.AddLock(fx.ctx, l); err != nil {
			t.Fatal(err)
		}
		locks = append(locks, l)
	}
	big := fx.recorder([]string{"cam-big"}, retSeg, shareBig)
	small := fx.recorder(shareSmallCams, retSeg, shareSmall)
	fx.shareRecord(big, small, retT0.Add(shareRun))
	fx.checkShare(locks)
	// Every locked segment is still there: 3 + 2 of cam-big, 1 of cam-s1.
	kept := map[string]int{}
	for _, s := range fx.segments() {
		if retLocked(locks, s) {
			kept[s.Camera]++
		}
	}
	if kept["cam-big"] != 5 || kept["cam-s1"] != 1 {
		t.Errorf("locked segments kept %v, want cam-big 5 and cam-s1 1", kept)
	}
}

// TestRetentionShortfallClears: once the space is there again (a raised quota), the
// shortfall drops to zero and one line says so.
func TestRetentionShortfallClears(t *testing.T) {
	t.Parallel()
	cfg := shareConfig()
	fx := newRetFixture(t, shareDir(t), cfg)
	big := fx.recorder([]string{"cam-big"}, retSeg, shareBig)
	small := fx.recorder(shareSmallCams, retSeg, shareSmall)
	fx.shareRecord(big, small, retT0.Add(shareRun))
	if sf := fx.ret.Status().Shortfall["cam-big"]; sf.Short() <= 0 {
		t.Fatalf("cam-big shortfall %+v before the quota is raised", sf)
	}
	cfg.Storage.Quota = 0
	fx.ret = fx.newRetention()
	// The hole the quota cut ages out of the retention: no shortfall once the oldest
	// footage deleted for space is older than the retention.
	for now := fx.clock.Now(); !now.After(retT0.Add(shareRun + shareRet)); now = now.Add(sweepInterval) {
		fx.clock.Set(now)
		big.advance(now)
		small.advance(now)
		fx.sweep(fx.ret)
	}
	for cam, sf := range fx.ret.Status().Shortfall {
		if sf.Short() != 0 {
			t.Errorf("%s shortfall %+v after the quota was lifted for a whole retention", cam, sf)
		}
	}
	if n := fx.log.count(slog.LevelInfo, "keeps its whole retention again"); n != 1 {
		t.Errorf("%d 'whole retention again' lines, want 1", n)
	}
}

// TestRetentionShareWithCameraQuota: a record.quota still caps its camera first; what it
// leaves of the camera's share is the others', and the shortfall names camera_quota.
func TestRetentionShareWithCameraQuota(t *testing.T) {
	t.Parallel()
	const bigQuota = 60 * retSize // 7 of the big camera's segments, and its open one
	cfg := shareConfig()
	cfg.Cameras[0].Record.Quota = bigQuota
	fx := newRetFixture(t, shareDir(t), cfg)
	big := fx.recorder([]string{"cam-big"}, retSeg, shareBig)
	small := fx.recorder(shareSmallCams, retSeg, shareSmall)
	fx.shareRecord(big, small, retT0.Add(shareRun))
	if b := fx.bytesOf()["cam-big"]; b > bigQuota {
		t.Errorf("cam-big stores %d bytes, over its record.quota %d", b, bigQuota)
	}
	for _, d := range fx.deletions() {
		if want := map[bool]string{true: ReasonCameraQuota, false: ReasonAge}[d.Camera == "cam-big"]; d.Reason != want {
			t.Errorf("%s of %s deleted for %q, want %q", d.Path, d.Camera, d.Reason, want)
		}
	}
	st := fx.ret.Status()
	if sf := st.Shortfall["cam-big"]; sf.Reason != ReasonCameraQuota || sf.Short() <= 0 {
		t.Errorf("cam-big shortfall %+v, want one for camera_quota", sf)
	}
	for _, cam := range shareSmallCams {
		if sf := st.Shortfall[cam]; sf.Short() != 0 {
			t.Errorf("%s shortfall %+v, want none", cam, sf)
		}
	}
}
