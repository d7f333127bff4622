package viewer

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// The node route is opened by the node token and by nothing else: no token, a wrong one,
// the token as a bearer and any user's session get 401; and the node token opens no other
// route.
func TestNodeRouteTakesOnlyTheNodeToken(t *testing.T) {
	rig := newRouteRig(t)
	h := rig.server.Handler()
	rig.fx.addUser(t, "velitel", []access.Role{access.Supervisor, access.Admin}, true)
	session := login(t, h, "velitel")
	for _, path := range []string{"/api/node/segments/" + segmentNamesti + "/media", "/api/node/segments/" + segmentNamesti + "/thumbs"} {
		ask := func(mod func(*http.Request)) *httptest.ResponseRecorder {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			mod(req)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return rec
		}
		for name, mod := range map[string]func(*http.Request){
			"no token":          func(*http.Request) {},
			"wrong token":       func(r *http.Request) { r.Header.Set(NodeTokenHeader, "rig-node-token-0123456789abcdeX") },
			"a prefix of it":    func(r *http.Request) { r.Header.Set(NodeTokenHeader, rigNodeToken[:10]) },
			"token as a bearer": func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+rigNodeToken) },
			"token in the URL":  func(r *http.Request) { r.URL.RawQuery = "token=" + rigNodeToken },
			"user session":      func(r *http.Request) { r.AddCookie(session) },
		} {
			if rec := ask(mod); rec.Code != http.StatusUnauthorized || strings.Contains(rec.Body.String(), rigNodeToken) {
				t.Errorf("%s, %s: %d %s; want 401 without the token", path, name, rec.Code, rec.Body)
			}
		}
		// With the token the guard lets it through: the rig's segment is on no node's
		// disk, which the handler (not the guard) answers.
		rec := ask(func(r *http.Request) { r.Header.Set(NodeTokenHeader, rigNodeToken) })
		if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "not on this node") {
			t.Errorf("%s with the node token: %d %s; want the handler's 404 (not on this node)", path, rec.Code, rec.Body)
		}
	}

	for _, rt := range rig.server.table() {
		if rt.action == access.ActionPublic || rt.action == access.ActionNode {
			continue
		}
		withToken := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Header.Set(NodeTokenHeader, rigNodeToken)
			r.Header.Set("Authorization", "Bearer "+rigNodeToken)
			h.ServeHTTP(w, r)
		})
		if status, body := requestRoute(withToken, rt, "namesti"); status != http.StatusUnauthorized && status != http.StatusSeeOther {
			t.Errorf("%s with the node token: %d %s; want 401 (or the login page)", rt.pattern, status, body)
		}
	}
}

