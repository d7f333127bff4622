package ingest

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// readerCycles is how many Readers TestReaderCyclesLeaveNothingBehind attaches and closes.
const readerCycles = 100

// A hundred consumers attaching to a live camera and leaving again (a dispatcher opening
// and closing a camera on the wall) leave nothing behind: no goroutine, no Reader in the
// Stream's list (each would be offered every unit for the rest of the session), and no
// Go heap that grows with the cycles. Only readerCycles bounds the test, not time.
func TestReaderCyclesLeaveNothingBehind(t *testing.T) {
	hub := NewHub()
	f := newTestFeed()
	st := hub.Start("cam", StreamMain, []*Track{f.video, f.audio})
	defer st.End(nil)
	var mu sync.Mutex // f.seq is not safe for concurrent use
	publish := func() {
		mu.Lock()
		u := f.next(10)
		mu.Unlock()
		// A payload of its own, 16 KiB, as a camera's frames are: what a leaked Reader's
		// queue would pin shows in the heap.
		u.Payload = append(u.Payload, make([]byte, 16<<10))
		st.Publish(u)
	}
	for range 10 { // a whole GOP in the cache, as on a camera that has been up a while
		publish()
	}
	// The recorder's Reader stays attached throughout, as on a real camera.
	recorder := st.NewReader("recorder", 16)
	defer recorder.Close()

	cycle := func(i int) {
		t.Helper()
		var r *Reader
		if i%2 == 0 {
			r = st.NewReaderFromLatestKeyframe("viewer", 64)
		} else {
			r = st.NewReader("motion", 64)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// Each Reader really receives units before it leaves, more queued behind them.
		for range 3 {
			if _, _, err := r.Read(ctx); err != nil {
				t.Fatalf("cycle %d (%s): read: %v", i, r.Consumer, err)
			}
		}
		r.Close()
	}
	// The heap is measured while nothing publishes, so that the units in flight do not
	// blur it: the camera sends only during the cycles.
	ignore := goleak.IgnoreCurrent()
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	g0 := runtime.NumGoroutine()
	stop := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the camera keeps sending while readers come and go
		defer wg.Done()
		publishUntil(stop, publish)
	}()
	go func() { // the recorder keeps up, so its queue never fills and drops nothing
		defer wg.Done()
		for {
			if _, _, err := recorder.Read(ctx); err != nil {
				return
			}
		}
	}()
	cycle(0) // the first one creates what lives on (the Hub's drop counters)
	want := st.Readers()
	for i := 1; i <= readerCycles; i++ {
		cycle(i)
	}
	close(stop)
	cancel()
	wg.Wait()
	if got := st.Readers(); got != want {
		t.Errorf("after %d cycles the stream has %d readers, want %d", readerCycles, got, want)
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	g1 := runtime.NumGoroutine()
	if err := goleak.Find(ignore); err != nil {
		t.Errorf("goroutines left after %d reader cycles: %v", readerCycles, err)
	}
	growth := int64(m1.HeapAlloc) - int64(m0.HeapAlloc)
	t.Logf("%d reader cycles: goroutines %d → %d, heap %d KiB → %d KiB (%+d KiB)", readerCycles,
		g0, g1, m0.HeapAlloc>>10, m1.HeapAlloc>>10, growth>>10)
	// A leaked Reader keeps its queue of up to 64 units of 16 KiB (1 MiB) for as long as
	// the Stream lives; a hundred of them would be 100 MiB. The GOP cache and the queues
	// left at the second measurement (the recorder's, at most 16 units) are at most a few
	// hundred KiB, hence 2 MiB: what two leaked queues would exceed.
	if growth > 2<<20 {
		t.Errorf("heap grew by %d KiB over %d reader cycles", growth>>10, readerCycles)
	}
}
