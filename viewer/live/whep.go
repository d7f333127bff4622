package live

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/townwatch/townwatch/ingest"
)

const (
	// MaxOfferBytes bounds an SDP offer (here, and on a node that relays one to another).
	// A browser's offer with audio and video is 4-8 KiB.
	MaxOfferBytes = 64 << 10
	// gatherTimeout bounds ICE gathering for the non-trickle answer. Host candidates are
	// ready in milliseconds; STUN servers, when configured, get this long.
	gatherTimeout = 5 * time.Second
	// offlineRetry is the Retry-After for an offline camera: the live wall asks again
	// this often, so the picture returns within seconds of the camera.
	offlineRetry = "2"
)

// Route is one WHEP endpoint. Every pattern has the camera id as {id}, so the HTTP layer
// can authorize the camera before the handler runs.
type Route struct {
	Pattern string // a net/http ServeMux pattern with method
	Handler http.HandlerFunc
}

// Routes are the WHEP endpoints, for the HTTP layer's route table.
func (m *Manager) Routes() []Route {
	return []Route{
		{"POST /api/cameras/{id}/whep", m.HandleOffer},
		{"DELETE /api/cameras/{id}/whep/{session}", m.HandleDelete},
		// WHEP clients may PATCH trickle candidates; the answer already has every
		// candidate, and the WHEP draft says a server without trickle answers 405.
		{"PATCH /api/cameras/{id}/whep/{session}", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Allow", "DELETE")
			http.Error(w, "trickle ICE is not supported: the answer carries every candidate", http.StatusMethodNotAllowed)
		}},
	}
}

// Register mounts the WHEP routes on mux as they are, without access control: for tests
// and benchmarks of the media path. townwatch itself mounts Routes behind its
// authorization.
func (m *Manager) Register(mux *http.ServeMux) {
	for _, r := range m.Routes() {
		mux.HandleFunc(r.Pattern, r.Handler)
	}
}

// owner is who makes request r, per Options.Owner.
func (m *Manager) owner(r *http.Request) string {
	if m.opt.Hooks.Owner == nil {
		return ""
	}
	return m.opt.Hooks.Owner(r)
}

// HandleOffer answers POST /api/cameras/{id}/whep[?stream=main|sub] (WHEP, non-trickle):
// 201 with the SDP answer and the session's Location.
func (m *Manager) HandleOffer(w http.ResponseWriter, r *http.Request) {
	camID := r.PathValue("id")
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/sdp" {
		http.Error(w, fmt.Sprintf("Content-Type must be application/sdp, not %q", r.Header.Get("Content-Type")), http.StatusUnsupportedMediaType)
		return
	}
	cam := m.camera(camID)
	if cam == nil {
		http.Error(w, fmt.Sprintf("unknown camera %q", camID), http.StatusNotFound)
		return
	}
	stream, status, err := cam.stream(r.URL.Query().Get("stream"))
	if err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxOfferBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, fmt.Sprintf("SDP offer larger than %d bytes", MaxOfferBytes), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading the SDP offer: "+err.Error(), http.StatusBadRequest)
		return
	}
	o, err := parseOffer(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	st := m.hub.Current(camID, stream)
	if st == nil {
		w.Header().Set("Retry-After", offlineRetry)
		http.Error(w, fmt.Sprintf("camera %s stream %s is offline (no media from the camera yet); retry later", camID, stream),
			http.StatusServiceUnavailable)
		return
	}
	if v := st.Video(); v != nil && !o.offers(mimeFor(v)) {
		http.Error(w, notOffered(camID, stream, v.Codec, cam.cfg.HasSub), http.StatusNotAcceptable)
		return
	}

	s := newSession(m, streamKey{camID, stream}, m.owner(r))
	api, f, err := m.admit(s, st)
	if err != nil {
		var ae *admitError
		if errors.As(err, &ae) {
			if ae.status == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", offlineRetry)
			}
			http.Error(w, ae.msg, ae.status)
			return
		}
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	// The access layer's Admit (the access log's row, committed with an fsync) and the
	// answer are made at the same time, but the answer is sent only once Admit has
	// accepted: without it the viewer cannot connect, so no media leaves before the row.
	admitted := make(chan error, 1)
	if admit := m.opt.Hooks.Admit; admit != nil {
		info := s.info()
		go func() { admitted <- admit(r, info) }()
	} else {
		admitted <- nil
	}
	answer, status, err := s.negotiate(r, api, f, body, o)
	if aerr := <-admitted; aerr != nil {
		// Not admitted means it never existed for the viewer: no OnEnd either.
		s.abort("not admitted: " + aerr.Error())
		m.log.Warn("live session refused by the access layer", "camera", camID, "session", s.id, "err", aerr)
		http.Error(w, "live view unavailable: "+aerr.Error(), http.StatusServiceUnavailable)
		return
	}
	s.admitted = true
	if err != nil {
		s.abort(err.Error())
		http.Error(w, err.Error(), status)
		return
	}
	go s.run() // counted in m.wg by admit
	m.log.Info("live session started", "camera", camID, "stream", stream, "session", s.id)
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", "/api/cameras/"+camID+"/whep/"+s.id)
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, answer)
}

