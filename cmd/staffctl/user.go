package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
)

func runUser(ctx context.Context, e env, args []string) error {
	_, args, err := subcommand(e, args, "usage: staffctl user create --email EMAIL --role ROLE [--org ID|SLUG] [--password-file FILE]\n", "create")
	if err != nil {
		return err
	}
	fs, dbURL := newFlags(e, "user create", "user create --email EMAIL --role ROLE [--org ID|SLUG] [--password-file FILE] [--database-url URL]\n\n"+
		"Roles: ADMIN (platform, no --org), ORG_ADMIN, HR, DEPARTMENT_LEAD, EMPLOYEE (need --org).\n"+
		"Without --password-file a random password is generated and printed once.")
	email := fs.String("email", "", "the user's e-mail address, used to log in (required)")
	role := fs.String("role", "", "ADMIN, ORG_ADMIN, HR, DEPARTMENT_LEAD or EMPLOYEE (required)")
	org := fs.String("org", "", "organisation id or slug (required unless --role ADMIN)")
	pwFile := fs.String("password-file", "", "read the password from this file (first line)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *email == "" {
		return usagef("user create: --email is required")
	}
	if *role == "" {
		return usagef("user create: --role is required (ADMIN, ORG_ADMIN, HR, DEPARTMENT_LEAD or EMPLOYEE)")
	}
	password, generated := "", false
	if *pwFile != "" {
		b, err := os.ReadFile(*pwFile)
		if err != nil {
			return usagef("user create: --password-file: %v", err)
		}
		password, _, _ = strings.Cut(string(b), "\n")
		password = strings.TrimRight(password, "\r")
	} else {
		p, err := auth.NewPassword()
		if err != nil {
			return err
		}
		password, generated = p, true
	}
	dsn, err := databaseURL(e, *dbURL)
	if err != nil {
		return err
	}
	return withAccounts(ctx, dsn, func(svc *accounts.Service) error {
		orgID, err := resolveOrg(ctx, svc, *org)
		if err != nil {
			return err
		}
		u, err := svc.CreateUser(ctx, adminActor(), accounts.NewUser{OrganizationID: orgID, Email: *email, Role: strings.ToUpper(*role), Password: password})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "user %d created: %s (%s)\n", u.ID, u.Email, u.Role)
		if generated {
			fmt.Fprintf(e.stdout, "password (shown once): %s\n", password)
		}
		return nil
	})
}
