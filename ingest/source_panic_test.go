package ingest

import (
	"errors"
	"strings"
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

// A parameter set declaring a picture beyond ingest.max_resolution (default 8K) ends the
// session with the reason before anything is published with it; 8K itself passes, either
// way round; a lower configured limit holds.
func TestOversizedPictureIsRefused(t *testing.T) {
	src, err := NewSource("cam", StreamMain, configs.Stream{URL: "rtsp://127.0.0.1/x", StallTimeout: testStallTimeout}, NewHub(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		w, h    int
		refused bool
	}{{16384, 16384, true}, {7700, 100, true}, {7680, 4320, false}, {4320, 7680, false}, {1920, 1080, false}} {
		k := &sessionSink{Source: src, broken: make(chan error, 1)}
		k.videoParams(&VideoParams{Width: tc.w, Height: tc.h})
		select {
		case err := <-k.broken:
			if !tc.refused || !errors.Is(err, errResolution) || classify(err).state != StateFailed {
				t.Errorf("%d×%d: session ended with %v (%s)", tc.w, tc.h, err, classify(err).state)
			}
		default:
			if tc.refused {
				t.Errorf("%d×%d was accepted", tc.w, tc.h)
			} else if st := src.Status(); st.Width != tc.w || st.Height != tc.h {
				t.Errorf("%d×%d accepted but the status shows %d×%d", tc.w, tc.h, st.Width, st.Height)
			}
		}
	}
	src4k, err := NewSource("cam", StreamMain, configs.Stream{URL: "rtsp://127.0.0.1/x", StallTimeout: testStallTimeout,
		MaxResolution: configs.Resolution{Width: 3840, Height: 2160}}, NewHub(), nil)
	if err != nil {
		t.Fatal(err)
	}
	k := &sessionSink{Source: src4k, broken: make(chan error, 1)}
	k.videoParams(&VideoParams{Width: 7680, Height: 4320})
	select {
	case err := <-k.broken:
		if !strings.Contains(err.Error(), "3840x2160") {
			t.Errorf("refusal %q does not name the configured limit", err)
		}
	default:
		t.Error("8K passed a 4K limit")
	}
}
