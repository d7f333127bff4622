package viewer

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// fuzzEventsT0 is the time the fuzzed event history is laid out around.
var fuzzEventsT0 = time.Date(2026, 11, 23, 14, 5, 0, 0, time.UTC)

// fuzzEvents is the event history FuzzEventsQuery searches: events of both cameras with
// equal starts (ordered by id), an ongoing one, an instant, events at the ends of the
// storable years, an event of a camera no longer configured (never shown), and more
// events than a default page.
func fuzzEvents() []catalog.Event {
	t0 := fuzzEventsT0
	id := func(n int) string { return fmt.Sprintf("0192f5c4-0000-7000-8000-%012d", n) }
	events := []catalog.Event{
		{ID: id(1), Camera: "namesti", Start: t0.Add(-time.Hour), End: t0.Add(-59 * time.Minute), Score: 0.4,
			Box: catalog.Box{X: 0.1, Y: 0.2, W: 0.3, H: 0.4}, Zones: []string{"vchod radnice"}, Snapshot: "snapshots/namesti/1.jpg"},
		{ID: id(2), Camera: "most", Start: t0.Add(-time.Hour), End: t0.Add(-50 * time.Minute), Score: 0.1},
		{ID: id(3), Camera: "namesti", Start: t0.Add(-5 * time.Minute), Score: 0.9, Zones: []string{"vchod radnice", "parkoviste"},
			Snapshot: "snapshots/namesti/3.jpg"}, // ongoing
		{ID: id(4), Camera: "most", Start: time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(1700, 1, 1, 0, 1, 0, 0, time.UTC),
			Score: 0.2, Zones: []string{"parkoviste"}},
		{ID: id(5), Camera: "namesti", Start: time.Date(2261, 12, 31, 23, 0, 0, 0, time.UTC), End: time.Date(2261, 12, 31, 23, 59, 59, 0, time.UTC), Score: 0.3},
		{ID: id(6), Camera: "stary", Start: t0.Add(-2 * time.Minute), End: t0.Add(-time.Minute), Score: 0.5, Zones: []string{"vchod radnice"}},
		{ID: id(7), Camera: "most", Start: t0.Add(-10 * time.Minute), End: t0.Add(-10 * time.Minute), Score: 0.6, Zones: []string{"vchod radnice"},
			Snapshot: "snapshots/most/7 a#b?.jpg"},
		{ID: id(8), Camera: "namesti", Start: t0, End: t0.Add(time.Second), Score: 1},
	}
	for i := range 110 {
		ev := catalog.Event{ID: id(100 + i), Camera: "namesti", Start: t0.Add(-48*time.Hour + time.Duration(i)*time.Minute), Score: 0.25}
		ev.End = ev.Start.Add(30 * time.Second)
		if i%3 == 0 {
			ev.Camera = "most"
		}
		if i%5 == 0 {
			ev.Zones = []string{"ulice"}
		}
		events = append(events, ev)
	}
	return events
}

// newEventsGuardServer is newGuardServer's server with the events API over fuzzEvents in
// the fixture's catalog. (newGuardServer has no events API, and a Server's routes are
// fixed by New; eventsServer in events_test.go needs a *testing.T, which a fuzz target
// does not have when it builds its server.)
func newEventsGuardServer(tb testing.TB) (*Server, *accessFixture) {
	tb.Helper()
	fx := newAccessFixture(tb)
	for _, ev := range fuzzEvents() {
		if err := fx.cat.InsertEvent(tb.Context(), ev); err != nil {
			tb.Fatal(err)
		}
	}
	cams := []Camera{{ID: "namesti", Main: fixedStatus{State: ingest.StateStreaming}}, {ID: "most", Main: fixedStatus{State: ingest.StateStreaming}}}
	s, err := New(Options{Listen: "127.0.0.1:0", Cameras: StaticCameras(cams), Metrics: http.NotFoundHandler(), Access: fx.opts,
		Events: &Events{Store: fx.cat, OpenSnapshot: fstest.MapFS{}.Open}})
	if err != nil {
		tb.Fatal(err)
	}
	return s, fx
}

// eventsQueryParams are GET /api/events's parameters (camera and zone take any value).
var eventsQueryParams = []string{"camera", "zone", "from", "to", "before", "min_score", "limit"}

