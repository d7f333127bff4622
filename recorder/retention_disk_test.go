package recorder

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// TestRetentionDiskFullOnTmpfs runs retention against a real, small filesystem that also
// holds the catalog, as storage.path does in production: 60 MiB of recording through a
// 16 MiB disk stays within storage.quota and min_free; then everything is locked and
// the disk fills to the last byte: nothing locked is deleted, DiskFullLockedOnly is
// raised and nothing fails (the catalog writes into the reserve retention keeps for
// this); releasing one lock lets retention restore min_free plus a new reserve.
func TestRetentionDiskFullOnTmpfs(t *testing.T) {
	t.Parallel()
	const (
		disk  = 16 << 20
		quota = 10 << 20
		size  = 256 << 10 // one segment
	)
	dir := mountTmpfs(t, disk)
	cams := []string{"cam-a", "cam-b"}
	cfg := &configs.Config{Storage: configs.Storage{Quota: quota, MinFree: configs.FreeSpace{Percent: 25}}}
	for _, c := range cams {
		cfg.Cameras = append(cfg.Cameras, retCamera(c, 7*24*time.Hour, 0))
	}
	fx := newRetFixture(t, dir, cfg)
	space := func() DiskSpace {
		t.Helper()
		sp, err := fx.st.Space()
		if err != nil {
			t.Fatal(err)
		}
		return sp
	}
	total := func() int64 {
		n, err := fx.cat.TotalBytes(fx.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	// 1. Two hours of two cameras: 240 segments, 60 MiB.
	rc := fx.recorder(cams, retSeg, size)
	fx.simulate(rc, retT0.Add(2*time.Hour), sweepInterval, func(SweepReport) {
		if n := total(); n > quota {
			t.Fatalf("at %s %d bytes stored, over storage.quota %d", fx.clock.Now(), n, quota)
		}
		if sp := space(); sp.Free < sp.Total/4 {
			t.Fatalf("at %s %d bytes free, below min_free %d", fx.clock.Now(), sp.Free, sp.Total/4)
		}
	})
	if len(fx.deletions()) < 180 {
		t.Fatalf("only %d deletions for 240 segments through a 16 MiB disk", len(fx.deletions()))
	}

	// 2. Everything is evidence from now on; record until the disk is full.
	var lockB int64
	for _, cam := range cams {
		id, err := fx.cat.AddLock(fx.ctx, catalog.Lock{Camera: cam, Start: retT0, End: retT0.Add(365 * 24 * time.Hour),
			Reason: "incident 3: everything", Created: fx.clock.Now()})
		if err != nil {
			t.Fatal(err)
		}
		lockB = id
	}
	now := fx.clock.Now()
	for space().Free > 3*size {
		now = now.Add(sweepInterval)
		fx.clock.Set(now)
		rc.advance(now)
		if rep := fx.sweep(fx.ret); len(rep.Deleted) != 0 {
			t.Fatalf("deleted %d segments under a lock", len(rep.Deleted))
		}
	}
	// The last bytes go to a segment the writer could not finish: not footage yet.
	filler, err := os.Create(filepath.Join(dir, "partial-write"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err = filler.Write(bytes.Repeat([]byte{1}, 4096)); err != nil {
			break
		}
	}
	filler.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the disk: %v, want ENOSPC", err)
	}
	segsBefore := fx.segments()
	rep, err := fx.ret.Sweep(fx.ctx)
	if err != nil {
		t.Fatalf("sweep on a full disk of locked footage: %v", err)
	}
	st := fx.ret.Status()
	if len(rep.Deleted) != 0 || !rep.DiskFullLockedOnly || !st.DiskFullLockedOnly {
		t.Fatalf("full disk, all locked: deleted %d, DiskFullLockedOnly %v/%v; want nothing deleted and the flag set",
			len(rep.Deleted), rep.DiskFullLockedOnly, st.DiskFullLockedOnly)
	}
	var closedBytes int64
	for _, s := range segsBefore {
		if !s.Open {
			closedBytes += s.Bytes
		}
		if !fx.fileExists(s.Path) {
			t.Errorf("locked segment %s lost its file", s.Path)
		}
	}
	if locked := st.LockedBytes["cam-a"] + st.LockedBytes["cam-b"]; locked != closedBytes {
		t.Errorf("Status locked bytes %d, want all %d closed bytes", locked, closedBytes)
	}
	// Full but for the catalog's reserve, which the sweep released for its writes.
	if st.DiskFree > catalogReserveBytes+64<<10 || fx.log.count(slog.LevelWarn, "released the catalog reserve") != 1 {
		t.Errorf("the disk shows %d bytes free after the sweep; want only the released catalog reserve (%d)", st.DiskFree, catalogReserveBytes)
	}

	// 3. cam-b's lock is released: retention must restore min_free on the full disk.
	if err := fx.cat.RemoveLock(fx.ctx, lockB); err != nil {
		t.Fatal(err)
	}
	rep, err = fx.ret.Sweep(fx.ctx)
	if err != nil {
		t.Fatalf("sweep after releasing a lock on a full disk: %v", err)
	}
	if sp := space(); sp.Free < sp.Total/4 || rep.DiskFullLockedOnly || fx.ret.Status().DiskFullLockedOnly {
		t.Fatalf("after releasing cam-b: %d free (min_free %d), DiskFullLockedOnly %v", sp.Free, sp.Total/4, rep.DiskFullLockedOnly)
	}
	for _, d := range rep.Deleted {
		if d.Camera != "cam-b" {
			t.Errorf("deleted %s of %s, which is still locked", d.Path, d.Camera)
		}
	}
	for _, s := range segsBefore {
		if s.Camera == "cam-a" && !fx.fileExists(s.Path) {
			t.Errorf("locked segment %s lost its file", s.Path)
		}
	}
	if info, err := os.Stat(filepath.Join(dir, catalogReserveFile)); err != nil || info.Size() != catalogReserveBytes {
		t.Errorf("no new catalog reserve after space was restored: %v", err)
	}
	t.Logf("released: held %v, deleted %d segments (%d bytes); planned %d of %d", rep.Held, len(rep.Deleted), rep.DeletedBytes, rep.PlannedBytes, rep.TotalBytes)
}
