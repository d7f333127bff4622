package onvif

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/IOTechSystems/onvif/device"
	"github.com/IOTechSystems/onvif/gosoap"
	"github.com/IOTechSystems/onvif/media"
	tt "github.com/IOTechSystems/onvif/xsd/onvif"
)

// maxSOAPResponse caps what is read of one SOAP answer: a camera's profile list is a few
// KiB, and a device that sends more is not read into memory.
const maxSOAPResponse = 1 << 20

// requestSpaces declares the prefixes the library's request types are tagged with.
var requestSpaces = map[string]string{
	"tds":   "http://www.onvif.org/ver10/device/wsdl",
	"trt":   "http://www.onvif.org/ver10/media/wsdl",
	"onvif": "http://www.onvif.org/ver10/schema",
}

// ErrAuth is wrapped by Profiles' error when the device refused the credentials.
var ErrAuth = errors.New("the camera refused the user name or password")

// Profile is one media profile of a camera, with its RTSP stream's URI.
type Profile struct {
	Token     string  `json:"token"`
	Name      string  `json:"name"`
	Encoding  string  `json:"encoding,omitempty"` // H264, H265, JPEG, MPEG4
	Width     int     `json:"width,omitempty"`
	Height    int     `json:"height,omitempty"`
	FPS       int     `json:"fps,omitempty"`          // the encoder's frame rate limit
	Bitrate   int     `json:"bitrate_kbps,omitempty"` // the encoder's bitrate limit
	StreamURI string  `json:"stream_uri,omitempty"`   // without credentials
	Error     string  `json:"error,omitempty"`        // why there is no stream URI
	Supported bool    `json:"supported"`              // H.264 or H.265: townwatch can take it
	pixels    float64 // for ordering
}

// Streams is what a camera's profiles suggest for its main and sub streams: the
// supported profile with the most pixels, and the one with the fewest (nil when the
// camera has one).
type Streams struct {
	Main *Profile `json:"main"`
	Sub  *Profile `json:"sub"`
}

// Suggest picks the main and sub streams among profiles.
func Suggest(profiles []Profile) Streams {
	var ok []*Profile
	for i := range profiles {
		if p := &profiles[i]; p.Supported && p.StreamURI != "" {
			ok = append(ok, p)
		}
	}
	if len(ok) == 0 {
		return Streams{}
	}
	slices.SortStableFunc(ok, func(a, b *Profile) int {
		switch {
		case a.pixels > b.pixels:
			return -1
		case a.pixels < b.pixels:
			return 1
		}
		return 0
	})
	s := Streams{Main: ok[0]}
	if last := ok[len(ok)-1]; last.pixels < ok[0].pixels {
		s.Sub = last
	}
	return s
}

// Client reads profiles over SOAP. HTTP is the client used (nil: http.DefaultClient);
// the caller's context bounds every call.
type Client struct {
	HTTP *http.Client
}

// Profiles reads the media profiles of the device whose device service is at xaddr,
// each with its RTSP stream URI, with WS-Security credentials.
func (c *Client) Profiles(ctx context.Context, xaddr, username, password string) ([]Profile, error) {
	var caps device.GetCapabilitiesResponse
	if err := c.call(ctx, xaddr, username, password, device.GetCapabilities{Category: []tt.CapabilityCategory{"Media"}}, &caps); err != nil {
		return nil, fmt.Errorf("GetCapabilities: %w", err)
	}
	mediaAddr := strings.TrimSpace(string(caps.Capabilities.Media.XAddr))
	if mediaAddr == "" {
		return nil, errors.New("the camera names no media service (GetCapabilities has no Media XAddr)")
	}
	var got media.GetProfilesResponse
	if err := c.call(ctx, mediaAddr, username, password, media.GetProfiles{}, &got); err != nil {
		return nil, fmt.Errorf("GetProfiles: %w", err)
	}
	profiles := make([]Profile, len(got.Profiles))
	var wg sync.WaitGroup
	for i, p := range got.Profiles {
		profiles[i] = fromProfile(p)
		wg.Go(func() {
			uri, err := c.streamURI(ctx, mediaAddr, username, password, p.Token)
			if err != nil {
				profiles[i].Error = err.Error()
				return
			}
			profiles[i].StreamURI = uri
		})
	}
	wg.Wait()
	return profiles, nil
}

