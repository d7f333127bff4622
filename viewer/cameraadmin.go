package viewer

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/ingest/onvif"
	"github.com/townwatch/townwatch/ingest/probe"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// Camera administration tools, for the admin role (access.ActionAdmin):
//
//	POST /api/cameras/probe   {url, username, password, transport, tls_fingerprint}
//	                          one throwaway RTSP session: what the camera sends, or why not
//	GET  /api/onvif/discover?iface=   ONVIF cameras on the camera network not yet configured
//	POST /api/onvif/profiles  {xaddr | host, username, password}   their media profiles,
//	                          with main and sub streams suggested
//
// Each makes townwatch itself connect somewhere on the admin's word, so each is rate
// limited per account and audited (camera.probe, onvif.discover, onvif.profiles) with
// what was asked and how it ended, never a password. The audit row is committed before
// the answer (with the probe's snapshot) is sent.

// CameraAdmin configures the camera administration tools.
type CameraAdmin struct {
	Prober     *probe.Prober
	Discoverer *onvif.Discoverer
	ONVIF      *onvif.Client

	mu     sync.Mutex
	limits map[string]*rate.Limiter // per account
}

// Rate limit of the tools, per account: a few attempts at once (an admin correcting a
// typo), then one every 6 s. Each attempt costs a camera a session, and a stolen admin
// session must not become a scanner of the camera network.
const (
	cameraAdminBurst = 5
	cameraAdminEvery = 6 * time.Second
	// profilesTimeout bounds reading a camera's profiles: three SOAP calls on the LAN.
	profilesTimeout = 5 * time.Second
	// maxCameraAdminBody bounds the JSON bodies: a URL and credentials.
	maxCameraAdminBody = 8 << 10
)

// allow takes one attempt for user at now; when refused it answers 429 with Retry-After.
func (ca *CameraAdmin) allow(w http.ResponseWriter, user string, now time.Time) bool {
	ca.mu.Lock()
	if ca.limits == nil {
		ca.limits = map[string]*rate.Limiter{}
	}
	l := ca.limits[user]
	if l == nil {
		l = rate.NewLimiter(rate.Every(cameraAdminEvery), cameraAdminBurst)
		ca.limits[user] = l
	}
	r := l.ReserveN(now, 1)
	delay := r.DelayFrom(now)
	if delay > 0 {
		r.CancelAt(now)
	}
	ca.mu.Unlock()
	if delay > 0 {
		secs := int(delay.Seconds() + 0.999)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeError(w, http.StatusTooManyRequests, "too many camera probes; try again in "+strconv.Itoa(secs)+" s")
		return false
	}
	return true
}

