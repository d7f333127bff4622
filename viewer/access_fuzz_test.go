package viewer

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// Fuzz targets for the authorization chokepoint's inputs that come straight from the
// network: the login body, the session cookie and the audit query. Each runs against a
// real Server on a real catalog (the access fixture) and checks its answer against an
// oracle written here from the documented behaviour.

// newGuardServer is a Server with the two cameras of newRouteRig (no live view, no
// events) on a fresh access fixture. newRouteRig needs a *testing.T; fuzz targets and
// benchmarks build their server before they have one.
func newGuardServer(tb testing.TB) (*Server, *accessFixture) {
	tb.Helper()
	fx := newAccessFixture(tb)
	cams := []Camera{{ID: "namesti", Main: fixedStatus{State: ingest.StateStreaming}}, {ID: "most", Main: fixedStatus{State: ingest.StateStreaming}}}
	s, err := New(Options{Listen: "127.0.0.1:0", Cameras: StaticCameras(cams), Metrics: http.NotFoundHandler(), Access: fx.opts})
	if err != nil {
		tb.Fatal(err)
	}
	return s, fx
}

var fuzzAddresses atomic.Int64

// fuzzAddr is a client address not used before in this process (10.0.0.0/8; no proxy is
// trusted, so it is the address the login throttle keys on).
func fuzzAddr() string {
	n := fuzzAddresses.Add(1)
	return fmt.Sprintf("10.%d.%d.%d:4000", n>>16&255, n>>8&255, n&255)
}

