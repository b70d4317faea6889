package main

import (
	"context"
	"fmt"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
)

func runOrg(ctx context.Context, e env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(e.stdout, "usage: staffctl org create --name NAME [--slug SLUG]\n       staffctl org list\n       staffctl org enrolment-secret ORG\n")
		if len(args) == 0 {
			return usagef("org: a subcommand is required (create, list, enrolment-secret)")
		}
		return nil
	}
	switch args[0] {
	case "create":
		fs, dbURL := newFlags(e, "org create", "org create --name NAME [--slug SLUG] [--database-url URL]")
		name := fs.String("name", "", "organisation name (required)")
		slug := fs.String("slug", "", "short unique name: lower-case letters, digits, hyphens (default: derived from --name)")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *name == "" {
			return usagef("org create: --name is required")
		}
		dsn, err := databaseURL(e, *dbURL)
		if err != nil {
			return err
		}
		return withAccounts(ctx, dsn, func(svc *accounts.Service) error {
			o, err := svc.CreateOrganization(ctx, adminActor(), *name, *slug)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "organisation %d created (slug %s, name %q)\n", o.ID, o.Slug, o.Name)
			return nil
		})
	case "list":
		fs, dbURL := newFlags(e, "org list", "org list [--database-url URL]")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		dsn, err := databaseURL(e, *dbURL)
		if err != nil {
			return err
		}
		return withAccounts(ctx, dsn, func(svc *accounts.Service) error {
			orgs, err := svc.ListOrganizations(ctx, adminActor())
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%-6s %-24s %s\n", "ID", "SLUG", "NAME")
			for _, o := range orgs {
				fmt.Fprintf(e.stdout, "%-6d %-24s %s\n", o.ID, o.Slug, o.Name)
			}
			return nil
		})
	case "enrolment-secret":
		return runEnrolmentSecret(ctx, e, args[1:])
	}
	return usagef("org: unknown subcommand %q (want create, list or enrolment-secret)", args[0])
}
