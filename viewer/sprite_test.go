package viewer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/archivetest"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// spriteRig is the playback API over four closed minutes of two cameras, whose
// thumbnails the tests add (tiles of one gray level each, so a sprite's tiles can be told
// apart), with the officer's playback of both started.
type spriteRig struct {
	rig     *playbackRig
	pb      *Playback
	st      *recorder.Storage
	officer http.Handler
	from    time.Time
}

func newSpriteRig(t *testing.T) *spriteRig {
	t.Helper()
	from := time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC)
	rig := newPlaybackRig(t, archivetest.Spec{Cameras: []string{"namesti", "dvur"}, From: from, Duration: 4 * time.Minute})
	st, err := recorder.OpenStorage(rig.arch.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &spriteRig{rig: rig, pb: rig.server.opt.Playback, st: st, officer: playbackAPI(t, rig), from: from}
}

// tileGray is the gray level of tile i: far enough apart to survive two JPEG encodings.
func tileGray(i int) uint8 { return uint8(20 + 40*(i%6)) }

// addTiles appends thumbnails first..first+n-1 of seg, 10 s apart, 24×16 px each.
func (sr *spriteRig) addTiles(t *testing.T, seg catalog.Segment, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		img := image.NewGray(image.Rect(0, 0, 24, 16))
		for k := range img.Pix {
			img.Pix[k] = tileGray(i)
		}
		var b bytes.Buffer
		if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
			t.Fatal(err)
		}
		if err := sr.st.AppendThumbnail(seg.Path, seg.Start.Add(time.Duration(i)*10*time.Second), b.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
}

// askSprite asks h for path, with If-None-Match etag unless it is "".
func askSprite(h http.Handler, path, etag string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// spriteURLOf is the sprite URL the index gives for seg, as the page reads it.
func (sr *spriteRig) spriteURLOf(t *testing.T, seg catalog.Segment) string {
	t.Helper()
	rec := askSprite(sr.officer, "/api/cameras/"+seg.Camera+"/thumbs?from="+sr.from.Format(time.RFC3339)+"&to="+sr.from.Add(time.Hour).Format(time.RFC3339), "")
	var idx thumbsJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &idx); rec.Code != http.StatusOK || err != nil {
		t.Fatalf("thumbnail index: %d %s (%v)", rec.Code, rec.Body, err)
	}
	for _, s := range idx.Segments {
		if s.ID == seg.ID {
			return s.Sprite
		}
	}
	t.Fatalf("segment %d is not in the thumbnail index %+v", seg.ID, idx.Segments)
	return ""
}

// checkTiles decodes a sprite and checks that it holds n tiles of 24×16, tile i of gray
// level tileGray(i).
func checkTiles(t *testing.T, what string, sprite []byte, n int) {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(sprite))
	if err != nil {
		t.Fatalf("%s: not a JPEG: %v", what, err)
	}
	if want := image.Rect(0, 0, 24*min(n, spriteColumns), 16*((n+spriteColumns-1)/spriteColumns)); img.Bounds() != want {
		t.Fatalf("%s: %v, want %v for %d tiles", what, img.Bounds(), want, n)
	}
	for i := range n {
		got := color.GrayModel.Convert(img.At(i%spriteColumns*24+12, i/spriteColumns*16+8)).(color.Gray).Y
		if d := int(got) - int(tileGray(i)); d < -12 || d > 12 {
			t.Errorf("%s: tile %d has gray %d, want %d", what, i, got, tileGray(i))
		}
	}
}

