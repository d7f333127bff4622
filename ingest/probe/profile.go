package probe

import (
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
)

// h264Profile names an H.264 profile_idc as the standard does (Annex A).
func h264Profile(sps h264.SPS) string {
	switch sps.ProfileIdc {
	case 66:
		if sps.ConstraintSet1Flag {
			return "Constrained Baseline"
		}
		return "Baseline"
	case 77:
		return "Main"
	case 88:
		return "Extended"
	case 100:
		return "High"
	case 110:
		return "High 10"
	case 122:
		return "High 4:2:2"
	case 244:
		return "High 4:4:4 Predictive"
	}
	return fmt.Sprintf("profile_idc %d", sps.ProfileIdc)
}

// h265Profile names an H.265 general_profile_idc (Annex A) and the level, which H.265
// codes as 30 times its number.
func h265Profile(raw []byte) (string, string) {
	var sps h265.SPS
	if sps.Unmarshal(raw) != nil {
		return "", ""
	}
	ptl := sps.ProfileTierLevel
	level := fmt.Sprintf("%d.%d", ptl.GeneralLevelIdc/30, ptl.GeneralLevelIdc%30/3)
	switch ptl.GeneralProfileIdc {
	case 1:
		return "Main", level
	case 2:
		return "Main 10", level
	case 3:
		return "Main Still Picture", level
	case 4:
		return "Range Extensions", level
	}
	return fmt.Sprintf("profile_idc %d", ptl.GeneralProfileIdc), level
}
