package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// runUser dispatches `townwatch user add|list|passwd|disable|enable|grant`. Accounts are
// made on the host, never with default credentials: the first admin comes from here.
func runUser(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sub := map[string]func(context.Context, []string, io.Writer, io.Writer) int{
		"add": runUserAdd, "list": runUserList, "passwd": runUserPasswd,
		"disable": runUserDisable, "enable": runUserEnable, "grant": runUserGrant,
	}
	if len(args) == 0 || sub[args[0]] == nil {
		fmt.Fprintln(stderr, `usage: townwatch user add|list|passwd|disable|enable|grant -config FILE ...
  add     -name NAME -role ROLE[,ROLE] [-cameras all|id,id] [-password-file FILE]
  list
  passwd  -name NAME [-password-file FILE]
  disable -name NAME      (ends the account's sessions and live views at once)
  enable  -name NAME
  grant   -name NAME -role ROLE[,ROLE] [-cameras all|id,id]
roles: dispatcher, officer, supervisor, auditor, admin (admin and auditor not together)
without -password-file the password is asked twice on the terminal, or read from stdin`)
		return exitUsage
	}
	return sub[args[0]](ctx, args[1:], stdout, stderr)
}

// stdin is where passwords come from when no file is given; tests replace it.
var stdin io.Reader = os.Stdin

// userFlags are the flags the user subcommands share.
type userFlags struct {
	config, name, roles, cameras, passwordFile string
}

func parseUserFlags(cmd string, args []string, stderr io.Writer, withRoles, withPassword bool) (userFlags, int, bool) {
	var f userFlags
	fs := newFlagSet("user "+cmd, stderr)
	fs.StringVar(&f.config, "config", "", "configuration file (required)")
	fs.StringVar(&f.name, "name", "", "account name, one per person (required)")
	if withRoles {
		fs.StringVar(&f.roles, "role", "", "roles, comma-separated: dispatcher, officer, supervisor, auditor, admin (required)")
		fs.StringVar(&f.cameras, "cameras", "", "cameras a dispatcher or officer may use: all, or ids separated by commas")
	}
	if withPassword {
		fs.StringVar(&f.passwordFile, "password-file", "", "read the password from this file instead of the terminal or stdin")
	}
	if code, ok := parseFlags(fs, args); !ok {
		return f, code, false
	}
	if name, missing := missingFlag(fs); missing {
		fmt.Fprintf(stderr, "user %s: -%s is required\n", cmd, name)
		return f, exitUsage, false
	}
	return f, exitOK, true
}

// grantOf checks -role and -cameras together: a dispatcher or officer needs cameras.
func grantOf(f userFlags, cfgCameras func(string) (bool, []string, error)) ([]string, bool, []string, error) {
	roles, err := access.ParseRoles(f.roles)
	if err != nil {
		return nil, false, nil, fmt.Errorf("-role: %w", err)
	}
	all, ids := false, []string{}
	if f.cameras != "" {
		if all, ids, err = cfgCameras(f.cameras); err != nil {
			return nil, false, nil, err
		}
	}
	if access.NeedsCameras(roles) && !all && len(ids) == 0 {
		return nil, false, nil, errors.New("-cameras: a dispatcher or officer needs cameras: -cameras all, or a list of ids")
	}
	return access.RoleStrings(roles), all, ids, nil
}

func grantDetails(roles []string, all bool, ids []string) json.RawMessage {
	cams := any(ids)
	if all {
		cams = "all"
	}
	d, _ := json.Marshal(map[string]any{"roles": roles, "cameras": cams})
	return d
}

func runUserAdd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, code, ok := parseUserFlags("add", args, stderr, true, true)
	if !ok {
		return code
	}
	cfg, code, ok := loadConfig("user add", f.config, stderr)
	if !ok {
		return code
	}
	roles, all, ids, err := grantOf(f, func(a string) (bool, []string, error) { return parseCameraGrant(a, cfg) })
	if err != nil {
		fmt.Fprintf(stderr, "user add: %v\n", err)
		return exitUsage
	}
	pw, err := readNewPassword(f.name, f.passwordFile, stdin, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "user add: %v\n", err)
		return exitUsage
	}
	hash, err := access.HashPassword(pw)
	if err != nil {
		fmt.Fprintf(stderr, "user add: %v\n", err)
		return exitFailure
	}
	ca, err := openCLIAudit(ctx, cfg, true)
	if err != nil {
		fmt.Fprintf(stderr, "user add: %v\n", err)
		return exitFailure
	}
	defer ca.Close()
	if _, err := ca.cat.UserByName(ctx, f.name); err == nil {
		fmt.Fprintf(stderr, "user add: an account %q exists already (user grant changes its roles, user passwd its password)\n", f.name)
		return exitUsage
	}
	if _, err := ca.record(ctx, catalog.AuditEntry{Action: access.AuditUserAdd, Details: withName(f.name, grantDetails(roles, all, ids))}); err != nil {
		fmt.Fprintf(stderr, "user add: %v\n", err)
		return exitFailure
	}
	now := time.Now()
	if _, err := ca.cat.CreateUser(ctx, catalog.User{Name: f.name, PasswordHash: hash, Roles: roles, AllCameras: all, Cameras: ids,
		Created: now, Changed: now}); err != nil {
		fmt.Fprintf(stderr, "user add: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "user %s added: %s; cameras %s\n", f.name, strings.Join(roles, ", "), camerasText(all, ids))
	return exitOK
}

// withName adds the account's name to a details object.
func withName(name string, details json.RawMessage) json.RawMessage {
	var m map[string]any
	_ = json.Unmarshal(details, &m)
	if m == nil {
		m = map[string]any{}
	}
	m["user"] = name
	out, _ := json.Marshal(m)
	return out
}

func camerasText(all bool, ids []string) string {
	switch {
	case all:
		return "all"
	case len(ids) == 0:
		return "none"
	}
	return strings.Join(ids, ", ")
}

func runUserList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("user list", stderr)
	cfgPath := fs.String("config", "", "configuration file (required)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, code, ok := loadConfig("user list", *cfgPath, stderr)
	if !ok {
		return code
	}
	cat, err := openCatalog(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "user list: %v\n", err)
		return exitFailure
	}
	defer cat.Close()
	users, err := cat.Users(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "user list: %v\n", err)
		return exitFailure
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLES\tCAMERAS\tSTATE\tCHANGED")
	for _, u := range users {
		state := "active"
		if u.Disabled {
			state = "disabled"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Name, strings.Join(u.Roles, ","), camerasText(u.AllCameras, u.Cameras), state, localTime(u.Changed))
	}
	tw.Flush()
	return exitOK
}

