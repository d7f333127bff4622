package ingest

import (
	"math/rand/v2"
	"time"
)

const (
	// backoffMin is the first retry delay: most failures are a camera reboot or a network
	// blip, and every second without a session is a second of footage lost.
	backoffMin = time.Second
	// backoffMax caps the delay so that a camera that has been gone for hours is still tried
	// twice a minute, without hammering a camera that rejects us (wrong password, overloaded).
	backoffMax = 30 * time.Second
	// backoffResetAfter: a session that streamed this long was healthy, so the next failure
	// is a new incident and starts again from backoffMin.
	backoffResetAfter = time.Minute
	// backoffJitter spreads retries by ±20% so that cameras behind one switch that reboots
	// do not all reconnect in the same instant.
	backoffJitter = 0.2
)

// backoff yields capped exponential delays with jitter.
type backoff struct {
	next time.Duration
}

// delay returns the next delay and doubles the one after it, up to backoffMax.
func (b *backoff) delay() time.Duration {
	if b.next < backoffMin {
		b.next = backoffMin
	}
	d := b.next
	b.next = min(b.next*2, backoffMax)
	j := 1 + backoffJitter*(2*rand.Float64()-1)
	return time.Duration(float64(d) * j)
}

// reset starts the sequence again from backoffMin.
func (b *backoff) reset() { b.next = 0 }
