// Package onviftest is a simulated ONVIF camera for tests: a WS-Discovery responder on
// 239.255.255.250:3702 and the device and media SOAP services (GetCapabilities,
// GetProfiles, GetStreamUri) with WS-Security UsernameToken digest authentication, whose
// stream URIs point wherever the test says (an ingest/simcam server, as a rule).
//
// It is written from the ONVIF and WS-Discovery specifications with hand-made XML and
// shares no code or types with package onvif or the ONVIF library it uses, so a test
// passing against it is not one implementation agreeing with itself.
//
// The responder binds the WS-Discovery port, so a test runs it where that port is free:
// in a network namespace of its own (see package onvif's tests).
package onviftest

import (
	"context"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// Profile is one media profile the camera offers.
type Profile struct {
	Token, Name   string
	Encoding      string // H264, H265, JPEG
	Width, Height int
	FPS           int
	URI           string // what GetStreamUri answers
}

// Camera configures the simulated camera.
type Camera struct {
	Endpoint           string // urn:uuid:..., its WS-Discovery address
	Name, Hardware     string // scopes
	Username, Password string // the WS-Security credentials it accepts
	Profiles           []Profile
	// Interface is where the responder joins the multicast group ("lo" in a test's
	// network namespace).
	Interface string
}

// Server is a running simulated camera.
type Server struct {
	cam   Camera
	http  *http.Server
	ln    net.Listener
	udp   *net.UDPConn
	wg    sync.WaitGroup
	mu    sync.Mutex
	probe int // Probes answered
}

// Start starts the camera's services on 127.0.0.1 and its responder on the WS-Discovery
// port. Close stops both.
func Start(cam Camera) (*Server, error) {
	ifi, err := net.InterfaceByName(cam.Interface)
	if err != nil {
		return nil, err
	}
	// SO_REUSEADDR: other responders on this host (wsdd) listen on the same group and
	// port, and each gets its own copy of every multicast datagram.
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1) })
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", "239.255.255.250:3702")
	if err != nil {
		return nil, fmt.Errorf("onviftest: binding the WS-Discovery port: %w", err)
	}
	udp := pc.(*net.UDPConn)
	if err := ipv4.NewPacketConn(udp).JoinGroup(ifi, &net.UDPAddr{IP: net.IPv4(239, 255, 255, 250)}); err != nil {
		udp.Close()
		return nil, fmt.Errorf("onviftest: joining the WS-Discovery group on %s: %w", cam.Interface, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		udp.Close()
		return nil, err
	}
	s := &Server{cam: cam, ln: ln, udp: udp}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /onvif/device_service", s.serveSOAP)
	mux.HandleFunc("POST /onvif/media_service", s.serveSOAP)
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	s.wg.Go(func() { _ = s.http.Serve(ln) })
	s.wg.Go(s.respond)
	return s, nil
}

// XAddr is the device service's URL.
func (s *Server) XAddr() string { return "http://" + s.ln.Addr().String() + "/onvif/device_service" }

// Probes is how many Probes the responder has answered.
func (s *Server) Probes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.probe
}

// Close stops the camera and waits for its goroutines.
func (s *Server) Close() {
	s.udp.Close()
	_ = s.http.Close()
	s.wg.Wait()
}

// respond answers Probes for NetworkVideoTransmitter (or for any type, when a Probe names
// none), unicast to the sender, as WS-Discovery prescribes.
func (s *Server) respond() {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := s.udp.ReadFromUDP(buf)
		if err != nil {
			return
		}
		id, types, ok := readProbe(buf[:n])
		if !ok || (types != "" && !strings.Contains(types, "NetworkVideoTransmitter")) {
			continue
		}
		s.mu.Lock()
		s.probe++
		s.mu.Unlock()
		_, _ = s.udp.WriteToUDP([]byte(s.probeMatch(id)), from)
	}
}

// readProbe reads a Probe's MessageID and Types; ok is false for anything else.
func readProbe(data []byte) (id, types string, ok bool) {
	var env struct {
		MessageID string `xml:"Header>MessageID"`
		Probe     *struct {
			Types string `xml:"Types"`
		} `xml:"Body>Probe"`
	}
	if xml.Unmarshal(data, &env) != nil || env.Probe == nil || env.MessageID == "" {
		return "", "", false
	}
	return strings.TrimSpace(env.MessageID), strings.TrimSpace(env.Probe.Types), true
}

func (s *Server) probeMatch(relatesTo string) string {
	scopes := "onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/Profile/Streaming" +
		" onvif://www.onvif.org/name/" + strings.ReplaceAll(s.cam.Name, " ", "%20") +
		" onvif://www.onvif.org/hardware/" + strings.ReplaceAll(s.cam.Hardware, " ", "%20")
	return `<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope"
 xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:wsdd="http://schemas.xmlsoap.org/ws/2005/04/discovery"
 xmlns:tdn="http://www.onvif.org/ver10/network/wsdl"
 xmlns:tds="http://www.onvif.org/ver10/device/wsdl">
<SOAP-ENV:Header>
<wsa:MessageID>urn:uuid:` + fmt.Sprintf("%x", time.Now().UnixNano()) + `</wsa:MessageID>
<wsa:RelatesTo>` + html.EscapeString(relatesTo) + `</wsa:RelatesTo>
<wsa:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To>
<wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsa:Action>
</SOAP-ENV:Header>
<SOAP-ENV:Body><wsdd:ProbeMatches><wsdd:ProbeMatch>
<wsa:EndpointReference><wsa:Address>` + html.EscapeString(s.cam.Endpoint) + `</wsa:Address></wsa:EndpointReference>
<wsdd:Types>tdn:NetworkVideoTransmitter tds:Device</wsdd:Types>
<wsdd:Scopes>` + html.EscapeString(scopes) + `</wsdd:Scopes>
<wsdd:XAddrs>` + html.EscapeString(s.XAddr()) + `</wsdd:XAddrs>
<wsdd:MetadataVersion>1</wsdd:MetadataVersion>
</wsdd:ProbeMatch></wsdd:ProbeMatches></SOAP-ENV:Body></SOAP-ENV:Envelope>`
}

