//go:build !matprofile

package motion

// openMats returns how many gocv Mats are open; counted is false without -tags
// matprofile, when gocv does not count them (see matprofile_test.go).
func openMats() (n int, counted bool) { return 0, false }
