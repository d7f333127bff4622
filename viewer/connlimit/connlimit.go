// Package connlimit bounds the connections clients may hold open: in total and per client
// address, across every listener that faces clients (the HTTP API and the ICE-TCP media
// port). Without it, a flood of idle connections from one machine filled the process's
// file-descriptor table and the recorders could no longer open segment files or camera
// connections ("too many open files"): footage was lost to a client that never even
// logged in. The limits keep a reserve of descriptors that only the recorder may use.
package connlimit

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Limits are the caps of one Limiter.
type Limits struct {
	// Total is the most client connections open at once, over every wrapped listener.
	Total int
	// PerAddress is the most one client address may hold (IPv6 counted per /64, since one
	// machine usually has a whole /64).
	PerAddress int
	// Exempt addresses (trusted reverse proxies, which carry every user's connections)
	// count towards Total only.
	Exempt func(netip.Addr) bool
}

// Limiter counts the client connections of the listeners it wraps.
type Limiter struct {
	lim     Limits
	mu      sync.Mutex
	open    int
	perAddr map[netip.Addr]int
	refused atomic.Int64
}

// New returns a Limiter; a zero Total or PerAddress means no cap of that kind.
func New(lim Limits) *Limiter {
	return &Limiter{lim: lim, perAddr: map[netip.Addr]int{}}
}

// Open is the number of client connections open now.
func (l *Limiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// Refused counts the connections closed at once because a cap was reached.
func (l *Limiter) Refused() int64 { return l.refused.Load() }

// addressKey is the bucket of a remote address: the IP, or its /64 for IPv6.
func addressKey(a net.Addr) netip.Addr {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// admit counts a new connection from key, or refuses it; exempt says it was counted
// towards the total only.
func (l *Limiter) admit(key netip.Addr) (ok, exempt bool) {
	exempt = l.lim.Exempt != nil && key.IsValid() && l.lim.Exempt(key)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lim.Total > 0 && l.open >= l.lim.Total {
		return false, exempt
	}
	if !exempt && l.lim.PerAddress > 0 && l.perAddr[key] >= l.lim.PerAddress {
		return false, exempt
	}
	l.open++
	if !exempt {
		l.perAddr[key]++
	}
	return true, exempt
}

func (l *Limiter) release(key netip.Addr, exempt bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if !exempt {
		if l.perAddr[key]--; l.perAddr[key] <= 0 {
			delete(l.perAddr, key)
		}
	}
}

// Listen wraps ln: a connection beyond a cap is closed as soon as it is accepted, before
// a byte is read, and the listener goes on accepting.
func (l *Limiter) Listen(ln net.Listener) net.Listener { return &listener{Listener: ln, l: l} }

type listener struct {
	net.Listener
	l *Limiter
}

func (ln *listener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := addressKey(c.RemoteAddr())
		ok, exempt := ln.l.admit(key)
		if !ok {
			ln.l.refused.Add(1)
			c.Close()
			continue
		}
		return &conn{Conn: c, release: func() { ln.l.release(key, exempt) }}, nil
	}
}

// conn gives its slot back exactly once, however often it is closed.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
