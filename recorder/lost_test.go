package recorder

import (
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest"
)

// Lost time rises while the recorder should record and does not — waiting for the camera,
// paused on a full disk, failing, without keyframes — and stops rising while it records or
// waits for motion by design; an outage shows while it lasts.
func TestLostTimeRisesWhileNotRecording(t *testing.T) {
	fx := newFootage(t)
	w, err := NewWriter(testCamera(time.Hour), fx.st, fx.cat, ingest.NewHub(), nil, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: exportT0}
	w.now = clock.Now
	step := func(s State, d time.Duration) {
		w.setState(s, "")
		clock.t = clock.t.Add(d)
	}
	step(StateWaiting, 3*time.Second) // lost: the camera is not there yet
	if got := w.Stats().Lost; got != 3*time.Second {
		t.Fatalf("after 3 s waiting for the camera, lost %v; want 3s while it lasts", got)
	}
	step(StateRecording, 10*time.Second)
	step(StatePaused, 2*time.Second)
	step(StateError, time.Second)
	step(StateRecording, 5*time.Second)
	step(StateWaitingMotion, 20*time.Second) // by design, not lost
	step(StateNoKeyframes, 4*time.Second)
	if got, want := w.Stats().Lost, 10*time.Second; got != want {
		t.Fatalf("lost %v, want %v (3 s waiting + 2 s disk full + 1 s error + 4 s without keyframes)", got, want)
	}
	step(StateRecording, time.Minute)
	if got := w.Stats().Lost; got != 10*time.Second {
		t.Fatalf("lost %v after recording resumed; want it to stay at 10s", got)
	}
}
