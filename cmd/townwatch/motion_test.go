package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// TestMotionModeRecordsEventsWithRolls runs `townwatch serve` with a camera recording in
// motion mode: the simulated street scene has a car moving 10-18 s into its loop. The
// footage kept for that event must begin at least pre_roll before the detector's start
// and reach at least post_roll past its end, on a keyframe, playable, with the event
// searchable and its snapshot served, and nothing recorded long before the event.
func TestMotionModeRecordsEventsWithRolls(t *testing.T) {
	t.Parallel()
	const preRoll, postRoll = 4 * time.Second, 3 * time.Second
	cam := startSimcam(t, simcam.CameraSpec{Path: "motion", Clip: simcam.ClipMotion})

	dir := t.TempDir()
	storage := filepath.Join(dir, "storage")
	cfg := "storage:\n  path: " + strconv.Quote(storage) + "\n  min_free: 1MiB\nhttp:\n  listen: 127.0.0.1:0\n" +
		"webrtc: {udp_port: 0, tcp_port: 0}\ncameras:\n  - id: ulice\n" +
		"    main: {url: " + cam.URL("motion") + ", transport: tcp}\n" +
		"    sub: {url: " + cam.URL("motion") + ", transport: tcp}\n" +
		"    record: {mode: motion, pre_roll: 4s, post_roll: 3s, segment: 10s}\n" +
		"    motion: {enabled: true, cooldown: 2s}\n"
	cfgPath := filepath.Join(dir, "townwatch.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addAccount(t, cfgPath, "novak", "officer", "-cameras", "ulice")
	p := startServe(t, cfgPath)
	officer := loginClient(t, p.base, "novak", accountPassword)

	// Wait for the first event to end and its post-roll to pass; the clip's next motion
	// starts 12 s after the first ends, so stop before it.
	var ev struct {
		ID          string     `json:"id"`
		Start       time.Time  `json:"start"`
		End         *time.Time `json:"end"`
		SnapshotURL string     `json:"snapshot_url"`
	}
	deadline := time.Now().Add(50 * time.Second)
	for ; time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		var events []json.RawMessage
		if json.Unmarshal([]byte(httpGet(t, officer, p.base+"api/events?camera=ulice")), &events) != nil || len(events) == 0 {
			continue
		}
		if err := json.Unmarshal(events[len(events)-1], &ev); err != nil {
			t.Fatal(err)
		}
		if ev.End != nil && time.Since(*ev.End) > postRoll+3*time.Second {
			break
		}
	}
	if ev.End == nil {
		t.Fatalf("no motion event ended within 50 s (last seen %+v):\n%s", ev, p.stderr.String())
	}
	resp, err := officer.Get(p.base + ev.SnapshotURL[1:])
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/jpeg" {
		t.Errorf("snapshot %s: %v %v", ev.SnapshotURL, resp, err)
	}
	if resp != nil {
		resp.Body.Close()
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.exited

	cat, err := catalog.Open(context.Background(), filepath.Join(storage, catalogFile))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	segs, err := cat.AllSegments(context.Background())
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments: %v, %v; want the event's footage", segs, err)
	}
	first, last := segs[0].Start, segs[0].End
	for _, s := range segs {
		if s.Open {
			t.Errorf("segment %s still open after a clean stop", s.Path)
		}
		if s.Start.Before(first) {
			first = s.Start
		}
		if s.End.After(last) {
			last = s.End
		}
		checkPlays(t, filepath.Join(storage, s.Path))
	}
	// The motion search grid has the event's motion, the last minute included: a clean
	// stop hands on the minute in progress.
	var anywhere catalog.GridCells
	for i := range anywhere {
		anywhere[i] = 0xff
	}
	if hits, err := cat.SearchMotion(context.Background(), []string{"ulice"}, ev.Start, ev.End.Add(time.Second), anywhere, 1); err != nil || len(hits) == 0 {
		t.Errorf("motion search over the event %s–%s found %v (%v); want its motion", ev.Start, ev.End, hits, err)
	}
	t.Logf("event %s–%s; footage %s–%s in %d segments", ev.Start.Format("15:04:05.000"), ev.End.Format("15:04:05.000"),
		first.Format("15:04:05.000"), last.Format("15:04:05.000"), len(segs))
	if first.After(ev.Start.Add(-preRoll)) {
		t.Errorf("footage starts %v before the event, want at least the pre-roll %v", ev.Start.Sub(first), preRoll)
	}
	if last.Before(ev.End.Add(postRoll)) {
		t.Errorf("footage ends %v after the event, want at least the post-roll %v", last.Sub(*ev.End), postRoll)
	}
	// The recording starts at the keyframe before start - pre_roll (one GOP, 2 s, plus the
	// clip's frame spacing), not at the beginning of the camera's stream.
	if lead := ev.Start.Sub(first); lead > preRoll+2*time.Second+100*time.Millisecond {
		t.Errorf("footage starts %v before the event: motion mode recorded more than the pre-roll and one GOP", lead)
	}
}
