package viewer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/viewer/live"
)

// Live view of a camera held by another node is relayed (docs/nodes.md): this node (the
// asking node) authorizes the offer and audits it as for a local camera, then passes the
// SDP offer to the holder's node route; the holder answers from its own camera feed, with
// its own ICE candidates, so the media flows between the browser and the holder directly.
// Only the signalling (offer, PATCH, DELETE) goes through the asking node, and the
// session's URL stays on it: the browser never talks to the holder over HTTP, which it
// could not do anyway (no session cookie there, no CORS).

const (
	// NodeNameHeader names the node making a node-to-node live request: the holder keeps
	// the sessions it answers under that node, and only that node can end or list them.
	NodeNameHeader = "X-Townwatch-Node"
	// NodeViewerHeader names the user a node relays a live view for, for the holder's log.
	NodeViewerHeader = "X-Townwatch-Viewer"

	// relayOwnerPrefix marks, on the holder, the owner of a session relayed for another
	// node ("node:b"). A login session's owner is a hex digest, so the two never collide.
	relayOwnerPrefix = "node:"
	// relayOrphanAfter is how long the holder keeps a relayed session whose asking node
	// has stopped listing its sessions (it does so every sweep, 2 s): that node is down or
	// cut off and no longer checks its viewer's access, so nobody would end the view when
	// the viewer's login ends. The same span ends, on the asking node, the relays of a
	// holder that does not answer.
	relayOrphanAfter = 30 * time.Second
	// relayTimeout bounds one signalling request to the holder: the offer waits for the
	// holder's ICE gathering (at most 5 s there).
	relayTimeout = 20 * time.Second
	// relayCheckTimeout bounds the sweep's requests to a holder (its listing, a DELETE):
	// they run one after another every sweep, and a few holders that do not answer must not
	// stretch the sweep near relayOrphanAfter, past which the other holders would end this
	// node's views. At shutdown it bounds all the DELETEs together (endAllRelays).
	relayCheckTimeout = 5 * time.Second
	// nodeLivePrefix is where the holder serves the WHEP routes to other nodes: the same
	// routes as the browser's, under /api/node.
	nodeLivePrefix = "/api/node"
	// nodeLivePath lists, on the holder, the live sessions it serves for the asking node.
	nodeLivePath = "/api/node/live"
)

// relayOwner is the owner, on the holder, of the sessions relayed for node.
func relayOwner(node string) string { return relayOwnerPrefix + node }

// liveRelays is both sides of relayed live view: the sessions this node relays to other
// nodes for its users, and what it knows of the sessions it serves for other nodes.
type liveRelays struct {
	mu  sync.Mutex
	out map[string]*relay // asking side: this node's session id → the relayed session
	// Holder side: when each asking node last listed its sessions, and why sessions of
	// other nodes ended here (kept relayOrphanAfter, for the asking node's next listing).
	listed map[string]time.Time
	ended  map[string]relayEnd

	// Asking side: what each holder last said of its cameras' streams (withHolderStatus).
	statusMu sync.Mutex
	statuses map[string]*remoteStatuses
}

// relay is one live view this node relays to the holder of its camera.
type relay struct {
	info   live.SessionInfo // ID is this node's, Owner the viewer's login session
	holder string           // the node answering it
	base   string           // the holder's node.advertise
	remote string           // the session's id on the holder
	seen   time.Time        // when the holder last listed it as open (the sweep's goroutine only)
	// ending is why this node ended the view, once it has asked the holder to end it and
	// the holder has not confirmed yet (guarded by liveRelays.mu). Until it confirms, the
	// video may still flow: the relay stays listed, the sweep asks again, and the stop
	// row is written only then, so the access log never says a view stopped that did not.
	ending string
}

type relayEnd struct {
	node, reason string
	at           time.Time
}