// strictLoginBody is the documented contract of POST /api/login's body: Content-Type
// application/json (parameters allowed), at most maxLoginBody bytes, exactly one JSON
// object with no fields but username and password, only white space after it.
func strictLoginBody(contentType string, body []byte) (loginRequest, bool) {
	var req loginRequest
	if len(body) > maxLoginBody {
		return req, false
	}
	if mt, _, err := mime.ParseMediaType(contentType); err != nil || mt != "application/json" {
		return req, false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, false
	}
	return req, len(bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n")) == 0
}

// answerEchoes reports whether body holds secret as it is or as the JSON encoder writes it.
func answerEchoes(body, secret string) bool {
	quoted, _ := json.Marshal(secret)
	return strings.Contains(body, secret) || strings.Contains(body, string(quoted[1:len(quoted)-1]))
}

// FuzzLoginBody posts arbitrary bytes with an arbitrary Content-Type to POST /api/login
// of a server with one account. Every input gets a fresh client address and a minute of
// test clock, so the throttle never answers and every well-formed body reaches the
// password check. Checked:
//   - the status is what the contract says: 400 for anything but one strict JSON object
//     under application/json, 200 for exactly the account's name and password, 401 for any
//     other name or password (so no 429, no 5xx, no 415);
//   - 400 and 401 are always the same bytes (nothing of the input, and no hint whether the
//     account exists), 200 is the account's fixed /api/me view;
//   - neither the password nor the name typed (people type passwords into it) is echoed;
//   - a session cookie is set on 200 and only then.
func FuzzLoginBody(f *testing.F) {
	s, fx := newGuardServer(f)
	const user = "velitel"
	fx.addUser(f, user, []access.Role{access.Supervisor}, true)
	h := s.Handler()

	// The fixed answers, taken once.
	ref := map[int]string{
		http.StatusBadRequest:   do(h, http.MethodPost, "/api/login", "text/plain", "x").Body.String(),
		http.StatusUnauthorized: postLogin(h, "nikdo", "wrong-password-1", fuzzAddr()).Body.String(),
		http.StatusOK:           postLogin(h, user, testPassword, fuzzAddr()).Body.String(),
	}
	if !strings.Contains(ref[http.StatusOK], `"name":"velitel"`) || !strings.Contains(ref[http.StatusUnauthorized], "wrong user name or password") {
		f.Fatalf("reference answers: %v", ref)
	}

	right := fmt.Sprintf(`{"username":%q,"password":%q}`, user, testPassword)
	for _, seed := range []struct{ ct, body string }{
		{"application/json", right},                                                      // 200
		{"application/json; charset=utf-8", right},                                       // 200
		{"Application/JSON", " \n" + right + "\r\n\t"},                                   // 200: media type and white space
		{"application/json", `{"USERNAME":"velitel","Password":"` + testPassword + `"}`}, // 200: encoding/json matches keys case-insensitively
		{"application/json", `{"username":"x","username":"velitel","password":"` + testPassword + `"}`},
		{"application/json", `{"username":"velitel","password":"wrong-password-000"}`},   // 401
		{"application/json", `{"username":"Velitel","password":"` + testPassword + `"}`}, // 401: names are exact
		{"application/json", `{"username":"velitel\u0000","password":"` + testPassword + `"}`},
		{"application/json", `{"username":"nobody","password":"` + testPassword + `"}`},
		{"application/json", `{"username":"` + testPassword + `","password":""}`}, // password typed as the name
		{"application/json", `{"username":"velitel","password":"<script>\"&'"}`},
		{"application/json", `{}`},
		{"application/json", `null`},
		{"application/json", `[]`},
		{"application/json", `{"username":"velitel","password":"` + testPassword + `","admin":true}`}, // 400: unknown field
		{"application/json", right + right}, // 400: two objects
		{"application/json", right + "]"},
		{"application/json", `{"username":1,"password":"x"}`},
		{"application/json", `{"username":"velitel","password":"` + testPassword},
		{"application/json", right + strings.Repeat(" ", maxLoginBody)}, // 400: too long, even if only white space
		{"text/plain", right},
		{"application/x-www-form-urlencoded", "username=velitel&password=" + testPassword},
		{"", right},
		{"application/json;", right},
		{"application/sdp", right},
		{"application/json", ""},
		{"application/json", "\xff\xfe{}"},
	} {
		f.Add(seed.ct, []byte(seed.body))
	}

	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		fx.clock.Advance(time.Minute) // every throttle bucket full again
		req := httptest.NewRequest(http.MethodPost, "/api/login", bytes.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		req.RemoteAddr = fuzzAddr()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got := rec.Body.String()

		want := http.StatusBadRequest
		if creds, ok := strictLoginBody(contentType, body); ok {
			want = http.StatusUnauthorized
			if creds.Username == user && creds.Password == testPassword {
				want = http.StatusOK
			}
		}
		if rec.Code != want {
			t.Fatalf("Content-Type %q body %q: %d %s, want %d", contentType, body, rec.Code, got, want)
		}

		// What was typed, read leniently (the first JSON value, unknown fields ignored).
		var typed loginRequest
		_ = json.NewDecoder(bytes.NewReader(body)).Decode(&typed)
		for field, secret := range map[string]string{"password": typed.Password, "username": typed.Username} {
			if rec.Code == http.StatusOK && field == "username" {
				continue // the answer names the account that logged in
			}
			if len(secret) >= 4 && answerEchoes(got, secret) && !answerEchoes(ref[rec.Code], secret) {
				t.Fatalf("the %d answer echoes the %s %q: %s", rec.Code, field, secret, got)
			}
		}
		if got != ref[rec.Code] {
			t.Fatalf("Content-Type %q body %q: %d answer %q differs from the fixed %q", contentType, body, rec.Code, got, ref[rec.Code])
		}
		cookies := rec.Result().Cookies()
		if (len(cookies) > 0) != (rec.Code == http.StatusOK) {
			t.Fatalf("%d with cookies %v", rec.Code, cookies)
		}
	})
}

// Fixed session tokens, so that the fuzzer mutates real tokens (the ones login makes are
// new in every process): one live session, one expired.
var (
	fuzzLiveToken    = base64.RawURLEncoding.EncodeToString([]byte("townwatch-fuzz-live-session-tok!"))
	fuzzExpiredToken = base64.RawURLEncoding.EncodeToString([]byte("townwatch-fuzz-expired-session!!"))
)

