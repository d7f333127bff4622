package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	fs := newFlagSet("export", stderr)
	cfgPath := fs.String("config", "", "configuration file (required)")
	node := fs.String("node", "", "this node's name, on one of several nodes (serve -node): footage still on the other nodes' disks is read through them")
	camera := fs.String("camera", "", "camera id (required)")
	fromArg := fs.String("from", "", "start of the range, RFC 3339, e.g. 2025-03-14T09:00:00+01:00 (required)")
	toArg := fs.String("to", "", "end of the range, RFC 3339 (required)")
	outPath := fs.String("o", "", "MP4 file to write; must not exist yet (required)")
	reason := fs.String("reason", "", "why the footage is handed out, e.g. the offence investigated (required)")
	caseRef := fs.String("case", "", "the case reference (č.j.) the export belongs to (required)")
	recipient := fs.String("recipient", "", "who receives the copy, e.g. Policie ČR, KŘ Plzeň (required)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if name, missing := missingFlag(fs); missing {
		fmt.Fprintf(stderr, "export: -%s is required\n", name)
		return exitUsage
	}
	// The access log must say why, for which case and to whom every copy of footage went
	// (the Law Enforcement Directive's logging fields); blank answers are no answers.
	for _, f := range []struct{ name, v string }{{"reason", *reason}, {"case", *caseRef}, {"recipient", *recipient}} {
		if strings.TrimSpace(f.v) == "" {
			fmt.Fprintf(stderr, "export: -%s is required and must not be blank\n", f.name)
			return exitUsage
		}
	}
	from, err := parseTimeFlag("from", *fromArg)
	if err != nil {
		fmt.Fprintf(stderr, "export: %v\n", err)
		return exitUsage
	}
	to, err := parseTimeFlag("to", *toArg)
	if err != nil {
		fmt.Fprintf(stderr, "export: %v\n", err)
		return exitUsage
	}
	if !to.After(from) {
		fmt.Fprintf(stderr, "export: -to (%s) must be after -from (%s)\n", *toArg, *fromArg)
		return exitUsage
	}
	cfg, code, ok := loadConfig("export", *cfgPath, stderr)
	if !ok {
		return code
	}
	// An existing file may be an earlier export handed over as evidence: never replace it.
	if _, err := os.Lstat(*outPath); err == nil {
		fmt.Fprintf(stderr, "export: -o %s already exists; choose another name\n", *outPath)
		return exitUsage
	}
	// A camera may have left the configuration while its footage is still kept, and that
	// footage must stay exportable: an unknown id is only mentioned if nothing is found.
	known := slices.ContainsFunc(cfg.Cameras, func(c configs.Camera) bool { return c.ID == *camera })

	// An export must not create an empty storage area because of a wrong path: the catalog
	// must already exist (openCLIAudit(…, false) refuses to create one).
	ca, err := openCLIAudit(ctx, cfg, false)
	if err != nil {
		fmt.Fprintf(stderr, "export: %v\n", err)
		return exitFailure
	}
	defer ca.Close()
	cat := ca.cat
	request := catalog.AuditEntry{Action: access.AuditExportRequest, Camera: *camera, From: from, To: to,
		Reason: strings.TrimSpace(*reason), Case: strings.TrimSpace(*caseRef), Recipient: strings.TrimSpace(*recipient)}
	request.Details, _ = json.Marshal(map[string]string{"file": *outPath})
	// The row is committed before a byte of footage is written out.
	row, err := ca.record(ctx, request)
	if err != nil {
		fmt.Fprintf(stderr, "export: %v\n", err)
		return exitFailure
	}
	defer func() {
		if code != exitOK {
			failed := request
			failed.Outcome = catalog.AuditError
			failed.Details, _ = json.Marshal(map[string]any{"file": *outPath, "request_row": row.ID, "failed": true})
			if _, err := ca.record(context.WithoutCancel(ctx), failed); err != nil {
				fmt.Fprintf(stderr, "export: %v\n", err)
			}
		}
	}()
	st, err := recorder.OpenStorage(cfg.Storage.Path)
	if err != nil {
		fmt.Fprintf(stderr, "export: %v\n", err)
		return exitFailure
	}
	defer st.Close()
	// Archived segments are read from the bucket (storage.archive).
	if tier, _, err := attachArchive(cfg, st); err != nil {
		fmt.Fprintf(stderr, "export: %v\n", err)
		return exitFailure
	} else if tier != nil {
		defer tier.Close()
	}
	closePeers, err := attachPeers(cfg, st, *node)
	if err != nil {
		fmt.Fprintf(stderr, "export: %v\n", err)
		return exitFailure
	}
	defer closePeers()

	res, err := exportToFile(ctx, st, cat, *camera, from, to, *outPath, stderr)
	switch {
	case errors.Is(err, recorder.ErrNoFootage) && !known:
		fmt.Fprintf(stderr, "export: camera %q is not in %s (cameras: %s) and has no footage from %s to %s\n",
			*camera, *cfgPath, cameraIDs(cfg), *fromArg, *toArg)
		return exitFailure
	case errors.Is(err, recorder.ErrConfigChanged):
		// The clip up to the change is complete and was kept; say so before the error.
		fmt.Fprintln(stdout, summary(*outPath, *camera, res))
		fmt.Fprintf(stderr, "export: %v\n", err)
		return exitFailure
	case err != nil:
		fmt.Fprintf(stderr, "export: %v\n", err)
		return exitFailure
	}
	fmt.Fprintln(stdout, summary(*outPath, *camera, res))
	return exitOK
}