// nodeLiveList is the holder's answer on nodeLivePath: the open sessions of the asking
// node and why the ones that ended recently ended.
type nodeLiveList struct {
	Open  []string          `json:"open"`
	Ended map[string]string `json:"ended"`
}

func newLiveRelays() *liveRelays {
	return &liveRelays{out: map[string]*relay{}, listed: map[string]time.Time{}, ended: map[string]relayEnd{}, statuses: map[string]*remoteStatuses{}}
}

// take removes a relayed session and reports whether it was there: whoever takes it
// writes its stop row, so there is exactly one.
func (lr *liveRelays) take(id string) (*relay, bool) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	rl, ok := lr.out[id]
	delete(lr.out, id)
	return rl, ok
}

// lookup finds a relayed session by this node's id, for its own viewer only (as a local
// session is found: another camera's URL or another user cannot reach it).
func (lr *liveRelays) lookup(camera, id, owner string) *relay {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	rl := lr.out[id]
	if rl == nil || rl.info.Camera != camera || rl.info.Owner != owner {
		return nil
	}
	return rl
}

// markEnding records why the view is being ended and returns the relay (nil when it is
// gone already); the reason first given is kept.
func (lr *liveRelays) markEnding(id, reason string) *relay {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	rl := lr.out[id]
	if rl != nil && rl.ending == "" {
		rl.ending = reason
	}
	return rl
}

// endingReason is why rl is being ended, "" while it is not.
func (lr *liveRelays) endingReason(rl *relay) string {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return rl.ending
}

func (lr *liveRelays) all() []*relay {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	out := make([]*relay, 0, len(lr.out))
	for _, rl := range lr.out {
		out = append(out, rl)
	}
	return out
}

