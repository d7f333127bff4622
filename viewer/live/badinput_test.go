package live

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/viewer/live/whepclient"
)

// post sends body to path with the given Content-Type and returns status, body, headers.
func post(t *testing.T, url, contentType, body string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Post(url, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// TestBadRequestsGetAClearErrorAndChangeNothing: every refusal names what is wrong, and
// no refused request opens, counts or ends a session.
func TestBadRequestsGetAClearErrorAndChangeNothing(t *testing.T) {
	t.Parallel()
	r := newRig(t, Options{MaxViewers: 2, MaxViewersPerCamera: 1},
		Camera{ID: "cam"}, Camera{ID: "cam2"}, Camera{ID: "cam3"}, Camera{ID: "dark"}, Camera{ID: "hevc", HasSub: true})
	// Cameras whose streams are live in the Hub but send nothing: enough to admit viewers.
	r.hub.Start("cam2", ingest.StreamMain, []*ingest.Track{{Kind: ingest.KindVideo, Codec: ingest.CodecH264, ClockRate: 90000}})
	r.hub.Start("cam3", ingest.StreamMain, []*ingest.Track{{Kind: ingest.KindVideo, Codec: ingest.CodecH264, ClockRate: 90000}})
	r.hub.Start("hevc", ingest.StreamMain, []*ingest.Track{{Kind: ingest.KindVideo, Codec: ingest.CodecH265, ClockRate: 90000}})

	v, err := dialWHEP(t, r.http.URL, "cam", viewerOpts{})
	if err != nil {
		t.Fatal(err)
	}
	v.nextFrame(t, 10e9)
	before := r.m.Stats("cam")
	sessions := len(r.m.Sessions(""))
	base := r.http.URL + "/api/cameras/"
	offer := v.pc.LocalDescription().SDP // a well-formed offer to reuse

	for _, tc := range []struct {
		name, url, ctype, body string
		status                 int
		want                   string
	}{
		{"wrong content type", base + "cam/whep", "application/json", offer, 415, "Content-Type must be application/sdp"},
		{"malformed SDP", base + "cam/whep", "application/sdp", "this is not SDP", 400, "malformed SDP offer"},
		{"no video", base + "cam/whep", "application/sdp", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", 400, "no media sections"},
		{"unknown camera", base + "nope/whep", "application/sdp", offer, 404, `unknown camera "nope"`},
		{"sub without sub", base + "cam/whep?stream=sub", "application/sdp", offer, 404, "camera cam has no sub stream"},
		{"bad stream", base + "cam/whep?stream=hd", "application/sdp", offer, 400, `stream "hd": want main or sub`},
		{"offline camera", base + "dark/whep", "application/sdp", offer, 503, "camera dark stream main is offline"},
		{"too large", base + "cam/whep", "application/sdp", strings.Repeat("a", MaxOfferBytes+1), 413, "larger than"},
		{"per-camera cap", base + "cam/whep", "application/sdp", offer, 429, "webrtc.max_viewers_per_camera is 1"},
	} {
		status, body, hdr := post(t, tc.url, tc.ctype, tc.body)
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: got %d %q, want %d containing %q", tc.name, status, strings.TrimSpace(body), tc.status, tc.want)
		}
		if tc.status == 503 && hdr.Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", tc.name)
		}
	}

	// H.265 main stream, browser without H.265: the message names the sub stream.
	noHEVC := func(sdp string) string {
		var keep []string
		for _, l := range strings.Split(sdp, "\r\n") {
			if !strings.Contains(l, "H265") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\r\n")
	}
	_, err = dialWHEP(t, r.http.URL, "hevc", viewerOpts{query: "?stream=main", editOffer: noHEVC})
	var we *whepclient.Error
	if !errors.As(err, &we) || we.Status != http.StatusNotAcceptable ||
		!strings.Contains(we.Body, "camera hevc stream main is H.265 and this browser did not offer H.265; use the sub stream (?stream=sub)") {
		t.Errorf("H.265 to a browser without it: %v", err)
	}

	// The global cap: cam2 takes the second slot, cam3 finds none.
	if _, err := dialWHEP(t, r.http.URL, "cam2", viewerOpts{}); err != nil {
		t.Fatal(err)
	}
	_, err = dialWHEP(t, r.http.URL, "cam3", viewerOpts{})
	if !errors.As(err, &we) || we.Status != http.StatusTooManyRequests || !strings.Contains(we.Body, "webrtc.max_viewers is 2") {
		t.Errorf("over the global cap: %v", err)
	}

	// DELETE of a foreign session (cam's session through cam2's URL) or an unknown one.
	id := v.location[strings.LastIndex(v.location, "/")+1:]
	for _, path := range []string{"cam2/whep/" + id, "cam/whep/" + strings.Repeat("A", len(id)), "nope/whep/" + id} {
		req, _ := http.NewRequest(http.MethodDelete, base+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 404 || !strings.Contains(string(b), "no live session") {
			t.Errorf("DELETE %s: %d %q, want 404 no live session", path, resp.StatusCode, b)
		}
	}

	after := r.m.Stats("cam")
	if after.Sessions != before.Sessions || after.SessionsTotal != before.SessionsTotal {
		t.Errorf("refused requests changed cam's sessions: before %+v, after %+v", before, after)
	}
	if n := len(r.m.Sessions("")); n != sessions+1 { // + the cam2 viewer
		t.Errorf("%d sessions after the refusals, want %d", n, sessions+1)
	}
	// The viewer whose id was used in the foreign DELETEs still receives video.
	v.nextFrame(t, 5e9)
	if st := v.hangUp(t, r.http.URL); st != http.StatusNoContent {
		t.Errorf("DELETE of the viewer's own session: %d", st)
	}
	if st := r.m.Stats("cam"); st.Sessions != 0 {
		t.Errorf("after DELETE: %+v", st)
	}
}
