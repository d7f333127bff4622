package ingest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// testFeed makes units of a synthetic video track (a keyframe every gop units, each unit
// carrying its sequence number in Payload[0]) and of an audio track.
type testFeed struct {
	video *Track
	audio *Track
	seq   int
}

func newTestFeed() *testFeed {
	return &testFeed{
		video: &Track{Index: 0, Kind: KindVideo, Codec: CodecH264, ClockRate: 90000},
		audio: &Track{Index: 1, Kind: KindAudio, Codec: CodecOpus, ClockRate: 48000},
	}
}

func (f *testFeed) next(gop int) *Unit {
	u := &Unit{
		Track:   f.video,
		PTS:     time.Duration(f.seq) * 40 * time.Millisecond,
		Key:     f.seq%gop == 0,
		Payload: [][]byte{{byte(f.seq >> 8), byte(f.seq)}},
	}
	u.DTS = u.PTS
	f.seq++
	return u
}

func unitSeq(u *Unit) int { return int(u.Payload[0][0])<<8 | int(u.Payload[0][1]) }

// publishUntil calls publish over and over, as fast as it can, until stop is closed.
func publishUntil(stop <-chan struct{}, publish func()) {
	for {
		select {
		case <-stop:
			return
		default:
			publish()
		}
	}
}

func readN(t *testing.T, r *Reader, n int) ([]*Unit, []bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var us []*Unit
	var gaps []bool
	for range n {
		u, gap, err := r.Read(ctx)
		if err != nil {
			t.Fatalf("read %d of %d: %v", len(us)+1, n, err)
		}
		us = append(us, u)
		gaps = append(gaps, gap)
	}
	return us, gaps
}

func TestEveryReaderGetsTheSameUnitsInOrder(t *testing.T) {
	hub := NewHub()
	f := newTestFeed()
	st := hub.Start("cam", StreamMain, []*Track{f.video})
	a := st.NewReader("recorder", 100)
	b := st.NewReader("motion", 100)
	defer a.Close()
	defer b.Close()
	var sent []*Unit
	for range 50 {
		u := f.next(10)
		sent = append(sent, u)
		st.Publish(u)
	}
	for _, r := range []*Reader{a, b} {
		got, gaps := readN(t, r, 50)
		for i := range got {
			if got[i] != sent[i] {
				t.Fatalf("%s: unit %d is not the published pointer (seq %d, want %d)", r.Consumer, i, unitSeq(got[i]), unitSeq(sent[i]))
			}
			if gaps[i] {
				t.Fatalf("%s: unexpected gap at unit %d", r.Consumer, i)
			}
		}
		if r.Dropped() != 0 {
			t.Fatalf("%s dropped %d units", r.Consumer, r.Dropped())
		}
	}
}

func TestNewReaderStartsAtNextKeyframe(t *testing.T) {
	hub := NewHub()
	f := newTestFeed()
	st := hub.Start("cam", StreamMain, []*Track{f.video})
	for range 3 { // 0 is a keyframe, 1 and 2 are not
		st.Publish(f.next(5))
	}
	r := st.NewReader("viewer", 10)
	defer r.Close()
	for range 4 { // 3, 4 are not keyframes; 5 is
		st.Publish(f.next(5))
	}
	got, gaps := readN(t, r, 2)
	if !got[0].Key || unitSeq(got[0]) != 5 || unitSeq(got[1]) != 6 {
		t.Fatalf("reader started at seq %d (key=%v), want keyframe 5 then 6", unitSeq(got[0]), got[0].Key)
	}
	if gaps[0] || r.Dropped() != 0 {
		t.Fatalf("joining mid-GOP must not count as a drop: gap=%v dropped=%d", gaps[0], r.Dropped())
	}
}

