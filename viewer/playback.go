package viewer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// PlaybackStore is what the playback API reads of the catalog.
type PlaybackStore interface {
	Coverage(ctx context.Context, cameras []string, from, to time.Time, tolerance time.Duration) ([]catalog.Coverage, error)
	Segments(ctx context.Context, camera string, from, to time.Time) ([]catalog.Segment, error)
	Segment(ctx context.Context, id int64) (catalog.Segment, error)
	DeletionOfSegment(ctx context.Context, id int64) (catalog.Deletion, error)
	Fragments(ctx context.Context, ids []int64) (map[int64][]catalog.Fragment, error)
	Events(ctx context.Context, q catalog.EventQuery) ([]catalog.Event, error)
	MotionSearcher
}

// Playback serves recorded footage to the officer's player:
//
//	POST /api/playback                         start a playback session (cameras, reason)
//	GET  /api/timeline?cameras=&from=&to=&bucket=
//	GET  /api/cameras/{id}/playlist?from=&to=
//	GET  /api/segments/{id}/media              the file as it is, with Range
//	GET  /api/cameras/{id}/frame.jpg?t=
//	GET  /api/cameras/{id}/thumbs?from=&to=    scrub-preview index (thumbs.go)
//	GET  /api/segments/{id}/thumbs.jpg         a segment's thumbnails as one sprite
//
// Everything is answered from the catalog and, for the segment being written, from the
// recorder's memory: no route reads a file header. Footage leaves only inside a playback
// session, whose audit row (with the reason) is committed first; see playbackSessions.
type Playback struct {
	Store PlaybackStore
	// OpenSegment returns the segment a camera's recorder is writing (Writer.OpenSegment):
	// its fragments are in the catalog only once it closes.
	OpenSegment func(camera string) (recorder.OpenSegment, bool)
	// OpenFile opens the whole of a segment, for stills (recorder.Storage.OpenSegment:
	// this disk, the archive, or the disk of the node that recorded it).
	OpenFile func(ctx context.Context, seg catalog.Segment) (*os.File, error)
	// OpenMedia opens a segment for the range reads of media requests
	// (recorder.Storage.OpenMedia: an archived segment is read range by range from the
	// bucket, not fetched whole); nil: OpenFile.
	OpenMedia func(ctx context.Context, rel string) (recorder.MediaReader, error)
	// Thumbnails reads a segment's scrub-preview thumbnails, from this disk or the disk
	// of the node that recorded it (recorder.Storage.SegmentThumbnails); nil: none are
	// served.
	Thumbnails func(ctx context.Context, seg catalog.Segment) ([]recorder.Thumbnail, error)
	// Bookmarks keeps officers' bookmarks and cases.
	Bookmarks BookmarkStore
	// Frames decodes stills; nil answers frame.jpg with 503.
	Frames *FrameDecoder
	Log    *slog.Logger

	cameras  cameraSet // the server's list
	peers    *Peers    // the other recorder nodes (Options.Peers); nil on one node
	sessions playbackSessions
	sprites  *spriteCache     // composed sprites of closed segments (handleSprite)
	clock    func() time.Time // the server's clock (tests inject one)
}

// Limits of one request: a timeline of a month at most (the day view needs one), and no
// more buckets than a screen has pixels several times over.
const (
	maxTimelineRange   = 31 * 24 * time.Hour
	maxTimelineBuckets = 10000
	maxPlaylistRange   = 24 * time.Hour
	// coverageTolerance merges recorded stretches whose hole is shorter: one frame
	// interval of jitter between segments is no gap, a second is.
	coverageTolerance = time.Second
	// mediaWriteTimeout: a 60 s segment at 8 Mbit/s is 60 MB, 5 minutes at 1.6 Mbit/s.
	mediaWriteTimeout = 5 * time.Minute
)

func (pb *Playback) log() *slog.Logger {
	if pb.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return pb.Log
}

func (pb *Playback) known(camera string) bool { return pb.cameras.known(camera) }

