package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// The lock, unlock, locks and retention commands work on the catalog directly, beside a
// running serve or without one: SQLite's WAL mode lets another process write while serve
// does, and serve's retention checks locks inside every deleting transaction, so a lock
// taken here protects footage from the moment the command returns.

func runLock(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("lock", stderr)
	cfgPath := fs.String("config", "", "configuration file (required)")
	camera := fs.String("camera", "", "camera id (required)")
	fromArg := fs.String("from", "", "start of the protected range, RFC 3339, e.g. 2026-03-14T09:00:00+01:00 (required)")
	toArg := fs.String("to", "", "end of the protected range, RFC 3339 (required)")
	reason := fs.String("reason", "", "why the footage is evidence, e.g. a case number (required)")
	expiresArg := fs.String("expires", "", "when the lock ends, RFC 3339 (default: never, until unlocked)")
	forArg := fs.String("for", "", "how long the lock lasts from now, e.g. 30d (instead of -expires)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "lock: "+format+"\n", a...)
		return exitUsage
	}
	if name, missing := missingFlag(fs); missing {
		return usage("-%s is required", name)
	}
	if strings.TrimSpace(*reason) == "" {
		return usage("-reason is required: say why this footage is evidence (a case number)")
	}
	from, err := parseTimeFlag("from", *fromArg)
	if err != nil {
		return usage("%v", err)
	}
	to, err := parseTimeFlag("to", *toArg)
	if err != nil {
		return usage("%v", err)
	}
	if !to.After(from) {
		return usage("-to (%s) must be after -from (%s)", *toArg, *fromArg)
	}
	now := time.Now()
	var expires time.Time
	switch {
	case *expiresArg != "" && *forArg != "":
		return usage("-expires and -for both say when the lock ends; give one")
	case *expiresArg != "":
		if expires, err = parseTimeFlag("expires", *expiresArg); err != nil {
			return usage("%v", err)
		}
		if !expires.After(now) {
			return usage("-expires (%s) is not in the future", *expiresArg)
		}
	case *forArg != "":
		d, err := configs.ParseDuration(*forArg)
		if err != nil || d <= 0 {
			return usage("-for %q is not a positive duration like 30d or 12h", *forArg)
		}
		expires = now.Add(d.Std())
	}
	cfg, code, ok := loadConfig("lock", *cfgPath, stderr)
	if !ok {
		return code
	}
	ca, err := openCLIAudit(ctx, cfg, false)
	if err != nil {
		fmt.Fprintf(stderr, "lock: %v\n", err)
		return exitFailure
	}
	defer ca.Close()
	cat := ca.cat

	// A camera that left the configuration may still have footage worth locking; an id
	// that is neither configured nor recorded is a typo.
	if _, configured := cfg.Camera(*camera); !configured {
		stored, err := cat.BytesByCamera(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "lock: %v\n", err)
			return exitFailure
		}
		if _, recorded := stored[*camera]; !recorded {
			return usage("-camera %q is not in %s (cameras: %s) and has no footage", *camera, *cfgPath, cameraIDs(cfg))
		}
	}
	lockDetails, _ := json.Marshal(map[string]string{"expires": expiry(expires)})
	if _, err := ca.record(ctx, catalog.AuditEntry{Action: access.AuditLockCreate, Camera: *camera, From: from, To: to,
		Reason: strings.TrimSpace(*reason), Details: lockDetails}); err != nil {
		fmt.Fprintf(stderr, "lock: %v\n", err)
		return exitFailure
	}
	id, err := cat.AddLock(ctx, catalog.Lock{Camera: *camera, Start: from, End: to, Reason: strings.TrimSpace(*reason), Created: now,
		Expires: expires, Actor: access.CLIActor()})
	if err != nil {
		fmt.Fprintf(stderr, "lock: %v\n", err)
		return exitFailure
	}
	segs, err := cat.Segments(ctx, *camera, from, to)
	if err != nil {
		fmt.Fprintf(stderr, "lock: lock %d is stored, but listing what it covers failed: %v\n", id, err)
		return exitFailure
	}
	var bytes int64
	for _, s := range segs {
		bytes += s.Bytes
	}
	// The id alone on stdout, for scripts; the description for the person.
	fmt.Fprintln(stdout, id)
	fmt.Fprintf(stderr, "lock %d: camera %s from %s to %s, %s; covers %d recorded segment(s), %s so far\n",
		id, *camera, localTime(from), localTime(to), expiry(expires), len(segs), sizeString(bytes))
	return exitOK
}

