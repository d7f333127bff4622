package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// demoAccount is one account `townwatch demo` makes: one per role, so a newcomer can see
// what each role sees.
type demoAccount struct {
	name, password string
	role           access.Role
}

// ensureDemoAccounts gives every role a demo account named after it, with a fresh random
// password at every start (never a fixed one: a demo left running on a network must not
// open with a password from the README). Existing demo accounts are re-enabled and get
// the new password, which also ends their old sessions. Each change is in the access log.
//
// It works on a catalog and its access log, not a running system: the cluster demo makes
// the accounts in the shared catalog before its nodes start.
func ensureDemoAccounts(ctx context.Context, cat *catalog.Catalog, audit *access.AuditLog) ([]demoAccount, error) {
	var out []demoAccount
	for _, role := range access.Roles {
		pw, err := access.RandomPassword()
		if err != nil {
			return nil, err
		}
		hash, err := access.HashPassword(pw)
		if err != nil {
			return nil, err
		}
		name := string(role)
		roles := []string{name}
		all := access.NeedsCameras([]access.Role{role})
		details, _ := json.Marshal(map[string]any{"user": name, "roles": roles, "demo": true})
		now := time.Now()
		_, err = cat.UserByName(ctx, name)
		switch {
		case errors.Is(err, catalog.ErrNotFound):
			if err := demoAudit(ctx, audit, access.AuditUserAdd, details); err != nil {
				return nil, err
			}
			_, err = cat.CreateUser(ctx, catalog.User{Name: name, PasswordHash: hash, Roles: roles, AllCameras: all,
				Cameras: []string{}, Created: now, Changed: now})
		case err == nil:
			if err := demoAudit(ctx, audit, access.AuditUserPassword, details); err != nil {
				return nil, err
			}
			err = errors.Join(cat.SetGrants(ctx, name, roles, all, []string{}, now),
				cat.SetDisabled(ctx, name, false, now), cat.SetPassword(ctx, name, hash, now))
		}
		if err != nil {
			return nil, fmt.Errorf("demo account %s: %w", name, err)
		}
		out = append(out, demoAccount{name: name, password: pw, role: role})
	}
	return out, nil
}

func demoAudit(ctx context.Context, audit *access.AuditLog, action string, details json.RawMessage) error {
	_, err := audit.Append(ctx, catalog.AuditEntry{Time: time.Now(), Actor: access.CLIActor(), Action: action,
		Outcome: catalog.AuditOK, Details: details})
	return err
}

// printDemoAccounts shows the demo's logins; they are valid until the next demo start.
func printDemoAccounts(w io.Writer, accounts []demoAccount) {
	fmt.Fprintln(w, "Demo logins (new passwords at every start; every role sees what it may):")
	for _, a := range accounts {
		fmt.Fprintf(w, "  %-11s %s\n", a.name, a.password)
	}
}
