package access

import (
	"context"
	"math"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Login throttling. Guessing is slowed per client address and per account, never stopped
// for good: a hard lockout would let anybody lock dispatch out of its own system by
// typing wrong passwords at the dispatcher's name.
const (
	// Per address: 5 at once, then one every 12 s — at most 10 password checks in the
	// first minute and 5 a minute after that, plenty for a person mistyping.
	perAddressBurst = 5
	perAddressEvery = 12 * time.Second
	// Per account, over all addresses: twice the per-address rate, so that one attacking
	// address cannot use up a real user's allowance, while a botnet still gets no more
	// than 10 guesses a minute at one account.
	perAccountBurst = 10
	perAccountEvery = 6 * time.Second
	// MaxConcurrentChecks bounds the Argon2 checks running at once: each takes 19 MiB and
	// a core for tens of milliseconds, and the recorder must keep its CPU.
	MaxConcurrentChecks = 2
)

// LoginLimiter throttles login attempts and bounds concurrent password checks. It is
// safe for concurrent use.
type LoginLimiter struct {
	now    func() time.Time
	checks chan struct{}
	// AfterChecks, when set, runs off the request's path once the last running password
	// check has ended (see afterCheck); set it before the first Check.
	AfterChecks func()
	afterAsked  atomic.Bool // a check ended since AfterChecks last started
	afterRuns   atomic.Bool // a goroutine is running AfterChecks

	mu        sync.Mutex
	addresses map[string]*rate.Limiter
	accounts  map[string]*rate.Limiter
	lastSweep time.Time
}

// NewLoginLimiter returns a limiter reading time from now (time.Now in production, a
// test clock in tests).
func NewLoginLimiter(now func() time.Time) *LoginLimiter {
	return &LoginLimiter{
		now:       now,
		checks:    make(chan struct{}, MaxConcurrentChecks),
		addresses: map[string]*rate.Limiter{},
		accounts:  map[string]*rate.Limiter{},
	}
}

// Allow takes one attempt for a login from client (an IP address) to account. When
// refused it says how long until the next attempt could pass (for Retry-After). The
// account's allowance is only spent once the address is allowed, so an address that is
// already throttled cannot wear down the account's.
func (l *LoginLimiter) Allow(client, account string) (ok bool, retryAfter time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	addr := bucket(l.addresses, addressKey(client), perAddressEvery, perAddressBurst)
	if !addr.AllowN(now, 1) {
		return false, wait(addr, now, perAddressEvery)
	}
	acct := bucket(l.accounts, strings.ToLower(account), perAccountEvery, perAccountBurst)
	if !acct.AllowN(now, 1) {
		return false, wait(acct, now, perAccountEvery)
	}
	return true, 0
}

// Check runs one password check once fewer than MaxConcurrentChecks are running, or
// returns the context's error.
func (l *LoginLimiter) Check(ctx context.Context, check func()) error {
	select {
	case l.checks <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() {
		<-l.checks
		l.afterCheck()
	}()
	check()
	return nil
}

// afterCheck runs AfterChecks once no check runs any more. Each check allocates 19 MiB
// (Argon2id) that is garbage as soon as it returns; townwatch serve hands it back to the
// OS there (see AccessOptions.AfterPasswordChecks in viewer). A check that ends while
// AfterChecks runs asks for one more run: that run may have started while the check's
// memory was still in use.
func (l *LoginLimiter) afterCheck() {
	if l.AfterChecks == nil || len(l.checks) > 0 {
		return // another check runs: the last to end asks for both
	}
	l.afterAsked.Store(true)
	if !l.afterRuns.CompareAndSwap(false, true) {
		return // the running goroutine sees the request
	}
	go func() {
		for {
			for l.afterAsked.Swap(false) {
				l.AfterChecks()
			}
			l.afterRuns.Store(false)
			// A request between the last Swap and the Store found afterRuns set and left
			// it to this goroutine: take it, unless another goroutine already has.
			if !l.afterAsked.Load() || !l.afterRuns.CompareAndSwap(false, true) {
				return
			}
		}
	}()
}

func bucket(m map[string]*rate.Limiter, key string, every time.Duration, burst int) *rate.Limiter {
	lim := m[key]
	if lim == nil {
		lim = rate.NewLimiter(rate.Every(every), burst)
		m[key] = lim
	}
	return lim
}

// wait is how long until lim has a token again, rounded up to whole seconds.
func wait(lim *rate.Limiter, now time.Time, every time.Duration) time.Duration {
	missing := 1 - lim.TokensAt(now)
	if missing <= 0 {
		return time.Second
	}
	return time.Duration(math.Ceil(missing*every.Seconds())) * time.Second
}

// sweep forgets full buckets at most once a minute: a full bucket behaves exactly like a
// new one, so forgetting it changes nothing but memory, and the maps stay as small as the
// set of clients that tried to log in recently.
func (l *LoginLimiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < time.Minute {
		return
	}
	l.lastSweep = now
	for _, m := range []map[string]*rate.Limiter{l.addresses, l.accounts} {
		for k, lim := range m {
			if lim.TokensAt(now) >= float64(lim.Burst()) {
				delete(m, k)
			}
		}
	}
}

// addressKey groups IPv6 clients by /64: one subscriber holds a whole /64 and could
// otherwise rotate through addresses to get a fresh allowance each time.
func addressKey(client string) string {
	ip, err := netip.ParseAddr(client)
	if err != nil {
		return client
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
