package simcam

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// selfSigned is SelfSignedCert for 127.0.0.1, failing the test on error.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	cert, pool, err := SelfSignedCert(net.IPv4(127, 0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	return cert, pool
}

func TestTLSValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		tls  *tls.Config
		want string
	}{
		{"no certificate", &tls.Config{},
			"simcam: tls: no certificate: set Certificates, GetCertificate or GetConfigForClient"},
		{"no key", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{{1}}}}},
			"simcam: tls: certificates[0]: certificate chain and private key are required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Config{Listen: "127.0.0.1:0", TLS: tc.tls})
			if err == nil || err.Error() != tc.want {
				t.Errorf("New() error %v, want %s", err, tc.want)
			}
			if s != nil {
				t.Error("New returned a server with an error")
			}
		})
	}
}

// TestTLSServe serves RTSPS and reads it over TCP (interleaved in TLS) and
// UDP (SRTP), trusting the test certificate; a plain RTSP client gets
// nothing from the TLS listener.
func TestTLSServe(t *testing.T) {
	t.Parallel()
	cert, pool := selfSigned(t)
	conf := &tls.Config{Certificates: []tls.Certificate{cert}}
	s, _ := startServerConfig(t, Config{Cameras: []CameraSpec{{Path: "cam", Clip: ClipStatic}}, TLS: conf}, nil)
	if s.tls == conf {
		t.Error("New kept the caller's tls.Config instead of a clone")
	}

	url := s.URL("cam")
	if want := "rtsps://" + s.Addr() + "/cam"; url != want {
		t.Fatalf("URL = %q, want %q", url, want)
	}
	for _, tr := range []gortsplib.Transport{gortsplib.TransportTCP, gortsplib.TransportUDP} {
		t.Run(tr.String(), func(t *testing.T) {
			t.Parallel()
			p := playTLS(t, url, tr, &tls.Config{RootCAs: pool})
			if !p.medi.Secure && tr == gortsplib.TransportUDP {
				t.Error("media not offered as secure (SRTP) over RTSPS")
			}
			// The first frame reported is an IDR (the reader waits for one).
			au := p.next(t)
			if !h264.IsRandomAccess(au.nalus) {
				t.Error("first frame is not an IDR")
			}
		})
	}
	t.Run("plain-rtsp", func(t *testing.T) {
		t.Parallel()
		if _, err := describe(t, strings.Replace(url, "rtsps://", "rtsp://", 1)); err == nil {
			t.Error("plain RTSP DESCRIBE succeeded against the RTSPS listener")
		}
	})
}