// auditTool writes the audit row of one use of a tool; false (and 503 sent) when it
// cannot be written, in which case nothing of the result leaves.
func (s *Server) auditTool(w http.ResponseWriter, r *http.Request, action string, outcome string, details map[string]any) bool {
	raw, _ := json.Marshal(details)
	if outcome == "" {
		outcome = catalog.AuditOK
	}
	if err := s.appendAudit(r, principalFrom(r.Context()), catalog.AuditEntry{Action: action, Outcome: outcome, Details: raw}); err != nil {
		s.log.Error("audit: recording a camera tool", "action", action, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the access log cannot be written; the result is withheld")
		return false
	}
	return true
}

// probeRequest is the body of POST /api/cameras/probe.
type probeRequest struct {
	URL            string `json:"url"`
	Username       string `json:"username"`
	Password       string `json:"password"`
	Transport      string `json:"transport"`
	TLSFingerprint string `json:"tls_fingerprint"`
}

func (s *Server) handleCameraProbe(w http.ResponseWriter, r *http.Request) {
	ca := s.opt.CameraAdmin
	var req probeRequest
	if problem := decodeJSONBody(w, r, maxCameraAdminBody, &req); problem != "" {
		writeError(w, http.StatusBadRequest, problem)
		return
	}
	preq := probe.Request(req)
	stream, err := preq.Stream()
	if err != nil {
		writeError(w, http.StatusBadRequest, problemText(err))
		return
	}
	if !ca.allow(w, principalFrom(r.Context()).Name, s.auth.now()) {
		return
	}
	res, err := ca.Prober.Run(r.Context(), preq)
	if err != nil { // Stream validated the request above
		writeError(w, http.StatusBadRequest, problemText(err))
		return
	}
	outcome := catalog.AuditOK
	if !res.OK {
		outcome = catalog.AuditError
	}
	if !s.auditTool(w, r, access.AuditCameraProbe, outcome, map[string]any{"url": stream.RedactedURL(), "transport": stream.Transport,
		"failure": res.Failure, "elapsed_ms": res.ElapsedMS}) {
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// problemText is a validation error on one line: "url: ...; transport: ...".
func problemText(err error) string {
	var ve *configs.ValidationError
	if errors.As(err, &ve) {
		var parts []string
		for _, p := range ve.Problems {
			parts = append(parts, p.String())
		}
		return strings.Join(parts, "; ")
	}
	return err.Error()
}

// discoverAnswer is GET /api/onvif/discover's body.
type discoverAnswer struct {
	Devices []onvif.Device `json:"devices"` // not yet configured
	// AlreadyAdded counts the devices that answered and are configured cameras already.
	AlreadyAdded int   `json:"already_added"`
	ElapsedMS    int64 `json:"elapsed_ms"`
}

func (s *Server) handleONVIFDiscover(w http.ResponseWriter, r *http.Request) {
	ca := s.opt.CameraAdmin
	iface := r.URL.Query().Get("iface")
	if !ca.allow(w, principalFrom(r.Context()).Name, s.auth.now()) {
		return
	}
	start := time.Now()
	devs, err := ca.Discoverer.Discover(r.Context(), iface)
	if errors.Is(err, onvif.ErrInterface) {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err != nil {
		s.log.Error("onvif: discovery failed", "iface", iface, "err", err)
		writeError(w, http.StatusBadGateway, "discovery failed: "+err.Error())
		return
	}
	added := s.configuredHosts()
	ans := discoverAnswer{Devices: []onvif.Device{}, ElapsedMS: time.Since(start).Milliseconds()}
	for _, d := range devs {
		if added[d.Host] {
			ans.AlreadyAdded++
			continue
		}
		ans.Devices = append(ans.Devices, d)
	}
	if !s.auditTool(w, r, access.AuditONVIFDiscover, "", map[string]any{"iface": iface, "found": len(devs), "new": len(ans.Devices)}) {
		return
	}
	writeJSON(w, http.StatusOK, ans)
}

// configuredHosts are the hosts of every configured camera's streams, lower case: a
// discovered device at one of them is a camera already added.
func (s *Server) configuredHosts() map[string]bool {
	hosts := map[string]bool{}
	for _, c := range s.opt.Cameras.Cameras() {
		for _, st := range []StatusSource{c.Main, c.Sub} {
			if st == nil {
				continue
			}
			if u, err := url.Parse(st.Status().URL); err == nil && u.Hostname() != "" {
				hosts[strings.ToLower(u.Hostname())] = true
			}
		}
	}
	return hosts
}

// profilesRequest is the body of POST /api/onvif/profiles.
type profilesRequest struct {
	XAddr    string `json:"xaddr"`
	Host     string `json:"host"`
	Username string `json:"username"`
	Password string `json:"password"`
}

// profilesAnswer is its answer: the profiles, and the streams to pre-fill.
type profilesAnswer struct {
	OK       bool                `json:"ok"`
	Failure  ingest.FailureClass `json:"failure,omitempty"`
	Reason   string              `json:"reason,omitempty"`
	Profiles []onvif.Profile     `json:"profiles"`
	onvif.Streams
	Username string `json:"username,omitempty"` // for the streams; the password stays the admin's
}

func (s *Server) handleONVIFProfiles(w http.ResponseWriter, r *http.Request) {
	ca := s.opt.CameraAdmin
	var req profilesRequest
	if problem := decodeJSONBody(w, r, maxCameraAdminBody, &req); problem != "" {
		writeError(w, http.StatusBadRequest, problem)
		return
	}
	xaddr, problem := deviceService(req.XAddr, req.Host)
	if problem != "" {
		writeError(w, http.StatusBadRequest, problem)
		return
	}
	if !ca.allow(w, principalFrom(r.Context()).Name, s.auth.now()) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), profilesTimeout)
	defer cancel()
	profiles, err := ca.ONVIF.Profiles(ctx, xaddr, req.Username, req.Password)
	ans := profilesAnswer{OK: err == nil, Profiles: profiles, Streams: onvif.Suggest(profiles), Username: req.Username}
	if ans.Profiles == nil {
		ans.Profiles = []onvif.Profile{}
	}
	outcome := catalog.AuditOK
	if err != nil {
		outcome = catalog.AuditError
		ans.Failure, ans.Reason = profilesFailure(err), scrub(err.Error(), req.Password)
	}
	if !s.auditTool(w, r, access.AuditONVIFProfiles, outcome, map[string]any{"xaddr": xaddr, "username": req.Username,
		"profiles": len(profiles), "failure": ans.Failure}) {
		return
	}
	writeJSON(w, http.StatusOK, ans)
}

// deviceService is the device service URL of a profiles request: xaddr as discovery
// reported it, or a host's ONVIF default path.
func deviceService(xaddr, host string) (string, string) {
	switch {
	case xaddr != "" && host != "":
		return "", "host: conflicts with xaddr (use one)"
	case host != "":
		if strings.ContainsAny(host, "/?#@") {
			return "", "host: want a host or host:port, not " + quote(host)
		}
		return "http://" + host + "/onvif/device_service", ""
	case xaddr == "":
		return "", "xaddr: required (or host), the device service URL discovery listed"
	}
	u, err := url.Parse(xaddr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "", "xaddr: want an http:// or https:// URL without credentials, not " + quote(configs.RedactURL(xaddr))
	}
	return xaddr, ""
}

// profilesFailure classifies a failure to read profiles like a probe's.
func profilesFailure(err error) ingest.FailureClass {
	var op *net.OpError
	switch {
	case errors.Is(err, onvif.ErrAuth):
		return ingest.FailureAuth
	case errors.Is(err, context.DeadlineExceeded):
		return ingest.FailureTimeout
	case errors.As(err, &op) && op.Op == "dial":
		return ingest.FailureUnreachable
	}
	return ingest.FailureProtocol
}

// scrub keeps a password out of a message that a camera's answer went into.
func scrub(msg, password string) string {
	if password == "" {
		return msg
	}
	return strings.ReplaceAll(msg, password, "***")
}