// A consumer that must start at once gets the latest keyframe and everything published
// since (audio included), then live units, each exactly once.
func TestReaderFromLatestKeyframeStartsAtOnce(t *testing.T) {
	hub := NewHub()
	f := newTestFeed()
	st := hub.Start("cam", StreamMain, []*Track{f.video, f.audio})
	var sent []*Unit
	publish := func(u *Unit) {
		sent = append(sent, u)
		st.Publish(u)
	}
	for range 7 { // keyframes 0 and 5; 5, 6 and the audio unit after 6 are the latest GOP
		publish(f.next(5))
	}
	publish(&Unit{Track: f.audio, Key: true, Payload: [][]byte{{0xff, 0xff}}})
	r := st.NewReaderFromLatestKeyframe("live", 10)
	defer r.Close()
	publish(f.next(5)) // 7: live
	got, gaps := readN(t, r, 4)
	for i, want := range sent[5:] {
		if got[i] != want || gaps[i] {
			t.Fatalf("unit %d = %p (gap %v), want the published %p: the cached GOP then live, nothing missed or repeated", i, got[i], gaps[i], want)
		}
	}
	if u, _, ok := r.TryRead(); ok {
		t.Fatalf("extra unit %v after the live one", u)
	}

	// A GOP that does not fit the queue is not delivered in part: the reader starts at the
	// next keyframe, as NewReader does.
	small := st.NewReaderFromLatestKeyframe("small", 2)
	defer small.Close()
	if u, _, ok := small.TryRead(); ok {
		t.Fatalf("a 2-unit queue got unit %d of a 4-unit GOP", unitSeq(u))
	}
}

// The cache is bounded: a GOP longer than maxGOPUnits is dropped, and a reader asking for
// it starts at the next keyframe instead.
func TestGOPCacheIsBounded(t *testing.T) {
	hub := NewHub()
	f := newTestFeed()
	st := hub.Start("cam", StreamMain, []*Track{f.video})
	for range maxGOPUnits + 1 {
		st.Publish(f.next(maxGOPUnits + 10))
	}
	r := st.NewReaderFromLatestKeyframe("live", 2*maxGOPUnits)
	defer r.Close()
	if u, _, ok := r.TryRead(); ok {
		t.Fatalf("got unit %d from an over-long GOP; want no cache", unitSeq(u))
	}
	for range 10 {
		st.Publish(f.next(maxGOPUnits + 10))
	}
	if u, _, ok := r.TryRead(); !ok || !u.Key {
		t.Fatalf("after the next keyframe the reader got %v, %v; want that keyframe", u, ok)
	}
}

func TestSlowReaderDropsAloneAndResumesAtKeyframe(t *testing.T) {
	hub := NewHub()
	f := newTestFeed()
	st := hub.Start("cam", StreamMain, []*Track{f.video})
	fast := st.NewReader("recorder", 1000)
	slow := st.NewReader("viewer", 4)
	defer fast.Close()
	defer slow.Close()

	// 30 units with a keyframe every 10; the slow reader reads nothing meanwhile, so its
	// queue (4) overflows at unit 4 and it must skip to keyframe 10, then overflow again.
	for range 30 {
		st.Publish(f.next(10))
	}
	got, _ := readN(t, fast, 30)
	for i, u := range got {
		if unitSeq(u) != i {
			t.Fatalf("fast reader got seq %d at %d: the slow one slowed it", unitSeq(u), i)
		}
	}
	if fast.Dropped() != 0 {
		t.Fatalf("fast reader dropped %d", fast.Dropped())
	}
	us, gaps := readN(t, slow, 4)
	for i, u := range us {
		if unitSeq(u) != i || gaps[i] {
			t.Fatalf("slow reader unit %d: seq %d gap %v, want the first four units without gap", i, unitSeq(u), gaps[i])
		}
	}
	if slow.Dropped() != 26 {
		t.Fatalf("slow reader dropped %d, want 26 (units 4..29)", slow.Dropped())
	}
	// Now with room in its queue it resumes at the next keyframe, flagged as a gap.
	for range 15 {
		st.Publish(f.next(10)) // seq 30..44: keyframe at 30 and 40
	}
	us, gaps = readN(t, slow, 1)
	if unitSeq(us[0]) != 30 || !us[0].Key || !gaps[0] {
		t.Fatalf("slow reader resumed at seq %d key=%v gap=%v, want keyframe 30 with gap", unitSeq(us[0]), us[0].Key, gaps[0])
	}
	if got := hub.DropCounts(); len(got) != 2 || got[1] != (DropCount{Camera: "cam", Consumer: "viewer", Units: slow.Dropped()}) {
		t.Fatalf("DropCounts = %+v", got)
	}
}

