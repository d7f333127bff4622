package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnitVerifies checks the shipped unit with systemd's own verifier (pointed
// at the freshly built binary) and that it keeps what recording relies on: restart on
// any exit, no core dumps, private files, and a read-only system except the storage.
func TestSystemdUnitVerifies(t *testing.T) {
	t.Parallel()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze is needed to check configs/townwatch.service: install Debian's systemd package (make deps does): %v", err)
	}
	unit, err := os.ReadFile(filepath.Join("..", "..", "configs", "townwatch.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Restart=always", "LimitCORE=0", "UMask=0077", "NoNewPrivileges=yes",
		"ProtectSystem=strict", "ReadWritePaths=/var/lib/townwatch", "ExecStart=/usr/local/bin/townwatch serve -config ", "ExecReload=/bin/kill -HUP $MAINPID"} {
		if !strings.Contains(string(unit), "\n"+want) {
			t.Errorf("configs/townwatch.service lacks %q", want)
		}
	}
	// The verifier checks that ExecStart's program exists: use the binary under test.
	path := filepath.Join(t.TempDir(), "townwatch.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/townwatch", binary)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(analyze, "verify", path)
	cmd.Dir = t.TempDir()
	if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
