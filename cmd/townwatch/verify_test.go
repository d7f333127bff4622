package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/recorder/evidence"
)

// writeTestBundle writes an evidence bundle of exportSetup's footage, signed with the
// configuration's key, and returns its path.
func writeTestBundle(t *testing.T, cfgPath string) string {
	t.Helper()
	cfg, err := configs.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := recorder.OpenStorage(cfg.Storage.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cat, err := catalog.Open(ctx, filepath.Join(cfg.Storage.Path, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	key, err := evidence.LoadOrCreateSigningKey(cfg.SigningKeyFile())
	if err != nil {
		t.Fatal(err)
	}
	req := evidence.Request{Cameras: []string{"cam1"}, From: exportT0.Add(time.Second), To: exportT0.Add(3 * time.Second),
		Reason: "hit and run", Case: "MP-123/2025", Recipient: "Policie ČR", Requester: "cli:novak", AuditRowID: 7, Version: "test"}
	path := filepath.Join(t.TempDir(), evidence.FileName(req))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := evidence.Write(ctx, f, st, cat, key, req, nil); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestVerifyCommand(t *testing.T) {
	t.Parallel()
	cfg := exportSetup(t)
	bundle := writeTestBundle(t, cfg)
	code, stdout, stderr := runBinary(t, "key", "show", "-config", cfg)
	if code != exitOK {
		t.Fatalf("key show: exit %d\n%s", code, stderr)
	}
	_, fp, _ := strings.Cut(stdout, "Fingerprint (SHA-256): ")
	fp, _, _ = strings.Cut(fp, "\n")

	// The published fingerprint in any grouping.
	for _, given := range []string{fp, strings.ReplaceAll(fp, " ", "")} {
		code, stdout, stderr = runBinary(t, "verify", "-fingerprint", given, bundle)
		if code != exitOK || stderr != "" {
			t.Fatalf("verify -fingerprint %q: exit %d\nstdout: %s\nstderr: %s", given, code, stdout, stderr)
		}
		for _, want := range []string{"OK " + bundle, "MP-123/2025", "cam1 (cam1_20250314T080001Z_20250314T080003Z.mp4, 50 frames, 0 gap(s))",
			"files:     4, every SHA-256 matches", "key " + fp + " (the trusted key)", "access log row 7"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("verify -fingerprint %q: output lacks %q:\n%s", given, want, stdout)
			}
		}
	}
	if code, stdout, _ = runBinary(t, "verify", bundle); code != exitOK || !strings.Contains(stdout, "compare it with the fingerprint the town published") {
		t.Errorf("verify without -fingerprint: exit %d, %s", code, stdout)
	}

	// A flipped byte in the clip: exit 1, naming it.
	data, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(data)
	bad[200] ^= 0x01 // inside the first file's data: the clip
	badPath := filepath.Join(t.TempDir(), "bad.zip")
	if err := os.WriteFile(badPath, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ = runBinary(t, "verify", badPath)
	if code != exitFailure || !strings.Contains(stdout, "FAILED "+badPath+": cam1_20250314T080001Z_20250314T080003Z.mp4") {
		t.Errorf("verify of a changed clip: exit %d\nstdout: %s", code, stdout)
	}
	// Another key's fingerprint: exit 1.
	code, stdout, _ = runBinary(t, "verify", "-fingerprint", strings.Repeat("ab", 32), bundle)
	if code != exitFailure || !strings.Contains(stdout, "not by the trusted key") {
		t.Errorf("verify with a wrong fingerprint: exit %d, %s", code, stdout)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"verify"}, exitUsage, "usage: townwatch verify [-fingerprint HEX] BUNDLE.zip"},
		{[]string{"verify", "-format", "x", bundle}, exitUsage, "flag provided but not defined: -format"},
		{[]string{"key", "list"}, exitUsage, "usage: townwatch key show -config FILE"},
	} {
		if code, _, stderr := runBinary(t, tc.args...); code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d (want %d), stderr %q", tc.args, code, tc.code, stderr)
		}
	}
	if code, stdout, _ := runBinary(t, "verify", filepath.Join(t.TempDir(), "none.zip")); code != exitFailure || !strings.Contains(stdout, "none.zip") {
		t.Errorf("verify of a missing file: exit %d, %s", code, stdout)
	}
}

// TestKeyShowCommand: the key is made once, 0600, and shown the same every time.
func TestKeyShowCommand(t *testing.T) {
	t.Parallel()
	cfg := exportSetup(t)
	code, first, stderr := runBinary(t, "key", "show", "-config", cfg)
	if code != exitOK || !strings.Contains(first, "-----BEGIN PUBLIC KEY-----") || !strings.Contains(first, "export-signing.key") {
		t.Fatalf("key show: exit %d\nstdout: %s\nstderr: %s", code, first, stderr)
	}
	if code, again, _ := runBinary(t, "key", "show", "-config", cfg); code != exitOK || again != first {
		t.Errorf("second key show differs:\n%s\n%s", first, again)
	}
	c, err := configs.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(c.SigningKeyFile())
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", info.Mode().Perm())
	}
}
