package recorder

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// eventCamera is retCamera with event retention and the default rolls (5 s, 10 s).
func eventCamera(id string, retention, eventRetention time.Duration, quota int64) configs.Camera {
	c := retCamera(id, retention, quota)
	c.Record.EventRetention = configs.Duration(eventRetention)
	c.Record.PreRoll, c.Record.PostRoll = configs.DefaultPreRoll, configs.DefaultPostRoll
	return c
}

// event stores a motion event of camera from start to end (zero: going on).
func (fx *retFixture) event(id, camera string, start, end time.Time) catalog.Event {
	fx.t.Helper()
	e := catalog.Event{ID: id, Camera: camera, Start: start, End: end, Score: 0.5}
	if err := fx.cat.InsertEvent(fx.ctx, e); err != nil {
		fx.t.Fatal(err)
	}
	return e
}

// olderThan returns the start offsets from retT0 of camera's segments that ended before
// cutoff, in order.
func (fx *retFixture) olderThan(camera string, cutoff time.Time) []time.Duration {
	var out []time.Duration
	for _, s := range fx.segments() {
		if s.Camera == camera && s.End.Before(cutoff) {
			out = append(out, s.Start.Sub(retT0))
		}
	}
	return out
}

func mins(ms ...int) []time.Duration {
	out := make([]time.Duration, len(ms))
	for i, m := range ms {
		out[i] = time.Duration(m) * time.Minute
	}
	return out
}

// TestRetentionEventRetentionKeepsEventFootage: past record.retention, a segment
// survives while it overlaps an event's span (pre-roll to post-roll; a going-on event up
// to now) and is younger than event_retention; every other one goes at retention; a
// camera without event retention is not affected by its events; a lock keeps footage
// beyond both.
func TestRetentionEventRetentionKeepsEventFootage(t *testing.T) {
	t.Parallel()
	const ret, eventRet = 10 * time.Minute, time.Hour
	cfg := &configs.Config{Cameras: []configs.Camera{
		eventCamera("cam-a", ret, eventRet, 0), retCamera("cam-b", ret, 0),
	}}
	fx := newRetFixture(t, "", cfg)
	at := func(d time.Duration) time.Time { return retT0.Add(d) }
	m := time.Minute
	for _, cam := range []string{"cam-a", "cam-b"} {
		fx.event(cam+"-1", cam, at(10*m+30*time.Second), at(10*m+40*time.Second)) // span 10:25-10:50: segment 10
		fx.event(cam+"-2", cam, at(20*m+2*time.Second), at(20*m+30*time.Second))  // pre-roll reaches segment 19
	}
	going := fx.event("cam-a-3", "cam-a", at(30*m+50*time.Second), time.Time{}) // going on
	if _, err := fx.cat.AddLock(fx.ctx, catalog.Lock{Camera: "cam-a", Start: at(40*m + 10*time.Second), End: at(40*m + 20*time.Second),
		Reason: "case 2026-17", Created: retT0}); err != nil {
		t.Fatal(err)
	}
	rc := fx.recorder([]string{"cam-a", "cam-b"}, retSeg, retSize)
	seen := 0
	check := func(SweepReport) { seen = fx.checkDeletions(seen) }

	// 45 min in: segments up to 33 min are past retention. The going-on event keeps
	// 30 min onwards.
	fx.simulate(rc, at(45*m), sweepInterval, check)
	cutoff := at(45*m - ret)
	if got, want := fx.olderThan("cam-a", cutoff), mins(10, 19, 20, 30, 31, 32, 33); !slices.Equal(got, want) {
		t.Errorf("cam-a keeps %v past retention, want %v (events' segments; the going-on event's from 30 min)", got, want)
	}
	if got := fx.olderThan("cam-b", cutoff); len(got) != 0 {
		t.Errorf("cam-b (no event retention) keeps %v past retention", got)
	}

	// The event ends at 32 min: its span now ends at 32:10.
	going.End = at(32 * m)
	if err := fx.cat.UpdateEvent(fx.ctx, going); err != nil {
		t.Fatal(err)
	}
	fx.simulate(rc, at(time.Hour), sweepInterval, check)
	if got, want := fx.olderThan("cam-a", at(time.Hour-ret)), mins(10, 19, 20, 30, 31, 32, 40); !slices.Equal(got, want) {
		t.Errorf("cam-a keeps %v past retention, want %v (events' segments, the locked one)", got, want)
	}

	// Once event_retention has run out for all of them, only the locked segment is left.
	end := at(eventRet + 35*m)
	fx.simulate(rc, end, 5*m, check)
	if got, want := fx.olderThan("cam-a", end.Add(-ret)), mins(40); !slices.Equal(got, want) {
		t.Errorf("after event_retention cam-a keeps %v past retention, want only the locked %v", got, want)
	}
	for _, d := range fx.deletions() {
		if d.Reason != ReasonAge {
			t.Errorf("%s deleted for %q, want age", d.Path, d.Reason)
		}
		if d.Camera == "cam-a" && slices.Contains(mins(10, 19, 20, 30, 31, 32), d.Start.Sub(retT0)) && d.At.Before(d.End.Add(eventRet)) {
			t.Errorf("event footage %s deleted at %s, before its event retention ran out", d.Path, d.At)
		}
	}
}

