package ingest

import (
	"log/slog"
	"sync"
	"time"
)

// maxWallDrift is how far a unit's wall time, derived from the camera's timestamps, may
// stray from the local clock before the session re-anchors. Camera clocks run fast or slow
// (100 ppm is 8.6 s a day) and the local clock may be stepped by NTP; recordings and event
// times must stay within seconds of real time, so past this the anchor moves.
const maxWallDrift = 5 * time.Second

// sessionClock maps a session's PTS to wall time: the local clock at the first unit, plus
// the camera's own time since then. That keeps the spacing between frames exact (it comes
// from the camera) while the absolute time comes from the host, whose clock is trusted.
type sessionClock struct {
	log *slog.Logger

	mu         sync.Mutex
	anchored   bool
	anchorWall time.Time
	anchorPTS  time.Duration
}

func (c *sessionClock) wall(pts time.Duration, now time.Time) time.Time {
	// Wall-clock readings only: a monotonic reading would hide an NTP step from the drift
	// check below (Sub prefers monotonic time), and recordings would keep the old clock.
	now = now.Round(0)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.anchored {
		c.anchored, c.anchorWall, c.anchorPTS = true, now, pts
		return now
	}
	w := c.anchorWall.Add(pts - c.anchorPTS)
	if d := w.Sub(now); d > maxWallDrift || d < -maxWallDrift {
		c.log.Warn("camera time drifted from the local clock; re-anchoring", "drift", d.Round(time.Millisecond))
		c.anchorWall, c.anchorPTS = now, pts
		return now
	}
	return w
}
