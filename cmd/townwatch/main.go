// Command townwatch is the townwatch video management system: one binary that pulls the
// cameras, records, detects motion and serves the web UI and API.
//
// Usage:
//
//	townwatch serve -config FILE [-pprof ADDR]  run the system
//	townwatch demo [-data DIR]                  run the system against two simulated cameras
//	townwatch demo-cluster                      two recorder nodes, PostgreSQL, S3 and simulated cameras on loopback
//	townwatch check-config -config FILE         validate a configuration (exit 2 when invalid)
//	townwatch export -config FILE -camera ID -from T -to T -o clip.mp4
//	townwatch lock|unlock|locks ...             evidence locks
//	townwatch retention status|confirm ...      retention state; confirm a held mass deletion
//	townwatch user add|list|passwd|disable|enable|grant ...   accounts (no default credentials)
//	townwatch audit verify -config FILE         check the access log's hash chain
//	townwatch catalog rebuild -config FILE      rebuild a damaged catalog (server stopped)
//	townwatch camera probe [-username U] URL   try a camera stream before adding it
//	townwatch camera add|list|remove -config FILE ...   cameras kept in cameras.d
//	townwatch simcam [-listen ADDR] [-clip FILE -cameras N]
//	                                            serve simulated cameras over RTSP
//	townwatch version                           print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2 // bad flags, or an invalid configuration (check-config)
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "run the system with a configuration file", runServe},
		{"demo", "run the system against two simulated cameras (nothing to configure)", runDemo},
		{"demo-cluster", "run two recorder nodes sharing a PostgreSQL catalog and an S3 archive, with simulated cameras (nothing to configure)", runDemoCluster},
		{"check-config", "validate a configuration file and list every problem", runCheckConfig},
		{"export", "write a camera's recorded footage in a time range to one MP4 file", runExport},
		{"lock", "protect a camera's footage in a time range from deletion (evidence lock)", runLock},
		{"unlock", "remove an evidence lock", runUnlock},
		{"locks", "list the active evidence locks", runLocks},
		{"verify", "check an evidence bundle (ZIP) offline: digests, signature, structure", runVerify},
		{"key", "show the evidence signing key's public key and fingerprint, to publish (show)", runKey},
		{"verify-archive", "re-hash the recordings and walk each camera's hash chain (tamper check)", runVerifyArchive},
		{"retention", "show retention and its mass-deletion hold (status), or confirm a held deletion (confirm)", runRetention},
		{"user", "manage accounts: add, list, passwd, disable, enable, grant", runUser},
		{"audit", "check the access log's hash chain (verify)", runAudit},
		{"catalog", "rebuild a damaged catalog from what can be read of it and the files (rebuild), or move it into PostgreSQL (migrate); server stopped", runCatalog},
		{"camera", "try a camera stream before adding it (probe); add, list or remove cameras kept in cameras.d (add, list, remove)", runCamera},
		{"simcam", "serve simulated cameras over RTSP for any VMS to pull", runSimcam},
		{"version", "print the version", runVersion},
	}
}

func main() {
	// Everything townwatch creates (catalog, footage, snapshots, keys, exports) is for its
	// own user alone, including files made by libraries that do not choose a mode.
	syscall.Umask(0o077)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	// Not a command for people: the server starts itself this way to host motion
	// detection in a separate process (see motionPool).
	if args[0] == motionWorkerCommand {
		return runMotionWorker(ctx, args[1:], stdout, stderr)
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "townwatch: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: townwatch <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'townwatch <command> -h' for a command's flags.")
}

// newFlagSet returns a FlagSet that reports errors to stderr and does not exit.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("townwatch "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args and maps -h and bad flags to exit statuses; ok is false when the
// command must return code.
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK, false
	case err != nil:
		return exitUsage, false
	case fs.NArg() > 0:
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitUsage, false
	}
	return exitOK, true
}
