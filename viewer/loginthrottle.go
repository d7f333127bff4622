package viewer

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// throttleRowEvery bounds the access-log rows about throttled logins to one per client
// address per minute: a password-guessing run shows up in the log with its size, without
// an attacker being able to write thousands of rows.
const throttleRowEvery = time.Minute

// throttledLogins counts refused (throttled) login attempts per client address between
// the rows written about them.
type throttledLogins struct {
	mu sync.Mutex
	m  map[string]*throttleWindow
}

type throttleWindow struct {
	rowAt   time.Time // when the last row for this address was written
	refused int       // refusals since then
}

// loginThrottled records a login refused by the throttle: the first refusal of an address
// in a minute writes a login.throttled row carrying how many were refused since the
// previous row; the others are counted into the next one.
func (s *Server) loginThrottled(r *http.Request, client string, retry time.Duration) {
	now := s.auth.now()
	t := &s.throttled
	t.mu.Lock()
	if t.m == nil {
		t.m = map[string]*throttleWindow{}
	}
	w := t.m[client]
	if w == nil {
		w = &throttleWindow{}
		t.m[client] = w
	}
	w.refused++
	write := now.Sub(w.rowAt) >= throttleRowEvery
	refused := w.refused
	if write {
		w.rowAt, w.refused = now, 0
		for c, other := range t.m { // forget addresses quiet for a while
			if now.Sub(other.rowAt) > 10*throttleRowEvery {
				delete(t.m, c)
			}
		}
	}
	t.mu.Unlock()
	if !write {
		return
	}
	details, _ := json.Marshal(map[string]any{"refused": refused, "retry_after_s": int(retry / time.Second)})
	e := catalog.AuditEntry{Action: access.AuditLoginThrottled, Outcome: catalog.AuditDenied, Actor: "unknown", Details: details}
	if err := s.appendAudit(r, nil, e); err != nil {
		s.log.Error("audit: recording throttled logins", "err", err)
	}
	s.log.Warn("logins throttled", "client", client, "refused", refused)
}
