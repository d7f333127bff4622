package viewer

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
	"github.com/townwatch/townwatch/viewer/live"
)

// sweepEvery is how often open live views are checked against their owners' access: a
// logout, a disabled account or a removed grant (made here or by the CLI in another
// process) closes the view within this time plus the session's teardown, well inside the
// 5 s the access-control issue allows.
const sweepEvery = 2 * time.Second

// staleSessionsEvery is how often expired login sessions are deleted from the catalog.
const staleSessionsEvery = 10 * time.Minute

// liveViewer is who opened a live session, kept from Admit to OnEnd so the stop row names
// the same person, roles and address as the start row, even after the account changed.
type liveViewer struct {
	actor   string
	roles   []string
	session string
	client  string
	holder  string // the node a relayed view is watched on ("" here)
}

// liveAudit ties live view to the access log: a row before every session (Admit), a row
// with the duration after it (OnEnd), and the sweep that closes views whose access ended.
type liveAudit struct {
	s       *Server
	mu      sync.Mutex
	viewers map[string]liveViewer // live session id → who
}

func (la *liveAudit) hooks() live.Hooks {
	return live.Hooks{
		Owner: func(r *http.Request) string {
			if p := principalFrom(r.Context()); p != nil {
				return p.Session
			}
			if node := askingNode(r.Context()); node != "" {
				return relayOwner(node) // a view another node relays to this one
			}
			return ""
		},
		Admit: la.admit,
		OnEnd: la.onEnd,
	}
}

// admit writes the live.start row; live calls it before anything about the session is
// answered, so the row is committed before the first byte of video can leave. A session
// this node serves for another node gets no row here: that node wrote it, with its
// viewer's name and address, before it passed the offer on.
func (la *liveAudit) admit(r *http.Request, info live.SessionInfo) error {
	if node, ok := relayedHere(info.Owner); ok {
		la.s.log.Info("live session served for another node", "camera", info.Camera, "stream", info.Stream, "session", info.ID,
			"node", node, "user", r.Header.Get(NodeViewerHeader))
		la.mu.Lock()
		la.viewers[info.ID] = liveViewer{actor: r.Header.Get(NodeViewerHeader), client: la.s.auth.clientAddr(r)}
		la.mu.Unlock()
		return nil
	}
	return la.start(r, info, "")
}

// start writes the live.start row of a view of this node's camera or, with holder, of a
// view this node relays to the holder of the camera.
func (la *liveAudit) start(r *http.Request, info live.SessionInfo, holder string) error {
	p := principalFrom(r.Context())
	d := map[string]string{"stream": info.Stream, "live_session": info.ID}
	if holder != "" {
		d["node"] = holder
	}
	details, _ := json.Marshal(d)
	if err := la.s.appendAudit(r, p, catalog.AuditEntry{Action: access.AuditLiveStart, Camera: info.Camera, Details: details}); err != nil {
		la.s.log.Error("audit: recording a live view", "camera", info.Camera, "err", err)
		return errors.New("the access log cannot be written")
	}
	v := liveViewer{client: la.s.auth.clientAddr(r), holder: holder}
	if p != nil {
		v.actor, v.roles, v.session = p.Name, access.RoleStrings(p.Roles), access.SessionLabel(p.Session)
	}
	la.mu.Lock()
	la.viewers[info.ID] = v
	la.mu.Unlock()
	return nil
}

// onEnd writes the live.stop row with how long the view lasted and why it ended; for a
// session served for another node it keeps the reason for that node, which writes the row.
func (la *liveAudit) onEnd(info live.SessionInfo, ended time.Time, reason string) {
	la.mu.Lock()
	v := la.viewers[info.ID]
	delete(la.viewers, info.ID)
	la.mu.Unlock()
	if node, ok := relayedHere(info.Owner); ok {
		la.s.log.Info("live session served for another node ended", "camera", info.Camera, "session", info.ID,
			"node", node, "user", v.actor, "reason", reason)
		la.s.relays.noteEnded(info.ID, node, reason)
		return
	}
	// A browser whose login ended (the account disabled, say) closes its views itself as
	// soon as its next request is refused, often before the sweep comes round: the row
	// then names the end of the login too, not only the closed connection.
	if vd := la.s.judgeOwner(context.Background(), info.Owner, v.actor, la.s.auth.now(), false); vd.reason != "" && !strings.Contains(reason, vd.reason) {
		reason += " (the login had ended: " + vd.reason + ")"
	}
	d := map[string]any{"stream": info.Stream, "live_session": info.ID,
		"duration_s": ended.Sub(info.Started).Seconds(), "reason": reason}
	if v.holder != "" {
		d["node"] = v.holder
	}
	details, _ := json.Marshal(d)
	e := catalog.AuditEntry{Time: la.s.auth.now(), Actor: v.actor, Roles: v.roles, Session: v.session, Client: v.client,
		Action: access.AuditLiveStop, Camera: info.Camera, Outcome: catalog.AuditOK, Details: details}
	if e.Actor == "" {
		e.Actor = "unknown"
	}
	// The view is over whatever happens here; a lost stop row is logged and counted.
	if _, err := la.s.opt.Access.Audit.Append(context.Background(), e); err != nil {
		la.s.auth.auditFailures.Add(1)
		la.s.log.Error("audit: recording the end of a live view", "camera", info.Camera, "live_session", info.ID, "err", err)
	}
}

