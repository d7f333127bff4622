package onvif

import (
	"fmt"
	"testing"
)

// match is a ProbeMatches message with the given RelatesTo, Types and XAddrs, declaring
// the prefixes dn (ONVIF's network WSDL), wsdp (devices profile) and pub (Windows).
func match(relatesTo, types, xaddrs string) []byte {
	return fmt.Appendf(nil, `<?xml version="1.0"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dn="http://www.onvif.org/ver10/network/wsdl"
 xmlns:wsdp="http://schemas.xmlsoap.org/ws/2006/02/devprof" xmlns:pub="http://schemas.microsoft.com/windows/pub/2005/07"
 xmlns:evil="urn:not-onvif">
<s:Header><a:RelatesTo>%s</a:RelatesTo></s:Header>
<s:Body><d:ProbeMatches><d:ProbeMatch><a:EndpointReference><a:Address>urn:uuid:1</a:Address></a:EndpointReference>
<d:Types>%s</d:Types><d:Scopes>onvif://www.onvif.org/name/Most%%20u%%20radnice onvif://www.onvif.org/location/city/Stribro</d:Scopes>
<d:XAddrs>%s</d:XAddrs></d:ProbeMatch></d:ProbeMatches></s:Body></s:Envelope>`, relatesTo, types, xaddrs)
}

func TestParseProbeMatches(t *testing.T) {
	const id = "uuid:probe-1"
	devs := parseProbeMatches(match(id, "dn:NetworkVideoTransmitter", "urn:x http://10.0.0.21/onvif/device_service http://[fe80::1]/x"), id)
	if len(devs) != 1 || devs[0].XAddr != "http://10.0.0.21/onvif/device_service" || devs[0].Host != "10.0.0.21" ||
		devs[0].Name != "Most u radnice" || devs[0].Location != "city/Stribro" || devs[0].Endpoint != "urn:uuid:1" {
		t.Fatalf("a camera's answer: %+v", devs)
	}
	for name, data := range map[string][]byte{
		"wsdd (a Windows or Samba host)":     match(id, "wsdp:Device pub:Computer", "http://10.0.0.5:5357/x"),
		"the type under a foreign namespace": match(id, "evil:NetworkVideoTransmitter", "http://10.0.0.6/x"),
		"an answer to another probe":         match("uuid:someone-else", "dn:NetworkVideoTransmitter", "http://10.0.0.7/x"),
		"no http address":                    match(id, "dn:NetworkVideoTransmitter", "urn:uuid:1 soap.udp://10.0.0.8:3702"),
		"not XML":                            []byte("NOTIFY * HTTP/1.1\r\n"),
		"a camera's type without its prefix": match(id, "NetworkVideoTransmitter", "http://10.0.0.9/x"),
	} {
		if devs := parseProbeMatches(data, id); len(devs) != 0 {
			t.Errorf("%s: listed %+v", name, devs)
		}
	}
}