// relayOffer relays a WHEP offer for camera, held by node holder at base, whose access
// the guard has checked. The live.start row is written before the offer leaves this
// node, so the holder never has a session that is not in the access log.
func (s *Server) relayOffer(w http.ResponseWriter, r *http.Request, holder, base string) {
	camera := r.PathValue("id")
	p := s.opt.Peers
	// Refused here as the local path refuses them, before anything is logged.
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/sdp" {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/sdp, not "+quote(r.Header.Get("Content-Type")))
		return
	}
	stream, status, err := s.opt.Live.Stream(camera, r.URL.Query().Get("stream"))
	if err != nil {
		writeError(w, status, err.Error())
		return
	}
	offer, err := io.ReadAll(http.MaxBytesReader(w, r.Body, live.MaxOfferBytes))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "reading the SDP offer: "+err.Error())
		return
	}
	info := live.SessionInfo{ID: rand.Text(), Camera: camera, Stream: stream, Started: time.Now()}
	if pr := principalFrom(r.Context()); pr != nil {
		info.Owner = pr.Session
	}
	if err := s.liveViews.start(r, info, holder); err != nil {
		writeError(w, http.StatusServiceUnavailable, "live view unavailable: "+err.Error())
		return
	}
	fail := func(code int, reason, msg string) {
		p.countRelay(holder, relayFailed)
		s.liveViews.onEnd(info, time.Now(), "not started: "+reason)
		if code == http.StatusBadGateway {
			// The node is named in the body too, for a program to tell which one is down.
			writeJSON(w, code, liveElsewhereJSON{Error: msg, Node: holder, Advertise: base})
			return
		}
		writeError(w, code, msg)
	}
	if base == "" {
		s.log.Error("live relay: the holder of a camera has no address", "camera", camera, "node", holder)
		fail(http.StatusBadGateway, "node "+quote(holder)+" has no address",
			"camera "+quote(camera)+" is recorded by node "+quote(holder)+", whose address is unknown; see the server log")
		return
	}
	// Not the browser's context: once the holder has the offer, its answer is taken even if
	// the browser gave up, so the session is known here and ended like any other.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), relayTimeout)
	defer cancel()
	target := strings.TrimSuffix(base, "/") + nodeLivePrefix + "/cameras/" + url.PathEscape(camera) + "/whep?stream=" + url.QueryEscape(stream)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(offer))
	if err != nil {
		s.log.Error("live relay: request to the holder", "camera", camera, "node", holder, "err", err)
		fail(http.StatusBadGateway, "node "+quote(holder)+": "+err.Error(), "camera "+quote(camera)+" is recorded by node "+quote(holder)+", whose address is unusable; see the server log")
		return
	}
	req.Header.Set("Content-Type", "application/sdp")
	s.nodeHeaders(req, r)
	resp, err := p.client().Do(req)
	if err != nil {
		s.log.Error("live relay: the holder does not answer", "camera", camera, "node", holder, "err", err)
		fail(http.StatusBadGateway, "node "+quote(holder)+" does not answer",
			"camera "+quote(camera)+" is recorded by node "+quote(holder)+", which does not answer")
		return
	}
	defer resp.Body.Close()
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, live.MaxOfferBytes))
	text := strings.TrimSpace(string(body))
	switch {
	case resp.StatusCode == http.StatusCreated && readErr != nil:
		// A cut-off answer is not one the browser can use; the session the holder made
		// ends there when nothing uses it.
		s.log.Error("live relay: the holder's answer was cut off", "camera", camera, "node", holder, "err", readErr)
		fail(http.StatusBadGateway, "node "+quote(holder)+" answered, cut off: "+readErr.Error(), "camera "+quote(camera)+" is recorded by node "+quote(holder)+", whose answer was unusable; see the server log")
		return
	case resp.StatusCode == http.StatusCreated:
	case resp.StatusCode == http.StatusConflict:
		// The lease moved between this node's look-up and the holder's: the wall's retry
		// asks the new holder (or this node).
		w.Header().Set("Retry-After", "2")
		fail(http.StatusServiceUnavailable, "node "+quote(holder)+" no longer holds the camera",
			"camera "+quote(camera)+" is moving between nodes; retry")
		return
	case resp.StatusCode == http.StatusServiceUnavailable || (resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusUnauthorized):
		// The holder's answer to the viewer (camera offline, too many viewers, a codec the
		// browser lacks, a bad offer): passed on as it is, as if this node had answered.
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		fail(resp.StatusCode, "node "+quote(holder)+" answered "+resp.Status+": "+text, text)
		return
	default:
		// 401 (the nodes do not share a token), 5xx: the operator's problem.
		s.log.Error("live relay: the holder refused the offer", "camera", camera, "node", holder, "status", resp.StatusCode, "answer", text)
		fail(http.StatusBadGateway, "node "+quote(holder)+" refused it ("+resp.Status+")",
			"camera "+quote(camera)+" is recorded by node "+quote(holder)+", which refused the offer; see the server log")
		return
	}
	// The session's id on the holder, from its URL there (…/cameras/{camera}/whep/{id}):
	// anything else would leave this node unable to end the session there.
	loc, marker := resp.Header.Get("Location"), "/cameras/"+url.PathEscape(camera)+"/whep/"
	remote := ""
	if i := strings.LastIndex(loc, marker); i >= 0 {
		remote = loc[i+len(marker):]
	}
	if remote == "" || strings.ContainsAny(remote, "/?#") {
		// Without its id the session could not be ended there: end it by not using it.
		s.log.Error("live relay: the holder's answer has no session Location", "camera", camera, "node", holder)
		fail(http.StatusBadGateway, "node "+quote(holder)+" answered without a session", "camera "+quote(camera)+" is recorded by node "+quote(holder)+", whose answer was unusable; see the server log")
		return
	}
	s.relays.mu.Lock()
	s.relays.out[info.ID] = &relay{info: info, holder: holder, base: base, remote: remote, seen: time.Now()}
	s.relays.mu.Unlock()
	p.countRelay(holder, relayOpened)
	s.log.Info("live session relayed", "camera", camera, "stream", stream, "session", info.ID, "node", holder, "remote_session", remote)
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", "/api/cameras/"+url.PathEscape(camera)+"/whep/"+info.ID)
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(body)
}

