package ingest

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/townwatch/townwatch/configs"
)

// scriptedCamera is an RTSP server that answers by a script and records every
// Authorization header it is sent.
type scriptedCamera struct {
	addr string
	mu   sync.Mutex
	auth []string
}

func (c *scriptedCamera) authorizations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.auth...)
}

// startScriptedCamera answers each request with answer(method, cseq) (a whole response).
func startScriptedCamera(t *testing.T, answer func(method, cseq string) string) *scriptedCamera {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c := &scriptedCamera{addr: ln.Addr().String()}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					method, _, _ := strings.Cut(strings.TrimSpace(line), " ")
					var cseq string
					for {
						h, err := br.ReadString('\n')
						if err != nil {
							return
						}
						h = strings.TrimSpace(h)
						if h == "" {
							break
						}
						name, value, _ := strings.Cut(h, ":")
						switch strings.ToLower(strings.TrimSpace(name)) {
						case "cseq":
							cseq = strings.TrimSpace(value)
						case "authorization":
							c.mu.Lock()
							c.auth = append(c.auth, strings.TrimSpace(value))
							c.mu.Unlock()
						}
					}
					if _, err := conn.Write([]byte(answer(method, cseq))); err != nil {
						return
					}
				}
			}()
		}
	}()
	return c
}

func rtspAnswer(cseq, status string, headers ...string) string {
	return "RTSP/1.0 " + status + "\r\nCSeq: " + cseq + "\r\n" + strings.Join(headers, "") + "\r\n"
}

// collector asks for credentials, Basic and Digest both, and records what it gets.
func collector(method, cseq string) string {
	if method == "OPTIONS" {
		return rtspAnswer(cseq, "200 OK", "Public: OPTIONS, DESCRIBE, SETUP, PLAY\r\n")
	}
	return rtspAnswer(cseq, "401 Unauthorized", "WWW-Authenticate: Basic realm=\"cam\"\r\n",
		"WWW-Authenticate: Digest realm=\"cam\", nonce=\"0123456789abcdef\"\r\n")
}

func waitFailed(t *testing.T, src *runningSource, contains string) Status {
	t.Helper()
	return waitState(t, src, 15*time.Second, "failed: "+contains, func(st Status) bool {
		return st.State == StateFailed && strings.Contains(st.Reason, contains)
	})
}

// A camera (or whoever answers in its place) that redirects DESCRIBE to another server
// must not get townwatch to send that server the camera's credentials; the camera is
// failed with the reason, and the password is in no status.
func TestRedirectToAnotherHostGetsNoCredentials(t *testing.T) {
	thief := startScriptedCamera(t, collector)
	camera := startScriptedCamera(t, func(method, cseq string) string {
		if method == "OPTIONS" {
			return rtspAnswer(cseq, "200 OK", "Public: OPTIONS, DESCRIBE, SETUP, PLAY\r\n")
		}
		return rtspAnswer(cseq, "302 Moved Temporarily", "Location: rtsp://"+thief.addr+"/stream\r\n")
	})
	src := startSource(t, NewHub(), "redirected", configs.Stream{
		URL: "rtsp://admin:tajne-heslo@" + camera.addr + "/cam", Transport: configs.TransportTCP, StallTimeout: testStallTimeout,
	})
	st := waitFailed(t, src, "redirect refused")
	if got := thief.authorizations(); len(got) > 0 {
		t.Fatalf("the other host received credentials: %q", got)
	}
	if strings.Contains(fmt.Sprintf("%+v", st), "tajne-heslo") || strings.Contains(src.logs.String(), "tajne-heslo") {
		t.Fatal("the password appears in the status or the log")
	}
	t.Logf("status: %s", st.Reason)
}

// Basic authentication over plain rtsp:// is refused unless the camera allows it; with
// allow_basic_without_tls the camera gets it.
func TestBasicOverPlainRTSPNeedsConsent(t *testing.T) {
	basicOnly := func(method, cseq string) string {
		if method == "OPTIONS" {
			return rtspAnswer(cseq, "200 OK", "Public: OPTIONS, DESCRIBE, SETUP, PLAY\r\n")
		}
		return rtspAnswer(cseq, "401 Unauthorized", "WWW-Authenticate: Basic realm=\"cam\"\r\n")
	}
	refusing := startScriptedCamera(t, basicOnly)
	src := startSource(t, NewHub(), "basic", configs.Stream{
		URL: "rtsp://admin:tajne-heslo@" + refusing.addr + "/cam", Transport: configs.TransportTCP, StallTimeout: testStallTimeout,
	})
	waitFailed(t, src, "allow_basic_without_tls")
	for _, h := range refusing.authorizations() {
		if strings.HasPrefix(strings.ToLower(h), "basic") {
			t.Fatalf("Basic credentials went over plain RTSP: %q", h)
		}
	}

	allowing := startScriptedCamera(t, basicOnly)
	startSource(t, NewHub(), "basic-allowed", configs.Stream{
		URL: "rtsp://admin:tajne-heslo@" + allowing.addr + "/cam", Transport: configs.TransportTCP, StallTimeout: testStallTimeout,
		AllowBasicWithoutTLS: true,
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if got := allowing.authorizations(); len(got) > 0 {
			if !strings.HasPrefix(got[0], "Basic ") {
				t.Fatalf("want Basic credentials with consent, got %q", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("with allow_basic_without_tls the camera never got credentials")
		}
	}
}
