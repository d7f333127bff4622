package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/townwatch/townwatch/configs"
)

func runCheckConfig(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("check-config", stderr)
	path := fs.String("config", "", "configuration file to check, with the cameras in cameras.d beside it (required)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *path == "" {
		fmt.Fprintln(stderr, "check-config: -config FILE is required")
		return exitUsage
	}
	cfg, err := configs.LoadUnion(*path)
	if err != nil {
		var verr *configs.ValidationError
		if errors.As(err, &verr) {
			fmt.Fprintf(stderr, "%s: %d problem(s):\n", *path, len(verr.Problems))
			for _, p := range verr.Problems {
				fmt.Fprintf(stderr, "  %s\n", p)
			}
		} else {
			fmt.Fprintf(stderr, "%v\n", err)
		}
		return exitUsage
	}
	fmt.Fprintf(stdout, "%s: valid (%d camera(s), storage %s, http %s)\n", *path, len(cfg.Cameras), cfg.Storage.Path, cfg.HTTP.Listen)
	return exitOK
}
