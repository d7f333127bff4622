package live

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest"
)

// TestOfferRacingACodecChangeIsNotLeftOnTheDyingFeed: an offer checked against the
// camera's old Stream that is admitted after the feed has ended its sessions (the camera
// came back with other codecs) must not join that feed: it never publishes again, so the
// viewer would sit connected on a black picture, holding a slot, until it hangs up.
func TestOfferRacingACodecChangeIsNotLeftOnTheDyingFeed(t *testing.T) {
	t.Parallel()
	hub := ingest.NewHub()
	old := hub.Start("cam", ingest.StreamMain, []*ingest.Track{{Kind: ingest.KindVideo, Codec: ingest.CodecH264, ClockRate: 90000}})
	m, err := New(hub, []Camera{{ID: "cam"}}, Options{ListenHost: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- m.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	<-m.Ready()

	key := streamKey{"cam", ingest.StreamMain}
	first := newSession(m, key, "")
	if _, _, err := m.admit(first, old); err != nil {
		t.Fatalf("first viewer refused: %v", err)
	}
	defer first.abort("test over")

	// The camera reconnects with H.265: the feed ends its sessions.
	old.End(errors.New("camera went away"))
	hub.Start("cam", ingest.StreamMain, []*ingest.Track{{Kind: ingest.KindVideo, Codec: ingest.CodecH265, ClockRate: 90000}})
	select {
	case <-first.end:
	case <-time.After(30 * time.Second):
		t.Fatal("the feed did not end its session after the codec change")
	}

	// An offer that read the old Stream before the change is admitted only now.
	late := newSession(m, key, "")
	_, f, err := m.admit(late, old)
	if err == nil {
		defer late.abort("test over")
		if f == first.feed {
			t.Fatal("a late offer joined the feed that had already ended its sessions; it would never get a frame")
		}
	}
}
