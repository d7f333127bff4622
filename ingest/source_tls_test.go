package ingest

// RTSPS against simcam serving a self-signed certificate: pinned by its SHA-256 fingerprint
// the camera streams; a wrong fingerprint or no fingerprint (system roots) must fail for a
// person to fix, and never stream.

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest/simcam"
)

// selfSignedCert returns a self-signed certificate for 127.0.0.1, as cameras ship.
func selfSignedCert(t *testing.T) tls.Certificate {
	t.Helper()
	cert, _, err := simcam.SelfSignedCert(net.IPv4(127, 0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// colonUpper writes a hex fingerprint as AB:CD:..., the way browsers and openssl show it.
func colonUpper(fp string) string {
	var parts []string
	for i := 0; i < len(fp); i += 2 {
		parts = append(parts, strings.ToUpper(fp[i:i+2]))
	}
	return strings.Join(parts, ":")
}

// neverStreams fails the test if the Source streams or publishes during d.
func neverStreams(t *testing.T, src *runningSource, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if st := src.Status(); st.State == StateStreaming || st.ReceivedFrames != 0 {
			t.Fatalf("a camera with an untrusted certificate streams: %+v", st)
		}
	}
	if src.hub.Current(src.Camera(), StreamMain) != nil {
		t.Error("a camera with an untrusted certificate published a stream")
	}
}

func TestSourceRTSPS(t *testing.T) {
	t.Parallel()
	cert := selfSignedCert(t)
	sum := sha256.Sum256(cert.Certificate[0])
	fingerprint := hex.EncodeToString(sum[:])
	cam := startSimcam(t, simcam.Config{
		Cameras: []simcam.CameraSpec{{Path: "vault", Clip: simcam.ClipStatic}},
		TLS:     &tls.Config{Certificates: []tls.Certificate{cert}},
	})
	url := cam.URL("vault")
	if !strings.HasPrefix(url, "rtsps://") {
		t.Fatalf("simcam URL %q is not rtsps", url)
	}
	stream := func(fp string) configs.Stream {
		return configs.Stream{URL: url, Transport: configs.TransportTCP, StallTimeout: testStallTimeout, TLSFingerprint: fp}
	}

	for _, tc := range []struct{ name, fp string }{
		{"pinned", fingerprint},
		{"pinned-colons-upper", colonUpper(fingerprint)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := startSource(t, NewHub(), "vault-"+tc.name, stream(tc.fp))
			// Frames are counted from the first keyframe, at most one GOP (2 s) in.
			st := waitState(t, src, 10*time.Second, "frames over RTSPS", hasFrames)
			if st.Transport != "TCP" {
				t.Errorf("transport %q, want TCP", st.Transport)
			}
		})
	}

	t.Run("wrong-fingerprint", func(t *testing.T) {
		t.Parallel()
		wrong := sha256.Sum256([]byte("another camera"))
		src := startSource(t, NewHub(), "vault-wrong", stream(hex.EncodeToString(wrong[:])))
		st := waitState(t, src, 10*time.Second, "failed", func(st Status) bool { return st.State == StateFailed })
		if strings.Contains(st.Reason, "invalid response") {
			t.Errorf("reason %q blames the camera's answer, not its certificate", st.Reason)
		}
		if !strings.Contains(st.Reason, "fingerprint") || !strings.Contains(st.Reason, "certificate") {
			t.Errorf("reason %q, want it to mention the certificate fingerprint", st.Reason)
		}
		// The reason names the fingerprint the camera presented, for the operator to check.
		if !strings.Contains(st.Reason, fingerprint) {
			t.Errorf("reason %q does not show the camera's fingerprint %s", st.Reason, fingerprint)
		}
		neverStreams(t, src, 2*time.Second)
	})

	t.Run("system-roots", func(t *testing.T) {
		t.Parallel()
		src := startSource(t, NewHub(), "vault-roots", stream(""))
		st := waitState(t, src, 10*time.Second, "failed", func(st Status) bool { return st.State == StateFailed })
		if strings.Contains(st.Reason, "invalid response") {
			t.Errorf("reason %q blames the camera's answer, not its certificate", st.Reason)
		}
		if !strings.Contains(st.Reason, "certificate") || !strings.Contains(st.Reason, "unknown authority") {
			t.Errorf("reason %q, want a certificate signed by unknown authority", st.Reason)
		}
		neverStreams(t, src, 2*time.Second)
	})
}
