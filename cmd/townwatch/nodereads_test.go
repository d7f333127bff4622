package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder/archive/s3test"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// withArchive puts storage.archive (bucket townwatch-nodes on s3, due after `after`) into
// a configuration nodeSetup wrote, with the key files beside it.
func withArchive(t *testing.T, cfg string, s3 *s3test.Server, after string) {
	t.Helper()
	dir := filepath.Dir(cfg)
	access, secret, err := s3test.KeyFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := regexp.MustCompile(`(?m)^  archive: .*\n`).ReplaceAllString(string(raw), "")
	line := fmt.Sprintf("  archive: {url: 's3://%s/townwatch-nodes', after: %s, access_key_file: %q, secret_key_file: %q}\n", s3.Addr, after, access, secret)
	if !strings.Contains(text, "  min_free: 1MiB\n") {
		t.Fatalf("%s: no storage.min_free line to put the archive after:\n%s", cfg, text)
	}
	text = strings.Replace(text, "  min_free: 1MiB\n", "  min_free: 1MiB\n"+line, 1)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// exportBundle is one evidence export made through a node's API: its clip and the
// source segments its signed manifest names.
type exportBundle struct {
	clip    []byte
	sources []string // "id sha256" per source segment, in clip order
}

// exportThrough asks base for an export of camera over [from, to) as c and waits for the
// job. It returns the bundle, or the job's error when it failed.
func exportThrough(t *testing.T, c *http.Client, base, camera string, from, to time.Time) (exportBundle, string) {
	t.Helper()
	body := fmt.Sprintf(`{"cameras":[%q],"from":%q,"to":%q,"reason":"dopravni nehoda","case":"KRPP-12/2026","recipient":"Policie CR"}`,
		camera, from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano))
	status, _, answer := e2eDo(t, c, "POST", base+"api/exports", "application/json", body)
	var job struct {
		ID       int64
		State    string
		Error    string
		Download string
	}
	if decodeJSON(t, answer, &job); status != http.StatusAccepted || job.ID == 0 {
		t.Fatalf("export request at %s: %d %s", base, status, answer)
	}
	jobURL := base + "api/exports/" + strconv.FormatInt(job.ID, 10)
	for deadline := time.Now().Add(90 * time.Second); job.State != "done"; time.Sleep(200 * time.Millisecond) {
		decodeJSON(t, httpGet(t, c, jobURL), &job)
		if job.State == "failed" {
			return exportBundle{}, job.Error
		}
		if time.Now().After(deadline) {
			t.Fatalf("export job at %s not done within 90 s: %s", base, httpGet(t, c, jobURL))
		}
	}
	raw := fetch(t, c, base+job.Download[1:], "", http.StatusOK)
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	var out exportBundle
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasSuffix(f.Name, ".mp4"):
			out.clip = data
		case f.Name == "manifest.json":
			var m struct {
				Cameras []struct {
					Sources []struct {
						ID     int64
						SHA256 string
					}
				}
			}
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			for _, cam := range m.Cameras {
				for _, s := range cam.Sources {
					out.sources = append(out.sources, fmt.Sprintf("%d %s", s.ID, s.SHA256))
				}
			}
		}
	}
	if len(out.clip) == 0 || len(out.sources) == 0 {
		t.Fatalf("export at %s: bundle without a clip or without sources (%d bytes, %v)", base, len(out.clip), out.sources)
	}
	return out, ""
}