// soapRequest is what the services read of a request: the UsernameToken, the operation
// (the body's first element) and GetStreamUri's profile token.
type soapRequest struct {
	Token struct {
		Username string `xml:"Username"`
		Password string `xml:"Password"`
		Nonce    string `xml:"Nonce"`
		Created  string `xml:"Created"`
	} `xml:"Header>Security>UsernameToken"`
	Body struct {
		Ops []struct {
			XMLName      xml.Name
			ProfileToken string `xml:"ProfileToken"`
		} `xml:",any"`
	} `xml:"Body"`
}

func (s *Server) serveSOAP(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var req soapRequest
	if err == nil {
		err = xml.Unmarshal(data, &req)
	}
	if err != nil || len(req.Body.Ops) != 1 {
		fault(w, http.StatusBadRequest, "env:Sender", "ter:WellFormed", "not one SOAP operation")
		return
	}
	op := req.Body.Ops[0]
	if !s.authorized(req) {
		fault(w, http.StatusBadRequest, "env:Sender", "ter:NotAuthorized", "Sender not Authorized")
		return
	}
	var body string
	switch op.XMLName.Local {
	case "GetCapabilities":
		media := "http://" + r.Host + "/onvif/media_service"
		body = `<tds:GetCapabilitiesResponse><tds:Capabilities><tt:Media><tt:XAddr>` + media +
			`</tt:XAddr><tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast><tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media></tds:Capabilities></tds:GetCapabilitiesResponse>`
	case "GetProfiles":
		var b strings.Builder
		b.WriteString(`<trt:GetProfilesResponse>`)
		for _, p := range s.cam.Profiles {
			fmt.Fprintf(&b, `<trt:Profiles token="%s" fixed="true"><tt:Name>%s</tt:Name>`+
				`<tt:VideoEncoderConfiguration token="enc-%s"><tt:Name>enc</tt:Name><tt:UseCount>1</tt:UseCount><tt:Encoding>%s</tt:Encoding>`+
				`<tt:Resolution><tt:Width>%d</tt:Width><tt:Height>%d</tt:Height></tt:Resolution><tt:Quality>5</tt:Quality>`+
				`<tt:RateControl><tt:FrameRateLimit>%d</tt:FrameRateLimit><tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>2048</tt:BitrateLimit></tt:RateControl>`+
				`</tt:VideoEncoderConfiguration></trt:Profiles>`,
				html.EscapeString(p.Token), html.EscapeString(p.Name), html.EscapeString(p.Token), p.Encoding, p.Width, p.Height, p.FPS)
		}
		b.WriteString(`</trt:GetProfilesResponse>`)
		body = b.String()
	case "GetStreamUri":
		for _, p := range s.cam.Profiles {
			if p.Token == strings.TrimSpace(op.ProfileToken) {
				body = `<trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>` + html.EscapeString(p.URI) +
					`</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetStreamUriResponse>`
			}
		}
		if body == "" {
			fault(w, http.StatusBadRequest, "env:Sender", "ter:NoProfile", "no such profile")
			return
		}
	default:
		fault(w, http.StatusBadRequest, "env:Receiver", "ter:ActionNotSupported", op.XMLName.Local+" is not simulated")
		return
	}
	w.Header().Set("Content-Type", "application/soap+xml; charset=utf-8")
	_, _ = io.WriteString(w, envelope(body))
}

// authorized checks a UsernameToken's password digest (WS-Security UsernameToken
// Profile 1.0): Base64(SHA-1(nonce + created + password)).
func (s *Server) authorized(req soapRequest) bool {
	t := req.Token
	if t.Username != s.cam.Username {
		return false
	}
	nonce, err := base64.StdEncoding.DecodeString(strings.TrimSpace(t.Nonce))
	if err != nil {
		return false
	}
	sum := sha1.Sum(append(append(nonce, strings.TrimSpace(t.Created)...), s.cam.Password...))
	want := base64.StdEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(want), []byte(strings.TrimSpace(t.Password))) == 1
}

func envelope(body string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:tds="http://www.onvif.org/ver10/device/wsdl"
 xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema"
 xmlns:ter="http://www.onvif.org/ver10/error"><env:Body>` + body + `</env:Body></env:Envelope>`
}

func fault(w http.ResponseWriter, status int, code, subcode, reason string) {
	w.Header().Set("Content-Type", "application/soap+xml; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, envelope(`<env:Fault><env:Code><env:Value>`+code+`</env:Value><env:Subcode><env:Value>`+subcode+
		`</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang="en">`+html.EscapeString(reason)+`</env:Text></env:Reason></env:Fault>`))
}