// nodeHeaders marks req as this node's, for the viewer of r (its name for the holder's log).
func (s *Server) nodeHeaders(req, r *http.Request) {
	p := s.opt.Peers
	req.Header.Set(NodeTokenHeader, p.Token)
	req.Header.Set(NodeNameHeader, p.Self)
	if r != nil {
		if pr := principalFrom(r.Context()); pr != nil {
			req.Header.Set(NodeViewerHeader, pr.Name)
		}
	}
}

// relayedSession wraps a WHEP session route (PATCH, DELETE): a session this node relays
// is passed to its holder; any other goes to the local handler.
func (s *Server) relayedSession(next http.HandlerFunc) http.HandlerFunc {
	if s.opt.Peers == nil {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request) {
		owner := ""
		if p := principalFrom(r.Context()); p != nil {
			owner = p.Session
		}
		rl := s.relays.lookup(r.PathValue("id"), r.PathValue("session"), owner)
		switch {
		case rl == nil:
			next(w, r)
		case r.Method == http.MethodDelete:
			s.endRelay(rl.info.ID, "viewer hung up (DELETE)")
			w.WriteHeader(http.StatusNoContent)
		default:
			s.relayPatch(w, r, rl)
		}
	}
}

// relayPatch passes a PATCH (trickle ICE) of a relayed session to its holder and the
// holder's answer back.
func (s *Server) relayPatch(w http.ResponseWriter, r *http.Request, rl *relay) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, live.MaxOfferBytes))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "reading the PATCH body: "+err.Error())
		return
	}
	resp, err := s.toHolder(r.Context(), rl, http.MethodPatch, r.Header.Get("Content-Type"), body, r)
	if err != nil {
		writeError(w, http.StatusBadGateway, "camera "+quote(rl.info.Camera)+" is recorded by node "+quote(rl.holder)+", which does not answer")
		return
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "Allow", "ETag"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, live.MaxOfferBytes))
}

// toHolder makes a request about relayed session rl on its holder's node route.
func (s *Server) toHolder(ctx context.Context, rl *relay, method, contentType string, body []byte, from *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, relayTimeout)
	target := strings.TrimSuffix(rl.base, "/") + nodeLivePrefix + "/cameras/" + url.PathEscape(rl.info.Camera) + "/whep/" + url.PathEscape(rl.remote)
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		cancel()
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	s.nodeHeaders(req, from)
	resp, err := s.opt.Peers.client().Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	// The body is read by the caller; the context ends when it closes it.
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// endRelay ends relayed session id on its holder (DELETE there, which returns once the
// holder has released it) and writes its stop row with reason. A holder that does not
// confirm keeps the relay, marked as ending: the sweep asks it again, and writes the stop
// row once the holder confirms or no longer lists the session. A holder that does not
// answer at all cannot keep the view going for long without this node either: it ends the
// views of an asking node that stops listing them (relayOrphanAfter).
func (s *Server) endRelay(id, reason string) {
	rl := s.relays.markEnding(id, reason)
	if rl == nil {
		return
	}
	if err := s.deleteOnHolder(context.Background(), rl); err != nil {
		s.log.Warn("live relay: the holder did not end a session; asking again at the next sweep", "session", id, "node", rl.holder, "err", err)
		return
	}
	if rl, ok := s.relays.take(id); ok {
		s.finishRelay(rl, reason)
	}
}

