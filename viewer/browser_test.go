package viewer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
	"github.com/townwatch/townwatch/viewer/browsertest"
	"github.com/townwatch/townwatch/viewer/live"
)

// runOwned runs fn until the returned stop is called or the test ends; stop cancels it,
// waits for it to return and fails the test if it returned an error.
func runOwned(tb testing.TB, what string, fn func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				tb.Errorf("%s: %v", what, err)
			}
		})
	}
	tb.Cleanup(stop)
	return stop
}

func waitReady(tb testing.TB, what string, ready <-chan struct{}) {
	tb.Helper()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		tb.Fatalf("%s did not get ready within 30 s", what)
	}
}

// rigCamera is one simulated camera of a wallRig.
type rigCamera struct {
	id, name string
	clip     simcam.Clip
	sub      bool // also serve a sub stream (the same clip at another path)
}

// wallRig is townwatch's live path for real: simulated cameras (one simcam server each,
// so one can be unplugged alone) → ingest.Source per stream → Hub → live.Manager →
// Server on 127.0.0.1:0.
type wallRig struct {
	tb     testing.TB // the test the rig lives for (not a subtest)
	hub    *ingest.Hub
	live   *live.Manager
	server *Server
	url    string
	cams   map[string]*simCamera
	// moving is what each camera's motion detection reports to /api/cameras; the wall's
	// marking of it is tested, the detector has its own tests.
	moving map[string]*atomic.Bool
	// catalog and dir hold the events the wall's events panel lists (a real catalog;
	// snapshots as files under dir), and the accounts.
	catalog *catalog.Catalog
	dir     string
	fx      *accessFixture
	// client is a supervisor's logged-in HTTP client.
	client *http.Client
}

type simCamera struct {
	spec rigCamera
	addr string
	stop func()
}

// newWallRig builds and runs the rig; perCameraCap is the live view's viewer cap per camera
// (0 = the default).
func newWallRig(tb testing.TB, perCameraCap int, cams ...rigCamera) *wallRig {
	tb.Helper()
	rig := &wallRig{tb: tb, hub: ingest.NewHub(), cams: map[string]*simCamera{}, moving: map[string]*atomic.Bool{}}
	var viewerCams []Camera
	var liveCams []live.Camera
	for _, c := range cams {
		sim := &simCamera{spec: c, addr: "127.0.0.1:0"}
		rig.cams[c.id] = sim
		rig.plug(tb, c.id)
		moving := new(atomic.Bool)
		rig.moving[c.id] = moving
		vc := Camera{ID: c.id, Name: c.name, Main: rig.source(tb, c.id, ingest.StreamMain, sim),
			Motion: func() Motion { return Motion{Active: moving.Load()} }}
		if c.sub {
			vc.Sub = rig.source(tb, c.id, ingest.StreamSub, sim)
		}
		viewerCams = append(viewerCams, vc)
		liveCams = append(liveCams, live.Camera{ID: c.id, HasSub: c.sub})
	}
	var err error
	if rig.live, err = live.New(rig.hub, liveCams, live.Options{ListenHost: "127.0.0.1", MaxViewersPerCamera: perCameraCap}); err != nil {
		tb.Fatal(err)
	}
	rig.dir = tb.TempDir()
	rig.fx = newAccessFixture(tb)
	rig.fx.opts.Now = time.Now // real time: the browser's sessions live in it
	rig.catalog = rig.fx.cat
	var ids []string
	for _, c := range cams {
		ids = append(ids, c.id)
	}
	events := &Events{Store: rig.catalog, OpenSnapshot: os.DirFS(rig.dir).Open}
	if rig.server, err = New(Options{Listen: "127.0.0.1:0", Cameras: StaticCameras(viewerCams), Metrics: http.NotFoundHandler(), Live: rig.live,
		Events: events, Access: rig.fx.opts}); err != nil {
		tb.Fatal(err)
	}
	// The live manager runs only after New has given it the access hooks.
	runOwned(tb, "live.Manager.Run", rig.live.Run)
	waitReady(tb, "live view", rig.live.Ready())
	runOwned(tb, "Server.Run", rig.server.Run)
	waitReady(tb, "HTTP server", rig.server.Ready())
	rig.url = "http://" + rig.server.Addr().String() + "/"
	rig.fx.addUser(tb, "velitel", []access.Role{access.Supervisor}, false)
	rig.client = &http.Client{Transport: cookieTransport{login(tb, rig.server.Handler(), "velitel")}, Timeout: 10 * time.Second}
	// The wall is tested from the moment the cameras stream, as a dispatcher would meet it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range cams {
		streams := []string{ingest.StreamMain}
		if c.sub {
			streams = append(streams, ingest.StreamSub)
		}
		for _, s := range streams {
			if _, err := rig.hub.Wait(ctx, c.id, s); err != nil {
				tb.Fatalf("camera %s %s stream never reached the hub: %v", c.id, s, err)
			}
		}
	}
	return rig
}