func TestAudioWaitsForVideoKeyframeWhenResyncing(t *testing.T) {
	hub := NewHub()
	f := newTestFeed()
	st := hub.Start("cam", StreamMain, []*Track{f.video, f.audio})
	r := st.NewReader("recorder", 10)
	defer r.Close()
	st.Publish(&Unit{Track: f.audio, Key: true, Payload: [][]byte{{0xff, 0xff}}})
	st.Publish(f.next(5)) // keyframe 0
	st.Publish(&Unit{Track: f.audio, Key: true, Payload: [][]byte{{0xff, 0xfe}}})
	got, _ := readN(t, r, 2)
	if got[0].Track != f.video || got[1].Track != f.audio {
		t.Fatalf("reader must start at the video keyframe, got %v then %v", got[0].Track.Kind, got[1].Track.Kind)
	}
}

func TestAudioOnlyStreamStartsAtOnce(t *testing.T) {
	hub := NewHub()
	f := newTestFeed()
	st := hub.Start("cam", StreamMain, []*Track{f.audio})
	r := st.NewReader("recorder", 10)
	defer r.Close()
	u := &Unit{Track: f.audio, Key: true, Payload: [][]byte{{1}}}
	st.Publish(u)
	got, _ := readN(t, r, 1)
	if got[0] != u {
		t.Fatal("audio-only stream: first unit not delivered")
	}
}

func TestEndDrainsThenReportsStreamEnded(t *testing.T) {
	hub := NewHub()
	f := newTestFeed()
	st := hub.Start("cam", StreamMain, []*Track{f.video})
	r := st.NewReader("recorder", 10)
	defer r.Close()
	for range 3 {
		st.Publish(f.next(10))
	}
	cause := errors.New("camera went away")
	st.End(cause)
	st.Publish(f.next(10)) // after End: ignored
	readN(t, r, 3)
	_, _, err := r.Read(context.Background())
	if !errors.Is(err, ErrStreamEnded) || !errors.Is(err, cause) {
		t.Fatalf("after drain: err = %v, want ErrStreamEnded wrapping the cause", err)
	}
	if hub.Current("cam", StreamMain) != nil {
		t.Fatal("ended stream is still current")
	}
	late := st.NewReader("motion", 1)
	if _, _, err := late.Read(context.Background()); !errors.Is(err, ErrStreamEnded) {
		t.Fatalf("reader on an ended stream: err = %v", err)
	}
	late.Close()
}

func TestHubWaitOutlivesReconnects(t *testing.T) {
	hub := NewHub()
	f := newTestFeed()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	got := make(chan *Stream, 2)
	go func() {
		for range 2 {
			st, err := hub.Wait(ctx, "cam", StreamMain)
			if err != nil {
				close(got)
				return
			}
			got <- st
			r := st.NewReader("recorder", 10)
			for {
				if _, _, err := r.Read(ctx); err != nil {
					break
				}
			}
			r.Close()
		}
	}()
	first := hub.Start("cam", StreamMain, []*Track{f.video})
	if s := <-got; s != first {
		t.Fatal("Wait did not return the started stream")
	}
	first.End(nil)
	second := hub.Start("cam", StreamMain, []*Track{f.video})
	if s := <-got; s != second {
		t.Fatal("Wait after reconnect did not return the new stream")
	}
	second.End(nil)

	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()
	if _, err := hub.Wait(short, "other", StreamMain); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait without a stream: err = %v, want deadline exceeded", err)
	}
}

func TestReaderCloseWhilePublishing(t *testing.T) {
	hub := NewHub()
	f := newTestFeed()
	st := hub.Start("cam", StreamMain, []*Track{f.video, f.audio})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(2)
	go func() { // video publisher
		defer wg.Done()
		publishUntil(stop, func() { st.Publish(f.next(5)) })
	}()
	go func() { // audio publisher, as gortsplib's UDP reader would
		defer wg.Done()
		publishUntil(stop, func() { st.Publish(&Unit{Track: f.audio, Key: true, Payload: [][]byte{{0}}}) })
	}()
	for range 200 {
		r := st.NewReader("viewer", 2)
		r.Read(context.Background())
		r.Close()
		if _, _, err := r.Read(context.Background()); !errors.Is(err, ErrReaderClosed) {
			t.Fatalf("read after close: %v", err)
		}
	}
	close(stop)
	wg.Wait()
	st.End(nil)
}

