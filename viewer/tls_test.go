package viewer

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest/simcam"
	"github.com/townwatch/townwatch/viewer/access"
)

// writeCert makes a fresh self-signed certificate for 127.0.0.1 and writes it and its key
// as PEM files; it returns the certificate's DER bytes to recognise it by.
func writeCert(t *testing.T, certFile, keyFile string) []byte {
	t.Helper()
	cert, _, err := simcam.SelfSignedCert(net.IPv4(127, 0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert.Certificate[0]
}

// servedCert makes a new TLS connection to addr and returns the certificate it was shown.
func servedCert(t *testing.T, addr string) []byte {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) // the test compares the certificate itself
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Raw
}

// TestHTTPSServesAndReloadsTheCertificate: with http.tls townwatch speaks only HTTPS, its
// session cookie is Secure with the __Host- prefix, a renewed certificate is served
// without a restart, and a broken renewal keeps the working one.
func TestHTTPSServesAndReloadsTheCertificate(t *testing.T) {
	fx := newAccessFixture(t)
	fx.opts.SecureCookies = true
	fx.addUser(t, "velitel", []access.Role{access.Supervisor}, false)
	dir := t.TempDir()
	files := &TLSFiles{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}
	first := writeCert(t, files.CertFile, files.KeyFile)
	s, err := New(Options{Listen: "127.0.0.1:0", Access: fx.opts, TLS: files, Metrics: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	runOwned(t, "Server.Run", s.Run)
	waitReady(t, "HTTPS server", s.Ready())
	addr := s.Addr().String()

	if got := servedCert(t, addr); !bytes.Equal(got, first) {
		t.Fatal("the server does not show the configured certificate")
	}
	// Plain HTTP gets no answer a browser could use: the port speaks TLS only.
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP was served on the HTTPS port")
		}
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 10 * time.Second}
	resp, err := client.Post("https://"+addr+"/api/login", "application/json", strings.NewReader(`{"username":"velitel","password":"`+testPassword+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookies := resp.Cookies()
	if resp.StatusCode != http.StatusOK || len(cookies) != 1 || !cookies[0].Secure || !cookies[0].HttpOnly ||
		!strings.HasPrefix(cookies[0].Name, "__Host-") || cookies[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("login over HTTPS: %d, cookies %+v; want one Secure, HttpOnly, SameSite=Strict __Host- cookie", resp.StatusCode, cookies)
	}

	// A renewal: picked up by new connections once the reload interval has passed.
	second := writeCert(t, files.CertFile, files.KeyFile)
	if got := servedCert(t, addr); !bytes.Equal(got, first) {
		t.Error("the certificate changed before the reload interval")
	}
	fx.clock.Advance(certReloadEvery + time.Second)
	if got := servedCert(t, addr); !bytes.Equal(got, second) {
		t.Fatal("the renewed certificate is not served after the reload interval")
	}
	// A broken renewal (a half-written file) keeps the working certificate.
	if err := os.WriteFile(files.CertFile, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fx.clock.Advance(certReloadEvery + time.Second)
	if got := servedCert(t, addr); !bytes.Equal(got, second) {
		t.Fatal("a broken certificate file replaced the working certificate")
	}
}

// TestHTTPSWithoutItsCertificateDoesNotStart: a missing certificate stops the start with
// an error naming http.tls, before anything listens (no silent plain-HTTP fallback).
func TestHTTPSWithoutItsCertificateDoesNotStart(t *testing.T) {
	fx := newAccessFixture(t)
	dir := t.TempDir()
	s, err := New(Options{Listen: "127.0.0.1:0", Access: fx.opts, Metrics: http.NotFoundHandler(),
		TLS: &TLSFiles{CertFile: filepath.Join(dir, "missing.pem"), KeyFile: filepath.Join(dir, "missing.key")}})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "http.tls") || !strings.Contains(err.Error(), "missing.pem") {
		t.Fatalf("Run = %v; want an error naming http.tls and the file", err)
	}
	select {
	case <-s.Ready():
		t.Error("the server reported ready (listening) without its certificate")
	default:
	}
}
