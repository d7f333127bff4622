package viewer

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// eventsFixture is a real catalog with three events of two cameras and a snapshot on disk,
// served to a logged-in supervisor.
func eventsFixture(t *testing.T) http.Handler {
	t.Helper()
	h, _ := eventsServer(t)
	return h
}

// eventsServer is eventsFixture's server and access fixture; the handler is the
// supervisor's browser.
func eventsServer(t *testing.T) (http.Handler, *eventsRig) {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	fx := newAccessFixture(t)
	cat := fx.cat
	t0 := time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC)
	events := []catalog.Event{
		{ID: "0192f5c4-0000-7000-8000-000000000001", Camera: "namesti", Start: t0, End: t0.Add(20 * time.Second),
			Score: 0.4, Box: catalog.Box{X: 0.1, Y: 0.2, W: 0.3, H: 0.4}, Zones: []string{"vchod radnice"},
			Snapshot: "snapshots/namesti/0192f5c4-0000-7000-8000-000000000001.jpg"},
		{ID: "0192f5c4-0000-7000-8000-000000000002", Camera: "most", Start: t0.Add(time.Minute), End: t0.Add(70 * time.Second), Score: 0.1},
		{ID: "0192f5c4-0000-7000-8000-000000000003", Camera: "namesti", Start: t0.Add(time.Hour), Score: 0.2,
			Snapshot: "snapshots/namesti/gone.jpg"}, // ongoing; its snapshot is missing on disk
	}
	for _, ev := range events {
		if err := cat.InsertEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "snapshots", "namesti"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, events[0].Snapshot), []byte("\xff\xd8jpeg\xff\xd9"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := os.DirFS(dir)
	cams := []Camera{{ID: "namesti", Main: fixedStatus{State: ingest.StateStreaming}}, {ID: "most", Main: fixedStatus{State: ingest.StateStreaming}}}
	s, err := New(Options{Listen: "127.0.0.1:0", Cameras: StaticCameras(cams), Metrics: http.NotFoundHandler(), Access: fx.opts,
		Events: &Events{Store: cat, OpenSnapshot: root.Open}})
	if err != nil {
		t.Fatal(err)
	}
	fx.addUser(t, "velitel", []access.Role{access.Supervisor}, false)
	return withCookie(s.Handler(), login(t, s.Handler(), "velitel")), &eventsRig{server: s, fx: fx}
}

// eventsRig is what a test of the events routes needs beyond the supervisor's handler.
type eventsRig struct {
	server *Server
	fx     *accessFixture
}

func TestEventsSearch(t *testing.T) {
	h := eventsFixture(t)
	code, body := get(t, h, "/api/events")
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	var all []map[string]any
	if err := json.Unmarshal([]byte(body), &all); err != nil || len(all) != 3 {
		t.Fatalf("want a JSON array of 3 events, got %v\n%s", err, body)
	}
	if all[0]["id"] != "0192f5c4-0000-7000-8000-000000000003" || all[0]["ongoing"] != true || all[0]["end"] != nil {
		t.Errorf("newest event = %v, want the ongoing one first with end null", all[0])
	}
	first := all[2]
	if first["start"] != "2026-11-23T14:00:00Z" || first["end"] != "2026-11-23T14:00:20Z" ||
		first["snapshot_url"] != "/api/events/0192f5c4-0000-7000-8000-000000000001/snapshot.jpg" {
		t.Errorf("oldest event = %v, want RFC 3339 UTC times and a snapshot URL", first)
	}
	if box := first["box"].(map[string]any); box["x"] != 0.1 || box["h"] != 0.4 {
		t.Errorf("box = %v", box)
	}
	if zones, _ := all[1]["zones"].([]any); zones == nil || len(zones) != 0 {
		t.Errorf("zones of an event without zones = %v, want []", all[1]["zones"])
	}

	for _, tt := range []struct {
		query string
		want  []string // id suffixes
	}{
		{"camera=namesti", []string{"3", "1"}},
		{"zone=vchod+radnice", []string{"1"}},
		{"from=2026-11-23T14:00:30Z&to=2026-11-23T14:30:00Z", []string{"2"}},
		{"from=2026-11-23T15:00:00%2B01:00&to=2026-11-23T15:00:10%2B01:00", []string{"1"}}, // any offset, same instant
		{"limit=1", []string{"3"}},
		{"min_score=0.2", []string{"3", "1"}},
		{"min_score=0.4&camera=namesti", []string{"1"}},
		// Paging: the next page starts before the last start of this one.
		{"limit=2", []string{"3", "2"}},
		{"limit=2&before=2026-11-23T14:01:00Z", []string{"1"}},
	} {
		code, body := get(t, h, "/api/events?"+tt.query)
		var got []struct{ ID string }
		if code != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil {
			t.Errorf("%s: status %d: %s", tt.query, code, body)
			continue
		}
		var ids []string
		for _, e := range got {
			ids = append(ids, e.ID[len(e.ID)-1:])
		}
		if strings.Join(ids, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s: events %v, want %v", tt.query, ids, tt.want)
		}
	}
}

// Malformed searches name the parameter; nothing is searched.
func TestEventsBadRequests(t *testing.T) {
	h := eventsFixture(t)
	for _, tt := range []struct {
		query string
		code  int
		want  string
	}{
		{"from=yesterday", 400, `from: \"yesterday\" is not an RFC 3339 time`},
		{"to=2026-11-23", 400, `to: \"2026-11-23\" is not an RFC 3339 time`},
		{"from=2026-11-23T15:00:00Z&to=2026-11-23T14:00:00Z", 400, "to must be after from"},
		{"min_score=high", 400, `min_score: \"high\" is not a number from 0 to 1`},
		{"min_score=1.5", 400, `min_score: \"1.5\" is not a number from 0 to 1`},
		{"min_score=NaN", 400, `min_score: \"NaN\" is not a number from 0 to 1`},
		{"before=now", 400, `before: \"now\" is not an RFC 3339 time`},
		{"limit=0", 400, `limit: \"0\" is not a number from 1 to 1000`},
		{"limit=5000", 400, `limit: \"5000\" is not a number from 1 to 1000`},
		{"camera=radnice", 404, `unknown camera \"radnice\"`},
	} {
		code, body := get(t, h, "/api/events?"+tt.query)
		if code != tt.code || !strings.Contains(body, tt.want) {
			t.Errorf("%s: %d %s; want %d mentioning %s", tt.query, code, body, tt.code, tt.want)
		}
	}
}

func TestEventSnapshot(t *testing.T) {
	h := eventsFixture(t)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/events/0192f5c4-0000-7000-8000-000000000001/snapshot.jpg", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "image/jpeg" || rec.Body.String() != "\xff\xd8jpeg\xff\xd9" {
		t.Errorf("snapshot: %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
	}
	if cc := rec.Header().Get("Cache-Control"); !strings.Contains(cc, "private") {
		t.Errorf("Cache-Control %q: a snapshot of people must not sit in shared caches", cc)
	}
	for path, want := range map[string]string{
		"/api/events/nope/snapshot.jpg":                                 `unknown event \"nope\"`,
		"/api/events/0192f5c4-0000-7000-8000-000000000002/snapshot.jpg": "has no snapshot",
		"/api/events/0192f5c4-0000-7000-8000-000000000003/snapshot.jpg": "is missing on disk",
	} {
		if code, body := get(t, h, path); code != http.StatusNotFound || !strings.Contains(body, want) {
			t.Errorf("%s: %d %s; want 404 mentioning %s", path, code, body, want)
		}
	}
}
