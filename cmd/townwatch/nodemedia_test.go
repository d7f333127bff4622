package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer"
)

// nodeToken is the token nodeSetup writes (its file ends in a newline, which the
// configuration trims).
const nodeToken = "uzel-tajemstvi-0123456789abcdef"

// nodeGet makes a GET with the given headers and returns status and body.
func nodeGet(t *testing.T, c *http.Client, url string, headers map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading: %v", url, err)
	}
	return resp.StatusCode, resp.Header, body
}

// An officer logged in on node b plays back footage that is on node a's disk only: b
// fetches it from a with the node token, Range passed through, and the bytes are a's
// file's. a's node route takes the node token and nothing else; the node token opens no
// user route; live view of a's camera on b is relayed to a.
func TestAnyNodePlaysBackFootageOnAnotherNodesDisk(t *testing.T) {
	t.Parallel()
	url, cfgs := nodeSetup(t, "", "a", "b")
	// An officer granted only the camera pinned to a, in the shared catalog.
	a, b, cat := startPinnedPair(t, url, cfgs)
	officer := loginClient(t, b.base, "straznik", accountPassword)
	ctx := context.Background()

	// A closed segment of the camera pinned to a: on a's disk, not archived (no archive).
	var seg catalog.Segment
	deadline := time.Now().Add(60 * time.Second)
	for seg.ID == 0 && time.Now().Before(deadline) {
		for _, s := range nodeSegments(t, cat, "a") {
			if s.Camera == "pinned" && !s.Open && s.Bytes > 10000 {
				seg = s
				break
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	if seg.ID == 0 {
		t.Fatalf("no closed segment of the pinned camera on a within 60 s\n%s", tailLines(a.stderr.String(), 30))
	}
	onDisk, err := os.ReadFile(filepath.Join(filepath.Dir(cfgs["a"]), "a", seg.Path))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(cfgs["b"]), "b", seg.Path)); !os.IsNotExist(err) {
		t.Fatalf("segment %d is on b's disk too (%v): the test would not show a fetch from a", seg.ID, err)
	}
	media := b.base + "api/segments/" + strconv.FormatInt(seg.ID, 10) + "/media"

	if status, _, body := e2eDo(t, officer, "POST", b.base+"api/playback", "application/json", `{"cameras":["pinned"],"reason":"spis 12/2026"}`); status != http.StatusCreated {
		t.Fatalf("playback session on b: %d %s", status, body)
	}
	status, h, body := nodeGet(t, officer, media, map[string]string{"Range": "bytes=100-5099"})
	if status != http.StatusPartialContent || !bytes.Equal(body, onDisk[100:5100]) {
		t.Fatalf("Range through b: %d (%d bytes, equal to a's file %v); want 206 and bytes 100-5099 of a's file", status, len(body), bytes.Equal(body, onDisk[100:5100]))
	}
	if want := "bytes 100-5099/" + strconv.Itoa(len(onDisk)); h.Get("Content-Range") != want {
		t.Errorf("Content-Range %q, want %q", h.Get("Content-Range"), want)
	}
	status, h, body = nodeGet(t, officer, media, nil)
	sum := sha256.Sum256(body)
	if status != http.StatusOK || !bytes.Equal(body, onDisk) || hex.EncodeToString(sum[:]) != seg.SHA256 {
		t.Fatalf("whole segment through b: %d, %d bytes (a's file %d), SHA-256 %x, catalog %s", status, len(body), len(onDisk), sum, seg.SHA256)
	}
	if h.Get("ETag") != `"`+seg.SHA256+`"` {
		t.Errorf("ETag %q, want the catalog's digest", h.Get("ETag"))
	}
	// The playback session's audit row (with the reason) is in the shared catalog.
	rows, err := cat.AuditEntries(ctx, catalog.AuditQuery{From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Hour),
		Actor: "straznik", Camera: "pinned", Action: "playback.start"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Errorf("playback.start audit rows for the session on b: %+v; want one", rows)
	}
	re := regexp.MustCompile(`townwatch_node_proxied_bytes_total\{node="b",owner="a"\} (\S+)`)
	if got := metricValue(b.client, b.base, re); got < float64(len(onDisk)+5000) {
		t.Errorf("b's proxied bytes from a = %v, want at least %d", got, len(onDisk)+5000)
	}

	// a's node route: the node token and nothing else.
	nodeRoute := a.base + "api/node/segments/" + strconv.FormatInt(seg.ID, 10) + "/media"
	anon := &http.Client{Timeout: 10 * time.Second}
	status, _, body = nodeGet(t, anon, nodeRoute, map[string]string{viewer.NodeTokenHeader: nodeToken, "Range": "bytes=0-99"})
	if status != http.StatusPartialContent || !bytes.Equal(body, onDisk[:100]) {
		t.Fatalf("a's node route with the token: %d %q; want 206 and a's bytes", status, body)
	}
	const wrong = "falesny-token-0123456789abcdef"
	for name, headers := range map[string]map[string]string{
		"wrong token":       {viewer.NodeTokenHeader: wrong},
		"no token":          nil,
		"token as a bearer": {"Authorization": "Bearer " + nodeToken},
	} {
		if status, _, body := nodeGet(t, anon, nodeRoute, headers); status != http.StatusUnauthorized {
			t.Errorf("a's node route, %s: %d %s; want 401", name, status, body)
		}
	}
	// velitel's session on a (supervisor, admin) and the officer's (valid on a too: the
	// sessions are in the shared catalog) are no node token.
	for name, c := range map[string]*http.Client{"velitel": a.client, "straznik": officer} {
		if status, _, body := nodeGet(t, c, nodeRoute, nil); status != http.StatusUnauthorized {
			t.Errorf("a's node route with %s's session: %d %s; want 401", name, status, body)
		}
	}
	if strings.Contains(a.stderr.String(), wrong) || strings.Contains(a.stderr.String(), nodeToken) {
		t.Error("a's log holds a node token")
	}
	if !strings.Contains(a.stderr.String(), "wrong or missing node token") {
		t.Error("a did not log the refused node requests")
	}
	// The node token opens no user route.
	for _, path := range []string{"api/cameras", "api/segments/" + strconv.FormatInt(seg.ID, 10) + "/media", "api/me"} {
		if status, _, body := nodeGet(t, anon, a.base+path, map[string]string{viewer.NodeTokenHeader: nodeToken}); status != http.StatusUnauthorized {
			t.Errorf("user route %s with the node token: %d %s; want 401", path, status, body)
		}
	}

	// Live view of a's camera asked of b is relayed to a (TestLiveViewIsRelayedToTheNode-
	// HoldingTheCamera): a's refusal of an offer without media comes back through b.
	status, _, text := e2eDo(t, b.client, "POST", b.base+"api/cameras/pinned/whep", "application/sdp", "v=0\r\n")
	if status != http.StatusBadRequest || !strings.Contains(text, "no media sections") {
		t.Errorf("an empty live offer for a's camera on b: %d %s; want a's 400 about the offer", status, text)
	}
}