// segmentCamera finds the camera of a segment, kept or deleted, for the guard (byID):
// only a user who may see the camera learns that its segment was deleted.
func (pb *Playback) segmentCamera(r *http.Request, id int64) (string, bool, error) {
	seg, err := pb.Store.Segment(r.Context(), id)
	if err == nil {
		return seg.Camera, true, nil
	}
	if !errors.Is(err, catalog.ErrNotFound) {
		return "", false, err
	}
	d, err := pb.Store.DeletionOfSegment(r.Context(), id)
	return d.Camera, true, err
}

// timeRangeParams reads from and to (both required, to after from, at most max apart).
func timeRangeParams(v url.Values, max time.Duration) (from, to time.Time, problem string) {
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &from}, {"to", &to}} {
		raw := v.Get(p.name)
		if raw == "" {
			return from, to, p.name + ": required, an RFC 3339 time (e.g. 2026-11-23T14:05:00Z)"
		}
		t, problem := parseTimeParam(p.name, raw)
		if problem != "" {
			return from, to, problem
		}
		*p.dst = t.UTC()
	}
	switch {
	case !to.After(from):
		return from, to, "to: must be after from"
	case to.Sub(from) > max:
		return from, to, fmt.Sprintf("to: the range may span at most %s", max)
	}
	return from, to, ""
}

// spanJSON is a stretch of time.
type spanJSON struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// timelineEventJSON is an event on a timeline.
type timelineEventJSON struct {
	ID    string     `json:"id"`
	Start time.Time  `json:"start"`
	End   *time.Time `json:"end"` // null while going on
	Score float64    `json:"score"`
}

// timelineCameraJSON is one camera's row of the timeline.
type timelineCameraJSON struct {
	ID       string     `json:"id"`
	Recorded []spanJSON `json:"recorded"`
	Gaps     []spanJSON `json:"gaps"`
	// Motion is, per bucket, the highest score of the events overlapping it (0: none).
	Motion []float64           `json:"motion"`
	Events []timelineEventJSON `json:"events"`
	// EventsTruncated: more events overlap the range than one answer lists; Motion
	// covers the listed ones.
	EventsTruncated bool `json:"events_truncated"`
}

type timelineJSON struct {
	From          time.Time            `json:"from"`
	To            time.Time            `json:"to"`
	BucketSeconds float64              `json:"bucket_seconds"`
	Cameras       []timelineCameraJSON `json:"cameras"`
}

// cameraListParam reads cameras= (comma-separated ids, required). An unknown id and one
// the user may not see get the same 404.
func (pb *Playback) cameraListParam(r *http.Request) (cams []string, code int, problem string) {
	raw := r.URL.Query().Get("cameras")
	if strings.TrimSpace(raw) == "" {
		return nil, http.StatusBadRequest, "cameras: required, a comma-separated list of camera ids"
	}
	visible := scopeOf(r)
	seen := map[string]bool{}
	for id := range strings.SplitSeq(raw, ",") {
		id = strings.TrimSpace(id)
		if id == "" || seen[id] {
			continue
		}
		if !pb.known(id) || !visible(id) {
			return nil, http.StatusNotFound, "unknown camera " + quote(id)
		}
		seen[id] = true
		cams = append(cams, id)
	}
	if len(cams) == 0 {
		return nil, http.StatusBadRequest, "cameras: required, a comma-separated list of camera ids"
	}
	return cams, 0, ""
}

