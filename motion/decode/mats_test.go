//go:build !matprofile

package decode

import "testing"

// checkMats needs gocv's Mat profile, which exists only with -tags matprofile; without it
// there is nothing to count (see mats_profile_test.go).
func checkMats(testing.TB) {}
