package viewer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Prague on a machine without zoneinfo

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/archivetest"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// playbackRig is the playback path for real: an archive of real fMP4 segment files (hard
// links to one encoded template) indexed in a real catalog, served by the Server with its
// playback API on 127.0.0.1:0, and an officer granted its cameras. The archive has a
// catalog of its own (the accounts are in the access fixture's), so benchmarks can build
// a large one once and serve it to several rigs.
type playbackRig struct {
	server *Server
	url    string
	fx     *accessFixture
	arch   *archive
}

// archive is a built archive: its storage directory, its open catalog and its segments.
type archive struct {
	dir     string
	catalog *catalog.Catalog
	segs    map[string][]catalog.Segment
	cameras []string
}

// buildArchive builds spec's archive into dir (a catalog.db and recordings/ there), on
// the template's filesystem.
func buildArchive(ctx context.Context, dir string, spec archivetest.Spec) (*archive, time.Duration, error) {
	tpl, err := archivetest.MakeTemplate(ctx, time.Minute)
	if err != nil {
		return nil, 0, err
	}
	cat, err := catalog.Open(ctx, filepath.Join(dir, "catalog.db"))
	if err != nil {
		return nil, 0, err
	}
	spec.Dir, spec.Catalog, spec.Template = dir, cat, tpl
	started := time.Now()
	segs, err := archivetest.Build(ctx, spec)
	if err != nil {
		cat.Close()
		return nil, 0, err
	}
	return &archive{dir: dir, catalog: cat, segs: segs, cameras: spec.Cameras}, time.Since(started), nil
}

func newPlaybackRig(tb testing.TB, spec archivetest.Spec) *playbackRig {
	tb.Helper()
	arch, took, err := buildArchive(context.Background(), tb.TempDir(), spec)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { arch.catalog.Close() })
	tb.Logf("archive of %d cameras × %s built in %s", len(spec.Cameras), spec.Duration, took.Round(time.Millisecond))
	return servePlayback(tb, arch)
}

// servePlayback runs a Server playing back arch, until the test ends.
func servePlayback(tb testing.TB, arch *archive) *playbackRig {
	tb.Helper()
	fx := newAccessFixture(tb)
	fx.opts.Now = time.Now // real time: the browser's sessions live in it
	st, err := recorder.OpenStorage(arch.dir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	var cams []Camera
	for _, id := range arch.cameras {
		cams = append(cams, Camera{ID: id, Name: "Kamera " + id, Main: fixedStatus{Camera: id, Stream: "main", State: ingest.StateStreaming}})
	}
	pb := &Playback{Store: arch.catalog, OpenFile: st.OpenSegment, Thumbnails: st.SegmentThumbnails}
	events := &Events{Store: arch.catalog, OpenSnapshot: os.DirFS(arch.dir).Open}
	s, err := New(Options{Listen: "127.0.0.1:0", Cameras: StaticCameras(cams), Metrics: http.NotFoundHandler(), Playback: pb, Events: events, Access: fx.opts})
	if err != nil {
		tb.Fatal(err)
	}
	runOwned(tb, "Server.Run", s.Run)
	waitReady(tb, "HTTP server", s.Ready())
	fx.addUser(tb, "straznik", []access.Role{access.Officer}, false, arch.cameras...)
	return &playbackRig{server: s, url: "http://" + s.Addr().String() + "/", fx: fx, arch: arch}
}

// prague runs the page in the town's time zone, whatever the machine's is.
var prague = chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
	_, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Europe/Prague"})
	return err
})

// openPlayer opens /playback?query in a fresh browser logged in as the rig's officer.
func (rig *playbackRig) openPlayer(tb testing.TB, query string) *page {
	tb.Helper()
	browser := newBrowser(tb)
	placeCookie(tb, browser, rig.url, login(tb, rig.server.Handler(), "straznik"))
	p := openPage(tb, browser, rig.url+"playback?"+query, prague)
	waitJS[bool](p, "the start form", 15*time.Second, `document.body.dataset.ready === "1"`, func(v bool) bool { return v })
	return p
}

