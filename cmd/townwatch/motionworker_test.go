package main

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/townwatch/townwatch/configs"
)

// The worker hands new zones to the camera's running analyser, and makes a new analyser
// only for a setting that changes what is decoded (motion.width).
func TestWorkerReconfiguresOrRenewsAnalysers(t *testing.T) {
	cfg, err := configs.Parse([]byte(`storage: {path: ./data}
cameras:
  - id: ulice
    main: {url: rtsp://127.0.0.1/main}
    sub: {url: rtsp://127.0.0.1/sub}
    motion: {enabled: true}
`), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cam := cfg.Cameras[0]
	w := newWorkerSide(io.Discard, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer func() {
		cancel()
		w.running.Wait()
	}()
	w.apply(ctx, &cameraDelta{Cameras: []configs.Camera{cam}})
	first := w.cams["ulice"].analyser
	if first == nil {
		t.Fatal("no analyser started for ulice")
	}

	zoned := cam
	zoned.Motion.Zones = []configs.Zone{{Name: "prechod", Points: [][]float64{{0, 0}, {1, 0}, {1, 1}}}}
	w.apply(ctx, &cameraDelta{Reconfigure: []configs.Camera{zoned}})
	if w.cams["ulice"].analyser != first {
		t.Error("new zones replaced ulice's analyser; they should reach the running one")
	}

	wider := zoned
	wider.Motion.Width *= 2
	w.apply(ctx, &cameraDelta{Reconfigure: []configs.Camera{wider}})
	if a := w.cams["ulice"].analyser; a == nil || a == first {
		t.Error("a new motion.width left ulice's old analyser running; it needs a new one")
	}
}
