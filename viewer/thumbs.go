package viewer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	"net/http"
	"strconv"
	"time"

	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// Scrub previews: the motion worker stores a small thumbnail of each camera every 10 s
// (2 s during events) beside the segment recording it (recorder.Storage.AppendThumbnail).
// The player reads, for the range on screen, the capture times of every segment's
// thumbnails (GET /api/cameras/{id}/thumbs) and one sprite per segment, a JPEG grid of
// them (GET /api/segments/{id}/thumbs.jpg), so that hovering over the timeline only moves
// the sprite inside a clipping box: no request per pointer move. Both are footage, inside
// the playback session like the playlist and the media (its playback.start row covers
// them).

const (
	// maxThumbsRange bounds one index request: the player asks for what is on screen, and
	// an hour of 60 s segments is 60 small files to read.
	maxThumbsRange = 6 * time.Hour
	// spriteColumns is the sprite grid's width in tiles: a 1 h segment at one thumbnail
	// every 2 s stays under JPEG's 65 535 px limit in both directions.
	spriteColumns = 10
	// spriteQuality re-encodes the tiles; they were made at 70, so 80 loses nothing
	// visible.
	spriteQuality = 80
)

// thumbsSegmentJSON is one segment's thumbnails in the index.
type thumbsSegmentJSON struct {
	ID      int64       `json:"id"`
	Start   time.Time   `json:"start"`
	End     time.Time   `json:"end"`
	Sprite  string      `json:"sprite"`  // URL of the sprite of these tiles (spriteURL)
	Columns int         `json:"columns"` // tiles per sprite row
	Width   int         `json:"width"`   // one tile, px
	Height  int         `json:"height"`
	Times   []time.Time `json:"times"` // capture time of tile i (row i / columns, column i % columns)
}

type thumbsJSON struct {
	Camera   string              `json:"camera"`
	From     time.Time           `json:"from"`
	To       time.Time           `json:"to"`
	Segments []thumbsSegmentJSON `json:"segments"`
}

// handleThumbs answers GET /api/cameras/{id}/thumbs?from=&to=: per main-stream segment
// overlapping the range that has thumbnails, their capture times and the sprite's URL.
func (pb *Playback) handleThumbs(w http.ResponseWriter, r *http.Request) {
	camera, from, to, segs, ok := pb.cameraRange(w, r, maxThumbsRange, "thumbnails")
	if !ok {
		return
	}
	out := thumbsJSON{Camera: camera, From: from, To: to, Segments: []thumbsSegmentJSON{}}
	for _, s := range segs {
		if s.Stream != "main" {
			continue
		}
		thumbs, _ := pb.thumbnails(r.Context(), s) // what could be read is shown
		if len(thumbs) == 0 {
			continue
		}
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(thumbs[0].JPEG))
		if err != nil {
			pb.log().Warn("playback: thumbnail is not a JPEG", "segment", s.Path, "err", err)
			continue
		}
		js := thumbsSegmentJSON{ID: s.ID, Start: s.Start.UTC(), End: s.End.UTC(), Columns: spriteColumns,
			Width: cfg.Width, Height: cfg.Height, Times: make([]time.Time, len(thumbs)),
			Sprite: spriteURL(s.ID, len(thumbs))}
		for i, th := range thumbs {
			js.Times[i] = th.At
		}
		out.Segments = append(out.Segments, js)
	}
	writeJSON(w, http.StatusOK, out)
}

// thumbnails reads a segment's thumbnails; a damaged file yields what precedes the damage
// (logged, and returned with the error), and so does another node that cannot be asked
// for them: previews are a convenience, never a reason to fail a request.
func (pb *Playback) thumbnails(ctx context.Context, s catalog.Segment) ([]recorder.Thumbnail, error) {
	if pb.Thumbnails == nil {
		return nil, nil
	}
	thumbs, err := pb.Thumbnails(ctx, s)
	if err != nil {
		pb.log().Warn("playback: reading thumbnails", "segment", s.Path, "node", s.Node, "err", err)
	}
	return thumbs, err
}

// spriteURL is the URL of a segment's sprite of n tiles. n is in it so that a sprite the
// browser keeps under one URL is never stale for it: a closed segment can still gain a
// thumbnail (the thumbnail sink places late ones by capture time), and then the index
// names a new URL instead of one the browser would answer from its cache.
func spriteURL(segment int64, n int) string {
	return "/api/segments/" + strconv.FormatInt(segment, 10) + "/thumbs.jpg?n=" + strconv.Itoa(n)
}

