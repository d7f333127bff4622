package simcam

import (
	"errors"
	"fmt"
	"net"

	"github.com/bluenviron/gortsplib/v4"
)

// udpPairAttempts bounds the search for a free even/odd UDP port pair. Each
// attempt fails only if the neighbour of a fresh ephemeral port is taken,
// so a handful is plenty on any host that still has free ports.
const udpPairAttempts = 16

// writeQueueSize is each reader's queue of outgoing packets (gortsplib
// WriteQueueSize; a power of two). It must hold the burst a camera sends
// when it catches up after a stall of up to maxLateness: a 4 Mbit/s 1080p
// clip file is about 360 packets a second, so gortsplib's default of 256
// overflows after any stall over 0.7 s (seen on a loaded 2-core host), and
// readers would count as lost packets what the simulator itself held back.
// 4096 holds over 2 s of 16 Mbit/s, about 64 KiB of pointers per reader.
const writeQueueSize = 4096

// startRTSP binds every socket itself and hands the bound sockets to
// gortsplib through its Listen/ListenPacket hooks. Binding first lets us
// resolve ":0" (gortsplib does not expose its listener address) and pick
// UDP ports without a window in which another process could take them
// between "find a free port" and "bind it".
func (s *Server) startRTSP() (*gortsplib.Server, error) {
	host, _, _ := net.SplitHostPort(s.listen) // validated in New
	network := "tcp"
	if host == "0.0.0.0" {
		// Like gortsplib: an explicit IPv4 wildcard means IPv4 only.
		network = "tcp4"
	}
	ln, err := net.Listen(network, s.listen)
	if err != nil {
		return nil, fmt.Errorf("simcam: listen: %w", err)
	}
	ip := ln.Addr().(*net.TCPAddr).IP

	rtpConn, rtcpConn, err := listenUDPPair(ip)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("simcam: listen udp: %w", err)
	}
	rtpAddr, rtcpAddr := rtpConn.LocalAddr().String(), rtcpConn.LocalAddr().String()

	srv := &gortsplib.Server{
		Handler:        &rtspHandler{s: s},
		RTSPAddress:    ln.Addr().String(),
		UDPRTPAddress:  rtpAddr,
		UDPRTCPAddress: rtcpAddr,
		WriteQueueSize: writeQueueSize,
		// nil serves plain RTSP. With TLS, gortsplib offers UDP to RTSPS
		// clients only as SRTP; TCP is interleaved in the TLS connection.
		TLSConfig: s.tls,
		Listen: func(string, string) (net.Listener, error) {
			return ln, nil
		},
		ListenPacket: func(_, address string) (net.PacketConn, error) {
			switch address {
			case rtpAddr:
				return rtpConn, nil
			case rtcpAddr:
				return rtcpConn, nil
			}
			// Only multicast would ask for more, and it is not enabled.
			return nil, fmt.Errorf("unexpected UDP listen on %s", address)
		},
	}
	if err := srv.Start(); err != nil {
		// gortsplib closes what it took over on most failure paths; closing
		// again is harmless and covers the rest.
		ln.Close()
		rtpConn.Close()
		rtcpConn.Close()
		return nil, fmt.Errorf("simcam: start rtsp server: %w", err)
	}
	return srv, nil
}

// listenUDPPair binds two consecutive UDP ports on ip, the first even, as
// RTSP requires of a server's RTP/RTCP pair (gortsplib enforces it). It
// takes an ephemeral port from the kernel and tries its partner.
func listenUDPPair(ip net.IP) (rtpConn, rtcpConn *net.UDPConn, err error) {
	network := "udp"
	if ip.To4() != nil {
		network = "udp4"
	}
	for range udpPairAttempts {
		c, err := net.ListenUDP(network, &net.UDPAddr{IP: ip})
		if err != nil {
			return nil, nil, err
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		if port%2 == 0 {
			next, err := net.ListenUDP(network, &net.UDPAddr{IP: ip, Port: port + 1})
			if err == nil {
				return c, next, nil
			}
		} else {
			prev, err := net.ListenUDP(network, &net.UDPAddr{IP: ip, Port: port - 1})
			if err == nil {
				return prev, c, nil
			}
		}
		c.Close()
	}
	return nil, nil, errors.New("no free even/odd UDP port pair found")
}
