package live

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"

	"github.com/townwatch/townwatch/viewer/connlimit"
)

const (
	// tcpSendBuffer is the kernel send buffer of each ICE-TCP viewer connection. Kept small
	// so that a viewer that stops reading shows up as back-pressure on its own writer within
	// about a second of 4 Mbit/s video, and is then dropped to the next keyframe by our
	// queue, instead of megabytes of stale video piling up in the kernel (seconds of delay).
	tcpSendBuffer = 256 << 10
	// nackHistory is how many sent video packets per viewer are kept to answer NACKs:
	// 1.2 s of a 4 Mbit/s stream (0.6 s at 8 Mbit/s), several retransmission round trips
	// of a LAN or Wi-Fi even on a loaded box. 256 was tried, and a clean-clone test run
	// then saw a fast viewer's frame broken while another viewer stalled
	// (TestStalledViewerDropsOnlyItsOwnPackets): one 1080p keyframe alone is well over
	// 100 packets. An older loss is not repaired; the browser asks for a keyframe. The
	// history holds references, not copies (see newAPI): the payload is the feed's, shared
	// by every viewer; a viewer's entry alone holds pion's RetainablePacket (104 bytes),
	// the rtp.Header writer.write made for the packet (88) and a release closure (16), 224
	// bytes of heap with Go's size classes (measured, pion/interceptor v0.1.51), plus its
	// 8-byte slot: about 230 bytes a packet, 115 KiB a viewer.
	nackHistory = 512
	// ICE consent: a viewer that sends nothing (no STUN, no RTCP) for iceDisconnected is
	// disconnected, and for iceFailed is failed and its session closed; keep-alives every
	// iceKeepalive keep NAT bindings open.
	iceDisconnected = 5 * time.Second
	iceFailed       = 10 * time.Second
	iceKeepalive    = 2 * time.Second
	// tcpWriteStall is the default of Options.TCPWriteStall: how long a write to a
	// viewer's ICE-TCP connection may wait for the viewer to take data before the
	// connection is dropped. Long enough for a viewer whose network stalls for many
	// seconds to resume at a keyframe (our queue drops frames meanwhile); short enough
	// that a viewer that never reads again cannot hold its slot, a DELETE or the server's
	// shutdown for more than a minute.
	tcpWriteStall = time.Minute
	// iceReadBuffer is the ICE-TCP mux's per-connection read buffer in packets.
	iceReadBuffer = 64
	// iceFirstSTUN is how long an ICE-TCP connection may stay open without its first STUN
	// binding request. A browser sends it right after connecting; pion's default of 30 s
	// let anyone hold unauthenticated connections (and descriptors) for half a minute.
	iceFirstSTUN = 5 * time.Second
)

// iceNet holds the bound ICE sockets.
type iceNet struct {
	udpConn *net.UDPConn
	tcpLn   *net.TCPListener
	udpMux  ice.UDPMux
	tcpMux  ice.TCPMux
	logs    logging.LoggerFactory
}

func listenICE(ip net.IP, udpPort, tcpPort int, writeStall time.Duration, conns *connlimit.Limiter, log *slog.Logger) (*iceNet, error) {
	udpConn, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: udpPort})
	if err != nil {
		return nil, fmt.Errorf("webrtc.udp_port %d: %w", udpPort, err)
	}
	tcpLn, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: tcpPort})
	if err != nil {
		udpConn.Close()
		return nil, fmt.Errorf("webrtc.tcp_port %d: %w", tcpPort, err)
	}
	logs := &pionLogs{log: log}
	var accepted net.Listener = smallSendBuffer{tcpLn, writeStall}
	if conns != nil {
		accepted = conns.Listen(accepted)
	}
	return &iceNet{
		udpConn: udpConn,
		tcpLn:   tcpLn,
		logs:    logs,
		udpMux:  webrtc.NewICEUDPMux(logs.NewLogger("ice-udp"), udpConn),
		// WriteBufferSize 0: a write blocks until the kernel takes it. pion's own write
		// buffer would silently drop packets in the middle of a picture; our per-viewer
		// queue drops whole frames and resumes at a keyframe instead.
		tcpMux: ice.NewTCPMuxDefault(ice.TCPMuxParams{
			Listener:             accepted,
			Logger:               logs.NewLogger("ice-tcp"),
			ReadBufferSize:       iceReadBuffer,
			FirstStunBindTimeout: iceFirstSTUN,
		}),
	}, nil
}

