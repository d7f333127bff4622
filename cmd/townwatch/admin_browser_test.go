package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/viewer/browsertest"
)

// The administrator's camera page in Chromium against `townwatch serve` with simcam
// cameras, as an administrator uses it: a wrong URL is refused at its field and writes
// nothing; a camera is probed (its snapshot shown), a zone is drawn by clicking on the
// snapshot, the camera is saved and its tile shows decoded video on the wall; an edit
// after someone else's change is refused and shows theirs; removal asks first, saying
// what happens to the footage. One browser and one page for the whole walk: Chromium's
// start is most of this test's time.
func TestAdminPageAddsACameraLiveOnTheWall(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const password = "h3slo@#:kamera"
	sim := startSimcam(t, simcam.CameraSpec{Path: "c1", Clip: simcam.ClipStatic},
		simcam.CameraSpec{Path: "c2", Clip: simcam.ClipStatic, Username: "admin", Password: password})
	cfg := filepath.Join(dir, "townwatch.yaml")
	writeReloadConfig(t, cfg, filepath.Join(dir, "data"), sim, []reloadCamera{{"cam1", "Náměstí", "c1", ""}})
	// Supervisor too, so that the same account sees the wall's tiles.
	addAccount(t, cfg, "spravce", "supervisor,admin")
	addAccount(t, cfg, "dispecer", "dispatcher", "-cameras", "all")
	p := startServe(t, cfg)
	camFile := filepath.Join(dir, "cameras.d", "cam2.yaml")

	t.Run("not for other roles", func(t *testing.T) {
		c := loginClient(t, p.base, "dispecer", accountPassword)
		for _, r := range [][2]string{{"GET", "admin"}, {"GET", "api/admin/cameras"}, {"GET", "api/config/cameras"}, {"POST", "api/config/cameras"}, {"POST", "api/cameras/probe"}} {
			if status, _, body := e2eDo(t, c, r[0], p.base+r[1], "application/json", "{}"); status != http.StatusForbidden {
				t.Errorf("dispatcher: %s /%s answered %d %s, want 403", r[0], r[1], status, body)
			}
		}
	})

	admin := loginClient(t, p.base, "spravce", accountPassword)
	pg := openAdminPage(t, p.base, admin)
	pg.do(chromedp.Navigate(p.base+"admin"), chromedp.WaitVisible(`tr[data-camera="cam1"][data-state="streaming"]`))

	// A URL that is no RTSP URL: the problem is at the URL field, and no file is written.
	pg.do(chromedp.Click("#add"), chromedp.WaitVisible("#editor"),
		chromedp.SendKeys("#main-url", "http://127.0.0.1/cam2"), chromedp.SendKeys("#cam-id", "cam2"), chromedp.Click("#save"),
		chromedp.WaitVisible(`label [data-problem-for="main.url"]`))
	if msg := pg.text(`[data-problem-for="main.url"]`); !strings.Contains(msg, "rtsp") {
		t.Errorf("the problem at main.url says %q, want it to name rtsp", msg)
	}
	if _, err := os.Stat(camFile); !os.IsNotExist(err) {
		t.Fatalf("a refused camera left %s (%v)", camFile, err)
	}

	// The right URL, probed: the snapshot shows the camera's picture.
	pg.do(chromedp.SetValue("#main-url", sim.URL("c2")), chromedp.SendKeys("#main-username", "admin"), chromedp.SendKeys("#main-password", password),
		chromedp.SendKeys("#cam-name", "Most"), chromedp.Click("#probe"))
	pg.poll(`document.getElementById("snapshot").naturalWidth === 640 && document.getElementById("snapshot").naturalHeight === 360`, "the probe's snapshot shown at 640×360", "#probe-result")
	if got := pg.text("#probe-result"); !strings.Contains(got, "640×360") {
		t.Errorf("probe result %q, want the camera's size", got)
	}

	// A zone drawn by clicking three corners on the snapshot.
	pg.do(chromedp.Click("#new-zone"), chromedp.ScrollIntoView("#overlay"))
	box := evalJS[struct{ X, Y, W, H float64 }](pg, `(() => { const r = document.getElementById("overlay").getBoundingClientRect(); return {X: r.x, Y: r.y, W: r.width, H: r.height}; })()`)
	corners := [][2]float64{{0.1, 0.2}, {0.6, 0.2}, {0.6, 0.8}}
	for _, c := range corners {
		pg.do(chromedp.MouseClickXY(box.X+c[0]*box.W, box.Y+c[1]*box.H))
	}
	pg.do(chromedp.Click("#finish-polygon"), chromedp.Click("#save"), chromedp.WaitVisible(`tr[data-camera="cam2"]`))
	savedAt := time.Now()

	saved, ok := loadCamera(t, cfg, "cam2")
	if !ok || saved.Name != "Most" || len(saved.Motion.Zones) != 1 || len(saved.Motion.Zones[0].Points) != 3 || saved.Main.PasswordFile == "" {
		t.Fatalf("cameras.d holds %+v, want cam2 \"Most\" with one zone of 3 points", saved)
	}
	for i, pt := range saved.Motion.Zones[0].Points {
		// A click lands on a whole CSS pixel: within 1 % of the picture.
		if math.Abs(pt[0]-corners[i][0]) > 0.01 || math.Abs(pt[1]-corners[i][1]) > 0.01 {
			t.Errorf("zone point %d is %v, clicked at %v", i, pt, corners[i])
		}
	}
	pg.do(chromedp.WaitVisible(`tr[data-camera="cam2"][data-state="streaming"]`))

	// The wall: the camera's tile shows decoded video; the header links to this page.
	pg.do(chromedp.Navigate(p.base), chromedp.WaitVisible("#admin-link"))
	pg.poll(`window.townwatch && window.townwatch.tiles().then(ts => ts.some(t => t.id === "cam2" && t.state === "live" && t.framesDecoded > 0 && t.videoWidth > 0))`,
		"cam2's tile on the wall decoding video")
	t.Logf("cam2's tile decoded video on the wall %v after the save answered", time.Since(savedAt).Round(time.Millisecond))

	// Someone else changes cam2 while the form is open: the save is refused, and the form
	// shows their change.
	pg.do(chromedp.Navigate(p.base+"admin"), chromedp.Click(`tr[data-camera="cam2"] [data-action="edit"]`), chromedp.WaitVisible("#editor"))
	// The password is write-only: not in the form, not anywhere in the page.
	if v := pg.value("#main-password"); v != "" {
		t.Errorf("the password field holds %q on edit, want it empty", v)
	}
	if evalJS[bool](pg, `document.documentElement.outerHTML.includes(`+jsString(password)+`)`) {
		t.Error("the page holds the camera's password")
	}
	status, hdr, _ := e2eDo(t, admin, http.MethodGet, p.base+"api/config/cameras/cam2", "", "")
	req, _ := http.NewRequest(http.MethodPut, p.base+"api/config/cameras/cam2",
		strings.NewReader(fmt.Sprintf(`{"id":"cam2","name":"Most u řeky","main":{"url":%q,"username":"admin"}}`, sim.URL("c2"))))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("If-Match", hdr.Get("ETag"))
	if resp, err := admin.Do(req); err != nil || status != http.StatusOK || resp.StatusCode != http.StatusOK {
		t.Fatalf("the other administrator's PUT: %v %v", resp, err)
	}
	pg.do(chromedp.SetValue("#cam-name", "Most 2"), chromedp.Click("#save"))
	pg.poll(`document.getElementById("cam-name").value === "Most u řeky" && document.getElementById("status").textContent.includes("cam2")`,
		"the form reloaded with the other change, and the page saying so, after 412", "#status")

	// Saved again over the current state with the password field left empty: the
	// configuration as the API showed it goes back with the change, the password kept,
	// and the camera streams on.
	pg.do(chromedp.SetValue("#cam-name", "Most 2"), chromedp.Click("#save"))
	pg.poll(`document.getElementById("editor").hidden`, "the edit saved", "#status", "#editor")
	if c, ok := loadCamera(t, cfg, "cam2"); !ok || c.Name != "Most 2" || c.Main.URL != sim.URL("c2") || c.Main.PasswordFile != saved.Main.PasswordFile {
		t.Errorf("after the edit cameras.d holds %+v, want the name changed and the password file %s kept", c, saved.Main.PasswordFile)
	}
	pg.do(chromedp.WaitVisible(`tr[data-camera="cam2"][data-state="streaming"]`))
	// Disabled: it stays in the list, configured, and stops.
	pg.do(chromedp.Click(`tr[data-camera="cam2"] [data-action="disable"]`), chromedp.WaitVisible(`tr[data-camera="cam2"][data-state="disabled"]`))
	if c, ok := loadCamera(t, cfg, "cam2"); !ok || !c.Disabled {
		t.Errorf("after disabling cameras.d holds %+v", c)
	}

	// Removal asks, saying the footage stays until retention and locks hold it.
	pg.do(chromedp.Click(`tr[data-camera="cam2"] [data-action="remove"]`), chromedp.WaitVisible("#confirm-remove"))
	if msg := pg.text("#confirm-remove"); !strings.Contains(msg, "retention") || !strings.Contains(msg, "lock") {
		t.Errorf("the removal question says %q, want it to say what happens to the footage", msg)
	}
	pg.do(chromedp.Click("#remove-yes"))
	pg.poll(`!document.querySelector('tr[data-camera="cam2"]')`, "cam2 gone from the list", "#status")
	if _, err := os.Stat(camFile); !os.IsNotExist(err) {
		t.Errorf("%s still there after removal (%v)", camFile, err)
	}
}

