//go:build !cgo

package main

import (
	"context"
	"fmt"
	"io"
)

// hostsMotionWorker: built without cgo, this townwatch links neither libavcodec nor
// OpenCV; its motion worker is townwatch-motion (see motionWorkerProgram).
const hostsMotionWorker = false

// runMotionWorker refuses: motion detection needs the C libraries this build leaves out.
func runMotionWorker(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintf(stderr, "townwatch: built without cgo, this binary cannot host motion detection; %s does\n", motionWorkerProgramName)
	return exitFailure
}
