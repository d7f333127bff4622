package viewer

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/townwatch/townwatch/ingest/simcam"
)

// pageLoads is how many wall loads each iteration of BenchmarkPageToFirstFrame measures:
// the figure is the median of 7.
const pageLoads = 7

// pageProbe is injected into every document before the wall's own scripts (through the
// DevTools protocol, so the wall's CSP does not apply to it and the wall needs no hook):
// it records, in performance.now() milliseconds since navigation start, when the wall
// creates its peer connection, when ICE gathering completes, when the answer is applied,
// when ICE and then DTLS connect, and when the video element presents its first frame
// (requestVideoFrameCallback). The page's requests (modules, /api/me, /api/cameras, the
// WHEP POST) come from Resource Timing. It observes the page without changing it, so the
// same probe measures any version of the wall.
const pageProbe = `(() => {
  const m = (window.__firstFrame = {});
  const mark = (k) => { if (!(k in m)) m[k] = performance.now(); };
  const PC = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends PC {
    constructor(...args) {
      super(...args);
      mark("pc");
      this.addEventListener("icegatheringstatechange", () => this.iceGatheringState === "complete" && mark("gathered"));
      this.addEventListener("iceconnectionstatechange", () =>
        ["connected", "completed"].includes(this.iceConnectionState) && mark("ice"));
      this.addEventListener("connectionstatechange", () => this.connectionState === "connected" && mark("dtls"));
    }
    async setLocalDescription(...args) { mark("offer"); return super.setLocalDescription(...args); }
    async setRemoteDescription(...args) {
      const r = await super.setRemoteDescription(...args);
      mark("answered");
      return r;
    }
  };
  const src = Object.getOwnPropertyDescriptor(HTMLMediaElement.prototype, "srcObject");
  Object.defineProperty(HTMLMediaElement.prototype, "srcObject", {
    ...src,
    set(v) {
      src.set.call(this, v);
      if (v && this.requestVideoFrameCallback) this.requestVideoFrameCallback(() => mark("frame"));
    },
  });
})();`

// pageMarks reads the probe's marks and the page's timings, all in ms since navigation
// start; a field is -1 when the page did not get there.
const pageMarks = `(() => {
  const m = window.__firstFrame || {};
  const nav = performance.getEntriesByType("navigation")[0];
  const res = performance.getEntriesByType("resource");
  const first = (re) => res.find((e) => re.test(e.name));
  const scripts = res.filter((e) => e.name.endsWith(".js"));
  const me = first(/\/api\/me$/), cams = first(/\/api\/cameras$/), whep = first(/\/whep(\?|$)/);
  const v = (x) => (x === undefined ? -1 : x);
  return {
    html: v(nav?.responseEnd),
    modules: scripts.length ? Math.max(...scripts.map((e) => e.responseEnd)) : -1,
    moduleCount: scripts.length,
    meStart: v(me?.startTime), meEnd: v(me?.responseEnd),
    camerasStart: v(cams?.startTime), camerasEnd: v(cams?.responseEnd),
    pc: v(m.pc), offer: v(m.offer), gathered: v(m.gathered),
    whepStart: v(whep?.startTime), whepFirstByte: v(whep?.responseStart), whepEnd: v(whep?.responseEnd),
    answered: v(m.answered), ice: v(m.ice), dtls: v(m.dtls), frame: v(m.frame),
  };
})()`

// loadMarks is one page load's timeline (see pageMarks).
type loadMarks struct {
	HTML, Modules                float64
	ModuleCount                  int
	MeStart, MeEnd               float64
	CamerasStart, CamerasEnd     float64
	PC, Offer, Gathered          float64
	WhepStart, WhepFirstByte     float64
	WhepEnd, Answered, ICE, DTLS float64
	Frame                        float64
}

