package recorder

import (
	"flag"
	"os"
	"runtime"
	"strconv"
	"testing"
)

// recorderParallel is how many parallel tests of this package run at once at least,
// unless -parallel is given. go test's default is GOMAXPROCS (2 on CI, kept where it is
// more), but most of these tests wait: on a real-time simulated camera (the motion
// tests wait out their events, pre- and post-rolls), on fsyncs of the catalog (the
// retention simulations). Two at a time left the CPUs idle about half of the package's
// wall time; see docs/testing.md for the measurement behind the figure.
const recorderParallel = 6

func TestMain(m *testing.M) {
	flag.Parse()
	if !flagSet("test.parallel") {
		flag.Set("test.parallel", strconv.Itoa(max(recorderParallel, runtime.GOMAXPROCS(0))))
	}
	os.Exit(m.Run())
}

// flagSet reports whether the command line set the flag called name.
func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
