package live

import (
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/viewer/live/whepclient"
)

// TestNoAnswerBeforeAdmit: the access layer's Admit (which commits the access log's row)
// runs while the answer is being made, but the answer, without which a viewer cannot
// connect and so no media can flow, is sent only once Admit has accepted. A session Admit
// refuses gets 503, is sent nothing and gets no OnEnd: it never existed for the viewer.
func TestNoAnswerBeforeAdmit(t *testing.T) {
	t.Parallel()
	admitting := make(chan SessionInfo)
	verdicts := make(chan error)
	// testEnded lets a held Admit go when the test ends early (a failed check), so the
	// server's handler and the rig's cleanup are not left waiting on it until go test's
	// timeout.
	testEnded := make(chan struct{})
	var ends atomic.Int32
	r := newRig(t, Options{Hooks: Hooks{
		Admit: func(_ *http.Request, s SessionInfo) error {
			select {
			case admitting <- s:
			case <-testEnded:
				return errors.New("test ended")
			}
			select {
			case err := <-verdicts:
				return err
			case <-testEnded:
				return errors.New("test ended")
			}
		},
		OnEnd: func(SessionInfo, time.Time, string) { ends.Add(1) },
	}})
	t.Cleanup(func() { close(testEnded) }) // registered after newRig's, so it runs first
	type dialed struct {
		v   *viewer
		err error
	}
	dial := func() <-chan dialed {
		done := make(chan dialed, 1)
		go func() {
			v, err := dialWHEP(t, r.http.URL, "cam", viewerOpts{})
			done <- dialed{v, err}
		}()
		return done
	}
	admitted := func() SessionInfo {
		t.Helper()
		select {
		case s := <-admitting:
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("Admit was not called within 10 s of the offer")
			return SessionInfo{}
		}
	}

	// Refused: the access log cannot be written.
	done := dial()
	admitted()
	verdicts <- errors.New("the access log cannot be written")
	d := <-done
	var refused *whepclient.Error
	if !errors.As(d.err, &refused) || refused.Status != http.StatusServiceUnavailable {
		t.Fatalf("offer Admit refused: %v, want HTTP 503", d.err)
	}
	if st := r.m.Stats("cam"); st.Sessions != 0 || st.SentBytes != 0 {
		t.Errorf("after a refused offer: %+v, want no session and nothing sent", st)
	}
	if n := ends.Load(); n != 0 {
		t.Errorf("OnEnd called %d times for a session Admit refused", n)
	}

	// Accepted, but only after the answer is ready: the session's track is bound (pion
	// binds it when it sets the answer as its local description) while Admit still holds.
	done = dial()
	admitted()
	waitFor(t, 10*time.Second, "the answer to be made while Admit holds", func() bool {
		r.m.mu.Lock()
		f := r.m.feeds[streamKey{"cam", ingest.StreamMain}]
		r.m.mu.Unlock()
		return f != nil && f.video.viewers() == 1
	})
	// Its host candidates follow within milliseconds; a server that did not wait for
	// Admit would have answered by now.
	select {
	case d := <-done:
		t.Fatalf("the offer was answered (err %v) before Admit returned", d.err)
	case <-time.After(300 * time.Millisecond):
	}
	verdicts <- nil
	d = <-done
	if d.err != nil {
		t.Fatalf("offer Admit accepted: %v", d.err)
	}
	if f := d.v.nextFrame(t, 10*time.Second); !f.isKey() {
		t.Error("first frame after Admit accepted is not a keyframe")
	}
	if code := d.v.hangUp(t, r.http.URL); code != http.StatusNoContent {
		t.Errorf("DELETE answered %d, want 204", code)
	}
	if n := ends.Load(); n != 1 {
		t.Errorf("OnEnd called %d times for one session that ended, want 1", n)
	}
}
