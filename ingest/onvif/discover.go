// Package onvif finds ONVIF cameras on the camera network and reads their media profiles,
// so an administrator adds a camera by picking it from a list instead of typing its RTSP
// URL from the vendor's manual.
//
// Discovery is WS-Discovery: one Probe for dn:NetworkVideoTransmitter sent to
// 239.255.255.250:3702 from each chosen interface, with TTL 1 (the camera network is one
// segment), and every ProbeMatch that relates to that Probe and names the type collected
// for Discoverer.Window. Other WS-Discovery responders (Windows and Samba hosts, printers)
// do not answer that type, and an answer that does not name it is dropped.
//
// Profiles are read over SOAP with WS-Security UsernameToken (password digest):
// GetCapabilities on the device service for the media service's address, GetProfiles
// there, and GetStreamUri for every profile at once.
//
// The SOAP and WS-Discovery messages and types come from github.com/IOTechSystems/onvif
// (its ws-discovery, device, media, xsd and gosoap packages only: its root package pulls
// in a web framework); the network side here is townwatch's own: bounded by the caller's
// context, concurrent over interfaces and profiles, and with response sizes capped.
//
// What blocks: Discover for Window (1 s by default); Profiles for at most its context's
// time (the HTTP API gives it 5 s). Nothing here keeps a goroutine after it returns.
package onvif

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	wsdiscovery "github.com/IOTechSystems/onvif/ws-discovery"
	"github.com/google/uuid"
	"golang.org/x/net/ipv4"
)

// WS-Discovery's multicast group and port (OASIS WS-Discovery 1.0, as ONVIF uses it).
var discoveryGroup = &net.UDPAddr{IP: net.IPv4(239, 255, 255, 250), Port: 3702}

const (
	// DefaultWindow is how long Discover listens for answers. ONVIF cameras answer within
	// APP_MAX_DELAY (500 ms) of a Probe; the rest is margin for a busy camera.
	DefaultWindow = time.Second
	// maxDatagram is the largest answer read: WS-Discovery messages fit one UDP datagram.
	maxDatagram = 64 << 10
	// nvtType is the WS-Discovery type every ONVIF video transmitter announces.
	nvtType  = "NetworkVideoTransmitter"
	nvtSpace = "http://www.onvif.org/ver10/network/wsdl"
)

// Device is one ONVIF camera that answered a Probe.
type Device struct {
	// Endpoint is the device's stable WS-Discovery address (urn:uuid:...): it survives a
	// change of IP address.
	Endpoint string `json:"endpoint"`
	// XAddr is the device service's URL, where Profiles asks for the media profiles.
	XAddr     string   `json:"xaddr"`
	Host      string   `json:"host"`                // XAddr's host (an IP address as a rule)
	Name      string   `json:"name,omitempty"`      // from the onvif://www.onvif.org/name/ scope
	Hardware  string   `json:"hardware,omitempty"`  // .../hardware/ scope: the model
	Location  string   `json:"location,omitempty"`  // .../location/ scope
	Scopes    []string `json:"scopes,omitempty"`    // every scope, as sent
	Interface string   `json:"interface,omitempty"` // where its answer came in
}

// Discoverer sends WS-Discovery probes. The zero value listens DefaultWindow on any
// interface that is up, multicast-capable, has an IPv4 address and is not loopback.
type Discoverer struct {
	Window time.Duration
	// Interfaces, when set, are the only interfaces Discover may use (the camera
	// network's), and the default when the caller names none.
	Interfaces []string
}

// ErrInterface is wrapped by Discover's errors about the iface argument: a name that
// does not exist or may not be used, or no usable interface at all.
var ErrInterface = errors.New("iface")

