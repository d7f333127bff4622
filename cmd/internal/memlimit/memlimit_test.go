package memlimit

import (
	"context"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"testing/synctest"
	"time"
)

const mib = 1 << 20

// withHeadroom is b over the share of a limit the runtime leaves for its heap goal.
func withHeadroom(b int64) int64 { return int64(float64(b) / limitHeadroom) }

func TestLimit(t *testing.T) {
	for _, c := range []struct {
		name string
		u    Usage
		want int64
	}{
		// Recording 16 cameras: about 13 MiB live, 9 MiB of stacks and GC metadata.
		{"16 cameras", Usage{Live: 13 * mib, Roots: 1 * mib, GCPercent: 100, NonHeap: 9 * mib}, withHeadroom((28 + 9 + 24) * mib)},
		{"GOGC=50 allows less growth", Usage{Live: 100 * mib, GCPercent: 50, NonHeap: 10 * mib}, withHeadroom((150 + 10 + 24) * mib)},
		{"start-up: the floor", Usage{Live: 1 * mib, GCPercent: 100, NonHeap: 4 * mib}, Floor},
		{"huge: no overflow", Usage{Live: math.MaxUint64 / 2, GCPercent: 100}, math.MaxInt64},
	} {
		if got := Limit(c.u); got != c.want {
			t.Errorf("%s: Limit(%+v) = %d MiB, want %d MiB", c.name, c.u, got/mib, c.want/mib)
		}
	}
}

func TestManagedUnlessTheOperatorSetsTheRuntime(t *testing.T) {
	for _, v := range []string{"GOMEMLIMIT", "GOGC"} {
		t.Setenv(v, "") // restores the variable after the test
		os.Unsetenv(v)
	}
	if !Managed() {
		t.Error("Managed() = false with neither GOMEMLIMIT nor GOGC set, want true")
	}
	for _, c := range []struct {
		env, val string
		want     bool
	}{{"GOMEMLIMIT", "200MiB", false}, {"GOGC", "80", false}} {
		t.Run(c.env, func(t *testing.T) {
			t.Setenv(c.env, c.val)
			if got := Managed(); got != c.want {
				t.Errorf("with %s=%s: Managed() = %v, want %v", c.env, c.val, got, c.want)
			}
		})
	}
}

// The limit set follows the live heap both ways, never below what GOGC lets the heap
// grow to (a limit below the live data would make the collector run back to back), and
// is lifted when Run ends.
func TestRunFollowsTheLiveHeap(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { Run(ctx); close(done) }()

		const held = 64 * mib
		live := make([]byte, held)
		for i := range live { // touched, as video is
			live[i] = byte(i)
		}
		runtime.GC() // the live-heap figure is the last collection's
		time.Sleep(Interval)
		synctest.Wait()
		gogc := Read().GCPercent
		if gogc != GCPercent {
			t.Errorf("GOGC while Run runs = %d, want %d", gogc, GCPercent)
		}
		withData := debug.SetMemoryLimit(-1)
		if withData == math.MaxInt64 {
			t.Fatal("Run set no limit")
		}
		if min := int64(float64(held) * (1 + float64(gogc)/100)); withData < min {
			t.Errorf("limit with %d MiB live = %d MiB, below the %d MiB GOGC=%d allows", held/mib, withData/mib, min/mib, gogc)
		}
		runtime.KeepAlive(live)

		live = nil
		// Freed pages count as the runtime's own memory until they go back to the
		// system, which the scavenger does in the background; here at once, so that
		// the limit's fall is the live heap's, not the scavenger's pace.
		debug.FreeOSMemory()
		time.Sleep(Interval)
		synctest.Wait()
		if after := debug.SetMemoryLimit(-1); after >= withData-held {
			t.Errorf("limit after the %d MiB were freed = %d MiB, want below %d MiB", held/mib, after/mib, (withData-held)/mib)
		}

		cancel()
		<-done
		if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
			t.Errorf("limit after Run ended = %d, want none (MaxInt64)", l)
		}
		if g := debug.SetGCPercent(-1); g != 100 {
			t.Errorf("GOGC after Run ended = %d, want the runtime's 100 back", g)
		}
		debug.SetGCPercent(100)
	})
}

// With a large site's live heap, the limit is not the tighter goal: the heap goal the
// runtime works to is the one GOGC gives alone, so the collector does no more work.
func TestLimitLeavesTheGOGCGoal(t *testing.T) {
	defer debug.SetMemoryLimit(math.MaxInt64)
	live := make([]byte, 512*mib)
	// goals collects and returns the heap goal the runtime set and the one GOGC alone
	// gives for what that same collection measured (the pacer's formula: marked + (marked
	// + stacks + globals) × GOGC/100). Two collections measure slightly different live
	// heaps, so the goals of two cycles cannot be compared with each other.
	goals := func() (goal, byGOGC uint64) {
		runtime.GC()
		s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}, {Name: "/gc/heap/live:bytes"},
			{Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}, {Name: "/gc/gogc:percent"}}
		metrics.Read(s)
		marked := s[1].Value.Uint64()
		return s[0].Value.Uint64(), marked + (marked+s[2].Value.Uint64()+s[3].Value.Uint64())*s[4].Value.Uint64()/100
	}
	debug.SetMemoryLimit(math.MaxInt64)
	if goal, byGOGC := goals(); goal != byGOGC {
		t.Fatalf("without a limit the heap goal is %d bytes, the formula gives %d: the test no longer knows the runtime's pacer", goal, byGOGC)
	}
	debug.SetMemoryLimit(Limit(Read()))
	withLimit, byGOGC := goals()
	runtime.KeepAlive(live)
	t.Logf("heap goal with 512 MiB live: %d MiB by GOGC, %d MiB under the limit", byGOGC/mib, withLimit/mib)
	if withLimit < byGOGC {
		t.Errorf("heap goal under the limit %d bytes < %d bytes by GOGC alone: the limit makes the collector work harder", withLimit, byGOGC)
	}
}
