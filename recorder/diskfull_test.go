package recorder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// The disk-full tests record a real camera (simcam) onto a real, small filesystem (a
// tmpfs) and fill it. The bundled clips are about 300 kbit/s; these tests loop a
// testsrc2 clip with noise at about 4 Mbit/s instead, so that a 2 s segment is about
// 1 MB and quotas and min_free bite within seconds, and a fragment (~500 kB) is big
// enough to be cut off part-way by a full disk.

// noisyClip writes a 4 s, 640x360, 25 fps, about 4 Mbit/s clip of noise with an IDR (and
// SPS/PPS) every gop frames for CameraSpec.File into a temporary directory of the test
// and returns its path. ffmpeg takes about half a second.
func noisyClip(t *testing.T, gop int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "noisy.h264")
	if err := simcam.GenerateClip(path, simcam.NoiseClip{Width: 640, Height: 360, FPS: 25, Frames: 100, GOP: gop, Bitrate: "4M"}); err != nil {
		t.Fatal(err)
	}
	return path
}

// requireRoot fails (not skips) the test when it cannot mount: CI runs as root, and a
// skipped disk-full test would pass without testing anything.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test mounts a tmpfs to fill a real filesystem and must run as root (CI does)")
	}
}

// diskRig is a camera recorded by a Writer onto storage and catalog in dir (a tmpfs),
// with a Retention on the same storage on the real clock.
type diskRig struct {
	t         *testing.T
	ctx       context.Context
	dir       string
	cfg       *configs.Config
	st        *Storage
	cat       *catalog.Catalog
	w         *Writer
	ret       *Retention
	diskFulls atomic.Int64 // calls of the Writer's DiskFull hook
	logs      *retLog      // what the Writer and Retention logged

	stop func() // stops camera, source and Writer and waits for them
}

// startDiskRig records camera "cam" (2 s segments) of cfg with storage.path dir.
func startDiskRig(t *testing.T, dir string, cfg *configs.Config) *diskRig {
	t.Helper()
	clip := noisyClip(t, 25)
	ctx := context.Background()
	rig := &diskRig{t: t, ctx: ctx, dir: dir, cfg: cfg, logs: &retLog{}}
	log := slog.New(rig.logs)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("warnings and errors logged by the Writer and Retention:\n%s", rig.logs.dump(slog.LevelWarn))
		}
	})
	var err error
	rig.st, rig.cat = openStore(t, dir)
	if rig.ret, err = NewRetention(cfg, rig.st, rig.cat, log, time.Now); err != nil {
		t.Fatal(err)
	}
	cam, err := simcam.New(simcam.Config{Listen: "127.0.0.1:0", Cameras: []simcam.CameraSpec{{Path: "cam", File: clip}}})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); cam.Run(runCtx) }()
	<-cam.Ready()
	cc := cfg.Cameras[0]
	cc.Main = configs.Stream{URL: cam.URL("cam"), Transport: configs.TransportTCP, StallTimeout: configs.Duration(5 * time.Second)}
	hub := ingest.NewHub()
	rig.w, err = NewWriter(cc, rig.st, rig.cat, hub, log, WriterOptions{DiskFull: func() {
		rig.diskFulls.Add(1)
		rig.ret.Poke()
	}})
	if err != nil {
		t.Fatal(err)
	}
	src, err := ingest.NewSource(cc.ID, ingest.StreamMain, cc.Main, hub, nil)
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(2)
	go func() { defer wg.Done(); rig.w.Run(runCtx) }()
	go func() { defer wg.Done(); src.Run(runCtx) }()
	var once sync.Once
	rig.stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
		})
	}
	t.Cleanup(rig.stop)
	return rig
}

// dump formats the records at level or above, one a line.
func (l *retLog) dump(level slog.Level) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, r := range l.recs {
		if r.Level < level {
			continue
		}
		fmt.Fprintf(&b, "%s %s %s", r.Time.Format("15:04:05.000"), r.Level, r.Message)
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		})
		b.WriteByte('\n')
	}
	return b.String()
}

func diskCamera() configs.Camera {
	c := testCamera(2 * time.Second)
	c.Record.Retention = configs.Duration(24 * time.Hour)
	return c
}

// waitFor polls cond every 20 ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

func (rig *diskRig) segments() []catalog.Segment {
	rig.t.Helper()
	segs, err := rig.cat.AllSegments(rig.ctx)
	if err != nil {
		rig.t.Fatal(err)
	}
	return segs
}