func (n *iceNet) close() {
	n.udpMux.Close()
	n.tcpMux.Close()
	n.udpConn.Close()
	n.tcpLn.Close()
}

// smallSendBuffer gives every accepted ICE-TCP connection a small send buffer and bounds
// its blocked writes by writeStall.
type smallSendBuffer struct {
	*net.TCPListener
	writeStall time.Duration
}

func (l smallSendBuffer) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	// Best effort: on failure the connection works with the kernel's default buffer.
	_ = c.SetWriteBuffer(tcpSendBuffer)
	return stallLimitedConn{c, l.writeStall}, nil
}

// stallLimitedConn bounds how long one write to a viewer's ICE-TCP connection may block.
// Writes block by design (back-pressure, see listenICE), but a viewer that stops reading
// while its kernel keeps the socket open (zero window) would otherwise block them for
// ever: the RTP writer, ICE's own checks, and the DTLS close_notify that
// PeerConnection.Close sends, so DELETE, the session's slot and Run's shutdown all hung.
type stallLimitedConn struct {
	*net.TCPConn
	writeStall time.Duration
}

func (c stallLimitedConn) Write(p []byte) (int, error) {
	if err := c.SetWriteDeadline(time.Now().Add(c.writeStall)); err != nil {
		return 0, err
	}
	n, err := c.TCPConn.Write(p)
	if err != nil {
		// A partial write has broken the stream's packet framing: the connection is of
		// no further use, and closing it ends the session through ICE.
		c.Close()
	}
	return n, err
}

// newAPI builds the pion API every session uses: our codecs, the muxed sockets, no mDNS,
// loopback candidates only when bound to loopback, NAT 1:1 rewriting when configured,
// and the interceptors a sender needs (NACK answers, RTCP sender reports).
func (m *Manager) newAPI(nw *iceNet) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := registerCodecs(me); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{LoggerFactory: nw.logs}
	se.SetICEUDPMux(nw.udpMux)
	se.SetICETCPMux(nw.tcpMux)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6,
		webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(iceDisconnected, iceFailed, iceKeepalive)
	// The server only answers on its passive TCP candidate; dialling out to viewers is
	// never needed and would be a way to make it connect anywhere.
	se.DisableActiveTCP(true)
	if m.ip != nil {
		ip := m.ip
		se.SetIPFilter(func(c net.IP) bool { return c.Equal(ip) })
		se.SetIncludeLoopbackCandidate(ip.IsLoopback())
	}
	if len(m.opt.Advertise) > 0 {
		err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{External: m.opt.Advertise,
			AsCandidateType: webrtc.ICECandidateTypeHost, Mode: webrtc.ICEAddressRewriteReplace})
		if err != nil {
			return nil, fmt.Errorf("webrtc.advertise: %w", err)
		}
	}
	ir := &interceptor.Registry{}
	// The NACK history keeps the header and payload each write was given instead of a
	// copy of them (pion's default copies every packet into a pooled 1460-byte buffer:
	// 0.75 MB per viewer, most of what a viewer cost). That is safe because a payload is
	// the feed's packet, shared by every viewer and never modified once published (see
	// frame), and writer.write makes a fresh header for every packet it writes.
	responder, err := nack.NewResponderInterceptor(nack.ResponderSize(nackHistory), nack.DisableCopy())
	if err != nil {
		return nil, err
	}
	ir.Add(responder)
	me.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack"}, webrtc.RTPCodecTypeVideo)
	sr, err := report.NewSenderInterceptor()
	if err != nil {
		return nil, err
	}
	ir.Add(sr)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(ir)), nil
}

// pionLogs routes pion's logs to slog: its errors as warnings, its warnings as debug (it
// warns about routine events such as a closing peer, once per session), the rest dropped.
type pionLogs struct{ log *slog.Logger }

func (p *pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{p.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (pionLogger) Trace(string)          {}
func (pionLogger) Tracef(string, ...any) {}
func (pionLogger) Debug(string)          {}
func (pionLogger) Debugf(string, ...any) {}
func (pionLogger) Info(string)           {}
func (pionLogger) Infof(string, ...any)  {}
func (l pionLogger) Warn(msg string)     { l.log.Debug(msg) }
func (l pionLogger) Warnf(f string, a ...any) {
	l.log.Debug(fmt.Sprintf(f, a...))
}
func (l pionLogger) Error(msg string) { l.log.Warn(msg) }
func (l pionLogger) Errorf(f string, a ...any) {
	l.log.Warn(fmt.Sprintf(f, a...))
}
