package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/retention"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/logging"
)

const retentionUsage = `usage:
  staffctl retention run    [--dry-run] [--storage-path DIR] [--batch-size 10000]
  staffctl retention runs   [--limit 20]
  staffctl retention policy --type SERIES --days N [--org ORG] [--action delete|archive]

run runs retention once as the Agent API does (the ingest role, one replica at a time: skipped while another
holds the lock); runs lists the recorded runs; policy sets an organisation's policy for one series (without
--org: the platform default). Series: active_windows, visited_sites, screenshots, user_sessions, device_events.
`

func runRetention(ctx context.Context, e env, args []string) error {
	sub, rest, err := subcommand(e, args, retentionUsage, "run", "runs", "policy")
	if err != nil {
		return err
	}
	fs, dbURL := newFlags(e, "retention "+sub, strings.TrimPrefix(strings.Split(retentionUsage, "\n")[1+map[string]int{"run": 0, "runs": 1, "policy": 2}[sub]], "  staffctl "))
	dry := fs.Bool("dry-run", false, "count what would be deleted, change nothing")
	storagePath := fs.String("storage-path", "", "directory of the file store (default: $STORAGE_BASE_PATH)")
	batch := fs.Int("batch-size", retention.MaxBatchSize, "rows deleted per transaction (at most 10000)")
	limit := fs.Int("limit", 20, "how many runs to list")
	org := fs.String("org", "", "organisation id or slug (default: the platform default policy)")
	typ := fs.String("type", "", "the series (required)")
	days := fs.Int("days", 0, "days kept (required)")
	action := fs.String("action", "delete", "delete, or archive (gzip CSV to the file store) before deleting")
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	dsn, err := databaseURL(e, *dbURL)
	if err != nil {
		return err
	}
	if sub == "policy" {
		return setRetentionPolicy(ctx, e, dsn, *org, retention.Policy{ResourceType: *typ, RetentionDays: *days, Action: *action})
	}
	pool, err := connectIngest(ctx, dsn)
	if err != nil {
		return err
	}
	defer pool.Close()
	if sub == "runs" {
		return printRetentionRuns(ctx, e, pool, *limit)
	}
	path := *storagePath
	if path == "" {
		path = e.getenv("STORAGE_BASE_PATH")
	}
	if path == "" {
		return usagef("retention run: the file store is required: pass --storage-path or set STORAGE_BASE_PATH")
	}
	files, err := storage.NewLocal(path)
	if err != nil {
		return err
	}
	logger := logging.New(e.stderr, logging.Options{Service: "staffctl"})
	r, err := retention.New(ctx, retention.Deps{DB: pool, Files: files, Logger: logger}, retention.Config{BatchSize: *batch})
	if err != nil {
		return err
	}
	res, err := r.Run(ctx, *dry)
	if err != nil {
		return err
	}
	verb := "deleted"
	if *dry {
		verb = "would delete"
	}
	fmt.Fprintf(e.stdout, "run %d %s", res.RunID, res.Status)
	if res.Status == retention.StatusSkipped {
		fmt.Fprintln(e.stdout, ": another replica holds the retention lock")
		return nil
	}
	fmt.Fprintf(e.stdout, " in %s: %s %d rows (", res.Duration.Round(time.Millisecond), verb, res.TotalRows())
	for i, t := range retention.Tables() {
		if i > 0 {
			fmt.Fprint(e.stdout, ", ")
		}
		fmt.Fprintf(e.stdout, "%s %d", t, res.Rows[t])
	}
	fmt.Fprintf(e.stdout, "), %d partitions, %d files, %d bytes, %d archive objects", len(res.Partitions), res.Files, res.Bytes, res.Archived)
	if res.Interrupted > 0 {
		fmt.Fprintf(e.stdout, "; %d interrupted runs marked failed", res.Interrupted)
	}
	fmt.Fprintln(e.stdout)
	return nil
}

// connectIngest connects as the ingest role (staff_ingest), whose
// SECURITY DEFINER functions run retention: dsn (an administrator's URL)
// with its user replaced (the password from ~/.pgpass or PGPASSFILE, or
// local trust).
func connectIngest(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	return connectAs(ctx, dsn, postgres.RoleIngest, 2)
}

func printRetentionRuns(ctx context.Context, e env, pool *pgxpool.Pool, limit int) error {
	runs, err := retention.RecentRuns(ctx, pool, limit)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSTARTED\tDURATION\tDRY RUN\tSTATUS\tROWS\tFILES\tBYTES\tARCHIVED\tERROR")
	for _, r := range runs {
		dur := "-"
		if r.FinishedAt != nil {
			dur = r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond).String()
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%v\t%s\t%s\t%d\t%d\t%d\t%s\n", r.ID, r.StartedAt.UTC().Format(time.RFC3339), dur, r.DryRun, r.Status,
			r.Rows, r.Files, r.Bytes, r.Archived, r.Error)
	}
	return w.Flush()
}

func setRetentionPolicy(ctx context.Context, e env, dsn, org string, p retention.Policy) error {
	if err := p.Validate(); err != nil {
		return usagef("retention policy: %v", err)
	}
	pool, err := connectAdmin(ctx, dsn, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	if p.OrganizationID, err = resolveOrg(ctx, accounts.New(pool, time.Now), org); err != nil {
		return err
	}
	tenant := adminActor().Tenant
	tenant.OrganizationID = p.OrganizationID
	id, err := retention.SetPolicy(ctx, pool, tenant, p)
	if err != nil {
		return err
	}
	who := "the platform default"
	if p.OrganizationID != 0 {
		who = fmt.Sprintf("organisation %d", p.OrganizationID)
	}
	fmt.Fprintf(e.stdout, "retention policy %s: %s keeps %s %d days (%s)\n", id, who, p.ResourceType, p.RetentionDays, p.Action)
	return nil
}
