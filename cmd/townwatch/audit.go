package main

import (
	"context"
	"fmt"
	"io"

	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// runAudit dispatches `townwatch audit verify`.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprintln(stderr, "usage: townwatch audit verify -config FILE   check the access log's hash chain; exit 1 naming the first bad row")
		return exitUsage
	}
	fs := newFlagSet("audit verify", stderr)
	cfgPath := fs.String("config", "", "configuration file (required)")
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return code
	}
	cfg, code, ok := loadConfig("audit verify", *cfgPath, stderr)
	if !ok {
		return code
	}
	ca, err := openCLIAudit(ctx, cfg, false)
	if err != nil {
		fmt.Fprintf(stderr, "audit verify: %v\n", err)
		return exitFailure
	}
	defer ca.Close()
	// Checked before the row about this check is added, so the answer is about the log as
	// it was found.
	v, err := ca.log.Verify(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "audit verify: %v\n", err)
		return exitFailure
	}
	outcome := catalog.AuditOK
	if v.FirstBad != nil {
		outcome = catalog.AuditError
	}
	if _, err := ca.record(ctx, catalog.AuditEntry{Action: access.AuditVerify, Outcome: outcome}); err != nil {
		fmt.Fprintf(stderr, "audit verify: %v\n", err)
	}
	if v.FirstBad != nil {
		fmt.Fprintf(stdout, "audit log BROKEN at row %d: %s\n", v.FirstBad.ID, v.FirstBad.Reason)
		return exitFailure
	}
	fmt.Fprintf(stdout, "audit log intact: %d rows, head row %d, head hash %s\n", v.Rows, v.HeadID, v.Head)
	return exitOK
}