// An officer's browser asks again for a closed segment's sprite: 304 with the same ETag,
// and the browser may keep it a day under the URL the index gives. Another officer asking
// for the same sprite gets the one already composed. A thumbnail that lands in the
// segment after it closed makes a new sprite under a new URL.
func TestSpriteOfAClosedSegment(t *testing.T) {
	sr := newSpriteRig(t)
	seg := sr.rig.arch.segs["namesti"][0]
	sr.addTiles(t, seg, 0, 6)
	url := sr.spriteURLOf(t, seg)
	if !strings.HasSuffix(url, "/thumbs.jpg?n=6") {
		t.Errorf("sprite URL %q; want it to name the 6 tiles", url)
	}
	first := askSprite(sr.officer, url, "")
	etag := first.Header().Get("ETag")
	if first.Code != http.StatusOK || etag == "" || first.Header().Get("Cache-Control") != "private, max-age=86400" {
		t.Fatalf("first request: %d, ETag %q, Cache-Control %q; want 200, an ETag, private, max-age=86400",
			first.Code, etag, first.Header().Get("Cache-Control"))
	}
	checkTiles(t, "the sprite", first.Body.Bytes(), 6)

	again := askSprite(sr.officer, url, etag)
	if again.Code != http.StatusNotModified || again.Header().Get("ETag") != etag || again.Body.Len() != 0 {
		t.Errorf("second request with If-None-Match: %d, ETag %q, %d bytes; want 304, ETag %q, no body",
			again.Code, again.Header().Get("ETag"), again.Body.Len(), etag)
	}

	// Another officer's first request is answered by the sprite composed for the first:
	// the cache's copy is replaced by a marker, and the marker is what comes back.
	sr.rig.fx.addUser(t, "kolega", []access.Role{access.Officer}, false, "namesti")
	colleague := playbackAs(t, sr.rig, "kolega", "namesti")
	sr.pb.sprites.put(seg.ID, etag, []byte("composed once"))
	if rec := askSprite(colleague, url, ""); rec.Code != http.StatusOK || rec.Body.String() != "composed once" || rec.Header().Get("ETag") != etag {
		t.Errorf("the colleague's request: %d %q (ETag %q); want 200 with the cached sprite", rec.Code, rec.Body.Bytes()[:min(rec.Body.Len(), 40)], rec.Header().Get("ETag"))
	}
	// A URL without the tile count (not the index's) is only revalidated.
	if cc := askSprite(sr.officer, fmt.Sprintf("/api/segments/%d/thumbs.jpg", seg.ID), "").Header().Get("Cache-Control"); cc != "private, no-cache" {
		t.Errorf("sprite without n: Cache-Control %q, want private, no-cache", cc)
	}

	// A late thumbnail: the old URL and ETag no longer match, the cache does not answer,
	// and the index names a new URL the browser has never kept.
	sr.addTiles(t, seg, 6, 1)
	late := askSprite(sr.officer, url, etag)
	if late.Code != http.StatusOK || late.Header().Get("ETag") == etag || late.Header().Get("Cache-Control") != "private, no-cache" {
		t.Fatalf("after a late thumbnail, the old URL with the old ETag: %d, ETag %q, Cache-Control %q; want 200, a new ETag, no-cache",
			late.Code, late.Header().Get("ETag"), late.Header().Get("Cache-Control"))
	}
	checkTiles(t, "the sprite after a late thumbnail", late.Body.Bytes(), 7)
	if url7 := sr.spriteURLOf(t, seg); url7 == url || askSprite(sr.officer, url7, "").Header().Get("Cache-Control") != "private, max-age=86400" {
		t.Errorf("after a late thumbnail the index names %q (before %q); want a new URL the browser may keep", url7, url)
	}
}

// The open segment's sprite grows: it is revalidated on every use, a new thumbnail is in
// the next answer, and the server keeps none of its versions.
func TestSpriteOfTheOpenSegmentIsNeverStale(t *testing.T) {
	sr := newSpriteRig(t)
	segs := sr.rig.arch.segs["namesti"]
	last := segs[len(segs)-1]
	open := catalog.Segment{Camera: "namesti", Stream: "main", Start: last.End, Path: recorder.SegmentPath("namesti", last.End)}
	if err := os.Link(filepath.Join(sr.rig.arch.dir, filepath.FromSlash(last.Path)), filepath.Join(sr.rig.arch.dir, filepath.FromSlash(open.Path))); err != nil {
		t.Fatal(err)
	}
	id, err := sr.rig.arch.catalog.CreateSegment(t.Context(), open)
	if err != nil {
		t.Fatal(err)
	}
	open.ID = id
	sr.addTiles(t, open, 0, 3)
	url := sr.spriteURLOf(t, open)
	first := askSprite(sr.officer, url, "")
	etag := first.Header().Get("ETag")
	if first.Code != http.StatusOK || first.Header().Get("Cache-Control") != "private, no-cache" {
		t.Fatalf("open segment's sprite: %d, Cache-Control %q; want 200, private, no-cache", first.Code, first.Header().Get("Cache-Control"))
	}
	checkTiles(t, "the open segment's sprite", first.Body.Bytes(), 3)
	if rec := askSprite(sr.officer, url, etag); rec.Code != http.StatusNotModified {
		t.Errorf("unchanged open segment with its ETag: %d, want 304", rec.Code)
	}
	sr.addTiles(t, open, 3, 1)
	grown := askSprite(sr.officer, url, etag)
	if grown.Code != http.StatusOK || grown.Header().Get("ETag") == etag {
		t.Fatalf("after a new thumbnail, with the old ETag: %d, ETag %q; want 200 and a new ETag", grown.Code, grown.Header().Get("ETag"))
	}
	checkTiles(t, "the open segment's sprite after a new thumbnail", grown.Body.Bytes(), 4)
	if n := len(sr.pb.sprites.byID); n != 0 {
		t.Errorf("the server keeps %d sprites of the open segment; want none", n)
	}
}