// proxyMedia passes the client's Range to the owner with the node token in a header, and
// the owner's partial answer back as it is; an owner that refuses or is unknown gives the
// client 502 naming the node, never the token. What it fetched is counted per owner.
func TestProxyMediaPassesRangeAndRefusalsOn(t *testing.T) {
	file := []byte(strings.Repeat("0123456789", 100))
	var gotToken, gotRange, gotQuery string
	owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotToken, gotRange, gotQuery = r.Header.Get(NodeTokenHeader), r.Header.Get("Range"), r.URL.RawQuery
		if r.URL.Path != nodeMediaPath(7) {
			http.NotFound(w, r)
			return
		}
		if gotToken != "uzel-token" {
			http.Error(w, "node token required", http.StatusUnauthorized)
			return
		}
		w.Header().Set("ETag", `"digest"`)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(file))
	}))
	defer owner.Close()
	advertise := map[string]string{"a": owner.URL, "c": ""}
	peers := &Peers{Self: "b", Token: "uzel-token",
		Advertise: func(_ context.Context, node string) (string, error) { return advertise[node], nil }}
	pb := &Playback{peers: peers}
	fetch := func(node string, rangeHeader string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/api/segments/7/media", nil)
		if rangeHeader != "" {
			req.Header.Set("Range", rangeHeader)
		}
		rec := httptest.NewRecorder()
		pb.proxyMedia(rec, req, catalog.Segment{ID: 7, Node: node})
		return rec
	}

	rec := fetch("a", "bytes=10-29")
	if rec.Code != http.StatusPartialContent || !bytes.Equal(rec.Body.Bytes(), file[10:30]) ||
		rec.Header().Get("Content-Range") != "bytes 10-29/1000" || rec.Header().Get("ETag") != `"digest"` {
		t.Errorf("range through the proxy: %d %q %v", rec.Code, rec.Body, rec.Header())
	}
	if gotToken != "uzel-token" || gotRange != "bytes=10-29" || gotQuery != "" {
		t.Errorf("the owner got token %q, Range %q, query %q; want the token in the header only and the client's Range", gotToken, gotRange, gotQuery)
	}

	peers.Token = "another-token" // a node configured with a different token
	rec = fetch("a", "")
	if body := rec.Body.String(); rec.Code != http.StatusBadGateway || !strings.Contains(body, `node \"a\"`) ||
		strings.Contains(body, "another-token") || strings.Contains(body, "uzel-token") {
		t.Errorf("owner refusing: %d %s; want 502 naming node a, and no token", rec.Code, rec.Body)
	}
	if rec := fetch("c", ""); rec.Code != http.StatusBadGateway || !strings.Contains(rec.Body.String(), "address is unknown") {
		t.Errorf("owner without an address: %d %s; want 502", rec.Code, rec.Body)
	}

	got := peers.Proxied()
	if want := (ProxyStats{Requests: 2, Bytes: 20, Failures: 1}); got["a"] != want {
		t.Errorf("counted for a: %+v, want %+v", got["a"], want)
	}
	if want := (ProxyStats{Requests: 1, Failures: 1}); got["c"] != want {
		t.Errorf("counted for c: %+v, want %+v", got["c"], want)
	}
}

// With node.ca_file, a node fetches from an owner whose certificate that CA signed, and
// refuses one whose certificate the system's roots or another CA vouch for: the node token
// is in the request, and must reach no other server.
func TestProxyMediaTrustsOnlyTheNodeCA(t *testing.T) {
	file := []byte(strings.Repeat("záznam ", 100))
	owner := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(file))
	}))
	defer owner.Close()
	pool := func(c *x509.Certificate) *x509.CertPool {
		p := x509.NewCertPool()
		p.AddCert(c)
		return p
	}
	for _, tt := range []struct {
		name   string
		client *http.Client
		want   int
	}{
		{"the owner's CA", PeerClient(pool(owner.Certificate())), http.StatusPartialContent},
		{"system roots", PeerClient(nil), http.StatusBadGateway},
		{"another CA", PeerClient(pool(otherCA(t))), http.StatusBadGateway},
	} {
		t.Run(tt.name, func(t *testing.T) {
			peers := &Peers{Self: "b", Token: "uzel-token", Client: tt.client,
				Advertise: func(context.Context, string) (string, error) { return owner.URL, nil }}
			req := httptest.NewRequest(http.MethodGet, "/api/segments/7/media", nil)
			req.Header.Set("Range", "bytes=0-9")
			rec := httptest.NewRecorder()
			(&Playback{peers: peers}).proxyMedia(rec, req, catalog.Segment{ID: 7, Node: "a"})
			if rec.Code != tt.want {
				t.Fatalf("status %d (%s), want %d", rec.Code, rec.Body, tt.want)
			}
			if tt.want == http.StatusPartialContent && !bytes.Equal(rec.Body.Bytes(), file[:10]) {
				t.Errorf("body %q, want the owner's first 10 bytes", rec.Body)
			}
		})
	}
}

// otherCA is a self-signed CA certificate for localhost that signed nothing the test
// servers present (httptest's servers all share one certificate).
func otherCA(t *testing.T) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "another town's CA"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