// TestRetentionQuotaDeletesEventFootageFirst: event retention only uses spare room. Under
// record.quota the footage kept past retention for its events is the oldest and goes
// first; recent footage stays; a lock stays even over the quota.
func TestRetentionQuotaDeletesEventFootageFirst(t *testing.T) {
	t.Parallel()
	const ret = time.Hour
	// The retention window (61 closed segments: the oldest straddles the cut-off), the
	// locked segment (quotas count locked footage) and room for one more: one of the two
	// event segments.
	const quota = 63*retSize + retSize/2
	cfg := &configs.Config{Cameras: []configs.Camera{eventCamera("cam-a", ret, 24*time.Hour, quota)}}
	fx := newRetFixture(t, "", cfg)
	at := func(d time.Duration) time.Time { return retT0.Add(d) }
	m := time.Minute
	fx.event("e1", "cam-a", at(5*m+30*time.Second), at(5*m+40*time.Second))
	fx.event("e2", "cam-a", at(10*m+30*time.Second), at(10*m+40*time.Second))
	locked := at(20*m + 10*time.Second)
	if _, err := fx.cat.AddLock(fx.ctx, catalog.Lock{Camera: "cam-a", Start: locked, End: locked.Add(10 * time.Second),
		Reason: "case 2026-18", Created: retT0}); err != nil {
		t.Fatal(err)
	}
	rc := fx.recorder([]string{"cam-a"}, retSeg, retSize)
	fx.simulate(rc, at(3*time.Hour), sweepInterval, nil)

	var quotaDeleted []time.Duration
	for _, d := range fx.deletions() {
		if d.Reason == ReasonCameraQuota {
			quotaDeleted = append(quotaDeleted, d.Start.Sub(retT0))
			if !d.End.Before(d.At.Add(-ret)) {
				t.Errorf("quota deleted %s at %s, within retention, while event footage past retention was left", d.Path, d.At)
			}
		}
	}
	if want := mins(5); !slices.Equal(quotaDeleted, want) {
		t.Errorf("the quota deleted segments %v, want the oldest event footage kept past retention %v", quotaDeleted, want)
	}
	if got, want := fx.olderThan("cam-a", at(3*time.Hour-ret)), mins(10, 20); !slices.Equal(got, want) {
		t.Errorf("past retention cam-a keeps %v, want the event segment that fits the quota and the locked one %v", got, want)
	}
}

// TestRetentionExpiresEvents: an event and its snapshot go once the camera's footage may
// no longer exist (the longer of retention and event_retention); younger and going-on
// events stay.
func TestRetentionExpiresEvents(t *testing.T) {
	t.Parallel()
	const ret, eventRet = 10 * time.Minute, time.Hour
	cfg := &configs.Config{Cameras: []configs.Camera{
		eventCamera("cam-a", ret, eventRet, 0), retCamera("cam-b", ret, 0),
	}}
	fx := newRetFixture(t, "", cfg)
	at := func(d time.Duration) time.Time { return retT0.Add(d) }
	snapshotted := func(id, camera string, start, end time.Time) string {
		e := fx.event(id, camera, start, end)
		rel, err := fx.st.WriteSnapshot(camera, id, []byte("jpeg"))
		if err != nil {
			t.Fatal(err)
		}
		e.Snapshot = rel
		if err := fx.cat.UpdateEvent(fx.ctx, e); err != nil {
			t.Fatal(err)
		}
		return rel
	}
	oldA := snapshotted("0a", "cam-a", at(0), at(time.Minute))
	youngA := snapshotted("0b", "cam-a", at(30*time.Minute), at(31*time.Minute))
	oldB := snapshotted("0c", "cam-b", at(0), at(time.Minute))
	fx.event("0d", "cam-b", at(0), time.Time{}) // going on: never expires
	// A camera removed from the config: its events follow the longest configured
	// record.retention (10 min here), like its footage.
	fx.event("0e", "cam-gone", at(0), at(time.Minute))

	ids := func() []string {
		events, err := fx.cat.Events(fx.ctx, catalog.EventQuery{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range events {
			out = append(out, e.ID)
		}
		slices.Sort(out)
		return out
	}
	// 20 min: cam-b's and the removed camera's ended events are past their 10 min; cam-a
	// keeps events for an hour.
	fx.clock.Set(at(20 * time.Minute))
	fx.sweep(fx.ret)
	if got, want := ids(), []string{"0a", "0b", "0d"}; !slices.Equal(got, want) {
		t.Errorf("events at 20 min = %v, want %v", got, want)
	}
	if fx.fileExists(oldB) || !fx.fileExists(oldA) {
		t.Errorf("snapshots at 20 min: cam-b's expired one exists %v, cam-a's kept one exists %v", fx.fileExists(oldB), fx.fileExists(oldA))
	}
	// 65 min: cam-a's first event is past event_retention, its second is not.
	fx.clock.Set(at(65 * time.Minute))
	fx.sweep(fx.ret)
	if got, want := ids(), []string{"0b", "0d"}; !slices.Equal(got, want) {
		t.Errorf("events at 65 min = %v, want %v", got, want)
	}
	if fx.fileExists(oldA) || !fx.fileExists(youngA) {
		t.Errorf("snapshots at 65 min: expired one exists %v, young one exists %v", fx.fileExists(oldA), fx.fileExists(youngA))
	}
	if n := fx.log.count(slog.LevelInfo, "expired motion events"); n != 3 {
		t.Errorf("expiry logged %d times; want once per camera and sweep that expired events (3)", n)
	}
}