// BenchmarkPageToFirstFrame measures the figure: from page load (navigation start)
// to the first decoded frame of a camera in headless Chromium, median of pageLoads loads,
// and where the time goes. Each load is a fresh navigation of a tab of a logged-in
// browser (its cache holds the wall's files, revalidated as on any reload); before it,
// the previous load's session has ended, so nobody watches the camera (GOP 2 s) and the
// page is served from the live feed the load itself opens.
//
// Figures (ms since navigation start unless a span): html (document received), modules
// (last module received), me and cameras (the session check and the camera list
// answered), pc (peer connection created), gather (offer → ICE gathering complete),
// whep-server (POST sent → first byte of the answer), answered (answer applied), ice and
// dtls (connected), frame (first frame presented).
func BenchmarkPageToFirstFrame(b *testing.B) {
	rig := newWallRig(b, 0, rigCamera{id: "bench", name: "bench", clip: simcam.ClipMotion})
	browser := rig.browser(b, "velitel")
	p := openPage(b, browser, rig.url, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: pageProbe})
		return err
	}))
	p.waitTiles("the camera decoding", time.Now().Add(30*time.Second), func(tiles map[string]tileStats) bool {
		return tiles["bench"].decoding()
	})
	var loads []loadMarks
	b.ResetTimer()
	for range b.N {
		for range pageLoads {
			p.do(chromedp.Navigate("about:blank"))
			waitViewers(b, rig, "bench", 0)
			p.do(chromedp.Navigate(rig.url))
			deadline := time.Now().Add(30 * time.Second)
			for {
				m := eval[loadMarks](p, pageMarks)
				if m.Frame >= 0 {
					loads = append(loads, m)
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("no first frame 30 s after the page load: %+v", m)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	b.StopTimer()
	reportLoads(b, loads)
}

// reportLoads reports the medians of each mark and span and logs them as a table, with
// the spans between consecutive steps so that the waits stand out.
func reportLoads(b *testing.B, loads []loadMarks) {
	// med is the median of the loads that reached the mark (a mark the browser did not
	// report is negative); NaN when none did.
	med := func(f func(loadMarks) float64) float64 {
		xs := make([]float64, 0, len(loads))
		for _, l := range loads {
			if x := f(l); x >= 0 {
				xs = append(xs, x)
			}
		}
		if len(xs) == 0 {
			return math.NaN()
		}
		return percentile(xs, 50)
	}
	steps := []struct {
		name   string
		at     func(loadMarks) float64
		metric bool
	}{
		{"html", func(l loadMarks) float64 { return l.HTML }, false},
		{"modules", func(l loadMarks) float64 { return l.Modules }, true},
		{"me-sent", func(l loadMarks) float64 { return l.MeStart }, false},
		{"me", func(l loadMarks) float64 { return l.MeEnd }, true},
		{"cameras-sent", func(l loadMarks) float64 { return l.CamerasStart }, false},
		{"cameras", func(l loadMarks) float64 { return l.CamerasEnd }, true},
		{"pc", func(l loadMarks) float64 { return l.PC }, false},
		{"offer", func(l loadMarks) float64 { return l.Offer }, false},
		{"gathered", func(l loadMarks) float64 { return l.Gathered }, false},
		{"whep-sent", func(l loadMarks) float64 { return l.WhepStart }, true},
		{"whep-answer", func(l loadMarks) float64 { return l.WhepEnd }, true},
		{"answered", func(l loadMarks) float64 { return l.Answered }, false},
		{"ice", func(l loadMarks) float64 { return l.ICE }, true},
		{"dtls", func(l loadMarks) float64 { return l.DTLS }, true},
		{"frame", func(l loadMarks) float64 { return l.Frame }, true},
	}
	var table strings.Builder
	fmt.Fprintf(&table, "%d loads, median ms since navigation start (+ the wait after the latest earlier step):\n", len(loads))
	latest := 0.0
	for _, s := range steps {
		t := med(s.at)
		wait := "in parallel"
		if t >= latest {
			wait = fmt.Sprintf("+%.1f", t-latest)
			latest = t
		}
		fmt.Fprintf(&table, "  %-12s %7.1f  (%s)\n", s.name, t, wait)
	}
	// span is the median time from mark a to mark b over the loads that reached both (it
	// can be negative: the answer's promise may settle after ICE has connected).
	span := func(a, b func(loadMarks) float64) float64 {
		var xs []float64
		for _, l := range loads {
			if a(l) >= 0 && b(l) >= 0 {
				xs = append(xs, b(l)-a(l))
			}
		}
		if len(xs) == 0 {
			return math.NaN()
		}
		return percentile(xs, 50)
	}
	at := func(name string) func(loadMarks) float64 {
		for _, s := range steps {
			if s.name == name {
				return s.at
			}
		}
		panic("no step " + name)
	}
	fmt.Fprintf(&table, "  spans: gather %.1f, whep-server %.1f, ice after the answer arrived %.1f, dtls after ice %.1f, frame after dtls %.1f; modules fetched %v\n",
		span(at("offer"), at("gathered")),
		span(at("whep-sent"), func(l loadMarks) float64 { return l.WhepFirstByte }),
		span(at("whep-answer"), at("ice")),
		span(at("ice"), at("dtls")),
		span(at("dtls"), at("frame")),
		slices.Compact(slices.Sorted(func(yield func(int) bool) {
			for _, l := range loads {
				if !yield(l.ModuleCount) {
					return
				}
			}
		})))
	// Without -v a benchmark's log is cut to 10 lines; the metrics carry the breakdown
	// into make bench's output too (the step's median, ms since navigation start).
	b.Log(table.String())
	for _, s := range steps {
		if s.metric {
			b.ReportMetric(med(s.at), s.name+"-ms")
		}
	}
}