// eventsQueryFaults is the contract of GET /api/events's parameters: from, to and their
// order as for GET /api/audit (auditQueryFaults), before a time as from, min_score from 0
// to 1, limit from 1 to catalog.MaxEventLimit. An empty value counts as absent; of a
// repeated parameter the first counts.
func eventsQueryFaults(v url.Values) map[string]bool {
	bad := auditQueryFaults(url.Values{"from": v["from"], "to": v["to"]})
	if auditQueryFaults(url.Values{"from": v["before"]})["from"] {
		bad["before"] = true
	}
	if raw := v.Get("min_score"); raw != "" {
		if f, err := strconv.ParseFloat(raw, 64); err != nil || !(f >= 0 && f <= 1) {
			bad["min_score"] = true
		}
	}
	if raw := v.Get("limit"); raw != "" {
		if n, err := strconv.Atoi(raw); err != nil || n < 1 || n > catalog.MaxEventLimit {
			bad["limit"] = true
		}
	}
	return bad
}

// wantEvents is the answer to a valid query for a user who sees the cameras in visible:
// fuzzEvents that match every filter, newest first (ties by id, newest first), at most
// limit. An event matches from/to when it overlaps [from, to); an ongoing one has no end;
// before keeps events that start before it.
func wantEvents(v url.Values, visible []string) []catalog.Event {
	var from, to, before time.Time
	if raw := v.Get("from"); raw != "" {
		from, _ = time.Parse(time.RFC3339Nano, raw)
	}
	if raw := v.Get("to"); raw != "" {
		to, _ = time.Parse(time.RFC3339Nano, raw)
	}
	if raw := v.Get("before"); raw != "" {
		before, _ = time.Parse(time.RFC3339Nano, raw)
	}
	var minScore float64
	if raw := v.Get("min_score"); raw != "" {
		minScore, _ = strconv.ParseFloat(raw, 64)
	}
	limit := catalog.DefaultEventLimit
	if raw := v.Get("limit"); raw != "" {
		limit, _ = strconv.Atoi(raw)
	}
	var out []catalog.Event
	for _, ev := range fuzzEvents() {
		switch {
		case !slices.Contains(visible, ev.Camera),
			v.Get("camera") != "" && ev.Camera != v.Get("camera"),
			v.Get("zone") != "" && !slices.Contains(ev.Zones, v.Get("zone")),
			!to.IsZero() && !ev.Start.Before(to),
			!before.IsZero() && !ev.Start.Before(before),
			ev.Score < minScore,
			!from.IsZero() && !ev.End.IsZero() && ev.End.Before(from):
			continue
		}
		out = append(out, ev)
	}
	slices.SortFunc(out, func(a, b catalog.Event) int {
		if c := b.Start.Compare(a.Start); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return out[:min(len(out), limit)]
}

// FuzzEventsQuery sends GET /api/events?<arbitrary raw query> as a supervisor (all
// cameras) and as an officer granted only namesti. Checked, for each:
//   - the status is exactly what the contract gives: 400 for a wrong parameter (a time
//     the catalog cannot store, like 9999-12-31T23:59:59Z, is the client's error, never a
//     500), then 404 for a camera that is not configured or not granted (the same answer
//     for both), 200 otherwise; nothing else;
//   - a 400 names, at the start of its message, a parameter the query has and that is
//     really wrong (or says to is not after from);
//   - a 200 is a JSON array of exactly the events that match every filter, newest first,
//     at most limit (100 without one), each as the catalog holds it, and never an event of
//     a camera the user may not see or that is not configured.
//
// Unknown parameters (after) are ignored, which the oracle expects too.
func FuzzEventsQuery(f *testing.F) {
	s, fx := newEventsGuardServer(f)
	fx.addUser(f, "velitel", []access.Role{access.Supervisor}, true)
	fx.addUser(f, "straznik", []access.Role{access.Officer}, false, "namesti")
	h := s.Handler()
	users := []struct {
		name    string
		h       http.Handler
		visible []string
	}{
		{"velitel", withCookie(h, login(f, h, "velitel")), []string{"namesti", "most"}},
		{"straznik", withCookie(h, login(f, h, "straznik")), []string{"namesti"}},
	}
	t0 := fuzzEventsT0
	q := func(t time.Time) string { return url.QueryEscape(t.Format(time.RFC3339Nano)) }
	for _, seed := range []string{
		"",
		"camera=namesti",
		"camera=most", // 404 for the officer
		"camera=stary",
		"camera=nikde",
		"camera=NAMESTI",
		"zone=vchod+radnice",
		"zone=parkoviste&camera=most",
		"zone=ulice&limit=5",
		"limit=1", "limit=1000", "limit=%2B7", "limit=007",
		"from=" + q(t0.Add(-59*time.Minute)), // event 1 ends exactly here: it overlaps
		"to=" + q(t0.Add(-time.Hour)),        // events 1 and 2 start exactly here: they do not
		"from=" + q(t0.Add(-time.Hour)) + "&to=" + q(t0.Add(-time.Hour).Add(time.Nanosecond)),
		"from=" + q(t0.Add(-10*time.Minute)) + "&to=" + q(t0.Add(-10*time.Minute).Add(time.Nanosecond)), // the instant event
		"from=2026-11-23T15:05:00%2B01:00",
		"from=2261-12-31T23:59:59Z", // the latest storable time
		"to=1678-01-01T00:00:00Z",   // the earliest
		"from=1678-01-01T00:00:00Z&to=2261-12-31T23:59:59Z&limit=1000",
		"from=2100-01-01T00:00:00Z", // only the ongoing event and the one in 2261
		// before is the paging cursor; after is no parameter: ignored.
		"before=" + q(t0) + "&after=" + q(t0.Add(-time.Hour)),
		"before=" + q(t0.Add(-time.Hour)) + "&limit=3", // events 1 and 2 start exactly there: not on this page
		"min_score=0.4", "min_score=1", "min_score=0&zone=ulice", // 0.4 and 1 are scores of events: inclusive
		"min_score=.25&camera=most&before=" + q(t0),
		// 400 from here on.
		"from=9999-12-31T23:59:59Z",
		"to=9999-12-31T23:59:59Z",
		"from=0001-01-01T00:00:00Z",
		"to=2262-01-01T00:00:00Z",
		"from=1678-01-01T00:00:00%2B23:59",
		"from=2261-12-31T23:59:59-00:01",
		"from=2026-01-01T00:00:00Z&to=2025-01-01T00:00:00Z",
		"from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
		"from=yesterday", "from=2026-11-23 14:05:00", "to=2026-11-23",
		"before=2262-01-01T00:00:00Z", "before=now",
		"min_score=1.01", "min_score=-0.1", "min_score=NaN", "min_score=Inf", "min_score=half",
		"limit=0", "limit=1001", "limit=-1", "limit=abc", "limit=99999999999999999999", "limit=1.5",
		"camera=nikde&limit=0", // 400 before 404
		"camera=%00&zone=%ff%fe", "camera=namesti&camera=most", "camera=&limit=2",
		"%zz=1&limit=2", "limit=1;camera=most", "a=1&&&=&limit", "from",
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, rawQuery string) {
		v, _ := url.ParseQuery(rawQuery) // what the handler reads: the pairs that parse
		faults := eventsQueryFaults(v)
		for _, u := range users {
			req := httptest.NewRequest(http.MethodGet, "/api/events", nil)
			req.URL.RawQuery = rawQuery
			rec := httptest.NewRecorder()
			u.h.ServeHTTP(rec, req)
			what := fmt.Sprintf("GET /api/events?%s as %s", rawQuery, u.name)

			camera := v.Get("camera")
			want := http.StatusOK
			switch {
			case len(faults) > 0:
				want = http.StatusBadRequest
			case camera != "" && !slices.Contains(u.visible, camera):
				want = http.StatusNotFound
			}
			if rec.Code != want {
				t.Fatalf("%s: %d %s, want %d (wrong parameters: %v)", what, rec.Code, rec.Body, want, faults)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("%s: Content-Type %q", what, ct)
			}
			if rec.Code != http.StatusOK {
				var e struct{ Error string }
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
					t.Fatalf("%s: %d body %q is not a JSON error: %v", what, rec.Code, rec.Body, err)
				}
				if rec.Code == http.StatusNotFound {
					if e.Error != "unknown camera "+quote(camera) {
						t.Fatalf("%s: 404 %q, want the same answer as for a camera that does not exist", what, e.Error)
					}
					continue
				}
				named := e.Error == "to must be after from" && faults["order"]
				for _, p := range eventsQueryParams {
					if v.Get(p) != "" && strings.HasPrefix(e.Error, p+":") && faults[p] {
						named = true
					}
				}
				if !named {
					t.Fatalf("%s: 400 %q does not name a wrong parameter of the query (wrong: %v)", what, e.Error, faults)
				}
				continue
			}
			checkEventsAnswer(t, what, rec, wantEvents(v, u.visible))
		}
	})
}