func (rig *wallRig) source(tb testing.TB, camera, stream string, sim *simCamera) *ingest.Source {
	tb.Helper()
	src, err := ingest.NewSource(camera, stream, configs.Stream{
		URL: "rtsp://" + sim.addr + "/" + stream, Transport: configs.TransportTCP, StallTimeout: configs.Duration(5 * time.Second),
	}, rig.hub, nil)
	if err != nil {
		tb.Fatal(err)
	}
	runOwned(tb, camera+" "+stream+" Source.Run", src.Run)
	return src
}

// plug starts the camera's simulated RTSP server (again, on the same address after
// unplug, as a camera that comes back after a power cut). The server runs until the rig's
// test ends, also when a subtest (tb) plugged it back.
func (rig *wallRig) plug(tb testing.TB, id string) {
	tb.Helper()
	sim := rig.cams[id]
	specs := []simcam.CameraSpec{{Path: ingest.StreamMain, Clip: sim.spec.clip}}
	if sim.spec.sub {
		specs = append(specs, simcam.CameraSpec{Path: ingest.StreamSub, Clip: sim.spec.clip})
	}
	srv, err := simcam.New(simcam.Config{Listen: sim.addr, Cameras: specs})
	if err != nil {
		tb.Fatal(err)
	}
	sim.stop = runOwned(rig.tb, "simcam "+sim.spec.id, srv.Run)
	waitReady(tb, "simcam "+sim.spec.id, srv.Ready())
	sim.addr = srv.Addr()
}

// unplug stops a camera: its RTSP server closes every connection and stops listening.
func (rig *wallRig) unplug(id string) { rig.cams[id].stop() }

