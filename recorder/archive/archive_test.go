package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/archive/s3test"
	"github.com/townwatch/townwatch/recorder/archivetest"
	"github.com/townwatch/townwatch/recorder/catalog"
)

const bucketName = "townwatch-test"

// t0 is when the fixture's footage starts; the job's clock runs from an hour later.
var t0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

var (
	templateOnce sync.Once
	template     archivetest.Template
	templateErr  error
)

// fixture is a recorded archive on the local disk (one camera, 4 s segments made by
// ffmpeg), a real S3 server, and an archive job and tier over them.
type fixture struct {
	s3    *s3test.Server
	dir   string
	st    *recorder.Storage
	cat   *catalog.Catalog
	segs  []catalog.Segment
	job   *Job
	tier  *Tier
	bytes []byte // the template's bytes: what every segment holds
}

// newFixture makes a fixture of its own for each test: storage, catalog and S3 server.
// That is what lets the tests run in parallel (they wait on S3 round trips and on the
// archiving processes TestArchiveSurvivesKills starts and kills). The two that stop their
// S3 server and start it again on the same port do not: while it is down, a server of
// another test could be given that port.
func newFixture(t testing.TB, length time.Duration) *fixture {
	t.Helper()
	ctx := context.Background()
	templateOnce.Do(func() { template, templateErr = archivetest.MakeTemplate(ctx, 4*time.Second) })
	if templateErr != nil {
		t.Fatalf("template segment (ffmpeg): %v", templateErr)
	}
	fx := &fixture{s3: s3test.Start(t), dir: t.TempDir()}
	var err error
	if fx.bytes, err = os.ReadFile(template.Path); err != nil {
		t.Fatal(err)
	}
	if fx.cat, err = catalog.Open(ctx, filepath.Join(fx.dir, "catalog.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fx.cat.Close() })
	built, err := archivetest.Build(ctx, archivetest.Spec{Dir: fx.dir, Catalog: fx.cat, Template: template,
		Cameras: []string{"cam"}, From: t0, Duration: length})
	if err != nil {
		t.Fatal(err)
	}
	fx.segs = built["cam"]
	if fx.st, err = recorder.OpenStorage(fx.dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fx.st.Close() })
	b, err := New(Options{Endpoint: fx.s3.Addr, Bucket: bucketName, Region: "us-east-1",
		AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if fx.tier, err = NewTier(b, fx.dir, 64<<20); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fx.tier.Close() })
	fx.st.SetArchive(fx.tier)
	fx.job = &Job{Catalog: fx.cat, Storage: fx.st, Bucket: b, After: 30 * time.Minute,
		Now: func() time.Time { return t0.Add(time.Hour) }}
	return fx
}

func (fx *fixture) localExists(t testing.TB, s catalog.Segment) bool {
	t.Helper()
	_, err := os.Stat(filepath.Join(fx.dir, filepath.FromSlash(s.Path)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// checkArchived asserts what an operator would: the row is archived, the local file is
// gone, and the object read back from the server's disk has the row's SHA-256.
func (fx *fixture) checkArchived(t testing.TB, s catalog.Segment) {
	t.Helper()
	row, err := fx.cat.Segment(context.Background(), s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if row.Archived.IsZero() {
		t.Errorf("segment %d: row not marked archived", s.ID)
	}
	if fx.localExists(t, s) {
		t.Errorf("segment %d: local file still there after archiving", s.ID)
	}
	obj, err := os.ReadFile(fx.s3.ObjectFile(bucketName, s.Path))
	if err != nil {
		t.Fatalf("segment %d: object: %v", s.ID, err)
	}
	if sum := sha256.Sum256(obj); hex.EncodeToString(sum[:]) != row.SHA256 {
		t.Errorf("segment %d: object's SHA-256 is not the catalog's", s.ID)
	}
}

// checkBucketMatchesCatalog asserts the bucket holds exactly one object per archived row.
func (fx *fixture) checkBucketMatchesCatalog(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	n, err := fx.job.Bucket.Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := fx.cat.ArchivedSegments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if int64(n) != rows {
		t.Errorf("bucket holds %d objects, the catalog %d archived segments", n, rows)
	}
}

func export(t testing.TB, fx *fixture, from, to time.Time) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := recorder.Export(context.Background(), fx.st, fx.cat, "cam", from, to, &buf, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// After `after`, every due segment is in the bucket with its SHA-256, marked, and gone
// from the disk; the others stay local. An export across both tiers is byte-identical to
// the one made before archiving, and playback's range reads of an archived segment give
// the recorded bytes.
func TestArchiveMovesDueSegments(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, 2*time.Minute) // 30 segments
	before := export(t, fx, t0.Add(10*time.Second), t0.Add(110*time.Second))
	// Due: the segments that ended more than `after` (30 min) ago; the clock makes it
	// the first minute's 15.
	fx.job.Now = func() time.Time { return t0.Add(time.Minute + 30*time.Minute + time.Second) }
	rep := fx.job.Pass(context.Background())
	if rep.Err != nil {
		t.Fatal(rep.Err)
	}
	if rep.Archived != 15 || rep.BacklogSegments != 0 {
		t.Fatalf("pass: %+v; want 15 archived (the first minute), no backlog", rep)
	}
	for i, s := range fx.segs {
		if i < 15 {
			fx.checkArchived(t, s)
		} else if !fx.localExists(t, s) {
			t.Errorf("segment %d is not due but its local file is gone", s.ID)
		}
	}
	fx.checkBucketMatchesCatalog(t)
	if got := fx.job.Stats().ArchivedBytes.Load(); got != 15*int64(len(fx.bytes)) {
		t.Errorf("archived bytes metric = %d, want %d", got, 15*len(fx.bytes))
	}

	if after := export(t, fx, t0.Add(10*time.Second), t0.Add(110*time.Second)); !bytes.Equal(before, after) {
		t.Errorf("export across local and archived footage differs from the export before archiving (%d vs %d bytes)", len(after), len(before))
	}

	m, err := fx.st.OpenMedia(context.Background(), fx.segs[3].Path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, r := range []struct{ off, n int64 }{{0, 1000}, {int64(len(fx.bytes)) / 2, 300 << 10}, {int64(len(fx.bytes)) - 10, 10}} {
		got := make([]byte, r.n)
		if _, err := m.ReadAt(got, r.off); err != nil {
			t.Fatalf("range [%d, +%d): %v", r.off, r.n, err)
		}
		if !bytes.Equal(got, fx.bytes[r.off:r.off+r.n]) {
			t.Errorf("range [%d, +%d) of the archived segment differs from the recorded bytes", r.off, r.n)
		}
	}
}

// An object whose bytes differ when read back (changed on the server between the PUT and
// the read-back) is not trusted: the local file stays, the row stays local, the failure
// is counted. The next pass uploads again and succeeds.
func TestArchiveRefusesCorruptedReadBack(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, 8*time.Second)
	fx.job.afterPut = func(key string) {
		f, err := os.OpenFile(fx.s3.ObjectFile(bucketName, key), os.O_WRONLY, 0)
		if err != nil {
			t.Errorf("tamper: %v", err)
			return
		}
		f.WriteAt([]byte{0xde, 0xad}, 5000)
		f.Close()
	}
	rep := fx.job.Pass(context.Background())
	if rep.Err == nil || rep.Failed != 2 || rep.Archived != 0 {
		t.Fatalf("pass over tampered objects: %+v; want 2 failed, an error", rep)
	}
	for _, s := range fx.segs {
		row, _ := fx.cat.Segment(context.Background(), s.ID)
		if !row.Archived.IsZero() || !fx.localExists(t, s) {
			t.Errorf("segment %d: archived %v, local file kept %v; want not archived, kept", s.ID, row.Archived, fx.localExists(t, s))
		}
	}
	if n := fx.job.Stats().Failures.Load(); n != 2 {
		t.Errorf("failures metric = %d, want 2", n)
	}
	fx.job.afterPut = nil
	if rep := fx.job.Pass(context.Background()); rep.Err != nil || rep.Archived != 2 {
		t.Fatalf("retry pass: %+v", rep)
	}
	for _, s := range fx.segs {
		fx.checkArchived(t, s)
	}
}

// Every step is safe to repeat after a crash: the states a crash can leave are made
// directly (an object put but not marked, a row marked but its local copy not removed),
// and a new job and recorder.Recover bring each to the same end state, with nothing lost
// or duplicated.
func TestArchiveCrashStatesRecover(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, 12*time.Second)
	ctx := context.Background()
	put, marked, untouched := fx.segs[0], fx.segs[1], fx.segs[2]
	// Crash after step 1 (PUT): the object exists, the row is local.
	if err := fx.job.put(ctx, put); err != nil {
		t.Fatal(err)
	}
	// Crash after step 3 (mark): archived row, local file still there.
	if err := fx.job.put(ctx, marked); err != nil {
		t.Fatal(err)
	}
	if err := fx.cat.MarkArchived(ctx, marked.ID, marked.SHA256, t0); err != nil {
		t.Fatal(err)
	}
	// A partial object from an interrupted upload cannot exist in S3, but a wrong one
	// (another writer) can: it must be replaced, not adopted.
	if err := fx.job.Bucket.Put(ctx, untouched.Path, bytes.NewReader([]byte("not the footage")), 15); err != nil {
		t.Fatal(err)
	}

	rep, err := recorder.Recover(ctx, fx.st, fx.cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Finished) != 1 || rep.Finished[0] != marked.Path || len(rep.Mismatched) != 0 {
		t.Errorf("recovery: %+v; want the marked segment's local copy finished, nothing mismatched", rep)
	}
	if fx.localExists(t, marked) {
		t.Error("recovery left the local copy of an archived segment")
	}
	job := &Job{Catalog: fx.cat, Storage: fx.st, Bucket: fx.job.Bucket, After: fx.job.After, Now: fx.job.Now}
	var puts int
	job.afterPut = func(string) { puts++ }
	if p := job.Pass(ctx); p.Err != nil || p.Archived != 2 {
		t.Fatalf("pass after the crash: %+v; want the 2 unmarked segments archived", p)
	}
	if puts != 1 {
		t.Errorf("%d uploads; want 1 (the wrong object replaced; the intact one adopted without upload)", puts)
	}
	for _, s := range fx.segs {
		fx.checkArchived(t, s)
	}
	fx.checkBucketMatchesCatalog(t)
	// Once more, as after a crash right at the end: nothing to do, nothing changes.
	if p := job.Pass(ctx); p.Err != nil || p.Archived != 0 || p.Failed != 0 {
		t.Fatalf("repeated pass: %+v", p)
	}
}

// With the S3 server down nothing is lost: the pass fails, counts it and leaves every
// local file; the backlog shows what waits. Once the server is back the next pass moves it.
func TestArchiveStoreDown(t *testing.T) {
	fx := newFixture(t, 8*time.Second)
	fx.s3.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep := fx.job.Pass(ctx)
	if rep.Err == nil || rep.Archived != 0 || rep.BacklogSegments != 2 || rep.BacklogBytes != 2*int64(len(fx.bytes)) {
		t.Fatalf("pass with the store down: %+v; want an error, 2 segments backlog", rep)
	}
	if fx.job.Stats().FailedPasses.Load() != 1 {
		t.Errorf("failed passes metric = %d, want 1", fx.job.Stats().FailedPasses.Load())
	}
	for _, s := range fx.segs {
		if !fx.localExists(t, s) {
			t.Errorf("segment %d: local file gone while the store was down", s.ID)
		}
	}
	fx.s3.Restart(t)
	if rep := fx.job.Pass(ctx); rep.Err != nil || rep.Archived != 2 || rep.BacklogSegments != 0 {
		t.Fatalf("pass with the store back: %+v", rep)
	}
}

// A 30 MiB object goes up as a multipart upload and reads back byte-exact.
func TestBucketMultipartReadsBackExact(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, 4*time.Second)
	data := make([]byte, 30<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>12)
	}
	ctx := context.Background()
	if err := fx.job.Bucket.Put(ctx, "big/object", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	sum, n, err := fx.job.Bucket.Digest(ctx, "big/object")
	want := sha256.Sum256(data)
	if err != nil || n != int64(len(data)) || sum != hex.EncodeToString(want[:]) {
		t.Fatalf("read back: %d bytes, %s, %v; want %d bytes, %x", n, sum, err, len(data), want)
	}
	rc, err := fx.job.Bucket.Get(ctx, "big/object", 20<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data[20<<20:21<<20]) {
		t.Fatalf("range read across parts: %d bytes, %v", len(got), err)
	}
	if _, err := fx.job.Bucket.Size(ctx, "no/such/object"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing object: %v, want fs.ErrNotExist", err)
	}
}

// Whole-segment reads of archived footage go through a cache that never holds more than
// its bound: an older copy is evicted for a newer one, and a reader that still holds the
// evicted copy open reads it to the end.
func TestCacheStaysWithinItsBound(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, 12*time.Second)
	ctx := context.Background()
	if rep := fx.job.Pass(ctx); rep.Err != nil || rep.Archived != 3 {
		t.Fatalf("pass: %+v", rep)
	}
	limit := int64(len(fx.bytes)) * 3 / 2
	tier, err := NewTier(fx.job.Bucket, t.TempDir(), limit)
	if err != nil {
		t.Fatal(err)
	}
	defer tier.Close()
	first, err := tier.OpenWhole(ctx, fx.segs[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	for _, s := range fx.segs[1:] {
		f, err := tier.OpenWhole(ctx, s.Path)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if n := tier.CacheBytes(); n > limit {
			t.Fatalf("cache holds %d bytes, bound %d", n, limit)
		}
	}
	got, err := io.ReadAll(first)
	if err != nil || !bytes.Equal(got, fx.bytes) {
		t.Errorf("the evicted copy a reader held open: %d bytes, %v; want the segment's %d", len(got), err, len(fx.bytes))
	}
	if _, err := tier.OpenWhole(ctx, "recordings/cam/2026/03/02/none.mp4"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a segment in neither tier: %v, want fs.ErrNotExist", err)
	}
}
