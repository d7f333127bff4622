package recorder

import (
	"slices"
	"testing"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// A reload that removes a camera leaves its footage to the rule for cameras no longer
// configured (the longest retention) and its locks hold; a shorter retention for a camera
// that stays applies at the next sweep.
func TestRetentionReconfigureRemovedCameraAndShorterRetention(t *testing.T) {
	t.Parallel()
	cfg := &configs.Config{Cameras: []configs.Camera{
		retCamera("cam-a", 3*time.Hour, 0), retCamera("cam-gone", 10*time.Minute, 0),
	}}
	fx := newRetFixture(t, "", cfg)
	for start := retT0; start.Before(retT0.Add(3 * time.Hour)); start = start.Add(retSeg) {
		fx.segment("cam-a", start, retSeg, retSize)
		fx.segment("cam-gone", start, retSeg, retSize)
	}
	m := func(d time.Duration) time.Time { return retT0.Add(d) }
	if _, err := fx.cat.AddLock(fx.ctx, catalog.Lock{Camera: "cam-gone", Reason: "evidence", Start: m(0), End: m(2 * time.Minute), Created: retT0}); err != nil {
		t.Fatal(err)
	}
	// cam-gone leaves the configuration, cam-a keeps 2 h 55 min instead of 3 h.
	if err := fx.ret.Reconfigure([]configs.Camera{retCamera("cam-a", 2*time.Hour+55*time.Minute, 0)}); err != nil {
		t.Fatal(err)
	}
	fx.clock.Set(m(3*time.Hour + 5*time.Minute))
	if rep := fx.sweep(fx.ret); rep.Held || len(rep.Deleted) == 0 {
		t.Fatalf("sweep after the reload: held %v, deleted %d", rep.Held, len(rep.Deleted))
	}
	// Both cameras are cut at T0+10m: cam-a by its new retention, cam-gone by the longest
	// configured one (cam-a's), not by its own 10 min; its locked minutes stay.
	cutoff := m(10 * time.Minute)
	var kept []string
	for _, s := range fx.segments() {
		if s.End.Before(cutoff) {
			kept = append(kept, s.Camera+"@"+s.Start.Sub(retT0).String())
		}
	}
	if want := []string{"cam-gone@0s", "cam-gone@1m0s"}; !slices.Equal(kept, want) {
		t.Errorf("segments before the cut-off left: %v, want only cam-gone's locked ones %v", kept, want)
	}
	if n := len(fx.segments()); n != 2*(180-9)+2 {
		t.Errorf("%d segments left, want %d: everything from the cut-off on", n, 2*(180-9)+2)
	}
	if err := fx.ret.Reconfigure([]configs.Camera{retCamera("cam-a", -time.Hour, 0)}); err == nil {
		t.Error("Reconfigure accepted a negative retention")
	}
}
