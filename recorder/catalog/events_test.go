package catalog

import (
	"context"
	"reflect"
	"testing"
	"time"
)

func event(id, camera string, start, end time.Time, zones ...string) Event {
	return Event{ID: id, Camera: camera, Start: start, End: end, Score: 0.25,
		Box: Box{X: 0.1, Y: 0.2, W: 0.3, H: 0.4}, Zones: zones}
}

func insertEvents(t *testing.T, c *Catalog, events ...Event) {
	t.Helper()
	for _, e := range events {
		if err := c.InsertEvent(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
}

func eventIDs(events []Event) []string {
	out := []string{}
	for _, e := range events {
		out = append(out, e.ID)
	}
	return out
}

// An event is stored as the detector reports it: inserted when it starts, completed when
// it ends, read back exactly (UTC, nanoseconds, zone names with any character).
func TestEventRoundTrip(t *testing.T) {
	ctx := context.Background()
	c, _ := openTest(t)
	e := event("0192f5c4-7a10-7000-8000-000000000001", "namesti", at(0), time.Time{})
	insertEvents(t, c, e)
	got, err := c.Event(ctx, e.ID)
	if err != nil || !reflect.DeepEqual(got, e) {
		t.Fatalf("Event() = %+v, %v\nwant %+v", got, err, e)
	}

	e.End, e.Score, e.Box = at(12*time.Second), 0.75, Box{X: 0.5, Y: 0.5, W: 0.5, H: 0.5}
	e.Zones = []string{"vchod radnice", `parkoviště "B", sever`}
	e.Snapshot = "snapshots/namesti/" + e.ID + ".jpg"
	if err := c.UpdateEvent(ctx, e); err != nil {
		t.Fatal(err)
	}
	if got, err = c.Event(ctx, e.ID); err != nil || !reflect.DeepEqual(got, e) {
		t.Fatalf("after update Event() = %+v, %v\nwant %+v", got, err, e)
	}

	wantErr(t, c.InsertEvent(ctx, e), ErrExists, e.ID)
	_, err = c.Event(ctx, "nope")
	wantErr(t, err, ErrNotFound, "nope")
	other := e
	other.ID = "nope"
	wantErr(t, c.UpdateEvent(ctx, other), ErrNotFound, "nope")
	other = e
	other.Camera = "most" // an update cannot move an event to another camera
	wantErr(t, c.UpdateEvent(ctx, other), ErrNotFound)
}

// Invalid events are refused with the field named, and nothing is stored.
func TestEventRejects(t *testing.T) {
	ctx := context.Background()
	c, _ := openTest(t)
	ok := event("a", "namesti", at(time.Second), at(2*time.Second))
	tests := []struct {
		name   string
		modify func(*Event)
		want   string
	}{
		{"no id", func(e *Event) { e.ID = "" }, "id is empty"},
		{"no camera", func(e *Event) { e.Camera = "" }, "camera is empty"},
		{"no start", func(e *Event) { e.Start = time.Time{} }, "start is not set"},
		{"end before start", func(e *Event) { e.End = at(0) }, "is before start"},
		{"score above 1", func(e *Event) { e.Score = 1.5 }, "score 1.5 is outside 0-1"},
		{"box outside", func(e *Event) { e.Box = Box{X: 0.9, Y: 0, W: 0.2, H: 0.1} }, "is not inside the picture"},
		{"absolute snapshot", func(e *Event) { e.Snapshot = "/etc/passwd" }, "must be relative to the storage directory"},
		{"escaping snapshot", func(e *Event) { e.Snapshot = "snapshots/../../x.jpg" }, "must be relative to the storage directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ok
			tt.modify(&e)
			wantErr(t, c.InsertEvent(ctx, e), nil, tt.want)
		})
	}
	if got, err := c.Events(ctx, EventQuery{}); err != nil || len(got) != 0 {
		t.Errorf("Events() = %v, %v; want none stored", eventIDs(got), err)
	}
}

// Search: by camera, time range (overlap, ongoing events reach to now), zone, minimum
// score, paging cursor and limit, newest first.
func TestEventsQuery(t *testing.T) {
	ctx := context.Background()
	c, _ := openTest(t)
	insertEvents(t, c,
		event("e1", "namesti", at(0), at(10*time.Second), "vchod"),
		event("e2", "namesti", at(time.Minute), at(time.Minute+5*time.Second), "vchod", "parkoviště"),
		event("e3", "most", at(90*time.Second), at(100*time.Second)),
		event("e4", "namesti", at(2*time.Minute), time.Time{}, "parkoviště"), // still going on
	)
	strong := event("e5", "most", at(3*time.Minute), at(3*time.Minute+time.Second))
	strong.Score = 0.8
	insertEvents(t, c, strong)
	tests := []struct {
		name string
		q    EventQuery
		want []string
	}{
		{"all newest first", EventQuery{}, []string{"e5", "e4", "e3", "e2", "e1"}},
		{"camera", EventQuery{Camera: "namesti"}, []string{"e4", "e2", "e1"}},
		{"zone", EventQuery{Zone: "parkoviště"}, []string{"e4", "e2"}},
		{"zone is matched whole", EventQuery{Zone: "parkoviš"}, []string{}},
		{"overlap at the start", EventQuery{From: at(5 * time.Second), To: at(30 * time.Second)}, []string{"e1"}},
		{"to is exclusive", EventQuery{To: at(time.Minute)}, []string{"e1"}},
		{"ongoing reaches to now", EventQuery{From: at(time.Hour)}, []string{"e4"}},
		{"limit", EventQuery{Limit: 2}, []string{"e5", "e4"}},
		{"min score", EventQuery{MinScore: 0.5}, []string{"e5"}},
		{"min score is inclusive", EventQuery{MinScore: 0.25, Camera: "namesti"}, []string{"e4", "e2", "e1"}},
		{"before is exclusive", EventQuery{Before: at(90 * time.Second)}, []string{"e2", "e1"}},
		{"pages", EventQuery{Before: at(time.Minute), Limit: 2}, []string{"e1"}},
		{"camera and range", EventQuery{Camera: "namesti", From: at(50 * time.Second), To: at(95 * time.Second)}, []string{"e2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Events(ctx, tt.q)
			if err != nil || !reflect.DeepEqual(eventIDs(got), tt.want) {
				t.Errorf("Events(%+v) = %v, %v; want %v", tt.q, eventIDs(got), err, tt.want)
			}
		})
	}
	_, err := c.Events(ctx, EventQuery{Limit: MaxEventLimit + 1})
	wantErr(t, err, nil, "limit 1001 is outside 1-1000")
	_, err = c.Events(ctx, EventQuery{MinScore: 1.5})
	wantErr(t, err, nil, "min score 1.5 is outside 0-1")
}

// Retention removes events whose footage aged out and hands back their snapshots; an
// ongoing event and other cameras' events stay.
func TestDeleteEventsBefore(t *testing.T) {
	ctx := context.Background()
	c, _ := openTest(t)
	old := event("old", "namesti", at(0), at(10*time.Second))
	old.Snapshot = "snapshots/namesti/old.jpg"
	insertEvents(t, c, old,
		event("ongoing", "namesti", at(5*time.Second), time.Time{}),
		event("recent", "namesti", at(time.Hour), at(time.Hour+time.Second)),
		event("other", "most", at(0), at(time.Second)),
	)
	gone, err := c.DeleteEventsBefore(ctx, "namesti", at(time.Minute))
	if err != nil || !reflect.DeepEqual(eventIDs(gone), []string{"old"}) || gone[0].Snapshot != old.Snapshot {
		t.Fatalf("DeleteEventsBefore = %+v, %v; want only old with its snapshot", gone, err)
	}
	if cams, err := c.EventCameras(ctx); err != nil || !reflect.DeepEqual(cams, []string{"most", "namesti"}) {
		t.Errorf("EventCameras = %v, %v", cams, err)
	}
	left, err := c.Events(ctx, EventQuery{})
	if err != nil || !reflect.DeepEqual(eventIDs(left), []string{"recent", "ongoing", "other"}) {
		t.Errorf("left %v, %v", eventIDs(left), err)
	}
}

// A catalog made before events existed is upgraded in place: its footage stays and events
// can be stored.
func TestMigrationAddsEvents(t *testing.T) {
	ctx := context.Background()
	path := newTarget(t)
	schema := testMigrations()
	orig := *schema
	t.Cleanup(func() { *schema = orig })
	*schema = orig[:1]
	c, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	// Written as version 1 wrote it: today's CloseSegment needs later columns.
	var seg int64
	if _, err := c.w.ExecContext(ctx, `INSERT INTO cameras (id) VALUES ('namesti')`); err != nil {
		t.Fatal(err)
	}
	if err := c.w.QueryRowContext(ctx, `INSERT INTO segments (camera, stream, start_ns, end_ns, path, bytes, sha256, codec, width, height, audio, gap_before, open, frames)
VALUES ('namesti', 'main', $1, $2, 'recordings/namesti/a.mp4', 1000, $3, 'H264', 640, 360, 0, 0, 0, 25) RETURNING id`,
		at(0).UnixNano(), at(time.Minute).UnixNano(), sha(1)).Scan(&seg); err != nil {
		t.Fatal(err)
	}
	if err := c.InsertEvent(ctx, event("e", "namesti", at(0), at(time.Second))); err == nil {
		t.Fatal("InsertEvent on a version 1 catalog succeeded; the test does not exercise the upgrade")
	}
	c.Close()

	*schema = orig
	c, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if s, err := c.Segment(ctx, seg); err != nil || s.Chained {
		t.Errorf("segment %d after upgrade: %+v, %v (closed before the chain: not chained)", seg, s, err)
	}
	if err := c.InsertEvent(ctx, event("e", "namesti", at(0), at(time.Second))); err != nil {
		t.Errorf("InsertEvent after upgrade: %v", err)
	}
	if _, err := c.Event(ctx, "e"); err != nil {
		t.Errorf("Event after upgrade: %v", err)
	}
}
