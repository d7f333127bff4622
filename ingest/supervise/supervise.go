// Package supervise keeps one component's fault from stopping the others. A camera's
// source, recorder or motion analyser that panics, or returns before it was asked to
// stop, is logged, counted and restarted alone after a backoff, while every other camera
// goes on recording. Without it one malformed stream that tripped a bug anywhere took the
// whole process, and every camera's recording, down with it.
//
// It lives under ingest, the bottom layer that the recorder, live view and cmd already
// import, so that each of them can supervise its own goroutines.
//
// Recovering a panic is only safe where the component's own state is rebuilt on restart:
// each supervised Run starts from scratch, and its deferred clean-up (closing the open
// segment at its last complete fragment, ending the stream) runs while the panic unwinds.
package supervise

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"
)

// PanicError is a recovered panic: its value and the stack where it happened.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Call runs fn and returns a recovered panic as a *PanicError (nil when fn returned).
// It is for callbacks that run on goroutines townwatch does not own (the RTSP client's
// packet handler), where a panic cannot be caught further up.
func Call(fn func()) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	fn()
	return nil
}

// Backoff between restarts: doubling from minBackoff to maxBackoff, back to minBackoff
// once a run has lasted stableAfter. A component that panics on every frame is then
// restarted every 30 s at most, instead of spinning a core.
const (
	minBackoff  = time.Second
	maxBackoff  = 30 * time.Second
	stableAfter = time.Minute
)

// Options describe one supervised component.
type Options struct {
	Log *slog.Logger // with the component's attributes (camera, component)
	// OnFault is called after each panic or early return, before the restart wait
	// (for a metric); nil: nothing.
	OnFault func(err error)
	// Wait waits d or until ctx is done (false then); nil: a timer. Tests inject it.
	Wait func(ctx context.Context, d time.Duration) bool
	// Now is the clock runs are timed with; nil: time.Now.
	Now func() time.Time
}

// Run runs fn until ctx is done, restarting it after a panic or a return (with or
// without an error) that came before ctx ended. It returns nil once ctx is done and fn
// has returned.
func Run(ctx context.Context, opt Options, fn func(context.Context) error) error {
	if opt.Wait == nil {
		opt.Wait = wait
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	backoff := minBackoff
	for {
		started := opt.Now()
		err := Call(func() {
			if runErr := fn(ctx); runErr != nil {
				panic(returned{runErr})
			}
		})
		if ctx.Err() != nil {
			return nil
		}
		if r, ok := asReturned(err); ok {
			err = r
		}
		if err == nil {
			err = fmt.Errorf("returned before it was stopped")
		}
		if opt.Now().Sub(started) >= stableAfter {
			backoff = minBackoff
		}
		if p, ok := err.(*PanicError); ok {
			opt.Log.Error("component panicked; restarting it alone", "err", err, "restart_in", backoff, "stack", string(p.Stack))
		} else {
			opt.Log.Error("component stopped; restarting it alone", "err", err, "restart_in", backoff)
		}
		if opt.OnFault != nil {
			opt.OnFault(err)
		}
		if !opt.Wait(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// returned carries fn's error through Call, so that Run has one path for both faults.
type returned struct{ err error }

func asReturned(err error) (error, bool) {
	if p, ok := err.(*PanicError); ok {
		if r, ok := p.Value.(returned); ok {
			return r.err, true
		}
	}
	return nil, false
}

func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
