package viewer

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// NodeTokenHeader carries the node token on a request of one recorder node to another.
// A header, never the URL: URLs end up in access logs and proxies' logs.
const NodeTokenHeader = "X-Townwatch-Node-Token"

// Peers is how this server reaches the other recorder nodes of a cluster (serve -node),
// so that any node serves the API and UI for every camera. nil on a single node.
type Peers struct {
	Self  string // this node's name (segments.node of the files on this disk)
	Token string // the secret every node shares (node.token_file); required
	// Advertise is a node's URL as it advertises it (the nodes table).
	Advertise func(ctx context.Context, node string) (string, error)
	// Holder is the node holding camera's lease and its URL ("" while none does).
	Holder func(camera string) (node, advertise string)
	// Client makes the node-to-node requests (PeerClient); nil: PeerClient with the
	// system's roots.
	Client *http.Client

	mu      sync.Mutex
	proxied map[string]*ProxyStats // by owner node
	relayed map[string]*RelayStats // by holder node
}

// ProxyStats counts the media requests this node passed on to one owner node.
type ProxyStats struct {
	Requests, Bytes, Failures uint64
}

// Proxied returns, per owner node, what this node fetched from it for its clients.
func (p *Peers) Proxied() map[string]ProxyStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]ProxyStats, len(p.proxied))
	for n, s := range p.proxied {
		out[n] = *s
	}
	return out
}

func (p *Peers) count(node string, bytes int64, failed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proxied == nil {
		p.proxied = map[string]*ProxyStats{}
	}
	s := p.proxied[node]
	if s == nil {
		s = &ProxyStats{}
		p.proxied[node] = s
	}
	s.Requests++
	s.Bytes += uint64(max(bytes, 0))
	if failed {
		s.Failures++
	}
}

// PeerClient makes the requests of one node to the others. It has no overall timeout (a
// whole segment may take minutes, as for a browser, see mediaWriteTimeout) but gives up on
// an owner that does not answer. roots are the authorities trusted for the other nodes'
// HTTPS certificates (node.ca_file); nil: the system's.
func PeerClient(roots *x509.CertPool) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			// A node that is switched off must fail a request in seconds, not after the
			// system's connect timeout of about two minutes.
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			ResponseHeaderTimeout: 15 * time.Second,
			IdleConnTimeout:       90 * time.Second,
		},
		// Never followed: the node token would go along to wherever a redirect points (Go
		// drops only Authorization and cookies on a redirect to another host). A node
		// answering with one is misconfigured, and the request fails naming its status.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

var systemRootsPeerClient = PeerClient(nil)

func (p *Peers) client() *http.Client {
	if p.Client != nil {
		return p.Client
	}
	return systemRootsPeerClient
}

// validToken reports whether r carries the node token, compared in constant time so that
// the answer times leak nothing of it.
func (p *Peers) validToken(r *http.Request) bool {
	got := r.Header.Get(NodeTokenHeader)
	return p != nil && p.Token != "" && got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(p.Token)) == 1
}

// nodeMediaPath is the route on the owner node that serves a segment file of its disk to
// another node.
func nodeMediaPath(id int64) string {
	return "/api/node/segments/" + strconv.FormatInt(id, 10) + "/media"
}

// elsewhere reports whether seg's bytes must come from its owner node: the file is on
// another node's disk and not in the archive (which every node reads itself).
func (p *Peers) elsewhere(seg catalog.Segment) bool {
	return p != nil && recorder.OnAnotherNode(seg, p.Self)
}

// proxyHeaders are the answer headers of the owner passed on to the client: what Range
// requests and the player's cache need.
var proxyHeaders = []string{"Content-Type", "Content-Length", "Content-Range", "Accept-Ranges", "ETag", "Last-Modified", "Cache-Control"}

