// Package whepclient is a minimal WHEP client over pion for loopback tests and the
// live-view benchmark: it plays the browser's part (a receive-only offer, the answer
// applied) so that the server can be exercised without one. It is not meant for other
// networks: it gathers loopback candidates only.
package whepclient

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// API returns a pion API with the default codecs and interceptors that gathers loopback
// candidates only, without mDNS, over UDP (or ICE-TCP when tcpOnly). patient stretches
// ICE's timeouts so a client survives a long silence (a test that stalls its connection).
// tune, if given, changes further settings (a test that asks for packets it already has
// turns SRTP replay protection off, or the copies would be dropped as replays).
func API(tcpOnly, patient bool, tune ...func(*webrtc.SettingEngine)) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	if patient {
		se.SetICETimeouts(time.Minute, 2*time.Minute, 2*time.Second)
	}
	network := webrtc.NetworkTypeUDP4
	if tcpOnly {
		network = webrtc.NetworkTypeTCP4
	}
	se.SetNetworkTypes([]webrtc.NetworkType{network})
	for _, f := range tune {
		f(&se)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// Error is an offer the server refused.
type Error struct {
	Status int
	Body   string
	Header http.Header
}

func (e *Error) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body) }

// Hooks change the SDP on its way (tests: an offer without a codec, an answer pointing at
// a proxy) and mark the moment the offer is posted (first-frame timings start there);
// nil ones do nothing.
type Hooks struct {
	Offer, Answer func(string) string
	Posting       func()
}

// Exchange creates pc's offer, waits for its candidates, posts it to url and applies the
// answer. It returns the session's Location; a refusal is an *Error.
func Exchange(pc *webrtc.PeerConnection, url string, hooks Hooks) (string, error) {
	return ExchangeWith(http.DefaultClient, pc, url, hooks)
}

// ExchangeWith is Exchange posting with client c: a logged-in client (cookie jar) for a
// server behind its access control.
func ExchangeWith(c *http.Client, pc *webrtc.PeerConnection, url string, hooks Hooks) (string, error) {
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return "", err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return "", err
	}
	<-gathered
	sdp := pc.LocalDescription().SDP
	if hooks.Offer != nil {
		sdp = hooks.Offer(sdp)
	}
	if hooks.Posting != nil {
		hooks.Posting()
	}
	resp, err := c.Post(url, "application/sdp", strings.NewReader(sdp))
	if err != nil {
		return "", err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", &Error{resp.StatusCode, string(body), resp.Header}
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/sdp" {
		return "", fmt.Errorf("answer Content-Type %q, want application/sdp", ct)
	}
	answer := string(body)
	if hooks.Answer != nil {
		answer = hooks.Answer(answer)
	}
	location := resp.Header.Get("Location")
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return location, err
	}
	return location, nil
}
