package viewer

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/viewer/access"
	"github.com/townwatch/townwatch/viewer/live"
	"github.com/townwatch/townwatch/viewer/web"
)

func request(t *testing.T, h http.Handler, path string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// wantTypes is what a browser must receive for each kind of file: a module script with
// another type does not run at all.
var wantTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

func TestIndexServesTheLiveWall(t *testing.T) {
	rec := request(t, testServer(t).Handler(), "/", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /: %d", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != wantTypes[".html"] {
		t.Errorf("GET / Content-Type = %q", ct)
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("GET / Content-Security-Policy = %q, want same-origin only and no framing", csp)
	}
	if body := rec.Body.String(); !strings.Contains(body, `<script type="module" src="static/app.js">`) {
		t.Errorf("GET / does not load the wall's module:\n%s", body)
	}
}

// TestEveryReferencedFileIsServed follows what a browser loads: the files index.html links
// and the modules each script imports must all be served, each with its content type. A
// renamed module or a typo in an import would leave the wall blank.
func TestEveryReferencedFileIsServed(t *testing.T) {
	h := testServer(t).Handler()
	links := regexp.MustCompile(`(?:src|href)="(static/[^"]+)"`)
	imports := regexp.MustCompile(`from "\./([^"]+)"`)
	index := request(t, h, "/", nil).Body.String()
	queue := []string{}
	for _, m := range links.FindAllStringSubmatch(index, -1) {
		queue = append(queue, strings.TrimPrefix(m[1], "static/"))
	}
	seen := map[string]bool{}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if seen[name] {
			continue
		}
		seen[name] = true
		rec := request(t, h, "/static/"+name, nil)
		if rec.Code != http.StatusOK {
			t.Errorf("GET /static/%s: %d, want 200", name, rec.Code)
			continue
		}
		if ct, want := rec.Header().Get("Content-Type"), wantTypes[path.Ext(name)]; ct != want {
			t.Errorf("GET /static/%s Content-Type = %q, want %q", name, ct, want)
		}
		if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET /static/%s X-Content-Type-Options = %q, want nosniff", name, got)
		}
		for _, m := range imports.FindAllStringSubmatch(rec.Body.String(), -1) {
			queue = append(queue, m[1])
		}
	}
	for _, want := range []string{"app.js", "tile.js", "whep.js", "i18n.js", "style.css", "favicon.svg"} {
		if !seen[want] {
			t.Errorf("%s is never loaded by the page (loaded: %v)", want, seen)
		}
	}
}

// TestWebFilesUseNoExternalURL keeps the wall working on a police network without internet
// access: no CDN, no web fonts, nothing fetched from elsewhere.
func TestWebFilesUseNoExternalURL(t *testing.T) {
	err := fs.WalkDir(web.Files, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(web.Files, name)
		if err != nil {
			return err
		}
		// An SVG's XML namespace is an identifier, never fetched: in markup (xmlns=) and as
		// the string document.createElementNS takes.
		text := strings.ReplaceAll(string(body), `xmlns="http://www.w3.org/2000/svg"`, "")
		text = strings.ReplaceAll(text, `"http://www.w3.org/2000/svg"`, "")
		for _, scheme := range []string{"http://", "https://", "//cdn", "@import", "url("} {
			if strings.Contains(text, scheme) {
				t.Errorf("%s contains %q: the wall must load nothing from outside townwatch", name, scheme)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestStaticFilesRevalidateWithETag(t *testing.T) {
	h := testServer(t).Handler()
	first := request(t, h, "/static/app.js", nil)
	etag := first.Header().Get("ETag")
	if first.Code != http.StatusOK || etag == "" || first.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("GET /static/app.js: %d ETag %q Cache-Control %q, want 200 with an ETag and no-cache",
			first.Code, etag, first.Header().Get("Cache-Control"))
	}
	again := request(t, h, "/static/app.js", http.Header{"If-None-Match": {etag}})
	if again.Code != http.StatusNotModified || again.Body.Len() != 0 {
		t.Fatalf("revalidation: %d with %d bytes, want 304 and no body", again.Code, again.Body.Len())
	}
	if other := request(t, h, "/static/style.css", nil).Header().Get("ETag"); other == etag {
		t.Fatalf("app.js and style.css share ETag %s: the ETag must follow the content", etag)
	}
}

func TestUnknownPathsAre404(t *testing.T) {
	h := testServer(t).Handler()
	for _, p := range []string{"/static/nope.js", "/static/", "/static/app.js.map", "/static/web.go", "/no-such-page", "/index.html"} {
		if rec := request(t, h, p, nil); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, rec.Code)
		}
	}
}

func TestAPIIndexListsWhatIsServed(t *testing.T) {
	rec := request(t, testServer(t).Handler(), "/api", nil)
	body := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /api: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	for _, want := range []string{"/api/cameras", "/healthz", "/metrics"} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /api does not list %s:\n%s", want, body)
		}
	}
	if strings.Contains(body, "whep") {
		t.Errorf("GET /api lists WHEP on a server without live view:\n%s", body)
	}

	lm, err := live.New(ingest.NewHub(), []live.Camera{{ID: "stribro-namesti"}}, live.Options{ListenHost: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	fx := newAccessFixture(t)
	s, err := New(Options{Listen: "127.0.0.1:0", Metrics: http.NotFoundHandler(), Live: lm, Access: fx.opts})
	if err != nil {
		t.Fatal(err)
	}
	fx.addUser(t, "dispecer", []access.Role{access.Dispatcher}, true)
	if body := request(t, withCookie(s.Handler(), login(t, s.Handler(), "dispecer")), "/api", nil).Body.String(); !strings.Contains(body, "POST /api/cameras/{id}/whep") {
		t.Errorf("GET /api with live view does not list WHEP:\n%s", body)
	}
}

// TestWallPreloadsEveryModule keeps the wall's module loading one round trip deep:
// index.html preloads exactly the modules app.js imports, directly or through another
// module. A module missing from the list is fetched only after the one that imports it
// (a later first picture); one no longer imported is a wasted request.
func TestWallPreloadsEveryModule(t *testing.T) {
	imports := regexp.MustCompile(`from "\./([^"]+)"`)
	preloads := regexp.MustCompile(`<link rel="modulepreload" href="static/([^"]+)">`)
	index, err := fs.ReadFile(web.Files, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	preloaded := map[string]bool{}
	for _, m := range preloads.FindAllStringSubmatch(string(index), -1) {
		preloaded[m[1]] = true
	}
	imported := map[string]bool{}
	queue := []string{"app.js"}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		body, err := fs.ReadFile(web.Files, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, m := range imports.FindAllStringSubmatch(string(body), -1) {
			if !imported[m[1]] {
				imported[m[1]] = true
				queue = append(queue, m[1])
			}
		}
	}
	for name := range imported {
		if !preloaded[name] {
			t.Errorf("index.html does not preload %s, which app.js imports: add <link rel=\"modulepreload\" href=\"static/%s\">", name, name)
		}
	}
	for name := range preloaded {
		if !imported[name] {
			t.Errorf("index.html preloads %s, which the wall no longer imports", name)
		}
	}
	if len(imported) == 0 {
		t.Error("found no import in app.js: the import pattern no longer matches the modules")
	}
}
