package live

import (
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest/simcam"
)

// TestStalledViewerCanBeHungUp: a viewer whose ICE-TCP connection stopped draining (a
// client that stops reading, or a frozen machine whose kernel still holds the socket)
// must still be removable: DELETE answers and frees its slot, rather than the server
// blocking for ever on a write to that socket (the DTLS close_notify) while closing the
// session, which also kept Run from returning.
func TestStalledViewerCanBeHungUp(t *testing.T) {
	t.Parallel()
	// The bound on a blocked write, shortened from its minute: what is tested is that
	// DELETE returns once the bound ends the write, not how long the bound is. It stays
	// well above the second or so in which the stalled viewer starts dropping, so that
	// the session is still there to be hung up.
	const writeStall = 10 * time.Second
	r := newRigFrom(t, simcam.CameraSpec{Path: "cam", File: busyClip(t)}, Options{TCPWriteStall: writeStall})
	proxy := newStallProxy(t, r.m.TCPAddr().String())
	slow, err := dialWHEP(t, r.http.URL, "cam", viewerOpts{tcpOnly: true, patient: true,
		rewriteAnswer: viaProxy(r.m.TCPAddr().(*net.TCPAddr).Port, proxy.port())})
	if err != nil {
		t.Fatal(err)
	}
	slow.nextFrame(t, 10*time.Second)
	proxy.setStalled(true)
	// Drops mean the viewer's writer is stuck on the full socket.
	waitFor(t, 90*time.Second, "the stalled viewer to drop packets", func() bool {
		s := r.m.Sessions("cam")
		return len(s) == 1 && s[0].DroppedPackets > 0
	})

	t.Log("stalled viewer is dropping; hanging up")
	// DELETE may take up to the bound on a blocked write.
	client := &http.Client{Timeout: writeStall + 30*time.Second}
	req, _ := http.NewRequest(http.MethodDelete, r.http.URL+slow.location, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("DELETE of a stalled viewer's session: %v", err)
	}
	resp.Body.Close()
	slow.location = ""
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: status %d, want 204", resp.StatusCode)
	}
	if s := r.m.Stats("cam"); s.Sessions != 0 {
		t.Fatalf("the stalled viewer still holds a slot after DELETE: %+v", s)
	}
}
