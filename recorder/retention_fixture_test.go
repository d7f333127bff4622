package recorder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// retT0 is the simulated wall clock's start.
var retT0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

// retClock is the injected wall clock; Run may read it from its goroutine.
type retClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *retClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *retClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// retLog captures log records for assertions.
type retLog struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *retLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *retLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.recs = append(l.recs, r)
	l.mu.Unlock()
	return nil
}
func (l *retLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *retLog) WithGroup(string) slog.Handler      { return l }

// count returns how many records at level or above contain substr in their message.
func (l *retLog) count(level slog.Level, substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if r.Level >= level && strings.Contains(r.Message, substr) {
			n++
		}
	}
	return n
}

// retFixture is a storage directory with a real catalog and a Retention on the injected
// clock.
type retFixture struct {
	t     *testing.T
	ctx   context.Context
	cfg   *configs.Config
	dir   string
	st    *Storage
	cat   *catalog.Catalog
	clock *retClock
	log   *retLog
	ret   *Retention
	open  map[int64]*os.File // files of open segments, by id
}

// retCamera is a camera config with the given retention and quota.
func retCamera(id string, retention time.Duration, quota int64) configs.Camera {
	return configs.Camera{ID: id, Name: id, Record: configs.Record{
		Mode: configs.RecordContinuous, Retention: configs.Duration(retention),
		Segment: configs.DefaultSegment, Quota: configs.ByteSize(quota),
	}}
}

// newRetFixture opens storage and catalog in dir (t.TempDir() when "") and a Retention
// for cfg. min_free is off unless cfg sets it, so the test machine's disk never matters.
func newRetFixture(t *testing.T, dir string, cfg *configs.Config) *retFixture {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	ctx := context.Background()
	st, cat := openStore(t, dir)
	fx := &retFixture{t: t, ctx: ctx, cfg: cfg, dir: dir, st: st, cat: cat, clock: &retClock{t: retT0}, log: &retLog{},
		open: map[int64]*os.File{}}
	fx.ret = fx.newRetention()
	return fx
}

// newRetention makes another Retention on the same storage and catalog (a restart).
func (fx *retFixture) newRetention() *Retention {
	fx.t.Helper()
	r, err := NewRetention(fx.cfg, fx.st, fx.cat, slog.New(fx.log), fx.clock.Now)
	if err != nil {
		fx.t.Fatal(err)
	}
	return r
}

// fakeDisk makes r see a filesystem of total bytes holding exactly the segment files.
func (fx *retFixture) fakeDisk(r *Retention, total uint64) {
	r.space = func() (DiskSpace, error) {
		var used uint64
		err := fx.st.walkSegments(func(_ string, size int64) error {
			used += uint64(size)
			return nil
		})
		return DiskSpace{Total: total, Free: total - min(used, total)}, err
	}
}

// retContent is a segment's bytes: arbitrary, the retention does not parse media.
func retContent(n int64, seed int64) []byte {
	return bytes.Repeat([]byte{byte(seed)}, int(n))
}

// openSegment indexes an open segment and creates its file, as the Writer does.
func (fx *retFixture) openSegment(camera string, start time.Time) catalog.Segment {
	fx.t.Helper()
	s := catalog.Segment{Camera: camera, Stream: "main", Start: start, End: start, Path: SegmentPath(camera, start),
		Codec: "H264", Width: 1280, Height: 720, Open: true}
	id, err := fx.cat.CreateSegment(fx.ctx, s)
	if err != nil {
		fx.t.Fatal(err)
	}
	f, err := fx.st.create(s.Path)
	if err != nil {
		fx.t.Fatal(err)
	}
	fx.open[id] = f
	s.ID = id
	return s
}

