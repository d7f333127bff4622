package connlimit

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// serve accepts on a wrapped loopback listener and holds every admitted connection until
// its client closes it (as an HTTP server does); it returns the address to dial.
func serve(t *testing.T, l *Limiter) string {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := l.Listen(raw)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	return raw.Addr().String()
}

// dialFrom connects from a chosen loopback source address (127.0.0.0/8 is all loopback).
func dialFrom(t *testing.T, from, to string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", to)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// refused tells whether the server closed c at once: a read sees EOF (or a reset) instead
// of timing out on an open, silent connection.
func refused(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func waitOpen(t *testing.T, l *Limiter, want int) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); l.Open() != want; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("open connections %d, want %d", l.Open(), want)
		}
	}
}

func TestPerAddressCapRefusesOnlyThatAddress(t *testing.T) {
	l := New(Limits{Total: 100, PerAddress: 3})
	addr := serve(t, l)
	var first []net.Conn
	for range 3 {
		first = append(first, dialFrom(t, "127.0.0.1", addr))
	}
	waitOpen(t, l, 3)
	if c := dialFrom(t, "127.0.0.1", addr); !refused(c) {
		t.Fatal("a fourth connection from the same address was kept")
	}
	if l.Refused() != 1 {
		t.Errorf("refused = %d, want 1", l.Refused())
	}
	// Another client is not affected by the first one's flood.
	if c := dialFrom(t, "127.0.0.2", addr); refused(c) {
		t.Fatal("a connection from another address was refused")
	}
	// A closed connection gives its slot back (once, however often it is closed).
	first[0].Close()
	waitOpen(t, l, 3)
	if c := dialFrom(t, "127.0.0.1", addr); refused(c) {
		t.Fatal("the address got no slot back after closing a connection")
	}
}

func TestTotalCapAndExemptProxies(t *testing.T) {
	proxy := netip.MustParseAddr("127.0.0.9")
	l := New(Limits{Total: 4, PerAddress: 1, Exempt: func(a netip.Addr) bool { return a == proxy }})
	addr := serve(t, l)
	// The proxy carries many users: the per-address cap does not apply to it.
	for range 3 {
		if c := dialFrom(t, "127.0.0.9", addr); refused(c) {
			t.Fatal("the trusted proxy was held to the per-address cap")
		}
	}
	if c := dialFrom(t, "127.0.0.3", addr); refused(c) {
		t.Fatal("the fourth connection (below the total) was refused")
	}
	waitOpen(t, l, 4)
	// The total holds for everyone, the proxy included.
	for _, from := range []string{"127.0.0.4", "127.0.0.9"} {
		if c := dialFrom(t, from, addr); !refused(c) {
			t.Errorf("a connection from %s beyond the total was kept", from)
		}
	}
}

func TestDoubleCloseReleasesOnce(t *testing.T) {
	l := New(Limits{Total: 10, PerAddress: 10})
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := l.Listen(raw)
	defer ln.Close()
	client, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	c.Close()
	if l.Open() != 0 {
		t.Fatalf("open = %d after closing one connection twice, want 0", l.Open())
	}
	ln.Close()
	if _, err := ln.Accept(); err == nil || errors.Is(err, io.EOF) {
		t.Errorf("Accept after Close = %v, want the listener's error", err)
	}
}

func TestIPv6CountsPerSlash64(t *testing.T) {
	key := func(s string) netip.Addr { return addressKey(net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s))) }
	if key("[2001:db8:1:2::1]:1") != key("[2001:db8:1:2:ffff::9]:2") {
		t.Error("two addresses of one /64 are counted apart: one machine could take a whole /64's worth of slots")
	}
	if key("[2001:db8:1:2::1]:1") == key("[2001:db8:1:3::1]:1") {
		t.Error("two /64s share a bucket")
	}
	if key("[::ffff:192.0.2.1]:1") != key("192.0.2.1:1") {
		t.Error("an IPv4-mapped address is counted apart from its IPv4 address")
	}
}
