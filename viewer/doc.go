// Package viewer owns townwatch's HTTP surface on http.listen: the live wall (the browser
// UI embedded from viewer/web, at "/" and /static/), the REST API (/api/...), the health
// check (/healthz) and the Prometheus endpoint (/metrics). The live view's WHEP endpoints
// come from viewer/live and the motion events API from Events; Server mounts both on its
// mux when they are given.
//
// Handlers read state through snapshots (ingest.Source.Status, live.Manager.Stats); none
// of them blocks on a camera or holds a lock while writing a response. The embedded files
// are read once in New and served from memory with content ETags (304 on revalidation).
// Nothing is queued here, so nothing is dropped under load: a slow client only slows its
// own response, and media never passes through these handlers.
//
// The wall exposes a small test hook in the page, window.townwatch (see viewer/web/app.js),
// and data-state/data-stream attributes on each tile; the browser tests and the first-frame
// benchmark read those instead of scraping text.
package viewer