// startPinnedPair starts nodes a and b of nodeSetup's configurations once the officer
// straznik (granted only the camera pinned to a) is in the shared catalog, waits until a
// records the pinned camera as b sees it, and opens the shared catalog for the test.
func startPinnedPair(t *testing.T, pgURL string, cfgs map[string]string) (a, b *serveProc, cat *catalog.Catalog) {
	t.Helper()
	addAccount(t, cfgs["a"], "straznik", "officer", "-cameras", "pinned")
	a = startNodeProc(t, cfgs["a"], "a")
	b = startNodeProc(t, cfgs["b"], "b")
	waitNodes(t, 60*time.Second, "the pinned camera is not recorded on a", map[string]*serveProc{"a": a, "b": b}, func(v map[string]map[string]clusterCamera) bool {
		ha, _ := holders(v["b"])
		return ha["pinned"] == "a"
	})
	cat, err := catalog.Open(context.Background(), pgURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	return a, b, cat
}

// thumbsQuery is the scrub-preview index of the pinned camera over [from, to).
func thumbsQuery(from, to time.Time) string {
	return "api/cameras/pinned/thumbs?from=" + url.QueryEscape(from.UTC().Format(time.RFC3339Nano)) + "&to=" + url.QueryEscape(to.UTC().Format(time.RFC3339Nano))
}

// sameExport fails the test unless two exports of one range hold the same clip, cut from
// the same segments with the same digests.
func sameExport(t *testing.T, what string, got, want exportBundle) {
	t.Helper()
	if !bytes.Equal(got.clip, want.clip) || strings.Join(got.sources, ",") != strings.Join(want.sources, ",") {
		t.Errorf("%s: clip of %d bytes from %v; the export on a: %d bytes from %v (clips equal: %v)",
			what, len(got.clip), got.sources, len(want.clip), want.sources, bytes.Equal(got.clip, want.clip))
	}
}

// Exports, stills, scrub previews and verify-archive on node b of footage that is on node
// a's disk only: b reads it through a's node routes, checks it against the catalog, and
// gives what a gives. With a stopped, b's export fails naming a and the segment (no clip
// with a hole). Once a has archived the footage, b's export reads the bucket and is still
// the same.
func TestAnyNodeExportsFootageOnAnotherNodesDiskAndInTheArchive(t *testing.T) {
	t.Parallel()
	s3 := s3test.Start(t)
	pgURL, cfgs := nodeSetup(t, "", "a", "b")
	// Nothing is due for an hour: the footage stays on a's disk until phase 2.
	withArchive(t, cfgs["a"], s3, "1h")
	withArchive(t, cfgs["b"], s3, "1h")
	a, b, cat := startPinnedPair(t, pgURL, cfgs)
	ctx := context.Background()
	var err error

	// Two consecutive closed segments of the camera pinned to a.
	var s1, s2 catalog.Segment
	for deadline := time.Now().Add(90 * time.Second); s2.ID == 0; time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no two closed segments of the pinned camera on a within 90 s\n%s", tailLines(a.stderr.String(), 30))
		}
		segs, err := cat.Segments(ctx, "pinned", time.Now().Add(-time.Hour), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		var closed []catalog.Segment
		for _, s := range segs {
			if s.Stream == "main" && !s.Open && s.Node == "a" {
				closed = append(closed, s)
			}
		}
		if len(closed) >= 2 {
			s1, s2 = closed[len(closed)-2], closed[len(closed)-1]
		}
	}
	for _, s := range []catalog.Segment{s1, s2} {
		if _, err := os.Stat(filepath.Join(filepath.Dir(cfgs["b"]), "b", s.Path)); !os.IsNotExist(err) {
			t.Fatalf("segment %d is on b's disk too (%v): the test would not show a read from a", s.ID, err)
		}
	}
	from, to := s1.Start.Add(2*time.Second), s2.End.Add(-2*time.Second)
	officerA := loginClient(t, a.base, "straznik", accountPassword)
	officerB := loginClient(t, b.base, "straznik", accountPassword)
	metricBytes := regexp.MustCompile(`townwatch_node_proxied_bytes_total\{node="b",owner="a"\} (\S+)`)
	proxiedBefore := metricValue(b.client, b.base, metricBytes)

	onA, failure := exportThrough(t, officerA, a.base, "pinned", from, to)
	if failure != "" {
		t.Fatalf("export on a: %s", failure)
	}
	if want := []string{fmt.Sprintf("%d %s", s1.ID, s1.SHA256), fmt.Sprintf("%d %s", s2.ID, s2.SHA256)}; strings.Join(onA.sources, ",") != strings.Join(want, ",") {
		t.Fatalf("export on a was cut from %v; want the two segments %v", onA.sources, want)
	}
	onB, failure := exportThrough(t, officerB, b.base, "pinned", from, to)
	if failure != "" {
		t.Fatalf("export through b of footage on a's disk failed: %s\n%s", failure, tailLines(b.stderr.String(), 20))
	}
	sameExport(t, "export through b of footage on a's disk", onB, onA)
	if got := metricValue(b.client, b.base, metricBytes) - proxiedBefore; got < float64(s1.Bytes+s2.Bytes) {
		t.Errorf("b counted %v bytes proxied from a for the export; want at least the two segments' %d", got, s1.Bytes+s2.Bytes)
	}

	// The command line on b (-node b) too.
	rfc := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	outDir := t.TempDir()
	clips := map[string][]byte{}
	for _, n := range []string{"a", "b"} {
		out := filepath.Join(outDir, n+".mp4")
		if code, _, stderr := runBinary(t, append([]string{"export", "-config", cfgs[n], "-node", n, "-camera", "pinned",
			"-from", rfc(from), "-to", rfc(to), "-o", out}, exportWhy...)...); code != exitOK {
			t.Fatalf("townwatch export -node %s: exit %d: %s", n, code, stderr)
		}
		if clips[n], err = os.ReadFile(out); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(clips["a"], clips["b"]) {
		t.Errorf("townwatch export on b: %d bytes, not the %d bytes of the same export on a", len(clips["b"]), len(clips["a"]))
	}
	// verify-archive on b reads a's segments through a; without -node it names them as
	// not checked and fails.
	code, stdout, stderr := runBinary(t, "verify-archive", "-config", cfgs["b"], "-node", "b", "-camera", "pinned")
	if code != exitOK || !strings.Contains(stdout, "read from other nodes' disks") {
		t.Errorf("verify-archive -node b: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runBinary(t, "verify-archive", "-config", cfgs["b"], "-camera", "pinned")
	if code != exitFailure || !strings.Contains(stdout, fmt.Sprintf("segment %d", s1.ID)) || !strings.Contains(stdout, `node "a"`) || !strings.Contains(stdout, "NOT checked") {
		t.Errorf("verify-archive on b without -node: exit %d; want 1 naming segment %d on node a as not checked\n%s%s", code, s1.ID, stdout, stderr)
	}

	// A still and the scrub previews of a's footage through b are a's.
	for _, c := range []struct {
		officer *http.Client
		base    string
	}{{officerA, a.base}, {officerB, b.base}} {
		if status, _, body := e2eDo(t, c.officer, "POST", c.base+"api/playback", "application/json", `{"cameras":["pinned"],"reason":"dopravni nehoda"}`); status != http.StatusCreated {
			t.Fatalf("playback session at %s: %d %s", c.base, status, body)
		}
	}
	still := "api/cameras/pinned/frame.jpg?t=" + url.QueryEscape(rfc(s1.Start.Add(1500*time.Millisecond)))
	stillA := fetch(t, officerA, a.base+still, "", http.StatusOK)
	if stillB := fetch(t, officerB, b.base+still, "", http.StatusOK); !bytes.Equal(stillA, stillB) || len(stillA) < 1000 {
		t.Errorf("still through b: %d bytes; a's still: %d bytes; want the same JPEG", len(stillB), len(stillA))
	}
	// Scrub previews: the first closed segment of a's with previews (the motion worker
	// makes them; a loaded machine may have restarted it meanwhile, so it is waited for).
	var preview thumbsSegment
	for deadline := time.Now().Add(90 * time.Second); preview.ID == 0; time.Sleep(time.Second) {
		if time.Now().After(deadline) {
			t.Fatalf("no closed segment of the pinned camera with scrub previews on a within 90 s\n%s", tailLines(a.stderr.String(), 20))
		}
		var th thumbsAnswer
		decodeJSON(t, httpGet(t, officerA, a.base+thumbsQuery(s1.Start, time.Now())), &th)
		for _, ts := range th.Segments {
			if row, err := cat.Segment(ctx, ts.ID); err == nil && !row.Open && row.Node == "a" {
				preview = ts
				break
			}
		}
	}
	var thB thumbsAnswer
	decodeJSON(t, httpGet(t, officerB, b.base+thumbsQuery(preview.Start, preview.End)), &thB)
	if i := slices.IndexFunc(thB.Segments, func(ts thumbsSegment) bool { return ts.ID == preview.ID }); i < 0 {
		t.Errorf("scrub preview index through b lacks segment %d: %+v", preview.ID, thB)
	} else if got, want := fmt.Sprint(thB.Segments[i]), fmt.Sprint(preview); got != want {
		t.Errorf("scrub previews of segment %d through b: %s\non a: %s", preview.ID, got, want)
	}
	sprite := preview.Sprite[1:]
	if sa, sb := fetch(t, officerA, a.base+sprite, "", http.StatusOK), fetch(t, officerB, b.base+sprite, "", http.StatusOK); !bytes.Equal(sa, sb) {
		t.Errorf("sprite through b: %d bytes, differs from a's (%d bytes)", len(sb), len(sa))
	}
	if strings.Contains(b.stderr.String(), nodeToken) || strings.Contains(a.stderr.String(), nodeToken) {
		t.Error("a node's log holds the node token")
	}

	// a stops: b's export of that footage fails naming a and the segment; so does a still.
	stopServe(t, a)
	if _, failure := exportThrough(t, officerB, b.base, "pinned", from, to); !strings.Contains(failure, `node "a"`) || !strings.Contains(failure, fmt.Sprintf("segment %d", s1.ID)) {
		t.Errorf("export through b with a stopped: error %q; want it to name node a and segment %d", failure, s1.ID)
	}
	status, _, body := e2eDo(t, officerB, "GET", b.base+still, "", "")
	if status != http.StatusBadGateway || !strings.Contains(body, `node \"a\"`) || !strings.Contains(body, fmt.Sprintf("segment %d", s1.ID)) {
		t.Errorf("still through b with a stopped: %d %s; want 502 naming node a and segment %d", status, body, s1.ID)
	}

	// a comes back archiving everything older than 12 s: the two segments leave its disk
	// for the bucket, and b's export, now read from the bucket, is the same again.
	withArchive(t, cfgs["a"], s3, "12s")
	a = startNodeProc(t, cfgs["a"], "a")
	for _, s := range []*catalog.Segment{&s1, &s2} {
		for deadline := time.Now().Add(90 * time.Second); s.Archived.IsZero(); time.Sleep(500 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("segment %d not archived within 90 s of a's restart\n%s", s.ID, tailLines(a.stderr.String(), 30))
			}
			if *s, err = cat.Segment(ctx, s.ID); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(cfgs["a"]), "a", s.Path)); !os.IsNotExist(err) {
			t.Errorf("archived segment %d: still on a's disk (%v)", s.ID, err)
		}
	}
	fromArchive, failure := exportThrough(t, officerB, b.base, "pinned", from, to)
	if failure != "" {
		t.Fatalf("export through b of archived footage: %s", failure)
	}
	sameExport(t, "export through b of footage archived by a", fromArchive, onA)
}