// exportToFile exports into a temporary file next to out and renames it to out once it is
// complete and synced, so that a file named out is always a whole clip. The clip is also
// kept when the export stops at a configuration change: it is complete up to there.
func exportToFile(ctx context.Context, st *recorder.Storage, cat *catalog.Catalog, camera string, from, to time.Time, out string, stderr io.Writer) (recorder.ExportResult, error) {
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*.part")
	if err != nil {
		return recorder.ExportResult{}, err
	}
	keep := false
	defer func() {
		if !keep {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	var progress func(done, total int64)
	if isTerminal(stderr) {
		bar := &progressBar{w: stderr}
		progress = bar.update
		defer bar.finish()
	}
	res, err := recorder.Export(ctx, st, cat, camera, from, to, tmp, progress)
	if err != nil && !errors.Is(err, recorder.ErrConfigChanged) {
		return res, err
	}
	if serr := tmp.Sync(); serr != nil {
		return res, fmt.Errorf("write %s: %w", tmp.Name(), serr)
	}
	if cerr := tmp.Close(); cerr != nil {
		return res, fmt.Errorf("write %s: %w", tmp.Name(), cerr)
	}
	// CreateTemp makes the file private (0600); the clip is meant to be handed on.
	if cerr := os.Chmod(tmp.Name(), 0o644); cerr != nil {
		return res, cerr
	}
	if rerr := os.Rename(tmp.Name(), out); rerr != nil {
		return res, rerr
	}
	keep = true
	return res, err
}

// summary is the one line printed after an export.
func summary(out, camera string, res recorder.ExportResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: camera %s from %s to %s (%s), %d frames from %d segment(s), %s",
		out, camera, res.Start.Format(time.RFC3339Nano), res.End.Format(time.RFC3339Nano),
		res.End.Sub(res.Start).Round(time.Millisecond), res.Frames, res.Segments, sizeString(res.Bytes))
	if len(res.Gaps) == 0 {
		b.WriteString(", no gaps")
		return b.String()
	}
	fmt.Fprintf(&b, ", %d gap(s) without footage:", len(res.Gaps))
	for _, g := range res.Gaps {
		fmt.Fprintf(&b, " %s–%s (%s)", g.From.Format(time.RFC3339Nano), g.To.Format(time.RFC3339Nano), g.To.Sub(g.From).Round(time.Millisecond))
	}
	return b.String()
}

// cameraIDs lists the configured camera ids for an error message.
func cameraIDs(cfg *configs.Config) string {
	if len(cfg.Cameras) == 0 {
		return "none"
	}
	ids := make([]string, len(cfg.Cameras))
	for i, c := range cfg.Cameras {
		ids[i] = c.ID
	}
	return strings.Join(ids, ", ")
}

// sizeString formats a byte count in binary units.
func sizeString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// progressBarInterval limits redraws: often enough to look live, rarely enough that a
// fast export of cached footage does not spend its time drawing.
const progressBarInterval = 100 * time.Millisecond

// progressBarWidth is the bar's length in characters, leaving room for the figures on an
// 80-column terminal.
const progressBarWidth = 30

// progressBar draws one line on a terminal, redrawn in place.
type progressBar struct {
	w        io.Writer
	drawn    time.Time
	complete bool // 100% is drawn
}

func (p *progressBar) update(done, total int64) {
	if p.complete {
		return
	}
	if now := time.Now(); now.Sub(p.drawn) >= progressBarInterval || done == total {
		p.drawn, p.complete = now, done == total
		pct := int64(100)
		if total > 0 {
			pct = min(done*100/total, 100)
		}
		filled := int(pct * progressBarWidth / 100)
		fmt.Fprintf(p.w, "\rexport [%s%s] %3d%% %s of %s", strings.Repeat("#", filled), strings.Repeat(" ", progressBarWidth-filled),
			pct, sizeString(done), sizeString(total))
	}
}

// finish ends the bar's line so that what follows starts on a fresh one.
func (p *progressBar) finish() {
	if !p.drawn.IsZero() {
		fmt.Fprintln(p.w)
	}
}
