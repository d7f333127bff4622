package viewer

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/townwatch/townwatch/recorder/catalog"
)

// testSearchPage is TestPlaybackInChromium's subtest of the event search page, on the
// rig's archive (recorded from `from`): the officer goes there from the wall, narrows the
// list with the filters, pages to older events, and a row opens the player 10 s before
// its event.
func testSearchPage(t *testing.T, rig *playbackRig, from time.Time) {
	ctx := t.Context()
	// 60 events of namesti, one every 10 s from `from`, and one strong event of most with
	// a snapshot, in the zone "prechod" that every third namesti event touched as well.
	for i := range 60 {
		start := from.Add(time.Duration(i) * 10 * time.Second)
		ev := catalog.Event{ID: fmt.Sprintf("0193e0c2-0000-7000-8000-%012d", i), Camera: "namesti", Start: start,
			End: start.Add(5 * time.Second), Score: 0.3}
		if i%3 == 0 {
			ev.Zones = []string{"prechod"}
		}
		if err := rig.arch.catalog.InsertEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	strong := catalog.Event{ID: "0193e0c2-0000-7000-8000-999999999999", Camera: "most", Start: from.Add(12 * time.Minute),
		End: from.Add(12*time.Minute + 4*time.Second), Score: 0.9, Zones: []string{"prechod"},
		Snapshot: "snapshots/most/strong.jpg"}
	writeJPEG(t, filepath.Join(rig.arch.dir, filepath.FromSlash(strong.Snapshot)), 1)
	if err := rig.arch.catalog.InsertEvent(ctx, strong); err != nil {
		t.Fatal(err)
	}
	// What the catalog holds, newest first: other subtests may have added events.
	all, err := rig.arch.catalog.Events(ctx, catalog.EventQuery{Limit: catalog.MaxEventLimit})
	if err != nil {
		t.Fatal(err)
	}
	ids := func(events []catalog.Event) string {
		var out []string
		for _, e := range events {
			out = append(out, e.ID)
		}
		return strings.Join(out, " ")
	}

	browser := newBrowser(t)
	placeCookie(t, browser, rig.url, login(t, rig.server.Handler(), "straznik"))
	p := openPage(t, browser, rig.url, prague)
	waitJS[bool](p, "the wall's link to the search", 15*time.Second,
		`document.getElementById("search-link")?.hidden === false`, func(v bool) bool { return v })
	p.do(chromedp.Click("#search-link"))
	waitJS[bool](p, "the search page", 15*time.Second, `document.body?.dataset.ready === "1"`, func(v bool) bool { return v })

	// listed is the ids of the rows on the page, in order.
	const listed = `[...document.querySelectorAll("#rows tr")].map((tr) => tr.dataset.event).join(" ")`
	waitList := func(p *page, what, want string) {
		p.tb.Helper()
		waitJS[string](p, what, 10*time.Second, listed, func(v string) bool { return v == want })
	}
	search := func(p *page, camera, from, to, zone, minScore string) {
		p.tb.Helper()
		eval[bool](p, fmt.Sprintf(`(() => {
			const set = (id, v) => (document.getElementById(id).value = v);
			set("camera", %q); set("from", %q); set("to", %q); set("zone", %q); set("min-score", %q);
			document.querySelector("#filters button[type=submit]").click();
			return true; })()`, camera, from, to, zone, minScore))
	}

	t.Run("PagesToOlderEvents", func(t *testing.T) {
		p := p.in(t)
		waitList(p, "the newest 50 events", ids(all[:50]))
		p.do(chromedp.Click("#older"))
		waitList(p, "all events after one older page", ids(all))
		if !eval[bool](p, `document.getElementById("older").hidden`) {
			t.Error("the older button still shows after the oldest event")
		}
	})

	t.Run("FiltersNarrowTheList", func(t *testing.T) {
		p := p.in(t)
		// Times are typed in Prague time, the page's zone.
		local := func(d time.Duration) string { return from.Add(d).Format("2006-01-02T15:04:05") }
		search(p, "namesti", local(time.Minute), local(2*time.Minute), "", "")
		var want []catalog.Event
		for i := 11; i >= 6; i-- { // the events starting from 10:01:00 to 10:01:50
			want = append(want, catalog.Event{ID: fmt.Sprintf("0193e0c2-0000-7000-8000-%012d", i)})
		}
		waitList(p, "namesti's events of one minute", ids(want))
		search(p, "", "", "", "prechod", "0.5")
		waitList(p, "the strong event in the zone", strong.ID)
		row := `document.querySelector("#rows tr")`
		cells := eval[[]string](p, row+`.querySelectorAll("td").values().map((td) => td.textContent).toArray()`)
		if len(cells) < 6 || cells[1] != "Kamera most" || !strings.HasSuffix(cells[2], "10:12:00") || !strings.HasSuffix(cells[3], "10:12:04") ||
			cells[4] != "0.9" || cells[5] != "prechod" {
			t.Errorf("the row shows %q, want Kamera most, 10:12:00 to 10:12:04 (Prague), 0.9, prechod", cells)
		}
		if !eval[bool](p, row+`.querySelector("img")?.naturalWidth > 0`) {
			t.Error("the row's snapshot thumbnail is not shown")
		}
		p.do(chromedp.Click(`[data-lang="cs"]`))
		if got := eval[string](p, `document.querySelector("th[data-i18n=score]").textContent`); got != "Skóre" {
			t.Errorf("in Czech the score column is headed %q", got)
		}
	})

	t.Run("RowOpensThePlayer", func(t *testing.T) {
		p := p.in(t)
		search(p, "most", "", "", "", "0.8")
		waitList(p, "the strong event", strong.ID)
		// The camera's name, not the link. Clicked in the page in one step: the list may be
		// drawn again between a node's lookup and a click by its id (it was, in a full run).
		eval[bool](p, `(document.querySelector("#rows tr td:nth-child(2)").click(), true)`)
		waitJS[string](p, "the player at the event", 15*time.Second,
			`document.body?.dataset.ready === "1" && document.getElementById("start-time") ? document.getElementById("start-time").value + " " +
				[...document.querySelectorAll("#camera-list input:checked")].map((b) => b.value).join(",") : ""`,
			func(v string) bool { return v == "10:11:50 most" })
	})
}
