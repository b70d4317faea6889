package accounts_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

var admin = accounts.Actor{Name: "test", Tenant: postgres.Tenant{Role: postgres.AppAdmin}}

func newService(t *testing.T) (*accounts.Service, string) {
	t.Helper()
	db := pg.NewDatabase(t)
	pool, err := postgres.Connect(context.Background(), db.PlatformAdminURL, 4, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return accounts.New(pool, time.Now), db.AdminURL
}

func TestCreateOrganizationValidation(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	ctx := context.Background()
	tests := []struct {
		name, orgName, slug, field string
	}{
		{"empty name", "  ", "", "name"},
		{"long name", strings.Repeat("n", 256), "", "name"},
		{"bad slug", "Acme", "Acme Corp", "slug"},
		{"slug from symbols only", "!!!", "", "slug"},
	}
	for _, tt := range tests {
		_, err := svc.CreateOrganization(ctx, admin, tt.orgName, tt.slug)
		var fe *apperr.FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("%s: err = %v, want a FieldError on %q", tt.name, err, tt.field)
		}
	}
	o, err := svc.CreateOrganization(ctx, admin, "Acme Corp, Ltd.", "")
	if err != nil {
		t.Fatal(err)
	}
	if o.Slug != "acme-corp-ltd" || o.ID == 0 {
		t.Fatalf("created %+v", o)
	}
	_, err = svc.CreateOrganization(ctx, admin, "Acme again", "acme-corp-ltd")
	var fe *apperr.FieldError
	if !errors.As(err, &fe) || fe.Field != "slug" {
		t.Fatalf("duplicate slug: err = %v", err)
	}
}

