package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// motionWorkerCommand is the hidden subcommand the server runs its worker program with to
// host motion detection (see motionPool).
const motionWorkerCommand = "motion-worker"

// motionWorkerProgramName is the worker program a townwatch built without cgo runs, from
// its own directory: the same program built with cgo (make build makes both).
const motionWorkerProgramName = "townwatch-motion"

// motionWorkerProgram names the program the server runs as its motion worker. A townwatch
// built with cgo is its own worker. One built without (CGO_ENABLED=0, as make build makes
// bin/townwatch) links neither libavcodec nor OpenCV, which saves the server the memory of
// about a hundred shared libraries (docs/architecture.md), and runs townwatch-motion
// beside it. A missing worker program does not stop the server (newMotionPool logs it as an
// error at start; starting the worker then fails naming the path, is logged and retried
// like any worker failure): continuous recording goes on, without motion detection and
// thumbnails, and a camera recording in motion mode records nothing.
func motionWorkerProgram() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("motion: finding townwatch's own binary: %w", err)
	}
	if hostsMotionWorker {
		return self, nil
	}
	return filepath.Join(filepath.Dir(self), motionWorkerProgramName), nil
}
