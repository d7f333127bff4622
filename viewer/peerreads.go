package viewer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// Whole-segment reads from the other nodes' disks: exports, stills, verify-archive and
// scrub previews of footage recorded on another node and not archived yet. Peers is the
// recorder.PeerNodes of this node's storage (recorder.Storage.SetPeers), which checks
// every whole segment against the catalog's SHA-256 before anything uses it.

// nodeThumbsPath is the route on the owner node that serves the scrub-preview thumbnails
// of a segment of its disk to another node.
func nodeThumbsPath(id int64) string {
	return "/api/node/segments/" + strconv.FormatInt(id, 10) + "/thumbs"
}

// FetchSegment streams the whole file of seg from the disk of seg.Node, through its node
// route (as playback's media does, without Range). Counted with the proxied media.
func (p *Peers) FetchSegment(ctx context.Context, seg catalog.Segment) (io.ReadCloser, error) {
	return p.fetch(ctx, seg, nodeMediaPath(seg.ID))
}

// FetchThumbnails streams seg's scrub-preview records from the disk of seg.Node.
func (p *Peers) FetchThumbnails(ctx context.Context, seg catalog.Segment) (io.ReadCloser, error) {
	return p.fetch(ctx, seg, nodeThumbsPath(seg.ID))
}

// fetch GETs path from seg.Node; any answer but 200 is an error saying what the node
// said (its answers name no secret).
func (p *Peers) fetch(ctx context.Context, seg catalog.Segment, path string) (io.ReadCloser, error) {
	req, err := p.nodeRequest(ctx, http.MethodGet, seg.Node, path)
	if err != nil {
		p.count(seg.Node, 0, true)
		return nil, err
	}
	resp, err := p.client().Do(req)
	if err != nil {
		p.count(seg.Node, 0, true)
		return nil, fmt.Errorf("the node does not answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		p.count(seg.Node, 0, true)
		return nil, fmt.Errorf("the node refused it: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return &countedBody{ReadCloser: resp.Body, peers: p, node: seg.Node}, nil
}

// countedBody counts a fetched answer's bytes in the proxied metrics when it is closed;
// a read that failed before the end counts as a failure of the node.
type countedBody struct {
	io.ReadCloser
	peers  *Peers
	node   string
	n      int64
	failed bool
}

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	if err != nil && err != io.EOF {
		b.failed = true
	}
	return n, err
}

func (b *countedBody) Close() error {
	b.peers.count(b.node, b.n, b.failed)
	return b.ReadCloser.Close()
}

// handleNodeThumbs serves another node the scrub-preview thumbnails of a segment of this
// node's disk, as sidecar records (GET /api/node/segments/{id}/thumbs, action node). The
// sidecar stays on this disk when the segment is archived, so it is asked here even then.
func (pb *Playback) handleNodeThumbs(w http.ResponseWriter, r *http.Request) {
	seg, ok := pb.nodeSegment(w, r)
	if !ok {
		return
	}
	thumbs, _ := pb.thumbnails(r.Context(), seg) // what could be read, like handleThumbs
	body := recorder.EncodeThumbnails(thumbs)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// failRead answers a segment that could not be read: 502 naming the node when its bytes
// had to come from another node's disk (the reason is in the log), else 500.
func (pb *Playback) failRead(w http.ResponseWriter, what string, err error) {
	var remote *recorder.PeerReadError
	if !errors.As(err, &remote) {
		pb.fail(w, what, err)
		return
	}
	pb.log().Error("playback: "+what+" from another node", "segment", remote.Segment, "node", remote.Node, "err", err)
	writeError(w, http.StatusBadGateway, fmt.Sprintf("segment %d is on node %s, which could not be read; see the server log", remote.Segment, quote(remote.Node)))
}
