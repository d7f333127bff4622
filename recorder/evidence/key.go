package evidence

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/townwatch/townwatch/configs"
)

// LoadOrCreateSigningKey reads the Ed25519 signing key at path, creating it (0600) if
// there is no file there. An existing file that is not a key is an error, never
// replaced: bundles already handed out name the old key's fingerprint, and a silently
// new key would make the town's published fingerprint wrong.
func LoadOrCreateSigningKey(path string) (ed25519.PrivateKey, error) {
	key, err := LoadSigningKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	_, key, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := configs.CreateKeyFile(path, data); errors.Is(err, fs.ErrExist) {
		return LoadSigningKey(path) // made by another process meanwhile: that one is the key
	} else if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return key, nil
}

// LoadSigningKey reads the Ed25519 signing key at path: a PEM "PRIVATE KEY" block
// (PKCS #8), as openssl writes it. A missing file is an error wrapping fs.ErrNotExist.
func LoadSigningKey(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err) // *fs.PathError names the file
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) > 0 {
		return nil, malformedKey(path, "not one PEM PRIVATE KEY block")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, malformedKey(path, err.Error())
	}
	key, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, malformedKey(path, fmt.Sprintf("a %T, not an Ed25519 key", parsed))
	}
	return key, nil
}

func malformedKey(path, why string) error {
	return fmt.Errorf("signing key %s is malformed (%s); it is not replaced, since bundles already "+
		"handed out are checked against its fingerprint: restore it from a copy, or move it away "+
		"to have a new key made (and publish the new fingerprint)", path, why)
}

// PublicKeyPEM encodes pub as a PEM "PUBLIC KEY" block (PKIX, SubjectPublicKeyInfo),
// the form `openssl pkeyutl -verify -pubin -inkey FILE` reads.
func PublicKeyPEM(pub ed25519.PublicKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: publicKeyDER(pub)})
}

// ParsePublicKeyPEM reads what PublicKeyPEM writes.
func ParsePublicKeyPEM(data []byte) (ed25519.PublicKey, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("not one PEM PUBLIC KEY block")
	}
	parsed, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	pub, ok := parsed.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an Ed25519 public key", parsed)
	}
	return pub, nil
}

func publicKeyDER(pub ed25519.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		// Only a key of the wrong length fails, and ed25519 keys come from this package.
		panic(fmt.Sprintf("evidence: marshal public key: %v", err))
	}
	return der
}

// Fingerprint is the SHA-256 of pub's DER (PKIX) encoding in hex, in groups of four
// digits so that people can read it aloud and compare it with the published one. The
// same digits come from `openssl pkey -pubin -in KEY.pem -outform DER | sha256sum`.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(publicKeyDER(pub))
	h := hex.EncodeToString(sum[:])
	groups := make([]string, 0, len(h)/4)
	for i := 0; i < len(h); i += 4 {
		groups = append(groups, h[i:i+4])
	}
	return strings.Join(groups, " ")
}

// normalizeFingerprint reduces a fingerprint as people write it (any case, grouped with
// spaces or colons, or not at all) to bare lowercase hex, for comparison.
func normalizeFingerprint(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == ' ' || r == ':' || r == '-' || r == '\t':
			return -1
		case r >= 'A' && r <= 'F':
			return r + ('a' - 'A')
		}
		return r
	}, s)
}
