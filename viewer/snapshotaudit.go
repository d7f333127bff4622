package viewer

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// maxListedSnapshots bounds the event ids one hourly summary row names; the count is
// always exact.
const maxListedSnapshots = 100

// snapshotKey is one user's snapshot views of one camera in one clock hour.
type snapshotKey struct {
	user   string
	camera string
	hour   time.Time
}

// snapshotViews aggregates snapshot views per user, camera and hour, so that an events
// panel refreshing thumbnails does not write a row per picture. The first view of an
// hour writes its row before the picture is sent (a user who saw a snapshot is always in
// the log); the views after it in that hour are counted and written as one summary row
// when the hour is over (or at shutdown).
type snapshotViews struct {
	mu   sync.Mutex
	open map[snapshotKey]*snapshotAgg
}

type snapshotAgg struct {
	entry  catalog.AuditEntry // the first view's row, as the template of the summary
	hour   time.Time
	more   int
	events []string
}

// snapshotAudited wraps the snapshot handler: the guard has authorized the camera; this
// records the view before a byte of the picture leaves, or refuses with 503.
func (s *Server) snapshotAudited(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := principalFrom(r.Context())
		camera, _, _ := s.opt.Events.eventCamera(r) // the guard just resolved it
		event := r.PathValue("id")
		key := snapshotKey{user: p.Name, camera: camera, hour: s.auth.now().UTC().Truncate(time.Hour)}
		s.snapshots.mu.Lock()
		agg := s.snapshots.open[key]
		if agg != nil {
			agg.more++
			if len(agg.events) < maxListedSnapshots {
				agg.events = append(agg.events, event)
			}
		}
		s.snapshots.mu.Unlock()
		if agg == nil {
			details, _ := json.Marshal(map[string]string{"event": event, "hour": key.hour.Format(time.RFC3339)})
			e := catalog.AuditEntry{Action: access.AuditSnapshotView, Camera: camera, Details: details}
			if err := s.appendAudit(r, p, e); err != nil {
				s.log.Error("audit: recording a snapshot view", "camera", camera, "err", err)
				writeError(w, http.StatusServiceUnavailable, "the access log cannot be written; the snapshot is withheld")
				return
			}
			e.Actor, e.Roles, e.Session, e.Client = p.Name, access.RoleStrings(p.Roles), access.SessionLabel(p.Session), s.auth.clientAddr(r)
			e.Outcome = catalog.AuditOK
			s.snapshots.mu.Lock()
			if s.snapshots.open[key] == nil { // two first views racing: one row is enough
				s.snapshots.open[key] = &snapshotAgg{entry: e, hour: key.hour}
			}
			s.snapshots.mu.Unlock()
		}
		next(w, r)
	}
}

// flush writes the summary rows of hours that are over at now (all of them when now is
// zero, at shutdown) and forgets those hours.
func (v *snapshotViews) flush(ctx context.Context, s *Server, now time.Time) {
	v.mu.Lock()
	var done []*snapshotAgg
	for k, agg := range v.open {
		if now.IsZero() || !now.Before(k.hour.Add(time.Hour)) {
			delete(v.open, k)
			if agg.more > 0 {
				done = append(done, agg)
			}
		}
	}
	v.mu.Unlock()
	for _, agg := range done {
		e := agg.entry
		e.Time = s.auth.now()
		e.Action = access.AuditSnapshotViews
		e.Details, _ = json.Marshal(map[string]any{"hour": agg.hour.Format(time.RFC3339),
			"more_views": agg.more, "events": agg.events})
		if _, err := s.opt.Access.Audit.Append(ctx, e); err != nil {
			s.auth.auditFailures.Add(1)
			s.log.Error("audit: writing the hourly snapshot summary", "user", e.Actor, "camera", e.Camera, "err", err)
		}
	}
}
