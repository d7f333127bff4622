// Command livebench is townwatch's live-view benchmark (`make bench`): one 1080p, 25 fps,
// ~4 Mbit/s H.264 camera (simcam serving a clip made once with ffmpeg and cached) is
// pulled by a townwatch-serve-like server process (ingest Source, Hub, a recorder stand-in
// with the recorder's queue, and viewer/live's WHEP Manager), and watched by 0, then each
// of -n pion WebRTC viewers in this process. For each N it prints the server's CPU per
// viewer-hour, RSS per viewer, the viewers' first-frame latency, and whether the recorder
// stand-in lost a frame.
//
// Usage (from the repository):
//
//	go run ./cmd/livebench [-n 1,10,50] [-duration 60s] [-warmup 5s] [-cache DIR] [-clip FILE]
//	go run ./cmd/livebench -mediamtx BIN [-townwatch BIN] [-n 16] [-duration 60s] [-warmup 5s]
//
// The server runs in its own process (this binary with -serve) so that the viewers'
// decryption does not count as server CPU. livebench stops it on exit, also on Ctrl+C.
//
// With -mediamtx it runs, instead, the footprint issue's side-by-side run for viewers
// (sidebyside.go): the real `townwatch serve` (built from the repository unless -townwatch
// names a binary) and MediaMTX pull the same camera, -n viewers watch each at the same
// time, and it prints both servers' CPU and peak RSS, the ratios and the verdict.
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
	"time"

	"github.com/townwatch/townwatch/cmd/internal/benchkit"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("livebench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nList := fs.String("n", "1,10,50", "comma-separated viewer counts, one measurement each (after one with no viewer)")
	duration := fs.Duration("duration", 60*time.Second, "measured time per viewer count, after the warm-up")
	warmup := fs.Duration("warmup", 5*time.Second, "time after the viewers connect before measuring")
	cache := fs.String("cache", benchkit.DefaultCacheDir(), "directory where the generated clip is kept between runs")
	clip := fs.String("clip", "", "raw H.264 (Annex-B) clip to serve instead of the generated one")
	serveURL := fs.String("serve", "", "internal: run the server process for this RTSP URL")
	mediamtx := fs.String("mediamtx", "", "MediaMTX binary: run the side-by-side run instead, the real townwatch serve and MediaMTX each watched by -n viewers (default 16)")
	townwatch := fs.String("townwatch", "", "with -mediamtx: townwatch binary to run (default: go build ./cmd/townwatch)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *serveURL != "" {
		if err := serve(*serveURL, stdout, stdin); err != nil {
			fmt.Fprintln(stderr, "livebench -serve:", err)
			return 1
		}
		return 0
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *mediamtx != "" && !set["n"] {
		*nList = "16"
	}
	ns, err := benchkit.ParseCounts(*nList, "viewer")
	switch {
	case err != nil:
	case *duration <= 0 || *warmup < 0:
		err = errors.New("-duration must be > 0 and -warmup >= 0")
	case set["townwatch"] && *mediamtx == "":
		// Without -mediamtx the server is this binary's stand-in: a -townwatch ignored
		// would let the report say it measured a binary it never ran.
		err = errors.New("-townwatch applies with -mediamtx only")
	}
	if err != nil {
		fmt.Fprintln(stderr, "livebench:", err)
		return 2
	}
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, "livebench: "+format+"\n", args...) }
	if *mediamtx != "" {
		err = runSideBySide(ctx, sbsConfig{ns: ns, duration: *duration, warmup: *warmup, cache: *cache, clip: *clip,
			townwatch: *townwatch, mediamtx: *mediamtx}, stdout, logf)
	} else {
		var rows []row
		rows, err = bench(ctx, benchConfig{ns: ns, duration: *duration, warmup: *warmup, cache: *cache, clip: *clip}, logf)
		if len(rows) > 0 {
			printReport(stdout, rows, *duration)
		}
	}
	switch {
	case ctx.Err() != nil:
		logf("interrupted; the servers livebench started are stopped")
		return 130
	case err != nil:
		logf("%v", err)
		return 1
	}
	return 0
}

// runSideBySide runs the side-by-side run in a temporary directory it removes afterwards,
// and prints the rows of the viewer counts it completed.
func runSideBySide(ctx context.Context, sc sbsConfig, stdout io.Writer, logf func(string, ...any)) error {
	work, err := os.MkdirTemp("", "livebench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	sc.work = work
	names, rows, err := benchSideBySide(ctx, sc, logf)
	if len(rows) > 0 {
		printSideBySide(stdout, names, rows, sc.duration)
	}
	return err
}
