package access

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
)

// tokenBytes is a session token's entropy: 256 bits, beyond guessing.
const tokenBytes = 32

// tokenLen is the length of an encoded token (base64url without padding).
var tokenLen = base64.RawURLEncoding.EncodedLen(tokenBytes)

// NewToken returns a fresh session token for the cookie and the hash the catalog stores.
// The token itself is never stored: a copy of the catalog does not let anyone log in.
func NewToken() (token, hash string, err error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token), nil
}

// HashToken is the catalog's key for a token: hex SHA-256. A plain hash suffices (no
// Argon2): the token has 256 random bits, nothing to guess.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// ValidToken reports whether s has the form of a token NewToken makes, so that a forged
// or truncated cookie is refused before any catalog look-up.
func ValidToken(s string) bool {
	if len(s) != tokenLen {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == tokenBytes
}

// SessionLabel is the short form of a session hash the audit log and the server log
// carry: enough to tell sessions apart, too little to find the token.
func SessionLabel(hash string) string {
	if len(hash) > 12 {
		return hash[:12]
	}
	return hash
}
