package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/townwatch/townwatch/cmd/internal/memlimit"
	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/viewer/live"
)

// recorderQueue matches recorder.Writer's Hub queue, so the stand-in drops exactly when
// the recorder would.
const recorderQueue = 2048

// serverStats is what the server process reports at GET /stats.
type serverStats struct {
	CPUSeconds     float64          `json:"cpu_seconds"` // user+system of this process so far
	RSSBytes       uint64           `json:"rss_bytes"`
	PeakRSSBytes   uint64           `json:"peak_rss_bytes"`  // since the process started
	ReceivedFrames uint64           `json:"received_frames"` // video units the Source published
	RecorderFrames uint64           `json:"recorder_frames"` // video units the recorder stand-in read
	RecorderDrops  uint64           `json:"recorder_dropped"`
	Live           live.CameraStats `json:"live"`
}

// serve is the server process: a townwatch-serve-like stack (Source → Hub → a recorder
// stand-in with the recorder's queue, and the live Manager) for one camera. It prints its
// HTTP base URL on stdout and serves until stdin closes (the parent's end).
func serve(rtspURL string, stdout io.Writer, stdin io.Reader) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	hub := ingest.NewHub()
	src, err := ingest.NewSource("cam", ingest.StreamMain, configs.Stream{URL: rtspURL, Transport: configs.TransportTCP,
		StallTimeout: configs.Duration(5 * time.Second)}, hub, log)
	if err != nil {
		return err
	}
	m, err := live.New(hub, []live.Camera{{ID: "cam"}}, live.Options{ListenHost: "127.0.0.1", MaxViewers: 200,
		MaxViewersPerCamera: 200, Log: log})
	if err != nil {
		return err
	}
	var recFrames atomic.Uint64
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	// Memory as townwatch serve runs it (cmd/townwatch/serve.go): no heap profile
	// sampling, and the soft memory limit following the live heap.
	runtime.MemProfileRate = 0
	if memlimit.Managed() {
		wg.Go(func() { memlimit.Run(ctx) })
	}
	wg.Go(func() { src.Run(ctx) })
	runErr := make(chan error, 1)
	wg.Go(func() { runErr <- m.Run(ctx) })
	wg.Go(func() { recordStandIn(ctx, hub, &recFrames) })
	select {
	case <-m.Ready():
	case err := <-runErr:
		return err
	}
	mux := http.NewServeMux()
	m.Register(mux)
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		json.NewEncoder(w).Encode(serverStats{
			CPUSeconds:     time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds(),
			RSSBytes:       status("VmRSS:"),
			PeakRSSBytes:   status("VmHWM:"),
			ReceivedFrames: src.Status().ReceivedFrames,
			RecorderFrames: recFrames.Load(),
			RecorderDrops:  recorderDrops(hub),
			Live:           m.Stats("cam"),
		})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux}
	wg.Go(func() { srv.Serve(ln) })
	defer srv.Close()
	fmt.Fprintf(stdout, "http://%s\n", ln.Addr())
	io.Copy(io.Discard, stdin) // returns when the parent closes our stdin or exits
	return nil
}

// recorderDrops is the recorder stand-in's drop count, kept by the Hub.
func recorderDrops(hub *ingest.Hub) uint64 {
	for _, d := range hub.DropCounts() {
		if d.Consumer == "recorder" {
			return d.Units
		}
	}
	return 0
}

// recordStandIn reads the camera like the recorder does, counting frames.
func recordStandIn(ctx context.Context, hub *ingest.Hub, frames *atomic.Uint64) {
	for ctx.Err() == nil {
		st, err := hub.Wait(ctx, "cam", ingest.StreamMain)
		if err != nil {
			return
		}
		r := st.NewReader("recorder", recorderQueue)
		for {
			u, _, err := r.Read(ctx)
			if err != nil {
				break
			}
			if u.Track.Kind == ingest.KindVideo {
				frames.Add(1)
			}
		}
		r.Close()
	}
}

// status is a size field of this process's /proc/self/status in bytes, such as its
// resident set (VmRSS:) or the peak of it (VmHWM:); 0 if it cannot be read.
func status(field string) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
