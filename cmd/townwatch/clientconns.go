package main

import (
	"log/slog"
	"net/netip"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/viewer/connlimit"
)

const (
	// maxClientConnections caps the browsers' connections (HTTP and ICE-TCP together). A
	// dispatch wall holds about 6 HTTP connections and, on TCP fallback, one per tile;
	// 2048 serves dozens of workstations.
	maxClientConnections = 2048
	// maxConnectionsPerAddress caps one client address (one machine, or one NAT): a wall of
	// 16 tiles on ICE-TCP plus its HTTP connections uses about 25; a flood from one address
	// stops here and leaves the rest of the budget to everyone else.
	maxConnectionsPerAddress = 128
	// Descriptors kept for the recorder whatever the clients do: per camera its two RTSP
	// connections, the open segment, snapshot and catalog writes, with room to spare; plus
	// a base for the catalog, the logs and the ICE/HTTP listeners.
	reservedDescriptorsBase      = 256
	reservedDescriptorsPerCamera = 32
	// minClientConnections keeps the API usable on a host whose descriptor limit is tiny
	// (the recorder's reserve still comes first; start-up warns).
	minClientConnections = 64
)

// newClientLimiter sizes the client-connection limiter from the process's descriptor
// limit (Go raises the soft limit to the hard one at start), keeping the recorder's
// reserve out of the clients' reach. Trusted proxies carry many users and are held to
// the total only.
func newClientLimiter(cfg *configs.Config, log *slog.Logger) *connlimit.Limiter {
	total := maxClientConnections
	reserve := reservedDescriptorsBase + reservedDescriptorsPerCamera*len(cfg.Cameras)
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < 1<<31 { // RLIM_INFINITY and huge limits: no constraint
		if avail := int64(rl.Cur) - int64(reserve); avail < int64(total) {
			total = int(max(avail, minClientConnections))
			log.Warn("the open-file limit is low: client connections capped to keep the recorder's reserve",
				"nofile", rl.Cur, "reserve", reserve, "client_connections", total)
		}
	}
	proxies := cfg.HTTP.TrustedProxyPrefixes()
	return connlimit.New(connlimit.Limits{Total: total, PerAddress: maxConnectionsPerAddress,
		Exempt: func(a netip.Addr) bool {
			for _, p := range proxies {
				if p.Contains(a) {
					return true
				}
			}
			return false
		}})
}

// clientConnectionMetrics exposes the limiter: connections open now and those refused.
func clientConnectionMetrics(l *connlimit.Limiter) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "townwatch_client_connections",
			Help: "Client connections open now (HTTP and ICE-TCP).",
		}, func() float64 { return float64(l.Open()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "townwatch_client_connections_refused_total",
			Help: "Client connections closed at once because the total or per-address cap was reached.",
		}, func() float64 { return float64(l.Refused()) }),
	}
}