// changeUser runs one account change as the command line's operator: the audit row
// first, then the change.
func changeUser(ctx context.Context, cmd string, f userFlags, stderr io.Writer, action string,
	details func(before catalog.User) json.RawMessage, change func(*catalog.Catalog) error) int {
	ca, code, ok := openCLIAuditFor(ctx, "user "+cmd, f.config, stderr)
	if !ok {
		return code
	}
	defer ca.Close()
	before, err := ca.cat.UserByName(ctx, f.name)
	if errors.Is(err, catalog.ErrNotFound) {
		fmt.Fprintf(stderr, "user %s: no account %q (townwatch user list shows them)\n", cmd, f.name)
		return exitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "user %s: %v\n", cmd, err)
		return exitFailure
	}
	var d json.RawMessage
	if details != nil {
		d = details(before)
	}
	if _, err := ca.record(ctx, catalog.AuditEntry{Action: action, Details: withName(f.name, d)}); err != nil {
		fmt.Fprintf(stderr, "user %s: %v\n", cmd, err)
		return exitFailure
	}
	if err := change(ca.cat); err != nil {
		fmt.Fprintf(stderr, "user %s: %v\n", cmd, err)
		return exitFailure
	}
	return exitOK
}

func runUserPasswd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, code, ok := parseUserFlags("passwd", args, stderr, false, true)
	if !ok {
		return code
	}
	pw, err := readNewPassword(f.name, f.passwordFile, stdin, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "user passwd: %v\n", err)
		return exitUsage
	}
	hash, err := access.HashPassword(pw)
	if err != nil {
		fmt.Fprintf(stderr, "user passwd: %v\n", err)
		return exitFailure
	}
	code = changeUser(ctx, "passwd", f, stderr, access.AuditUserPassword, nil, func(cat *catalog.Catalog) error {
		return cat.SetPassword(ctx, f.name, hash, time.Now())
	})
	if code == exitOK {
		fmt.Fprintf(stdout, "password of %s changed; its sessions are ended\n", f.name)
	}
	return code
}

func runUserDisable(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return setDisabled(ctx, "disable", true, args, stdout, stderr)
}

func runUserEnable(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return setDisabled(ctx, "enable", false, args, stdout, stderr)
}

func setDisabled(ctx context.Context, cmd string, disabled bool, args []string, stdout, stderr io.Writer) int {
	f, code, ok := parseUserFlags(cmd, args, stderr, false, false)
	if !ok {
		return code
	}
	action := access.AuditUserEnable
	if disabled {
		action = access.AuditUserDisable
	}
	code = changeUser(ctx, cmd, f, stderr, action, nil, func(cat *catalog.Catalog) error {
		return cat.SetDisabled(ctx, f.name, disabled, time.Now())
	})
	if code == exitOK {
		fmt.Fprintf(stdout, "user %s %sd\n", f.name, cmd)
	}
	return code
}

func runUserGrant(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, code, ok := parseUserFlags("grant", args, stderr, true, false)
	if !ok {
		return code
	}
	cfg, code, ok := loadConfig("user grant", f.config, stderr)
	if !ok {
		return code
	}
	roles, all, ids, err := grantOf(f, func(a string) (bool, []string, error) { return parseCameraGrant(a, cfg) })
	if err != nil {
		fmt.Fprintf(stderr, "user grant: %v\n", err)
		return exitUsage
	}
	details := func(before catalog.User) json.RawMessage {
		d, _ := json.Marshal(map[string]json.RawMessage{"before": grantDetails(before.Roles, before.AllCameras, before.Cameras),
			"after": grantDetails(roles, all, ids)})
		return d
	}
	code = changeUser(ctx, "grant", f, stderr, access.AuditUserGrant, details, func(cat *catalog.Catalog) error {
		return cat.SetGrants(ctx, f.name, roles, all, ids, time.Now())
	})
	if code == exitOK {
		fmt.Fprintf(stdout, "user %s: %s; cameras %s\n", f.name, strings.Join(roles, ", "), camerasText(all, ids))
	}
	return code
}
