package exports

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
)

// The bundler here stands in for package evidence (tested there against real footage):
// these tests are about the job's life — queue, progress, cancel, restart, retention.
type rig struct {
	cat *catalog.Catalog
	dir string
	m   *Manager
	// release, when not nil, holds the bundler after its first write until closed.
	release chan struct{}
}

var t0 = time.Date(2026, 12, 5, 22, 10, 0, 0, time.UTC)

func newRig(t *testing.T, retention time.Duration, now func() time.Time) *rig {
	t.Helper()
	dir := t.TempDir()
	cat, err := catalog.Open(context.Background(), filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	r := &rig{cat: cat, dir: filepath.Join(dir, "exports")}
	r.m, err = New(Options{Catalog: cat, Dir: r.dir, Retention: retention, Now: now,
		Name: func(j catalog.ExportJob) string { return "bundle.zip" },
		Bundle: func(ctx context.Context, w io.Writer, j catalog.ExportJob, progress func(done, total int64)) error {
			for i := int64(1); i <= 4; i++ {
				if _, err := w.Write(bytes.Repeat([]byte{byte(i)}, 1<<20)); err != nil {
					return err
				}
				progress(i<<20, 4<<20)
				if r.release != nil {
					select {
					case <-r.release:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) submit(t *testing.T, lock bool) int64 {
	t.Helper()
	id, err := r.m.Submit(context.Background(), Request{Actor: "straznik", Cameras: []string{"namesti", "most"}, From: t0, To: t0.Add(30 * time.Minute),
		Reason: "vloupání", Case: "KRPP-77/2026", Recipient: "Policie ČR", AuditID: 1, Lock: lock})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (r *rig) waitState(t *testing.T, id int64, state string) Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := r.m.Status(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == state {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("export %d is %s (%s), want %s", id, st.State, st.Error, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *rig) files(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestExportRunsToADigestedBundleAndLocksItsRange(t *testing.T) {
	r := newRig(t, 0, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.m.Run(ctx)
	id := r.submit(t, true)
	st := r.waitState(t, id, catalog.ExportDone)
	b, err := os.ReadFile(filepath.Join(r.dir, st.File))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if st.Bytes != 4<<20 || int64(len(b)) != st.Bytes || st.SHA256 != hex.EncodeToString(sum[:]) || st.Done != st.Total {
		t.Errorf("done job %+v: want 4 MiB with the file's digest", st)
	}
	if names := r.files(t); len(names) != 1 || strings.HasSuffix(names[0], ".part") {
		t.Errorf("export directory holds %v, want the one bundle", names)
	}
	locks, err := r.cat.Locks(ctx, t0)
	if err != nil || len(locks) != 2 || locks[0].Actor != "straznik" || !strings.Contains(locks[0].Reason, "KRPP-77/2026") {
		t.Errorf("locks %+v (%v): want one per camera, by the requester, naming the case", locks, err)
	}
}

// Cancelling a running export stops it within a second and leaves no partial file.
func TestCancelStopsARunningExportAndLeavesNothing(t *testing.T) {
	r := newRig(t, 0, nil)
	r.release = make(chan struct{}) // the bundler stalls after its first MiB
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.m.Run(ctx)
	id := r.submit(t, false)
	st := r.waitState(t, id, catalog.ExportRunning)
	for st.Done == 0 {
		st = r.waitState(t, id, catalog.ExportRunning)
	}
	if st.Total != 4<<20 || st.ETA <= 0 {
		t.Errorf("running job %+v: want progress of 4 MiB and an ETA", st)
	}
	began := time.Now()
	if err := r.m.Cancel(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > time.Second {
		t.Errorf("cancel took %v, want under a second", took)
	}
	r.waitState(t, id, catalog.ExportCancelled)
	if names := r.files(t); len(names) != 0 {
		t.Errorf("after cancel the export directory holds %v", names)
	}
	// A queued job is cancelled without running; a finished one cannot be cancelled.
	r.release = nil
	if err := r.m.Cancel(context.Background(), id); !errors.Is(err, catalog.ErrExportState) {
		t.Errorf("cancelling a cancelled job: %v, want ErrExportState", err)
	}
}

// A restart requeues the job that was running and removes its partial file; finished
// bundles past exports.retention are removed and their jobs marked expired.
func TestRestartRequeuesAndRetentionExpires(t *testing.T) {
	now := t0
	r := newRig(t, 24*time.Hour, func() time.Time { return now })
	ctx := context.Background()
	id := r.submit(t, false)
	// As a crash leaves it: running, with a partial file.
	if err := r.cat.SetExportState(ctx, id, catalog.ExportRunning, "", "", 0, "", now); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.dir, "1-bundle.zip.part"), []byte("torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { r.m.Run(runCtx); close(done) }()
	st := r.waitState(t, id, catalog.ExportDone)
	if names := r.files(t); len(names) != 1 || names[0] != st.File {
		t.Errorf("after the restart the directory holds %v, want only %s", names, st.File)
	}
	stop()
	<-done
	now = now.Add(25 * time.Hour)
	r.m.expire(ctx)
	if st, _ := r.m.Status(ctx, id); st.State != catalog.ExportExpired {
		t.Errorf("a day past retention the job is %s, want expired", st.State)
	}
	if names := r.files(t); len(names) != 0 {
		t.Errorf("expired bundle still there: %v", names)
	}
}
