package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/viewer"
)

// system is one running townwatch: every camera's sources, the hub they publish to, and
// the HTTP surface.
type system struct {
	cfg     *configs.Config
	log     *slog.Logger
	hub     *ingest.Hub
	sources []*ingest.Source
	http    *viewer.Server
}

// newSystem wires the components for cfg. It starts nothing.
func newSystem(cfg *configs.Config, log *slog.Logger) (*system, error) {
	sys := &system{cfg: cfg, log: log, hub: ingest.NewHub()}
	var cams []viewer.Camera
	for _, c := range cfg.Cameras {
		main, err := ingest.NewSource(c.ID, ingest.StreamMain, c.Main, sys.hub, log)
		if err != nil {
			return nil, err
		}
		sys.sources = append(sys.sources, main)
		vc := viewer.Camera{ID: c.ID, Name: c.Name, Main: main}
		if c.Sub != nil {
			sub, err := ingest.NewSource(c.ID, ingest.StreamSub, *c.Sub, sys.hub, log)
			if err != nil {
				return nil, err
			}
			sys.sources = append(sys.sources, sub)
			vc.Sub = sub
		}
		cams = append(cams, vc)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newIngestCollector(sys.sources, sys.hub),
	)
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)})
	srv, err := viewer.New(cfg.HTTP.Listen, cams, metrics, log)
	if err != nil {
		return nil, err
	}
	sys.http = srv
	return sys, nil
}

// run runs every component until ctx is done or one fails for good.
func (sys *system) run(ctx context.Context) error {
	if err := os.MkdirAll(sys.cfg.Storage.Path, 0o750); err != nil {
		return fmt.Errorf("storage.path: %w", err)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return sys.http.Run(ctx) })
	for _, src := range sys.sources {
		g.Go(func() error { return src.Run(ctx) })
	}
	go func() {
		select {
		case <-sys.http.Ready():
			sys.log.Info("townwatch running", "version", versionString(), "cameras", len(sys.cfg.Cameras), "web", webURL(sys.http.Addr()))
		case <-ctx.Done():
		}
	}()
	return g.Wait()
}

// webURL is the address a person opens in a browser.
func webURL(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return "http://" + a.String() + "/"
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}
