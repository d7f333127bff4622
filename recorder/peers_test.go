package recorder

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
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
)

// ownerDisk is another node as its node routes answer: the files of its own storage,
// nothing else. The viewer's Peers reaches a real one over HTTP (cmd/townwatch's
// TestAnyNodeExportsFootageOnAnotherNodesDiskAndInTheArchive); this one keeps the
// recorder's side in one process.
type ownerDisk struct {
	st    *Storage
	asked []int64
	down  error // the node does not answer
}

func (o *ownerDisk) FetchSegment(_ context.Context, seg catalog.Segment) (io.ReadCloser, error) {
	o.asked = append(o.asked, seg.ID)
	if o.down != nil {
		return nil, o.down
	}
	return o.st.OpenLocal(seg.Path)
}

func (o *ownerDisk) FetchThumbnails(_ context.Context, seg catalog.Segment) (io.ReadCloser, error) {
	if o.down != nil {
		return nil, o.down
	}
	thumbs, err := o.st.Thumbnails(seg.Path)
	return io.NopCloser(bytes.NewReader(EncodeThumbnails(thumbs))), err
}

// peerRig is node b's storage reading through node a's disk.
func peerRig(t *testing.T) (b *Storage, a *ownerDisk, seg catalog.Segment, data []byte) {
	t.Helper()
	var err error
	if b, err = OpenStorage(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	aStore, err := OpenStorage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { aStore.Close() })
	data = bytes.Repeat([]byte("fragment "), 50_000)
	start := time.Date(2026, 12, 5, 22, 0, 0, 0, time.UTC)
	seg = catalog.Segment{ID: 41, Camera: "namesti", Stream: "main", Node: "a", Path: SegmentPath("namesti", start),
		Start: start, End: start.Add(time.Minute), Bytes: int64(len(data))}
	sum := sha256.Sum256(data)
	seg.SHA256 = hex.EncodeToString(sum[:])
	f, err := aStore.create(seg.Path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	f.Close()
	a = &ownerDisk{st: aStore}
	b.SetPeers("b", a)
	return b, a, seg, data
}

// A segment on another node's disk is read through that node, checked against the
// catalog's digest, and leaves nothing on this disk; bytes that are not the catalog's
// and a node that does not answer are errors naming the node and the segment.
func TestOpenSegmentReadsAnotherNodesDiskAndChecksIt(t *testing.T) {
	b, a, seg, data := peerRig(t)
	ctx := context.Background()
	f, err := b.OpenSegment(ctx, seg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	f.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("segment through node a: %d bytes (%v); want a's %d", len(got), err, len(data))
	}
	if left, _ := filepath.Glob(filepath.Join(b.Dir(), ".peer-*")); len(left) != 0 {
		t.Errorf("fetching left %v on this disk", left)
	}

	// a's file lost a byte's worth of truth: nothing is handed out.
	bad := bytes.Clone(data)
	bad[len(bad)/2] ^= 1
	if err := os.WriteFile(filepath.Join(a.st.Dir(), filepath.FromSlash(seg.Path)), bad, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = b.OpenSegment(ctx, seg)
	var remote *PeerReadError
	if !errors.As(err, &remote) || remote.Node != "a" || remote.Segment != seg.ID || !errors.Is(err, errNotAsRecorded) ||
		!strings.Contains(err.Error(), `node "a"`) || !strings.Contains(err.Error(), "segment 41") {
		t.Errorf("changed bytes on a: %v; want a PeerReadError naming node a and segment 41, bytes not as recorded", err)
	}

	a.down = errors.New("connection refused")
	if _, err := b.OpenSegment(ctx, seg); !errors.As(err, &remote) || errors.Is(err, errNotAsRecorded) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("a down: %v; want a PeerReadError with the node's failure", err)
	}

	// Archived: every node reads the archive itself, the owner is not asked.
	asked := len(a.asked)
	archived := seg
	archived.Archived = time.Now()
	if _, err := b.OpenSegment(ctx, archived); !errors.Is(err, fs.ErrNotExist) || len(a.asked) != asked {
		t.Errorf("archived segment without an archive tier: %v, asked a %d more times; want not found, a not asked", err, len(a.asked)-asked)
	}
	// A process that does not reach the other nodes says where the footage is.
	alone, err := OpenStorage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer alone.Close()
	if _, err := alone.OpenSegment(ctx, seg); !errors.As(err, &remote) || !strings.Contains(err.Error(), "does not reach the other nodes") {
		t.Errorf("without peers: %v; want an error naming node a", err)
	}
}

// A segment still being written on its node has no digest yet: its bytes so far are
// handed out as the node sends them.
func TestOpenSegmentOfAnOpenSegmentOnAnotherNode(t *testing.T) {
	b, _, seg, data := peerRig(t)
	seg.Open, seg.SHA256, seg.Bytes = true, "", int64(len(data)/2)
	f, err := b.OpenSegment(context.Background(), seg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, _ := io.ReadAll(f); !bytes.Equal(got, data) {
		t.Errorf("open segment through a: %d bytes, want a's %d", len(got), len(data))
	}
}

// Scrub previews of another node's segment come from its disk, archived or not (the
// sidecar is never in the bucket); a node that does not answer is an error naming it.
func TestSegmentThumbnailsOfAnotherNode(t *testing.T) {
	b, a, seg, _ := peerRig(t)
	for i := range 3 {
		if err := a.st.AppendThumbnail(seg.Path, seg.Start.Add(time.Duration(i)*10*time.Second), fakeJPEG(byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	want, err := a.st.Thumbnails(seg.Path)
	if err != nil || len(want) != 3 {
		t.Fatalf("a's thumbnails: %d, %v", len(want), err)
	}
	seg.Archived = time.Now()
	got, err := b.SegmentThumbnails(context.Background(), seg)
	if err != nil || len(got) != 3 {
		t.Fatalf("through b: %d thumbnails, %v; want a's 3", len(got), err)
	}
	for i := range got {
		if !got[i].At.Equal(want[i].At) || !bytes.Equal(got[i].JPEG, want[i].JPEG) {
			t.Errorf("thumbnail %d through b: %v, want %v", i, got[i].At, want[i].At)
		}
	}
	a.down = errors.New("connection refused")
	if _, err := b.SegmentThumbnails(context.Background(), seg); err == nil || !strings.Contains(err.Error(), `node "a"`) {
		t.Errorf("a down: %v; want an error naming node a", err)
	}
}
