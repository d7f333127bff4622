// Package viewer owns townwatch's HTTP surface: the REST API (/api/...), the health check
// (/healthz) and the Prometheus endpoint (/metrics) on http.listen. Live view over WebRTC and
// the web UI will be served from here as well.
//
// Handlers read state through snapshots (ingest.Source.Status); none of them blocks on a
// camera or holds a lock while writing a response.
package viewer