// deleteOnHolder asks rl's holder to end the session: nil once it has (204) or never had
// it (404). It waits relayCheckTimeout at the most, less if ctx ends sooner.
func (s *Server) deleteOnHolder(ctx context.Context, rl *relay) error {
	ctx, cancel := context.WithTimeout(ctx, relayCheckTimeout)
	defer cancel()
	resp, err := s.toHolder(ctx, rl, http.MethodDelete, "", nil, nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotFound {
		return errors.New("answered " + resp.Status)
	}
	return nil
}

// endAllRelays ends every relayed view when this node stops: each gets one attempt on its
// holder and its stop row, since nobody will sweep after this (a holder that missed the
// DELETE ends the views when this node stops listing them, relayOrphanAfter). The DELETEs
// go out all at once and share ctx's deadline, so holders that do not answer hold the
// shutdown up for that one deadline, not for one timeout per view.
func (s *Server) endAllRelays(ctx context.Context, reason string) {
	var wg sync.WaitGroup
	for _, rl := range s.relays.all() {
		wg.Go(func() {
			if err := s.deleteOnHolder(ctx, rl); err != nil {
				s.log.Warn("live relay: ending a session on its holder at shutdown", "session", rl.info.ID, "node", rl.holder, "err", err)
			}
			if rl, ok := s.relays.take(rl.info.ID); ok {
				s.finishRelay(rl, reason)
			}
		})
	}
	wg.Wait()
}

// finishRelay writes the stop row of a relayed session that has ended.
func (s *Server) finishRelay(rl *relay, reason string) {
	s.opt.Peers.countRelay(rl.holder, relayClosed)
	s.log.Info("relayed live session ended", "camera", rl.info.Camera, "session", rl.info.ID, "node", rl.holder, "reason", reason)
	s.liveViews.onEnd(rl.info, time.Now(), reason)
}

// sweepRelays is the live sweep for relayed sessions, on the asking node: a view whose
// viewer's access ended is ended on its holder, and a view the holder no longer has (the
// browser went away, the connection failed, the holder restarted) gets its stop row here,
// with the holder's reason. One listing request per holder per sweep.
func (s *Server) sweepRelays(ctx context.Context, judge func(owner, actor string) ownerVerdict) {
	byHolder := map[string][]*relay{}
	for _, rl := range s.relays.all() {
		// Every relay still here is listed, even one whose viewer the catalog cannot judge
		// now: the listing is the holder's sign that this node still checks its viewers,
		// and a catalog outage must not cut dispatch off through the holder's orphan rule.
		byHolder[rl.holder] = append(byHolder[rl.holder], rl)
		reason := s.relays.endingReason(rl) // the holder has not confirmed the end yet: ask again
		if reason == "" {
			vd := judge(rl.info.Owner, s.liveViews.actor(rl.info.ID))
			if vd.unknown {
				continue
			}
			reason = vd.endReason(rl.info.Camera)
		}
		if reason != "" {
			s.endRelay(rl.info.ID, reason)
		}
	}
	for holder, rls := range byHolder {
		list, err := s.listRelayed(ctx, rls[0].base)
		now := time.Now()
		if err != nil {
			s.log.Warn("live relay: listing the sessions on their holder", "node", holder, "err", err)
			for _, rl := range rls {
				if now.Sub(rl.seen) > relayOrphanAfter {
					if rl, ok := s.relays.take(rl.info.ID); ok {
						s.finishRelay(rl, "node "+quote(holder)+" does not answer")
					}
				}
			}
			continue
		}
		open := map[string]bool{}
		for _, id := range list.Open {
			open[id] = true
		}
		for _, rl := range rls {
			if open[rl.remote] {
				rl.seen = now
				continue
			}
			why := "ended on node " + quote(holder) + ": " + list.Ended[rl.remote]
			if list.Ended[rl.remote] == "" {
				why = "ended on node " + quote(holder) + ": the session is gone"
			}
			if ending := s.relays.endingReason(rl); ending != "" {
				why = ending // this node ended it; the holder has now let it go
			}
			if rl, ok := s.relays.take(rl.info.ID); ok {
				s.finishRelay(rl, why)
			}
		}
	}
}

// listRelayed asks the holder at base for the sessions it serves for this node.
func (s *Server) listRelayed(ctx context.Context, base string) (nodeLiveList, error) {
	var list nodeLiveList
	ctx, cancel := context.WithTimeout(ctx, relayCheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+nodeLivePath, nil)
	if err != nil {
		return list, err
	}
	s.nodeHeaders(req, nil)
	resp, err := s.opt.Peers.client().Do(req)
	if err != nil {
		return list, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return list, errors.New("answered " + resp.Status)
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&list)
	return list, err
}

// heldHere wraps the holder's node route for a WHEP offer: only a camera this node holds
// is served, never one asked on to a third node (two nodes could bounce an offer), and
// only for a node that says who it is.
func (s *Server) heldHere(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := s.opt.Peers
		asking := askingNode(r.Context())
		if asking == "" {
			writeError(w, http.StatusBadRequest, NodeNameHeader+" must name the asking node")
			return
		}
		camera := r.PathValue("id")
		if node, _ := p.Holder(camera); node != p.Self {
			writeJSON(w, http.StatusConflict, liveElsewhereJSON{
				Error: "camera " + quote(camera) + " is not held by node " + quote(p.Self), Node: node})
			return
		}
		next(w, r)
	}
}