// tokenAlias is token with the unused low bits of its last character changed: it decodes
// to the same 32 bytes (the decoder is not strict) but is another string.
func tokenAlias(token string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, token[len(token)-1])
	return token[:len(token)-1] + string(alphabet[last^1])
}

// FuzzSessionCookie sends GET /api/me and GET /api/cameras with an arbitrary Cookie
// header (asValue: the input is the session cookie's value). In the input,
// {{login}}, {{logout}} and {{disabled}} stand for the token of a session made by login
// in this process, one logged out, and one whose account was then disabled. Checked: the
// answer is 200 exactly when the session cookie, as net/http reads the header, holds a
// live session's token (and then some live token is in the header verbatim), 401
// otherwise with WWW-Authenticate; never anything else, never a cookie set.
func FuzzSessionCookie(f *testing.F) {
	s, fx := newGuardServer(f)
	fx.addUser(f, "velitel", []access.Role{access.Supervisor}, true)
	fx.addUser(f, "vypnuty", []access.Role{access.Supervisor}, true)
	h := s.Handler()
	ctx := f.Context()
	name := s.auth.cookieName()
	now := fx.clock.Now()

	u, err := fx.cat.UserByName(ctx, "velitel")
	if err != nil {
		f.Fatal(err)
	}
	for _, sess := range []catalog.Session{
		{TokenHash: access.HashToken(fuzzLiveToken), UserID: u.ID, Created: now, LastSeen: now, Client: "192.0.2.9"},
		{TokenHash: access.HashToken(fuzzExpiredToken), UserID: u.ID, Created: now.Add(-sessionAbsolute - time.Hour),
			LastSeen: now.Add(-sessionIdle - time.Minute), Client: "192.0.2.9"},
	} {
		if err := fx.cat.CreateSession(ctx, sess); err != nil {
			f.Fatal(err)
		}
	}
	loggedIn := login(f, h, "velitel").Value
	loggedOut := login(f, h, "velitel")
	if rec := do(withCookie(h, loggedOut), http.MethodPost, "/api/logout", "application/json", ""); rec.Code != http.StatusNoContent {
		f.Fatalf("logout: %d %s", rec.Code, rec.Body)
	}
	disabled := login(f, h, "vypnuty").Value
	if err := fx.cat.SetDisabled(ctx, "vypnuty", true, now); err != nil {
		f.Fatal(err)
	}
	live := map[string]bool{fuzzLiveToken: true, loggedIn: true}
	placeholders := strings.NewReplacer("{{login}}", loggedIn, "{{logout}}", loggedOut.Value, "{{disabled}}", disabled)

	for _, seed := range []struct {
		header  string
		asValue bool
	}{
		{"townwatch_session={{login}}", false}, // 200
		{"townwatch_session=" + fuzzLiveToken, false},
		{fuzzLiveToken, true},
		{"{{login}}", true},
		{"theme=dark; townwatch_session=" + fuzzLiveToken + "; lang=cs", false},
		{`townwatch_session="` + fuzzLiveToken + `"`, false}, // net/http drops the quotes
		{"townwatch_session={{logout}}", false},              // 401 from here on
		{"townwatch_session={{disabled}}", false},
		{"townwatch_session=" + fuzzExpiredToken, false},
		{"townwatch_session=" + tokenAlias(fuzzLiveToken), false},
		{"townwatch_session=" + fuzzLiveToken[:42], false},
		{"townwatch_session=" + fuzzLiveToken + "A", false},
		{"townwatch_session=" + fuzzLiveToken + "=", false},
		{"townwatch_session=" + strings.ToUpper(fuzzLiveToken), false},
		{"__Host-townwatch_session=" + fuzzLiveToken, false},
		{"TOWNWATCH_SESSION=" + fuzzLiveToken, false},
		{"townwatch_session={{logout}}; townwatch_session=" + fuzzLiveToken, false},
		{"townwatch_session=" + fuzzLiveToken + "; townwatch_session=x", false},
		{" townwatch_session = " + fuzzLiveToken + " ", false},
		{"townwatch_session=" + fuzzLiveToken + "\x00", false},
		{"townwatch_session=" + strings.Repeat("A", 43), false},
		{"townwatch_session=../../etc/passwd", false},
		{"townwatch_session=", false},
		{"townwatch_session", false},
		{"", false},
		{"", true},
		{";;;=", false},
	} {
		f.Add(seed.header, seed.asValue)
	}

	f.Fuzz(func(t *testing.T, header string, asValue bool) {
		header = placeholders.Replace(header)
		if asValue {
			header = name + "=" + header
		}
		for _, path := range []string{"/api/me", "/api/cameras"} {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			req.Header.Set("Cookie", header)
			want := http.StatusUnauthorized
			if c, err := req.Cookie(name); err == nil && live[c.Value] {
				want = http.StatusOK
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != want {
				t.Fatalf("GET %s with Cookie %q: %d %s, want %d", path, header, rec.Code, rec.Body, want)
			}
			if len(rec.Result().Cookies()) > 0 {
				t.Fatalf("GET %s with Cookie %q set cookies %v", path, header, rec.Result().Cookies())
			}
			if rec.Code == http.StatusUnauthorized {
				if rec.Header().Get("WWW-Authenticate") == "" {
					t.Fatalf("GET %s with Cookie %q: 401 without WWW-Authenticate", path, header)
				}
				continue
			}
			if !strings.Contains(header, loggedIn) && !strings.Contains(header, fuzzLiveToken) {
				t.Fatalf("GET %s with Cookie %q: 200 without any live token in the header", path, header)
			}
			switch path {
			case "/api/me":
				var me meJSON
				if err := json.Unmarshal(rec.Body.Bytes(), &me); err != nil || me.Name != "velitel" {
					t.Fatalf("GET /api/me as velitel: %s (%v)", rec.Body, err)
				}
			case "/api/cameras":
				var cams []cameraJSON
				if err := json.Unmarshal(rec.Body.Bytes(), &cams); err != nil || len(cams) != 2 {
					t.Fatalf("GET /api/cameras as a supervisor: %s (%v)", rec.Body, err)
				}
			}
		}
	})
}

// auditQueryParams are GET /api/audit's parameters.
var auditQueryParams = []string{"from", "to", "user", "camera", "action", "after", "limit", "format"}

// auditQueryFaults is the contract of GET /api/audit's parameters, written out again:
// which present parameters are wrong on their own, and "order" when from and to are both
// right but to is not after from. An empty value counts as absent; of a repeated
// parameter the first counts.
func auditQueryFaults(v url.Values) map[string]bool {
	bad := map[string]bool{}
	times := map[string]time.Time{}
	for _, name := range []string{"from", "to"} {
		if raw := v.Get(name); raw != "" {
			t, err := time.Parse(time.RFC3339Nano, raw)
			if err != nil || t.Before(minQueryTime) || t.After(maxQueryTime) {
				bad[name] = true
			} else {
				times[name] = t
			}
		}
	}
	if from, ok := times["from"]; ok {
		if to, ok := times["to"]; ok && !to.After(from) {
			bad["order"] = true
		}
	}
	if raw := v.Get("after"); raw != "" {
		if n, err := strconv.ParseInt(raw, 10, 64); err != nil || n < 0 {
			bad["after"] = true
		}
	}
	if raw := v.Get("limit"); raw != "" {
		if n, err := strconv.Atoi(raw); err != nil || n < 1 || n > catalog.MaxAuditLimit {
			bad["limit"] = true
		}
	}
	if f := v.Get("format"); f != "" && f != "json" && f != "csv" {
		bad["format"] = true
	}
	return bad
}

// FuzzAuditQuery sends GET /api/audit?<arbitrary raw query> as a logged-in auditor.
// Checked: the status is 200 or 400, never 5xx (a time the catalog cannot store, like
// 9999-12-31T23:59:59Z, is the client's error); a 400 names, at the start of its message,
// a parameter the query has and that is really wrong (or says to is not after from); a
// 200 comes only for a query whose parameters are all right, and holds at most limit rows
// that match every filter — as text/csv with the documented header for format=csv, as
// JSON otherwise.
func FuzzAuditQuery(f *testing.F) {
	s, fx := newGuardServer(f)
	fx.addUser(f, "revizor", []access.Role{access.Auditor}, false)
	fx.addUser(f, "velitel", []access.Role{access.Supervisor}, true)
	h := s.Handler()
	auditor := withCookie(h, login(f, h, "revizor"))
	// Some rows of other kinds: a login, a refusal with a camera.
	boss := withCookie(h, login(f, h, "velitel"))
	if rec := do(boss, http.MethodGet, "/api/audit", "", ""); rec.Code != http.StatusForbidden {
		f.Fatalf("supervisor reading the audit log: %d", rec.Code)
	}
	now := fx.clock.Now().UTC()
	for _, seed := range []string{
		"",
		"format=csv",
		"format=json&limit=1",
		"format=csv&limit=2&after=1",
		"user=velitel&action=" + url.QueryEscape(access.AuditLoginOK),
		"user=revizor&camera=namesti&action=" + url.QueryEscape(access.AuditDenied),
		"from=" + url.QueryEscape(now.Add(-time.Hour).Format(time.RFC3339Nano)) + "&to=" + url.QueryEscape(now.Add(time.Hour).Format(time.RFC3339Nano)),
		"from=" + url.QueryEscape(now.Format(time.RFC3339Nano)) + "&to=" + url.QueryEscape(now.Add(time.Nanosecond).Format(time.RFC3339Nano)),
		"from=2026-11-23T14:05:00Z",
		"from=2026-11-23T14:05:00%2B01:00&to=2026-11-23T14:05:00.000000001%2B01:00",
		"from=9999-12-31T23:59:59Z", // 400 from here on
		"to=9999-12-31T23:59:59Z",
		"to=0001-01-01T00:00:00Z",
		"from=2261-12-31T23:59:59Z",
		"from=1678-01-01T00:00:00%2B23:59",
		"from=2026-01-01T00:00:00Z&to=2025-01-01T00:00:00Z",
		"from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
		"from=yesterday",
		"from=2026-11-23 14:05:00",
		"limit=0", "limit=5000", "limit=5001", "limit=-1", "limit=abc", "limit=99999999999999999999",
		"after=-1", "after=9223372036854775807", "after=9223372036854775808", "after=%2B5",
		"format=xml", "format=CSV", "format=csv&format=json", "format=&limit=1",
		"user=%00&camera=%ff%fe&action=%27%3B--",
		"%zz=1&limit=2", "limit=1;format=csv", "a=1&&&=&limit", "from",
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, rawQuery string) {
		req := httptest.NewRequest(http.MethodGet, "/api/audit", nil)
		req.URL.RawQuery = rawQuery
		rec := httptest.NewRecorder()
		auditor.ServeHTTP(rec, req)
		v, _ := url.ParseQuery(rawQuery) // what the handler reads: the pairs that parse
		faults := auditQueryFaults(v)
		switch rec.Code {
		case http.StatusBadRequest:
			var e struct{ Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
				t.Fatalf("?%s: 400 body %q is not a JSON error: %v", rawQuery, rec.Body, err)
			}
			named := false
			for _, p := range auditQueryParams {
				if v.Get(p) != "" && strings.HasPrefix(e.Error, p+":") && faults[p] {
					named = true
				}
			}
			if e.Error == "to must be after from" && faults["order"] {
				named = true
			}
			if !named {
				t.Fatalf("?%s: 400 %q does not name a wrong parameter of the query (wrong: %v)", rawQuery, e.Error, faults)
			}
		case http.StatusOK:
			if len(faults) > 0 {
				t.Fatalf("?%s: 200, but these are wrong: %v", rawQuery, faults)
			}
			checkAuditAnswer(t, rawQuery, v, rec)
		default:
			t.Fatalf("?%s: %d %s, want 200 or 400", rawQuery, rec.Code, rec.Body)
		}
	})
}