// in is the page for subtest t: its failures end t, not the parent.
func (p *page) in(t *testing.T) *page { return &page{tb: t, ctx: p.ctx} }

// start types the reason into the form and starts playback, as the officer does.
func (p *page) startPlayback(reason string) {
	p.tb.Helper()
	p.do(chromedp.SendKeys("#reason", reason), chromedp.Click("#start-button"))
	waitJS[bool](p, "the player", 15*time.Second, `document.body.dataset.phase === "player"`, func(v bool) bool { return v })
}

// waitJS evaluates expr every 50 ms until ok accepts its value, and fails the test with
// the last value when it does not within timeout.
func waitJS[T any](p *page, what string, timeout time.Duration, expr string, ok func(T) bool) T {
	p.tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v := eval[T](p, expr)
		if ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			p.tb.Fatalf("%s: not within %s; last value %+v", what, timeout, v)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// playerState is window.townwatch.state() of playback.js.
type playerState struct {
	Phase     string  `json:"phase"`
	Playing   bool    `json:"playing"`
	Clock     float64 `json:"clock"`
	Presented float64 `json:"presented"`
	Tiles     []struct {
		ID        string   `json:"id"`
		State     string   `json:"state"`
		Presented *float64 `json:"presented"`
	} `json:"tiles"`
}

func (s playerState) tile(id string) (state string, presented float64) {
	for _, t := range s.Tiles {
		if t.ID == id {
			if t.Presented != nil {
				presented = *t.Presented
			}
			return t.State, presented
		}
	}
	return "", 0
}

func (p *page) state() playerState {
	p.tb.Helper()
	return eval[playerState](p, `window.townwatch.state()`)
}

// seekAndWait seeks to w and returns the wall time (ms) of the frame the page then shows
// in its time display, once the seek's frame is on screen.
func (p *page) seekAndWait(w time.Time) float64 {
	p.tb.Helper()
	return p.seekAndWaitWithin(w, 10*time.Second)
}

// seekAndWaitWithin is seekAndWait with the time the frame may take: the benchmark on a
// machine other jobs load gives it longer, to measure a slow seek rather than fail on it.
// A seek that shows no frame in time fails with the page's state and each tile's trace of
// the seek, step by step (what was fetched and appended, and when).
func (p *page) seekAndWaitWithin(w time.Time, timeout time.Duration) float64 {
	p.tb.Helper()
	n := eval[int](p, `window.townwatch.seeks.length`)
	eval[bool](p, fmt.Sprintf(`(window.townwatch.seek(%d), true)`, w.UnixMilli()))
	waitJS[string](p, "the frame of a seek to "+w.Format(time.RFC3339Nano), timeout, fmt.Sprintf(`window.townwatch.seeks.length > %d &&
		!document.getElementById("time").classList.contains("pb-no-frame") ? "" : JSON.stringify({seeks: window.townwatch.seeks.slice(-2),
		state: window.townwatch.state(), videos: [...document.querySelectorAll("video")].map((v) => ({t: v.currentTime, seeking: v.seeking,
		ready: v.readyState, buffered: Array.from({length: v.buffered.length}, (_, i) => [v.buffered.start(i), v.buffered.end(i)])})),
		traces: window.townwatch.traces().map((tile) => ({id: tile.id, last: tile.traces.at(-1)}))})`, n),
		func(v string) bool { return v == "" })
	return p.shownTime()
}

// shownTime is the wall time (ms) the time display shows, checked against its text.
func (p *page) shownTime() float64 {
	p.tb.Helper()
	shown := eval[struct {
		MS      float64 `json:"ms"`
		Text    string  `json:"text"`
		Visible bool    `json:"visible"`
	}](p, `(() => { const el = document.getElementById("time");
		return {ms: Number(el.dataset.presented), text: el.textContent, visible: el.offsetWidth > 0 && el.offsetHeight > 0}; })()`)
	ms, text := shown.MS, shown.Text
	if !shown.Visible {
		p.tb.Fatalf("the time display (%q) is not on screen", text)
	}
	want := time.UnixMilli(int64(ms)).In(pragueZone(p.tb)).Format("15:04:05.000")
	if !strings.HasSuffix(text, want) {
		p.tb.Fatalf("the time display says %q, want it to end in %s (its frame's Prague time)", text, want)
	}
	return ms
}

func pragueZone(tb testing.TB) *time.Location {
	loc, err := time.LoadLocation("Europe/Prague")
	if err != nil {
		tb.Fatal(err)
	}
	return loc
}

// frameMs is the template's frame duration (25 fps).
const frameMs = 40

func TestPlaybackInChromium(t *testing.T) {
	zone := pragueZone(t)
	from := time.Date(2026, 11, 23, 10, 0, 0, 0, zone)
	outage := from.Add(10 * time.Minute)
	rig := newPlaybackRig(t, archivetest.Spec{Cameras: []string{"namesti", "most"}, From: from, Duration: 20 * time.Minute,
		Outages: []archivetest.Outage{{Camera: "most", At: outage, Length: 37 * time.Second}}})
	p := rig.openPlayer(t, "camera=namesti&t="+from.Add(2*time.Minute).UTC().Format(time.RFC3339))

	t.Run("AsksForTheReasonFirst", func(t *testing.T) {
		p := p.in(t)
		if !eval[bool](p, `!document.getElementById("start").hidden && document.getElementById("player").hidden`) {
			t.Fatal("the player shows before the reason was given")
		}
		if !eval[bool](p, `document.querySelector('#camera-list input[value="namesti"]').checked`) {
			t.Error("the camera of the link is not chosen")
		}
		if got := eval[string](p, `document.getElementById("start-date").value + " " + document.getElementById("start-time").value`); got != "2026-11-23 10:02:00" {
			t.Errorf("the form starts at %q, want the link's time 2026-11-23 10:02:00 (Prague)", got)
		}
		p.do(chromedp.Click(`#camera-list input[value="most"]`), chromedp.Click("#start-button"))
		if eval[bool](p, `document.body.dataset.phase === "player"`) {
			t.Fatal("playback started without a reason")
		}
		if rows := rig.fx.auditRows(t, access.AuditPlaybackStart); len(rows) != 0 {
			t.Fatalf("%d playback.start rows before the reason was given", len(rows))
		}
		p.do(chromedp.SendKeys("#case", "KRPA-1234/2026"))
		p.screenshot("playback-form.png")
		p.startPlayback("kontrola oznámení o krádeži")
		rows := rig.fx.auditRows(t, access.AuditPlaybackStart)
		if len(rows) != 2 || rows[0].Reason != "kontrola oznámení o krádeži" || rows[0].Case != "KRPA-1234/2026" || rows[0].Actor != "straznik" {
			t.Fatalf("playback.start rows: %+v", rows)
		}
		// It plays: both tiles show frames, and time goes on.
		first := waitJS[playerState](p, "both tiles playing", 15*time.Second, `window.townwatch.state()`, func(s playerState) bool {
			a, pa := s.tile("namesti")
			b, pb := s.tile("most")
			return a == "playing" && b == "playing" && pa > 0 && pb > 0
		})
		waitJS[playerState](p, "playback going on", 10*time.Second, `window.townwatch.state()`, func(s playerState) bool {
			_, pa := s.tile("namesti")
			_, first := first.tile("namesti")
			return pa >= first+1000
		})
		p.screenshot("playback-playing.png")
	})

	// Random seeks in the first 14 minutes (the minute at 16 is kept for the deletion).
	t.Run("RandomSeeksShowTheFrame", func(t *testing.T) {
		p := p.in(t)
		eval[bool](p, `(window.townwatch.pause(), true)`)
		rnd := rand.New(rand.NewPCG(1, 2))
		for i := 0; i < 20; i++ {
			target := from.Add(time.Duration(rnd.Int64N(int64(14 * time.Minute))))
			shown := p.seekAndWait(target)
			if d := shown - float64(target.UnixMilli()); d < -frameMs || d > frameMs {
				t.Errorf("seek %d to %s shows the frame of %s (%+.0f ms): not within one frame",
					i, target.Format("15:04:05.000"), time.UnixMilli(int64(shown)).In(zone).Format("15:04:05.000"), d)
			}
		}
	})

	t.Run("TenFrameStepsAreTenFrames", func(t *testing.T) {
		p := p.in(t)
		start := p.seekAndWait(from.Add(3*time.Minute + 1300*time.Millisecond))
		prev := start
		for i := 1; i <= 10; i++ {
			eval[bool](p, `(window.townwatch.step(1), true)`)
			prev = waitJS[float64](p, fmt.Sprintf("frame step %d", i), 5*time.Second,
				`Number(document.getElementById("time").dataset.presented)`, func(v float64) bool { return v != prev })
			if want := start + float64(i*frameMs); prev < want-1 || prev > want+1 {
				t.Fatalf("step %d shows %.0f, want %.0f (one frame after the last)", i, prev, want)
			}
		}
		p.shownTime()
		eval[bool](p, `(window.townwatch.step(-1), true)`)
		back := waitJS[float64](p, "a step back", 5*time.Second, `Number(document.getElementById("time").dataset.presented)`, func(v float64) bool { return v != prev })
		if back != prev-frameMs {
			t.Errorf("a step back shows %.0f, want %.0f", back, prev-frameMs)
		}
	})

	t.Run("OutageIsAGapOnTheTimelineAndPlaybackCrossesIt", func(t *testing.T) {
		p := p.in(t)
		// The playhead stands elsewhere, so that the part of the day looked at is the
		// recording's alone.
		p.seekAndWait(from.Add(time.Minute))
		eval[bool](p, fmt.Sprintf(`(window.townwatch.view(%d, 5 * 60e3), true)`, outage.Add(-2*time.Minute).UnixMilli()))
		var gapStart, gapEnd time.Time
		for w := outage.Add(-5 * time.Second); w.Before(outage.Add(45 * time.Second)); w = w.Add(100 * time.Millisecond) {
			kind := eval[string](p, fmt.Sprintf(`window.townwatch.kindAt("most", %d)`, w.UnixMilli()))
			if kind == "gap" {
				if gapStart.IsZero() {
					gapStart = w
				}
				gapEnd = w
			}
			if other := eval[string](p, fmt.Sprintf(`window.townwatch.kindAt("namesti", %d)`, w.UnixMilli())); other != "recorded" {
				t.Fatalf("namesti's row at %s shows %s, want recorded", w.In(zone).Format("15:04:05.0"), other)
			}
		}
		if gap := gapEnd.Sub(gapStart) + 100*time.Millisecond; gap < 36*time.Second || gap > 38*time.Second {
			t.Fatalf("the timeline shows a gap of %s from %s, want 37±1 s", gap, gapStart.In(zone).Format("15:04:05.0"))
		}
		p.screenshot("playback-gap.png")
		p.seekAndWait(outage.Add(-3 * time.Second))
		// At 8× the 37 s hole passes in under 5 s: most shows "no recording" while
		// namesti plays on, then most plays again.
		eval[bool](p, `(window.townwatch.setRate(8), window.townwatch.play(), true)`)
		waitJS[playerState](p, "most in its gap", 10*time.Second, `window.townwatch.state()`, func(s playerState) bool {
			m, _ := s.tile("most")
			n, _ := s.tile("namesti")
			return m == "gap" && n == "playing"
		})
		if msg := eval[string](p, `document.querySelector('.pbtile[data-camera="most"] .msg-title').textContent`); msg != "No recording" && msg != "Bez záznamu" {
			t.Errorf("most in its gap says %q", msg)
		}
		after := float64(outage.Add(37 * time.Second).UnixMilli())
		waitJS[playerState](p, "most playing after its gap", 20*time.Second, `window.townwatch.state()`, func(s playerState) bool {
			m, pm := s.tile("most")
			return m == "playing" && pm > after
		})
		eval[bool](p, `(window.townwatch.pause(), window.townwatch.setRate(1), true)`)
	})

	t.Run("DeletedSegmentIsSkipped", func(t *testing.T) {
		p := p.in(t)
		seg := rig.arch.segs["namesti"][16]
		if _, err := rig.arch.catalog.DeleteSegment(t.Context(), seg.ID, "retention", time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(rig.arch.dir, filepath.FromSlash(seg.Path))); err != nil {
			t.Fatal(err)
		}
		at := seg.Start.Add(30 * time.Second)
		eval[bool](p, fmt.Sprintf(`(window.townwatch.seek(%d), true)`, at.UnixMilli()))
		waitJS[string](p, "namesti's deleted segment", 10*time.Second, `window.townwatch.state().tiles.find((t) => t.id === "namesti").state`,
			func(s string) bool { return s == "deleted" })
		eval[bool](p, fmt.Sprintf(`(window.townwatch.view(%d, 5 * 60e3), true)`, seg.Start.Add(-time.Minute).UnixMilli()))
		if kind := eval[string](p, fmt.Sprintf(`window.townwatch.kindAt("namesti", %d)`, at.Add(10*time.Second).UnixMilli())); kind != "deleted" {
			t.Errorf("the timeline shows the deleted segment as %s", kind)
		}
		p.screenshot("playback-deleted.png")
		eval[bool](p, `(window.townwatch.setRate(8), window.townwatch.play(), true)`)
		after := float64(seg.End.UnixMilli())
		waitJS[playerState](p, "namesti playing after the deleted segment", 20*time.Second, `window.townwatch.state()`, func(s playerState) bool {
			n, pn := s.tile("namesti")
			return n == "playing" && pn > after
		})
		eval[bool](p, `(window.townwatch.pause(), true)`)
	})

	// The server forgets the reason (as a restart does: playback sessions live in its
	// memory). The next request answers 428, and the player asks for the reason again
	// with the cameras and the time kept; given again, it is audited again and plays.
	t.Run("LostSessionAsksForTheReasonAgain", func(t *testing.T) {
		p := p.in(t)
		ps := &rig.server.opt.Playback.sessions
		ps.mu.Lock()
		clear(ps.grant)
		ps.mu.Unlock()
		before := len(rig.fx.auditRows(t, access.AuditPlaybackStart))
		at := from.Add(13 * time.Minute) // far from what is buffered: it must be fetched
		eval[bool](p, fmt.Sprintf(`(window.townwatch.seek(%d), true)`, at.UnixMilli()))
		waitJS[string](p, "the form again", 10*time.Second, `document.body.dataset.phase`, func(v string) bool { return v == "start" })
		form := eval[struct {
			Form, Player, Reason, Time, Cameras, Message string
			Tiles                                        int
		}](p, `({Form: String(document.getElementById("start").hidden), Player: String(document.getElementById("player").hidden),
			Reason: document.getElementById("reason").value, Time: document.getElementById("start-time").value,
			Cameras: [...document.querySelectorAll("#camera-list input:checked")].map((b) => b.value).join(","),
			Message: document.getElementById("start-error").textContent, Tiles: document.querySelectorAll(".pbtile").length})`)
		if form.Form != "false" || form.Player != "true" || form.Tiles != 0 {
			t.Errorf("after the 428: form hidden %s, player hidden %s, %d tiles; want the form alone", form.Form, form.Player, form.Tiles)
		}
		if form.Time != "10:13:00" || form.Cameras != "namesti,most" || form.Reason != "" {
			t.Errorf("the form has time %q, cameras %q, reason %q; want 10:13:00, namesti,most and no reason", form.Time, form.Cameras, form.Reason)
		}
		if !strings.Contains(form.Message, "again") && !strings.Contains(form.Message, "znovu") {
			t.Errorf("the form says %q, want that the reason must be given again", form.Message)
		}
		p.startPlayback("znovu po restartu serveru")
		if rows := rig.fx.auditRows(t, access.AuditPlaybackStart); len(rows) != before+2 || rows[len(rows)-1].Reason != "znovu po restartu serveru" {
			t.Fatalf("playback.start rows after the reason was given again: %d (before %d)", len(rows), before)
		}
		eval[bool](p, `(window.townwatch.pause(), true)`)
		if shown := p.seekAndWait(at); shown < float64(at.UnixMilli())-frameMs || shown > float64(at.UnixMilli())+frameMs {
			t.Errorf("after the reason was given again, the seek to 10:13:00 shows %s", time.UnixMilli(int64(shown)).In(zone).Format("15:04:05.000"))
		}
	})

	// The wall links each tile to the player (10 s before now) and the events panel each
	// event (10 s before it began); the link opens the player there, asking for the reason.
	t.Run("WallAndEventsLinkToThePlayer", func(t *testing.T) {
		ev := catalog.Event{ID: "0193e0c1-0000-7000-8000-000000000001", Camera: "most", Start: from.Add(5 * time.Minute),
			End: from.Add(5*time.Minute + 8*time.Second), Score: 0.7}
		if err := rig.arch.catalog.InsertEvent(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
		browser := newBrowser(t)
		placeCookie(t, browser, rig.url, login(t, rig.server.Handler(), "straznik"))
		wall := openPage(t, browser, rig.url, prague)
		href := waitJS[string](wall, "the tile's link to the player", 15*time.Second,
			`document.querySelector('article.tile[data-camera="namesti"] .pb-link:not([hidden])')?.getAttribute("href") ?? ""`,
			func(v string) bool { return v != "" })
		u, err := url.Parse(href)
		if err != nil {
			t.Fatal(err)
		}
		at, err := time.Parse(time.RFC3339Nano, u.Query().Get("t"))
		if u.Path != "playback" || u.Query().Get("camera") != "namesti" || err != nil || time.Since(at) < 9*time.Second || time.Since(at) > 20*time.Second {
			t.Errorf("the tile links to %q, want playback?camera=namesti&t=<10 s ago>", href)
		}
		wall.do(chromedp.Click("#events-toggle"))
		want := "playback?camera=most&t=" + url.QueryEscape(ev.Start.Add(-10*time.Second).UTC().Format("2006-01-02T15:04:05.000Z"))
		got := waitJS[string](wall, "the event's link to the player", 15*time.Second,
			`document.querySelector('#events-list li.event .pb-link')?.getAttribute("href") ?? ""`, func(v string) bool { return v != "" })
		if got != want {
			t.Fatalf("the event links to %q, want %q", got, want)
		}
		wall.do(chromedp.Click("#events-list li.event .pb-link"))
		waitJS[string](wall, "the player from the event", 15*time.Second,
			`document.body?.dataset.ready === "1" && document.getElementById("start-time") ? document.getElementById("start-time").value + " " +
				[...document.querySelectorAll("#camera-list input:checked")].map((b) => b.value).join(",") : ""`,
			func(v string) bool { return v == "10:04:50 most" })
		if eval[bool](wall, `document.getElementById("player").hidden === false`) {
			t.Error("the player plays before the reason is given")
		}
	})

	t.Run("SearchPage", func(t *testing.T) { testSearchPage(t, rig, from) })

	// One camera alone: the clock does not wait out the hole but goes on at the next
	// recording at once.
	t.Run("OneCameraJumpsTheGap", func(t *testing.T) {
		one := rig.openPlayer(t, "camera=most&t="+outage.Add(-2*time.Second).UTC().Format(time.RFC3339))
		one.startPlayback("kontrola výpadku")
		edge := float64(outage.Add(-100 * time.Millisecond).UnixMilli())
		waitJS[float64](one, "the last frames before the outage", 15*time.Second, `window.townwatch.state().tiles[0].presented ?? 0`, func(v float64) bool { return v >= edge })
		reached := time.Now()
		after := float64(outage.Add(37 * time.Second).UnixMilli())
		waitJS[float64](one, "the first frames after the outage", 5*time.Second, `window.townwatch.state().tiles[0].presented ?? 0`, func(v float64) bool { return v >= after })
		jump := time.Since(reached)
		t.Logf("the outage's edge to the next recording's frame: %s", jump.Round(time.Millisecond))
		if jump > time.Second {
			t.Errorf("crossing the gap took %s", jump)
		}
	})
}

// Playing back the last minute, the player goes on into what is recorded meanwhile: the
// archive ends just before now, and the next segment appears in the catalog while the
// picture nears that end, as when the recorder closes one and opens the next.
func TestPlaybackFollowsTheLiveEdge(t *testing.T) {
	zone := pragueZone(t)
	now := time.Now().In(zone)
	if midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, zone); now.Sub(midnight) < 5*time.Minute || midnight.AddDate(0, 0, 1).Sub(now) < 2*time.Minute {
		t.Skip("the last minutes would cross the player's day (Prague midnight); run again in a few minutes")
	}
	edge := now.Truncate(time.Minute)
	from := edge.Add(-2 * time.Minute)
	rig := newPlaybackRig(t, archivetest.Spec{Cameras: []string{"namesti"}, From: from, Duration: 2 * time.Minute})
	p := rig.openPlayer(t, "camera=namesti&t="+edge.Add(-6*time.Second).UTC().Format(time.RFC3339))
	p.startPlayback("kontrola posledních minut")
	waitJS[float64](p, "the picture near the end of the recording", 20*time.Second, `window.townwatch.state().tiles[0].presented ?? 0`,
		func(v float64) bool { return v >= float64(edge.Add(-2500*time.Millisecond).UnixMilli()) })
	tpl, err := archivetest.MakeTemplate(t.Context(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := archivetest.Build(t.Context(), archivetest.Spec{Dir: rig.arch.dir, Catalog: rig.arch.catalog, Template: tpl,
		Cameras: []string{"namesti"}, From: edge, Duration: time.Minute}); err != nil {
		t.Fatal(err)
	}
	waitJS[float64](p, "the picture in the segment recorded meanwhile", 15*time.Second, `window.townwatch.state().tiles[0].presented ?? 0`,
		func(v float64) bool { return v >= float64(edge.Add(3*time.Second).UnixMilli()) })
}

// Four tiles seeking over and over, faster than a seek completes (a drag along the
// timeline): the page never has more than 4 media requests in flight (counted by a proxy
// in front of the server that answers each after 150 ms, as a slow link would, not by the
// page), and the seeks come down to the last one, whose frame every tile shows.
func TestPlaybackSeekStormStaysWithinFourRequests(t *testing.T) {
	zone := pragueZone(t)
	from := time.Date(2026, 11, 23, 10, 0, 0, 0, zone)
	cams := []string{"a", "b", "c", "d"}
	rig := newPlaybackRig(t, archivetest.Spec{Cameras: cams, From: from, Duration: 10 * time.Minute})
	target, err := url.Parse(rig.url)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	inFlight, most, media := 0, 0, 0
	proxy := httputil.NewSingleHostReverseProxy(target)
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/media") {
			proxy.ServeHTTP(w, r)
			return
		}
		mu.Lock()
		inFlight++
		media++
		most = max(most, inFlight)
		mu.Unlock()
		defer func() {
			mu.Lock()
			inFlight--
			mu.Unlock()
		}()
		// A slow link: requests overlap, so a page asking for more at once would show. A
		// request the page aborted (a newer seek) leaves the count at once, as it leaves
		// the page's: the browser closes its connection.
		select {
		case <-time.After(150 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		proxy.ServeHTTP(w, r)
	})
	front := httptest.NewServer(counted)
	t.Cleanup(front.Close)
	front2 := *rig
	front2.url = front.URL + "/"
	p := front2.openPlayer(t, "camera="+strings.Join(cams, ",")+"&t="+from.Add(time.Minute).UTC().Format(time.RFC3339))
	p.startPlayback("kontrola synchronního přehrávání")
	eval[bool](p, `(window.townwatch.pause(), true)`)
	rnd := rand.New(rand.NewPCG(3, 4))
	var last time.Time
	for range 12 {
		last = from.Add(time.Duration(rnd.Int64N(int64(9 * time.Minute))))
		eval[bool](p, fmt.Sprintf(`(window.townwatch.seek(%d), true)`, last.UnixMilli()))
		time.Sleep(60 * time.Millisecond)
	}
	want := float64(last.UnixMilli())
	waitJS[playerState](p, "every tile at the last seek's frame", 30*time.Second, `window.townwatch.state()`, func(s playerState) bool {
		for _, id := range cams {
			if _, shown := s.tile(id); shown < want-frameMs || shown > want+frameMs {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d media requests, at most %d in flight", media, most)
	if most > 4 {
		t.Errorf("%d media requests were in flight at once, want at most 4", most)
	}
	if media == 0 {
		t.Error("no media request went through the proxy")
	}
}