// spriteETag is a strong validator of the sprite made of thumbs: a digest of the tiles,
// their number and the layout, so that neither a new tile nor a change of the grid or
// quality leaves a browser or the server's cache with the old picture.
func spriteETag(thumbs []recorder.Thumbnail) string {
	sum := sha256.New()
	fmt.Fprintf(sum, "sprite columns=%d quality=%d tiles=%d\n", spriteColumns, spriteQuality, len(thumbs))
	for _, th := range thumbs {
		fmt.Fprintf(sum, "%d\n", len(th.JPEG))
		sum.Write(th.JPEG)
	}
	return `"` + hex.EncodeToString(sum.Sum(nil)[:16]) + `"`
}

// handleSprite answers GET /api/segments/{id}/thumbs.jpg?n=: the segment's thumbnails as
// one JPEG, spriteColumns tiles a row in capture order, with an ETag over the tiles (304
// when the browser has it).
//
// Composing (decoding the tiles, drawing, encoding: about 15 ms for a 60 s segment) is
// what costs; reading the tiles is a small file. So every request reads them, for the
// ETag, and a closed segment's composed sprite is kept in a small cache (spriteCache)
// that answers the next officer asking for the same tiles. The guard (the segment's
// camera) and pathSegment (the playback session; 410 for a segment deleted by retention)
// have answered before the cache is asked.
//
// Caching by the browser: an open segment's sprite grows, so it is revalidated on every
// use (no-cache). A closed segment's is kept for a day when the URL names the tile count
// the answer has (n, see spriteURL); otherwise, and when the tiles could not all be read,
// it is revalidated too, so a partial sprite is never kept.
func (pb *Playback) handleSprite(w http.ResponseWriter, r *http.Request) {
	seg, ok := pb.pathSegment(w, r)
	if !ok {
		return
	}
	thumbs, readErr := pb.thumbnails(r.Context(), seg)
	if len(thumbs) == 0 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("segment %d has no thumbnails", seg.ID))
		return
	}
	etag := spriteETag(thumbs)
	// Only a closed segment's complete read is kept, here or by the browser.
	settled := !seg.Open && readErr == nil
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "private, no-cache")
	if settled && r.URL.Query().Get("n") == strconv.Itoa(len(thumbs)) {
		h.Set("Cache-Control", settledCacheControl)
	}
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	var sprite []byte
	hit := false
	if settled {
		sprite, hit = pb.sprites.get(seg.ID, etag)
	}
	if !hit {
		var err error
		if sprite, err = composeSprite(thumbs); err != nil {
			pb.fail(w, "sprite", fmt.Errorf("segment %d: %w", seg.ID, err))
			return
		}
		if settled {
			pb.sprites.put(seg.ID, etag, sprite)
		}
	}
	h.Set("Content-Type", "image/jpeg")
	h.Set("Content-Length", strconv.Itoa(len(sprite)))
	w.Write(sprite)
}

// composeSprite lays the thumbnails out spriteColumns a row, each in a cell the size of
// the first (a thumbnail of another size, after a resolution change, is cropped or
// padded), and encodes the grid as one JPEG.
func composeSprite(thumbs []recorder.Thumbnail) ([]byte, error) {
	var grid *image.RGBA
	var cw, ch int
	for i, th := range thumbs {
		img, err := jpeg.Decode(bytes.NewReader(th.JPEG))
		if err != nil {
			return nil, fmt.Errorf("thumbnail %d (%s): %w", i, th.At.Format(time.RFC3339Nano), err)
		}
		if grid == nil {
			cw, ch = img.Bounds().Dx(), img.Bounds().Dy()
			cols := min(len(thumbs), spriteColumns)
			rows := (len(thumbs) + spriteColumns - 1) / spriteColumns
			grid = image.NewRGBA(image.Rect(0, 0, cols*cw, rows*ch))
		}
		at := image.Pt(i%spriteColumns*cw, i/spriteColumns*ch)
		draw.Draw(grid, image.Rectangle{Min: at, Max: at.Add(image.Pt(cw, ch))}, img, img.Bounds().Min, draw.Src)
	}
	var out bytes.Buffer
	if err := jpeg.Encode(&out, grid, &jpeg.Options{Quality: spriteQuality}); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