// closeSegment writes n bytes into an open segment and closes it at end.
func (fx *retFixture) closeSegment(s catalog.Segment, end time.Time, n int64) catalog.Segment {
	fx.t.Helper()
	f := fx.open[s.ID]
	delete(fx.open, s.ID)
	data := retContent(n, s.ID)
	if _, err := f.Write(data); err != nil {
		fx.t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		fx.t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if err := fx.cat.CloseSegment(fx.ctx, s.ID, end, n, 25, hex.EncodeToString(sum[:]), nil); err != nil {
		fx.t.Fatal(err)
	}
	s.End, s.Bytes, s.Open = end, n, false
	return s
}

// segment records a closed segment of camera covering [start, start+d) of n bytes.
func (fx *retFixture) segment(camera string, start time.Time, d time.Duration, n int64) catalog.Segment {
	fx.t.Helper()
	return fx.closeSegment(fx.openSegment(camera, start), start.Add(d), n)
}

// sweep runs one sweep at the clock's time and fails the test on an error.
func (fx *retFixture) sweep(r *Retention) SweepReport {
	fx.t.Helper()
	rep, err := r.Sweep(fx.ctx)
	if err != nil {
		fx.t.Fatalf("sweep at %s: %v", fx.clock.Now().Format(time.RFC3339), err)
	}
	return rep
}

// segments returns every indexed segment.
func (fx *retFixture) segments() []catalog.Segment {
	fx.t.Helper()
	segs, err := fx.cat.AllSegments(fx.ctx)
	if err != nil {
		fx.t.Fatal(err)
	}
	return segs
}

// deletions returns every recorded deletion.
func (fx *retFixture) deletions() []catalog.Deletion {
	fx.t.Helper()
	ds, err := fx.cat.Deletions(fx.ctx, time.Unix(0, 0))
	if err != nil {
		fx.t.Fatal(err)
	}
	return ds
}

// fileExists reports whether a segment's file is on disk.
func (fx *retFixture) fileExists(rel string) bool {
	_, err := os.Stat(filepath.Join(fx.dir, filepath.FromSlash(rel)))
	return err == nil
}

// retLocked reports whether an active lock at now covers s, by the catalog's definition.
func retLocked(locks []catalog.Lock, s catalog.Segment) bool {
	for _, l := range locks {
		if l.Camera == s.Camera && s.Start.Before(l.End) && (l.Start.Before(s.End) || !l.Start.After(s.Start)) {
			return true
		}
	}
	return false
}

// checkDeletions asserts that every deletion since index from left the disk and was due
// under its reason's rule as far as it can be checked afterwards (age: End older than
// the retention at the time), and returns the number of deletions.
func (fx *retFixture) checkDeletions(from int) int {
	fx.t.Helper()
	ds := fx.deletions()
	for _, d := range ds[from:] {
		if fx.fileExists(d.Path) {
			fx.t.Errorf("deleted segment %d (%s) still has its file", d.SegmentID, d.Path)
		}
		if d.Reason == ReasonAge {
			if ret := fx.ret.retentionOf(d.Camera); !d.End.Before(d.At.Add(-ret)) {
				fx.t.Errorf("segment %s of %s ending %s deleted for age at %s: younger than its retention %s",
					d.Path, d.Camera, d.End, d.At, ret)
			}
		}
	}
	return len(ds)
}

// checkAge asserts that no closed, unlocked segment older than its camera's retention
// remains at the clock's time: right after a sweep the bound is exact, which is
// stricter than the acceptance bound of retention plus one segment.
func (fx *retFixture) checkAge() {
	fx.t.Helper()
	now := fx.clock.Now()
	locks, err := fx.cat.Locks(fx.ctx, now)
	if err != nil {
		fx.t.Fatal(err)
	}
	for _, s := range fx.segments() {
		if s.Open || retLocked(locks, s) {
			continue
		}
		if ret := fx.ret.retentionOf(s.Camera); s.End.Before(now.Add(-ret)) {
			fx.t.Errorf("at %s segment %s of %s ending %s remains, older than its retention %s",
				now.Format(time.RFC3339), s.Path, s.Camera, s.End.Format(time.RFC3339), ret)
		}
	}
}

// retRecorder simulates continuous recording: per camera one open segment, cut every seg.
type retRecorder struct {
	fx   *retFixture
	seg  time.Duration
	size int64
	cur  map[string]catalog.Segment
}

func (fx *retFixture) recorder(cams []string, seg time.Duration, size int64) *retRecorder {
	rc := &retRecorder{fx: fx, seg: seg, size: size, cur: map[string]catalog.Segment{}}
	for _, c := range cams {
		rc.cur[c] = catalog.Segment{Camera: c}
	}
	return rc
}

// advance records up to now: closes every segment that reached its length and opens the
// next one.
func (rc *retRecorder) advance(now time.Time) {
	rc.fx.t.Helper()
	for cam, s := range rc.cur {
		if s.ID == 0 {
			rc.cur[cam] = rc.fx.openSegment(cam, now)
			continue
		}
		for !s.Start.Add(rc.seg).After(now) {
			end := s.Start.Add(rc.seg)
			rc.fx.closeSegment(s, end, rc.size)
			s = rc.fx.openSegment(cam, end)
		}
		rc.cur[cam] = s
	}
}

// mountTmpfs mounts a tmpfs of size bytes on a new temporary directory for the test.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.FormatInt(size, 10)); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}
