package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// recentDeletions is how many single deletions `retention status` lists: enough to see
// what the last sweeps did, short enough for one screen. Totals cover the whole -since.
const recentDeletions = 20

const retentionUsage = "usage: townwatch retention status|confirm -config FILE [-node NAME]"

// retentionNodeUsage is the -node flag of retention status and confirm.
const retentionNodeUsage = "the recorder node whose hold to show or confirm (its serve -node NAME): each node's retention has its own"

// onNode makes cat the catalog of recorder node name ("" = a single node), whose
// retention hold the command reads and confirms.
func onNode(ctx context.Context, cat *catalog.Catalog, name string) error {
	if name != "" {
		if err := cat.SetNode(name); err != nil {
			return fmt.Errorf("-node %s: %w", name, err)
		}
	}
	nodes, err := cat.NodeNames(ctx)
	switch {
	case err != nil:
		return err
	case name == "" && len(nodes) > 0:
		// Each node has its own hold; the single node's is one nobody runs retention as.
		return fmt.Errorf("-node: required, this catalog is shared by recorder nodes %s", strings.Join(nodes, ", "))
	case name != "" && !slices.Contains(nodes, name):
		return fmt.Errorf("-node %s: no such recorder node in this catalog (its nodes: %s)", name, strings.Join(nodes, ", "))
	}
	return nil
}

func runRetention(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, retentionUsage)
		return exitUsage
	}
	switch args[0] {
	case "status":
		return runRetentionStatus(ctx, args[1:], stdout, stderr)
	case "confirm":
		return runRetentionConfirm(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stderr, retentionUsage)
		return exitOK
	}
	fmt.Fprintf(stderr, "retention: unknown subcommand %q\n%s\n", args[0], retentionUsage)
	return exitUsage
}

func runRetentionStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("retention status", stderr)
	cfgPath := fs.String("config", "", "configuration file (required)")
	sinceArg := fs.String("since", "24h", "how far back to summarise deletions, e.g. 24h or 7d")
	node := fs.String("node", "", retentionNodeUsage)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	since, err := configs.ParseDuration(*sinceArg)
	if err != nil || since <= 0 {
		fmt.Fprintf(stderr, "retention status: -since %q is not a positive duration like 24h or 7d\n", *sinceArg)
		return exitUsage
	}
	cfg, code, ok := loadConfig("retention status", *cfgPath, stderr)
	if !ok {
		return code
	}
	cat, err := openCatalog(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "retention status: %v\n", err)
		return exitFailure
	}
	defer cat.Close()
	if err := onNode(ctx, cat, *node); err != nil {
		fmt.Fprintf(stderr, "retention status: %v\n", err)
		return exitUsage
	}
	if err := printRetentionStatus(ctx, stdout, cfg, cat, time.Now(), since.Std()); err != nil {
		fmt.Fprintf(stderr, "retention status: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// printRetentionStatus writes the hold, the disk, every camera's footage and the recent
// deletions: what an administrator checks before and after confirming a hold.
func printRetentionStatus(ctx context.Context, w io.Writer, cfg *configs.Config, cat *catalog.Catalog, now time.Time, since time.Duration) error {
	hold, held, err := cat.RetentionHold(ctx)
	if err != nil {
		return err
	}
	switch {
	case !held:
		fmt.Fprintln(w, "Retention: running, no hold.")
	case hold.Confirmed.IsZero() && hold.Forced:
		fmt.Fprintf(w, "Retention: HELD since %s: nothing is deleted until confirmed.\n", localTime(hold.Since))
		fmt.Fprintf(w, "  %s\n", hold.Reason)
		fmt.Fprintln(w, "  Check `townwatch locks` against the case files and lock again what is missing;")
		fmt.Fprintln(w, "  then run `townwatch retention confirm`.")
	case hold.Confirmed.IsZero():
		fmt.Fprintf(w, "Retention: HELD since %s: the mass-deletion guard stopped a sweep that would delete %s of %s recorded.\n",
			localTime(hold.Since), sizeString(hold.PlannedBytes), sizeString(hold.TotalBytes))
		fmt.Fprintf(w, "  %s\n", hold.Reason)
		fmt.Fprintln(w, "  Only what min_free strictly needs is deleted meanwhile. Check the clock, record.retention and the quotas;")
		fmt.Fprintln(w, "  if the plan is right, run `townwatch retention confirm`.")
	default:
		fmt.Fprintf(w, "Retention: hold confirmed at %s; the running server executes the plan (planned again) at its next sweep.\n",
			localTime(hold.Confirmed))
		fmt.Fprintf(w, "  %s\n", hold.Reason)
	}

	st, err := recorder.OpenStorage(cfg.Storage.Path)
	if err != nil {
		return err
	}
	defer st.Close()
	if sp, err := st.Space(); err != nil {
		fmt.Fprintf(w, "Disk: %v\n", err)
	} else {
		fmt.Fprintf(w, "Disk: %s free of %s (min_free %s = %s)\n", sizeString(int64(sp.Free)), sizeString(int64(sp.Total)),
			cfg.Storage.MinFree, sizeString(int64(cfg.Storage.MinFree.Of(sp.Total))))
	}
	stored, err := cat.BytesByCamera(ctx)
	if err != nil {
		return err
	}
	locked, err := cat.LockedBytes(ctx, now)
	if err != nil {
		return err
	}
	var total int64
	for _, b := range stored {
		total += b
	}
	quota := "none"
	if cfg.Storage.Quota > 0 {
		quota = sizeString(int64(cfg.Storage.Quota))
	}
	fmt.Fprintf(w, "Stored: %s (storage.quota %s)\n\n", sizeString(total), quota)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CAMERA\tRETENTION\tQUOTA\tSTORED\tLOCKED")
	// Configured cameras in the file's order, then those that left it but have footage.
	var cams []string
	for _, c := range cfg.Cameras {
		cams = append(cams, c.ID)
	}
	for _, id := range slices.Sorted(maps.Keys(stored)) {
		if _, ok := cfg.Camera(id); !ok {
			cams = append(cams, id)
		}
	}
	for _, id := range cams {
		ret, q := "longest (not configured)", "none"
		if c, ok := cfg.Camera(id); ok {
			ret = c.Record.Retention.String()
			if c.Record.Quota > 0 {
				q = sizeString(int64(c.Record.Quota))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", id, ret, q, sizeString(stored[id]), sizeString(locked[id]))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	ds, err := cat.Deletions(ctx, now.Add(-since))
	if err != nil {
		return err
	}
	var deleted int64
	byReason := map[string]int64{}
	for _, d := range ds {
		deleted += d.Bytes
		byReason[d.Reason] += d.Bytes
	}
	fmt.Fprintf(w, "\nDeleted in the last %s: %d segment(s), %s", configs.Duration(since), len(ds), sizeString(deleted))
	for _, r := range slices.Sorted(maps.Keys(byReason)) {
		fmt.Fprintf(w, "; %s %s", r, sizeString(byReason[r]))
	}
	fmt.Fprintln(w)
	if len(ds) == 0 {
		return nil
	}
	fmt.Fprintf(w, "Latest (up to %d, newest first):\n", recentDeletions)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DELETED\tCAMERA\tFROM\tTO\tSIZE\tREASON")
	for i := len(ds) - 1; i >= 0 && i >= len(ds)-recentDeletions; i-- {
		d := ds[i]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", localTime(d.At), d.Camera, localTime(d.Start), localTime(d.End), sizeString(d.Bytes), d.Reason)
	}
	return tw.Flush()
}

func runRetentionConfirm(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("retention confirm", stderr)
	cfgPath := fs.String("config", "", "configuration file (required)")
	node := fs.String("node", "", retentionNodeUsage)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, code, ok := loadConfig("retention confirm", *cfgPath, stderr)
	if !ok {
		return code
	}
	ca, err := openCLIAudit(ctx, cfg, false)
	if err != nil {
		fmt.Fprintf(stderr, "retention confirm: %v\n", err)
		return exitFailure
	}
	defer ca.Close()
	cat := ca.cat
	if err := onNode(ctx, cat, *node); err != nil {
		fmt.Fprintf(stderr, "retention confirm: %v\n", err)
		return exitUsage
	}
	hold, held, err := cat.RetentionHold(ctx)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "retention confirm: %v\n", err)
		return exitFailure
	case !held:
		fmt.Fprintln(stderr, "retention confirm: no retention hold is pending; there is nothing to confirm")
		return exitFailure
	case !hold.Confirmed.IsZero():
		fmt.Fprintf(stdout, "already confirmed at %s; the running server executes the plan at its next sweep\n", localTime(hold.Confirmed))
		return exitOK
	}
	details, _ := json.Marshal(map[string]any{"hold_since": hold.Since, "hold_reason": hold.Reason,
		"planned_bytes": hold.PlannedBytes, "total_bytes": hold.TotalBytes, "node": cat.Node()})
	if _, err := ca.record(ctx, catalog.AuditEntry{Action: access.AuditRetentionOK, Details: details}); err != nil {
		fmt.Fprintf(stderr, "retention confirm: %v\n", err)
		return exitFailure
	}
	if err := cat.ConfirmRetention(ctx, time.Now()); err != nil {
		fmt.Fprintf(stderr, "retention confirm: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "confirmed the hold raised %s: %s\n", localTime(hold.Since), hold.Reason)
	fmt.Fprintln(stdout, "The running server plans again and deletes what the rules say at its next sweep; locked footage stays.")
	return exitOK
}