// viewers returns /api/cameras' viewer count per camera, read over HTTP as a client would.
func (rig *wallRig) viewers(tb testing.TB) map[string]int {
	tb.Helper()
	resp, err := rig.client.Get(rig.url + "api/cameras")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var cams []struct {
		ID      string `json:"id"`
		Viewers *int   `json:"viewers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&cams); err != nil {
		tb.Fatal(err)
	}
	out := map[string]int{}
	for _, c := range cams {
		if c.Viewers == nil {
			tb.Fatalf("/api/cameras: camera %s has no viewers field", c.ID)
		}
		out[c.ID] = *c.Viewers
	}
	return out
}

// cookieTransport sends a session cookie with every request, as a logged-in browser.
type cookieTransport struct{ cookie *http.Cookie }

func (c cookieTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.AddCookie(c.cookie)
	return http.DefaultTransport.RoundTrip(r)
}

// browser starts headless Chromium logged in as name (an account of the rig): the session
// cookie a login gives is placed in the browser's profile, so every tab is logged in.
func (rig *wallRig) browser(tb testing.TB, name string) context.Context {
	tb.Helper()
	ctx := newBrowser(tb)
	placeCookie(tb, ctx, rig.url, login(tb, rig.server.Handler(), name))
	return ctx
}

// placeCookie puts a session cookie into the browser's profile for url, as the login
// page's answer would (HttpOnly, SameSite=Strict).
func placeCookie(tb testing.TB, browser context.Context, url string, c *http.Cookie) {
	tb.Helper()
	httpOnly := true
	_, err := chromedp.Call(browser, network.SetCookie, network.SetCookieParams{
		Name: c.Name, Value: c.Value, URL: url, HTTPOnly: &httpOnly,
		SameSite: network.CookieSameSiteStrict,
	})
	if err != nil {
		tb.Fatalf("placing the session cookie: %v", err)
	}
}

// newBrowser starts headless Chromium with a fresh profile (browsertest.New).
func newBrowser(tb testing.TB) context.Context {
	tb.Helper()
	return browsertest.New(tb)
}

// page is one browser tab showing the wall. It records the page's console so a failing
// test shows what the browser said, and fails the test on any uncaught exception.
type page struct {
	tb  testing.TB
	ctx context.Context

	mu         sync.Mutex
	console    []string
	exceptions []string
}

// openPage opens a new tab, runs setup (e.g. emulation) and navigates to url. It returns
// once the page has loaded.
func openPage(tb testing.TB, browser context.Context, url string, setup ...chromedp.Action[chromedp.Void]) *page {
	tb.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	p := &page{tb: tb, ctx: ctx}
	tb.Cleanup(func() {
		cancel()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, e := range p.exceptions {
			tb.Errorf("uncaught exception in the page: %s", e)
		}
		if tb.Failed() && len(p.console) > 0 {
			tb.Logf("browser console:\n%s", strings.Join(p.console, "\n"))
		}
	})
	if err := chromedp.Do(ctx, setup...); err != nil {
		tb.Fatal(err)
	}
	if err := chromedp.Listen(ctx, p.record); err != nil {
		tb.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		tb.Fatalf("loading %s: %v", url, err)
	}
	return p
}

// record runs on chromedp's reading goroutine: it only appends under the lock.
func (p *page) record(ev any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		var args []string
		for _, a := range e.Args {
			if a.Value != nil {
				args = append(args, string(a.Value))
			} else {
				args = append(args, a.Description)
			}
		}
		p.console = append(p.console, fmt.Sprintf("%s: %s", e.Type, strings.Join(args, " ")))
	case *runtime.EventExceptionThrown:
		msg := (&chromedp.ExceptionError{ExceptionDetails: e.ExceptionDetails}).Error()
		p.exceptions = append(p.exceptions, msg)
		p.console = append(p.console, "exception: "+msg)
	}
}

// do runs actions in the tab, bounded so a hung page fails the test instead of hanging it.
func (p *page) do(actions ...chromedp.Action[chromedp.Void]) {
	p.tb.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.tb.Fatal(err)
	}
}

// eval evaluates a JavaScript expression (awaiting a promise) and decodes its value.
func eval[T any](p *page, expr string) T {
	p.tb.Helper()
	return browsertest.Eval[T](p.ctx, p.tb, expr, 30*time.Second)
}

// tileStats is one entry of window.townwatch.tiles() (see viewer/web/app.js).
type tileStats struct {
	ID            string   `json:"id"`
	State         string   `json:"state"`
	Stream        *string  `json:"stream"`
	Enlarged      bool     `json:"enlarged"`
	Sessions      int      `json:"sessions"`
	FramesDecoded int      `json:"framesDecoded"`
	VideoWidth    int      `json:"videoWidth"`
	VideoHeight   int      `json:"videoHeight"`
	FirstFrameMs  *float64 `json:"firstFrameMs"`
	AskToFrameMs  *float64 `json:"askToFrameMs"`
	ConnectMs     *float64 `json:"connectMs"`
}

func (s tileStats) String() string {
	stream := "-"
	if s.Stream != nil {
		stream = *s.Stream
	}
	return fmt.Sprintf("%s{state=%s stream=%s enlarged=%v sessions=%d frames=%d video=%dx%d}",
		s.ID, s.State, stream, s.Enlarged, s.Sessions, s.FramesDecoded, s.VideoWidth, s.VideoHeight)
}

// decoding is what "the camera shows live video" means in the browser: the tile says
// live, the decoder has produced frames and the video element knows its picture size.
func (s tileStats) decoding() bool {
	return s.State == "live" && s.FramesDecoded > 0 && s.VideoWidth > 0
}

func (s tileStats) streamIs(name string) bool { return s.Stream != nil && *s.Stream == name }

// tiles reads the page's debug hook; before the page's modules ran it is empty.
func (p *page) tiles() map[string]tileStats {
	p.tb.Helper()
	list := eval[[]tileStats](p, `window.townwatch ? window.townwatch.tiles() : []`)
	out := make(map[string]tileStats, len(list))
	for _, s := range list {
		out[s.ID] = s
	}
	return out
}

// waitTiles polls the tiles until cond holds, and fails the test with the last state seen
// when it does not hold by the deadline.
func (p *page) waitTiles(what string, deadline time.Time, cond func(map[string]tileStats) bool) map[string]tileStats {
	p.tb.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		tiles := p.tiles()
		if cond(tiles) {
			return tiles
		}
		if time.Now().After(deadline) {
			var seen []string
			for _, s := range tiles {
				seen = append(seen, s.String())
			}
			p.tb.Fatalf("%s: not by the deadline; tiles: %s", what, strings.Join(seen, " "))
		}
		<-tick.C
	}
}

// screenshot saves the tab's viewport as a PNG artefact: under $TOWNWATCH_ARTIFACTS when
// set (CI keeps it), else in the test's temp dir.
func (p *page) screenshot(name string) {
	p.tb.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.tb.Fatalf("screenshot: %v", err)
	}
	dir := os.Getenv("TOWNWATCH_ARTIFACTS")
	if dir == "" {
		dir = p.tb.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		p.tb.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.tb.Fatal(err)
	}
	p.tb.Logf("screenshot: %s", path)
}
