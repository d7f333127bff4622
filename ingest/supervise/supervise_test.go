package supervise

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCallTurnsAPanicIntoAnError(t *testing.T) {
	err := Call(func() { panic("depacketizer: index out of range") })
	var p *PanicError
	if !errors.As(err, &p) || p.Value != "depacketizer: index out of range" || !strings.Contains(string(p.Stack), "supervise_test.go") {
		t.Fatalf("Call = %v; want a PanicError with the value and the stack", err)
	}
	if err := Call(func() {}); err != nil {
		t.Fatalf("Call of a function that returns = %v", err)
	}
}

// fakeTime is the supervisor's clock and wait: waiting advances the clock at once.
type fakeTime struct {
	now   time.Time
	waits []time.Duration
}

func (f *fakeTime) Now() time.Time { return f.now }
func (f *fakeTime) Wait(ctx context.Context, d time.Duration) bool {
	f.waits = append(f.waits, d)
	f.now = f.now.Add(d)
	return ctx.Err() == nil
}

// A component that keeps failing is restarted with a doubling backoff up to 30 s, each
// fault reported; once a run lasts a minute the backoff starts again from 1 s. When the
// context ends, Run returns nil and restarts nothing.
func TestRunRestartsAFailingComponentWithBackoff(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	clock := &fakeTime{now: time.Unix(0, 0)}
	var faults []error
	runs := 0
	err := Run(ctx, Options{Now: clock.Now, Wait: clock.Wait, OnFault: func(err error) { faults = append(faults, err) }},
		func(ctx context.Context) error {
			runs++
			switch {
			case runs == 8: // a long, healthy run, then a failure
				clock.now = clock.now.Add(2 * time.Minute)
				return errors.New("camera session ended")
			case runs == 10:
				cancel()
				<-ctx.Done()
				return nil
			case runs%2 == 0:
				return nil // returned before it was stopped: a fault too
			}
			var m map[string]int
			m["x"]++ // a real nil-map panic
			return nil
		})
	if err != nil {
		t.Fatalf("Run = %v after its context ended; want nil", err)
	}
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30, 1, 2}
	if len(clock.waits) != len(want) {
		t.Fatalf("waits %v, want %v (seconds)", clock.waits, want)
	}
	for i, w := range want {
		if clock.waits[i] != w*time.Second {
			t.Fatalf("waits %v, want %v (seconds)", clock.waits, want)
		}
	}
	if len(faults) != 9 {
		t.Fatalf("%d faults reported, want 9", len(faults))
	}
	var p *PanicError
	if !errors.As(faults[0], &p) || !strings.Contains(p.Error(), "nil map") {
		t.Errorf("first fault %v; want the recovered panic", faults[0])
	}
	if !strings.Contains(faults[1].Error(), "returned before it was stopped") {
		t.Errorf("second fault %v; want the early return named", faults[1])
	}
	if faults[7].Error() != "camera session ended" {
		t.Errorf("eighth fault %v; want the component's own error", faults[7])
	}
}

// Stopping during the backoff wait ends Run at once.
func TestRunStopsDuringTheWait(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	runs := 0
	err := Run(ctx, Options{Wait: func(context.Context, time.Duration) bool { cancel(); return false }},
		func(context.Context) error { runs++; panic("boom") })
	if err != nil || runs != 1 {
		t.Fatalf("Run = %v after %d runs; want nil after 1", err, runs)
	}
}
