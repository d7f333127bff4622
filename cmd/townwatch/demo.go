package main

import (
	"context"
	"fmt"
	"io"
	"net/url"

	"golang.org/x/sync/errgroup"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest/simcam"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("demo", stderr)
	data := fs.String("data", "./data/demo", "storage directory for the demo's catalog and recordings")
	listen := fs.String("http", "", "HTTP listen address (default: demo.yaml's http.listen, 127.0.0.1:8080)")
	rtsp := fs.String("simcam", "127.0.0.1:8554", "RTSP listen address of the simulated cameras (port 0 picks a free one)")
	webrtcPort := fs.Int("webrtc", configs.DefaultUDPPort, "UDP and TCP port of the live view's WebRTC media (0 picks free ones)")
	var lf logFlags
	lf.register(fs)
	log, code, ok := lf.parse(fs, args, stderr)
	if !ok {
		return code
	}
	cfg, err := configs.Parse(configs.DemoYAML, "demo.yaml")
	if err != nil {
		fmt.Fprintf(stderr, "demo: embedded configuration: %v\n", err)
		return exitFailure
	}
	cfg.Storage.Path = *data
	if *listen != "" {
		cfg.HTTP.Listen = *listen
	}
	cfg.WebRTC.UDPPort, cfg.WebRTC.TCPPort = *webrtcPort, *webrtcPort

	cams, err := simcam.New(simcam.Config{Listen: *rtsp, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "demo: -simcam: %v\n", err)
		return exitUsage
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return cams.Run(ctx) })
	g.Go(func() error {
		select {
		case <-cams.Ready():
		case <-ctx.Done():
			return nil
		}
		// demo.yaml points at the default simcam address; follow it wherever it listens.
		if err := pointCamerasAt(cfg, cams.Addr()); err != nil {
			return err
		}
		if err := cfg.Validate(); err != nil {
			return err
		}
		sys, err := openSystem(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer sys.close()
		accounts, err := ensureDemoAccounts(ctx, sys.catalog, sys.audit)
		if err != nil {
			return err
		}
		g.Go(func() error {
			select {
			case <-sys.http.Ready():
				fmt.Fprintf(stdout, "townwatch demo is running: open %s (simulated cameras at rtsp://%s/, data in %s; Ctrl+C stops)\n",
					webURL(sys.http.Addr()), cams.Addr(), cfg.Storage.Path)
				printDemoAccounts(stdout, accounts)
			case <-ctx.Done():
			}
			return nil
		})
		return sys.run(ctx)
	})
	if err := g.Wait(); err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return exitFailure
	}
	log.Info("demo stopped")
	return exitOK
}

// pointCamerasAt rewrites the host:port of every camera stream URL to addr.
func pointCamerasAt(cfg *configs.Config, addr string) error {
	for i := range cfg.Cameras {
		streams := []*configs.Stream{&cfg.Cameras[i].Main}
		if cfg.Cameras[i].Sub != nil {
			streams = append(streams, cfg.Cameras[i].Sub)
		}
		for _, s := range streams {
			u, err := url.Parse(s.URL)
			if err != nil {
				return fmt.Errorf("demo camera %s: %w", cfg.Cameras[i].ID, err)
			}
			u.Host = addr
			s.URL = u.String()
		}
	}
	return nil
}
