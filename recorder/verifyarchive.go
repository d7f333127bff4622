package recorder

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
)

// ArchiveProblem is one segment whose bytes, or whose place in its camera's hash chain,
// are not what the catalog recorded.
type ArchiveProblem struct {
	Segment catalog.Segment
	What    string
}

func (p ArchiveProblem) String() string {
	return fmt.Sprintf("segment %d (%s, %s): %s", p.Segment.ID, p.Segment.Camera, p.Segment.Path, p.What)
}

// ArchiveReport is what VerifyArchive found.
type ArchiveReport struct {
	Checked   int   // closed segments whose file was re-hashed
	Bytes     int64 // bytes re-hashed
	Unchained int   // closed before the catalog kept the chain: bytes checked, link not
	Open      int   // still being written: not checked
	Deleted   int   // known from the deletion log: their links checked
	// Remote of Checked were read from another node's disk (serve -node); Unreached are
	// on another node that could not be read, each also listed in Problems.
	Remote, Unreached int
	Problems          []ArchiveProblem
}

// VerifyArchive re-hashes every closed segment of camera ("" for all) and walks each
// camera's hash chain: a segment's file must have the size and SHA-256 of its row, and
// its link must be the SHA-256 of the segment before it (kept, or deleted and recorded in
// the deletion log). A file edited in place fails the first check; a row edited to match
// it breaks the next segment's link; a segment removed or inserted behind the catalog's
// back breaks a link too. progress, if not nil, is called after each segment.
func VerifyArchive(ctx context.Context, st *Storage, cat *catalog.Catalog, camera string, progress func(done, total int)) (ArchiveReport, error) {
	var rep ArchiveReport
	segs, err := cat.AllSegments(ctx)
	if err != nil {
		return rep, err
	}
	dels, err := cat.Deletions(ctx, time.Unix(0, 0)) // all of them
	if err != nil {
		return rep, err
	}
	chains := map[chainKey][]chainEntry{}
	for _, s := range segs {
		if camera == "" || s.Camera == camera {
			k := chainKey{s.Camera, s.Stream}
			chains[k] = append(chains[k], chainEntry{seg: s, kept: true})
		}
	}
	for _, d := range dels {
		if camera == "" || d.Camera == camera {
			k := chainKey{d.Camera, d.Stream}
			chains[k] = append(chains[k], chainEntry{seg: catalog.Segment{ID: d.SegmentID, Camera: d.Camera, Stream: d.Stream,
				Start: d.Start, End: d.End, Path: d.Path, Bytes: d.Bytes, SHA256: d.SHA256, PrevSHA256: d.PrevSHA256, Chained: d.Chained}})
		}
	}
	total := 0
	for _, chain := range chains {
		// The order the catalog links by (chainPredecessor): start, then id.
		slices.SortFunc(chain, func(a, b chainEntry) int {
			return cmp.Or(a.seg.Start.Compare(b.seg.Start), cmp.Compare(a.seg.ID, b.seg.ID))
		})
		for _, e := range chain {
			if e.kept {
				total++
			}
		}
	}
	done := 0
	for _, key := range slices.SortedFunc(maps.Keys(chains), func(a, b chainKey) int {
		return cmp.Or(cmp.Compare(a.camera, b.camera), cmp.Compare(a.stream, b.stream))
	}) {
		chain := chains[key]
		for i, e := range chain {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			s := e.seg
			switch {
			case !e.kept:
				rep.Deleted++ // no file to hash; its link still counts
			case s.Open:
				rep.Open++
				continue
			default:
				unreached := rep.Unreached
				if what, err := checkSegmentBytes(ctx, st, s, &rep); err != nil {
					return rep, err
				} else if what != "" {
					rep.Problems = append(rep.Problems, ArchiveProblem{s, what})
				}
				if rep.Unreached == unreached { // re-hashed, here or through its node
					rep.Checked++
					rep.Bytes += s.Bytes
				}
			}
			if !s.Chained {
				rep.Unchained++
			} else if want := chainLink(chain, i); s.PrevSHA256 != want {
				what := describeBrokenLink(s, chain, i, want)
				if !e.kept {
					what = "(deleted) " + what
				}
				rep.Problems = append(rep.Problems, ArchiveProblem{s, what})
			}
			if e.kept {
				done++
				if progress != nil {
					progress(done, total)
				}
			}
		}
	}
	return rep, nil
}

type chainKey struct{ camera, stream string }

type chainEntry struct {
	seg  catalog.Segment
	kept bool // false: known from the deletion log only
}

// chainLink is the link segment i must carry: its predecessor's digest, "" for the first.
func chainLink(chain []chainEntry, i int) string {
	if i == 0 {
		return ""
	}
	return chain[i-1].seg.SHA256
}

func describeBrokenLink(s catalog.Segment, chain []chainEntry, i int, want string) string {
	if i == 0 {
		return fmt.Sprintf("hash chain broken: it links to a predecessor (%s) but the catalog has none before it", short(s.PrevSHA256))
	}
	prev := chain[i-1].seg
	where := "kept"
	if !chain[i-1].kept {
		where = "deleted"
	}
	return fmt.Sprintf("hash chain broken: it links to %s, but the segment before it (%d, %s, %s) has SHA-256 %s",
		short(s.PrevSHA256), prev.ID, where, prev.Path, short(want))
}

func short(sum string) string {
	if sum == "" {
		return "nothing"
	}
	if len(sum) > 16 {
		return sum[:16] + "…"
	}
	return sum
}

// checkSegmentBytes re-hashes a closed segment's file; it returns what differs from the
// row, or "" when the file is exactly what was recorded. A segment on another node's disk
// is read through that node (OpenSegment checks it on the way); one that cannot be read
// there is a problem naming the node, never skipped in silence.
func checkSegmentBytes(ctx context.Context, st *Storage, s catalog.Segment, rep *ArchiveReport) (string, error) {
	f, err := st.OpenSegment(ctx, s)
	var remote *PeerReadError
	switch {
	case errors.As(err, &remote) && errors.Is(err, errNotAsRecorded):
		return fmt.Sprintf("on node %q: %v", remote.Node, remote.Err), nil
	case errors.As(err, &remote):
		rep.Unreached++
		return fmt.Sprintf("not checked: it is on the disk of node %q, which could not be read: %v", remote.Node, remote.Err), nil
	case errors.Is(err, fs.ErrNotExist):
		return "the file is missing", nil
	case err != nil:
		return "", err
	}
	defer f.Close()
	if st.peers != nil && OnAnotherNode(s, st.self) {
		rep.Remote++
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", s.Path, err)
	}
	switch sum := hex.EncodeToString(h.Sum(nil)); {
	case n != s.Bytes:
		return fmt.Sprintf("the file has %d bytes, the catalog recorded %d", n, s.Bytes), nil
	case sum != s.SHA256:
		return fmt.Sprintf("the file's SHA-256 is %s, the catalog recorded %s: its bytes changed", short(sum), short(s.SHA256)), nil
	}
	return "", nil
}
