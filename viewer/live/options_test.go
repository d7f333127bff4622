package live

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/viewer/live/whepclient"
)

// TestNewRejectsBadOptionsNamingThem: every bad option is reported at once, by name.
func TestNewRejectsBadOptionsNamingThem(t *testing.T) {
	_, err := New(ingest.NewHub(), []Camera{{ID: "a"}, {ID: "a"}, {}}, Options{
		ListenHost: "example.org", UDPPort: 70000, TCPPort: -1, Advertise: []string{"1.2.3.4", "nat.example"},
		ICEServers: []webrtc.ICEServer{{}}, MaxViewers: -1, TCPWriteStall: -time.Second,
	})
	if err == nil {
		t.Fatal("New accepted bad options")
	}
	for _, want := range []string{
		`cameras[1]: duplicate camera id "a"`, "cameras[2]: id is empty", `listen host "example.org"`,
		"webrtc.udp_port: 70000", "webrtc.tcp_port: -1", `webrtc.advertise[1]: "nat.example"`,
		"webrtc.ice_servers[0]: no urls", "max viewers (-1)", "TCP write stall (-1s)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if _, err := New(nil, nil, Options{}); err == nil {
		t.Error("New accepted a nil hub")
	}
}

// TestAdvertisedAddressReplacesTheLocalOne: with NAT 1:1 configured, the answer's host
// candidates carry the public address, on the same single UDP and TCP ports.
func TestAdvertisedAddressReplacesTheLocalOne(t *testing.T) {
	t.Parallel()
	r := newRig(t, Options{Advertise: []string{"192.0.2.10"}})
	api, err := whepclient.API(false, false)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	status, answer, hdr := post(t, r.http.URL+"/api/cameras/cam/whep", "application/sdp", offer.SDP)
	if status != 201 {
		t.Fatalf("offer: %d %s", status, answer)
	}
	defer func() {
		v := &viewer{location: hdr.Get("Location")}
		if st := v.hangUp(t, r.http.URL); st != 204 {
			t.Errorf("DELETE: %d", st)
		}
	}()
	var cands []string
	for _, l := range strings.Split(answer, "\r\n") {
		if strings.HasPrefix(l, "a=candidate:") {
			cands = append(cands, l)
		}
	}
	udp := r.m.UDPAddr().String()[strings.LastIndex(r.m.UDPAddr().String(), ":")+1:]
	tcp := r.m.TCPAddr().String()[strings.LastIndex(r.m.TCPAddr().String(), ":")+1:]
	var sawUDP, sawTCP bool
	for _, c := range cands {
		if strings.Contains(c, "127.0.0.1") {
			t.Errorf("local address leaked into a candidate: %s", c)
		}
		sawUDP = sawUDP || strings.Contains(c, " udp ") && strings.Contains(c, "192.0.2.10 "+udp+" ")
		sawTCP = sawTCP || strings.Contains(c, " tcp ") && strings.Contains(c, "192.0.2.10 "+tcp+" ")
	}
	if !sawUDP || !sawTCP {
		t.Errorf("want UDP and TCP host candidates on 192.0.2.10 ports %s/%s, got:\n%s", udp, tcp, strings.Join(cands, "\n"))
	}
}

// The unspecified address (webrtc.listen: 0.0.0.0, or http.listen on every interface)
// means every interface, like "": it must not become an IP filter that matches no
// candidate at all (no browser could then connect).
func TestUnspecifiedListenHostMeansEveryInterface(t *testing.T) {
	for _, host := range []string{"", "0.0.0.0", "::", "[::]"} {
		m, err := New(ingest.NewHub(), []Camera{{ID: "a"}}, Options{ListenHost: host})
		if err != nil {
			t.Fatalf("%q: %v", host, err)
		}
		if m.ip != nil {
			t.Errorf("listen host %q filters candidates to %v; want every interface", host, m.ip)
		}
	}
	m, err := New(ingest.NewHub(), []Camera{{ID: "a"}}, Options{ListenHost: "192.168.10.5"})
	if err != nil || !m.ip.Equal(net.ParseIP("192.168.10.5")) {
		t.Errorf("a specific address: ip %v, err %v", m.ip, err)
	}
}
