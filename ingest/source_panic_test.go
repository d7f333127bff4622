package ingest

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest/simcam"
)

// A panic in the depacketizer runs on the RTSP client's goroutine, where nothing further
// up could catch it: it must end only that camera's session, which reconnects and streams
// again, counted in Status.Panics, while another camera goes on unaffected.
func TestDepacketizerPanicEndsOnlyThatSession(t *testing.T) {
	cam := startSimcam(t, simcam.Config{Cameras: []simcam.CameraSpec{
		{Path: "faulty", Clip: simcam.ClipStatic}, {Path: "healthy", Clip: simcam.ClipStatic}}})
	hub := NewHub()
	stream := func(path string) configs.Stream {
		return configs.Stream{URL: cam.URL(path), Transport: configs.TransportTCP, StallTimeout: testStallTimeout}
	}
	faulty := startSource(t, hub, "faulty", stream("faulty"))
	healthy := startSource(t, hub, "healthy", stream("healthy"))
	waitState(t, faulty, 10*time.Second, "streaming", isStreaming)
	waitState(t, healthy, 10*time.Second, "streaming", isStreaming)
	healthyBefore := healthy.Status()

	var fired atomic.Bool
	hook := func(camera, _ string) {
		if camera == "faulty" && fired.CompareAndSwap(false, true) {
			var units []int
			_ = units[3] // a real index-out-of-range panic, as a bad packet could cause
		}
	}
	faultHook.Store(&hook)
	t.Cleanup(func() { faultHook.Store(nil) })

	st := waitState(t, faulty, 15*time.Second, "a reconnect after the panic", func(st Status) bool {
		return st.Panics == 1 && st.Reconnects >= 1 && st.State == StateStreaming
	})
	if healthy := healthy.Status(); healthy.Reconnects != healthyBefore.Reconnects || healthy.State != StateStreaming ||
		healthy.ReceivedFrames <= healthyBefore.ReceivedFrames {
		t.Errorf("the other camera was affected: before %+v, after %+v", healthyBefore, healthy)
	}
	t.Logf("faulty camera after the panic: %+v", st)
}