func (pb *Playback) handleTimeline(w http.ResponseWriter, r *http.Request) {
	from, to, problem := timeRangeParams(r.URL.Query(), maxTimelineRange)
	if problem != "" {
		writeError(w, http.StatusBadRequest, problem)
		return
	}
	cams, code, problem := pb.cameraListParam(r)
	if problem != "" {
		writeError(w, code, problem)
		return
	}
	bucket := to.Sub(from) / 1440 // a day in minutes
	if raw := r.URL.Query().Get("bucket"); raw != "" {
		d, err := time.ParseDuration(raw)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, "bucket: "+quote(raw)+" is not a positive duration like 60s or 5m")
			return
		}
		bucket = d
	}
	bucket = max(bucket, time.Second)
	n := int((to.Sub(from) + bucket - 1) / bucket)
	if n > maxTimelineBuckets {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("bucket: %s makes %d buckets of the range; at most %d", bucket, n, maxTimelineBuckets))
		return
	}
	if !pb.playbackAllowed(w, r, cams...) {
		return
	}
	cov, err := pb.Store.Coverage(r.Context(), cams, from, to, coverageTolerance)
	if err != nil {
		pb.fail(w, "timeline", err)
		return
	}
	out := timelineJSON{From: from, To: to, BucketSeconds: bucket.Seconds(), Cameras: make([]timelineCameraJSON, len(cov))}
	for i, c := range cov {
		row := timelineCameraJSON{ID: c.Camera, Recorded: []spanJSON{}, Gaps: []spanJSON{}, Motion: make([]float64, n), Events: []timelineEventJSON{}}
		for _, sp := range c.Spans {
			js := spanJSON{sp.Start.UTC(), sp.End.UTC()}
			if sp.Recorded {
				row.Recorded = append(row.Recorded, js)
			} else {
				row.Gaps = append(row.Gaps, js)
			}
		}
		events, err := pb.Store.Events(r.Context(), catalog.EventQuery{Camera: c.Camera, From: from, To: to, Limit: catalog.MaxEventLimit})
		if err != nil {
			pb.fail(w, "timeline events", err)
			return
		}
		row.EventsTruncated = len(events) == catalog.MaxEventLimit
		for j := len(events) - 1; j >= 0; j-- { // oldest first
			ev := events[j]
			je := timelineEventJSON{ID: ev.ID, Start: ev.Start.UTC(), Score: ev.Score}
			end := to
			if !ev.End.IsZero() {
				e := ev.End.UTC()
				je.End = &e
				if e.Before(to) {
					end = e
				}
			}
			row.Events = append(row.Events, je)
			first := max(0, int(ev.Start.Sub(from)/bucket))
			for b := first; b < n && from.Add(time.Duration(b)*bucket).Before(end); b++ {
				row.Motion[b] = max(row.Motion[b], ev.Score)
			}
		}
		out.Cameras[i] = row
	}
	writeJSON(w, http.StatusOK, out)
}