func TestCreateUserAndRegisterGateway(t *testing.T) {
	t.Parallel()
	svc, adminURL := newService(t)
	ctx := context.Background()
	a, err := svc.CreateOrganization(ctx, admin, "Alpha", "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := svc.CreateOrganization(ctx, admin, "Beta", "")
	if err != nil {
		t.Fatal(err)
	}

	bad := []struct {
		name  string
		in    accounts.NewUser
		field string
	}{
		{"no email", accounts.NewUser{OrganizationID: a.ID, Role: "HR", Password: "long enough pw"}, "email"},
		{"bad email", accounts.NewUser{OrganizationID: a.ID, Email: "not-an-email", Role: "HR", Password: "long enough pw"}, "email"},
		{"bad role", accounts.NewUser{OrganizationID: a.ID, Email: "x@a.test", Role: "BOSS", Password: "long enough pw"}, "role"},
		{"admin with org", accounts.NewUser{OrganizationID: a.ID, Email: "x@a.test", Role: "ADMIN", Password: "long enough pw"}, "organization"},
		{"hr without org", accounts.NewUser{Email: "x@a.test", Role: "HR", Password: "long enough pw"}, "organization"},
		{"unknown org", accounts.NewUser{OrganizationID: 999999, Email: "x@a.test", Role: "HR", Password: "long enough pw"}, "organization"},
		{"short password", accounts.NewUser{OrganizationID: a.ID, Email: "x@a.test", Role: "HR", Password: "short"}, "password"},
	}
	for _, tt := range bad {
		_, err := svc.CreateUser(ctx, admin, tt.in)
		var fe *apperr.FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("%s: err = %v, want a FieldError on %q", tt.name, err, tt.field)
		}
	}
	u, err := svc.CreateUser(ctx, admin, accounts.NewUser{OrganizationID: a.ID, Email: "HR@Alpha.test", Role: "HR", Password: "long enough pw"})
	if err != nil {
		t.Fatal(err)
	}
	if u.Email != "hr@alpha.test" {
		t.Fatalf("email not normalised: %q", u.Email)
	}

	// An organisation's admin cannot register a gateway in another
	// organisation: the other organisation is invisible to it.
	orgAdmin := accounts.Actor{Name: "alpha-admin", Tenant: postgres.Tenant{OrganizationID: a.ID, Role: postgres.AppOrgAdmin}}
	_, err = svc.RegisterGateway(ctx, orgAdmin, b.ID, "GW-X", "", time.Hour)
	var fe *apperr.FieldError
	if !errors.As(err, &fe) || fe.Field != "organization" {
		t.Fatalf("cross-organisation registration: err = %v, want organization field error", err)
	}

	reg, err := svc.RegisterGateway(ctx, admin, a.ID, "GW-1", "Head office", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(reg.ProvisioningToken, auth.PrefixProvisioningToken) {
		t.Fatalf("token %q", reg.ProvisioningToken)
	}
	if _, err := svc.RegisterGateway(ctx, admin, a.ID, "GW-1", "", time.Hour); !errors.As(err, &fe) || fe.Field != "serial" {
		t.Fatalf("duplicate serial: err = %v", err)
	}
	// Only the hash is stored, and every operation left an audit row.
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var stored int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM provisioning_tokens WHERE token_hash = $1 AND gateway_id = $2 AND used_at IS NULL`,
		auth.HashSecret(reg.ProvisioningToken), reg.GatewayID).Scan(&stored); err != nil || stored != 1 {
		t.Fatalf("stored token rows = %d, err %v", stored, err)
	}
	var plain int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM provisioning_tokens WHERE encode(token_hash, 'escape') LIKE '%' || $1 || '%'`,
		reg.ProvisioningToken[len(auth.PrefixProvisioningToken):]).Scan(&plain); err != nil || plain != 0 {
		t.Fatalf("token stored in clear: %d, %v", plain, err)
	}
	var audits int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE organization_id = $1`, a.ID).Scan(&audits); err != nil || audits != 3 {
		t.Fatalf("audit rows for org A = %d (err %v), want 3 (create org, create user, register gateway)", audits, err)
	}
	// The audit log is append-only, even for its owner.
	if _, err := conn.Exec(ctx, `UPDATE audit_log SET action = 'x'`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("update of audit_log: err = %v, want append-only refusal", err)
	}
}

// TestResetPassword: the platform ADMIN and the user's organisation
// administrator may reset a password (the new one verifies, the audit
// row is written); another organisation's administrator finds no such
// user and HR is refused, changing nothing.
func TestResetPassword(t *testing.T) {
	t.Parallel()
	svc, adminURL := newService(t)
	ctx := context.Background()
	a, err := svc.CreateOrganization(ctx, admin, "Alpha", "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := svc.CreateOrganization(ctx, admin, "Beta", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateUser(ctx, admin, accounts.NewUser{OrganizationID: a.ID, Email: "hr@alpha.test", Role: "HR", Password: "long enough pw"}); err != nil {
		t.Fatal(err)
	}
	hashOf := func() string {
		conn, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var h string
		if err := conn.QueryRow(ctx, `SELECT password_hash FROM users WHERE email = 'hr@alpha.test'`).Scan(&h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	if _, err := svc.ResetPassword(ctx, admin, "HR@alpha.test", "a new long password"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := auth.VerifyPassword(hashOf(), "a new long password"); !ok {
		t.Fatal("the new password does not verify")
	}
	orgAdmin := func(org int64) accounts.Actor {
		return accounts.Actor{Name: "oa", Tenant: postgres.Tenant{OrganizationID: org, Role: postgres.AppOrgAdmin}}
	}
	// Row-level security: Beta's administrator sees no such user.
	if _, err := svc.ResetPassword(ctx, orgAdmin(b.ID), "hr@alpha.test", "another long password"); !errors.Is(err, accounts.ErrNotFound) {
		t.Fatalf("another organisation's admin: %v", err)
	}
	hr := accounts.Actor{Name: "hr", Tenant: postgres.Tenant{OrganizationID: a.ID, Role: postgres.AppHR}}
	if _, err := svc.ResetPassword(ctx, hr, "hr@alpha.test", "another long password"); apperr.CodeOf(err) != apperr.Forbidden {
		t.Fatalf("HR: %v", err)
	}
	if _, err := svc.ResetPassword(ctx, orgAdmin(a.ID), "hr@alpha.test", "the org admin's choice"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := auth.VerifyPassword(hashOf(), "the org admin's choice"); !ok {
		t.Fatal("the org admin's password does not verify")
	}
	if _, err := svc.ResetPassword(ctx, admin, "hr@alpha.test", "short"); apperr.CodeOf(err) != apperr.Invalid {
		t.Fatalf("short password: %v", err)
	}
}

// TestUpdateUser: role changes keep the link a scope needs; a stale
// version is refused; nobody changes their own role or disables
// themself; reads and lists see the actor's organisation only.
func TestUpdateUser(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	ctx := context.Background()
	o, err := svc.CreateOrganization(ctx, admin, "Initech", "")
	if err != nil {
		t.Fatal(err)
	}
	other, err := svc.CreateOrganization(ctx, admin, "Globex", "")
	if err != nil {
		t.Fatal(err)
	}
	boss, err := svc.CreateUser(ctx, admin, accounts.NewUser{OrganizationID: o.ID, Email: "boss@initech.test", Role: "ORG_ADMIN", Password: "a long enough password"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateUser(ctx, admin, accounts.NewUser{OrganizationID: other.ID, Email: "x@globex.test", Role: "HR", Password: "a long enough password"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateUser(ctx, admin, accounts.NewUser{OrganizationID: o.ID, Email: "lead@initech.test", Role: "DEPARTMENT_LEAD", Password: "a long enough password"}); !isField(err, "department_id") {
		t.Fatalf("lead without department: %v", err)
	}
	u, err := svc.CreateUser(ctx, admin, accounts.NewUser{OrganizationID: o.ID, Email: "hr@initech.test", Role: "HR", Password: "a long enough password"})
	if err != nil || !u.Active || u.UpdatedAt.IsZero() {
		t.Fatalf("created %+v %v", u, err)
	}
	bossActor := accounts.Actor{Name: "boss", UserID: boss.ID, Tenant: postgres.Tenant{OrganizationID: o.ID, Role: postgres.AppOrgAdmin, UserID: boss.ID}}
	role := "EMPLOYEE"
	if _, err := svc.UpdateUser(ctx, bossActor, u.ID, accounts.UserChange{Role: &role}, u.Version()); !isField(err, "employee_id") {
		t.Fatalf("employee without a record: %v", err)
	}
	role = "ORG_ADMIN"
	u2, err := svc.UpdateUser(ctx, bossActor, u.ID, accounts.UserChange{Role: &role}, u.Version())
	if err != nil || u2.Role != postgres.AppOrgAdmin || u2.Version() == u.Version() {
		t.Fatalf("promote: %+v %v", u2, err)
	}
	if _, err := svc.UpdateUser(ctx, bossActor, u.ID, accounts.UserChange{Role: &role}, u.Version()); !errors.Is(err, accounts.ErrStale) {
		t.Fatalf("stale: %v", err)
	}
	role = "HR"
	if _, err := svc.UpdateUser(ctx, bossActor, boss.ID, accounts.UserChange{Role: &role}, 0); apperr.As(err) == nil || apperr.As(err).Code != apperr.Forbidden {
		t.Fatalf("own role: %v", err)
	}
	off := false
	if _, err := svc.UpdateUser(ctx, bossActor, boss.ID, accounts.UserChange{Active: &off}, 0); apperr.As(err) == nil || apperr.As(err).Code != apperr.Forbidden {
		t.Fatalf("disable oneself: %v", err)
	}
	if u2, err = svc.UpdateUser(ctx, bossActor, u.ID, accounts.UserChange{Active: &off}, 0); err != nil || u2.Active {
		t.Fatalf("disable: %+v %v", u2, err)
	}
	list, err := svc.ListUsers(ctx, bossActor, accounts.UserFilter{Limit: 10})
	if err != nil || len(list) != 2 {
		t.Fatalf("initech's users: %+v %v", list, err)
	}
	list, err = svc.ListUsers(ctx, bossActor, accounts.UserFilter{Limit: 10, Active: &off})
	if err != nil || len(list) != 1 || list[0].ID != u.ID {
		t.Fatalf("disabled users: %+v %v", list, err)
	}
	otherActor := accounts.Actor{Name: "x", Tenant: postgres.Tenant{OrganizationID: other.ID, Role: postgres.AppOrgAdmin}}
	if _, err := svc.UserByID(ctx, otherActor, u.ID); !errors.Is(err, accounts.ErrNotFound) {
		t.Fatalf("globex reads initech's user: %v", err)
	}
	if _, err := svc.UpdateUser(ctx, otherActor, u.ID, accounts.UserChange{Active: &off}, 0); !errors.Is(err, accounts.ErrNotFound) {
		t.Fatalf("globex disables initech's user: %v", err)
	}
}

func isField(err error, field string) bool {
	var fe *apperr.FieldError
	return errors.As(err, &fe) && fe.Field == field
}
