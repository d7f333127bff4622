package main

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/jpeg"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// thumbsAnswer is the part of /api/cameras/{id}/thumbs the player reads.
type thumbsAnswer struct {
	Segments []thumbsSegment
}

// thumbsSegment is one segment's previews in thumbsAnswer.
type thumbsSegment struct {
	ID            int64
	Start, End    time.Time
	Sprite        string
	Columns       int
	Width, Height int
	Times         []time.Time
}

// An officer scrubbing recorded footage sees, for a moment of the recording, a small
// picture of that moment: the real binary records a simulated street (a car drives 10-18 s
// and 30-35 s into each minute) with motion detection and a courtyard without it. The
// street's thumbnails come every 10 s and every 2 s while the car moves, and each looks
// like the full-size still of its time more than like the still 4 s away; the courtyard's
// come from a keyframe every 10 s. Nothing before a reason; an ungranted camera or segment
// reads like an unknown one; a deleted segment's thumbnails go with its file.
func TestOfficerScrubsThumbnails(t *testing.T) {
	t.Parallel()
	dir, cfgPath, p := startOfficerServer(t, "dvur", "    motion: {enabled: true, cooldown: 2s}\n")
	storage := filepath.Join(dir, "data")
	began := time.Now()
	time.Sleep(40 * time.Second) // the car's first drive, whichever moment of the loop we joined
	officer := loginClient(t, p.base, "straznik", accountPassword)
	rangeQ := "from=" + url.QueryEscape(began.Add(-time.Minute).UTC().Format(time.RFC3339)) + "&to=" + url.QueryEscape(time.Now().Add(time.Minute).UTC().Format(time.RFC3339))

	// Nothing before the reason; an ungranted camera reads like an unknown one.
	if status, _, body := e2eDo(t, officer, "GET", p.base+"api/cameras/namesti/thumbs?"+rangeQ, "", ""); status != http.StatusPreconditionRequired || !strings.Contains(body, "reason") {
		t.Fatalf("thumbnails before a reason: %d %s, want 428 naming the reason", status, body)
	}
	_, _, unknown := e2eDo(t, officer, "GET", p.base+"api/cameras/zadna/thumbs?"+rangeQ, "", "")
	status, _, ungranted := e2eDo(t, officer, "GET", p.base+"api/cameras/dvur/thumbs?"+rangeQ, "", "")
	if status != http.StatusNotFound || strings.ReplaceAll(unknown, "zadna", "dvur") != ungranted {
		t.Errorf("thumbnails of an ungranted camera: %d %s; of an unknown one: %s — they must read the same", status, ungranted, unknown)
	}
	if status, _, body := e2eDo(t, officer, "POST", p.base+"api/playback", "application/json", `{"cameras":["namesti"],"reason":"kontrola parkování"}`); status != http.StatusCreated {
		t.Fatalf("start playback: %d %s", status, body)
	}
	if status, _, body := e2eDo(t, officer, "GET", p.base+"api/cameras/namesti/thumbs?from=x&to=y", "", ""); status != http.StatusBadRequest || !strings.Contains(body, "from") {
		t.Errorf("bad from: %d %s, want 400 naming from", status, body)
	}

	var th thumbsAnswer
	decodeJSON(t, httpGet(t, officer, p.base+"api/cameras/namesti/thumbs?"+rangeQ), &th)
	var times []time.Time
	for _, s := range th.Segments {
		for _, at := range s.Times {
			if at.Before(s.Start) || (at.After(s.End) && s.End.After(s.Start.Add(9*time.Second))) {
				t.Errorf("segment %d [%v, %v] lists a thumbnail at %v, outside it", s.ID, s.Start, s.End, at)
			}
			times = append(times, at)
		}
	}
	var dense int
	for i := 1; i < len(times); i++ {
		gap := times[i].Sub(times[i-1])
		if gap > 10500*time.Millisecond || gap <= 0 {
			t.Errorf("thumbnails at %v and %v: %v apart; want at most 10 s between previews of recorded time", times[i-1], times[i], gap)
		}
		if gap <= 2500*time.Millisecond {
			dense++
		}
	}
	if len(times) < 5 || dense < 3 {
		t.Fatalf("%d thumbnails over %v of recording, %d of them 2 s apart; want one every 10 s and every 2 s while the car drives", len(times), time.Since(began), dense)
	}

	// Each thumbnail is the picture of its time: closer to the full-size still of that
	// moment than to the still 4 s earlier, wherever those two differ (the car moved).
	compared := 0
	for _, s := range th.Segments {
		sprite := fetch(t, officer, p.base+s.Sprite[1:], "", http.StatusOK)
		img, err := jpeg.Decode(bytes.NewReader(sprite))
		if err != nil {
			t.Fatalf("sprite of segment %d: %v", s.ID, err)
		}
		rows := (len(s.Times) + s.Columns - 1) / s.Columns
		// The open segment may have gained a tile since the index was read.
		if b := img.Bounds(); s.Width != 240 || b.Dx() < min(len(s.Times), s.Columns)*s.Width || b.Dx() > s.Columns*s.Width || b.Dy() < rows*s.Height {
			t.Fatalf("sprite of segment %d is %v for %d tiles of %dx%d; want a grid of 240 px tiles", s.ID, b, len(s.Times), s.Width, s.Height)
		}
		for i, at := range s.Times {
			if at.Add(-4*time.Second).Before(times[0]) || compared >= 6 {
				continue
			}
			tile := image.Rect(i%s.Columns*s.Width, i/s.Columns*s.Height, (i%s.Columns+1)*s.Width, (i/s.Columns+1)*s.Height)
			now := stillAt(t, officer, p.base, "namesti", at, tile.Size())
			before := stillAt(t, officer, p.base, "namesti", at.Add(-4*time.Second), tile.Size())
			if lumaDiff(now, before, image.Point{}) < 2 {
				continue // the car stood still: both stills look alike
			}
			compared++
			same, other := lumaDiff(img, now, tile.Min), lumaDiff(img, before, tile.Min)
			if same >= other || same > 6 {
				t.Errorf("thumbnail at %v differs from the still of its time by %.1f gray levels and from the still 4 s earlier by %.1f; want it to show its own moment", at, same, other)
			}
		}
	}
	if compared == 0 {
		t.Fatalf("no thumbnail of a moment when the car moved: nothing compared (%d thumbnails)", len(times))
	}

	// A camera without motion detection: a keyframe every 10 s.
	velitel := loginClient(t, p.base, "velitel", accountPassword)
	if status, _, body := e2eDo(t, velitel, "POST", p.base+"api/playback", "application/json", `{"cameras":["dvur"],"reason":"kontrola"}`); status != http.StatusCreated {
		t.Fatalf("supervisor starts playback of dvur: %d %s", status, body)
	}
	var dvur thumbsAnswer
	decodeJSON(t, httpGet(t, velitel, p.base+"api/cameras/dvur/thumbs?"+rangeQ), &dvur)
	var dvurTimes []time.Time
	for _, s := range dvur.Segments {
		dvurTimes = append(dvurTimes, s.Times...)
	}
	if len(dvurTimes) < 3 {
		t.Fatalf("dvur (no motion detection): %d thumbnails over 40 s; want one every 10 s", len(dvurTimes))
	}
	for i := 1; i < len(dvurTimes); i++ {
		if gap := dvurTimes[i].Sub(dvurTimes[i-1]); gap < 9*time.Second || gap > 10500*time.Millisecond {
			t.Errorf("dvur thumbnails %v apart; want 10 s (one keyframe in five of a 2 s GOP)", gap)
		}
	}
	// Its sprite is no sprite to the officer: the same 404 as an unknown segment.
	_, _, unknownSeg := e2eDo(t, officer, "GET", p.base+"api/segments/99999999/thumbs.jpg", "", "")
	dvurID := strconv.FormatInt(dvur.Segments[0].ID, 10)
	status, _, ungrantedSeg := e2eDo(t, officer, "GET", p.base+"api/segments/"+dvurID+"/thumbs.jpg", "", "")
	if status != http.StatusNotFound || strings.ReplaceAll(unknownSeg, "99999999", dvurID) != ungrantedSeg {
		t.Errorf("sprite of an ungranted segment: %d %s; unknown: %s — they must read the same", status, ungrantedSeg, unknownSeg)
	}

	// A deletion the catalog recorded while townwatch was down is finished at the next
	// start: the file and its thumbnails go.
	stopServe(t, p)
	first := th.Segments[0]
	rel := segmentPathOf(t, cfgPath, first.ID)
	thumbsFile := filepath.Join(storage, filepath.FromSlash(recorder.ThumbnailsPath(rel)))
	if _, err := os.Stat(thumbsFile); err != nil {
		t.Fatalf("thumbnails of segment %d are not beside it: %v", first.ID, err)
	}
	cat, err := catalog.Open(context.Background(), filepath.Join(storage, catalogFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cat.DeleteSegment(context.Background(), first.ID, "retention: older than 1m", time.Now()); err != nil {
		t.Fatal(err)
	}
	cat.Close()
	p = startServe(t, cfgPath)
	for _, f := range []string{filepath.Join(storage, filepath.FromSlash(rel)), thumbsFile} {
		if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after the deletion: %v, want it gone", f, err)
		}
	}
	officer = loginClient(t, p.base, "straznik", accountPassword)
	if status, _, body := e2eDo(t, officer, "POST", p.base+"api/playback", "application/json", `{"cameras":["namesti"],"reason":"kontrola parkování"}`); status != http.StatusCreated {
		t.Fatalf("start playback again: %d %s", status, body)
	}
	if status, _, body := e2eDo(t, officer, "GET", p.base+first.Sprite[1:], "", ""); status != http.StatusGone {
		t.Errorf("sprite of the deleted segment: %d %s, want 410", status, body)
	}
	decodeJSON(t, httpGet(t, officer, p.base+"api/cameras/namesti/thumbs?"+rangeQ), &th)
	for _, s := range th.Segments {
		if s.ID == first.ID {
			t.Errorf("the index still lists the deleted segment %d", first.ID)
		}
	}
}

// stillAt is the full-size recorded frame at at (frame.jpg), scaled to size by averaging.
func stillAt(t *testing.T, c *http.Client, base, camera string, at time.Time, size image.Point) image.Image {
	t.Helper()
	b := fetch(t, c, base+"api/cameras/"+camera+"/frame.jpg?t="+url.QueryEscape(at.Format(time.RFC3339Nano)), "", http.StatusOK)
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	src := img.Bounds()
	out := image.NewGray(image.Rect(0, 0, size.X, size.Y))
	for y := range size.Y {
		for x := range size.X {
			x0, x1 := src.Min.X+x*src.Dx()/size.X, src.Min.X+(x+1)*src.Dx()/size.X
			y0, y1 := src.Min.Y+y*src.Dy()/size.Y, src.Min.Y+(y+1)*src.Dy()/size.Y
			var sum, n int
			for yy := y0; yy < max(y1, y0+1); yy++ {
				for xx := x0; xx < max(x1, x0+1); xx++ {
					sum += int(luma(img, xx, yy))
					n++
				}
			}
			out.Pix[y*out.Stride+x] = uint8(sum / n)
		}
	}
	return out
}

func luma(img image.Image, x, y int) uint8 {
	r, g, b, _ := img.At(x, y).RGBA()
	return uint8((299*r + 587*g + 114*b) / 1000 >> 8)
}

// lumaDiff is the mean absolute gray-level difference between b and the same-sized
// area of a at off.
func lumaDiff(a, b image.Image, off image.Point) float64 {
	bb := b.Bounds()
	var sum, n float64
	for y := bb.Min.Y; y < bb.Max.Y; y++ {
		for x := bb.Min.X; x < bb.Max.X; x++ {
			d := float64(luma(a, off.X+x-bb.Min.X, off.Y+y-bb.Min.Y)) - float64(luma(b, x, y))
			if d < 0 {
				d = -d
			}
			sum += d
			n++
		}
	}
	return sum / n
}