func (c *Client) streamURI(ctx context.Context, mediaAddr, username, password string, token tt.ReferenceToken) (string, error) {
	stream, proto := tt.StreamType("RTP-Unicast"), tt.TransportProtocol("RTSP")
	req := media.GetStreamUri{ProfileToken: &token, StreamSetup: &tt.StreamSetup{Stream: &stream, Transport: &tt.Transport{Protocol: &proto}}}
	var resp media.GetStreamUriResponse
	if err := c.call(ctx, mediaAddr, username, password, req, &resp); err != nil {
		return "", fmt.Errorf("GetStreamUri: %w", err)
	}
	u, err := url.Parse(strings.TrimSpace(string(resp.MediaUri.Uri)))
	if err != nil || (u.Scheme != "rtsp" && u.Scheme != "rtsps") {
		return "", fmt.Errorf("GetStreamUri: not an RTSP URI: %q", safeURL(string(resp.MediaUri.Uri)))
	}
	u.User = nil // some cameras put the credentials in; the configuration keeps them apart
	return u.String(), nil
}

// safeURL cuts a camera-sent string for an error message: it may be long or hold
// credentials, so only its scheme and host are shown.
func safeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable>"
	}
	return u.Scheme + "://" + u.Host + "/..."
}

func fromProfile(p tt.Profile) Profile {
	out := Profile{Token: string(p.Token), Name: string(p.Name)}
	if ve := p.VideoEncoderConfiguration; ve != nil {
		if ve.Encoding != nil {
			out.Encoding = strings.ToUpper(string(*ve.Encoding))
		}
		if r := ve.Resolution; r != nil && r.Width != nil && r.Height != nil {
			out.Width, out.Height = int(*r.Width), int(*r.Height)
		}
		if rc := ve.RateControl; rc != nil {
			if rc.FrameRateLimit != nil {
				out.FPS = int(*rc.FrameRateLimit)
			}
			if rc.BitrateLimit != nil {
				out.Bitrate = int(*rc.BitrateLimit)
			}
		}
	}
	out.Supported = out.Encoding == "H264" || out.Encoding == "H265"
	out.pixels = float64(out.Width) * float64(out.Height)
	return out
}

// call sends one SOAP request with a WS-Security UsernameToken and decodes the answer's
// body into resp.
func (c *Client) call(ctx context.Context, endpoint, username, password string, req, resp any) error {
	body, err := xml.Marshal(req)
	if err != nil {
		return err
	}
	msg := gosoap.NewEmptySOAP()
	msg.AddStringBodyContent(string(body))
	msg.AddRootNamespaces(requestSpaces)
	if username != "" {
		if err := msg.AddWSSecurity(username, password); err != nil {
			return err
		}
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(msg.String()))
	if err != nil {
		return fmt.Errorf("bad address %s", safeURL(endpoint))
	}
	hreq.Header.Set("Content-Type", "application/soap+xml; charset=utf-8")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	hresp, err := hc.Do(hreq)
	if err != nil {
		return err
	}
	defer hresp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(hresp.Body, maxSOAPResponse+1))
	if err != nil {
		return err
	}
	if len(data) > maxSOAPResponse {
		return fmt.Errorf("answer larger than %d bytes", maxSOAPResponse)
	}
	env := gosoap.SOAPEnvelope{Body: gosoap.SOAPBody{Content: resp}}
	decodeErr := xml.NewDecoder(bytes.NewReader(data)).Decode(&env)
	if fault := env.Body.Fault; fault != nil {
		if isAuthFault(fault) || hresp.StatusCode == http.StatusUnauthorized {
			return fmt.Errorf("%w (%s)", ErrAuth, strings.TrimSpace(fault.String()))
		}
		return fmt.Errorf("SOAP fault: %s", strings.TrimSpace(fault.String()))
	}
	switch {
	case hresp.StatusCode == http.StatusUnauthorized:
		return ErrAuth
	case hresp.StatusCode != http.StatusOK:
		return fmt.Errorf("HTTP %s", hresp.Status)
	case decodeErr != nil:
		return fmt.Errorf("unreadable answer: %w", decodeErr)
	}
	return nil
}

// isAuthFault recognises ONVIF's ter:NotAuthorized (and WS-Security's FailedAuthentication)
// in a fault's subcodes, by local name: cameras differ in the prefixes they use.
func isAuthFault(f *gosoap.SOAPFault) bool {
	s := f.String()
	return strings.Contains(s, "NotAuthorized") || strings.Contains(s, "FailedAuthentication")
}