func (rig *diskRig) closed() []catalog.Segment {
	var out []catalog.Segment
	for _, s := range rig.segments() {
		if !s.Open {
			out = append(out, s)
		}
	}
	return out
}

func (rig *diskRig) abs(rel string) string { return filepath.Join(rig.dir, filepath.FromSlash(rel)) }

// check asserts the catalog's promise: every closed row matches its file's size and
// SHA-256 (and, with play, the file plays), every open row has its file, and every file
// under recordings/ has a row. It returns the rows.
func (rig *diskRig) check(when string, play bool) []catalog.Segment {
	t := rig.t
	t.Helper()
	segs := rig.segments()
	rows := map[string]bool{}
	for _, s := range segs {
		rows[s.Path] = true
		if s.Open {
			if _, err := os.Stat(rig.abs(s.Path)); err != nil {
				t.Errorf("%s: open segment %s: %v", when, s.Path, err)
			}
			continue
		}
		size, sum := fileSHA(t, rig.abs(s.Path))
		if size != s.Bytes || sum != s.SHA256 {
			t.Errorf("%s: %s: catalog says %d bytes sha %s, the file has %d bytes sha %s", when, s.Path, s.Bytes, s.SHA256, size, sum)
		}
		if play {
			checkPlayable(t, rig.abs(s.Path))
		}
	}
	err := rig.st.walkSegments(func(rel string, _ int64) error {
		if !rows[rel] {
			t.Errorf("%s: file %s has no catalog row", when, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return segs
}

// usage is the bytes of all segment files.
func (rig *diskRig) usage() int64 {
	var n int64
	if err := rig.st.walkSegments(func(_ string, size int64) error { n += size; return nil }); err != nil {
		rig.t.Fatal(err)
	}
	return n
}

// fillDisk writes a filler file in dir (outside recordings/) until the filesystem
// refuses with ENOSPC, and returns its path and size.
func fillDisk(t *testing.T, dir string) (string, int64) {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := bytes.Repeat([]byte{0xa5}, 1<<20)
	var n int64
	for chunk := len(buf); chunk >= 512; chunk /= 8 {
		for {
			w, err := f.Write(buf[:chunk])
			n += int64(w)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				t.Fatalf("filling the disk: %v", err)
			}
		}
	}
	return path, n
}

// growFiller appends n bytes to the filler file.
func growFiller(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(bytes.Repeat([]byte{0x5a}, n)); err != nil {
		t.Fatalf("growing the filler: %v", err)
	}
}

// stateLog records every state the Writer shows, polled every 10 ms.
type stateLog struct {
	mu     sync.Mutex
	seen   []WriterStats
	paused time.Time // when StatePaused was first seen
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
}

func watchStates(w *Writer) *stateLog {
	l := &stateLog{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			st := w.Stats()
			l.mu.Lock()
			if n := len(l.seen); n == 0 || l.seen[n-1].State != st.State || l.seen[n-1].Reason != st.Reason {
				l.seen = append(l.seen, st)
				if st.State == StatePaused && l.paused.IsZero() {
					l.paused = time.Now()
				}
			}
			l.mu.Unlock()
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return l
}

func (l *stateLog) close() {
	l.once.Do(func() { close(l.stop) })
	<-l.done
}

func (l *stateLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var parts []string
	for _, s := range l.seen {
		p := string(s.State)
		if s.Reason != "" {
			p += " (" + s.Reason + ")"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " → ")
}

func (l *stateLog) sawState(s State) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, st := range l.seen {
		if st.State == s {
			return true
		}
	}
	return false
}

func (l *stateLog) pausedAt() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.paused
}

// sameSegment reports whether two rows describe the same, unchanged segment.
func sameSegment(a, b catalog.Segment) bool {
	return a.ID == b.ID && a.Path == b.Path && a.Start.Equal(b.Start) && a.End.Equal(b.End) && a.Bytes == b.Bytes &&
		a.SHA256 == b.SHA256 && a.Frames == b.Frames && a.Open == b.Open
}

// overlapsLock is the catalog's definition of "a lock covers the segment".
func overlapsLock(l catalog.Lock, camera string, start, end time.Time) bool {
	return retLocked([]catalog.Lock{l}, catalog.Segment{Camera: camera, Start: start, End: end})
}

// TestDiskFullLockedOnlyPausesAndResumes fills a real filesystem (a 32 MiB tmpfs holding
// the segments and the catalog) while a camera records and everything recorded is under
// an evidence lock: the Writer must pause with state paused_disk_full naming the lack of
// space, without a panic and without a corrupt segment; retention must not touch locked
// footage and must report DiskFullLockedOnly; every closed segment must play and match
// its row; and once space frees, recording must resume within a few seconds in a new
// segment marked GapBefore that plays.
//
// The catalog is on the full filesystem too, so its writes can fail (SQLITE_FULL) just
// when the Writer closes or drops its segment: that must not leave a row open, or one
// pointing at a file that is gone, while recording is paused or after it resumed.
func TestDiskFullLockedOnlyPausesAndResumes(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	dir := mountTmpfs(t, 32<<20)
	cfg := &configs.Config{Storage: configs.Storage{Path: dir, MinFree: configs.FreeSpace{Bytes: 4 << 20}},
		Cameras: []configs.Camera{diskCamera()}}
	rig := startDiskRig(t, dir, cfg)
	states := watchStates(rig.w)
	defer states.close()
	ctx := rig.ctx

	// 1. Record two segments and lock everything recorded so far.
	if !waitFor(20*time.Second, func() bool { return len(rig.closed()) >= 2 }) {
		t.Fatalf("no two closed segments within 20 s; writer %+v, states %s", rig.w.Stats(), states)
	}
	first := rig.closed()[0]
	lock := catalog.Lock{Camera: "cam", Start: first.Start, End: time.Now(), Reason: "test: evidence", Created: time.Now()}
	var err error
	if lock.ID, err = rig.cat.AddLock(ctx, lock); err != nil {
		t.Fatal(err)
	}
	locked := rig.closed()
	for _, s := range locked {
		if !overlapsLock(lock, s.Camera, s.Start, s.End) {
			t.Fatalf("segment %s (%s–%s) recorded before the lock is not covered by it", s.Path, s.Start, s.End)
		}
	}

	// 2. Fill the disk and keep recording: the Writer pauses. A sweep first, as serve's
	// first sweep would, so that the catalog's reserve exists.
	if _, err := rig.ret.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	filler, fill := fillDisk(t, dir)
	space, _ := rig.st.Space()
	t.Logf("filled the disk with %d bytes; %d bytes free; %d segments locked", fill, space.Free, len(locked))
	if !waitFor(15*time.Second, func() bool { return rig.w.Stats().State == StatePaused }) {
		t.Fatalf("the Writer did not pause within 15 s of the disk filling up; states %s", states)
	}
	st := rig.w.Stats()
	if !strings.Contains(st.Reason, "no space left on device") {
		t.Errorf("paused with reason %q; want it to name the lack of space", st.Reason)
	}
	if rig.diskFulls.Load() == 0 {
		t.Error("the Writer paused for lack of space without asking retention for a sweep")
	}

	// 3. Retention cannot help: only locked footage is left (or becomes left once the
	// unlocked segments recorded after the lock are gone).
	var rep SweepReport
	for i := 0; i < 3 && !rep.DiskFullLockedOnly; i++ {
		rep, err = rig.ret.Sweep(ctx)
		t.Logf("sweep on the full disk: deleted %d segment(s) (%d bytes), DiskFullLockedOnly %v, err %v",
			len(rep.Deleted), rep.DeletedBytes, rep.DiskFullLockedOnly, err)
	}
	if !rep.DiskFullLockedOnly || !rig.ret.Status().DiskFullLockedOnly {
		t.Errorf("retention on a full disk with only locked footage: report %+v, status DiskFullLockedOnly %v; want DiskFullLockedOnly",
			rep, rig.ret.Status().DiskFullLockedOnly)
	}
	deletions, err := rig.cat.Deletions(ctx, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range deletions {
		// The segment the full disk interrupted before its first fragment held no footage:
		// its row is discarded even under the lock. Anything with bytes must stay.
		if d.Bytes > 0 && overlapsLock(lock, d.Camera, d.Start, d.End) {
			t.Errorf("locked segment %s was deleted (%s)", d.Path, d.Reason)
		}
	}
	checkLocked := func(when string) {
		t.Helper()
		for _, want := range locked {
			got, err := rig.cat.SegmentByPath(ctx, want.Path)
			if err != nil {
				t.Errorf("%s: locked segment %s: %v", when, want.Path, err)
				continue
			}
			if !sameSegment(got, want) {
				t.Errorf("%s: locked segment's row changed: %+v, was %+v", when, got, want)
			}
			if size, sum := fileSHA(t, rig.abs(want.Path)); size != want.Bytes || sum != want.SHA256 {
				t.Errorf("%s: locked segment %s changed on disk", when, want.Path)
			}
		}
	}
	checkLocked("disk full")

	// 4. While paused, nothing is open and everything on disk plays and matches its row.
	time.Sleep(time.Second)
	if st := rig.w.Stats(); st.State != StatePaused {
		t.Errorf("a second after pausing the Writer is %s (%s); want it still paused while the disk is full", st.State, st.Reason)
	}
	for _, s := range rig.check("paused on a full disk", true) {
		if s.Open {
			t.Errorf("paused on a full disk, segment %s is still open in the catalog (bytes %d)", s.Path, s.Bytes)
		}
	}

	// 5. Space frees: recording resumes in a new segment marked GapBefore.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	if !waitFor(10*time.Second, func() bool { return rig.w.Stats().State == StateRecording }) {
		t.Fatalf("recording did not resume within 10 s of space freeing; states %s", states)
	}
	t.Logf("recording resumed %v after space freed", time.Since(freed).Round(time.Millisecond))
	pausedAt := states.pausedAt()
	resumed := func() []catalog.Segment {
		var out []catalog.Segment
		for _, s := range rig.closed() {
			if s.Start.After(pausedAt) {
				out = append(out, s)
			}
		}
		return out
	}
	if !waitFor(10*time.Second, func() bool { return len(resumed()) >= 1 }) {
		t.Fatalf("no segment closed within 10 s of resuming; states %s", states)
	}
	if rep, err := rig.ret.Sweep(ctx); err != nil || rep.DiskFullLockedOnly || rig.ret.Status().DiskFullLockedOnly {
		t.Errorf("sweep after space freed: %+v, %v; want no DiskFullLockedOnly", rep, err)
	}
	rig.stop()
	states.close()

	after := resumed()
	if len(after) == 0 || !after[0].GapBefore {
		t.Errorf("the first segment after the pause %+v is not marked GapBefore", after)
	}
	if st := rig.w.Stats(); st.Gaps == 0 {
		t.Errorf("writer stats %+v count no gap for the pause", st)
	}
	for _, s := range rig.check("after resuming", true) {
		if s.Open {
			t.Errorf("segment %s is open after the Writer stopped", s.Path)
		}
	}
	checkLocked("after resuming")
	if states.sawState(StateError) {
		t.Errorf("the Writer went into state error on a full disk; want paused_disk_full: %s", states)
	}
	t.Logf("writer states: %s", states)
}

// TestDiskFullQuotaAndMinFreeOnTmpfs records onto a 24 MiB tmpfs with storage.quota 4 MiB
// and storage.min_free 8 MiB, sweeping every 250 ms while recording (so that every plan
// deletes at most one segment and the mass-deletion guard never holds: no confirmation
// is used). First the quota bites; then a filler file grows on the same filesystem until
// min_free bites. After every sweep: the segment files stay within the quota plus one
// segment, free space stays at min_free less one segment, deletions take the oldest
// unlocked segment first, and the locked oldest segment is untouched. The Writer never
// pauses, and every remaining segment plays and matches its row.
func TestDiskFullQuotaAndMinFreeOnTmpfs(t *testing.T) {
	requireRoot(t)
	const (
		size    = 24 << 20
		quota   = 4 << 20
		minFree = 8 << 20
		filler  = 12 << 20
	)
	dir := mountTmpfs(t, size)
	cfg := &configs.Config{Storage: configs.Storage{Path: dir, Quota: quota, MinFree: configs.FreeSpace{Bytes: minFree}},
		Cameras: []configs.Camera{diskCamera()}}
	rig := startDiskRig(t, dir, cfg)
	ctx := rig.ctx
	started := time.Now()

	if !waitFor(20*time.Second, func() bool { return len(rig.closed()) >= 1 }) {
		t.Fatalf("no closed segment within 20 s; writer %+v", rig.w.Stats())
	}
	oldest := rig.closed()[0]
	lock := catalog.Lock{Camera: "cam", Start: oldest.Start, End: oldest.End, Reason: "test: evidence", Created: time.Now()}
	if _, err := rig.cat.AddLock(ctx, lock); err != nil {
		t.Fatal(err)
	}

	var maxSeg int64
	reasons := map[string]int{}
	sweeps := 0
	sweep := func(phase string) {
		t.Helper()
		for _, s := range rig.closed() {
			maxSeg = max(maxSeg, s.Bytes)
		}
		rep, err := rig.ret.Sweep(ctx)
		sweeps++
		if err != nil {
			t.Errorf("%s: sweep: %v", phase, err)
		}
		if rep.Held {
			t.Errorf("%s: the mass-deletion guard held a plan of %d of %d bytes; sweeping every 250 ms should keep plans small",
				phase, rep.PlannedBytes, rep.TotalBytes)
		}
		usage := rig.usage()
		space, err := rig.st.Space()
		if err != nil {
			t.Fatal(err)
		}
		if usage > quota+maxSeg {
			t.Errorf("%s: after a sweep the segments take %d bytes; storage.quota %d plus one segment (%d) is the bound", phase, usage, quota, maxSeg)
		}
		if space.Free+uint64(maxSeg) < minFree {
			t.Errorf("%s: after a sweep %d bytes are free; storage.min_free %d less one segment (%d) is the bound", phase, space.Free, minFree, maxSeg)
		}
		var newest time.Time
		for _, d := range rep.Deleted {
			reasons[d.Reason]++
			if overlapsLock(lock, d.Camera, d.Start, d.End) {
				t.Errorf("%s: locked segment %s deleted (%s)", phase, d.Path, d.Reason)
			}
			if _, err := os.Stat(rig.abs(d.Path)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: deleted segment %s still has its file: %v", phase, d.Path, err)
			}
			if d.Start.After(newest) {
				newest = d.Start
			}
		}
		if len(rep.Deleted) > 0 {
			for _, s := range rig.closed() {
				if !overlapsLock(lock, s.Camera, s.Start, s.End) && s.Start.Before(newest) {
					t.Errorf("%s: segment %s was kept although a younger one (from %s) was deleted", phase, s.Path, newest)
				}
			}
		}
		if st := rig.w.Stats(); st.State != StateRecording {
			t.Errorf("%s: the Writer is %s (%s); retention must keep it recording", phase, st.State, st.Reason)
		}
	}

	// Phase 1: the quota bites.
	for time.Since(started) < 16*time.Second && !t.Failed() {
		time.Sleep(250 * time.Millisecond)
		sweep("quota")
	}
	if reasons[ReasonStorageQuota] == 0 {
		t.Errorf("no deletion for storage.quota in phase 1 (%v); recorded %d bytes", reasons, rig.w.Stats().RecordedBytes)
	}

	// Phase 2: something else fills the filesystem; min_free bites.
	fillerPath := filepath.Join(dir, "filler")
	for grown := 0; grown < filler && !t.Failed(); grown += 512 << 10 {
		growFiller(t, fillerPath, 512<<10)
		time.Sleep(250 * time.Millisecond)
		sweep("min_free")
	}
	for until := time.Now().Add(6 * time.Second); time.Now().Before(until) && !t.Failed(); {
		time.Sleep(250 * time.Millisecond)
		sweep("min_free")
	}
	if reasons[ReasonMinFree] == 0 {
		t.Errorf("no deletion for storage.min_free in phase 2 (%v)", reasons)
	}

	rig.stop()
	segs := rig.check("after recording", true)
	got, err := rig.cat.SegmentByPath(ctx, oldest.Path)
	if err != nil || !sameSegment(got, oldest) {
		t.Errorf("locked segment %s: %+v, %v; want it untouched: %+v", oldest.Path, got, err, oldest)
	} else if size, sum := fileSHA(t, rig.abs(oldest.Path)); size != oldest.Bytes || sum != oldest.SHA256 {
		t.Errorf("locked segment %s changed on disk", oldest.Path)
	}
	if st := rig.w.Stats(); st.Gaps != 0 || rig.diskFulls.Load() != 0 {
		t.Errorf("writer %+v, %d disk-full calls; want it to have recorded without interruption", st, rig.diskFulls.Load())
	}
	t.Logf("%d sweeps; deletions by reason %v; %d segments left; largest segment %d bytes; %v",
		sweeps, reasons, len(segs), maxSeg, time.Since(started).Round(time.Millisecond))
}

// TestDiskFullRetentionFreesAFullDisk fills a real filesystem (a 32 MiB tmpfs holding the
// segments and the catalog) to the last byte while a camera records unlocked footage,
// with Retention running as townwatch runs it (poked by the Writer's DiskFull hook).
// Retention must restore storage.min_free (1 MiB) by deleting the oldest footage within a
// few seconds, recording its deletions in the catalog (on the very filesystem that is
// full) and removing their files, without touching anything else; then, once the other
// data that filled the disk goes, recording resumes and every closed segment plays and
// matches its row.
func TestDiskFullRetentionFreesAFullDisk(t *testing.T) {
	requireRoot(t)
	const minFree = 1 << 20
	dir := mountTmpfs(t, 32<<20)
	cfg := &configs.Config{Storage: configs.Storage{Path: dir, MinFree: configs.FreeSpace{Bytes: minFree}},
		Cameras: []configs.Camera{diskCamera()}}
	rig := startDiskRig(t, dir, cfg)
	states := watchStates(rig.w)
	defer states.close()
	ctx, cancel := context.WithCancel(rig.ctx)
	retDone := make(chan struct{})
	var stopOnce sync.Once
	stopRetention := func() { stopOnce.Do(func() { cancel(); <-retDone }) }
	defer stopRetention()
	// Retention runs as townwatch runs it: a sweep at start (nothing to do), then on its
	// ticker and whenever the Writer pokes it.
	go func() { defer close(retDone); rig.ret.Run(ctx) }()

	if !waitFor(20*time.Second, func() bool { return len(rig.closed()) >= 3 }) {
		t.Fatalf("no three closed segments within 20 s; writer %+v, states %s", rig.w.Stats(), states)
	}
	// Fill once the open segment has a fragment on disk, so that the Writer closes it (the
	// locked-only test fills before the first fragment: the Writer drops that segment).
	time.Sleep(1200 * time.Millisecond)
	before := rig.closed()

	filler, fill := fillDisk(t, dir)
	t.Logf("filled the disk with %d bytes; %d segments (%d bytes) of unlocked footage", fill, len(before), before[0].Bytes+before[1].Bytes+before[2].Bytes)
	if !waitFor(15*time.Second, func() bool { return rig.w.Stats().State == StatePaused }) {
		t.Fatalf("the Writer did not pause within 15 s of the disk filling up; states %s", states)
	}
	restored := waitFor(15*time.Second, func() bool {
		space, err := rig.st.Space()
		return err == nil && space.Free >= minFree
	})
	space, _ := rig.st.Space()
	rs := rig.ret.Status()
	if !restored {
		t.Errorf("15 s after the disk filled up with %d segments of unlocked footage on it, %d bytes are free (min_free %d); retention: %d sweeps, last error %q",
			len(before), space.Free, minFree, rs.Sweeps, rs.LastError)
	}
	deletions, err := rig.cat.Deletions(rig.ctx, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	remaining := rig.closed()
	for _, d := range deletions {
		for _, s := range remaining {
			if s.Start.Before(d.Start) {
				t.Errorf("%s was deleted (%s) while the older %s was kept; want the oldest first", d.Path, d.Reason, s.Path)
			}
		}
		// A deletion is recorded before its file goes, so a sweep still running may be
		// between the two.
		gone := waitFor(5*time.Second, func() bool {
			_, err := os.Stat(rig.abs(d.Path))
			return errors.Is(err, os.ErrNotExist)
		})
		if !gone {
			t.Errorf("deleted segment %s still has its file 5 s after its deletion was recorded", d.Path)
		}
	}
	t.Logf("%d bytes free; %d deletions; retention status: sweeps %d, DiskFullLockedOnly %v, hold %v, last error %q",
		space.Free, len(deletions), rs.Sweeps, rs.DiskFullLockedOnly, rs.Hold, rs.LastError)

	// The rest of what filled the disk goes: recording resumes.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool { return rig.w.Stats().State == StateRecording }) {
		t.Errorf("recording did not resume within 10 s of space freeing; states %s", states)
	}
	stopRetention()
	rig.stop()
	for _, s := range rig.check("after resuming", true) {
		if s.Open {
			t.Errorf("segment %s is open after the Writer stopped", s.Path)
		}
	}
	if states.sawState(StateError) {
		t.Errorf("the Writer went into state error on a full disk; want paused_disk_full: %s", states)
	}
	t.Logf("writer states: %s", states)
}
