package viewer

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// TLSFiles are the certificate chain and key townwatch serves HTTPS with (PEM).
type TLSFiles struct {
	CertFile, KeyFile string
}

// certReloadEvery bounds how often the files' modification times are looked at: a
// renewed certificate (certbot, a town's own CA) is picked up within this time, without
// a restart that would cut every live view.
const certReloadEvery = 10 * time.Second

// certReloader serves the certificate of TLSFiles, reloading it when either file
// changes. A renewal that fails to load keeps the old certificate and is logged.
type certReloader struct {
	files TLSFiles
	log   *slog.Logger
	now   func() time.Time

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string // both files' modification times and sizes
	checked time.Time
}

// config loads the certificate once (an error here stops the start: no HTTPS without a
// certificate) and returns a TLS configuration that reloads it; now is the clock the
// reload interval is measured with.
func (f *TLSFiles) config(log *slog.Logger, now func() time.Time) (*tls.Config, error) {
	r := &certReloader{files: *f, log: log, now: now}
	if err := r.load(); err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.get}, nil
}

func (r *certReloader) fileStamp() (string, error) {
	var stamp string
	for _, name := range []string{r.files.CertFile, r.files.KeyFile} {
		fi, err := os.Stat(name)
		if err != nil {
			return "", err
		}
		stamp += fmt.Sprintf("%d/%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return stamp, nil
}

func (r *certReloader) load() error {
	stamp, err := r.fileStamp()
	if err != nil {
		return fmt.Errorf("http.tls: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(r.files.CertFile, r.files.KeyFile)
	if err != nil {
		return fmt.Errorf("http.tls: %w", err)
	}
	r.cert, r.stamp, r.checked = &cert, stamp, r.now()
	return nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.now().Sub(r.checked) < certReloadEvery {
		return r.cert, nil
	}
	r.checked = r.now()
	if stamp, err := r.fileStamp(); err == nil && stamp != r.stamp {
		old := r.cert
		if err := r.load(); err != nil {
			r.cert = old
			r.log.Error("http.tls: the changed certificate cannot be loaded; serving the previous one", "err", err)
		} else {
			r.log.Info("http.tls: certificate reloaded", "cert_file", r.files.CertFile)
		}
	}
	return r.cert, nil
}

// loopbackListen reports whether http.listen binds loopback only.
func loopbackListen(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
