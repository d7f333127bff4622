package main

// Helpers shared by the commands that work on a stopped or running system's storage from
// outside it (export, lock, unlock, locks, retention): flags, configuration, catalog.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// missingFlag returns the first flag whose usage says "(required)" and that was left
// empty, so every command reports a missing flag by name the same way.
func missingFlag(fs *flag.FlagSet) (name string, missing bool) {
	fs.VisitAll(func(f *flag.Flag) {
		if !missing && strings.Contains(f.Usage, "(required)") && f.Value.String() == "" {
			name, missing = f.Name, true
		}
	})
	return name, missing
}

// loadConfig loads -config for a catalog command; ok is false when the command must
// return code.
func loadConfig(name, path string, stderr io.Writer) (cfg *configs.Config, code int, ok bool) {
	if path == "" {
		fmt.Fprintf(stderr, "%s: -config FILE is required\n", name)
		return nil, exitUsage, false
	}
	cfg, err := configs.LoadUnion(path) // with the cameras in cameras.d
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return nil, exitUsage, false
	}
	return cfg, exitOK, true
}

// openCatalog opens the catalog under cfg's storage.path. It refuses to create one: a
// path without a catalog is a wrong configuration, and a lock written into a new, empty
// catalog would protect nothing while looking as if it did.
func openCatalog(ctx context.Context, cfg *configs.Config) (*catalog.Catalog, error) {
	if cfg.Catalog.URL != "" {
		// The database exists (townwatch never creates one); an empty one gets the schema.
		return catalog.Open(ctx, cfg.Catalog.URL)
	}
	path := filepath.Join(cfg.Storage.Path, catalogFile)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("storage.path %s holds no catalog (has townwatch serve run with this configuration?): %w", cfg.Storage.Path, err)
	}
	return catalog.Open(ctx, path)
}

// catalogField is the configuration field that says where the catalog is, for errors.
func catalogField(cfg *configs.Config) string {
	if cfg.Catalog.URL != "" {
		return "catalog.url"
	}
	return "storage.path"
}

// parseTimeFlag parses an RFC 3339 flag value, naming the flag in the error.
func parseTimeFlag(flag, value string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, value)
	if err != nil {
		return time.Time{}, fmt.Errorf("-%s %q is not an RFC 3339 time like 2026-03-14T09:00:00+01:00", flag, value)
	}
	return t, nil
}

// localTime formats a time for a person at this machine: local time with its offset, so
// it is both familiar and unambiguous.
func localTime(t time.Time) string { return t.Local().Format(time.RFC3339) }
