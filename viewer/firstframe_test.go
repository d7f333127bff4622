package viewer

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/townwatch/townwatch/ingest/simcam"
)

// loadsPerIteration is how many times each benchmark iteration loads the wall: enough
// samples for a p95 from a single iteration.
const loadsPerIteration = 20

// BenchmarkFirstFrame measures the target (first decoded frame within 1 s, p95, on
// loopback): headless Chromium loads the wall for one simulated camera (GOP 2 s) again and
// again, each a fresh page with a fresh peer connection and decoder. The page measures from
// its WHEP POST (performance.now()) to the first frame the video element presents
// (requestVideoFrameCallback); "ask" adds ICE gathering before the POST.
//
//	cold: nobody else watches: each load finds no live feed (the feed and its GOP cache
//	      end with the last viewer), so the first frame waits for the camera's next keyframe
//	warm: a second wall keeps watching, so the feed's GOP cache serves the first frame
func BenchmarkFirstFrame(b *testing.B) {
	rig := newWallRig(b, 0, rigCamera{id: "bench", name: "bench", clip: simcam.ClipMotion})
	browser := rig.browser(b, "velitel")
	b.Run("cold", func(b *testing.B) { benchFirstFrame(b, browser, rig, 0) })
	b.Run("warm", func(b *testing.B) {
		keeper := openPage(b, browser, rig.url)
		keeper.waitTiles("the other wall decoding", time.Now().Add(30*time.Second), func(tiles map[string]tileStats) bool {
			return tiles["bench"].decoding()
		})
		benchFirstFrame(b, browser, rig, 1)
	})
}

// benchFirstFrame loads the wall loadsPerIteration times per iteration. Before each load
// the previous page is left and its session ended, so that exactly `others` viewers watch
// the camera when the page asks (0: cold, the feed is gone).
func benchFirstFrame(b *testing.B, browser context.Context, rig *wallRig, others int) {
	p := openPage(b, browser, rig.url)
	p.waitTiles("the camera decoding", time.Now().Add(30*time.Second), func(tiles map[string]tileStats) bool {
		return tiles["bench"].decoding()
	})
	var fromPost, fromAsk, connect []float64
	b.ResetTimer()
	for range b.N {
		for range loadsPerIteration {
			p.do(chromedp.Navigate("about:blank"))
			waitViewers(b, rig, "bench", others)
			p.do(chromedp.Navigate(rig.url))
			s := p.waitTiles("the first frame after a reload", time.Now().Add(30*time.Second), func(tiles map[string]tileStats) bool {
				return tiles["bench"].FirstFrameMs != nil && tiles["bench"].ConnectMs != nil
			})["bench"]
			fromPost = append(fromPost, *s.FirstFrameMs)
			fromAsk = append(fromAsk, *s.AskToFrameMs)
			connect = append(connect, *s.ConnectMs)
		}
	}
	b.StopTimer()
	b.ReportMetric(percentile(fromPost, 50), "p50-ms")
	b.ReportMetric(percentile(fromPost, 95), "p95-ms")
	b.ReportMetric(percentile(fromAsk, 95), "ask-p95-ms")
	b.ReportMetric(slices.Max(fromPost), "max-ms")
	// How much of it is ICE and DTLS (the rest is media delivery and decoding).
	b.ReportMetric(percentile(connect, 50), "connect-p50-ms")
}

// waitViewers waits until the live view has exactly n sessions for camera (a left page's
// DELETE arrives asynchronously).
func waitViewers(b *testing.B, rig *wallRig, camera string, n int) {
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for rig.live.Stats(camera).Sessions != n {
		if time.Now().After(deadline) {
			b.Fatalf("camera %s has %d live sessions, want %d", camera, rig.live.Stats(camera).Sessions, n)
		}
		<-tick.C
	}
}

// percentile is the nearest-rank percentile of xs (p in 0..100).
func percentile(xs []float64, p float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(i, 0)]
}
