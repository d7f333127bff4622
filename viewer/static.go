package viewer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// staticFile is one embedded browser file, ready to serve.
type staticFile struct {
	body        []byte
	contentType string
	etag        string
}

// staticTypes are the content types of the file kinds the wall is made of. The table is
// ours rather than the mime package's, which reads /etc/mime.types and so may answer
// differently per machine; a module script served with a wrong type does not run.
var staticTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// indexCSP keeps the wall to its own origin: scripts, styles and connections only from
// townwatch itself (no CDN, no fonts from the internet), and the page never framed by
// another site (a framed wall could be clicked on by a hostile page).
const indexCSP = "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; " +
	"object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// loadStatic reads every file of fsys (the embedded web.Files) once, with an ETag from its
// content, so a browser revalidates cheaply and never runs a stale module after an upgrade.
// A file of a kind without a content type is an error: it would be served wrongly.
func loadStatic(fsys fs.FS) (map[string]staticFile, error) {
	files := make(map[string]staticFile)
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := staticTypes[path.Ext(name)]
		if !ok {
			return fmt.Errorf("viewer: web file %s: no content type for %q", name, path.Ext(name))
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return fmt.Errorf("viewer: web file %s: %w", name, err)
		}
		sum := sha256.Sum256(body)
		files[name] = staticFile{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, page := range []string{"index.html", "login.html", "setup.html", "audit.html", "playback.html", "search.html", "admin.html"} {
		if _, ok := files[page]; !ok {
			return nil, fmt.Errorf("viewer: web files have no %s", page)
		}
	}
	return files, nil
}

// handleIndex serves the live wall.
func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) {
	s.servePage(w, r, "index.html")
}

// handleLoginPage serves the login page.
func (s *Server) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	s.servePage(w, r, "login.html")
}

// handleAuditPage serves the auditor's access-log page.
func (s *Server) handleAuditPage(w http.ResponseWriter, r *http.Request) {
	s.servePage(w, r, "audit.html")
}

// handleSearchPage serves the event search page.
func (s *Server) handleSearchPage(w http.ResponseWriter, r *http.Request) {
	s.servePage(w, r, "search.html")
}

// handlePlaybackPage serves the player. The page asks for the reason itself: the
// footage and its metadata are what POST /api/playback guards, not the page.
func (s *Server) handlePlaybackPage(w http.ResponseWriter, r *http.Request) {
	s.servePage(w, r, "playback.html")
}

// handleNoUsers answers everything but /healthz while no account exists: a page (or, for
// the API, a message) naming the command that makes the first one. There are no default
// credentials to log in with.
func (s *Server) handleNoUsers(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/api") && r.URL.Path != "/metrics" {
		w.Header().Set("Content-Security-Policy", indexCSP)
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", s.static["setup.html"].contentType)
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write(s.static["setup.html"].body)
		return
	}
	writeError(w, http.StatusServiceUnavailable, "no user account exists yet: on the server, run "+
		"townwatch user add -config FILE -name NAME -role admin (see the README)")
}

// servePage serves one of the HTML pages with the same-origin policy.
func (s *Server) servePage(w http.ResponseWriter, r *http.Request, name string) {
	w.Header().Set("Content-Security-Policy", indexCSP)
	w.Header().Set("Referrer-Policy", "no-referrer")
	s.serveStatic(w, r, name)
}

// handleStatic serves the wall's modules, stylesheet and icon under /static/.
func (s *Server) handleStatic(w http.ResponseWriter, r *http.Request) {
	s.serveStatic(w, r, r.PathValue("file"))
}

func (s *Server) serveStatic(w http.ResponseWriter, r *http.Request, name string) {
	f, ok := s.static[name]
	if !ok {
		writeError(w, http.StatusNotFound, "no such file "+quote(name))
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("ETag", f.etag)
	// no-cache: keep it, but ask (If-None-Match → 304) before each use, so an upgraded
	// server never leaves a dispatcher on old scripts for a whole shift.
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
}