// checkEventsAnswer checks a 200 of GET /api/events against the events it must hold.
func checkEventsAnswer(t *testing.T, what string, rec *httptest.ResponseRecorder, want []catalog.Event) {
	t.Helper()
	var got []eventJSON
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil || got == nil {
		t.Fatalf("%s: answer is not a JSON array of events: %v", what, err)
	}
	// ids lists the ids of both answers, the first ten of each.
	ids := func() (g, w []string) {
		for _, e := range got[:min(len(got), 10)] {
			g = append(g, e.ID)
		}
		for _, e := range want[:min(len(want), 10)] {
			w = append(w, e.ID)
		}
		return g, w
	}
	if len(got) != len(want) {
		g, w := ids()
		t.Fatalf("%s: %d events %v…, want %d %v…", what, len(got), g, len(want), w)
	}
	for i, e := range got {
		ev := want[i]
		snapshot := ""
		if ev.Snapshot != "" {
			snapshot = "/api/events/" + url.PathEscape(ev.ID) + "/snapshot.jpg"
		}
		zones := ev.Zones
		if zones == nil {
			zones = []string{}
		}
		endOK := e.End == nil && ev.End.IsZero() || e.End != nil && e.End.Equal(ev.End)
		if e.ID != ev.ID {
			g, w := ids()
			t.Fatalf("%s: event %d is %s; events %v…, want %v…", what, i, e.ID, g, w)
		}
		if e.Camera != ev.Camera || !e.Start.Equal(ev.Start) || !endOK || e.Ongoing != ev.End.IsZero() || e.Score != ev.Score ||
			e.Box != (boxJSON{ev.Box.X, ev.Box.Y, ev.Box.W, ev.Box.H}) || !slices.Equal(e.Zones, zones) || e.SnapshotURL != snapshot {
			t.Fatalf("%s: event %d is %+v, want %+v", what, i, e, ev)
		}
	}
}

