package main

import (
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"

	"github.com/townwatch/townwatch/configs"
)

// serverHostNames are the names browsers may address townwatch by: http.listen's host,
// loopback, this machine's host name (short and full) and, when listening on every
// interface, each interface's address, plus http.hosts. Everything else is refused
// (DNS rebinding), so a name the town uses must be listed in http.hosts.
func serverHostNames(cfg *configs.Config) []string {
	names := []string{"localhost", "127.0.0.1", "::1"}
	host, _, _ := net.SplitHostPort(cfg.HTTP.Listen)
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if p, err := netip.ParsePrefix(a.String()); err == nil {
					names = append(names, p.Addr().WithZone("").String())
				}
			}
		}
	} else {
		names = append(names, host)
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		short, _, _ := strings.Cut(h, ".")
		names = append(names, h, short)
	}
	// The other nodes reach this one by its advertised URL (node.advertise).
	if u, err := url.Parse(cfg.Node.Advertise); err == nil && u.Hostname() != "" {
		names = append(names, u.Hostname())
	}
	return append(names, cfg.HTTP.Hosts...)
}