// Composing more sprites than the cache holds: it never holds more than its budget, keeps
// the most recently used and composes again what it dropped.
func TestSpriteCacheIsBounded(t *testing.T) {
	sr := newSpriteRig(t)
	var segs []catalog.Segment
	for _, cam := range []string{"namesti", "dvur"} {
		for _, seg := range sr.rig.arch.segs[cam] {
			sr.addTiles(t, seg, 0, 6)
			segs = append(segs, seg)
		}
	}
	size := askSprite(sr.officer, sr.spriteURLOf(t, segs[0]), "")
	limit := 2*(size.Body.Len()+len(size.Header().Get("ETag"))) + size.Body.Len()/2 // two and a half sprites
	sr.pb.sprites = newSpriteCache(limit)
	for i, seg := range segs {
		rec := askSprite(sr.officer, sr.spriteURLOf(t, seg), "")
		if rec.Code != http.StatusOK {
			t.Fatalf("sprite of segment %d: %d %s", seg.ID, rec.Code, rec.Body)
		}
		if used := sr.pb.sprites.used; used > limit || len(sr.pb.sprites.byID) > 2 {
			t.Fatalf("after %d sprites the cache holds %d of them in %d bytes; want at most 2 in %d", i+1, len(sr.pb.sprites.byID), used, limit)
		}
	}
	held := func(seg catalog.Segment) bool {
		_, ok := sr.pb.sprites.byID[seg.ID]
		return ok
	}
	n := len(segs)
	if !held(segs[n-1]) || !held(segs[n-2]) || held(segs[0]) {
		t.Errorf("the cache holds the first sprite %v and the last two %v %v; want the last two only", held(segs[0]), held(segs[n-2]), held(segs[n-1]))
	}
	// The first is composed again, and kept in place of the least recently used.
	if rec := askSprite(sr.officer, sr.spriteURLOf(t, segs[0]), ""); rec.Code != http.StatusOK || !held(segs[0]) || held(segs[n-2]) {
		t.Errorf("asking again for the first sprite: %d; held %v, and the oldest of the last two held %v", rec.Code, held(segs[0]), held(segs[n-2]))
	}
}

// The cache's own bookkeeping: least recently used out first, a sprite replaced by its
// segment's next one, one larger than the budget not kept.
func TestSpriteCacheEvictsLeastRecentlyUsed(t *testing.T) {
	c := newSpriteCache(3 * (100 + 3)) // three sprites of 100 bytes with 3-byte ETags
	sprite := func(b byte) []byte { return bytes.Repeat([]byte{b}, 100) }
	c.put(1, `"a"`, sprite(1))
	c.put(2, `"a"`, sprite(2))
	c.put(3, `"a"`, sprite(3))
	if _, ok := c.get(1, `"a"`); !ok {
		t.Fatal("segment 1 not held within the budget")
	}
	c.put(4, `"a"`, sprite(4)) // 2 is now the least recently used
	if _, ok := c.get(2, `"a"`); ok {
		t.Error("segment 2 still held; it was the least recently used")
	}
	if _, ok := c.get(1, `"b"`); ok {
		t.Error("segment 1 answered for other tiles (another ETag)")
	}
	c.put(1, `"b"`, sprite(5))
	if got, ok := c.get(1, `"b"`); !ok || got[0] != 5 || len(c.byID) != 3 || c.used != 3*103 {
		t.Errorf("segment 1 replaced: held %v, %d entries in %d bytes; want its new sprite, 3 entries in %d", ok, len(c.byID), c.used, 3*103)
	}
	c.put(9, `"a"`, bytes.Repeat([]byte{9}, 400))
	if _, ok := c.get(9, `"a"`); ok || len(c.byID) != 3 {
		t.Errorf("a sprite over the whole budget: held %v, %d entries left; want it not kept and the 3 others left", ok, len(c.byID))
	}
}