// TestEventsQueryOracle pins wantEvents to hand-checked answers, so that the oracle and
// the handler cannot agree on a mistake.
func TestEventsQueryOracle(t *testing.T) {
	both := []string{"namesti", "most"}
	id := func(n int) string { return fmt.Sprintf("0192f5c4-0000-7000-8000-%012d", n) }
	for _, c := range []struct {
		query   string
		visible []string
		want    []int // the first ids, in order
		n       int   // how many in all
	}{
		{"", both, []int{5, 8, 3, 7, 2, 1, 209, 208}, catalog.DefaultEventLimit},
		{"limit=1000", both, []int{5, 8, 3, 7, 2, 1, 209}, 6 + 110 + 1},
		{"", []string{"namesti"}, []int{5, 8, 3, 1, 209, 207, 206}, 4 + 73},
		{"from=2100-01-01T00:00:00Z", both, []int{5, 3}, 2},
		{"limit=1000&to=" + url.QueryEscape(fuzzEventsT0.Add(-time.Hour).Format(time.RFC3339)), both, []int{209, 208}, 111},
		{"from=" + url.QueryEscape(fuzzEventsT0.Add(-59*time.Minute).Format(time.RFC3339)) + "&limit=10", both, []int{5, 8, 3, 7, 2, 1}, 6},
		{"zone=vchod+radnice", both, []int{3, 7, 1}, 3},
		{"zone=parkoviste&camera=most", both, []int{4}, 1},
		{"min_score=0.4", both, []int{8, 3, 7, 1}, 4},
		{"before=" + url.QueryEscape(fuzzEventsT0.Format(time.RFC3339)) + "&limit=3", both, []int{3, 7, 2}, 3},
	} {
		v, err := url.ParseQuery(c.query)
		if err != nil {
			t.Fatal(err)
		}
		got := wantEvents(v, c.visible)
		var ids []string
		for _, ev := range got {
			ids = append(ids, ev.ID)
		}
		var want []string
		for _, n := range c.want {
			want = append(want, id(n))
		}
		if len(got) != c.n || len(ids) < len(want) || !slices.Equal(ids[:len(want)], want) {
			t.Errorf("?%s for %v: %d events starting %v, want %d starting %v", c.query, c.visible, len(got), ids[:min(len(ids), 8)], c.n, want)
		}
	}
}
