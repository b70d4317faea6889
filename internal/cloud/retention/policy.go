package retention

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/retention/retentiondb"
)

// Policy is one retention rule: how long an organisation (or, with
// OrganizationID 0, every organisation without its own rule: the platform
// default) keeps one series, and whether rows are archived before they go.
type Policy struct {
	// OrganizationID is the organisation, 0 for the platform default.
	OrganizationID int64
	// ResourceType is the series: one of Tables().
	ResourceType string
	// RetentionDays is how many days rows are kept (1 to 3650; longer than
	// the series' global days has the effect of the global days).
	RetentionDays int
	// Action is "delete" or "archive" (gzip CSV to the file store first).
	Action string
}

// Validate checks p, naming the field at fault.
func (p Policy) Validate() error {
	var errs apperr.FieldErrors
	if !slices.Contains(Tables(), p.ResourceType) {
		errs = append(errs, apperr.Field("resource_type", "%q is not a time series (%s)", p.ResourceType, strings.Join(Tables(), ", ")))
	}
	if p.RetentionDays < 1 || p.RetentionDays > 3650 {
		errs = append(errs, apperr.Field("retention_days", "must be between 1 and 3650"))
	}
	if p.Action != "delete" && p.Action != "archive" {
		errs = append(errs, apperr.Field("action", "must be delete or archive"))
	}
	if p.OrganizationID < 0 {
		errs = append(errs, apperr.Field("organization_id", "must be an organisation id, or 0 for the platform default"))
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// SetPolicy makes p the active policy of its organisation and series (the
// previous active ones stop applying; they stay as history) in one
// transaction under tenant, and returns its id. Row-level security decides
// who may: an organisation's administrator for their organisation, the
// platform ADMIN (through the staff_admin pool) for any and for the default.
func SetPolicy(ctx context.Context, db postgres.Beginner, tenant postgres.Tenant, p Policy) (uuid.UUID, error) {
	if err := p.Validate(); err != nil {
		return uuid.Nil, err
	}
	var org *int64
	if p.OrganizationID != 0 {
		org = &p.OrganizationID
	}
	var id uuid.UUID
	err := postgres.InTenant(ctx, db, tenant, func(tx pgx.Tx) error {
		q := retentiondb.New(tx)
		if _, err := q.DeactivatePolicies(ctx, retentiondb.DeactivatePoliciesParams{OrganizationID: org, ResourceType: p.ResourceType}); err != nil {
			return fmt.Errorf("retention: deactivate policies: %w", err)
		}
		var err error
		id, err = q.InsertPolicy(ctx, retentiondb.InsertPolicyParams{OrganizationID: org, ResourceType: p.ResourceType,
			RetentionDays: int32(p.RetentionDays), Action: p.Action})
		if err != nil {
			return fmt.Errorf("retention: insert policy: %w", err)
		}
		return nil
	})
	return id, err
}

// Run is one recorded run (monitoring.retention_runs).
type Run struct {
	ID         int64
	StartedAt  time.Time
	FinishedAt *time.Time
	DryRun     bool
	Status     string
	// Rows is the JSON object of rows per series.
	Rows     string
	Files    int64
	Bytes    int64
	Archived int
	Error    string
}

// RecentRuns returns the last n runs, newest first, read through db (the
// ingest role or the owner).
func RecentRuns(ctx context.Context, db retentiondb.DBTX, n int) ([]Run, error) {
	rows, err := retentiondb.New(db).RecentRuns(ctx, int32(min(max(n, 1), 1000)))
	if err != nil {
		return nil, fmt.Errorf("retention: recent runs: %w", err)
	}
	out := make([]Run, len(rows))
	for i, r := range rows {
		out[i] = Run{ID: r.ID, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, DryRun: r.DryRun, Status: r.Status,
			Rows: string(r.Rows), Files: r.Files, Bytes: r.Bytes, Archived: int(r.Archived)}
		if r.Error != nil {
			out[i].Error = *r.Error
		}
	}
	return out, nil
}
