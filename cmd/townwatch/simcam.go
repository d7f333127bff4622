package main

import (
	"context"
	"fmt"
	"io"

	"github.com/townwatch/townwatch/ingest/simcam"
)

func runSimcam(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("simcam", stderr)
	listen := fs.String("listen", "127.0.0.1:8554", "RTSP listen address")
	file := fs.String("clip", "", "serve this raw H.264 Annex-B `FILE` (e.g. ffmpeg -f h264 output, no B-frames) instead of the bundled clips")
	fps := fs.Int("fps", 0, "frame rate at which -clip FILE is sent (default 25)")
	copies := fs.Int("cameras", 0, "serve `N` copies at paths cam1..camN: of -clip FILE, or of the bundled motion clip\n"+
		"(default: cam1 with -clip, else the bundled motion and static cameras)")
	var lf logFlags
	lf.register(fs)
	log, code, ok := lf.parse(fs, args, stderr)
	if !ok {
		return code
	}
	cams, err := simcamCameras(*file, *fps, *copies)
	if err != nil {
		fmt.Fprintf(stderr, "simcam: %v\n", err)
		return exitUsage
	}
	srv, err := simcam.New(simcam.Config{Listen: *listen, Cameras: cams, Logger: log})
	if err != nil {
		fmt.Fprintln(stderr, err) // "simcam: ..." already
		return exitUsage
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
		for _, c := range cams {
			what := string(c.Clip)
			if c.File != "" {
				what = c.File
			}
			fmt.Fprintf(stdout, "%s\t%s\n", srv.URL(c.Path), what)
		}
	case err := <-done:
		fmt.Fprintf(stderr, "simcam: %v\n", err)
		return exitFailure
	}
	if err := <-done; err != nil {
		fmt.Fprintf(stderr, "simcam: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// simcamCameras turns the simcam flags into the cameras to serve.
func simcamCameras(file string, fps, copies int) ([]simcam.CameraSpec, error) {
	switch {
	case copies < 0:
		return nil, fmt.Errorf("-cameras %d: must be >= 0", copies)
	case fps != 0 && file == "":
		return nil, fmt.Errorf("-fps needs -clip FILE (the bundled clips are %d fps)", simcam.FrameRate)
	case file != "":
		return simcam.Copies(simcam.CameraSpec{File: file, FPS: fps}, max(copies, 1)), nil
	case copies > 0:
		return simcam.Copies(simcam.CameraSpec{Clip: simcam.ClipMotion}, copies), nil
	}
	return simcam.DefaultCameras(), nil
}
