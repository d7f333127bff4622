package live

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/townwatch/townwatch/ingest"
)

// FuzzOffer: whatever a client posts as an offer, the WHEP handler answers at once with a
// session (201) or a client error, never a panic, a hang or a 500, and a session it
// creates can be ended again. The seeds are a real pion offer and mangled forms of it.
func FuzzOffer(f *testing.F) {
	hub := ingest.NewHub()
	hub.Start("cam", ingest.StreamMain, []*ingest.Track{{Kind: ingest.KindVideo, Codec: ingest.CodecH264, ClockRate: 90000}})
	m, err := New(hub, []Camera{{ID: "cam"}}, Options{ListenHost: "127.0.0.1"})
	if err != nil {
		f.Fatal(err)
	}
	runOwned(f, func(ctx context.Context) { m.Run(ctx) })
	<-m.Ready()
	mux := http.NewServeMux()
	m.Register(mux)

	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		f.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		f.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(offer.SDP)
	f.Add(strings.ReplaceAll(offer.SDP, "H264", "VP8"))
	f.Add(strings.ReplaceAll(offer.SDP, "a=recvonly", "a=sendonly"))
	f.Add(offer.SDP[:len(offer.SDP)/2])
	f.Add("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n")

	f.Fuzz(func(t *testing.T, sdp string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/api/cameras/cam/whep", strings.NewReader(sdp))
		req.Header.Set("Content-Type", "application/sdp")
		done := make(chan struct{})
		go func() { mux.ServeHTTP(rec, req); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the offer was not answered within 10 s")
		}
		switch {
		case rec.Code == http.StatusCreated:
			loc := rec.Header().Get("Location")
			del := httptest.NewRecorder()
			mux.ServeHTTP(del, httptest.NewRequest(http.MethodDelete, loc, nil))
			if del.Code != http.StatusNoContent {
				t.Fatalf("DELETE %s of a session just created: %d %s", loc, del.Code, del.Body)
			}
		case rec.Code < 400 || rec.Code >= 500:
			t.Fatalf("offer answered %d %q; want 201 or a client error", rec.Code, rec.Body)
		case strings.TrimSpace(rec.Body.String()) == "":
			t.Fatalf("%d without a message", rec.Code)
		}
		if n := len(m.Sessions("")); n != 0 {
			t.Fatalf("%d sessions left after the request", n)
		}
	})
}
