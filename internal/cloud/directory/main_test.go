package directory_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/directory"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

// env is a test database with organisations A and B seeded identically
// (pgtest.SeedOrganization), the dashboard role's pool and an HR tenant of
// each organisation.
type env struct {
	ctx         context.Context
	svc         *directory.Service
	admin       *pgx.Conn // bypasses RLS: set-up and checks only
	dash        *pgxpool.Pool
	a, b        pgtest.Seeded
	hrA, hrB    postgres.Tenant
	platformURL string // the staff_admin login's URL
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	a, err := pgtest.SeedOrganization(ctx, admin, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	b, err := pgtest.SeedOrganization(ctx, admin, "beta")
	if err != nil {
		t.Fatal(err)
	}
	return &env{ctx: ctx, svc: directory.New(), admin: admin, platformURL: db.PlatformAdminURL, dash: pg.Pool(t, db.DashboardURL, 4), a: a, b: b,
		hrA: postgres.Tenant{OrganizationID: a.OrganizationID, Role: postgres.AppHR, UserID: a.UserID, Actor: "hr@alpha"},
		hrB: postgres.Tenant{OrganizationID: b.OrganizationID, Role: postgres.AppHR, UserID: b.UserID, Actor: "hr@beta"}}
}

// one returns the single value of sql run as the administrator.
func (e *env) one(t testing.TB, sql string, args ...any) string {
	t.Helper()
	var s string
	if err := e.admin.QueryRow(e.ctx, sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// wantCode checks err's apperr code, field and (when given) reason.
func wantCode(t *testing.T, what string, err error, code apperr.Code, field, reason string) {
	t.Helper()
	ae := apperr.As(err)
	if ae == nil || ae.Code != code || ae.Field != field || (reason != "" && ae.Reason != reason) {
		t.Errorf("%s: err = %v, want %s on %q (reason %q)", what, err, code, field, reason)
	}
}

// fieldsOf lists the fields named by a validation error.
func fieldsOf(err error) []string {
	var out []string
	var list apperr.FieldErrors
	var one *apperr.FieldError
	switch {
	case errors.As(err, &list):
		for _, f := range list {
			out = append(out, f.Field)
		}
	case errors.As(err, &one):
		out = append(out, one.Field)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// show is v as JSON, to compare values holding pointers.
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
