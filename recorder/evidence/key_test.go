package evidence

import (
	"crypto/ed25519"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestSigningKeyMadeOnceAndKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "export-signing.key")
	if _, err := LoadSigningKey(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadSigningKey of a missing file: %v", err)
	}
	key, err := LoadOrCreateSigningKey(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", info.Mode().Perm())
	}
	again, err := LoadOrCreateSigningKey(path)
	if err != nil || !key.Equal(again) {
		t.Fatalf("second LoadOrCreateSigningKey: a different key or %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("key directory holds %d entries, want just the key (no temporary files)", len(ents))
	}
	// openssl reads the key file and derives the same public key.
	out, err := exec.Command("openssl", "pkey", "-in", path, "-pubout").Output()
	if err != nil || string(out) != string(PublicKeyPEM(key.Public().(ed25519.PublicKey))) {
		t.Errorf("openssl pkey -pubout: %v\n%s", err, out)
	}
	fp := Fingerprint(key.Public().(ed25519.PublicKey))
	if len(fp) != 79 || strings.Count(fp, " ") != 15 {
		t.Errorf("fingerprint %q is not 16 groups of 4 hex digits", fp)
	}
}

func TestSigningKeyMalformedIsRefused(t *testing.T) {
	for name, content := range map[string]string{
		"empty":    "",
		"hex":      "00112233445566778899aabbccddeeff\n",
		"a cert":   "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n",
		"trailing": "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\njunk\n",
	} {
		path := filepath.Join(t.TempDir(), "export-signing.key")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreateSigningKey(path)
		if err == nil || !strings.Contains(err.Error(), "signing key "+path+" is malformed") || !strings.Contains(err.Error(), "not replaced") {
			t.Errorf("%s: %v", name, err)
		}
		if after, _ := os.ReadFile(path); string(after) != content {
			t.Errorf("%s: the malformed file was changed", name)
		}
	}
}

func TestKeyFingerprintComparesAnyGrouping(t *testing.T) {
	fp := "3F2A 9c01:ab-cd"
	if normalizeFingerprint(fp) != "3f2a9c01abcd" {
		t.Errorf("normalizeFingerprint(%q) = %q", fp, normalizeFingerprint(fp))
	}
}