// Discover probes from iface ("" for every allowed interface at once) and returns the
// devices that answered, ordered by host, each once.
func (d *Discoverer) Discover(ctx context.Context, iface string) ([]Device, error) {
	ifaces, err := d.interfaces(iface)
	if err != nil {
		return nil, err
	}
	window := d.Window
	if window <= 0 {
		window = DefaultWindow
	}
	ctx, cancel := context.WithTimeout(ctx, window)
	defer cancel()
	var (
		mu      sync.Mutex
		found   = map[string]Device{}
		errs    []error
		wg      sync.WaitGroup
		answers int
	)
	for _, ifi := range ifaces {
		wg.Go(func() {
			devs, err := probeInterface(ctx, ifi)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", ifi.Name, err))
			}
			for _, dev := range devs {
				answers++
				if _, dup := found[dev.Endpoint]; !dup {
					found[dev.Endpoint] = dev
				}
			}
		})
	}
	wg.Wait()
	if answers == 0 && len(errs) == len(ifaces) {
		return nil, errors.Join(errs...) // no interface could even send
	}
	out := make([]Device, 0, len(found))
	for _, dev := range found {
		out = append(out, dev)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Host < out[j].Host || out[i].Host == out[j].Host && out[i].XAddr < out[j].XAddr
	})
	return out, nil
}

// interfaces resolves the iface argument to the interfaces to probe from.
func (d *Discoverer) interfaces(iface string) ([]net.Interface, error) {
	all, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, ifi := range all {
		names = append(names, ifi.Name)
	}
	if iface != "" {
		if len(d.Interfaces) > 0 && !slices.Contains(d.Interfaces, iface) {
			return nil, fmt.Errorf("%w: %q is not one of the camera network's interfaces (%s)", ErrInterface, iface, strings.Join(d.Interfaces, ", "))
		}
		i := slices.IndexFunc(all, func(ifi net.Interface) bool { return ifi.Name == iface })
		if i < 0 {
			return nil, fmt.Errorf("%w: no interface %q (this machine has %s)", ErrInterface, iface, strings.Join(names, ", "))
		}
		if all[i].Flags&net.FlagUp == 0 || ipv4Of(all[i]) == nil {
			return nil, fmt.Errorf("%w: interface %q is down or has no IPv4 address", ErrInterface, iface)
		}
		return all[i : i+1], nil
	}
	var out []net.Interface
	for _, ifi := range all {
		usable := ifi.Flags&net.FlagUp != 0 && ipv4Of(ifi) != nil
		if len(d.Interfaces) > 0 {
			usable = usable && slices.Contains(d.Interfaces, ifi.Name)
		} else {
			usable = usable && ifi.Flags&net.FlagMulticast != 0 && ifi.Flags&net.FlagLoopback == 0
		}
		if usable {
			out = append(out, ifi)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no interface is up with multicast and an IPv4 address; name one (this machine has %s)", ErrInterface, strings.Join(names, ", "))
	}
	return out, nil
}

// ipv4Of is the interface's first IPv4 address, or nil.
func ipv4Of(ifi net.Interface) net.IP {
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.To4()
		}
	}
	return nil
}

// probeInterface sends one Probe from ifi's IPv4 address and collects the answers to
// it until ctx is done. Answers come back unicast to the socket the Probe left from.
func probeInterface(ctx context.Context, ifi net.Interface) ([]Device, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ipv4Of(ifi)})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	p := ipv4.NewPacketConn(conn)
	if err := p.SetMulticastInterface(&ifi); err != nil {
		return nil, fmt.Errorf("choosing the interface for multicast: %w", err)
	}
	// TTL 1: a Probe never leaves the camera network's segment.
	if err := p.SetMulticastTTL(1); err != nil {
		return nil, err
	}
	if err := p.SetMulticastLoopback(true); err != nil { // a responder on this very machine
		return nil, err
	}
	messageID := "uuid:" + uuid.NewString()
	msg := wsdiscovery.BuildProbeMessage(strings.TrimPrefix(messageID, "uuid:"), nil,
		[]string{"dn:" + nvtType}, map[string]string{"dn": nvtSpace})
	if _, err := conn.WriteToUDP([]byte(msg.String()), discoveryGroup); err != nil {
		return nil, fmt.Errorf("sending the probe: %w", err)
	}
	var out []Device
	buf := make([]byte, maxDatagram)
	for {
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			if ctx.Err() != nil {
				return out, nil // the window is over
			}
			return out, err
		}
		for _, dev := range parseProbeMatches(buf[:n], messageID) {
			dev.Interface = ifi.Name
			out = append(out, dev)
		}
	}
}

// hostOf is the host of a URL without port and brackets, lower case; "" if it has none.
func hostOf(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}
