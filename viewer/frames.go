package viewer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// FrameDecoder makes full-resolution stills of recorded footage with ffmpeg in a child
// process: a malformed segment that crashes the decoder then takes down one request,
// never the recorder, and libavcodec's memory is returned when the still is done.
type FrameDecoder struct {
	FFmpeg string // path of the ffmpeg binary
	// slots bounds the decoders running at once: each holds a decoded 4K picture or two,
	// and stills are an officer's click, not a stream.
	slots chan struct{}
}

// Frame decoding limits: a still is one keyframe interval of decoding, which takes well
// under a second; a segment that makes ffmpeg take longer is not worth a stuck request.
const (
	frameTimeout     = 15 * time.Second
	maxFrameJPEG     = 16 << 20
	concurrentFrames = 2
)

// NewFrameDecoder finds ffmpeg (an empty path looks it up in PATH).
func NewFrameDecoder(ffmpeg string) (*FrameDecoder, error) {
	if ffmpeg == "" {
		ffmpeg = "ffmpeg"
	}
	path, err := exec.LookPath(ffmpeg)
	if err != nil {
		return nil, fmt.Errorf("frame stills need ffmpeg: %w", err)
	}
	return &FrameDecoder{FFmpeg: path, slots: make(chan struct{}, concurrentFrames)}, nil
}

// Still decodes the frame presented at offset into the open segment file f and returns it
// as a JPEG. ffmpeg seeks to the keyframe at or before offset and decodes up to it (its
// accurate seek), so the picture is the one shown at that instant.
func (fd *FrameDecoder) Still(ctx context.Context, f *os.File, offset time.Duration) ([]byte, error) {
	// The file goes to ffmpeg as descriptor 3: the path stays inside the storage root
	// that opened it, and /dev/fd/3 is seekable, unlike a pipe.
	return fd.jpeg(ctx, func(cmd *exec.Cmd) { cmd.ExtraFiles = []*os.File{f} },
		"-ss", strconv.FormatFloat(offset.Seconds(), 'f', 6, 64), "-i", "/dev/fd/3")
}

// Keyframe decodes one keyframe access unit of a live stream (Annex-B, parameter sets
// first) and returns it as a JPEG: the picture a camera probe shows before the camera is
// saved. codec is ingest's name for it (H264 or H265).
func (fd *FrameDecoder) Keyframe(ctx context.Context, codec ingest.Codec, annexB []byte) ([]byte, error) {
	demuxer := map[ingest.Codec]string{ingest.CodecH264: "h264", ingest.CodecH265: "hevc"}[codec]
	if demuxer == "" {
		return nil, fmt.Errorf("no still of codec %q", codec)
	}
	return fd.jpeg(ctx, func(cmd *exec.Cmd) { cmd.Stdin = bytes.NewReader(annexB) }, "-f", demuxer, "-i", "pipe:0")
}

// jpeg runs ffmpeg on the input that input names (its arguments, and how the command gets
// the bytes) and returns the first picture it decodes as a JPEG.
func (fd *FrameDecoder) jpeg(ctx context.Context, feed func(*exec.Cmd), input ...string) ([]byte, error) {
	select {
	case fd.slots <- struct{}{}:
		defer func() { <-fd.slots }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	ctx, cancel := context.WithTimeout(ctx, frameTimeout)
	defer cancel()
	args := append([]string{"-nostdin", "-v", "error"}, input...)
	args = append(args, "-frames:v", "1", "-an", "-f", "image2pipe", "-c:v", "mjpeg", "-q:v", "2", "pipe:1")
	cmd := exec.CommandContext(ctx, fd.FFmpeg, args...)
	feed(cmd)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &limitedBuffer{b: &out, max: maxFrameJPEG}, &limitedBuffer{b: &stderr, max: 4096}
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("ffmpeg: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	if out.Len() == 0 {
		return nil, errors.New("ffmpeg produced no picture")
	}
	return out.Bytes(), nil
}

// limitedBuffer keeps at most max bytes and fails the write past it, which stops ffmpeg.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if l.b.Len()+len(p) > l.max {
		return 0, fmt.Errorf("output larger than %d bytes", l.max)
	}
	return l.b.Write(p)
}

// handleFrame answers GET /api/cameras/{id}/frame.jpg?t=: the frame presented at t, at
// full resolution. The still is audited (playback.frame) before it is sent.
func (s *Server) handleFrame(w http.ResponseWriter, r *http.Request) {
	pb := s.opt.Playback
	camera := r.PathValue("id")
	raw := r.URL.Query().Get("t")
	if raw == "" {
		writeError(w, http.StatusBadRequest, "t: required, an RFC 3339 time")
		return
	}
	t, problem := parseTimeParam("t", raw)
	if problem != "" {
		writeError(w, http.StatusBadRequest, problem)
		return
	}
	if !pb.playbackAllowed(w, r, camera) {
		return
	}
	if pb.Frames == nil {
		writeError(w, http.StatusServiceUnavailable, "frame stills are not available: ffmpeg was not found at start")
		return
	}
	segs, err := pb.Store.Segments(r.Context(), camera, t, t.Add(time.Nanosecond))
	if err != nil {
		pb.fail(w, "frame", err)
		return
	}
	var seg *catalog.Segment
	for i := range segs {
		if segs[i].Stream == "main" {
			seg = &segs[i]
		}
	}
	if seg == nil {
		writeError(w, http.StatusNotFound, "t: camera "+quote(camera)+" has no recording at "+t.UTC().Format(time.RFC3339Nano))
		return
	}
	f, err := pb.OpenFile(r.Context(), *seg)
	if err != nil {
		pb.failRead(w, "frame", err)
		return
	}
	defer f.Close()
	jpeg, err := pb.Frames.Still(r.Context(), f, t.Sub(seg.Start))
	if err != nil {
		s.log.Error("playback: decoding a still", "camera", camera, "segment", seg.ID, "t", t, "err", err)
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("segment %d could not be decoded at %s; see the server log", seg.ID, t.UTC().Format(time.RFC3339Nano)))
		return
	}
	p := principalFrom(r.Context())
	if err := s.appendAudit(r, p, catalog.AuditEntry{Action: access.AuditFrameView, Camera: camera, From: t, To: t}); err != nil {
		s.log.Error("audit: recording a still", "camera", camera, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the access log cannot be written; the still is withheld")
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Cache-Control", "private, no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(jpeg)))
	_, _ = w.Write(jpeg)
}
