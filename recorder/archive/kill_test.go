package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/archive/s3test"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// childEnv names the storage directory when this test binary runs as the archiving
// process that TestArchiveSurvivesKills kills (see TestMain).
const childEnv = "TOWNWATCH_ARCHIVE_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		if err := runChild(dir, os.Getenv("TOWNWATCH_ARCHIVE_CHILD_S3")); err != nil {
			fmt.Fprintln(os.Stderr, "archive child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild is what townwatch serve does with an archive, start to finish: recovery, then
// passes until nothing is due.
func runChild(dir, s3Addr string) error {
	ctx := context.Background()
	cat, err := catalog.Open(ctx, filepath.Join(dir, "catalog.db"))
	if err != nil {
		return err
	}
	defer cat.Close()
	st, err := recorder.OpenStorage(dir)
	if err != nil {
		return err
	}
	if _, err := recorder.Recover(ctx, st, cat, nil); err != nil {
		return err
	}
	b, err := New(Options{Endpoint: s3Addr, Bucket: bucketName, Region: "us-east-1", AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey})
	if err != nil {
		return err
	}
	job := &Job{Catalog: cat, Storage: st, Bucket: b, After: 30 * time.Minute, Now: func() time.Time { return t0.Add(time.Hour) }}
	for {
		rep := job.Pass(ctx)
		if rep.Err != nil {
			return rep.Err
		}
		if rep.BacklogSegments == 0 {
			return nil
		}
	}
}

// The archiving process is killed (SIGKILL) at random moments, again and again. After
// every kill each segment is in exactly one trustworthy place: a row not archived has its
// local file, an archived row has an object with its SHA-256. A last uninterrupted run
// ends with every segment archived, no local copies, and one object per row.
func TestArchiveSurvivesKills(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, 2*time.Minute) // 30 segments, about 66 MB
	// 50 kills, as issue 12 checks it.
	kills := 50
	if testing.Short() {
		kills = 5
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	child := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+fx.dir, "TOWNWATCH_ARCHIVE_CHILD_S3="+fx.s3.Addr)
		return cmd
	}
	midway := 0 // kills after which some, not all, segments were archived
	// Kills land at a random moment within window; while none of them lets the process
	// get as far as its first archived segment (a slow machine, the race detector), the
	// window doubles.
	window := 800 * time.Millisecond
	for i := range kills {
		cmd := child()
		out := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// A random moment within window, but at the latest once one or two more segments
		// are archived than before this run: otherwise, on a fast machine, the first run
		// that gets past start-up archives every segment at once and the later kills
		// find no work.
		deadline := time.Now().Add(time.Duration(rng.Int64N(int64(window))))
		enough := fx.archivedCount(t) + 1 + rng.IntN(2)
		for time.Now().Before(deadline) && fx.archivedCount(t) < enough {
			time.Sleep(5 * time.Millisecond)
		}
		cmd.Process.Kill()
		if err := cmd.Wait(); err != nil && cmd.ProcessState.ExitCode() > 0 {
			t.Fatalf("kill %d: the archiving process failed before it was killed: %s", i, out.String())
		}
		switch n := fx.checkOnePlaceEach(t, fmt.Sprintf("after kill %d", i)); {
		case n == 0:
			window *= 2
		case n < len(fx.segs):
			midway++
		}
	}
	if midway == 0 {
		t.Fatalf("no kill landed while segments were still being moved; the test proved nothing")
	}
	if out, err := child().CombinedOutput(); err != nil {
		t.Fatalf("the last, uninterrupted run: %v: %s", err, out)
	}
	for _, s := range fx.segs {
		fx.checkArchived(t, s)
	}
	fx.checkBucketMatchesCatalog(t)
}

// archivedCount is how many of the fixture's segments the catalog says are archived.
func (fx *fixture) archivedCount(t *testing.T) int {
	t.Helper()
	n := 0
	for _, s := range fx.segs {
		row, err := fx.cat.Segment(context.Background(), s.ID)
		if err != nil {
			t.Fatalf("segment %d: %v", s.ID, err)
		}
		if !row.Archived.IsZero() {
			n++
		}
	}
	return n
}

// checkOnePlaceEach asserts the archive's invariant for every segment of the fixture and
// returns how many are archived.
func (fx *fixture) checkOnePlaceEach(t *testing.T, when string) (archived int) {
	t.Helper()
	ctx := context.Background()
	for _, s := range fx.segs {
		row, err := fx.cat.Segment(ctx, s.ID)
		if err != nil {
			t.Fatalf("%s: segment %d lost from the catalog: %v", when, s.ID, err)
		}
		if row.Archived.IsZero() {
			if info, err := os.Stat(filepath.Join(fx.dir, filepath.FromSlash(s.Path))); err != nil || info.Size() != s.Bytes {
				t.Fatalf("%s: segment %d is not archived and its local file is missing or cut (%v)", when, s.ID, err)
			}
			continue
		}
		obj, err := os.ReadFile(fx.s3.ObjectFile(bucketName, s.Path))
		if err != nil {
			t.Fatalf("%s: segment %d is archived but has no object: %v", when, s.ID, err)
		}
		if sum := sha256.Sum256(obj); hex.EncodeToString(sum[:]) != row.SHA256 {
			t.Fatalf("%s: segment %d is archived but its object's SHA-256 is not the row's", when, s.ID)
		}
		archived++
	}
	return archived
}
