package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// e2eWriteConfig writes a serve configuration for the simulated cameras (id → simcam
// path) with storage under dir/data (where auditRows looks) and returns its path.
func e2eWriteConfig(t *testing.T, dir string, cam *simcam.Server, cams ...[2]string) string {
	t.Helper()
	var cfg strings.Builder
	// min_free is small so that the test machine's disk never makes retention delete.
	cfg.WriteString("storage:\n  path: " + strconv.Quote(filepath.Join(dir, "data")) + "\n  min_free: 1MiB\n" +
		"http:\n  listen: 127.0.0.1:0\nwebrtc:\n  udp_port: 0\n  tcp_port: 0\ncameras:\n")
	for _, c := range cams {
		cfg.WriteString("  - id: " + c[0] + "\n    main:\n      url: " + cam.URL(c[1]) +
			"\n      transport: tcp\n    record:\n      mode: continuous\n      segment: 10s\n")
	}
	path := filepath.Join(dir, "townwatch.yaml")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// e2eAddAccountWithPassword is addAccount with a password of the test's choosing, piped on
// stdin as an administrator on the host would; it returns what the command printed.
func e2eAddAccountWithPassword(t *testing.T, cfg, name, roles, password string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), passwordHashBound)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "user", "add", "-config", cfg, "-name", name, "-role", roles)
	cmd.Stdin = strings.NewReader(password + "\n")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("townwatch user add %s: %v\n%s", name, err, out.String())
	}
	return out.String()
}

// e2eDo sends one request and returns the status, the headers and the body.
func e2eDo(t *testing.T, c *http.Client, method, url, contentType, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// e2eLoginFrom posts one login from the loopback address from (127.0.0.0/8 is all local
// on Linux, so each attempt can come from its own client address, as from many hosts) and
// returns the status, the body and the Retry-After it was given.
func e2eLoginFrom(t *testing.T, base, from, name, password string) (int, string, time.Duration) {
	t.Helper()
	tr := &http.Transport{
		DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}).DialContext,
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: passwordHashBound}
	body, _ := json.Marshal(map[string]string{"username": name, "password": password})
	status, h, b := e2eDo(t, c, http.MethodPost, base+"api/login", "application/json", string(body))
	secs, _ := strconv.Atoi(h.Get("Retry-After"))
	return status, b, time.Duration(secs) * time.Second
}

// e2eLogin logs in from 127.0.0.1 with a cookie jar, waiting out a 429 as its Retry-After
// says (the per-account allowance refills one attempt every 6 s), and returns the client
// and the login answer's body.
func e2eLogin(t *testing.T, base, name, password string) (*http.Client, string) {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, Timeout: passwordHashBound}
	body, _ := json.Marshal(map[string]string{"username": name, "password": password})
	for deadline := time.Now().Add(60 * time.Second); ; {
		status, h, b := e2eDo(t, c, http.MethodPost, base+"api/login", "application/json", string(body))
		switch {
		case status == http.StatusOK:
			return c, b
		case status == http.StatusTooManyRequests && time.Now().Before(deadline):
			secs, _ := strconv.Atoi(h.Get("Retry-After"))
			t.Logf("login as %s throttled; waiting the %d s Retry-After says", name, secs)
			time.Sleep(time.Duration(max(secs, 1)) * time.Second)
		default:
			t.Fatalf("login as %s: %d %s", name, status, b)
		}
	}
}