// playlistSegmentJSON is one segment of a playlist: what MSE needs to fetch and append it.
type playlistSegmentJSON struct {
	ID        int64     `json:"id"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	Codecs    string    `json:"codecs"` // RFC 6381, for addSourceBuffer
	Width     int       `json:"width"`
	Height    int       `json:"height"`
	Bytes     int64     `json:"bytes"`
	Frames    int64     `json:"frames"`           // video frames (closed segments): the player's frame step
	SHA256    string    `json:"sha256,omitempty"` // closed segments
	GapBefore bool      `json:"gap_before"`
	Open      bool      `json:"open"`
	URL       string    `json:"url"`
	Init      byteRange `json:"init"`
	// Fragments is the fragment index; null for a segment recorded before townwatch kept
	// one (fetch it whole) or written while the catalog failed.
	Fragments []fragmentJSON `json:"fragments"`
}

type byteRange struct {
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
}

type fragmentJSON struct {
	Offset   int64      `json:"offset"`
	Length   int64      `json:"length"`
	Time     time.Time  `json:"time"`
	Duration float64    `json:"duration"` // seconds
	Keyframe *time.Time `json:"keyframe"` // its first keyframe's time; null: none
}

type playlistJSON struct {
	Camera   string                `json:"camera"`
	From     time.Time             `json:"from"`
	To       time.Time             `json:"to"`
	Segments []playlistSegmentJSON `json:"segments"`
}

// cameraRange is the part of a request about one camera's footage in a time range that
// the playlist and the thumbnail index share: the {id} camera, from and to (at most limit
// apart), the playback session, and the camera's segments in the range. ok is false when
// it has answered the request (400, 428, 500).
func (pb *Playback) cameraRange(w http.ResponseWriter, r *http.Request, limit time.Duration, what string) (camera string, from, to time.Time, segs []catalog.Segment, ok bool) {
	camera = r.PathValue("id")
	from, to, problem := timeRangeParams(r.URL.Query(), limit)
	if problem != "" {
		writeError(w, http.StatusBadRequest, problem)
		return camera, from, to, nil, false
	}
	if !pb.playbackAllowed(w, r, camera) {
		return camera, from, to, nil, false
	}
	segs, err := pb.Store.Segments(r.Context(), camera, from, to)
	if err != nil {
		pb.fail(w, what, err)
		return camera, from, to, nil, false
	}
	return camera, from, to, segs, true
}

func (pb *Playback) handlePlaylist(w http.ResponseWriter, r *http.Request) {
	camera, from, to, segs, ok := pb.cameraRange(w, r, maxPlaylistRange, "playlist")
	if !ok {
		return
	}
	var closed []int64
	for _, s := range segs {
		if s.Stream == "main" && !s.Open {
			closed = append(closed, s.ID)
		}
	}
	index, err := pb.Store.Fragments(r.Context(), closed)
	if err != nil {
		pb.fail(w, "playlist", err)
		return
	}
	out := playlistJSON{Camera: camera, From: from, To: to, Segments: []playlistSegmentJSON{}}
	for _, s := range segs {
		if s.Stream != "main" {
			continue
		}
		frags, bytes := index[s.ID], s.Bytes
		if s.Open {
			frags = nil
			if open, ok := pb.openSegment(camera); ok && open.ID == s.ID {
				frags, bytes = open.Fragments, open.Bytes
			}
		}
		js := playlistSegmentJSON{ID: s.ID, Start: s.Start.UTC(), End: s.End.UTC(), Codecs: s.MIMECodecs, Width: s.Width,
			Height: s.Height, Bytes: bytes, Frames: s.Frames, SHA256: s.SHA256, GapBefore: s.GapBefore, Open: s.Open,
			URL: "/api/segments/" + strconv.FormatInt(s.ID, 10) + "/media"}
		if len(frags) > 0 {
			js.Init = byteRange{0, frags[0].Offset}
			js.Fragments = make([]fragmentJSON, len(frags))
			for i, f := range frags {
				fj := fragmentJSON{Offset: f.Offset, Length: f.Length, Time: s.Start.Add(f.Start).UTC(), Duration: f.Duration.Seconds()}
				if f.Keyframe >= 0 {
					k := s.Start.Add(f.Keyframe).UTC()
					fj.Keyframe = &k
				}
				js.Fragments[i] = fj
			}
			if last := frags[len(frags)-1]; s.Open {
				js.End = s.Start.Add(last.Start + last.Duration).UTC()
			}
		}
		out.Segments = append(out.Segments, js)
	}
	writeJSON(w, http.StatusOK, out)
}

func (pb *Playback) openSegment(camera string) (recorder.OpenSegment, bool) {
	if pb.OpenSegment == nil {
		return recorder.OpenSegment{}, false
	}
	return pb.OpenSegment(camera)
}

// deletedJSON is the 410 answer for a segment retention (or an operator) deleted.
type deletedJSON struct {
	Error   string    `json:"error"`
	Segment int64     `json:"segment"`
	Deleted time.Time `json:"deleted"`
	Reason  string    `json:"reason"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
}

