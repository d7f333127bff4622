package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/townwatch/townwatch/recorder"
)

// runVerifyArchive checks the recordings against the catalog: every closed segment is
// re-hashed and every camera's hash chain walked (recorder.VerifyArchive). Exit 0 when
// all is as recorded, 1 naming each segment that is not. It reads only, so it may run
// beside a running server.
func runVerifyArchive(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("verify-archive", stderr)
	cfgPath := fs.String("config", "", "configuration file (required)")
	node := fs.String("node", "", "this node's name, on one of several nodes (serve -node): footage still on the other nodes' disks is read through them")
	camera := fs.String("camera", "", "check only this camera (default: all)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, code, ok := loadConfig("verify-archive", *cfgPath, stderr)
	if !ok {
		return code
	}
	cat, err := openCatalog(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "verify-archive: %v\n", err)
		return exitFailure
	}
	defer cat.Close()
	st, err := recorder.OpenStorage(cfg.Storage.Path)
	if err != nil {
		fmt.Fprintf(stderr, "verify-archive: %v\n", err)
		return exitFailure
	}
	defer st.Close()
	// Archived segments are read from the bucket (storage.archive).
	if tier, _, err := attachArchive(cfg, st); err != nil {
		fmt.Fprintf(stderr, "verify-archive: %v\n", err)
		return exitFailure
	} else if tier != nil {
		defer tier.Close()
	}
	closePeers, err := attachPeers(cfg, st, *node)
	if err != nil {
		fmt.Fprintf(stderr, "verify-archive: %v\n", err)
		return exitFailure
	}
	defer closePeers()
	// Re-hashing a large archive takes minutes: say how far it is, every few seconds.
	var lastReport time.Time
	progress := func(done, total int) {
		if now := time.Now(); now.Sub(lastReport) >= 5*time.Second || done == total {
			lastReport = now
			fmt.Fprintf(stderr, "verify-archive: %d of %d segments\n", done, total)
		}
	}
	rep, err := recorder.VerifyArchive(ctx, st, cat, *camera, progress)
	if err != nil {
		fmt.Fprintf(stderr, "verify-archive: %v\n", err)
		return exitFailure
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(stdout, "FAILED "+p.String())
	}
	fmt.Fprintf(stdout, "%d segments (%s) re-hashed, %d deleted ones linked through the deletion log, %d still being written, %d recorded before the hash chain existed (link not checked).\n",
		rep.Checked, sizeString(rep.Bytes), rep.Deleted, rep.Open, rep.Unchained)
	if rep.Remote > 0 {
		fmt.Fprintf(stdout, "%d of them were read from other nodes' disks.\n", rep.Remote)
	}
	if rep.Unreached > 0 {
		fmt.Fprintf(stdout, "%d segment(s) on other nodes' disks could not be read and were NOT checked (listed above); run with -node, or on their node.\n", rep.Unreached)
	}
	if len(rep.Problems) > 0 {
		fmt.Fprintf(stdout, "%d problem(s): the recordings above are not what was recorded.\n", len(rep.Problems))
		return exitFailure
	}
	if rep.Checked == 0 && *camera != "" {
		fmt.Fprintf(stdout, "No closed segment of camera %q.\n", *camera)
		return exitFailure
	}
	fmt.Fprintln(stdout, "OK: every file matches the catalog and every camera's hash chain is intact.")
	return exitOK
}
