package live

import (
	"bytes"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/townwatch/townwatch/ingest/simcam"
)

// nackBack is how many packets before the newest one received the older of the two
// packets TestNACKedPacketsAreSentAgainIntact asks for again: past 256 (a history that
// short lost a 1080p keyframe's packets under load, see nackHistory), with room to spare
// for the packets sent while the NACK is on its way.
const nackBack = 300

// TestNACKedPacketsAreSentAgainIntact: a viewer that asks for packets again (RTCP NACK,
// as a browser does for a packet lost on the way) gets each exactly as it was sent the
// first time, header and payload, both a packet sent just before and one sent nackBack
// packets earlier. The history the server answers from holds references to the packets
// the feed shares with every viewer, not copies, so this is also what fails if one of
// them is reused or changed after it was sent.
func TestNACKedPacketsAreSentAgainIntact(t *testing.T) {
	r := newRigFrom(t, simcam.CameraSpec{Path: "cam", File: busyClip(t)}, Options{})
	pkts := make(chan *rtp.Packet, 4096)
	v, err := dialWHEP(t, r.http.URL, "cam", viewerOpts{acceptReplays: true, packets: pkts})
	if err != nil {
		t.Fatal(err)
	}

	next := func() *rtp.Packet {
		t.Helper()
		select {
		case p := <-pkts:
			return p
		case <-time.After(10 * time.Second):
			t.Fatal("no RTP packet within 10 s")
			return nil
		}
	}
	var order []uint16 // sequence numbers in the order they arrived
	first := map[uint16]*rtp.Packet{}
	for len(order) <= nackBack {
		p := next()
		if _, dup := first[p.SequenceNumber]; !dup {
			first[p.SequenceNumber] = p
			order = append(order, p.SequenceNumber)
		}
	}
	newest := len(order) - 1
	want := []uint16{order[newest-nackBack], order[newest-1]}
	ssrc := first[want[0]].SSRC
	if err := v.pc.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: ssrc,
		Nacks: rtcp.NackPairsFromSequenceNumbers(want)}}); err != nil {
		t.Fatal(err)
	}
	again := map[uint16]*rtp.Packet{}
	deadline := time.After(10 * time.Second)
	for len(again) < len(want) {
		select {
		case p := <-pkts:
			_, seen := first[p.SequenceNumber]
			switch {
			case !seen:
				first[p.SequenceNumber] = p
			case p.SequenceNumber == want[0] || p.SequenceNumber == want[1]:
				again[p.SequenceNumber] = p
			}
		case <-deadline:
			t.Fatalf("asked for packets %v again (%d and 1 packets before the newest); 10 s later got only %d of them",
				want, nackBack, len(again))
		}
	}
	for _, seq := range want {
		a, b := first[seq], again[seq]
		if a.SSRC != b.SSRC || a.Timestamp != b.Timestamp || a.Marker != b.Marker || a.PayloadType != b.PayloadType {
			t.Errorf("packet %d sent again with header %+v, first sent with %+v", seq, b.Header, a.Header)
		}
		if !bytes.Equal(a.Payload, b.Payload) {
			t.Errorf("packet %d sent again with another payload (%d bytes, first %d bytes)", seq, len(b.Payload), len(a.Payload))
		}
	}
}
