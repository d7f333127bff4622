package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/townwatch/townwatch/recorder/evidence"
)

// runVerify checks an evidence bundle offline (evidence.Verify): exit 0 with what it
// holds, 1 naming the first problem. It needs no configuration: whoever receives a
// bundle can run it.
func runVerify(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("verify", stderr)
	fingerprint := fs.String("fingerprint", "", "the signing key fingerprint the town published (`townwatch key show`); checked if given")
	// The bundle is the one argument after the flags.
	if len(args) == 0 || strings.HasPrefix(args[len(args)-1], "-") {
		fmt.Fprintln(stderr, "usage: townwatch verify [-fingerprint HEX] BUNDLE.zip")
		return exitUsage
	}
	path := args[len(args)-1]
	if code, ok := parseFlags(fs, args[:len(args)-1]); !ok {
		return code
	}
	rep, err := evidence.VerifyFile(path, *fingerprint)
	if err != nil {
		fmt.Fprintf(stdout, "FAILED %s: %v\n", path, err)
		return exitFailure
	}
	m := rep.Manifest
	var cams []string
	for _, c := range m.Cameras {
		cams = append(cams, fmt.Sprintf("%s (%s, %d frames, %d gap(s))", c.Camera, c.File, c.Frames, len(c.Gaps)))
	}
	fmt.Fprintf(stdout, "OK %s\n  range:     %s – %s (%s)\n  case:      %s, for %s, requested by %s: %s\n  cameras:   %s\n  files:     %d, every SHA-256 matches\n  signature: Ed25519, key %s",
		path, m.FromLocal, m.ToLocal, m.TimeZone, m.Case, m.Recipient, m.Requester, m.Reason, strings.Join(cams, "; "), rep.Files, rep.Fingerprint)
	if *fingerprint != "" {
		fmt.Fprint(stdout, " (the trusted key)")
	} else {
		fmt.Fprint(stdout, " (compare it with the fingerprint the town published)")
	}
	fmt.Fprintf(stdout, "\n  made:      %s by townwatch %s, access log row %d\n", m.Created.Format(time.RFC3339), m.TownwatchVersion, m.AuditRowID)
	return exitOK
}

// runKey shows the evidence signing key: `townwatch key show -config FILE`. The key is
// made here if it does not exist yet, so that the town can publish its fingerprint
// before the first export.
func runKey(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "show" {
		fmt.Fprintln(stderr, "usage: townwatch key show -config FILE")
		return exitUsage
	}
	fs := newFlagSet("key show", stderr)
	cfgPath := fs.String("config", "", "configuration file (required)")
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return code
	}
	cfg, code, ok := loadConfig("key show", *cfgPath, stderr)
	if !ok {
		return code
	}
	key, err := evidence.LoadOrCreateSigningKey(cfg.SigningKeyFile())
	if err != nil {
		fmt.Fprintf(stderr, "key show: exports.signing_key_file: %v\n", err)
		return exitFailure
	}
	pub := key.Public().(ed25519.PublicKey)
	fmt.Fprintf(stdout, "Evidence signing key (%s)\nFingerprint (SHA-256): %s\n\n%s", cfg.SigningKeyFile(),
		evidence.Fingerprint(pub), evidence.PublicKeyPEM(pub))
	return exitOK
}
