package probe_test

import (
	"context"
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest/probe"
	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/viewer"
)

// BenchmarkProbe probes a simulated 640x360 25 fps camera with a 2 s GOP, snapshot
// included: what an administrator waits for. The time to the first keyframe depends on
// where in its GOP the camera is, so it is reported as well (a mean over the runs).
func BenchmarkProbe(b *testing.B) {
	cam, err := simcam.New(simcam.Config{Listen: "127.0.0.1:0", Cameras: []simcam.CameraSpec{{Path: "cam", Clip: simcam.ClipMotion}}})
	if err != nil {
		b.Fatal(err)
	}
	stop, err := cam.Start(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	frames, err := viewer.NewFrameDecoder("")
	if err != nil {
		b.Fatal(err)
	}
	p := &probe.Prober{Snapshots: frames}
	var keyframes time.Duration
	for b.Loop() {
		res, err := p.Run(context.Background(), probe.Request{URL: cam.URL("cam")})
		if err != nil || !res.OK || res.SnapshotJPEG == nil {
			b.Fatalf("probe: %v %+v", err, res)
		}
		keyframes += time.Duration(res.FirstKeyframeMS) * time.Millisecond
	}
	b.ReportMetric(float64(keyframes.Milliseconds())/float64(b.N), "keyframe-ms/op")
}
