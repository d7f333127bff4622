//go:build matprofile

package motion

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"gocv.io/x/gocv"
)

// TestMain checks, when built with -tags matprofile, that the package's tests leave
// exactly as many gocv Mats open as they found: every Mat the analyser, detector and
// tests make is closed.
func TestMain(m *testing.M) {
	before := gocv.MatProfile.Count()
	code := m.Run()
	if after := gocv.MatProfile.Count(); code == 0 && after != before {
		var b bytes.Buffer
		gocv.MatProfile.WriteTo(&b, 1)
		fmt.Fprintf(os.Stderr, "gocv Mats leaked: %d open before the tests, %d after\n%s", before, after, b.String())
		code = 1
	}
	os.Exit(code)
}

// openMats returns how many gocv Mats are open; counted is false without -tags
// matprofile, when gocv does not count them.
func openMats() (n int, counted bool) { return gocv.MatProfile.Count(), true }
