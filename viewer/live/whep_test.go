package live

import (
	"bytes"
	"testing"
	"time"
)

// TestViewerGetsDecodableVideoStartingWithAKeyframe is the live view's promise: a WHEP
// client gets the camera's H.264 over RTP, the first complete frame is an IDR with its
// SPS/PPS (from the GOP cache, at once), and everything it received decodes cleanly.
func TestViewerGetsDecodableVideoStartingWithAKeyframe(t *testing.T) {
	r := newRig(t, Options{})
	v, err := dialWHEP(t, r.http.URL, "cam", viewerOpts{})
	if err != nil {
		t.Fatal(err)
	}
	first := v.nextFrame(t, 10*time.Second)
	if !first.isKey() {
		t.Fatalf("first frame is not an IDR with SPS/PPS (%d bytes, NAL header %x)", len(first.annexB), first.annexB[4])
	}
	t.Logf("first frame %v after the offer was posted, connected after %v", first.at.Sub(v.posted), v.connectedAt.Load().(time.Time).Sub(v.posted))
	var stream bytes.Buffer
	stream.Write(first.annexB)
	frames := 1
	for frames < 150 { // 6 s at 25 fps: includes at least two further keyframes
		f := v.nextFrame(t, 5*time.Second)
		if f.broken {
			t.Errorf("frame %d arrived with missing packets", frames)
		}
		stream.Write(f.annexB)
		frames++
	}
	checkDecodes(t, stream.Bytes())

	// A second viewer joins the running feed: it starts from the GOP cache.
	v2, err := dialWHEP(t, r.http.URL, "cam", viewerOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if f := v2.nextFrame(t, 10*time.Second); !f.isKey() {
		t.Fatalf("second viewer's first frame is not a keyframe")
	} else {
		t.Logf("second viewer: first frame %v after the offer was posted", f.at.Sub(v2.posted))
	}
	st := r.m.Stats("cam")
	if st.Sessions != 2 || st.SessionsTotal != 2 || st.SentBytes == 0 || st.DroppedPackets != 0 {
		t.Errorf("stats while watching: %+v", st)
	}
}
