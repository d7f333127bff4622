package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// openAuditLog opens the access log of cat with the key of cfg. The key is made only for
// a log that has no rows yet (the first start, or the first `user add` before it): a
// missing key file for an existing log is a wrong path or a lost key, and a new key would
// make every existing row look forged.
func openAuditLog(ctx context.Context, cfg *configs.Config, cat *catalog.Catalog) (*access.AuditLog, error) {
	_, _, rows, err := cat.AuditHead(ctx)
	if err != nil {
		return nil, err
	}
	key, err := access.LoadAuditKey(cfg.AuditKeyFile(), rows == 0)
	if err != nil {
		return nil, fmt.Errorf("audit.key_file: %w", err)
	}
	return access.NewAuditLog(cat, key)
}

// openCatalogCreating opens the catalog, creating the storage area if it is new: the
// first account is made before townwatch has ever served.
func openCatalogCreating(ctx context.Context, cfg *configs.Config) (*catalog.Catalog, error) {
	if err := os.MkdirAll(cfg.Storage.Path, 0o700); err != nil {
		return nil, fmt.Errorf("storage.path: %w", err)
	}
	cat, err := catalog.Open(ctx, cfg.CatalogTarget())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", catalogField(cfg), err)
	}
	return cat, nil
}

// cliAudit is a command-line command's access to the catalog and its audit log: every
// action that touches footage or accounts writes its row, as the command's OS user,
// before it acts.
type cliAudit struct {
	cat *catalog.Catalog
	log *access.AuditLog
}

// openCLIAudit opens the catalog (create: also a new storage area) and its audit log.
func openCLIAudit(ctx context.Context, cfg *configs.Config, create bool) (*cliAudit, error) {
	var cat *catalog.Catalog
	var err error
	if create {
		cat, err = openCatalogCreating(ctx, cfg)
	} else {
		cat, err = openCatalog(ctx, cfg)
	}
	if err != nil {
		return nil, err
	}
	log, err := openAuditLog(ctx, cfg, cat)
	if err != nil {
		cat.Close()
		return nil, err
	}
	return &cliAudit{cat: cat, log: log}, nil
}

// openCLIAuditFor loads the configuration at path and opens its catalog's audit log for
// the command name; ok is false when the command must return code (said on stderr).
func openCLIAuditFor(ctx context.Context, name, path string, stderr io.Writer) (_ *cliAudit, code int, ok bool) {
	cfg, code, ok := loadConfig(name, path, stderr)
	if !ok {
		return nil, code, false
	}
	ca, err := openCLIAudit(ctx, cfg, false)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return nil, exitFailure, false
	}
	return ca, exitOK, true
}

func (c *cliAudit) Close() error { return c.cat.Close() }

// record writes one row as the command line's operator.
func (c *cliAudit) record(ctx context.Context, e catalog.AuditEntry) (catalog.AuditEntry, error) {
	e.Actor = access.CLIActor()
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if e.Outcome == "" {
		e.Outcome = catalog.AuditOK
	}
	row, err := c.log.Append(ctx, e)
	if err != nil {
		return row, fmt.Errorf("the access log cannot be written, so nothing was done: %w", err)
	}
	return row, nil
}

// readNewPassword reads a new password: from file when given, else twice from the
// terminal without echo, else (a script) one line from stdin. It is checked against the
// password rules for the account name.
func readNewPassword(name, file string, stdin io.Reader, stderr io.Writer) (string, error) {
	var pw string
	switch {
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("-password-file: %w", err)
		}
		pw = strings.TrimRight(string(data), "\r\n")
	case isTerminal(stdin):
		first, err := promptHidden(stdin.(*os.File), stderr, "New password for "+name+": ")
		if err != nil {
			return "", err
		}
		if err := access.CheckPasswordPolicy(name, first); err != nil {
			return "", err
		}
		again, err := promptHidden(stdin.(*os.File), stderr, "Repeat it: ")
		if err != nil {
			return "", err
		}
		if again != first {
			return "", errors.New("the two passwords differ")
		}
		pw = first
	default:
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return "", errors.New("no password: give -password-file FILE, type it on a terminal, or pipe it on stdin")
		}
		pw = strings.TrimRight(line, "\r\n")
	}
	if err := access.CheckPasswordPolicy(name, pw); err != nil {
		return "", err
	}
	return pw, nil
}

// promptHidden reads one line from the terminal with echo off.
func promptHidden(tty *os.File, stderr io.Writer, prompt string) (string, error) {
	fd := int(tty.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", err
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return "", err
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	fmt.Fprint(stderr, prompt)
	line, err := bufio.NewReader(tty).ReadString('\n')
	fmt.Fprintln(stderr)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// parseCameraGrant reads -cameras: "all", or a comma-separated list of ids.
func parseCameraGrant(arg string, cfg *configs.Config) (all bool, ids []string, err error) {
	arg = strings.TrimSpace(arg)
	if arg == "all" {
		return true, nil, nil
	}
	ids = []string{}
	for part := range strings.SplitSeq(arg, ",") {
		id := strings.TrimSpace(part)
		if id == "" {
			continue
		}
		if _, ok := cfg.Camera(id); !ok {
			return false, nil, fmt.Errorf("-cameras: %q is not a camera of the configuration (cameras: %s)", id, cameraIDs(cfg))
		}
		ids = append(ids, id)
	}
	return false, ids, nil
}