// A cached sprite changes nothing about who gets it: without the camera's grant the
// answer is the unknown segment's, with or without the ETag; without a playback session
// it is 428; a segment deleted by retention is 410 with its deletion.
func TestSpriteCachedStillPassesTheGuard(t *testing.T) {
	sr := newSpriteRig(t)
	seg := sr.rig.arch.segs["namesti"][0]
	sr.addTiles(t, seg, 0, 6)
	url := sr.spriteURLOf(t, seg)
	etag := askSprite(sr.officer, url, "").Header().Get("ETag")
	if _, ok := sr.pb.sprites.get(seg.ID, etag); !ok {
		t.Fatal("the sprite is not cached after the officer's request")
	}

	sr.rig.fx.addUser(t, "jinde", []access.Role{access.Officer}, false, "dvur")
	elsewhere := playbackAs(t, sr.rig, "jinde", "dvur")
	id := strconv.FormatInt(seg.ID, 10)
	unknown := askSprite(elsewhere, "/api/segments/99999999/thumbs.jpg?n=6", "")
	wantBody := strings.ReplaceAll(unknown.Body.String(), "99999999", id)
	for _, inm := range []string{"", etag} {
		rec := askSprite(elsewhere, url, inm)
		if rec.Code != unknown.Code || rec.Body.String() != wantBody || rec.Header().Get("ETag") != "" || rec.Header().Get("Cache-Control") != unknown.Header().Get("Cache-Control") {
			t.Errorf("an officer without the camera (If-None-Match %q): %d %s (ETag %q); an unknown segment: %d %s — they must read the same",
				inm, rec.Code, rec.Body, rec.Header().Get("ETag"), unknown.Code, unknown.Body)
		}
	}
	if unknown.Code != http.StatusNotFound {
		t.Errorf("unknown segment: %d, want 404", unknown.Code)
	}
	// Each refusal of the cached sprite is in the access log, as the guard writes it.
	refused := 0
	for _, row := range sr.rig.fx.auditRows(t, access.AuditDenied) {
		if row.Actor == "jinde" && row.Camera == "namesti" && row.Outcome == catalog.AuditDenied {
			refused++
		}
	}
	if refused != 2 {
		t.Errorf("%d refusals of jinde for namesti in the access log; want 2 (with and without the ETag)", refused)
	}

	noSession := withCookie(sr.rig.server.Handler(), login(t, sr.rig.server.Handler(), "straznik"))
	if rec := askSprite(noSession, url, etag); rec.Code != http.StatusPreconditionRequired {
		t.Errorf("the officer's new session without playback started: %d %s, want 428", rec.Code, rec.Body)
	}

	if _, err := sr.rig.arch.catalog.DeleteSegment(t.Context(), seg.ID, "retention", time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, inm := range []string{"", etag} {
		rec := askSprite(sr.officer, url, inm)
		var gone deletedJSON
		if err := json.Unmarshal(rec.Body.Bytes(), &gone); rec.Code != http.StatusGone || err != nil || gone.Reason != "retention" {
			t.Errorf("the deleted segment's sprite (If-None-Match %q): %d %s; want 410 with the deletion", inm, rec.Code, rec.Body)
		}
	}
}

// A closed segment whose thumbnails file is damaged past some record shows the tiles
// before the damage, but neither the browser nor the server keeps that sprite: the next
// look, once the file is mended or rewritten, must not be answered by a partial one. The
// URL names the count the index read (the same damaged file), so the count alone would
// not tell.
func TestSpriteOfADamagedThumbnailsFileIsNotKept(t *testing.T) {
	sr := newSpriteRig(t)
	seg := sr.rig.arch.segs["namesti"][1]
	sr.addTiles(t, seg, 0, 6)
	f, err := os.OpenFile(filepath.Join(sr.rig.arch.dir, recorder.ThumbnailsPath(seg.Path)), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A record header claiming no picture: not a thumbnails file past this point.
	if _, err := f.Write(make([]byte, 12)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	url := sr.spriteURLOf(t, seg)
	if !strings.HasSuffix(url, "?n=6") {
		t.Fatalf("sprite URL %q; want it to name the 6 tiles read before the damage", url)
	}
	rec := askSprite(sr.officer, url, "")
	if rec.Code != http.StatusOK || rec.Header().Get("Cache-Control") != "private, no-cache" {
		t.Fatalf("sprite of a damaged file: %d, Cache-Control %q; want 200, private, no-cache", rec.Code, rec.Header().Get("Cache-Control"))
	}
	checkTiles(t, "the sprite of a damaged file", rec.Body.Bytes(), 6)
	if _, hit := sr.pb.sprites.get(seg.ID, rec.Header().Get("ETag")); hit {
		t.Error("the server kept the sprite of a damaged file")
	}
}