// checkAuditAnswer checks a 200 of GET /api/audit: format, row count and filters.
func checkAuditAnswer(t *testing.T, rawQuery string, v url.Values, rec *httptest.ResponseRecorder) {
	t.Helper()
	limit := catalog.DefaultAuditLimit
	if raw := v.Get("limit"); raw != "" {
		limit, _ = strconv.Atoi(raw)
	}
	var after int64
	if raw := v.Get("after"); raw != "" {
		after, _ = strconv.ParseInt(raw, 10, 64)
	}
	var from, to time.Time
	if raw := v.Get("from"); raw != "" {
		from, _ = time.Parse(time.RFC3339Nano, raw)
	}
	if raw := v.Get("to"); raw != "" {
		to, _ = time.Parse(time.RFC3339Nano, raw)
	}
	type row struct {
		id                    int64
		time                  time.Time
		actor, camera, action string
	}
	var rows []row
	ct := rec.Header().Get("Content-Type")
	if v.Get("format") == "csv" {
		if !strings.HasPrefix(ct, "text/csv") {
			t.Fatalf("?%s: format=csv answered with Content-Type %q", rawQuery, ct)
		}
		records, err := csv.NewReader(rec.Body).ReadAll()
		if err != nil || len(records) == 0 || strings.Join(records[0], ",") != strings.Join(auditCSVHeader, ",") {
			t.Fatalf("?%s: CSV %q (%v)", rawQuery, rec.Body, err)
		}
		for _, r := range records[1:] {
			id, err1 := strconv.ParseInt(r[0], 10, 64)
			tm, err2 := time.Parse(time.RFC3339Nano, r[1])
			if err1 != nil || err2 != nil {
				t.Fatalf("?%s: CSV row %q", rawQuery, r)
			}
			rows = append(rows, row{id, tm, r[2], r[7], r[6]})
		}
	} else {
		if !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("?%s: Content-Type %q, want JSON", rawQuery, ct)
		}
		var out struct {
			Entries   []auditEntryJSON `json:"entries"`
			NextAfter *int64           `json:"next_after"`
		}
		dec := json.NewDecoder(rec.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&out); err != nil || out.Entries == nil {
			t.Fatalf("?%s: JSON answer: %v", rawQuery, err)
		}
		if (out.NextAfter != nil) != (len(out.Entries) == limit) {
			t.Fatalf("?%s: %d rows of at most %d, next_after %v", rawQuery, len(out.Entries), limit, out.NextAfter)
		}
		for _, e := range out.Entries {
			rows = append(rows, row{e.ID, e.Time, e.Actor, e.Camera, e.Action})
		}
	}
	if len(rows) > limit {
		t.Fatalf("?%s: %d rows, limit %d", rawQuery, len(rows), limit)
	}
	// In CSV, csvSafe has put a ' before an actor or camera that starts like a formula.
	shown := func(s string) string {
		if v.Get("format") == "csv" {
			return csvSafe(s)
		}
		return s
	}
	for i, r := range rows {
		switch {
		case i > 0 && r.id <= rows[i-1].id:
			t.Fatalf("?%s: rows out of id order: %d after %d", rawQuery, r.id, rows[i-1].id)
		case r.id <= after:
			t.Fatalf("?%s: row %d is not after %d", rawQuery, r.id, after)
		case !from.IsZero() && r.time.Before(from), !to.IsZero() && !r.time.Before(to):
			t.Fatalf("?%s: row %d at %s is outside [%s, %s)", rawQuery, r.id, r.time, from, to)
		case v.Get("user") != "" && r.actor != shown(v.Get("user")),
			v.Get("camera") != "" && r.camera != shown(v.Get("camera")),
			v.Get("action") != "" && r.action != v.Get("action"):
			t.Fatalf("?%s: row %d (%q, %q, %q) does not match the filters", rawQuery, r.id, r.actor, r.camera, r.action)
		}
	}
}
