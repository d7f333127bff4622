package main

import (
	"context"
	"fmt"
	"io"
	"runtime"

	"github.com/townwatch/townwatch/cmd/internal/memlimit"
	"github.com/townwatch/townwatch/configs"
)

func runServe(ctx context.Context, args []string, _, stderr io.Writer) int {
	fs := newFlagSet("serve", stderr)
	path := fs.String("config", "", "configuration file (required)")
	pprofAddr := fs.String("pprof", "", "serve Go profiling endpoints on this address (e.g. 127.0.0.1:6060); off by default")
	node := fs.String("node", "", "run as this recorder node of several sharing a PostgreSQL catalog (needs catalog.url, node.advertise, node.token_file; see docs/nodes.md)")
	catalogCheck := fs.Duration("catalog-check", defaultCatalogCheck, "run PRAGMA quick_check on the live catalog this often (0: only at start)")
	var lf logFlags
	lf.register(fs)
	log, code, ok := lf.parse(fs, args, stderr)
	if !ok {
		return code
	}
	if *path == "" {
		fmt.Fprintln(stderr, "serve: -config FILE is required (see configs/townwatch.example.yaml)")
		return exitUsage
	}
	cfg, err := configs.LoadUnion(*path) // the hand-written file and cameras.d
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	if *node != "" {
		if err := cfg.CheckNode(*node); err != nil {
			fmt.Fprintln(stderr, err)
			return exitUsage
		}
	}
	if *pprofAddr == "" {
		// Without the profiling endpoints nobody reads the heap profile, and its sampling
		// keeps a table of call stacks (about 1.5 MB recording 16 cameras). Set before
		// the server allocates anything of note.
		runtime.MemProfileRate = 0
	}
	sys, err := openNode(ctx, cfg, *node, log)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailure
	}
	defer sys.close()
	sys.reloads.file = *path // SIGHUP and edits of the file (or of cameras.d) reload it
	sys.cameraStore.Main = *path
	sys.extra = append(sys.extra, sys.health.watch(*catalogCheck, log.With("component", "catalog")))
	if *pprofAddr != "" {
		sys.extra = append(sys.extra, func(ctx context.Context) error { return servePprof(ctx, *pprofAddr) })
	}
	if memlimit.Managed() { // unless GOMEMLIMIT or GOGC is set: docs/architecture.md, Memory
		sys.extra = append(sys.extra, func(ctx context.Context) error { memlimit.Run(ctx); return nil })
	}
	if err := sys.run(ctx); err != nil {
		log.Error("townwatch stopped", "err", err)
		return exitFailure
	}
	log.Info("townwatch stopped")
	return exitOK
}