// loadCamera reads camera id from the configuration's files as the server would.
func loadCamera(t *testing.T, cfg, id string) (configs.Camera, bool) {
	t.Helper()
	u, err := configs.LoadUnion(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return u.Camera(id)
}

// adminPage is one Chromium tab logged in with c's session; an uncaught exception in
// the page fails the test.
type adminPage struct {
	t   *testing.T
	ctx context.Context

	mu         sync.Mutex
	exceptions []string
}

func openAdminPage(t *testing.T, base string, c *http.Client) *adminPage {
	t.Helper()
	ctx := browsertest.New(t)
	pg := &adminPage{t: t, ctx: ctx}
	chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			pg.mu.Lock()
			pg.exceptions = append(pg.exceptions, (&chromedp.ExceptionError{ExceptionDetails: e.ExceptionDetails}).Error())
			pg.mu.Unlock()
		}
	})
	t.Cleanup(func() {
		pg.mu.Lock()
		defer pg.mu.Unlock()
		for _, e := range pg.exceptions {
			t.Errorf("uncaught exception in the page: %s", e)
		}
	})
	u, _ := url.Parse(base)
	httpOnly := true
	for _, ck := range c.Jar.Cookies(u) {
		_, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{Name: ck.Name, Value: ck.Value, URL: base,
			HTTPOnly: &httpOnly, SameSite: network.CookieSameSiteStrict})
		if err != nil {
			t.Fatalf("placing the session cookie: %v", err)
		}
	}
	return pg
}

