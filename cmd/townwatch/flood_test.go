package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest/simcam"
)

// floodNofile is the open-file limit townwatch runs under in the flood test. The flood
// holds several times as many connections, so without caps it would exhaust the table,
// as 20,000 idle connections did at the default limit; scaled down so the test itself
// needs no raised limit.
const floodNofile = 1024

// flooder keeps n connections to addr open for as long as it runs, from the given source
// addresses in turn: whenever the server closes one (timeout, cap), it dials again, as an
// attacker would. prelude is written after connecting, then one byte every second.
type flooder struct {
	dials, closedByServer atomic.Int64
	// cutByReadTimeout counts the connections the server answered with a read timeout
	// ("i/o timeout", the WHEP handler's 400 when the body stops short) before closing
	// them: closedByServer also counts those the caps refused as soon as they were accepted.
	cutByReadTimeout atomic.Int64
	stop             chan struct{}
	wg               sync.WaitGroup
}

func flood(addr string, n int, sources []string, prelude string) *flooder {
	f := &flooder{stop: make(chan struct{})}
	for i := range n {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(sources[i%len(sources)])}, Timeout: 2 * time.Second}
			for {
				select {
				case <-f.stop:
					return
				default:
				}
				c, err := d.Dial("tcp", addr)
				if err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				f.dials.Add(1)
				closed := make(chan struct{})
				go func() { // the server ends it: the reads end
					answer, _ := io.ReadAll(io.LimitReader(c, 4096))
					if bytes.Contains(answer, []byte("i/o timeout")) {
						f.cutByReadTimeout.Add(1)
					}
					close(closed)
				}()
				if prelude != "" {
					c.Write([]byte(prelude))
				}
				tick := time.NewTicker(time.Second)
			held:
				for {
					select {
					case <-f.stop:
						tick.Stop()
						c.Close()
						return
					case <-closed:
						f.closedByServer.Add(1)
						break held
					case <-tick.C:
						if prelude != "" {
							c.Write([]byte("v"))
						}
					}
				}
				tick.Stop()
				c.Close()
			}
		}()
	}
	return f
}

func (f *flooder) end() {
	close(f.stop)
	f.wg.Wait()
}

// loopbackSources are n distinct loopback source addresses (127.0.0.0/8 is all loopback),
// so the flood is spread over many "machines" and meets the total cap, not only the
// per-address one.
func loopbackSources(third byte, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("127.0.%d.%d", third, 10+i))
	}
	return out
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestConnectionFloodDoesNotStopRecording is the audit's flood against a townwatch
// recording 4 cameras under a small descriptor limit: thousands of idle HTTP connections
// from many addresses, 200 WHEP posts sending one body byte a second, and 1,000 idle
// ICE-TCP connections, each re-dialled whenever the server drops it, for floodTime. Every
// camera keeps recording without a gap, nothing logs "too many open files", the slow
// posts are cut by the read timeout, and once the flood ends the API answers at once.
// Then a rebinding page's Host and a foreign Origin are refused.
//
// floodReadTimeout is the server's http.read_timeout in the flood, shorter than the 15 s
// default so that the test, which runs alone (it loads the host on purpose), waits out
// less: what it proves is that the read timeout cuts slow posts, whatever its length.
// floodTime is how long the flood lasts: the read timeout must have cut every slow post
// by its end, with a margin for dialling them on a busy machine.
const (
	floodReadTimeout = 5 * time.Second
	floodTime        = floodReadTimeout + 5*time.Second
)