// Stream names the stream an offer for camera with ?stream=asked would watch: asked, or
// the camera's default (its sub stream when it has one). An unknown camera, a stream it
// lacks or a name that is no stream is an error with the HTTP status the offer would get.
// The access layer uses it to log a session it relays to another node before that node
// answers.
func (m *Manager) Stream(camera, asked string) (string, int, error) {
	cam := m.camera(camera)
	if cam == nil {
		return "", http.StatusNotFound, fmt.Errorf("unknown camera %q", camera)
	}
	return cam.stream(asked)
}

func (c *cameraState) stream(asked string) (string, int, error) {
	switch {
	case asked == "" && c.cfg.HasSub:
		return ingest.StreamSub, 0, nil
	case asked == "":
		return ingest.StreamMain, 0, nil
	case asked == ingest.StreamSub && !c.cfg.HasSub:
		return "", http.StatusNotFound, fmt.Errorf("camera %s has no sub stream; use stream=main", c.cfg.ID)
	case asked != ingest.StreamMain && asked != ingest.StreamSub:
		return "", http.StatusBadRequest, fmt.Errorf("stream %q: want main or sub", asked)
	}
	return asked, 0, nil
}

// notOffered explains a codec the browser cannot take, naming the way out.
func notOffered(cam, stream string, c ingest.Codec, hasSub bool) string {
	switch c {
	case ingest.CodecH265:
		msg := fmt.Sprintf("camera %s stream %s is H.265 and this browser did not offer H.265", cam, stream)
		if hasSub && stream == ingest.StreamMain {
			msg += "; use the sub stream (?stream=sub)"
		}
		return msg
	case ingest.CodecH264:
		return fmt.Sprintf("camera %s stream %s is H.264 and this browser did not offer H.264 with packetization-mode=1", cam, stream)
	}
	return fmt.Sprintf("camera %s stream %s sends %s video, which WebRTC cannot carry", cam, stream, c)
}

// negotiate creates the PeerConnection and returns the complete answer, or an HTTP status
// and an error naming what failed.
func (s *session) negotiate(r *http.Request, api *webrtc.API, f *feed, offerSDP []byte, o *offer) (string, int, error) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{ICEServers: s.m.opt.ICEServers})
	if err != nil {
		return "", http.StatusInternalServerError, fmt.Errorf("creating the peer connection: %w", err)
	}
	s.pc = pc
	pc.OnConnectionStateChange(s.onState)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offerSDP)}); err != nil {
		return "", http.StatusBadRequest, fmt.Errorf("SDP offer rejected: %w", err)
	}
	tracks := []*sharedTrack{f.video}
	if f.audio != nil && o.offers(f.audio.mime) {
		tracks = append(tracks, f.audio)
	}
	for _, t := range tracks {
		snd, err := pc.AddTrack(t)
		if err != nil {
			return "", http.StatusInternalServerError, fmt.Errorf("adding the %s track: %w", t.Kind(), err)
		}
		s.senders = append(s.senders, snd)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", http.StatusBadRequest, fmt.Errorf("cannot answer the SDP offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return "", http.StatusBadRequest, fmt.Errorf("cannot answer the SDP offer: %w", err)
	}
	timer := time.NewTimer(gatherTimeout)
	defer timer.Stop()
	select {
	case <-gathered:
	case <-timer.C:
		return "", http.StatusInternalServerError, fmt.Errorf("ICE candidate gathering took longer than %v", gatherTimeout)
	case <-r.Context().Done():
		return "", http.StatusRequestTimeout, fmt.Errorf("request cancelled: %w", r.Context().Err())
	}
	return pc.LocalDescription().SDP, 0, nil
}

// abort undoes an admitted session whose negotiation failed; the viewer never got it.
func (s *session) abort(reason string) {
	s.stop(reason)
	if s.admitted && s.m.opt.Hooks.OnEnd != nil {
		s.m.opt.Hooks.OnEnd(s.info(), time.Now(), reason)
	}
	if s.pc != nil {
		s.pc.Close()
	}
	s.m.release(s)
	close(s.gone)
	s.m.wg.Done()
}

// HandleDelete answers DELETE /api/cameras/{id}/whep/{session}: it ends the session and
// returns once its resources are released.
func (m *Manager) HandleDelete(w http.ResponseWriter, r *http.Request) {
	camID, id := r.PathValue("id"), r.PathValue("session")
	s := m.lookup(camID, id, m.owner(r))
	if s == nil {
		http.Error(w, fmt.Sprintf("no live session %q on camera %q", id, camID), http.StatusNotFound)
		return
	}
	s.stop("viewer hung up (DELETE)")
	select {
	case <-s.gone:
		w.WriteHeader(http.StatusNoContent)
	case <-r.Context().Done():
	}
}
