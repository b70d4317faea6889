package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/dataset"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
)

// runGenerate is `staffctl generate`: a realistic organisation and its
// monitoring data (internal/cloud/dataset), for benchmarks and demos.
func runGenerate(ctx context.Context, e env, args []string) error {
	fs, dbURL := newFlags(e, "generate", "generate --org-slug SLUG [--employees N] [--days N] [--end-date YYYY-MM-DD] [--seed N]\n"+
		"                [--time-zone ZONE] [--writers N] [--password-file FILE] [--screenshot-files DIR] [--database-url URL]\n\n"+
		"Creates a new organisation with departments, employees, a report policy, a gateway and demo users\n"+
		"(their logins are printed once), then COPYs its monitoring series (about 1,650 rows per employee\n"+
		"and day) into the time-series tables. The same seed gives the same rows.")
	employees := fs.Int("employees", 1000, "number of employees")
	days := fs.Int("days", 30, "number of days, ending with --end-date")
	endDate := fs.String("end-date", "", "last day, YYYY-MM-DD in --time-zone (default: today there)")
	seed := fs.Uint64("seed", 1, "seed of every draw: the same seed gives the same data")
	orgSlug := fs.String("org-slug", "", "slug of the new organisation (required; must not exist)")
	orgName := fs.String("org-name", "", "name of the new organisation (default: derived from the slug)")
	timeZone := fs.String("time-zone", "Europe/Berlin", "the organisation's IANA time zone, which cuts its days")
	writers := fs.Int("writers", 0, "COPYs at once (default: GOMAXPROCS)")
	pwFile := fs.String("password-file", "", "every demo user's password, from this file's first line (default: a random one each, printed once)")
	shotDir := fs.String("screenshot-files", "", "also store a tiny image per screenshot under this directory (storage.Local; demos only)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *orgSlug == "" {
		return usagef("generate: --org-slug is required")
	}
	password := ""
	if *pwFile != "" {
		b, err := os.ReadFile(*pwFile)
		if err != nil {
			return usagef("generate: --password-file: %v", err)
		}
		password, _, _ = strings.Cut(string(b), "\n")
		password = strings.TrimRight(password, "\r")
	}
	dsn, err := databaseURL(e, *dbURL)
	if err != nil {
		return err
	}
	deps := dataset.Deps{}
	if *shotDir != "" {
		local, err := storage.NewLocal(*shotDir)
		if err != nil {
			return err
		}
		deps.Files = local
	}
	w := *writers
	if w <= 0 {
		w = runtime.GOMAXPROCS(0)
	}
	owner, err := postgres.Connect(ctx, dsn, int32(w), postgres.ContextKey{})
	if err != nil {
		return err
	}
	defer owner.Close()
	platform, err := connectAdmin(ctx, dsn, int32(w))
	if err != nil {
		return err
	}
	defer platform.Close()
	deps.Owner, deps.Platform = owner, platform

	cfg := dataset.Config{Employees: *employees, Days: *days, EndDate: *endDate, Seed: *seed, OrgSlug: *orgSlug, OrgName: *orgName,
		TimeZone: *timeZone, Writers: w, Password: password,
		Progress: func(p dataset.Progress) {
			fmt.Fprintf(e.stdout, "  %12d rows  %8.0f rows/s  %s\n", p.Rows, p.RowsPerSecond(), p.Elapsed.Round(time.Second))
		}}
	fmt.Fprintf(e.stdout, "generating %d employees × %d days into organisation %q (seed %d, %d writers)…\n", cfg.Employees, cfg.Days, cfg.OrgSlug, cfg.Seed, w)
	res, err := dataset.Generate(ctx, deps, cfg)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nOrganisation %d (slug %q, time zone %s): %d departments, %d employees, days %s to %s\n",
		res.OrganizationID, res.Slug, res.TimeZone, res.Departments, res.Employees, res.From, res.To)
	fmt.Fprintf(&b, "  Report policy     %d\n  Gateway           %s\n  Time series       %s\n", res.PolicyID, res.GatewayID, res.Storage)
	for _, t := range []string{"active_windows", "visited_sites", "screenshots", "user_sessions", "device_events"} {
		fmt.Fprintf(&b, "  %-17s %d rows\n", t, res.Rows[t])
	}
	fmt.Fprintf(&b, "  Total             %d rows in %s (%.0f rows/s; set-up %s), %d (SID, hour) keys for the report rollups\n",
		res.Total(), res.Series.Round(time.Millisecond), res.RowsPerSecond(), res.Setup.Round(time.Millisecond), res.DirtyHours)
	b.WriteString("Demo users (passwords shown once):\n")
	for _, u := range res.Users {
		pw := u.Password
		if password != "" {
			pw = "(from --password-file)"
		}
		fmt.Fprintf(&b, "  %-16s %s / %s  %s\n", u.Role, u.Email, pw, u.Note)
	}
	fmt.Fprint(e.stdout, b.String())
	return nil
}
