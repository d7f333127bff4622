//go:build matprofile

package decode

import (
	"bytes"
	"testing"

	"gocv.io/x/gocv"
)

// checkMats fails tb if the test leaves more gocv Mats open than it found. gocv counts Mats
// only when built with -tags matprofile.
func checkMats(tb testing.TB) {
	tb.Helper()
	before := gocv.MatProfile.Count()
	tb.Cleanup(func() {
		if after := gocv.MatProfile.Count(); after != before {
			var b bytes.Buffer
			gocv.MatProfile.WriteTo(&b, 1)
			tb.Errorf("%d gocv Mats left open (before %d, after %d):\n%s", after-before, before, after, b.String())
		}
	})
}
