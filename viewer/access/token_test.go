package access

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
)

var lowerHex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestNewToken(t *testing.T) {
	seen := map[string]bool{}
	hashes := map[string]bool{}
	for range 2000 {
		tok, hash, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		// 32 random bytes in unpadded base64url: 43 characters, cookie-safe.
		if len(tok) != 43 || strings.ContainsAny(tok, "+/= ") {
			t.Fatalf("token %q is not 43 characters of unpadded base64url", tok)
		}
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(b) != 32 {
			t.Fatalf("token %q does not decode to 32 bytes: %v", tok, err)
		}
		if !ValidToken(tok) {
			t.Fatalf("ValidToken(%q) = false for a token NewToken made", tok)
		}
		// The hash NewToken returns is the one the catalog is looked up by.
		if hash != HashToken(tok) {
			t.Fatalf("NewToken's hash %q is not HashToken(token) %q", hash, HashToken(tok))
		}
		if hash == tok || strings.Contains(hash, tok) {
			t.Fatal("the stored hash contains the token")
		}
		if seen[tok] || hashes[hash] {
			t.Fatalf("token %q repeated", tok)
		}
		seen[tok], hashes[hash] = true, true
	}
}

func TestHashToken(t *testing.T) {
	// Plain SHA-256 in lowercase hex, so the catalog's CHECK and look-ups agree and an
	// operator can recompute it with sha256sum.
	if got, want := HashToken("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		t.Fatalf("HashToken(abc) = %s, want %s", got, want)
	}
	for _, s := range []string{"", "x", strings.Repeat("A", 43), "ünïcödé"} {
		h := HashToken(s)
		if !lowerHex64.MatchString(h) {
			t.Errorf("HashToken(%q) = %q, not 64 lowercase hex digits", s, h)
		}
		if HashToken(s) != h {
			t.Errorf("HashToken(%q) is not stable", s)
		}
		sum := sha256.Sum256([]byte(s))
		if h != hex.EncodeToString(sum[:]) {
			t.Errorf("HashToken(%q) is not hex SHA-256", s)
		}
	}
	// Tokens that differ in one character hash apart.
	tok, _, _ := NewToken()
	other := []byte(tok)
	other[0] ^= 1
	if HashToken(tok) == HashToken(string(other)) {
		t.Fatal("two different tokens have the same hash")
	}
}

func TestValidToken(t *testing.T) {
	tok, _, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]string{
		"empty":                 "",
		"one short":             tok[:42],
		"one long":              tok + "A",
		"padded":                tok + "=",
		"standard base64 plus":  "+" + tok[1:],
		"standard base64 slash": tok[:10] + "/" + tok[11:],
		"space":                 tok[:20] + " " + tok[21:],
		"leading space":         " " + tok[1:],
		"trailing newline":      tok[:42] + "\n",
		"dot":                   tok[:42] + ".",
		"percent-encoded":       tok[:40] + "%3D",
		"non-ASCII":             tok[:41] + "é",
		"NUL":                   tok[:42] + "\x00",
		"its own hash":          HashToken(tok),
		"hex of 32 bytes":       strings.Repeat("ab", 32),
		"session label":         SessionLabel(HashToken(tok)),
	}
	// (43 hex digits would be valid base64url too: ValidToken is about form only, and
	// such a cookie is then simply not found in the catalog.)
	for name, s := range bad {
		if ValidToken(s) {
			t.Errorf("%s: ValidToken(%q) = true", name, s)
		}
	}
	// Every character of the base64url alphabet is allowed.
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := 0; i+42 <= len(alphabet); i += 11 {
		s := alphabet[i : i+42]
		s += "A" // a last character whose unused low bits are zero
		if !ValidToken(s) {
			t.Errorf("ValidToken(%q) = false", s)
		}
	}
}

func TestSessionLabel(t *testing.T) {
	// The label goes into the audit log and the server log. It must tell sessions apart
	// but give nobody a way in: it is the first 12 hex digits (48 bits) of the token's
	// SHA-256, never any part of the token itself.
	for range 200 {
		tok, hash, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		label := SessionLabel(hash)
		if len(label) != 12 || !strings.HasPrefix(hash, label) {
			t.Fatalf("SessionLabel(%q) = %q, want the hash's first 12 digits", hash, label)
		}
		if strings.Contains(tok, label) || strings.Contains(label, tok[:8]) {
			t.Fatalf("label %q overlaps the token %q", label, tok)
		}
		// Neither the label nor the full hash passes as a cookie.
		if ValidToken(label) || ValidToken(hash) {
			t.Fatal("a session label or hash has the form of a token")
		}
	}
	// Short input is returned whole (nothing to shorten), empty stays empty: a client
	// without a session shows no label.
	if got := SessionLabel(""); got != "" {
		t.Errorf("SessionLabel(\"\") = %q", got)
	}
	if got := SessionLabel("abc"); got != "abc" {
		t.Errorf("SessionLabel(abc) = %q", got)
	}
}

func TestSessionLabelCannotLogIn(t *testing.T) {
	// The catalog finds sessions by the full hash only: someone who read the label in an
	// audit export cannot use it, nor a hash of it, as a session.
	ctx := context.Background()
	cat, err := catalog.Open(ctx, filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	now := time.Now()
	pw := mustHash(t, "Kolo-Vlak-Brambora-7")
	id, err := cat.CreateUser(ctx, catalog.User{Name: "jnovak", PasswordHash: pw, Roles: []string{"dispatcher"},
		AllCameras: true, Cameras: []string{}, Created: now, Changed: now})
	if err != nil {
		t.Fatal(err)
	}
	tok, hash, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.CreateSession(ctx, catalog.Session{TokenHash: hash, UserID: id, Created: now, Client: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	if _, u, err := cat.SessionUser(ctx, HashToken(tok)); err != nil || u.Name != "jnovak" {
		t.Fatalf("the real token does not find its session: %v", err)
	}
	label := SessionLabel(hash)
	for _, try := range []string{label, HashToken(label), HashToken(hash)} {
		if _, _, err := cat.SessionUser(ctx, try); !errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("SessionUser(%q) = %v, want not found", try, err)
		}
	}
	// The catalog refuses to store the token itself by mistake.
	if err := cat.CreateSession(ctx, catalog.Session{TokenHash: tok, UserID: id, Created: now}); err == nil {
		t.Error("the catalog stored a raw token as a session hash")
	}
}

// FuzzValidToken: ValidToken decides on a cookie anybody can send, so it must never
// panic, and what it accepts must be exactly a 43-character base64url string that hashes
// to a usable catalog key.
func FuzzValidToken(f *testing.F) {
	tok, _, _ := NewToken()
	for _, s := range []string{"", tok, tok[:42], tok + "=", strings.Repeat("A", 43), strings.Repeat("_", 43),
		strings.Repeat("-", 43), strings.Repeat("/", 43), strings.Repeat("é", 22), HashToken(tok), "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidToken(s) {
			return
		}
		if len(s) != 43 {
			t.Fatalf("ValidToken accepted %d characters: %q", len(s), s)
		}
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(b) != 32 {
			t.Fatalf("ValidToken accepted %q, which is not 32 bytes of base64url: %v", s, err)
		}
		if strings.ContainsAny(s, "+/=\r\n\t ") {
			t.Fatalf("ValidToken accepted %q with a character outside base64url", s)
		}
		h := HashToken(s)
		if !lowerHex64.MatchString(h) || HashToken(s) != h {
			t.Fatalf("HashToken(%q) = %q", s, h)
		}
	})
}
