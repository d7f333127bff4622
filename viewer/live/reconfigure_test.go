package live

import (
	"testing"
	"time"
)

// A camera removed by a reload ends its viewers' sessions and answers new offers with
// 404; put back, it serves again with its counters where they were.
func TestRemovedCameraEndsItsSessionsAndIsUnknown(t *testing.T) {
	t.Parallel()
	r := newRig(t, Options{})
	v, err := dialWHEP(t, r.http.URL, "cam", viewerOpts{})
	if err != nil {
		t.Fatal(err)
	}
	v.nextFrame(t, 10*time.Second)
	before := r.m.Stats("cam")

	r.m.RemoveCamera("cam")
	waitFor(t, 10*time.Second, "the removed camera's session to end", func() bool { return len(r.m.Sessions("cam")) == 0 })
	if st := r.m.Stats("cam"); st != (CameraStats{}) {
		t.Errorf("stats of a removed camera: %+v, want none", st)
	}
	if _, err := dialWHEP(t, r.http.URL, "cam", viewerOpts{}); err == nil {
		t.Fatal("an offer for the removed camera was answered")
	} else {
		t.Logf("offer after removal: %v", err)
	}
	status, _, _ := post(t, r.http.URL+"/api/cameras/cam/whep", "application/sdp", "v=0\r\n")
	if status != 404 {
		t.Errorf("offer for the removed camera: %d, want 404", status)
	}

	if err := r.m.PutCamera(Camera{ID: "cam"}); err != nil {
		t.Fatal(err)
	}
	v2, err := dialWHEP(t, r.http.URL, "cam", viewerOpts{})
	if err != nil {
		t.Fatalf("offer after the camera came back: %v", err)
	}
	if f := v2.nextFrame(t, 10*time.Second); !f.isKey() {
		t.Error("first frame after the camera came back is not a keyframe")
	}
	if st := r.m.Stats("cam"); st.SessionsTotal != 1 || st.Sessions != 1 {
		t.Errorf("stats after the camera came back: %+v (before removal %+v); a removed camera starts again from zero", st, before)
	}
}

// Updating a camera in place keeps its open sessions and its counters.
func TestUpdatedCameraKeepsItsSessions(t *testing.T) {
	t.Parallel()
	r := newRig(t, Options{})
	v, err := dialWHEP(t, r.http.URL, "cam", viewerOpts{})
	if err != nil {
		t.Fatal(err)
	}
	v.nextFrame(t, 10*time.Second)
	if err := r.m.PutCamera(Camera{ID: "cam", Audio: true}); err != nil {
		t.Fatal(err)
	}
	for range 25 { // a second of video after the update
		if f := v.nextFrame(t, 5*time.Second); f.broken {
			t.Error("a frame after the update arrived broken")
		}
	}
	if st := r.m.Stats("cam"); st.Sessions != 1 || st.SessionsTotal != 1 || st.SentBytes == 0 {
		t.Errorf("stats after the update: %+v, want the one session going on", st)
	}
	if err := r.m.PutCamera(Camera{}); err == nil {
		t.Error("PutCamera accepted a camera without id")
	}
}
