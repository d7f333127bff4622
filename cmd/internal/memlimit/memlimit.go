// Package memlimit keeps the Go runtime's soft memory limit just above what the process
// needs now, so that townwatch serve's resident memory follows its working set.
//
// Left alone, the Go runtime lets the heap grow to twice the live data between
// collections (GOGC=100) and returns freed pages to the system only slowly: recording 16
// cameras, the heap held about 13 MB of live data (video the Streams and recorders still
// hold) but 50-60 MB stayed resident, and short bursts (cameras connecting together, keyframes
// of many cameras at once) set the peak well above that. A soft memory limit makes the
// runtime collect before a burst passes it and hand idle pages back promptly. A fixed
// limit cannot be right for every site, though: one below a large site's live data makes
// the collector run back to back (up to half the CPU, which the recorders need). So the
// limit is recomputed every second from the live heap the last collection measured: the
// heap goal GOGC already allows ((live + scanned roots) × (1 + GOGC/100)), plus the
// runtime's memory outside the heap's objects, plus a fixed slack, over the few per cent
// the runtime keeps back from a limit. At the moment it is set, it asks the collector for
// no more work than GOGC does, only for the freed memory back sooner
// (TestLimitLeavesTheGOGCGoal). Between two updates it lags: live data that grows by more
// than the slack within a second makes the collector work harder until the next one.
//
// The heap's growth between collections is set lower too: GOGC 50 instead of the
// runtime's 100 (GCPercent), trading some of townwatch's CPU lead for memory.
//
// An operator's own setting wins: with GOMEMLIMIT or GOGC in the environment the runtime
// is left as the operator configured it (docs/architecture.md).
package memlimit

import (
	"context"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

const (
	// Slack is added to the heap goal and the runtime's own memory: room for what is
	// allocated between two updates and for heap fragmentation. Measured recording 16
	// cameras (docs/architecture.md): 24 MiB cut the peak resident memory at no CPU
	// cost; 8 MiB cut it further but took about half as much CPU again (collections and
	// the page faults of memory returned and taken back).
	Slack = 24 << 20
	// Floor is the lowest limit set: while little is live (start-up), a limit that small
	// would make the collector run for every few megabytes allocated.
	Floor = 32 << 20
	// Interval is how often the limit follows the live heap.
	Interval = time.Second
	// GCPercent is the GOGC townwatch serve runs with: the heap may grow by half the
	// live data between collections instead of all of it. Recording 16 cameras
	// (cmd/recbench, the default's builds alternated, docs/architecture.md) the peak
	// resident memory fell from 78-81 to 60-61 MiB and the CPU rose from 10.1-12.2 to
	// 12.4-12.8 CPU-s per stream-hour: the collector runs more often, but its work is
	// small (the live heap is mostly video, byte slices it does not scan), while memory
	// is what a small municipal box, shared with other services, runs out of first.
	GCPercent = 50
)

// Usage is what the limit is computed from, in bytes (runtime/metrics).
type Usage struct {
	Live      uint64 // live heap measured by the last collection (/gc/heap/live:bytes)
	Roots     uint64 // stacks and globals the collector scans (/gc/scan/stack, /gc/scan/globals)
	GCPercent uint64 // GOGC (/gc/gogc:percent)
	// NonHeap is the mapped memory outside the heap's objects: stacks, GC metadata,
	// buffers, and the heap's unused and free spans (total - released - objects), which
	// the runtime counts against a memory limit before its heap goal.
	NonHeap uint64
}

// limitHeadroom is the share of a memory limit the runtime leaves for its heap goal: it
// keeps a few per cent back (3 % in Go 1.26's pacer). 0.95 stays clear of it.
const limitHeadroom = 0.95

// Limit is the soft memory limit for u: the heap goal GOGC allows, (Live + Roots) × (1 +
// GOGC/100), plus NonHeap and Slack, over limitHeadroom; at least Floor. So the limit is
// never the tighter of the two goals, and the collector does no more work than GOGC asks.
func Limit(u Usage) int64 {
	goal := float64(u.Live+u.Roots) * (1 + float64(u.GCPercent)/100)
	l := (goal + float64(u.NonHeap) + Slack) / limitHeadroom
	if l > math.MaxInt64/2 {
		return math.MaxInt64
	}
	return max(int64(l), Floor)
}

var sampleNames = []string{
	"/gc/heap/live:bytes",
	"/gc/gogc:percent",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/objects:bytes",
	"/gc/scan/stack:bytes",
	"/gc/scan/globals:bytes",
}

// Read reads the current Usage from the runtime.
func Read() Usage {
	s := make([]metrics.Sample, len(sampleNames))
	for i, n := range sampleNames {
		s[i].Name = n
	}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	heapInUse := v(3) + v(4)
	var nonHeap uint64
	if total := v(2); total > heapInUse {
		nonHeap = total - heapInUse
	}
	return Usage{Live: v(0), Roots: v(5) + v(6), GCPercent: v(1), NonHeap: nonHeap}
}

// Managed reports whether townwatch sets the limit: not when the operator set GOMEMLIMIT
// or GOGC in the environment.
func Managed() bool {
	_, limit := os.LookupEnv("GOMEMLIMIT")
	_, gogc := os.LookupEnv("GOGC")
	return !limit && !gogc
}

// Run sets GOGC to GCPercent and the limit at once, then the limit every Interval until
// ctx is done, when it restores GOGC and lifts the limit. The caller checks Managed first.
func Run(ctx context.Context) {
	defer debug.SetGCPercent(debug.SetGCPercent(GCPercent))
	t := time.NewTicker(Interval)
	defer t.Stop()
	defer debug.SetMemoryLimit(math.MaxInt64)
	for {
		debug.SetMemoryLimit(Limit(Read()))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
