package onvif

import (
	"bytes"
	"encoding/xml"
	"net/url"
	"strings"
)

// probeMatches is the part of a WS-Discovery ProbeMatches message townwatch reads.
// Element names are matched by local name; the Types are checked by namespace below.
type probeMatches struct {
	RelatesTo string `xml:"Header>RelatesTo"`
	Matches   []struct {
		Address string `xml:"EndpointReference>Address"`
		Types   string `xml:"Types"`
		Scopes  string `xml:"Scopes"`
		XAddrs  string `xml:"XAddrs"`
	} `xml:"Body>ProbeMatches>ProbeMatch"`
}

// parseProbeMatches returns the ONVIF video transmitters of one datagram that answers
// the Probe messageID. Anything else (a Hello, an answer to someone else's Probe, a
// device of another type, a match without a usable address, not XML at all) gives none.
func parseProbeMatches(data []byte, messageID string) []Device {
	var pm probeMatches
	if xml.Unmarshal(data, &pm) != nil || strings.TrimSpace(pm.RelatesTo) != messageID {
		return nil
	}
	spaces := namespaces(data)
	var out []Device
	for _, m := range pm.Matches {
		if !hasType(m.Types, spaces, nvtSpace, nvtType) {
			continue
		}
		xaddr := firstHTTP(m.XAddrs)
		if xaddr == "" {
			continue
		}
		dev := Device{Endpoint: strings.TrimSpace(m.Address), XAddr: xaddr, Host: hostOf(xaddr), Scopes: strings.Fields(m.Scopes)}
		if dev.Endpoint == "" {
			dev.Endpoint = xaddr
		}
		for _, s := range dev.Scopes {
			switch {
			case strings.HasPrefix(s, scopeName):
				dev.Name = scopeValue(s, scopeName)
			case strings.HasPrefix(s, scopeHardware):
				dev.Hardware = scopeValue(s, scopeHardware)
			case strings.HasPrefix(s, scopeLocation):
				dev.Location = scopeValue(s, scopeLocation)
			}
		}
		out = append(out, dev)
	}
	return out
}

// ONVIF scope prefixes (ONVIF Core, Discovery scopes).
const (
	scopeName     = "onvif://www.onvif.org/name/"
	scopeHardware = "onvif://www.onvif.org/hardware/"
	scopeLocation = "onvif://www.onvif.org/location/"
)

func scopeValue(scope, prefix string) string {
	v := strings.TrimPrefix(scope, prefix)
	if u, err := url.PathUnescape(v); err == nil {
		v = u
	}
	return v
}

// namespaces collects every prefix declaration of a message. WS-Discovery messages
// declare them on the envelope; a prefix declared twice differently is not worth
// telling apart here.
func namespaces(data []byte) map[string]string {
	out := map[string]string{}
	dec := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.RawToken()
		if err != nil {
			return out
		}
		if se, ok := tok.(xml.StartElement); ok {
			for _, a := range se.Attr {
				if a.Name.Space == "xmlns" {
					out[a.Name.Local] = a.Value
				}
			}
		}
	}
}

// hasType reports whether a Types list of QNames holds space's local name.
func hasType(types string, spaces map[string]string, space, local string) bool {
	for _, qn := range strings.Fields(types) {
		prefix, name, ok := strings.Cut(qn, ":")
		if ok && name == local && spaces[prefix] == space {
			return true
		}
	}
	return false
}

// firstHTTP is the first http(s) URL of a space-separated XAddrs list.
func firstHTTP(xaddrs string) string {
	for _, x := range strings.Fields(xaddrs) {
		if u, err := url.Parse(x); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
			return x
		}
	}
	return ""
}