// e2eScanFiles reads every regular file under root and fails the test for each one that
// holds any of the needles (by name, e.g. the password raw, hex and base64). It returns
// the files read, relative to root.
func e2eScanFiles(t *testing.T, root string, needles map[string][]byte) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a temporary file that went away during the walk
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		files = append(files, filepath.ToSlash(rel))
		for what, n := range needles {
			if bytes.Contains(b, n) {
				t.Errorf("%s (%d bytes) holds the %s", rel, len(b), what)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// e2eNeedles are the forms a leaked password could take in a file or an answer.
func e2eNeedles(password string) map[string][]byte {
	return map[string][]byte{
		"password":           []byte(password),
		"password (hex)":     []byte(hex.EncodeToString([]byte(password))),
		"password (base64)":  []byte(base64.StdEncoding.EncodeToString([]byte(password))),
		"password (base64r)": []byte(base64.RawURLEncoding.EncodeToString([]byte(password))),
	}
}

// commonLogins are the 50 user name / password pairs an intruder tries first on a camera
// system: vendor defaults, the usual admin passwords, and Czech police and dispatch words.
var commonLogins = [][2]string{
	{"admin", "admin"}, {"admin", "password"}, {"root", "root"}, {"admin", "12345"}, {"user", "user"},
	{"operator", "operator"}, {"admin", "admin123"}, {"dispecer", "dispecer"}, {"policie", "policie"}, {"admin", ""},
	{"supervisor", "supervisor"}, {"root", "toor"}, {"admin", "123456"}, {"guest", "guest"}, {"administrator", "administrator"},
	{"admin", "1234"}, {"root", "12345"}, {"service", "service"}, {"dispecer", "heslo"}, {"Admin", "Admin"},
	{"townwatch", "townwatch"}, {"admin", "heslo"}, {"viewer", "viewer"}, {"policie", "policie123"}, {"root", "password"},
	{"demo", "demo"}, {"admin", "townwatch"}, {"test", "test"}, {"auditor", "auditor"}, {"officer", "officer"},
	{"dispatcher", "dispatcher"}, {"spravce", "spravce"}, {"admin", "admin1"}, {"ubnt", "ubnt"}, {"support", "support"},
	{"user", "password"}, {"dispecer", "123456"}, {"administrator", "password"}, {"system", "system"}, {"manager", "manager"},
	{"spravce", "heslo123"}, {"admin", "changeme"}, {"operator", "1234"}, {"pi", "raspberry"}, {"camera", "camera"},
	{"townwatch", "admin"}, {"security", "security"}, {"mestskapolicie", "mestskapolicie"}, {"straznik", "straznik"}, {"admin", "default"},
}

// TestFreshInstallHasNoDefaultLogin: a fresh install serves nothing but /healthz and the
// instruction to make the first account; once one exists, none of 50 common user name and
// password pairs logs in (each really checked, not merely throttled), the real password
// does, and that password is nowhere afterwards: not in any file under storage (the
// catalog, its WAL and shared memory included), not in the server's log, not in any answer.
func TestFreshInstallHasNoDefaultLogin(t *testing.T) {
	t.Parallel()
	cam := startSimcam(t, simcam.CameraSpec{Path: "static", Clip: simcam.ClipStatic})
	dir := t.TempDir()
	storage := filepath.Join(dir, "data")
	cfg := e2eWriteConfig(t, dir, cam, [2]string{"cam1", "static"})

	// A fresh install: no account. Every API route (and /metrics) is 503 naming the
	// command that makes the first account; /healthz answers.
	p := startServe(t, cfg)
	anonymous := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, rq := range []struct{ method, path, ctype, body string }{
		{"GET", "api/cameras", "", ""},
		{"GET", "api/me", "", ""},
		{"GET", "api", "", ""},
		{"GET", "api/cameras/cam1", "", ""},
		{"GET", "api/audit", "", ""},
		{"GET", "api/audit/verify", "", ""},
		{"GET", "api/events", "", ""},
		{"POST", "api/login", "application/json", `{"username":"admin","password":"admin"}`},
		{"POST", "api/logout", "application/json", `{}`},
		{"POST", "api/cameras/cam1/whep", "application/sdp", "v=0\r\n"},
		{"GET", "metrics", "", ""},
		{"GET", "", "", ""},
		{"GET", "login", "", ""},
	} {
		status, _, body := e2eDo(t, anonymous, rq.method, p.base+rq.path, rq.ctype, rq.body)
		if status != http.StatusServiceUnavailable || !strings.Contains(body, "townwatch user add") {
			t.Errorf("%s /%s without any account: %d %.200q; want 503 naming `townwatch user add`", rq.method, rq.path, status, body)
		}
		if strings.HasPrefix(rq.path, "api") {
			var msg struct{ Error string }
			if err := json.Unmarshal([]byte(body), &msg); err != nil || !strings.Contains(msg.Error, "townwatch user add") {
				t.Errorf("%s /%s: the 503 is not a JSON error naming the command: %q", rq.method, rq.path, body)
			}
		}
	}
	if status, _, body := e2eDo(t, anonymous, "GET", p.base+"healthz", "", ""); status != http.StatusOK || !strings.Contains(body, `"status"`) {
		t.Errorf("/healthz without any account: %d %q", status, body)
	}
	firstLog := p.stderr.String()
	stopServe(t, p)

	// The first account, with a password chosen here (random, so that finding it anywhere
	// is a leak, not a coincidence), plus a supervisor and an auditor to read the rest.
	password := "Tw-" + rand.Text()
	needles := e2eNeedles(password)
	cliOut := e2eAddAccountWithPassword(t, cfg, "spravce", "admin", password)
	addAccount(t, cfg, "velitel", "supervisor")
	addAccount(t, cfg, "dpo", "auditor")

	p = startServe(t, cfg)
	var answers []string // every answer body fetched, checked for the password at the end

	// The guesses. Each comes from its own loopback address (127.0.0.10 on), so the
	// per-address throttle (5, then one per 12 s) never hides a guess; the per-account one
	// (10, then one per 6 s: "admin" is tried 12 times) is waited out as Retry-After says and
	// the guess repeated, so that every pair is really checked and refused with 401.
	if len(commonLogins) != 50 {
		t.Fatalf("%d common logins, want 50", len(commonLogins))
	}
	guesses := slices.Clone(commonLogins)
	// Plus the classic slip: the password typed into the name field (and the name into the
	// password field). It must not log in, and the log must not keep the "name".
	guesses = append(guesses, [2]string{password, "spravce"})
	nextAddr := 10
	failedFrom := map[string]bool{} // client addresses whose guess got its 401
	var refused, throttled, admitted int
	started := time.Now()
	for _, g := range guesses {
		for deadline := time.Now().Add(60 * time.Second); ; {
			if nextAddr > 254 {
				t.Fatal("ran out of loopback addresses")
			}
			from := fmt.Sprintf("127.0.0.%d", nextAddr)
			nextAddr++
			status, body, retry := e2eLoginFrom(t, p.base, from, g[0], g[1])
			answers = append(answers, body)
			if status == http.StatusTooManyRequests {
				throttled++
				if time.Now().After(deadline) {
					t.Fatalf("login %q/%q still throttled after 60 s", g[0], g[1])
				}
				time.Sleep(max(retry, time.Second))
				continue
			}
			switch status {
			case http.StatusUnauthorized:
				refused++
				failedFrom[from] = true
			case http.StatusOK:
				admitted++
				t.Errorf("login as %q with password %q SUCCEEDED: %s", g[0], g[1], body)
			default:
				t.Errorf("login as %q with password %q: %d %s; want 401", g[0], g[1], status, body)
			}
			break
		}
	}
	t.Logf("%d guesses in %v: %d refused with 401 after a password check, %d answers 429 waited out, %d admitted",
		len(guesses), time.Since(started).Round(time.Millisecond), refused, throttled, admitted)
	if admitted != 0 || refused != len(guesses) {
		t.Errorf("of %d guesses %d were refused with 401 and %d admitted; want all refused", len(guesses), refused, admitted)
	}

	// The real password logs in, from 127.0.0.1, which guessed nothing.
	admin, body := e2eLogin(t, p.base, "spravce", password)
	answers = append(answers, body)
	var me struct {
		Name  string   `json:"name"`
		Roles []string `json:"roles"`
	}
	meBody := httpGet(t, admin, p.base+"api/me")
	answers = append(answers, meBody)
	if err := json.Unmarshal([]byte(meBody), &me); err != nil || me.Name != "spravce" || !slices.Equal(me.Roles, []string{"admin"}) {
		t.Errorf("/api/me of the first account: %s", meBody)
	}
	// An administrator sees no footage: /api/cameras is refused. /metrics is for it.
	status, _, body := e2eDo(t, admin, "GET", p.base+"api/cameras", "", "")
	answers = append(answers, body)
	if status != http.StatusForbidden {
		t.Errorf("/api/cameras as the admin: %d %s; want 403", status, body)
	}
	answers = append(answers, httpGet(t, admin, p.base+"metrics"))

	supervisor := loginClient(t, p.base, "velitel", accountPassword)
	camsBody := httpGet(t, supervisor, p.base+"api/cameras")
	answers = append(answers, camsBody, httpGet(t, supervisor, p.base+"api/me"))
	if !strings.Contains(camsBody, `"id":"cam1"`) {
		t.Errorf("/api/cameras as the supervisor does not list cam1: %.300s", camsBody)
	}

	// The auditor reads the whole log: one login.fail per refused guess, from the address
	// it came from, naming only existing accounts; the first account's login.ok.
	auditor := loginClient(t, p.base, "dpo", accountPassword)
	auditBody := httpGet(t, auditor, p.base+"api/audit?limit=5000")
	answers = append(answers, auditBody, httpGet(t, auditor, p.base+"api/audit?format=csv&limit=5000"),
		httpGet(t, auditor, p.base+"api/audit/verify"))
	var auditLog struct {
		Entries []struct {
			Actor   string `json:"actor"`
			Client  string `json:"client"`
			Action  string `json:"action"`
			Outcome string `json:"outcome"`
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(auditBody), &auditLog); err != nil {
		t.Fatalf("/api/audit: %v", err)
	}
	fails, loginsOK := 0, 0
	for _, e := range auditLog.Entries {
		switch e.Action {
		case access.AuditLoginFail:
			fails++
			if !failedFrom[e.Client] || e.Outcome != catalog.AuditDenied || (e.Actor != "unknown" && e.Actor != "spravce") {
				t.Errorf("login.fail row %+v: want a refused guess's address, outcome denied, actor unknown or spravce", e)
			}
		case access.AuditLoginOK:
			if e.Actor == "spravce" {
				loginsOK++
			}
		}
	}
	if fails != refused || loginsOK != 1 {
		t.Errorf("the access log has %d login.fail rows (want %d) and %d login.ok rows of spravce (want 1)", fails, refused, loginsOK)
	}

	// The password, nowhere: every file under storage while the server runs (the WAL and
	// the shared-memory file exist only then) and again after it stopped; the logs; the
	// answers.
	running := e2eScanFiles(t, storage, needles)
	for _, want := range []string{catalogFile, catalogFile + "-wal", catalogFile + "-shm"} {
		if !slices.Contains(running, want) {
			t.Errorf("storage while serving lacks %s (read: %v)", want, running)
		}
	}
	for i, a := range answers {
		for what, n := range needles {
			if strings.Contains(a, string(n)) {
				t.Errorf("answer %d holds the %s: %.300s", i, what, a)
			}
		}
	}
	stopServe(t, p)
	stopped := e2eScanFiles(t, storage, needles)
	t.Logf("password looked for in %d files under storage while serving and %d after the stop (%v), %d answers, %d bytes of log",
		len(running), len(stopped), running, len(answers), len(firstLog)+len(p.stderr.String()))
	for name, text := range map[string]string{"first serve's log": firstLog, "second serve's log": p.stderr.String(),
		"user add's output": cliOut} {
		for what, n := range needles {
			if strings.Contains(text, string(n)) {
				t.Errorf("the %s holds the %s", name, what)
			}
		}
	}
	if t.Failed() {
		t.Logf("townwatch stderr:\n%s", p.stderr.String())
	}
}

// e2eExecSQL runs stmt on the live catalog as a second process would, waiting out the
// server's write lock (busy_timeout) rather than failing on it.
func e2eExecSQL(t *testing.T, path, stmt string) {
	t.Helper()
	name := (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String() + "?_pragma=busy_timeout(10000)"
	db, err := sql.Open("sqlite", name)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

// e2eOffer makes the offer a browser's live tile makes: pion, one receive-only video
// transceiver, H.264 (packetization mode 1) only, loopback host candidates, all gathered.
func e2eOffer(t *testing.T) (*webrtc.PeerConnection, string) {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, PayloadType: 102},
		webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gathered:
	case <-time.After(10 * time.Second):
		t.Fatal("ICE gathering did not complete within 10 s")
	}
	sdp := pc.LocalDescription().SDP
	if !strings.Contains(sdp, "H264/90000") || !strings.Contains(sdp, "a=recvonly") || !strings.Contains(sdp, "packetization-mode=1") {
		t.Fatalf("the offer is not a recvonly H.264 one:\n%s", sdp)
	}
	return pc, sdp
}

// e2eRecording is a camera's recorder as /api/cameras shows it.
type e2eRecording struct {
	State    string `json:"state"`
	Segments uint64 `json:"segments"`
	Gaps     uint64 `json:"gaps"`
}

// e2eRecorders reads every camera's recorder from /api/cameras.
func e2eRecorders(t *testing.T, c *http.Client, base string) map[string]e2eRecording {
	t.Helper()
	var cams []struct {
		ID        string        `json:"id"`
		Recording *e2eRecording `json:"recording"`
	}
	if err := json.Unmarshal([]byte(httpGet(t, c, base+"api/cameras")), &cams); err != nil {
		t.Fatalf("/api/cameras: %v", err)
	}
	out := map[string]e2eRecording{}
	for _, cam := range cams {
		if cam.Recording != nil {
			out[cam.ID] = *cam.Recording
		}
	}
	return out
}

// e2eMetric reads one unlabelled sample from a /metrics text; -1 when it is absent.
func e2eMetric(text, name string) float64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return -1
	}
	return v
}

// TestAuditFailureWithholdsMediaButNotRecording: while the access log cannot be written
// (a trigger in the live catalog makes every audit insert fail, as a full or broken disk
// would), a live view is refused with 503 and no SDP answer, and the failure is counted;
// recording is not involved: both cameras keep making frames durable, roll over to new
// segments, and mark no gap. Once the log can be written again the next live view is
// answered and its live.start row is in the log, whose chain still verifies.
func TestAuditFailureWithholdsMediaButNotRecording(t *testing.T) {
	t.Parallel()
	specs := make([]simcam.CameraSpec, len(crashCameras))
	var cams [][2]string
	for i, c := range crashCameras {
		specs[i] = simcam.CameraSpec{Path: c.path, Clip: simcam.Clip(c.path)}
		cams = append(cams, [2]string{c.id, c.path})
	}
	cam := startSimcam(t, specs...)
	dir := t.TempDir()
	storage := filepath.Join(dir, "data")
	cfg := e2eWriteConfig(t, dir, cam, cams...)
	db := filepath.Join(storage, catalogFile)
	// Seeing the recorders takes a supervisor, their metrics an administrator.
	addAccount(t, cfg, "velitel", "supervisor,admin")

	p := startServe(t, cfg)
	p.waitRecording(t, "velitel")
	client := loginClient(t, p.base, "velitel", accountPassword)
	client.Timeout = 30 * time.Second
	metrics0 := httpGet(t, client, p.base+"metrics")
	failures0 := e2eMetric(metrics0, "townwatch_audit_write_failures_total")
	if failures0 < 0 {
		t.Fatalf("/metrics has no townwatch_audit_write_failures_total:\n%s", metrics0)
	}
	rec0 := e2eRecorders(t, client, p.base)

	// From here every audit insert fails, inside the running server's own transactions.
	e2eExecSQL(t, db, `CREATE TRIGGER fail_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(FAIL, 'audit disk full'); END`)
	failingSince := time.Now()
	_, frames0 := recordingFrames(client, p.base)
	t.Logf("audit writes fail from now; recorded frames %v, recorders %+v", frames0, rec0)

	// Live view of either camera: 503, no answer, no session.
	refusedViews := 0
	for _, c := range crashCameras {
		_, offer := e2eOffer(t)
		status, h, body := e2eDo(t, client, http.MethodPost, p.base+"api/cameras/"+c.id+"/whep", "application/sdp", offer)
		refusedViews++
		if status != http.StatusServiceUnavailable {
			t.Errorf("WHEP offer for %s while the access log fails: %d, want 503:\n%.300s", c.id, status, body)
		}
		if strings.Contains(body, "v=0") || strings.Contains(body, "a=fingerprint") || strings.Contains(h.Get("Content-Type"), "application/sdp") ||
			h.Get("Location") != "" {
			t.Errorf("WHEP refusal for %s carries an SDP answer or a session (Content-Type %q, Location %q):\n%s",
				c.id, h.Get("Content-Type"), h.Get("Location"), body)
		}
	}
	// The refusals are counted (each writes its live.start row first, which fails).
	var failures float64
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if failures = e2eMetric(httpGet(t, client, p.base+"metrics"), "townwatch_audit_write_failures_total"); failures >= failures0+float64(refusedViews) {
			break
		}
	}
	if failures < failures0+float64(refusedViews) {
		t.Errorf("townwatch_audit_write_failures_total %v after %d refused live views, was %v", failures, refusedViews, failures0)
	}
	if rec := e2eRecorders(t, client, p.base); rec["cam-a"].Segments == 0 {
		t.Errorf("recorders while the audit fails: %+v", rec)
	}

	// Recording goes on: for at least 5 s, and until every camera has started a new
	// segment under the failing log, the frames made durable keep rising (never still for
	// more than 4 s: fragments are 1 s), the recorders stay "recording" and count no gap.
	lastRise := map[string]time.Time{}
	lastFrames := map[string]float64{}
	for _, c := range crashCameras {
		lastRise[c.id], lastFrames[c.id] = failingSince, frames0[c.id]
	}
	var rec map[string]e2eRecording
	rolled := func() bool {
		for _, c := range crashCameras {
			if rec[c.id].Segments <= rec0[c.id].Segments {
				return false
			}
		}
		return true
	}
	for deadline := failingSince.Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		states, frames := recordingFrames(client, p.base)
		rec = e2eRecorders(t, client, p.base)
		now := time.Now()
		for _, c := range crashCameras {
			if frames[c.id] > lastFrames[c.id] {
				lastRise[c.id], lastFrames[c.id] = now, frames[c.id]
			}
			if still := now.Sub(lastRise[c.id]); still > 4*time.Second {
				t.Fatalf("camera %s: no frame made durable for %v while the access log fails (frames %v, states %v):\n%s",
					c.id, still.Round(time.Millisecond), frames, states, p.stderr.String())
			}
			if states[c.id] != "recording" || rec[c.id].Gaps != rec0[c.id].Gaps {
				t.Fatalf("camera %s while the access log fails: state %q, %d gaps (had %d); want recording, no new gap",
					c.id, states[c.id], rec[c.id].Gaps, rec0[c.id].Gaps)
			}
		}
		if now.Sub(failingSince) >= 5*time.Second && rolled() {
			break
		}
		if now.After(deadline) {
			t.Fatalf("30 s into the audit failure the recorders are %+v (were %+v); want a new segment on each camera", rec, rec0)
		}
	}
	failingUntil := time.Now()
	failuresAtEnd := e2eMetric(httpGet(t, client, p.base+"metrics"), "townwatch_audit_write_failures_total")
	for _, c := range crashCameras {
		t.Logf("camera %s: %v frames made durable while the access log failed (%v), segments %d → %d",
			c.id, lastFrames[c.id]-frames0[c.id], failingUntil.Sub(failingSince).Round(time.Millisecond),
			rec0[c.id].Segments, rec[c.id].Segments)
	}
	if !strings.Contains(p.stderr.String(), "audit disk full") {
		t.Errorf("the server's log does not name the audit failure")
	}

	// The log can be written again: the next live view is answered, and logged.
	e2eExecSQL(t, db, `DROP TRIGGER fail_audit`)
	pc, offer := e2eOffer(t)
	status, h, answer := e2eDo(t, client, http.MethodPost, p.base+"api/cameras/cam-a/whep", "application/sdp", offer)
	if status != http.StatusCreated || h.Get("Content-Type") != "application/sdp" || h.Get("Location") == "" {
		t.Fatalf("WHEP offer once the access log works again: %d (Content-Type %q, Location %q), want 201 with an answer:\n%s",
			status, h.Get("Content-Type"), h.Get("Location"), answer)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Errorf("the SDP answer does not apply: %v\n%s", err, answer)
	}
	if status, _, body := e2eDo(t, client, http.MethodDelete, strings.TrimSuffix(p.base, "/")+h.Get("Location"), "", ""); status != http.StatusNoContent {
		t.Errorf("DELETE %s: %d %s", h.Get("Location"), status, body)
	}
	after := e2eMetric(httpGet(t, client, p.base+"metrics"), "townwatch_audit_write_failures_total")
	stopServe(t, p)

	starts := auditRows(t, cfg, access.AuditLiveStart)
	if len(starts) != 1 || starts[0].Camera != "cam-a" || starts[0].Actor != "velitel" || starts[0].Outcome != catalog.AuditOK ||
		starts[0].Time.Before(failingUntil) {
		t.Errorf("live.start rows %+v; want one, for cam-a by velitel, after the log works again", starts)
	}
	if stops := auditRows(t, cfg, access.AuditLiveStop); len(stops) != 1 {
		t.Errorf("live.stop rows %+v; want the one view's", stops)
	}
	if after != failuresAtEnd {
		t.Errorf("townwatch_audit_write_failures_total rose from %v to %v after the log worked again", failuresAtEnd, after)
	}
	if code, stdout, stderr := runBinary(t, "audit", "verify", "-config", cfg); code != exitOK || !strings.Contains(stdout, "audit log intact") {
		t.Errorf("audit verify after the failure: exit %d\n%s%s", code, stdout, stderr)
	}

	// In the catalog: every segment begun while the log failed follows its predecessor
	// without a gap, and the catalog matches the files.
	snap := snapshotStorage(t, storage)
	checkConsistent(t, "after the stop", snap)
	begun := map[string]int{}
	for _, s := range snap.segs {
		if s.Start.Before(failingSince) || s.Start.After(failingUntil) {
			continue
		}
		begun[s.Camera]++
		if s.GapBefore {
			t.Errorf("segment %s, begun while the access log failed, has gap_before set", s.Path)
		}
	}
	for _, c := range crashCameras {
		if begun[c.id] == 0 {
			t.Errorf("camera %s: no segment in the catalog begun while the access log failed (%v to %v)", c.id,
				failingSince.Format(time.RFC3339Nano), failingUntil.Format(time.RFC3339Nano))
		}
	}
	if t.Failed() {
		t.Logf("townwatch stderr:\n%s", p.stderr.String())
	}
}
