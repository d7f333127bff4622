package viewer

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
)

// EventStore is what the events API reads: the catalog's motion events.
type EventStore interface {
	Events(ctx context.Context, q catalog.EventQuery) ([]catalog.Event, error)
	Event(ctx context.Context, id string) (catalog.Event, error)
}

// Events serves motion event search and snapshots:
//
//	GET /api/events?camera=&from=&to=&zone=&min_score=&before=&limit=   newest first, times RFC 3339 UTC
//	GET /api/events/{id}/snapshot.jpg
type Events struct {
	Store EventStore
	// OpenSnapshot opens a snapshot by its storage path (recorder.Storage.Open).
	OpenSnapshot func(rel string) (fs.File, error)
	Log          *slog.Logger

	// cameras are the configured cameras (the server's list); a search for another
	// camera is a 404, so a typo is not mistaken for "nothing happened there".
	cameras cameraSet
}

// eventCamera is the camera of the event a snapshot request names, for the guard: an
// unknown event and an event of a camera the user may not see get the same 404.
func (e *Events) eventCamera(r *http.Request) (string, string, error) {
	id := r.PathValue("id")
	notFound := "unknown event " + quote(id)
	ev, err := e.Store.Event(r.Context(), id)
	if errors.Is(err, catalog.ErrNotFound) {
		return "", notFound, nil
	}
	if err != nil {
		return "", notFound, err
	}
	return ev.Camera, notFound, nil
}

// eventJSON is one event in /api/events.
type eventJSON struct {
	ID          string     `json:"id"`
	Camera      string     `json:"camera"`
	Start       time.Time  `json:"start"`
	End         *time.Time `json:"end"` // null while the event is going on
	Ongoing     bool       `json:"ongoing"`
	Score       float64    `json:"score"`
	Box         boxJSON    `json:"box"`
	Zones       []string   `json:"zones"`
	SnapshotURL string     `json:"snapshot_url,omitempty"`
}

type boxJSON struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
	W float64 `json:"w"`
	H float64 `json:"h"`
}

func toEventJSON(ev catalog.Event) eventJSON {
	out := eventJSON{
		ID: ev.ID, Camera: ev.Camera, Start: ev.Start.UTC(), Ongoing: ev.End.IsZero(), Score: ev.Score,
		Box: boxJSON{ev.Box.X, ev.Box.Y, ev.Box.W, ev.Box.H}, Zones: ev.Zones,
	}
	if !ev.End.IsZero() {
		end := ev.End.UTC()
		out.End = &end
	}
	if out.Zones == nil {
		out.Zones = []string{}
	}
	if ev.Snapshot != "" {
		out.SnapshotURL = "/api/events/" + url.PathEscape(ev.ID) + "/snapshot.jpg"
	}
	return out
}

func (e *Events) handleList(w http.ResponseWriter, r *http.Request) {
	q, problem := e.parseQuery(r.URL.Query())
	if problem != "" {
		writeError(w, http.StatusBadRequest, problem)
		return
	}
	visible := scopeOf(r)
	if q.Camera != "" && (!e.known(q.Camera) || !visible(q.Camera)) {
		writeError(w, http.StatusNotFound, "unknown camera "+quote(q.Camera))
		return
	}
	if q.Camera == "" {
		// Only the cameras this user may see; the catalog filters, so a page of results
		// is a full page of visible events.
		q.Cameras = []string{}
		for _, id := range e.cameras.ids() {
			if visible(id) {
				q.Cameras = append(q.Cameras, id)
			}
		}
	}
	events, err := e.Store.Events(r.Context(), q)
	if err != nil {
		e.log().Error("event search failed", "err", err)
		writeError(w, http.StatusInternalServerError, "event search failed; see the server log")
		return
	}
	out := make([]eventJSON, len(events))
	for i, ev := range events {
		out[i] = toEventJSON(ev)
	}
	writeJSON(w, http.StatusOK, out)
}

// parseQuery reads the search parameters; the message names the parameter at fault.
func (e *Events) parseQuery(v url.Values) (catalog.EventQuery, string) {
	q := catalog.EventQuery{Camera: v.Get("camera"), Zone: v.Get("zone")}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &q.From}, {"to", &q.To}, {"before", &q.Before}} {
		raw := v.Get(p.name)
		if raw == "" {
			continue
		}
		t, problem := parseTimeParam(p.name, raw)
		if problem != "" {
			return q, problem
		}
		*p.dst = t
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From) {
		return q, "to must be after from"
	}
	if raw := v.Get("min_score"); raw != "" {
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil || !(f >= 0 && f <= 1) {
			return q, "min_score: " + quote(raw) + " is not a number from 0 to 1"
		}
		q.MinScore = f
	}
	if raw := v.Get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > catalog.MaxEventLimit {
			return q, "limit: " + quote(raw) + " is not a number from 1 to " + strconv.Itoa(catalog.MaxEventLimit)
		}
		q.Limit = n
	}
	return q, ""
}

func (e *Events) known(camera string) bool { return e.cameras.known(camera) }

func (e *Events) handleSnapshot(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ev, err := e.Store.Event(r.Context(), id)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		writeError(w, http.StatusNotFound, "unknown event "+quote(id))
		return
	case err != nil:
		e.log().Error("event lookup failed", "event", id, "err", err)
		writeError(w, http.StatusInternalServerError, "event lookup failed; see the server log")
		return
	case ev.Snapshot == "":
		writeError(w, http.StatusNotFound, "event "+quote(id)+" has no snapshot (yet)")
		return
	}
	f, err := e.OpenSnapshot(ev.Snapshot)
	if err != nil {
		// The row says there is a picture and the disk says no: worth an operator's look.
		e.log().Warn("snapshot missing", "event", id, "path", ev.Snapshot, "err", err)
		writeError(w, http.StatusNotFound, "snapshot of event "+quote(id)+" is missing on disk")
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "image/jpeg")
	// Personal data: the browser may keep it for the session, no shared cache may.
	w.Header().Set("Cache-Control", "private, max-age=3600")
	if _, err := io.Copy(w, f); err != nil {
		e.log().Debug("snapshot not fully sent", "event", id, "err", err)
	}
}

func (e *Events) log() *slog.Logger {
	if e.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Log
}
