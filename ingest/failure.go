package ingest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
)

// Errors a session ends with that are ours, not the network's.
var (
	errStalled          = errors.New("stalled")
	errUnsupportedCodec = errors.New("unsupported codec")
	errCredentials      = errors.New("credentials")
	errCertificate      = errors.New("certificate")
	errInvalidResponse  = errors.New("camera sent an invalid response")
	errInternal         = errors.New("internal error while reading the stream")
	errResolution       = errors.New("resolution refused")
)

// protocolError marks an error of an RTSP request that is neither the network's nor a
// status code the camera chose: the camera answered something that is not RTSP or not a
// usable description. Network errors and status codes pass through unchanged.
func protocolError(err error) error {
	var op *net.OpError
	var bad liberrors.ErrClientBadStatusCode
	var ne net.Error
	var verify *tls.CertificateVerificationError
	if errors.As(err, &op) || errors.As(err, &bad) || errors.As(err, &ne) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, errCertificate) || errors.As(err, &verify) {
		return err // the TLS handshake happens in the first request: a certificate problem is not garbage
	}
	return fmt.Errorf("%w: %w", errInvalidResponse, err)
}

// failure is how a failed session is reported: which state, why, and whether the camera
// looked gone (so its return can be probed for).
type failure struct {
	state      State
	reason     string
	cameraGone bool
}

// classify turns a session error into a failure a dispatcher can act on. Errors that need a
// person (credentials, unknown path, codec, certificate) are StateFailed; the rest are
// transient and StateBackoff.
func classify(err error) failure {
	if err == nil {
		return failure{state: StateBackoff, reason: "session ended"}
	}
	var bad liberrors.ErrClientBadStatusCode
	if errors.As(err, &bad) {
		switch bad.Code {
		case base.StatusUnauthorized:
			return failure{state: StateFailed, reason: "authentication failed (401 Unauthorized): check the username and password"}
		case base.StatusForbidden:
			return failure{state: StateFailed, reason: "access denied (403 Forbidden): the camera refuses this user"}
		case base.StatusNotFound:
			return failure{state: StateFailed, reason: "stream not found (404 Not Found): check the URL path"}
		}
		return failure{state: StateBackoff, reason: fmt.Sprintf("camera answered %d %s", bad.Code, bad.Message)}
	}
	var authority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var verify *tls.CertificateVerificationError
	if errors.Is(err, errUnsupportedCodec) || errors.Is(err, errCredentials) || errors.Is(err, errCertificate) ||
		errors.Is(err, errInvalidResponse) || errors.Is(err, errRedirect) || errors.Is(err, errBasicPlain) || errors.Is(err, errResolution) ||
		errors.As(err, &authority) || errors.As(err, &hostname) || errors.As(err, &verify) {
		return failure{state: StateFailed, reason: err.Error()}
	}
	if errors.Is(err, errStalled) || errors.Is(err, errClockJump) || errors.Is(err, errInternal) {
		return failure{state: StateBackoff, reason: err.Error()}
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return failure{state: StateBackoff, reason: "camera unreachable: " + dialReason(op), cameraGone: true}
	}
	return failure{state: StateBackoff, reason: "connection lost: " + err.Error()}
}

// dialReason shortens a dial error to what matters ("connection refused", "i/o timeout").
func dialReason(op *net.OpError) string {
	msg := op.Err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return msg
}

// dialAddress returns host:port of an RTSP URL with the scheme's default port, or "" when the
// URL cannot be parsed.
func dialAddress(raw string) string {
	u, err := base.ParseURL(raw)
	if err != nil {
		return ""
	}
	if u.Port() != "" {
		return u.Host
	}
	port := "554"
	if u.Scheme == "rtsps" {
		port = "322"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// scrubSecret removes a password from an error message. gortsplib and net/url may quote the
// URL they were given; the password must never reach a log line or the status API.
func scrubSecret(err error, dialURL string) error {
	if err == nil {
		return nil
	}
	u, perr := url.Parse(dialURL)
	if perr != nil || u.User == nil {
		return err
	}
	pass, ok := u.User.Password()
	if !ok || pass == "" {
		return err
	}
	msg := err.Error()
	if !strings.Contains(msg, pass) && !strings.Contains(msg, url.PathEscape(pass)) {
		return err
	}
	msg = strings.ReplaceAll(msg, url.PathEscape(pass), "***")
	msg = strings.ReplaceAll(msg, pass, "***")
	return &scrubbedError{msg: msg, err: err}
}

// scrubbedError keeps the original error for errors.Is/As but prints the scrubbed text.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// FailureClass is what kind of failure ended a session, in the words a probe answers
// with: each names what the administrator has to change.
type FailureClass string

// The failure classes.
const (
	FailureAuth             FailureClass = "auth"              // credentials refused, or withheld by townwatch (Basic over plain RTSP, a redirect)
	FailureNotFound         FailureClass = "not_found"         // no stream at that path
	FailureUnreachable      FailureClass = "unreachable"       // no TCP connection to the camera
	FailureTimeout          FailureClass = "timeout"           // connected, but no answer or no keyframe in time
	FailureUnsupportedCodec FailureClass = "unsupported_codec" // no H.264/H.265 video townwatch can take
	FailureTLSMismatch      FailureClass = "tls_mismatch"      // the certificate is not the pinned or a trusted one, or the port speaks no TLS
	FailureProtocol         FailureClass = "protocol"          // anything else the camera answered wrongly
)

// FailureOf classifies an error returned by Source.Once; "" for nil. A session ended by
// its context (the probe's deadline) is a timeout.
func FailureOf(err error) FailureClass {
	if err == nil {
		return ""
	}
	var bad liberrors.ErrClientBadStatusCode
	if errors.As(err, &bad) {
		switch bad.Code {
		case base.StatusUnauthorized, base.StatusForbidden:
			return FailureAuth
		case base.StatusNotFound:
			return FailureNotFound
		}
		return FailureProtocol
	}
	var authority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var verify *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	var op *net.OpError
	var ne net.Error
	switch {
	case errors.Is(err, errCredentials) || errors.Is(err, errBasicPlain) || errors.Is(err, errRedirect):
		return FailureAuth
	case errors.Is(err, errUnsupportedCodec):
		return FailureUnsupportedCodec
	case errors.Is(err, errCertificate) || errors.As(err, &authority) || errors.As(err, &hostname) ||
		errors.As(err, &verify) || errors.As(err, &record):
		return FailureTLSMismatch
	case errors.As(err, &op) && op.Op == "dial":
		return FailureUnreachable
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, errStalled) ||
		(errors.As(err, &ne) && ne.Timeout()):
		return FailureTimeout
	}
	return FailureProtocol
}
