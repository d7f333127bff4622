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
	var lf logFlags
	lf.register(fs)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	log, err := lf.logger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	srv, err := simcam.New(simcam.Config{Listen: *listen, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "simcam: %v\n", err)
		return exitUsage
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
		for _, c := range simcam.DefaultCameras() {
			fmt.Fprintf(stdout, "%s\t%s\n", srv.URL(c.Path), c.Clip)
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