// expiry describes when a lock ends.
func expiry(t time.Time) string {
	if t.IsZero() {
		return "until unlocked"
	}
	return "until " + localTime(t)
}

func runUnlock(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("unlock", stderr)
	cfgPath := fs.String("config", "", "configuration file (required)")
	id := fs.Int64("id", 0, "id of the lock to remove, as `townwatch locks` lists it (required)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *id <= 0 {
		fmt.Fprintln(stderr, "unlock: -id N (a lock id from `townwatch locks`) is required")
		return exitUsage
	}
	cfg, code, ok := loadConfig("unlock", *cfgPath, stderr)
	if !ok {
		return code
	}
	ca, err := openCLIAudit(ctx, cfg, false)
	if err != nil {
		fmt.Fprintf(stderr, "unlock: %v\n", err)
		return exitFailure
	}
	defer ca.Close()
	cat := ca.cat
	lock, found, err := findLock(ctx, cat, *id)
	if err != nil {
		fmt.Fprintf(stderr, "unlock: %v\n", err)
		return exitFailure
	}
	if found {
		details, _ := json.Marshal(map[string]any{"lock": lock.ID, "created_by": lock.Actor, "expires": expiry(lock.Expires)})
		if _, err := ca.record(ctx, catalog.AuditEntry{Action: access.AuditLockRemove, Camera: lock.Camera, From: lock.Start, To: lock.End,
			Reason: lock.Reason, Details: details}); err != nil {
			fmt.Fprintf(stderr, "unlock: %v\n", err)
			return exitFailure
		}
	}
	err = cat.RemoveLock(ctx, *id)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		fmt.Fprintf(stderr, "unlock: there is no lock %d (see `townwatch locks`)\n", *id)
		return exitFailure
	case err != nil:
		fmt.Fprintf(stderr, "unlock: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "lock %d removed: its footage is subject to retention again\n", *id)
	return exitOK
}

// findLock returns the active lock with id, for the audit row that precedes its removal.
func findLock(ctx context.Context, cat *catalog.Catalog, id int64) (catalog.Lock, bool, error) {
	locks, err := cat.Locks(ctx, time.Now())
	if err != nil {
		return catalog.Lock{}, false, err
	}
	for _, l := range locks {
		if l.ID == id {
			return l, true, nil
		}
	}
	return catalog.Lock{}, false, nil
}

func runLocks(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("locks", stderr)
	cfgPath := fs.String("config", "", "configuration file (required)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, code, ok := loadConfig("locks", *cfgPath, stderr)
	if !ok {
		return code
	}
	cat, err := openCatalog(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "locks: %v\n", err)
		return exitFailure
	}
	defer cat.Close()
	locks, err := cat.Locks(ctx, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "locks: %v\n", err)
		return exitFailure
	}
	if len(locks) == 0 {
		fmt.Fprintln(stdout, "no active evidence locks")
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCAMERA\tFROM\tTO\tEXPIRES\tCREATED\tBY\tREASON")
	for _, l := range locks {
		exp := "never"
		if !l.Expires.IsZero() {
			exp = localTime(l.Expires)
		}
		by := l.Actor
		if by == "" {
			by = "-" // made before locks recorded who made them
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.ID, l.Camera, localTime(l.Start), localTime(l.End), exp, localTime(l.Created), by, l.Reason)
	}
	if err := tw.Flush(); err != nil {
		fmt.Fprintf(stderr, "locks: %v\n", err)
		return exitFailure
	}
	return exitOK
}
