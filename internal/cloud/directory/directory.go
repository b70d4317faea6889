// Package directory is an organisation's directory: its departments (a
// tree) and its employees with their identities (Windows SIDs, computers,
// card and employee numbers that tie monitoring data to a person). The
// Dashboard API's handlers call it; it chooses no HTTP status.
//
// Every call runs in one postgres.InTenant transaction with the caller's
// Tenant on the pool the caller passes (staff_dashboard, or staff_admin for
// a platform ADMIN), so row-level security does all tenant and scope
// filtering: a row of another organisation, or out of a scoped role's
// reach, is NotFound, never Forbidden. Updates and deletes name the row
// version they read (the ETag; row_version, kept by the database) and are
// refused with ErrStale when it moved on. Every change writes an audit row
// in the same transaction, with the changed fields.
//
// Errors are apperr values: FieldErrors (code Invalid) naming each field
// at fault by its JSON-Pointer-like path ("employee_number",
// "identities/2/value", "cursor", "sort"); NotFound; Conflict naming the
// field for a duplicate (employee_number, identities/N/value, name) or, with
// no field, for a department still in use; Conflict with reason "stale"
// (ErrStale) for a version mismatch.
package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/directory/directorydb"
)

// ReasonStale is the apperr reason of a version mismatch: the row changed
// since the caller read it (the HTTP layer answers 412 Precondition
// Failed).
const ReasonStale = "stale"

// ErrStale matches (errors.Is) every version mismatch this package returns:
// an apperr.Error of code Conflict and reason "stale".
var ErrStale error = &apperr.Error{Code: apperr.Conflict, Reason: ReasonStale, Message: "the row has changed since it was read"}

// Service reads and changes the directory. It holds no state: each call
// takes the pool (or connection) to run on and the caller's tenant.
type Service struct{}

// New returns a Service.
func New() *Service { return &Service{} }

// notFound is the error for a row that does not exist or is not visible.
func notFound(what string, id int64) error {
	return apperr.New(apperr.NotFound, "", "%s %d not found", what, id)
}

// stale is the error for a version mismatch.
func stale(what string, id, want, have int64) error {
	return apperr.New(apperr.Conflict, "", "%s %d has version %d, not %d: read it again", what, id, have, want).WithReason(ReasonStale)
}

// checkVersion refuses a version that cannot be a row's (before any
// statement runs).
func checkVersion(v int64) error {
	if v < 1 {
		return apperr.Field("version", "must be the row's version (a positive integer, its ETag)")
	}
	return nil
}

// pgError returns err's PostgreSQL error, or nil.
func pgError(err error) *pgconn.PgError {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe
	}
	return nil
}

// SQLSTATEs mapped to callers' errors.
const (
	uniqueViolation     = "23505"
	foreignKeyViolation = "23503"
	insufficientPriv    = "42501"
)

// writeRefused maps a write RLS refused (a role that may read but not
// write the row) to apperr.Forbidden; any other error is returned as is.
// Reads of invisible rows are NotFound before any write is tried, so this
// only answers a visible row the role may not change.
func writeRefused(err error, what string) error {
	if pe := pgError(err); pe != nil && pe.Code == insufficientPriv {
		return &apperr.Error{Code: apperr.Forbidden, Message: "your role may not change " + what, Err: err}
	}
	return err
}

// Change is one changed field of an audit row's diff: the JSON Pointer of
// the field, its old and new values (the shape of policy's diff).
type Change struct {
	Op   string `json:"op"` // add, remove, replace
	Path string `json:"path"`
	Old  any    `json:"old,omitempty"`
	New  any    `json:"new,omitempty"`
}

// diffFields lists the fields whose values differ between before and
// after (nil before: a creation, every field added; nil after: a deletion),
// in the order of fields.
func diffFields(fields []string, before, after map[string]any) []Change {
	var out []Change
	for _, f := range fields {
		b, inB := before[f]
		a, inA := after[f]
		switch {
		case before == nil && inA:
			out = append(out, Change{Op: "add", Path: "/" + f, New: a})
		case after == nil && inB:
			out = append(out, Change{Op: "remove", Path: "/" + f, Old: b})
		case inA && inB && !sameJSON(a, b):
			out = append(out, Change{Op: "replace", Path: "/" + f, Old: b, New: a})
		}
	}
	return out
}

func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(ja) == string(jb)
}

// audit appends an audit row through app.audit() (which stamps user and
// actor from the verified tenant context): the action on the resource of
// the organisation, with the changed fields.
func audit(ctx context.Context, tx pgx.Tx, orgID int64, action, resource string, id int64, changes []Change) error {
	if changes == nil {
		changes = []Change{}
	}
	b, err := json.Marshal(map[string]any{"changes": changes})
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if err := directorydb.New(tx).Audit(ctx, directorydb.AuditParams{OrganizationID: orgID, Action: action, Resource: resource,
		ResourceID: strconv.FormatInt(id, 10), Details: b}); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}