// proxyMedia answers a media request for seg from its owner node's disk: the client's
// Range (and If-Range, If-None-Match) go along, the owner's status and range headers come
// back. The caller has checked the client's playback session (and its audit row is
// committed): the owner trusts this node, not the client.
func (pb *Playback) proxyMedia(w http.ResponseWriter, r *http.Request, seg catalog.Segment) {
	p := pb.peers
	// GET or HEAD, as the client asked (a GET route answers both).
	req, err := p.nodeRequest(r.Context(), r.Method, seg.Node, nodeMediaPath(seg.ID))
	if err != nil {
		p.count(seg.Node, 0, true)
		pb.log().Error("playback: the owner node of a segment is unknown", "segment", seg.ID, "node", seg.Node, "err", err)
		writeError(w, http.StatusBadGateway, "segment "+strconv.FormatInt(seg.ID, 10)+" is on node "+quote(seg.Node)+", whose address is unknown; see the server log")
		return
	}
	for _, h := range []string{"Range", "If-Range", "If-None-Match"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := p.client().Do(req)
	if err != nil {
		p.count(seg.Node, 0, true)
		pb.log().Error("playback: fetching a segment from its owner node", "segment", seg.ID, "node", seg.Node, "err", err)
		writeError(w, http.StatusBadGateway, "segment "+strconv.FormatInt(seg.ID, 10)+" is on node "+quote(seg.Node)+", which does not answer")
		return
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK, http.StatusPartialContent, http.StatusNotModified, http.StatusRequestedRangeNotSatisfiable:
	default:
		// 401 (the nodes do not share a token), 404 or 410 (the row moved under us), 5xx:
		// the operator's problem, never the client's to decode.
		p.count(seg.Node, 0, true)
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		pb.log().Error("playback: the owner node refused a segment", "segment", seg.ID, "node", seg.Node,
			"status", resp.StatusCode, "answer", strings.TrimSpace(string(body)))
		writeError(w, http.StatusBadGateway, "segment "+strconv.FormatInt(seg.ID, 10)+" is on node "+quote(seg.Node)+", which refused it; see the server log")
		return
	}
	for _, h := range proxyHeaders {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(mediaWriteTimeout))
	w.WriteHeader(resp.StatusCode)
	n, err := io.Copy(w, resp.Body)
	// A client that went away (seeking, closing the player) is no failure of the owner.
	p.count(seg.Node, n, err != nil && r.Context().Err() == nil)
}

// nodeRequest is a request for path on node's routes, with the node token; it fails when
// node's address is unknown (the nodes table has none).
func (p *Peers) nodeRequest(ctx context.Context, method, node, path string) (*http.Request, error) {
	base, err := p.Advertise(ctx, node)
	if err != nil {
		return nil, fmt.Errorf("its address cannot be read: %w", err)
	}
	if base == "" {
		return nil, errors.New("its address is unknown (it is not in the nodes table)")
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(base, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(NodeTokenHeader, p.Token)
	return req, nil
}

// handleNodeMedia serves another node a segment file of this node's disk (the route
// GET /api/node/segments/{id}/media, action node: the guard has checked the node token).
// No playback session: the asking node checked its client's and audited it.
func (pb *Playback) handleNodeMedia(w http.ResponseWriter, r *http.Request) {
	if seg, ok := pb.nodeSegment(w, r); ok {
		pb.serveMedia(w, r, seg)
	}
}

// nodeSegment is the segment a node route names, if its file is on this node's disk; ok
// is false when it has answered (404, 410, 500).
func (pb *Playback) nodeSegment(w http.ResponseWriter, r *http.Request) (catalog.Segment, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		writeError(w, http.StatusNotFound, "unknown segment "+quote(r.PathValue("id")))
		return catalog.Segment{}, false
	}
	seg, err := pb.Store.Segment(r.Context(), id)
	if errors.Is(err, catalog.ErrNotFound) {
		pb.gone(w, r, id)
		return seg, false
	}
	if err != nil {
		pb.fail(w, "segment", err)
		return seg, false
	}
	// Only this disk's files: a segment of a third node is not asked here, and answering
	// it by asking on would let two nodes bounce a request between them.
	if seg.Node != pb.peers.Self {
		writeError(w, http.StatusNotFound, "segment "+quote(r.PathValue("id"))+" is not on this node")
		return seg, false
	}
	return seg, true
}

// liveElsewhere wraps the WHEP offer handler: an offer for a camera whose lease another
// node holds is relayed to that node (relayOffer), because only the holder pulls the
// camera's stream. No redirect: the wall's fetch would follow a 307 to another origin
// without the session cookie and without CORS, which townwatch never answers, so it
// could only fail (docs/nodes.md). A camera nobody holds, or this node, is served here.
func (s *Server) liveElsewhere(next http.HandlerFunc) http.HandlerFunc {
	p := s.opt.Peers
	if p == nil || p.Holder == nil {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request) {
		node, advertise := p.Holder(r.PathValue("id"))
		if node == "" || node == p.Self {
			next(w, r)
			return
		}
		s.relayOffer(w, r, node, advertise)
	}
}

type liveElsewhereJSON struct {
	Error     string `json:"error"`
	Node      string `json:"node"`
	Advertise string `json:"advertise"`
}