// closeLive closes every live view whose owner (login session hash) matches, those this
// node relays to other nodes included.
func (s *Server) closeLive(match func(owner string) bool, reason string) {
	if s.opt.Live == nil {
		return
	}
	for _, v := range s.opt.Live.Sessions("") {
		if match(v.Owner) {
			s.opt.Live.Close(v.ID, reason)
		}
	}
	for _, rl := range s.relays.all() {
		if match(rl.info.Owner) {
			s.endRelay(rl.info.ID, reason)
		}
	}
}

// sweepLive checks every open live view against its owner's access now: the login session
// still exists, has not expired, the account is enabled and still allowed to watch that
// camera. Views that fail are closed with the reason; the others keep their login session
// alive, since a dispatcher watching the wall is not idle.
func (s *Server) sweepLive(ctx context.Context) {
	if s.opt.Live == nil {
		return
	}
	now := s.auth.now()
	seen := map[string]ownerVerdict{}
	judge := func(owner, actor string) ownerVerdict {
		vd, ok := seen[owner]
		if !ok {
			vd = s.judgeOwner(ctx, owner, actor, now, true)
			seen[owner] = vd
		}
		return vd
	}
	for _, v := range s.opt.Live.Sessions("") {
		if node, ok := relayedHere(v.Owner); ok {
			// The node that relays it judges its viewer; this node only ends the views
			// of a node that stopped doing so.
			if s.relays.orphaned(node, v.Started, time.Now()) {
				s.opt.Live.Close(v.ID, "node "+quote(node)+", which relays it, stopped checking its viewer's access")
			}
			continue
		}
		vd := judge(v.Owner, s.liveViews.actor(v.ID))
		if vd.unknown {
			continue
		}
		if reason := vd.endReason(v.Camera); reason != "" {
			s.opt.Live.Close(v.ID, reason)
		}
	}
	if s.opt.Peers != nil {
		s.sweepRelays(ctx, judge)
	}
}

// endReason is why a view of camera by this verdict's owner ends now, "" when it goes on.
func (vd ownerVerdict) endReason(camera string) string {
	if vd.reason == "" && !access.Allowed(vd.p, access.ActionLive, camera) {
		return "access to the camera was withdrawn"
	}
	return vd.reason
}

// ownerVerdict is what the sweep found of a login session: the account as it is now, or
// why its views end, or that the catalog could not say.
type ownerVerdict struct {
	p       *access.Principal
	reason  string
	unknown bool
}

// actor is the account name that opened a live view ("" if unknown).
func (la *liveAudit) actor(liveSession string) string {
	la.mu.Lock()
	defer la.mu.Unlock()
	return la.viewers[liveSession].actor
}

// judgeOwner reads a login session for the sweep; actor is the account that opened the
// view, asked when the login session is gone, so the log can say why it ended. With touch
// a session still good is marked as in use (a dispatcher watching the wall is not idle).
func (s *Server) judgeOwner(ctx context.Context, owner, actor string, now time.Time, touch bool) (v ownerVerdict) {
	if owner == "" {
		v.reason = "no login session"
		return v
	}
	sess, user, err := s.opt.Access.Users.SessionUser(ctx, owner)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		v.reason = s.whySessionEnded(ctx, actor)
	case err != nil:
		// The catalog cannot tell: leave the view open rather than cut dispatch off
		// because of a read error; the next sweep asks again.
		s.log.Warn("live access sweep: reading a session", "err", err)
		v.unknown = true
	case user.Disabled:
		v.reason = "account disabled"
	case now.Sub(sess.Created) >= sessionAbsolute:
		v.reason = "session expired"
	default:
		v.p = principalOf(user, owner)
		if touch && now.Sub(sess.LastSeen) >= touchEvery {
			s.auth.touch(ctx, owner, now)
		}
	}
	return v
}

// whySessionEnded names why a login session no longer exists. Disabling an account
// deletes its sessions, as do logout, expiry and a password change; only the first can be
// told apart afterwards.
func (s *Server) whySessionEnded(ctx context.Context, actor string) string {
	if user, err := s.opt.Access.Users.UserByName(ctx, actor); err == nil && user.Disabled {
		return "account disabled"
	}
	return "logged out, session expired, or password changed"
}

// runAccessLoops sweeps live views and expired sessions and flushes snapshot counts
// until ctx ends.
func (s *Server) runAccessLoops(ctx context.Context) {
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	stale := time.NewTicker(staleSessionsEvery)
	defer stale.Stop()
	for {
		select {
		case <-ctx.Done():
			s.snapshots.flush(context.Background(), s, time.Time{})
			return
		case <-sweep.C:
			s.sweepLive(ctx)
			s.snapshots.flush(ctx, s, s.auth.now())
		case <-stale.C:
			now := s.auth.now()
			if n, err := s.opt.Access.Users.DeleteStaleSessions(ctx, now.Add(-sessionIdle), now.Add(-sessionAbsolute)); err != nil {
				s.log.Warn("deleting expired sessions", "err", err)
			} else if n > 0 {
				s.log.Debug("expired sessions deleted", "n", n)
			}
		}
	}
}
