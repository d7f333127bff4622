package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest/simcam"
)

// TestCameraProbeEndToEnd probes simulated cameras through `townwatch serve`'s API as an
// administrator would before adding a camera, and through `townwatch camera probe`: the
// right codec, size and frame rate and a JPEG ffprobe reads at that size; auth,
// not_found and unreachable for a wrong password, a bad path and a closed port; and the
// camera's password in no answer, log line, metric or file afterwards.
func TestCameraProbeEndToEnd(t *testing.T) {
	t.Parallel()
	canary := "Cam-" + rand.Text()
	cam := startSimcam(t, simcam.CameraSpec{Path: "static", Clip: simcam.ClipStatic},
		simcam.CameraSpec{Path: "brana", Clip: simcam.ClipMotion, Username: "spravce", Password: canary})
	dir := t.TempDir()
	cfg := e2eWriteConfig(t, dir, cam, [2]string{"cam1", "static"})
	addAccount(t, cfg, "spravce", "admin")
	p := startServe(t, cfg)
	admin, _ := e2eLogin(t, p.base, "spravce", accountPassword)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "rtsp://" + ln.Addr().String() + "/brana"
	ln.Close()

	var answers []string
	probeAPI := func(body map[string]string) map[string]any {
		t.Helper()
		raw, _ := json.Marshal(body)
		status, _, answer := e2eDo(t, admin, http.MethodPost, p.base+"api/cameras/probe", "application/json", string(raw))
		answers = append(answers, answer)
		if status != http.StatusOK {
			t.Fatalf("probe %s: %d %s", body["url"], status, answer)
		}
		var res map[string]any
		if err := json.Unmarshal([]byte(answer), &res); err != nil {
			t.Fatal(err)
		}
		return res
	}

	start := time.Now()
	res := probeAPI(map[string]string{"url": cam.URL("brana"), "username": "spravce", "password": canary})
	t.Logf("probe of a 640x360 25 fps camera with a 2 s GOP answered in %s (first keyframe after %v ms)", time.Since(start), res["first_keyframe_ms"])
	if res["ok"] != true || res["codec"] != "H264" || res["width"] != 640.0 || res["height"] != 360.0 {
		t.Fatalf("probe: %v", res)
	}
	if fps, _ := res["fps"].(float64); fps < 24.5 || fps > 25.5 {
		t.Errorf("fps %v, want 25", res["fps"])
	}
	// A probe whose snapshot failed (ffmpeg killed on a starved machine) answers without
	// one; a failure naming the answer, not a panic that ends every other test too.
	snapshot, ok := res["snapshot_jpeg"].(string)
	if !ok {
		t.Fatalf("probe answered no snapshot_jpeg: %v", res)
	}
	jpeg, err := base64.StdEncoding.DecodeString(snapshot)
	if err != nil {
		t.Fatalf("snapshot_jpeg: %v", err)
	}
	if w, h := ffprobeSize(t, jpeg); w != 640 || h != 360 {
		t.Errorf("the snapshot is %dx%d, want 640x360", w, h)
	}

	for _, c := range []struct {
		body map[string]string
		want string
	}{
		{map[string]string{"url": cam.URL("brana"), "username": "spravce", "password": "x" + canary}, "auth"},
		{map[string]string{"url": cam.URL("no-such-path"), "username": "spravce", "password": canary}, "not_found"},
		{map[string]string{"url": closed, "username": "spravce", "password": canary}, "unreachable"},
	} {
		start := time.Now()
		res := probeAPI(c.body)
		if res["ok"] != false || res["failure"] != c.want {
			t.Errorf("%s: %v, want failure %s", c.body["url"], res, c.want)
		}
		t.Logf("%s: %s in %s", c.want, res["reason"], time.Since(start))
	}

	_, _, metrics := e2eDo(t, admin, http.MethodGet, p.base+"metrics", "", "")
	answers = append(answers, metrics)

	// The command line, with the password from the environment as documented.
	cli := exec.Command(binary, "camera", "probe", "-username", "spravce", "-snapshot", filepath.Join(dir, "brana.jpg"), cam.URL("brana"))
	cli.Env = append(os.Environ(), cameraPasswordEnv+"="+canary)
	var out bytes.Buffer
	cli.Stdout, cli.Stderr = &out, &out
	if err := cli.Run(); err != nil || !strings.Contains(out.String(), "OK rtsp://spravce:***@") || !strings.Contains(out.String(), "640x360") {
		t.Errorf("townwatch camera probe: %v\n%s", err, out.String())
	}
	answers = append(answers, out.String())
	out.Reset()
	cli = exec.Command(binary, "camera", "probe", "-username", "spravce", cam.URL("brana"))
	cli.Env = append(os.Environ(), cameraPasswordEnv+"=wrong")
	cli.Stdout, cli.Stderr = &out, &out
	if err := cli.Run(); err == nil || !strings.Contains(out.String(), "FAILED") || !strings.Contains(out.String(), "auth") {
		t.Errorf("townwatch camera probe with a wrong password: %v\n%s", err, out.String())
	}

	stopServe(t, p)
	needles := e2eNeedles(canary)
	for _, text := range append(answers, p.stderr.String()) {
		for name, needle := range needles {
			if bytes.Contains([]byte(text), needle) {
				t.Errorf("the camera's %s appears in an answer or the log: %.300s", name, text)
			}
		}
	}
	e2eScanFiles(t, filepath.Join(dir, "data"), needles)
}

// ffprobeSize is the picture size ffprobe reads from a JPEG.
func ffprobeSize(t *testing.T, jpeg []byte) (int, int) {
	t.Helper()
	cmd := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "json", "-i", "pipe:0")
	cmd.Stdin = bytes.NewReader(jpeg)
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffprobe cannot read the snapshot: %v", err)
	}
	var info struct {
		Streams []struct {
			Codec         string `json:"codec_name"`
			Width, Height int
		} `json:"streams"`
	}
	if err := json.Unmarshal(raw, &info); err != nil || len(info.Streams) != 1 || info.Streams[0].Codec != "mjpeg" {
		t.Fatalf("ffprobe: not one JPEG: %s (%v)", raw, err)
	}
	return info.Streams[0].Width, info.Streams[0].Height
}
