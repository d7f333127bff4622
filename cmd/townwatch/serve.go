package main

import (
	"context"
	"fmt"
	"io"

	"github.com/townwatch/townwatch/configs"
)

func runServe(ctx context.Context, args []string, _, stderr io.Writer) int {
	fs := newFlagSet("serve", stderr)
	path := fs.String("config", "", "configuration file (required)")
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
	if *path == "" {
		fmt.Fprintln(stderr, "serve: -config FILE is required (see configs/townwatch.example.yaml)")
		return exitUsage
	}
	cfg, err := configs.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	sys, err := newSystem(cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailure
	}
	if err := sys.run(ctx); err != nil {
		log.Error("townwatch stopped", "err", err)
		return exitFailure
	}
	log.Info("townwatch stopped")
	return exitOK
}
