package policy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/policy"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

func setup(t *testing.T) (*policy.Service, *pgx.Conn, accounts.Actor, accounts.Actor) {
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
	pool, err := postgres.Connect(ctx, db.DashboardURL, 4, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	svc, err := policy.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	return svc, admin,
		accounts.Actor{Name: "alpha-admin", UserID: a.UserID, Tenant: postgres.Tenant{OrganizationID: a.OrganizationID, Role: postgres.AppOrgAdmin}},
		accounts.Actor{Name: "beta-admin", UserID: b.UserID, Tenant: postgres.Tenant{OrganizationID: b.OrganizationID, Role: postgres.AppOrgAdmin}}
}

func TestReleaseCompareRollback(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, admin, a, b := setup(t)
	p, err := svc.Create(ctx, a, "Office", []byte(`{"screenshots": {"enabled": true, "interval_seconds": 300}}`))
	if err != nil {
		t.Fatal(err)
	}
	v1, err := svc.Release(ctx, a, p.ID, false)
	if err != nil || v1.Version != "1.0.0" || len(v1.Checksum) != 64 {
		t.Fatalf("first release: %+v %v", v1, err)
	}
	if _, err := svc.Release(ctx, a, p.ID, false); err == nil {
		t.Fatal("releasing unchanged content succeeded")
	}
	if _, err := svc.Update(ctx, a, p.ID, []byte(`{"screenshots": {"enabled": true, "interval_seconds": 600}}`)); err != nil {
		t.Fatal(err)
	}
	v2, err := svc.Release(ctx, a, p.ID, false)
	if err != nil || v2.Version != "1.0.1" {
		t.Fatalf("value change: %+v %v, want 1.0.1", v2, err)
	}
	if _, err := svc.Update(ctx, a, p.ID, []byte(`{"screenshots": {"enabled": true, "interval_seconds": 600}, "blocked_sites": ["games.example"]}`)); err != nil {
		t.Fatal(err)
	}
	v3, err := svc.Release(ctx, a, p.ID, true)
	if err != nil || v3.Version != "2.0.0" || !v3.RequiresRestart {
		t.Fatalf("restart release: %+v %v, want 2.0.0", v3, err)
	}
	changes, err := svc.Compare(ctx, a, p.ID, "1.0.0", "2.0.0")
	if err != nil || len(changes) != 2 {
		t.Fatalf("compare: %+v %v", changes, err)
	}
	// Rollback to 1.0.0 removes a key: a major version with 1.0.0's content and checksum.
	v4, err := svc.Rollback(ctx, a, p.ID, "1.0.0", false)
	if err != nil || v4.Version != "3.0.0" || v4.Checksum != v1.Checksum {
		t.Fatalf("rollback: %+v %v", v4, err)
	}
	var audits int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM policy_changes WHERE policy_id = $1`, p.ID).Scan(&audits); err != nil || audits != 7 {
		t.Fatalf("audit rows = %d (%v), want 7 (create, 2 updates, 3 releases, rollback)", audits, err)
	}
	var kinds string
	if err := admin.QueryRow(ctx, `SELECT string_agg(change_type, ',' ORDER BY created_at) FROM policy_changes WHERE policy_id = $1`, p.ID).Scan(&kinds); err != nil || kinds != "create,release,update,release,update,release,rollback" {
		t.Fatalf("audit kinds = %s", kinds)
	}
	// Another organisation sees none of it: 404, not 403.
	if _, err := svc.Get(ctx, b, p.ID); !errors.Is(err, policy.ErrNotFound) {
		t.Errorf("B reads A's policy: %v", err)
	}
	if _, err := svc.Release(ctx, b, p.ID, false); !errors.Is(err, policy.ErrNotFound) {
		t.Errorf("B releases A's policy: %v", err)
	}
	if _, err := svc.Compare(ctx, b, p.ID, "1.0.0", "2.0.0"); !errors.Is(err, policy.ErrNotFound) {
		t.Errorf("B compares A's versions: %v", err)
	}
}

func TestContentIsValidatedNamingTheField(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, _, a, _ := setup(t)
	tests := []struct {
		content, field string
	}{
		{`{"screenshots": {"interval_seconds": 1}}`, "content.screenshots.interval_seconds"},
		{`{"screenshots": {"enabled": "yes"}}`, "content.screenshots.enabled"},
		{`{"working_hours": {"start": "25:00", "end": "18:00"}}`, "content.working_hours.start"},
		{`{"unknown_setting": 1}`, "content"},
		{`{"working_hours": {"start": "09:00", "end": "18:00", "grace_minutes": -1}}`, "content.working_hours.grace_minutes"},
		{`{"productivity": {"neutral": {}}}`, "content.productivity"},
		{`{"productivity": {"productive": {"apps": []}}}`, "content.productivity.productive"},
		{`not json`, "content"},
	}
	for _, tt := range tests {
		_, err := svc.Create(ctx, a, "P "+tt.field, []byte(tt.content))
		var fe *apperr.FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("%s: %v, want a field error on %s", tt.content, err, tt.field)
		}
	}
	// The reports' part of a policy (issue 15).
	if _, err := svc.Create(ctx, a, "Reports", []byte(`{"activity": {"idle_seconds": 300},
		"working_hours": {"start": "09:00", "end": "18:00", "days": [1, 2, 3, 4, 5], "grace_minutes": 10},
		"productivity": {"productive": {"processes": ["code.exe"], "sites": ["github.com"]}, "unproductive": {"sites": ["youtube.com"]}}}`)); err != nil {
		t.Errorf("a report policy was refused: %v", err)
	}
	if _, err := svc.Create(ctx, a, "", []byte(`{}`)); err == nil {
		t.Error("a nameless policy was created")
	}
}

// TestUpdateVersionListAndVersions: an update at a stale version is
// refused (ErrStale) and one at the current version moves the version;
// lists and version pages hold the actor's organisation's rows only.
func TestUpdateVersionListAndVersions(t *testing.T) {
	svc, _, alpha, beta := setup(t)
	ctx := context.Background()
	p, err := svc.Create(ctx, alpha, "Versioned", []byte(`{"screenshots": {"enabled": true}}`))
	if err != nil {
		t.Fatal(err)
	}
	p, err = svc.Get(ctx, alpha, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	up, err := svc.UpdateVersion(ctx, alpha, p.ID, []byte(`{"screenshots": {"enabled": false}}`), p.Version())
	if err != nil {
		t.Fatal(err)
	}
	if up.Version() == p.Version() {
		t.Fatal("the version did not move")
	}
	if _, err := svc.UpdateVersion(ctx, alpha, p.ID, []byte(`{}`), p.Version()); !errors.Is(err, policy.ErrStale) {
		t.Fatalf("stale update: %v", err)
	}
	if _, err := svc.UpdateVersion(ctx, beta, p.ID, []byte(`{}`), up.Version()); !errors.Is(err, policy.ErrNotFound) {
		t.Fatalf("beta updates alpha's: %v", err)
	}
	list, err := svc.List(ctx, alpha, 0, 10)
	if err != nil || len(list) != 2 || list[1].ID != p.ID {
		t.Fatalf("alpha's list: %+v %v", list, err)
	}
	if list, err = svc.List(ctx, alpha, p.ID, 10); err != nil || len(list) != 0 {
		t.Fatalf("after the last: %+v %v", list, err)
	}
	for _, restart := range []bool{false, true} {
		if _, err := svc.Release(ctx, alpha, p.ID, restart); err != nil {
			t.Fatal(err)
		}
	}
	vs, err := svc.Versions(ctx, alpha, p.ID, policy.VersionCursor{}, 1)
	if err != nil || len(vs) != 1 || vs[0].Version != "2.0.0" {
		t.Fatalf("first page: %+v %v", vs, err)
	}
	vs, err = svc.Versions(ctx, alpha, p.ID, policy.VersionCursor{ReleasedAt: vs[0].ReleasedAt, ID: vs[0].ID}, 5)
	if err != nil || len(vs) != 1 || vs[0].Version != "1.0.0" {
		t.Fatalf("second page: %+v %v", vs, err)
	}
	if _, err := svc.Versions(ctx, beta, p.ID, policy.VersionCursor{}, 5); !errors.Is(err, policy.ErrNotFound) {
		t.Fatalf("beta lists alpha's versions: %v", err)
	}
}

// TestReleaseSeededPolicy: the seeded policy (pgtest: released 1.0.0 as
// its current version, a draft with more in it) releases as 1.1.0; a
// policy whose current version lags its latest (versions written around
// the service) is a conflict naming the version, not a server error.
func TestReleaseSeededPolicy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	seeded, err := pgtest.SeedOrganization(ctx, admin, "seeded")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := postgres.Connect(ctx, db.DashboardURL, 2, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	svc, err := policy.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	a := accounts.Actor{Name: "seeded-admin", UserID: seeded.UserID,
		Tenant: postgres.Tenant{OrganizationID: seeded.OrganizationID, Role: postgres.AppOrgAdmin}}

	v, err := svc.Release(ctx, a, seeded.PolicyID, false)
	if err != nil || v.Version != "1.1.0" {
		t.Fatalf("releasing the seeded policy: %+v %v, want 1.1.0", v, err)
	}
	p, err := svc.Get(ctx, a, seeded.PolicyID)
	if err != nil || p.CurrentVersion != "1.1.0" {
		t.Fatalf("the seeded policy after its release: %+v %v", p, err)
	}

	if _, err := admin.Exec(ctx, `UPDATE policies SET current_version = NULL WHERE id = $1`, seeded.PolicyID); err != nil {
		t.Fatal(err)
	}
	_, err = svc.Release(ctx, a, seeded.PolicyID, false)
	if e := apperr.As(err); e == nil || e.Code != apperr.Conflict || e.Field != "version" || !strings.Contains(e.Message, "1.0.0") {
		t.Fatalf("releasing over an existing version: %v, want a conflict naming version 1.0.0", err)
	}
}
