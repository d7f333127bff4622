package recorder

import (
	"testing"
	"time"

	"github.com/townwatch/townwatch/configs"
)

// TestRetentionSteadyStateNeverHolds runs a week's archive of 60 s segments for four
// cameras with a 7-day retention through a simulated day of sweeps every 30 s: ordinary
// operation must never raise the mass-deletion guard, and no footage may outlive its
// retention. Under the race detector (several times slower, see retentionRace) it runs a day's
// archive through two hours, which exercises the same floors.
func TestRetentionSteadyStateNeverHolds(t *testing.T) {
	t.Parallel()
	archive, run := 7*24*time.Hour, 24*time.Hour
	if retentionRace {
		archive, run = 24*time.Hour, 2*time.Hour
	}
	cams := []string{"cam-a", "cam-b", "cam-c", "cam-d"}
	cfg := &configs.Config{}
	for _, c := range cams {
		cfg.Cameras = append(cfg.Cameras, retCamera(c, archive, 0))
	}
	// A tmpfs, because the catalog fsyncs every commit: tens of thousands of them.
	fx := newRetFixture(t, mountTmpfs(t, 1<<30), cfg)
	rc := fx.recorder(cams, retSeg, retSize)
	for now := retT0; now.Before(retT0.Add(archive)); now = now.Add(retSeg) {
		rc.advance(now)
	}
	before := len(fx.deletions())
	var sweeps, deleted int
	fx.clock.Set(retT0.Add(archive))
	fx.simulate(rc, retT0.Add(archive+run), sweepInterval, func(rep SweepReport) {
		sweeps++
		deleted += len(rep.Deleted)
	})
	fx.checkAge()
	fx.checkDeletions(before)
	// Every minute, each camera's oldest segment expires.
	if want := int(run/retSeg) * len(cams); deleted < want-len(cams) || deleted > want+len(cams) {
		t.Errorf("%d segments deleted in %d sweeps, want about %d", deleted, sweeps, want)
	}
	if st := fx.ret.Status(); st.Hold || st.Errors != 0 {
		t.Errorf("after the run: hold %v, %d errors (last %q)", st.Hold, st.Errors, st.LastError)
	}
}