func TestConnectionFloodDoesNotStopRecording(t *testing.T) {
	var specs []simcam.CameraSpec
	var ids []string
	for i := range 4 {
		clip := simcam.ClipStatic
		if i%2 == 0 {
			clip = simcam.ClipMotion
		}
		specs = append(specs, simcam.CameraSpec{Path: "cam" + strconv.Itoa(i), Clip: clip})
		ids = append(ids, "cam"+strconv.Itoa(i))
	}
	cam := startSimcam(t, specs...)
	dir := t.TempDir()
	iceTCP := freeTCPPort(t)
	var cfg strings.Builder
	cfg.WriteString("storage:\n  path: " + strconv.Quote(filepath.Join(dir, "storage")) + "\n  min_free: 1MiB\nhttp:\n  listen: 127.0.0.1:0\n" +
		"  read_timeout: " + floodReadTimeout.String() + "\n" +
		"webrtc:\n  udp_port: 0\n  tcp_port: " + strconv.Itoa(iceTCP) + "\ncameras:\n")
	for _, id := range ids {
		cfg.WriteString("  - id: " + id + "\n    main: {url: " + cam.URL(id) + ", transport: tcp}\n    record: {mode: continuous, segment: 10s}\n")
	}
	cfgPath := filepath.Join(dir, "townwatch.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	addAccount(t, cfgPath, "velitel", "supervisor,admin")
	p := startServeCmd(t, exec.Command("prlimit", "--nofile="+strconv.Itoa(floodNofile), binary, "serve", "-config", cfgPath))
	p.waitRecording(t, "velitel", ids...)
	client := loginClient(t, p.base, "velitel", accountPassword)
	before := cameraRecording(t, client, p.base)

	u, _ := url.Parse(p.base)
	var cookie string
	for _, c := range client.Jar.Cookies(u) {
		cookie = c.Name + "=" + c.Value
	}
	slowPost := "POST /api/cameras/cam0/whep HTTP/1.1\r\nHost: " + u.Host + "\r\nContent-Type: application/sdp\r\n" +
		"Content-Length: 100000\r\nCookie: " + cookie + "\r\n\r\nv"
	started := time.Now()
	floods := []*flooder{
		flood(u.Host, 3*floodNofile, loopbackSources(1, 30), ""),                   // idle HTTP
		flood(u.Host, 200, loopbackSources(2, 10), slowPost),                       // slow WHEP bodies
		flood("127.0.0.1:"+strconv.Itoa(iceTCP), 1000, loopbackSources(3, 20), ""), // idle ICE-TCP
	}
	time.Sleep(floodTime)
	for _, f := range floods {
		f.end()
	}
	// Legitimate requests succeed again at once (a fresh connection, from the usual address).
	ended := time.Now()
	var after map[string]cameraRec
	for {
		if got, ok := tryCameraRecording(client, p.base); ok {
			after = got
			break
		}
		if time.Since(ended) > 10*time.Second {
			t.Fatal("the API did not answer within 10 s of the flood's end")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("flood of %v: %d idle HTTP dials, %d slow posts (%d cut by the server, %d of them by the read timeout), %d ICE-TCP dials; API answered %v after it ended",
		ended.Sub(started).Round(time.Second), floods[0].dials.Load(), floods[1].dials.Load(), floods[1].closedByServer.Load(),
		floods[1].cutByReadTimeout.Load(), floods[2].dials.Load(), time.Since(ended).Round(time.Millisecond))
	if floods[1].closedByServer.Load() < 200 {
		t.Errorf("only %d of the 200 slow posts were cut by the server in %v; the read timeout should end each within %v", floods[1].closedByServer.Load(), floodTime, floodReadTimeout)
	}
	// Most slow posts are refused by the caps as soon as they are accepted; those let in
	// must have been ended by the read timeout, or no slow post would have been answered
	// with one.
	if floods[1].cutByReadTimeout.Load() == 0 {
		t.Errorf("none of the slow posts the caps let in was cut by the %v read timeout", floodReadTimeout)
	}
	for _, id := range ids {
		b, a := before[id], after[id]
		if a.State != "recording" || a.Gaps != b.Gaps || a.Segments < b.Segments {
			t.Errorf("camera %s: before the flood %+v, after %+v; want recording with no new gap", id, b, a)
		}
	}
	metrics := httpGet(t, client, p.base+"metrics")
	if m := regexp.MustCompile(`townwatch_client_connections_refused_total (\d+)`).FindStringSubmatch(metrics); m == nil || m[1] == "0" {
		t.Errorf("no connection was refused by the caps: %v", m)
	}
	for _, id := range ids {
		re := regexp.MustCompile(`townwatch_recorded_frames_total\{camera="` + id + `"\} (\S+)`)
		if m := re.FindStringSubmatch(metrics); m == nil {
			t.Errorf("no recorded frames for %s", id)
		}
	}
	// DNS rebinding and cross-origin requests, on the running server: a foreign Host is
	// refused before anything else (421), a foreign Origin on WHEP is refused (403).
	for _, tc := range []struct {
		host, origin string
		want         int
	}{{"attacker.example", "", http.StatusMisdirectedRequest}, {u.Host, "http://attacker.example", http.StatusForbidden}} {
		req, _ := http.NewRequest(http.MethodPost, p.base+"api/cameras/cam0/whep", strings.NewReader("v=0\r\n"))
		req.Host = tc.host
		req.Header.Set("Content-Type", "application/sdp")
		if tc.origin != "" {
			req.Header.Set("Origin", tc.origin)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("WHEP with Host %q and Origin %q: %d, want %d", tc.host, tc.origin, resp.StatusCode, tc.want)
		}
	}
	sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), "too many open files") {
			t.Errorf("log: %s", sc.Text())
			break
		}
	}
}

// cameraRec is a camera's recording state as /api/cameras gives it.
type cameraRec struct {
	State    string `json:"state"`
	Segments int    `json:"segments"`
	Gaps     uint64 `json:"gaps"`
}

func tryCameraRecording(c *http.Client, base string) (map[string]cameraRec, bool) {
	resp, err := c.Get(base + "api/cameras")
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	var cams []struct {
		ID        string    `json:"id"`
		Recording cameraRec `json:"recording"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&cams) != nil {
		return nil, false
	}
	out := map[string]cameraRec{}
	for _, cam := range cams {
		out[cam.ID] = cam.Recording
	}
	return out, true
}

func cameraRecording(t *testing.T, c *http.Client, base string) map[string]cameraRec {
	t.Helper()
	got, ok := tryCameraRecording(c, base)
	if !ok {
		t.Fatal("GET /api/cameras failed")
	}
	return got
}
