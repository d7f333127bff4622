package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// playlistAnswer is the part of /api/cameras/{id}/playlist a player reads.
type playlistAnswer struct {
	Segments []struct {
		ID        int64     `json:"id"`
		Start     time.Time `json:"start"`
		End       time.Time `json:"end"`
		Codecs    string    `json:"codecs"`
		Bytes     int64     `json:"bytes"`
		SHA256    string    `json:"sha256"`
		Open      bool      `json:"open"`
		URL       string    `json:"url"`
		Init      struct{ Offset, Length int64 }
		Fragments []struct {
			Offset, Length int64
			Time           time.Time
			Duration       float64
			Keyframe       *time.Time
		}
	}
}

// An officer plays recorded footage through the API the player uses, against the real
// binary recording a simulated camera: nothing before a reason is given; the playlist's
// byte ranges are the file's fragments; what the media route serves is the recorded file,
// and a range of it is one fragment; a still decodes; a deleted segment answers 410 with
// its deletion; a camera outside the grant looks like no camera at all.
func TestOfficerPlaysBackRecordedFootage(t *testing.T) {
	t.Parallel()
	dir, cfgPath, p := startOfficerServer(t, "most", "")
	storage := filepath.Join(dir, "data")
	time.Sleep(22 * time.Second) // two closed 10 s segments and an open one
	officer := loginClient(t, p.base, "straznik", accountPassword)
	now := time.Now().UTC()
	rangeQ := "from=" + url.QueryEscape(now.Add(-time.Minute).Format(time.RFC3339)) + "&to=" + url.QueryEscape(now.Add(time.Minute).Format(time.RFC3339))
	playlistURL := p.base + "api/cameras/namesti/playlist?" + rangeQ

	// Nothing before the reason; a blank reason is refused by name.
	if status, _, body := e2eDo(t, officer, "GET", playlistURL, "", ""); status != http.StatusPreconditionRequired || !strings.Contains(body, "reason") {
		t.Fatalf("playlist before a reason: %d %s, want 428 naming the reason", status, body)
	}
	if status, _, body := e2eDo(t, officer, "POST", p.base+"api/playback", "application/json", `{"cameras":["namesti"],"reason":"  "}`); status != http.StatusBadRequest || !strings.Contains(body, "reason") {
		t.Fatalf("blank reason: %d %s, want 400 naming reason", status, body)
	}
	// A camera outside the grant is no camera, for starting playback and for its playlist.
	_, _, unknown := e2eDo(t, officer, "POST", p.base+"api/playback", "application/json", `{"cameras":["zadna"],"reason":"x"}`)
	status, _, ungranted := e2eDo(t, officer, "POST", p.base+"api/playback", "application/json", `{"cameras":["most"],"reason":"x"}`)
	if status != http.StatusNotFound || strings.ReplaceAll(unknown, "zadna", "most") != ungranted {
		t.Errorf("ungranted camera: %d %s; unknown camera: %s — they must read the same", status, ungranted, unknown)
	}
	const reason = "oznámení o vloupání, Náměstí 12"
	if status, _, body := e2eDo(t, officer, "POST", p.base+"api/playback", "application/json", `{"cameras":["namesti"],"reason":"`+reason+`","case":"KRPP-77/2026"}`); status != http.StatusCreated {
		t.Fatalf("start playback: %d %s", status, body)
	}
	starts := auditRows(t, cfgPath, access.AuditPlaybackStart)
	if len(starts) != 1 || starts[0].Actor != "straznik" || starts[0].Camera != "namesti" || starts[0].Reason != reason || starts[0].Case != "KRPP-77/2026" {
		t.Fatalf("playback.start rows %+v, want one for straznik on namesti with the reason and case", starts)
	}

	// The timeline shows the recording.
	var timeline struct {
		Cameras []struct {
			ID       string
			Recorded []struct{ Start, End time.Time }
			Motion   []float64
		}
	}
	decodeJSON(t, httpGet(t, officer, p.base+"api/timeline?cameras=namesti&bucket=10s&"+rangeQ), &timeline)
	if len(timeline.Cameras) != 1 || len(timeline.Cameras[0].Recorded) == 0 || len(timeline.Cameras[0].Motion) != 12 {
		t.Fatalf("timeline %+v: want namesti with recorded spans and 12 buckets of motion", timeline)
	}
	if status, _, body := e2eDo(t, officer, "GET", p.base+"api/timeline?cameras=namesti,most&"+rangeQ, "", ""); status != http.StatusNotFound || !strings.Contains(body, `unknown camera \"most\"`) {
		t.Errorf("timeline with an ungranted camera: %d %s, want 404 naming it as unknown", status, body)
	}

	var pl playlistAnswer
	decodeJSON(t, httpGet(t, officer, playlistURL), &pl)
	var closed, open int
	for _, s := range pl.Segments {
		if !strings.HasPrefix(s.Codecs, "avc1.42") || len(s.Fragments) == 0 || s.Init.Offset != 0 || s.Init.Length <= 0 || s.Init.Length != s.Fragments[0].Offset {
			t.Fatalf("segment %d: codecs %q, init %+v, %d fragments: want avc1 Baseline, an init and a fragment index", s.ID, s.Codecs, s.Init, len(s.Fragments))
		}
		if s.Fragments[0].Keyframe == nil || !s.Fragments[0].Keyframe.Equal(s.Start) {
			t.Errorf("segment %d starts at %v but its first keyframe is at %v", s.ID, s.Start, s.Fragments[0].Keyframe)
		}
		full := fetch(t, officer, p.base+s.URL[1:], "", http.StatusOK)
		// The open segment grows between the playlist and the media request; a closed
		// one is exactly as listed.
		if n := int64(len(full)); n != s.Bytes && !(s.Open && n > s.Bytes) {
			t.Errorf("segment %d (open %v): media has %d bytes, playlist says %d", s.ID, s.Open, n, s.Bytes)
		}
		if last := s.Fragments[len(s.Fragments)-1]; last.Offset+last.Length != s.Bytes {
			t.Errorf("segment %d: fragments end at %d, the file at %d: the index must cover what is served", s.ID, last.Offset+last.Length, s.Bytes)
		}
		if s.Open {
			open++
			continue
		}
		closed++
		if sum := sha256.Sum256(full); hex.EncodeToString(sum[:]) != s.SHA256 {
			t.Errorf("segment %d: media bytes do not hash to the catalog's SHA-256", s.ID)
		}
		// A fragment's range is exactly one moof+mdat of the file.
		f := s.Fragments[len(s.Fragments)/2]
		part := fetch(t, officer, p.base+s.URL[1:], fmt.Sprintf("bytes=%d-%d", f.Offset, f.Offset+f.Length-1), http.StatusPartialContent)
		if !bytes.Equal(part, full[f.Offset:f.Offset+f.Length]) || string(part[4:8]) != "moof" {
			t.Errorf("segment %d: the range of fragment at %d is not that fragment", s.ID, f.Offset)
		}
		// The init and the fragments from a keyframe on are a playable file: what MSE gets.
		checkFramesDecode(t, append(append([]byte{}, full[:s.Init.Length]...), full[f.Offset:]...))
	}
	if closed < 2 || open != 1 {
		t.Fatalf("%d closed and %d open segments in the playlist; want at least 2 closed and the open one", closed, open)
	}

	// A still at a time inside the first segment: a full-size JPEG, audited.
	s0 := pl.Segments[0]
	at := s0.Start.Add(1500 * time.Millisecond)
	still := fetch(t, officer, p.base+"api/cameras/namesti/frame.jpg?t="+url.QueryEscape(at.Format(time.RFC3339Nano)), "", http.StatusOK)
	img, err := jpeg.DecodeConfig(bytes.NewReader(still))
	if err != nil || img.Width != 640 || img.Height != 360 {
		t.Errorf("still: %dx%d, %v; want a 640x360 JPEG", img.Width, img.Height, err)
	}
	if rows := auditRows(t, cfgPath, access.AuditFrameView); len(rows) != 1 || !rows[0].From.Equal(at) {
		t.Errorf("playback.frame rows %+v, want one at %v", rows, at)
	}

	// An evidence export of the second segment's footage, from the browser's API.
	exportFrom, exportTo := pl.Segments[1].Start.Add(2*time.Second), pl.Segments[1].End.Add(-2*time.Second)
	exportBody := func(recipient string) string {
		return `{"cameras":["namesti"],"from":"` + exportFrom.Format(time.RFC3339Nano) + `","to":"` + exportTo.Format(time.RFC3339Nano) +
			`","reason":"` + reason + `","case":"KRPP-77/2026","recipient":"` + recipient + `"}`
	}
	if status, _, body := e2eDo(t, officer, "POST", p.base+"api/exports", "application/json", exportBody(" ")); status != http.StatusBadRequest || !strings.Contains(body, "recipient") {
		t.Errorf("export without a recipient: %d %s, want 400 naming recipient", status, body)
	}
	status, _, body := e2eDo(t, officer, "POST", p.base+"api/exports", "application/json", exportBody("Policie ČR, KŘ Plzeň"))
	var job struct {
		ID       int64
		State    string
		Download string
		SHA256   string
	}
	if decodeJSON(t, body, &job); status != http.StatusAccepted || job.ID == 0 {
		t.Fatalf("export request: %d %s", status, body)
	}
	jobURL := p.base + "api/exports/" + strconv.FormatInt(job.ID, 10)
	for deadline := time.Now().Add(60 * time.Second); job.State != "done"; time.Sleep(200 * time.Millisecond) {
		decodeJSON(t, httpGet(t, officer, jobURL), &job)
		if job.State == "failed" || time.Now().After(deadline) {
			t.Fatalf("export job: %s", httpGet(t, officer, jobURL))
		}
	}
	bundle := filepath.Join(dir, "bundle.zip")
	if err := os.WriteFile(bundle, fetch(t, officer, p.base+job.Download[1:], "", http.StatusOK), 0o600); err != nil {
		t.Fatal(err)
	}
	if rows := auditRows(t, cfgPath, access.AuditExportDownload); len(rows) != 1 || rows[0].Actor != "straznik" {
		t.Errorf("export.download rows %+v, want straznik's", rows)
	}
	_, keyOut, _ := lockRun("key", "show", "-config", cfgPath)
	fp := strings.TrimSpace(strings.SplitN(strings.SplitN(keyOut, "Fingerprint (SHA-256): ", 2)[1], "\n", 2)[0])
	if code, out, errOut := lockRun("verify", "-fingerprint", fp, bundle); code != 0 || !strings.Contains(out, "OK ") || !strings.Contains(out, "KRPP-77/2026") {
		t.Errorf("townwatch verify of the downloaded bundle: exit %d\n%s%s", code, out, errOut)
	}
	b, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/3] ^= 0x01
	if err := os.WriteFile(bundle, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := lockRun("verify", bundle); code != 1 || !strings.Contains(out, "FAILED") {
		t.Errorf("townwatch verify of a bundle with a flipped byte: exit %d\n%s", code, out)
	}

	// Retention deletes the first segment: its media answers 410 with the deletion.
	cat, err := catalog.Open(context.Background(), filepath.Join(storage, catalogFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cat.DeleteSegment(context.Background(), s0.ID, "retention: older than 1m", time.Now()); err != nil {
		t.Fatal(err)
	}
	cat.Close()
	status, _, body = e2eDo(t, officer, "GET", p.base+s0.URL[1:], "", "")
	var gone struct{ Reason string }
	if json.Unmarshal([]byte(body), &gone); status != http.StatusGone || gone.Reason != "retention: older than 1m" {
		t.Errorf("deleted segment: %d %s, want 410 with the deletion's reason", status, body)
	}
	// A segment of a camera outside the grant is no segment at all.
	velitel := loginClient(t, p.base, "velitel", accountPassword)
	if status, _, body := e2eDo(t, velitel, "POST", p.base+"api/playback", "application/json", `{"cameras":["most"],"reason":"kontrola"}`); status != http.StatusCreated {
		t.Fatalf("supervisor starts playback of most: %d %s", status, body)
	}
	var mostPL playlistAnswer
	decodeJSON(t, httpGet(t, velitel, p.base+"api/cameras/most/playlist?"+rangeQ), &mostPL)
	if len(mostPL.Segments) == 0 {
		t.Fatal("no segments of most")
	}
	_, _, unknownSeg := e2eDo(t, officer, "GET", p.base+"api/segments/99999999/media", "", "")
	status, _, ungrantedSeg := e2eDo(t, officer, "GET", p.base+mostPL.Segments[0].URL[1:], "", "")
	if status != http.StatusNotFound || strings.ReplaceAll(unknownSeg, "99999999", strconv.FormatInt(mostPL.Segments[0].ID, 10)) != ungrantedSeg {
		t.Errorf("segment of an ungranted camera: %d %s; unknown segment: %s — they must read the same", status, ungrantedSeg, unknownSeg)
	}

	// verify-archive passes the archive as recorded (the deletion above included), and
	// names a segment whose file lost one bit.
	stopServe(t, p)
	if code, out, errOut := lockRun("verify-archive", "-config", cfgPath); code != 0 || !strings.Contains(out, "OK:") {
		t.Fatalf("verify-archive on the untouched archive: exit %d\n%s%s", code, out, errOut)
	}
	victim := pl.Segments[1]
	file := filepath.Join(storage, filepath.FromSlash(segmentPathOf(t, cfgPath, victim.ID)))
	b, err = os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-100] ^= 0x10
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := lockRun("verify-archive", "-config", cfgPath, "-camera", "namesti")
	if code != 1 || !strings.Contains(out, fmt.Sprintf("FAILED segment %d ", victim.ID)) || !strings.Contains(out, "bytes changed") {
		t.Errorf("verify-archive after a flipped bit: exit %d\n%s%s\nwant exit 1 naming segment %d", code, out, errOut, victim.ID)
	}
}

// startOfficerServer runs the real binary on two simulated cameras recording 10 s
// segments: namesti (a car drives through; namestiExtra adds lines to its entry) and
// second (a still courtyard), with the accounts velitel (supervisor, admin) and straznik
// (officer, granted namesti only). It returns once both record, with the test directory
// (storage in its data folder, where auditRows looks) and the config file.
func startOfficerServer(t *testing.T, second, namestiExtra string) (dir, cfgPath string, p *serveProc) {
	t.Helper()
	return startOfficerServerIn(t, t.TempDir(), second, namestiExtra, "")
}

// startOfficerServerIn is startOfficerServer in dir, with storageExtra lines added to
// its storage section (indented by 2).
func startOfficerServerIn(t *testing.T, dir, second, namestiExtra, storageExtra string) (_, cfgPath string, p *serveProc) {
	t.Helper()
	camAddr := "127.0.0.1:" + strconv.Itoa(freeTCPPort(t))
	cfg := "storage:\n  path: " + strconv.Quote(filepath.Join(dir, "data")) + "\n  min_free: 1MiB\n" + storageExtra + "http:\n  listen: 127.0.0.1:0\n" +
		"webrtc: {udp_port: 0, tcp_port: 0}\ncameras:\n" +
		"  - id: namesti\n    main: {url: rtsp://" + camAddr + "/namesti}\n    record: {mode: continuous, segment: 10s}\n" + namestiExtra +
		"  - id: " + second + "\n    main: {url: rtsp://" + camAddr + "/" + second + "}\n    record: {mode: continuous, segment: 10s}\n"
	cfgPath = filepath.Join(dir, "townwatch.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addAccount(t, cfgPath, "velitel", "supervisor,admin")
	addAccount(t, cfgPath, "straznik", "officer", "-cameras", "namesti")
	startSimcamAt(t, camAddr, simcam.CameraSpec{Path: "namesti", Clip: simcam.ClipMotion}, simcam.CameraSpec{Path: second, Clip: simcam.ClipStatic})
	p = startServe(t, cfgPath)
	p.waitRecording(t, "velitel", "namesti", second)
	return dir, cfgPath, p
}

// segmentPathOf reads a segment's storage path from the catalog.
func segmentPathOf(t *testing.T, cfg string, id int64) string {
	t.Helper()
	cat, err := catalog.Open(context.Background(), filepath.Join(filepath.Dir(cfg), "data", catalogFile))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	s, err := cat.Segment(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return s.Path
}

func decodeJSON(t *testing.T, body string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("decoding %.300s: %v", body, err)
	}
}

// fetch GETs url (with a Range header if rng is set), wants status and returns the body.
func fetch(t *testing.T, c *http.Client, url, rng string, status int) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != status {
		t.Fatalf("GET %s (%s): %d %.300s, want %d", url, rng, resp.StatusCode, b, status)
	}
	return b
}

// checkFramesDecode runs ffmpeg over an MP4 and wants every frame to decode.
func checkFramesDecode(t *testing.T, mp4 []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "part.mp4")
	if err := os.WriteFile(path, mp4, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("init + fragments from a keyframe do not decode cleanly: %v\n%s", err, out)
	}
}
