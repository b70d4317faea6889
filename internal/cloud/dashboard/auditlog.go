package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/dashboard/dashboarddb"
)

// The audit log, read-only, newest first: what was done (or refused), by
// whom, to what. Organisation administrators and platform ADMINs only
// (HR does not read who changed policies or users); row-level security
// keeps it to the caller's organisation.

// auditLogRoutes registers the audit-log route.
func (a *api) auditLogRoutes() {
	a.handle("GET", "/api/v2/audit-log", orgManagers, a.listAuditLog)
}

// auditEntry is an audit row on the wire.
type auditEntry struct {
	ID             int64           `json:"id"`
	OrganizationID *int64          `json:"organization_id"`
	ActorUserID    *int64          `json:"actor_user_id"`
	Actor          string          `json:"actor"`
	Action         string          `json:"action"`
	ResourceType   string          `json:"resource_type"`
	ResourceID     *string         `json:"resource_id"`
	Outcome        string          `json:"outcome"`
	Details        json.RawMessage `json:"details"`
	CreatedAt      time.Time       `json:"created_at"`
}

// auditCursor is the cursor of a page of the audit log.
type auditCursor struct {
	CreatedAt time.Time `json:"t"`
	ID        int64     `json:"id"`
}

// auditFilters reads the audit-log query's filters.
func auditFilters(r *http.Request) (dashboarddb.ListAuditLogParams, error) {
	q := r.URL.Query()
	var p dashboarddb.ListAuditLogParams
	text := func(name string, max int) (*string, error) {
		v := q.Get(name)
		if v == "" {
			return nil, nil
		}
		if len(v) > max {
			return nil, inParams(apperr.New(apperr.Invalid, name, "%s must be at most %d characters", name, max))
		}
		return &v, nil
	}
	var err error
	if p.Action, err = text("action", 100); err != nil {
		return p, err
	}
	if p.ResourceType, err = text("resource_type", 100); err != nil {
		return p, err
	}
	if p.ResourceID, err = text("resource_id", 255); err != nil {
		return p, err
	}
	if p.Outcome, err = text("outcome", 10); err != nil {
		return p, err
	}
	if p.Outcome != nil && *p.Outcome != "allowed" && *p.Outcome != "denied" {
		return p, inParams(apperr.New(apperr.Invalid, "outcome", "outcome must be allowed or denied"))
	}
	actor, err := queryInt64(r, "actor_user_id")
	if err != nil {
		return p, err
	}
	if actor != 0 {
		p.ActorUserID = &actor
	}
	for _, t := range []struct {
		name string
		dst  *pgtype.Timestamptz
	}{{"from", &p.FromTime}, {"to", &p.ToTime}} {
		v := q.Get(t.name)
		if v == "" {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return p, inParams(apperr.New(apperr.Invalid, t.name, "%s must be an RFC 3339 time, e.g. 2026-01-31T00:00:00Z", t.name))
		}
		*t.dst = pgtype.Timestamptz{Time: at, Valid: true}
	}
	if p.FromTime.Valid && p.ToTime.Valid && !p.FromTime.Time.Before(p.ToTime.Time) {
		return p, inParams(apperr.New(apperr.Invalid, "to", "to must be after from"))
	}
	return p, nil
}

func (a *api) listAuditLog(w http.ResponseWriter, r *http.Request, c *caller) error {
	pg, err := pageOf(r)
	if err != nil {
		return err
	}
	var after auditCursor
	if err := decodeCursor(pg.Cursor, &after); err != nil {
		return err
	}
	p, err := auditFilters(r)
	if err != nil {
		return err
	}
	if !after.CreatedAt.IsZero() {
		p.AfterCreatedAt, p.AfterID = pgtype.Timestamptz{Time: after.CreatedAt, Valid: true}, &after.ID
	}
	p.MaxRows = int32(pg.Limit + 1)
	var rows []dashboarddb.AuditLog
	err = c.inTenant(r.Context(), func(tx pgx.Tx) error {
		var err error
		rows, err = dashboarddb.New(tx).ListAuditLog(r.Context(), p)
		return err
	})
	if err != nil {
		return fmt.Errorf("list the audit log: %w", err)
	}
	next := ""
	if len(rows) > pg.Limit {
		rows = rows[:pg.Limit]
		last := rows[len(rows)-1]
		next = encodeCursor(auditCursor{CreatedAt: last.CreatedAt, ID: last.ID})
	}
	out := make([]auditEntry, 0, len(rows))
	for _, e := range rows {
		out = append(out, auditEntry(e))
	}
	writeJSON(w, http.StatusOK, newList(out, next))
	return nil
}