// handleMedia serves a segment's bytes as they are on disk, with Range (http.ServeContent),
// an ETag of its SHA-256 once closed, and 410 with the deletion once it is gone. An open
// segment is served up to its last synced fragment, never a torn one. On one of several
// nodes, a file on another node's disk (and not archived) is fetched from that node.
func (pb *Playback) handleMedia(w http.ResponseWriter, r *http.Request) {
	seg, ok := pb.pathSegment(w, r)
	if !ok {
		return
	}
	if pb.peers.elsewhere(seg) {
		pb.proxyMedia(w, r, seg)
		return
	}
	pb.serveMedia(w, r, seg)
}

// serveMedia answers a media request from this node's disk or the archive.
func (pb *Playback) serveMedia(w http.ResponseWriter, r *http.Request, seg catalog.Segment) {
	id := seg.ID
	size := seg.Bytes
	if seg.Open {
		if open, ok := pb.openSegment(seg.Camera); ok && open.ID == seg.ID {
			size = open.Bytes
		}
	}
	f, err := pb.openMedia(r.Context(), seg)
	if errors.Is(err, os.ErrNotExist) {
		pb.gone(w, r, id) // deleted between the row and the file
		return
	}
	if err != nil {
		pb.fail(w, "segment file", err)
		return
	}
	defer f.Close()
	// A whole segment (a player without Range, a slow link) may take longer than the
	// server's write timeout; a fragment's range never does.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(mediaWriteTimeout))
	h := w.Header()
	h.Set("Content-Type", "video/mp4")
	h.Set("Cache-Control", "private, no-cache")
	if !seg.Open {
		// Closed segments never change: the digest the catalog holds is a strong ETag.
		h.Set("ETag", `"`+seg.SHA256+`"`)
		h.Set("Cache-Control", settledCacheControl)
	}
	http.ServeContent(w, r, "", seg.End, io.NewSectionReader(f, 0, size))
}

// settledCacheControl lets the officer's browser keep, for a day and for that officer
// only, what a closed segment serves (its media, its scrub sprite): neither changes.
const settledCacheControl = "private, max-age=86400"

// openMedia opens a segment for range reads: OpenMedia, or OpenFile without one.
func (pb *Playback) openMedia(ctx context.Context, seg catalog.Segment) (recorder.MediaReader, error) {
	if pb.OpenMedia != nil {
		return pb.OpenMedia(ctx, seg.Path)
	}
	return pb.OpenFile(ctx, seg)
}

// pathSegment is the segment a /api/segments/{id}/... request names (the guard resolved
// its camera), once the playback session is checked; ok is false when it has answered
// (410 with its deletion, 428, 500).
func (pb *Playback) pathSegment(w http.ResponseWriter, r *http.Request) (catalog.Segment, bool) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	seg, err := pb.Store.Segment(r.Context(), id)
	if errors.Is(err, catalog.ErrNotFound) {
		pb.gone(w, r, id)
		return seg, false
	}
	if err != nil {
		pb.fail(w, "segment", err)
		return seg, false
	}
	return seg, pb.playbackAllowed(w, r, seg.Camera)
}

// gone answers a segment that is no longer kept: 410 with its deletion, or 404 if even
// that is unknown (a race with a catalog rebuild).
func (pb *Playback) gone(w http.ResponseWriter, r *http.Request, id int64) {
	d, err := pb.Store.DeletionOfSegment(r.Context(), id)
	if errors.Is(err, catalog.ErrNotFound) {
		writeError(w, http.StatusNotFound, "unknown segment "+quote(r.PathValue("id")))
		return
	}
	if err != nil {
		pb.fail(w, "segment deletion", err)
		return
	}
	writeJSON(w, http.StatusGone, deletedJSON{
		Error:   fmt.Sprintf("segment %d was deleted at %s: %s", id, d.At.UTC().Format(time.RFC3339), d.Reason),
		Segment: id, Deleted: d.At.UTC(), Reason: d.Reason, Start: d.Start.UTC(), End: d.End.UTC(),
	})
}

func (pb *Playback) fail(w http.ResponseWriter, what string, err error) {
	pb.log().Error("playback: "+what, "err", err)
	writeError(w, http.StatusInternalServerError, what+" failed; see the server log")
}
