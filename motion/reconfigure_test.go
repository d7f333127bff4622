package motion

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/motion/report"
)

// TestReconfigureZonesMidEvent: zones changed while the left-half box moves (5-12 s of
// the clip) are taken up by the running analyser. A zone still over the motion keeps the
// event going under its id, named by the new zone; a zone away from the motion ends the
// event after the cooldown and raises no other, while the box still moves.
func TestReconfigureZonesMidEvent(t *testing.T) {
	units := loadLoops(t, leftMotionClip(t), 25, 1)
	gate := testCamera(func(c *configs.Camera) {
		c.Motion.Zones = []configs.Zone{{Name: "gate", Points: leftHalf}}
	})
	at := epoch.Add(8 * time.Second) // the event started at about 5 s
	reconfigureAt := func(next configs.Camera) func(*Analyzer, *ingest.Unit) {
		done := false
		return func(a *Analyzer, u *ingest.Unit) {
			if !done && !u.Wall.Before(at) {
				done = true
				if !a.Stats().Active {
					t.Fatalf("no event going on at %v, the test needs one", u.Wall.Sub(epoch))
				}
				if err := a.Reconfigure(next); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	// The gate becomes the porch, drawn over the whole frame, and the door is added.
	porch := testCamera(func(c *configs.Camera) {
		c.Motion.Zones = []configs.Zone{{Name: "door", Points: rightHalf}, {Name: "porch", Points: [][]float64{{0, 0}, {1, 0}, {1, 1}, {0, 1}}}}
	})
	r := analyseCalling(t, gate, units, nil, nil, reconfigureAt(porch))
	if len(r.starts) != 1 || len(r.ends) != 1 {
		t.Fatalf("zones redrawn over the motion: want 1 event going on across the change, got starts %v ends %v", summarize(r.starts), summarize(r.ends))
	}
	start, end := r.starts[0], r.ends[0]
	if end.ID != start.ID {
		t.Errorf("the event's id changed across the reconfiguration: %s → %s", start.ID, end.ID)
	}
	if !slices.Equal(start.Zones, []string{"gate"}) || !slices.Equal(end.Zones, []string{"porch"}) {
		t.Errorf("zones at the start %q and the end %q, want [gate] then [porch]", start.Zones, end.Zones)
	}
	if end.End.Before(epoch.Add(11 * time.Second)) {
		t.Errorf("the event ended at %v, before the motion did at 12 s", end.End.Sub(epoch))
	}

	// The zones move to the right half, where nothing moves.
	door := testCamera(func(c *configs.Camera) {
		c.Motion.Zones = []configs.Zone{{Name: "door", Points: rightHalf}}
	})
	r = analyseCalling(t, gate, units, nil, nil, reconfigureAt(door))
	if len(r.starts) != 1 || len(r.ends) != 1 {
		t.Fatalf("zone moved off the motion: want the one event, ended, got starts %v ends %v", summarize(r.starts), summarize(r.ends))
	}
	if r.ends[0].ID != r.starts[0].ID {
		t.Errorf("the event's id changed across the reconfiguration: %s → %s", r.starts[0].ID, r.ends[0].ID)
	}
	if got := r.ends[0].End; got.After(at) {
		t.Errorf("the event's last moving frame is at %v, after the zone left the motion at %v", got.Sub(epoch), at.Sub(epoch))
	}
	if len(r.ends[0].Zones) != 0 {
		t.Errorf("the ended event names %q, zones no longer configured", r.ends[0].Zones)
	}
}

// TestReconfigureRefusesWhatChangesDecoding: the analysed stream, the frame selection and
// the width need a new analyser; Reconfigure says so and keeps what runs.
func TestReconfigureRefusesWhatChangesDecoding(t *testing.T) {
	a, err := NewAnalyzer(testCamera(nil), ingest.NewHub(), nil, Options{OnEvent: func(report.Event) {}})
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*configs.Camera){
		"stream":  func(c *configs.Camera) { c.Sub = nil },
		"analyze": func(c *configs.Camera) { c.Motion.Analyze = configs.AnalyzeKeyframes },
		"width":   func(c *configs.Camera) { c.Motion.Width = 640 },
	} {
		if err := a.Reconfigure(testCamera(edit)); !errors.Is(err, ErrNotInPlace) {
			t.Errorf("%s changed: Reconfigure says %v, want ErrNotInPlace", name, err)
		}
	}
	if a.next.Load() != nil {
		t.Error("a refused configuration was kept for the next frame")
	}
	bad := testCamera(func(c *configs.Camera) { c.Motion.Sensitivity = 0 })
	if err := a.Reconfigure(bad); err == nil || errors.Is(err, ErrNotInPlace) {
		t.Errorf("sensitivity 0: Reconfigure says %v, want the settings error", err)
	}
	if err := a.Reconfigure(testCamera(func(c *configs.Camera) { c.Motion.Sensitivity = 80 })); err != nil {
		t.Errorf("sensitivity changed: %v", err)
	}
}
