package recorder

import (
	"context"
	"fmt"
	"time"
)

// spaceReasons are the deletion reasons that take footage a camera's record.retention
// would keep: the retention shortfall's causes.
var spaceReasons = []string{ReasonCameraQuota, ReasonStorageQuota, ReasonMinFree}

func spaceReason(reason string) bool {
	return reason == ReasonCameraQuota || reason == ReasonStorageQuota || reason == ReasonMinFree
}

// loadSpaceCuts reads, once per run, the newest footage each camera lost for space from
// the deletion log, so that a restart (a configuration change is one) still knows the
// hole a quota cut. Deletions older than the longest retention cannot matter. On a
// failure it is retried at the next sweep; meanwhile the shortfall knows only this
// run's deletions.
func (r *Retention) loadSpaceCuts(ctx context.Context, now time.Time, errs *[]error) {
	cuts, err := r.cat.NewestDeletions(ctx, now.Add(-r.orphanRetention), spaceReasons...)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("retention shortfall (known from this run's deletions only): %w", err))
		return
	}
	for cam, c := range cuts {
		if c.End.After(r.spaceCut[cam].End) {
			r.spaceCut[cam] = c
		}
	}
	r.spaceCutLoaded = true
}

// shortfalls returns every configured camera's shortfall at now and logs each change:
// a warning when a camera's shortfall first exceeds its tolerance (one segment: the
// quotas delete whole segments, so a shortfall of less is granularity, not a lack of
// space) or its reason changes, and one line when it is back to zero. Between the two
// nothing is logged, so a camera at the edge does not flap.
func (r *Retention) shortfalls(now time.Time) map[string]Shortfall {
	out := make(map[string]Shortfall, len(r.configuredCamera))
	for _, cam := range r.configuredCamera {
		ret := r.retention[cam]
		sf := Shortfall{Retention: ret, Kept: ret}
		if cut, ok := r.spaceCut[cam]; ok && now.Sub(cut.End) < ret {
			sf.Kept, sf.Reason = max(0, now.Sub(cut.End)), cut.Reason
		}
		out[cam] = sf
		logged, was := r.shortLogged[cam]
		switch {
		case sf.Short() > r.shortTolerance[cam] && (!was || logged != sf.Reason):
			r.log.Warn("camera keeps less history than its retention: footage inside it was deleted for space",
				"camera", cam, "retention", ret, "kept", sf.Kept.Round(time.Second), "short", sf.Short().Round(time.Second),
				"reason", sf.Reason, "hint", shortfallHint[sf.Reason])
			r.shortLogged[cam] = sf.Reason
		case was && sf.Short() == 0:
			r.log.Info("camera keeps its whole retention again", "camera", cam, "retention", ret)
			delete(r.shortLogged, cam)
		}
	}
	return out
}

// shortfallHint tells an operator what to change, by reason.
var shortfallHint = map[string]string{
	ReasonStorageQuota: "storage.quota does not hold every camera's retention at its bitrate and this camera holds the most of it: raise storage.quota, or lower this camera's bitrate or record.retention",
	ReasonMinFree:      "the disk does not hold the cameras' retentions above storage.min_free: add space, or set storage.quota below the disk so that per-camera shares decide",
	ReasonCameraQuota:  "this camera's record.quota does not hold its record.retention at its bitrate: raise record.quota or lower record.retention",
}