// handleNodeLive answers the asking node's listing (GET /api/node/live, node token): the
// sessions this node serves for it and why its recently ended ones ended. The listing is
// also that node's sign of life for its sessions here (relayOrphanAfter).
func (s *Server) handleNodeLive(w http.ResponseWriter, r *http.Request) {
	asking := askingNode(r.Context())
	if asking == "" {
		writeError(w, http.StatusBadRequest, NodeNameHeader+" must name the asking node")
		return
	}
	now := time.Now()
	list := nodeLiveList{Open: []string{}, Ended: map[string]string{}}
	for _, v := range s.opt.Live.Sessions("") {
		if v.Owner == relayOwner(asking) {
			list.Open = append(list.Open, v.ID)
		}
	}
	lr := s.relays
	lr.mu.Lock()
	lr.listed[asking] = now
	for id, e := range lr.ended {
		switch {
		case now.Sub(e.at) > relayOrphanAfter:
			delete(lr.ended, id)
		case e.node == asking:
			list.Ended[id] = e.reason
		}
	}
	lr.mu.Unlock()
	writeJSON(w, http.StatusOK, list)
}

// relayedHere reports whether a live session on this node is served for another node, and
// which.
func relayedHere(owner string) (node string, ok bool) {
	return strings.CutPrefix(owner, relayOwnerPrefix)
}

// orphaned reports whether a session served here for node has outlived that node's
// checks: it has not listed its sessions for relayOrphanAfter (nor since the session
// started).
func (lr *liveRelays) orphaned(node string, started, now time.Time) bool {
	lr.mu.Lock()
	last := lr.listed[node]
	lr.mu.Unlock()
	if started.After(last) {
		last = started
	}
	return now.Sub(last) > relayOrphanAfter
}

// noteEnded keeps why a session served for node ended, for that node's next listing.
func (lr *liveRelays) noteEnded(id, node, reason string) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	lr.ended[id] = relayEnd{node: node, reason: reason, at: time.Now()}
}

// RelayStats count the live views this node relayed to one holder node for its users.
type RelayStats struct {
	Sessions uint64 // offers the holder answered
	Open     int    // relayed sessions open now
	Failures uint64 // offers that failed: no answer, refused, or the holder's refusal passed on
}

type relayEvent int

const (
	relayOpened relayEvent = iota
	relayClosed
	relayFailed
)

// Relayed returns, per holder node, the live views this node relayed to it.
func (p *Peers) Relayed() map[string]RelayStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]RelayStats, len(p.relayed))
	for n, s := range p.relayed {
		out[n] = *s
	}
	return out
}

func (p *Peers) countRelay(node string, ev relayEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.relayed == nil {
		p.relayed = map[string]*RelayStats{}
	}
	s := p.relayed[node]
	if s == nil {
		s = &RelayStats{}
		p.relayed[node] = s
	}
	switch ev {
	case relayOpened:
		s.Sessions++
		s.Open++
	case relayClosed:
		s.Open--
	case relayFailed:
		s.Failures++
	}
}