// do runs actions in the tab, bounded so a hung page fails the test instead of hanging it.
func (pg *adminPage) do(actions ...chromedp.Action[chromedp.Void]) {
	pg.t.Helper()
	ctx, cancel := context.WithTimeout(pg.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		pg.t.Fatal(err)
	}
}

// poll waits until the JavaScript expression (a promise is awaited) is true.
// On failure it shows the text of the elements named by show (where the page would say
// what went wrong).
func (pg *adminPage) poll(expr, what string, show ...string) {
	pg.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !evalJS[bool](pg, expr); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			var said []string
			for _, sel := range show {
				said = append(said, sel+": "+pg.text(sel))
			}
			pg.t.Fatalf("not within 20 s: %s %s", what, strings.Join(said, "; "))
		}
	}
}

func (pg *adminPage) text(sel string) string {
	pg.t.Helper()
	return evalJS[string](pg, `document.querySelector(`+jsString(sel)+`).textContent`)
}

func (pg *adminPage) value(sel string) string {
	pg.t.Helper()
	return evalJS[string](pg, `document.querySelector(`+jsString(sel)+`).value`)
}

func evalJS[T any](pg *adminPage, expr string) T {
	pg.t.Helper()
	return browsertest.Eval[T](pg.ctx, pg.t, expr, 20*time.Second)
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
