package viewer

import (
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/viewer/access"
)

// wallRequests reads, from the page's Resource Timing, when the session check (/api/me)
// was answered and when the camera list (/api/cameras) was asked for, in ms since
// navigation start; -1 when the page made no such request.
const wallRequests = `(() => {
  const res = performance.getEntriesByType("resource");
  const me = res.find((e) => /\/api\/me$/.test(e.name));
  const cams = res.find((e) => /\/api\/cameras$/.test(e.name));
  return { meEnd: me ? me.responseEnd : -1, camerasStart: cams ? cams.startTime : -1 };
})()`

type wallRequestTimes struct{ MeEnd, CamerasStart float64 }

// The wall asks for the camera list beside the session check on a reload by an account
// that was allowed live view in the same tab, and only after the check otherwise; an
// account without live view never asks for it (it would be a refused request in the
// access log on every page load).
func TestWallAsksForTheCameraListEarlyOnlyWhenLiveWasAllowed(t *testing.T) {
	rig := newWallRig(t, 0, rigCamera{id: "cam", name: "cam", clip: simcam.ClipStatic})
	rig.fx.addUser(t, "revizor", []access.Role{access.Auditor}, false)

	p := openPage(t, rig.browser(t, "velitel"), rig.url)
	p.waitTiles("the camera decoding", time.Now().Add(30*time.Second), func(tiles map[string]tileStats) bool {
		return tiles["cam"].decoding()
	})
	first := eval[wallRequestTimes](p, wallRequests)
	if first.MeEnd < 0 || first.CamerasStart < first.MeEnd {
		t.Errorf("first load of the tab: camera list asked at %.1f ms, session check answered at %.1f ms; want the list after the check",
			first.CamerasStart, first.MeEnd)
	}
	holdSessionCheck(t, p, rig)
	p.do(chromedp.Navigate(rig.url))
	p.waitTiles("the camera decoding after a reload", time.Now().Add(30*time.Second), func(tiles map[string]tileStats) bool {
		return tiles["cam"].decoding()
	})
	again := eval[wallRequestTimes](p, wallRequests)
	t.Logf("reload: camera list asked at %.1f ms, session check answered at %.1f ms", again.CamerasStart, again.MeEnd)
	if again.MeEnd < 0 || again.CamerasStart < 0 || again.CamerasStart >= again.MeEnd {
		t.Errorf("reload: camera list asked at %.1f ms, session check answered at %.1f ms; want the list asked before the answer",
			again.CamerasStart, again.MeEnd)
	}

	// Logged in through the login page in a fresh tab, the first load of the wall asks
	// beside the check too: the login's answer allowed live view. An auditor's does not.
	for _, c := range []struct {
		name  string
		early bool
	}{{"velitel", true}, {"revizor", false}} {
		fresh := openPage(t, newBrowser(t), "about:blank")
		holdSessionCheck(t, fresh, rig)
		fresh.do(chromedp.Navigate(rig.url+"login"), chromedp.SendKeys("#username", c.name),
			chromedp.SendKeys("#password", testPassword), chromedp.Click("#submit"))
		if c.early {
			fresh.waitTiles("the camera decoding after the login", time.Now().Add(30*time.Second), func(tiles map[string]tileStats) bool {
				return tiles["cam"].decoding()
			})
		} else {
			fresh.do(chromedp.WaitReady(`body[data-cameras="0"]`))
		}
		got := eval[wallRequestTimes](fresh, wallRequests)
		t.Logf("%s's first wall after logging in: camera list asked at %.1f ms, session check answered at %.1f ms", c.name, got.CamerasStart, got.MeEnd)
		switch {
		case got.MeEnd < 0:
			t.Errorf("%s's first wall after logging in made no session check", c.name)
		case c.early && (got.CamerasStart < 0 || got.CamerasStart >= got.MeEnd):
			t.Errorf("%s's first wall after logging in: camera list asked at %.1f ms, session check answered at %.1f ms; want the list asked before the answer",
				c.name, got.CamerasStart, got.MeEnd)
		case !c.early && got.CamerasStart >= 0:
			t.Errorf("%s's first wall after logging in asked for the camera list at %.1f ms; want no request", c.name, got.CamerasStart)
		}
	}

	auditor := openPage(t, rig.browser(t, "revizor"), rig.url)
	for load := range 2 {
		if load > 0 {
			auditor.do(chromedp.Navigate(rig.url))
		}
		// The wall marks no cameras once the session check has refused live view.
		auditor.do(chromedp.WaitReady(`body[data-cameras="0"]`))
		if got := eval[wallRequestTimes](auditor, wallRequests); got.MeEnd < 0 || got.CamerasStart >= 0 {
			t.Errorf("auditor's load %d: session check answered at %.1f ms, camera list asked at %.1f ms; want no camera list request",
				load+1, got.MeEnd, got.CamerasStart)
		}
	}
}

// holdSessionCheck holds the session check's answer back 300 ms in p's tab, so that
// "beside" is a matter of order, not of speed: on a quick machine the check can be
// answered before the page's next statement has sent the list (a loaded run saw 1.4 ms
// between them).
func holdSessionCheck(t *testing.T, p *page, rig *wallRig) {
	t.Helper()
	if _, err := chromedp.Call(p.ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
		MatchedNetworkConditions: []*network.Conditions{{URLPattern: rig.url + "api/me", Latency: 300, DownloadThroughput: -1, UploadThroughput: -1}},
	}); err != nil {
		t.Fatalf("holding back the session check: %v", err)
	}
}