func BenchmarkPublishToThreeReaders(b *testing.B) {
	hub := NewHub()
	f := newTestFeed()
	st := hub.Start("cam", StreamMain, []*Track{f.video})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for _, name := range []string{"recorder", "motion", "viewer"} {
		r := st.NewReader(name, 256)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, _, err := r.Read(ctx); err != nil {
					return
				}
			}
		}()
	}
	units := make([]*Unit, 250)
	for i := range units {
		units[i] = f.next(50)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st.Publish(units[i%len(units)])
	}
	b.StopTimer()
	st.End(nil)
	wg.Wait()
}

// TryRead lets a stopping consumer drain what it already received without waiting.
func TestTryReadDrainsWithoutWaiting(t *testing.T) {
	hub := NewHub()
	f := newTestFeed()
	st := hub.Start("cam", StreamMain, []*Track{f.video})
	r := st.NewReader("recorder", 10)
	defer r.Close()
	for range 3 {
		st.Publish(f.next(10))
	}
	for want := range 3 {
		u, _, ok := r.TryRead()
		if !ok || unitSeq(u) != want {
			t.Fatalf("TryRead %d: ok=%v", want, ok)
		}
	}
	if _, _, ok := r.TryRead(); ok {
		t.Fatal("TryRead on an empty queue returned a unit")
	}
	st.End(nil)
	if _, _, ok := r.TryRead(); ok {
		t.Fatal("TryRead on an ended stream returned a unit")
	}
}

// TestReaderQueueIsBoundedInBytes: a camera sending huge frames fills a deep queue's bytes
// long before its units (2048 units of 4 MiB would be 8 GiB). A Reader takes at most
// maxReaderBytes; past that it drops and resynchronises at the next keyframe exactly as
// when its queue is full of units, counted the same way, and other Readers are not
// affected.
func TestReaderQueueIsBoundedInBytes(t *testing.T) {
	hub := NewHub()
	f := newTestFeed()
	st := hub.Start("cam", StreamMain, []*Track{f.video})
	r := st.NewReader("recorder", 2048)
	defer r.Close()
	const frameSize = 4 << 20
	big := make([]byte, frameSize)           // shared by every unit: the test itself stays small
	fits := maxReaderBytes / (frameSize + 2) // each unit also carries its 2-byte sequence number
	const gop = 100
	publish := func(n int) {
		for range n {
			u := f.next(gop)
			u.Payload = append(u.Payload, big)
			st.Publish(u)
			if q := r.queuedBytes.Load(); q > maxReaderBytes {
				t.Fatalf("reader holds %d bytes; the cap is %d", q, maxReaderBytes)
			}
		}
	}
	// One group of pictures while the reader reads nothing: the units up to the cap are
	// queued, the rest of the group dropped.
	publish(gop)
	if r.Dropped() != uint64(gop-fits) {
		t.Fatalf("reader dropped %d units, want the %d after the first %d", r.Dropped(), gop-fits, fits)
	}
	for i := range fits {
		u, gap, ok := r.TryRead()
		if !ok || unitSeq(u) != i || gap {
			t.Fatalf("unit %d: ok %v gap %v; want the first %d units in order", i, ok, gap, fits)
		}
	}
	if _, _, ok := r.TryRead(); ok {
		t.Fatalf("more than %d units of %d bytes were queued", fits, frameSize)
	}
	// With room again it resumes at the next keyframe, flagged as a gap.
	publish(1)
	u, gap, ok := r.TryRead()
	if !ok || unitSeq(u) != gop || !u.Key || !gap {
		t.Fatalf("after the cap the reader got ok %v gap %v; want keyframe %d flagged as a gap", ok, gap, gop)
	}
	if got := hub.DropCounts(); len(got) != 1 || got[0].Units != r.Dropped() {
		t.Fatalf("DropCounts = %+v; the byte cap's drops must be counted like the queue's", got)
	}
	for {
		if _, _, ok := r.TryRead(); !ok {
			break
		}
	}
	if q := r.queuedBytes.Load(); q != 0 {
		t.Fatalf("an empty queue accounts for %d bytes", q)
	}
	// A unit larger than the cap on its own still gets through an empty queue: the cap
	// bounds a backlog, it must not make one frame undeliverable.
	huge := f.next(1)
	huge.Payload = append(huge.Payload, make([]byte, maxReaderBytes))
	st.Publish(huge)
	if u, _, ok := r.TryRead(); !ok || u != huge {
		t.Fatalf("a lone unit larger than the cap was not delivered")
	}
}