// The wall starts a camera's live view only once /api/cameras says its stream is up. A
// node that does not hold a camera does not pull its stream, so for such a camera it
// shows the stream's state as its holder sees it, asked on nodeCamerasPath (node token)
// at most every remoteStatusFresh per holder. Without that the wall would wait forever
// on a camera held elsewhere, and its relayed view would never start.
const (
	nodeCamerasPath     = "/api/node/cameras"
	remoteStatusFresh   = 2 * time.Second
	remoteStatusTimeout = 2 * time.Second
)

// streamStatus is a camera's stream states on its holder.
type streamStatus struct {
	Main ingest.Status  `json:"main"`
	Sub  *ingest.Status `json:"sub,omitempty"`
}

// remoteStatuses is what one holder last said of its cameras (cams nil: it did not answer).
type remoteStatuses struct {
	at         time.Time
	cams       map[string]streamStatus
	refreshing bool // a request to the holder is under way
}

// handleNodeCameras answers another node (GET /api/node/cameras, node token) with the
// stream states of the cameras this node holds.
func (s *Server) handleNodeCameras(w http.ResponseWriter, _ *http.Request) {
	p := s.opt.Peers
	out := map[string]streamStatus{}
	for _, c := range s.opt.Cameras.Cameras() {
		if node, _ := p.Holder(c.ID); node != p.Self {
			continue
		}
		st := streamStatus{Main: c.Main.Status()}
		if c.Sub != nil {
			sub := c.Sub.Status()
			st.Sub = &sub
		}
		out[c.ID] = st
	}
	writeJSON(w, http.StatusOK, out)
}

// withHolderStatus replaces the stream states of cam, when another node holds it, with
// that node's; they stay this node's when the holder does not answer.
func (s *Server) withHolderStatus(cam *cameraJSON) {
	p := s.opt.Peers
	if p == nil || p.Holder == nil {
		return
	}
	node, base := p.Holder(cam.ID)
	if node == "" || node == p.Self || base == "" {
		return
	}
	lr := s.relays
	lr.statusMu.Lock()
	e := lr.statuses[node]
	if e == nil {
		e = &remoteStatuses{}
		lr.statuses[node] = e
	}
	if !e.refreshing && time.Since(e.at) > remoteStatusFresh {
		// Asked in the background: a camera list never waits on another node (one that
		// is down would hold every wall poll for the timeout), and one request's end
		// does not cut the refresh short for the others.
		e.refreshing = true
		go s.refreshHolderStatus(node, base, e)
	}
	st, ok := e.cams[cam.ID]
	lr.statusMu.Unlock()
	if ok {
		cam.Status, cam.Sub = st.Main, st.Sub
	}
}

// refreshHolderStatus reads what holder node at base says of its cameras' streams into e.
// A holder that does not answer leaves no states: its cameras show as unknown, not as
// they last were.
func (s *Server) refreshHolderStatus(node, base string, e *remoteStatuses) {
	cams, err := s.fetchHolderStatus(context.Background(), base)
	if err != nil {
		s.log.Warn("reading the stream states of the cameras another node holds", "node", node, "err", err)
	}
	lr := s.relays
	lr.statusMu.Lock()
	e.cams, e.at, e.refreshing = cams, time.Now(), false
	lr.statusMu.Unlock()
}

func (s *Server) fetchHolderStatus(ctx context.Context, base string) (map[string]streamStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, remoteStatusTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+nodeCamerasPath, nil)
	if err != nil {
		return nil, err
	}
	s.nodeHeaders(req, nil)
	resp, err := s.opt.Peers.client().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New("answered " + resp.Status)
	}
	var cams map[string]streamStatus
	err = json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&cams)
	return cams, err
}
