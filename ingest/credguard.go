package ingest

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
)

// Errors of a camera whose requests would hand its credentials to the wrong party.
var (
	errRedirect   = errors.New("redirect refused")
	errBasicPlain = errors.New("basic authentication over plain RTSP refused")
)

// credentialGuard looks at every request the RTSP client is about to send and keeps the
// camera's credentials from going where they must not:
//   - to another host or scheme: the client follows a DESCRIBE redirect by itself and
//     answers the new server's 401 with the camera's password, so a compromised camera (or
//     anyone answering in its place) could collect it with one Location header;
//   - as Basic authentication over plain rtsp://, where the password crosses the camera
//     network readable, unless the camera is configured with allow_basic_without_tls.
//
// It removes the Authorization header from such a request before it is written, and
// remembers why, so the session ends with that reason. It is called from the client's
// goroutines (requests and keep-alives), hence the lock.
//
// The host is checked only while DESCRIBE runs, the one request the client follows to
// another server. Later requests name the stream by the camera's Content-Base, which is
// often another address of the same camera (its LAN IP behind a NAT or DNS name), but
// they go over the connection already open to the camera.
type credentialGuard struct {
	scheme, host string // where the camera is: the scheme and host:port of its URL
	allowBasic   bool

	mu         sync.Mutex
	describing bool
	refused    error
}

func newCredentialGuard(u *base.URL, allowBasic bool) *credentialGuard {
	return &credentialGuard{scheme: u.Scheme, host: hostPort(u), allowBasic: allowBasic}
}

// hostPort is the URL's host with the scheme's default port made explicit, so that
// rtsp://cam/ and rtsp://cam:554/ are the same place.
func hostPort(u *base.URL) string {
	if u.Port() != "" {
		return strings.ToLower(u.Host)
	}
	port := "554"
	if u.Scheme == "rtsps" {
		port = "322"
	}
	return strings.ToLower(u.Hostname()) + ":" + port
}

func (g *credentialGuard) onRequest(req *base.Request) {
	if req.URL == nil {
		return
	}
	g.mu.Lock()
	describing := g.describing
	g.mu.Unlock()
	var why error
	switch {
	case describing && (req.URL.Scheme != g.scheme || hostPort(req.URL) != g.host):
		why = fmt.Errorf("%w: the camera sent townwatch to %s://%s; townwatch does not follow a camera to another host or scheme, nor send its credentials there: put the final address in the camera's url",
			errRedirect, req.URL.Scheme, req.URL.Host)
	case g.scheme == "rtsp" && !g.allowBasic && isBasic(req.Header["Authorization"]):
		why = fmt.Errorf("%w: the camera offers only Basic authentication, which would send its password readable over rtsp://; use rtsps://, enable digest authentication on the camera, or set allow_basic_without_tls: true",
			errBasicPlain)
	default:
		return
	}
	delete(req.Header, "Authorization")
	g.mu.Lock()
	if g.refused == nil {
		g.refused = why
	}
	g.mu.Unlock()
}

// describe marks the DESCRIBE phase (see credentialGuard).
func (g *credentialGuard) describe(on bool) {
	g.mu.Lock()
	g.describing = on
	g.mu.Unlock()
}

// err is why a request was stripped of its credentials, or nil.
func (g *credentialGuard) err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refused
}

func isBasic(v base.HeaderValue) bool {
	for _, h := range v {
		if len(h) >= 6 && strings.EqualFold(h[:6], "basic ") {
			return true
		}
	}
	return false
}
