package simcam

import (
	"strings"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
)

// rtspHandler answers gortsplib's callbacks. It is a separate type so the
// callbacks stay out of Server's API. gortsplib prints to the standard
// logger, per packet, when the error callbacks of a play server
// (OnStreamWriteError, OnDecodeError) are missing; the lost-packets one
// concerns publishers only, and without OnAnnounce ANNOUNCE gets 501.
type rtspHandler struct{ s *Server }

func (h *rtspHandler) OnConnOpen(ctx *gortsplib.ServerHandlerOnConnOpenCtx) {
	h.s.log.Debug("connection opened", "remote", ctx.Conn.NetConn().RemoteAddr().String())
}

func (h *rtspHandler) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	h.s.log.Debug("connection closed",
		"remote", ctx.Conn.NetConn().RemoteAddr().String(), "reason", ctx.Error)
}

func (h *rtspHandler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	h.s.log.Debug("session closed", "camera", strings.TrimPrefix(ctx.Session.SetuppedPath(), "/"), "reason", ctx.Error)
}

func (h *rtspHandler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (
	*base.Response, *gortsplib.ServerStream, error,
) {
	return h.authorize(ctx.Conn, ctx.Request, ctx.Path)
}

// OnSetup checks credentials again: a client may SETUP without DESCRIBE.
func (h *rtspHandler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (
	*base.Response, *gortsplib.ServerStream, error,
) {
	return h.authorize(ctx.Conn, ctx.Request, ctx.Path)
}

func (h *rtspHandler) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	h.s.plays.Add(1)
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnStreamWriteError is called per packet dropped for a reader whose write
// queue is full, so it only counts.
func (h *rtspHandler) OnStreamWriteError(*gortsplib.ServerHandlerOnStreamWriteErrorCtx) {
	h.s.writeErrors.Add(1)
}

// OnDecodeError is called per undecodable packet a reader sends (RTCP
// receiver reports), so it only counts.
func (h *rtspHandler) OnDecodeError(*gortsplib.ServerHandlerOnDecodeErrorCtx) {
	h.s.decodeErrors.Add(1)
}

// authorize maps a request path to its camera's stream: 404 for an unknown
// path, 401 for missing or wrong credentials (gortsplib turns the first
// into a challenge and closes the connection on the second), 503 while Run
// is not serving.
func (h *rtspHandler) authorize(conn *gortsplib.ServerConn, req *base.Request, path string) (
	*base.Response, *gortsplib.ServerStream, error,
) {
	path = strings.TrimPrefix(path, "/")
	c, ok := h.s.cameras[path]
	if !ok {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	if c.spec.Username != "" && !conn.VerifyCredentials(req, c.spec.Username, c.spec.Password) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, nil, liberrors.ErrServerAuth{}
	}
	st := h.s.stream(path)
	if st == nil {
		return &base.Response{StatusCode: base.StatusServiceUnavailable}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, st, nil
}
