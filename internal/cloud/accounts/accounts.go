// Package accounts manages who exists on the platform: organisations,
// dashboard users and the registration of gateways (with their one-time
// provisioning tokens). Every operation runs through postgres.InTenant on
// behalf of an Actor, so row-level security applies, and leaves an
// audit_log row.
package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts/accountsdb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// ErrNotFound means the row does not exist or is not visible to the actor;
// the two are deliberately indistinguishable.
var ErrNotFound = errors.New("not found")

// Actor is who performs an operation: a name for the audit log and the
// tenant context the operation runs in.
type Actor struct {
	Name   string
	UserID int64
	Tenant postgres.Tenant
}

// tenant is the actor's tenant context, carrying its name and user id
// (signed, so audit rows can be stamped from it).
func (a Actor) tenant() postgres.Tenant {
	t := a.Tenant
	if t.Actor == "" {
		t.Actor = a.Name
	}
	if t.UserID == 0 {
		t.UserID = a.UserID
	}
	return t
}

// Service performs account operations against PostgreSQL.
type Service struct {
	db  *pgxpool.Pool
	now func() time.Time
}

// New returns a Service using db. now is the clock (time.Now in production).
func New(db *pgxpool.Pool, now func() time.Time) *Service {
	return &Service{db: db, now: now}
}

// Organization is a customer organisation. RowVersion is the row's
// version (the ETag), moved on by every update.
type Organization struct {
	ID         int64
	Name       string
	Slug       string
	CreatedAt  time.Time
	RowVersion int64
}

// validSlug checks the shape of an organisation slug (also checked in SQL):
// 1-63 lower-case letters, digits or hyphens, not starting with a hyphen.
func validSlug(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// Slugify derives a slug from a name: lower case ASCII letters and digits,
// runs of anything else turned into one hyphen.
func Slugify(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.TrimRight(b.String(), "-")
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-")
	}
	return s
}

// CreateOrganization creates an organisation. An empty slug is derived
// from the name.
func (s *Service) CreateOrganization(ctx context.Context, actor Actor, name, slug string) (Organization, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return Organization{}, &apperr.FieldError{Field: "name", Message: "is required"}
	}
	if utf8.RuneCountInString(name) > 255 {
		return Organization{}, &apperr.FieldError{Field: "name", Message: "must be at most 255 characters"}
	}
	if slug == "" {
		slug = Slugify(name)
	}
	if !validSlug(slug) {
		return Organization{}, &apperr.FieldError{Field: "slug", Message: "must be 1-63 lower-case letters, digits or hyphens, starting with a letter or digit"}
	}
	var o Organization
	err := postgres.InTenant(ctx, s.db, actor.tenant(), func(tx pgx.Tx) error {
		r, err := accountsdb.New(tx).CreateOrganization(ctx, accountsdb.CreateOrganizationParams{Name: name, Slug: slug})
		o = Organization(r)
		if isUniqueViolation(err) {
			return &apperr.FieldError{Field: "slug", Message: fmt.Sprintf("an organisation with slug %q exists already", slug)}
		}
		if err != nil {
			return fmt.Errorf("insert organisation: %w", err)
		}
		return audit(ctx, tx, o.ID, "create", "organization", fmt.Sprint(o.ID), map[string]any{"name": name, "slug": slug})
	})
	return o, err
}

// OrganizationBySlug finds an organisation visible to the actor.
func (s *Service) OrganizationBySlug(ctx context.Context, actor Actor, slug string) (Organization, error) {
	var o Organization
	err := postgres.InTenant(ctx, s.db, actor.tenant(), func(tx pgx.Tx) error {
		r, err := accountsdb.New(tx).OrganizationBySlug(ctx, slug)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		o = Organization(r)
		return err
	})
	return o, err
}

// OrganizationByID finds an organisation visible to the actor; one it may
// not see is ErrNotFound, like one that does not exist.
func (s *Service) OrganizationByID(ctx context.Context, actor Actor, id int64) (Organization, error) {
	var o Organization
	err := postgres.InTenant(ctx, s.db, actor.tenant(), func(tx pgx.Tx) error {
		r, err := accountsdb.New(tx).OrganizationByID(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		o = Organization(r)
		return err
	})
	return o, err
}

// RenameOrganization renames organisation id when it is still at
// version (the ETag the caller read): ErrNotFound when the actor cannot
// see it, ErrStale when it changed since, Forbidden when the actor's role
// may not (row-level security). An audit row records it.
func (s *Service) RenameOrganization(ctx context.Context, actor Actor, id int64, name string, version int64) (Organization, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return Organization{}, &apperr.FieldError{Field: "name", Message: "is required"}
	case utf8.RuneCountInString(name) > 255:
		return Organization{}, &apperr.FieldError{Field: "name", Message: "must be at most 255 characters"}
	}
	var o Organization
	err := postgres.InTenant(ctx, s.db, actor.tenant(), func(tx pgx.Tx) error {
		q := accountsdb.New(tx)
		old, err := q.OrganizationByID(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("read organisation: %w", err)
		}
		if old.RowVersion != version {
			return ErrStale
		}
		r, err := q.RenameOrganization(ctx, accountsdb.RenameOrganizationParams{Name: name, ID: id, RowVersion: version})
		if errors.Is(err, pgx.ErrNoRows) {
			// Visible at this version, yet not updated: changed in between,
			// or row-level security refuses this role the write.
			if r := actor.tenant().Role; r != postgres.AppAdmin && r != postgres.AppOrgAdmin {
				return apperr.New(apperr.Forbidden, "", "only the organisation's administrator may rename it")
			}
			return ErrStale
		}
		if err != nil {
			return fmt.Errorf("rename organisation: %w", err)
		}
		o = Organization(r)
		return audit(ctx, tx, id, "rename", "organization", fmt.Sprint(id), map[string]any{"old": old.Name, "new": name})
	})
	return o, err
}

// ListOrganizations lists the organisations visible to the actor.
func (s *Service) ListOrganizations(ctx context.Context, actor Actor) ([]Organization, error) {
	var out []Organization
	err := postgres.InTenant(ctx, s.db, actor.tenant(), func(tx pgx.Tx) error {
		rows, err := accountsdb.New(tx).ListOrganizations(ctx)
		if err != nil {
			return err
		}
		out = make([]Organization, 0, len(rows))
		for _, r := range rows {
			out = append(out, Organization(r))
		}
		return nil
	})
	return out, err
}

// User is a dashboard user.
type User struct {
	ID             int64
	OrganizationID int64 // 0 for a platform ADMIN
	Email          string
	Role           postgres.AppRole
	// DepartmentID is a DEPARTMENT_LEAD's department (0: none).
	DepartmentID int64
	// EmployeeID is an EMPLOYEE's own employee record (0: none).
	EmployeeID  int64
	Active      bool
	LastLoginAt *time.Time
	CreatedAt   time.Time
	// UpdatedAt is when the user last changed; its microseconds are the
	// user's version (Version).
	UpdatedAt time.Time
}

// Version is the user's version for optimistic concurrency (the
// microseconds of UpdatedAt until users carry a version column).
func (u User) Version() int64 { return u.UpdatedAt.UnixMicro() }

// NewUser is the input of CreateUser.
type NewUser struct {
	OrganizationID int64
	Email          string
	Role           string
	Password       string
	// DepartmentID is the department a DEPARTMENT_LEAD leads (required
	// for that role, 0 otherwise allowed).
	DepartmentID int64
	// EmployeeID links an EMPLOYEE to their employee record (required for
	// that role).
	EmployeeID int64
}

// CreateUser creates a dashboard user. A platform ADMIN has no
// organisation; every other role needs one.
func (s *Service) CreateUser(ctx context.Context, actor Actor, in NewUser) (User, error) {
	email := strings.ToLower(strings.TrimSpace(in.Email))
	if email == "" {
		return User{}, &apperr.FieldError{Field: "email", Message: "is required"}
	}
	if addr, err := mail.ParseAddress(email); err != nil || addr.Address != email || len(email) > 255 {
		return User{}, &apperr.FieldError{Field: "email", Message: fmt.Sprintf("%q is not a valid e-mail address", in.Email)}
	}
	role, err := postgres.ParseAppRole(in.Role)
	if err != nil {
		return User{}, &apperr.FieldError{Field: "role", Message: err.Error()}
	}
	switch {
	case role == postgres.AppAdmin && in.OrganizationID != 0:
		return User{}, &apperr.FieldError{Field: "organization", Message: "a platform ADMIN belongs to no organisation; leave it out"}
	case role != postgres.AppAdmin && in.OrganizationID == 0:
		return User{}, &apperr.FieldError{Field: "organization", Message: "is required for role " + string(role)}
	}
	if err := roleLinks(role, in.DepartmentID, in.EmployeeID); err != nil {
		return User{}, err
	}
	hash, err := auth.HashPassword(in.Password)
	if err != nil {
		return User{}, &apperr.FieldError{Field: "password", Message: err.Error()}
	}
	u := User{OrganizationID: in.OrganizationID, Email: email, Role: role, DepartmentID: in.DepartmentID, EmployeeID: in.EmployeeID}
	err = postgres.InTenant(ctx, s.db, actor.tenant(), func(tx pgx.Tx) error {
		if in.OrganizationID != 0 {
			if err := orgVisible(ctx, tx, in.OrganizationID); err != nil {
				return err
			}
		}
		var org *int64
		if in.OrganizationID != 0 {
			org = &in.OrganizationID
		}
		var err error
		q := accountsdb.New(tx)
		u.ID, err = q.CreateUser(ctx, accountsdb.CreateUserParams{OrganizationID: org, Email: email, PasswordHash: hash,
			Role: string(role), DepartmentID: optID(in.DepartmentID), EmployeeID: optID(in.EmployeeID)})
		if isUniqueViolation(err) {
			return &apperr.FieldError{Field: "email", Message: fmt.Sprintf("a user with e-mail %q exists already", email)}
		}
		if err := linkViolation(err); err != nil {
			return err
		}
		if err != nil {
			return fmt.Errorf("insert user: %w", err)
		}
		r, err := q.GetUser(ctx, u.ID)
		if err != nil {
			return fmt.Errorf("read the new user: %w", err)
		}
		u = userOf(accountsdb.LockUserRow(r))
		return audit(ctx, tx, in.OrganizationID, "create", "user", fmt.Sprint(u.ID), map[string]any{"email": email, "role": role,
			"department_id": optID(in.DepartmentID), "employee_id": optID(in.EmployeeID)})
	})
	return u, err
}

// ErrStale means the row changed since the version the caller read.
var ErrStale = errors.New("accounts: changed since read")

// roleLinks checks that a role has the link its scope needs: a
// DEPARTMENT_LEAD their department, an EMPLOYEE their employee record.
func roleLinks(role postgres.AppRole, departmentID, employeeID int64) error {
	switch {
	case role == postgres.AppDepartmentLead && departmentID <= 0:
		return &apperr.FieldError{Field: "department_id", Message: "is required for a DEPARTMENT_LEAD (the department they lead)"}
	case role == postgres.AppEmployee && employeeID <= 0:
		return &apperr.FieldError{Field: "employee_id", Message: "is required for an EMPLOYEE (their employee record)"}
	case departmentID < 0:
		return &apperr.FieldError{Field: "department_id", Message: "must be a positive id"}
	case employeeID < 0:
		return &apperr.FieldError{Field: "employee_id", Message: "must be a positive id"}
	}
	return nil
}

// linkViolation names the field of a foreign-key violation on a user's
// department or employee (one of another organisation is as unknown as a
// missing one); nil for any other error.
func linkViolation(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23503" {
		return nil
	}
	switch {
	case strings.Contains(pgErr.ConstraintName, "department"):
		return &apperr.FieldError{Field: "department_id", Message: "no such department in the user's organisation"}
	case strings.Contains(pgErr.ConstraintName, "employee"):
		return &apperr.FieldError{Field: "employee_id", Message: "no such employee in the user's organisation"}
	}
	return nil
}

func optID(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func userOf(r accountsdb.LockUserRow) User {
	return User{ID: r.ID, OrganizationID: deref(r.OrganizationID), Email: r.Email, Role: postgres.AppRole(r.Role),
		DepartmentID: deref(r.DepartmentID), EmployeeID: deref(r.EmployeeID), Active: r.IsActive, LastLoginAt: r.LastLoginAt,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

// UserByID reads a user visible to the actor (ErrNotFound otherwise).
func (s *Service) UserByID(ctx context.Context, actor Actor, id int64) (User, error) {
	var u User
	err := postgres.InTenant(ctx, s.db, actor.tenant(), func(tx pgx.Tx) error {
		r, err := accountsdb.New(tx).GetUser(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		u = userOf(accountsdb.LockUserRow(r))
		return err
	})
	return u, err
}

// UserFilter selects a page of users: after AfterID by id, at most Limit,
// of Role and Active when set.
type UserFilter struct {
	AfterID int64
	Limit   int
	Role    postgres.AppRole
	Active  *bool
}

// ListUsers lists one page of the users visible to the actor, by id.
func (s *Service) ListUsers(ctx context.Context, actor Actor, f UserFilter) ([]User, error) {
	var role *string
	if f.Role != "" {
		r := string(f.Role)
		role = &r
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 1000
	}
	var out []User
	err := postgres.InTenant(ctx, s.db, actor.tenant(), func(tx pgx.Tx) error {
		rows, err := accountsdb.New(tx).ListUsers(ctx, accountsdb.ListUsersParams{AfterID: f.AfterID, Role: role, IsActive: f.Active,
			MaxRows: int32(f.Limit)})
		if err != nil {
			return err
		}
		out = make([]User, 0, len(rows))
		for _, r := range rows {
			out = append(out, userOf(accountsdb.LockUserRow(r)))
		}
		return nil
	})
	return out, err
}

// UserChange is a change to a user; nil members are left as they are.
// DepartmentID and EmployeeID set to 0 clear the link.
type UserChange struct {
	Role         *string
	DepartmentID *int64
	EmployeeID   *int64
	Active       *bool
}

// UpdateUser applies a change to a user visible to the actor if the user
// is still at version (0: whatever its version). A role change must keep
// the link its scope needs; nobody changes their own role or disables
// themself (apperr.Forbidden naming the field); a platform ADMIN's role
// is not changed here, nor is anyone made ADMIN. ErrNotFound, ErrStale.
func (s *Service) UpdateUser(ctx context.Context, actor Actor, id int64, ch UserChange, version int64) (User, error) {
	self := actor.UserID != 0 && actor.UserID == id || actor.Tenant.UserID != 0 && actor.Tenant.UserID == id
	var u User
	err := postgres.InTenant(ctx, s.db, actor.tenant(), func(tx pgx.Tx) error {
		q := accountsdb.New(tx)
		r, err := q.LockUser(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		old := userOf(r)
		if version != 0 && old.Version() != version {
			return ErrStale
		}
		next := old
		details := map[string]any{}
		if ch.Role != nil {
			role, err := postgres.ParseAppRole(*ch.Role)
			if err != nil {
				return &apperr.FieldError{Field: "role", Message: err.Error()}
			}
			if role != old.Role {
				switch {
				case self:
					return apperr.New(apperr.Forbidden, "role", "you cannot change your own role")
				case role == postgres.AppAdmin || old.Role == postgres.AppAdmin:
					return &apperr.FieldError{Field: "role", Message: "platform ADMIN is neither granted nor taken away here (staffctl user)"}
				}
				next.Role = role
				details["role"] = map[string]any{"old": old.Role, "new": role}
			}
		}
		if ch.DepartmentID != nil && *ch.DepartmentID != old.DepartmentID {
			next.DepartmentID = *ch.DepartmentID
			details["department_id"] = map[string]any{"old": optID(old.DepartmentID), "new": optID(next.DepartmentID)}
		}
		if ch.EmployeeID != nil && *ch.EmployeeID != old.EmployeeID {
			next.EmployeeID = *ch.EmployeeID
			details["employee_id"] = map[string]any{"old": optID(old.EmployeeID), "new": optID(next.EmployeeID)}
		}
		if ch.Active != nil && *ch.Active != old.Active {
			if self && !*ch.Active {
				return apperr.New(apperr.Forbidden, "active", "you cannot disable yourself")
			}
			next.Active = *ch.Active
			details["active"] = map[string]any{"old": old.Active, "new": next.Active}
		}
		if len(details) == 0 {
			u = old
			return nil
		}
		if details["role"] != nil || details["department_id"] != nil || details["employee_id"] != nil {
			if err := roleLinks(next.Role, next.DepartmentID, next.EmployeeID); err != nil {
				return err
			}
		}
		next.UpdatedAt, err = q.UpdateUser(ctx, accountsdb.UpdateUserParams{ID: id, Role: string(next.Role), DepartmentID: optID(next.DepartmentID),
			EmployeeID: optID(next.EmployeeID), IsActive: next.Active})
		if err := linkViolation(err); err != nil {
			return err
		}
		if err != nil {
			return fmt.Errorf("update user: %w", err)
		}
		u = next
		action := "update"
		if len(details) == 1 && ch.Active != nil && details["active"] != nil {
			action = map[bool]string{true: "enable", false: "disable"}[next.Active]
		}
		return audit(ctx, tx, old.OrganizationID, action, "user", fmt.Sprint(id), details)
	})
	return u, err
}

// ResetPassword sets the password of the user with email, as an
// administrator does for someone who lost theirs, and ends every session of
// that user (their tokens were minted under the old password). A user the
// actor cannot see is ErrNotFound; an actor who may not end the user's
// sessions (not their organisation's administrator, nor the platform
// ADMIN) changes nothing and gets apperr Forbidden.
func (s *Service) ResetPassword(ctx context.Context, actor Actor, email, password string) (User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if r := actor.tenant().Role; r != postgres.AppAdmin && r != postgres.AppOrgAdmin {
		return User{}, apperr.New(apperr.Forbidden, "", "only the user's organisation administrator or a platform ADMIN may reset a password")
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		return User{}, &apperr.FieldError{Field: "password", Message: err.Error()}
	}
	var u User
	err = postgres.InTenant(ctx, s.db, actor.tenant(), func(tx pgx.Tx) error {
		q := accountsdb.New(tx)
		r, err := q.SetPassword(ctx, accountsdb.SetPasswordParams{PasswordHash: hash, Email: email})
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("set password: %w", err)
		}
		u = User{ID: r.ID, Email: r.Email, Role: postgres.AppRole(r.Role)}
		if r.OrganizationID != nil {
			u.OrganizationID = *r.OrganizationID
		}
		n, err := q.EndUserSessions(ctx, r.ID)
		if err != nil {
			return fmt.Errorf("end sessions: %w", err)
		}
		if n < 0 {
			return apperr.New(apperr.Forbidden, "", "only the user's organisation administrator or a platform ADMIN may reset a password")
		}
		return audit(ctx, tx, u.OrganizationID, "reset_password", "user", fmt.Sprint(u.ID), map[string]any{"sessions_ended": n})
	})
	return u, err
}

// Registration is a gateway registered and waiting for its first start.
type Registration struct {
	GatewayID         uuid.UUID
	OrganizationID    int64
	Serial            string
	ProvisioningToken string // shown once; only its hash is stored
	ExpiresAt         time.Time
}

// RegisterGateway creates a gateway record in state "provisioning" and a
// one-time provisioning token valid for ttl, which the gateway exchanges for
// its API key on first start.
func (s *Service) RegisterGateway(ctx context.Context, actor Actor, orgID int64, serial, name string, ttl time.Duration) (Registration, error) {
	serial = strings.TrimSpace(serial)
	switch {
	case orgID <= 0:
		return Registration{}, &apperr.FieldError{Field: "organization", Message: "is required"}
	case serial == "":
		return Registration{}, &apperr.FieldError{Field: "serial", Message: "is required"}
	case len(serial) > 255:
		return Registration{}, &apperr.FieldError{Field: "serial", Message: "must be at most 255 characters"}
	case len(name) > 255:
		return Registration{}, &apperr.FieldError{Field: "name", Message: "must be at most 255 characters"}
	case ttl < time.Minute || ttl > 30*24*time.Hour:
		return Registration{}, &apperr.FieldError{Field: "ttl", Message: "must be between 1m and 720h"}
	}
	token, hash, err := auth.NewSecret(auth.PrefixProvisioningToken)
	if err != nil {
		return Registration{}, err
	}
	r := Registration{OrganizationID: orgID, Serial: serial, ProvisioningToken: token, ExpiresAt: s.now().Add(ttl).UTC().Truncate(time.Second)}
	err = postgres.InTenant(ctx, s.db, actor.tenant(), func(tx pgx.Tx) error {
		if err := orgVisible(ctx, tx, orgID); err != nil {
			return err
		}
		var nameArg *string
		if name != "" {
			nameArg = &name
		}
		q := accountsdb.New(tx)
		var err error
		r.GatewayID, err = q.CreateGateway(ctx, accountsdb.CreateGatewayParams{OrganizationID: orgID, Serial: serial, Name: nameArg})
		if isUniqueViolation(err) {
			return &apperr.FieldError{Field: "serial", Message: fmt.Sprintf("a gateway with serial %q is registered already in this organisation", serial)}
		}
		if err != nil {
			return fmt.Errorf("insert gateway: %w", err)
		}
		if err := q.CreateProvisioningToken(ctx, accountsdb.CreateProvisioningTokenParams{OrganizationID: orgID, GatewayID: r.GatewayID,
			TokenHash: hash, ExpiresAt: r.ExpiresAt, CreatedBy: actor.Name}); err != nil {
			return fmt.Errorf("insert provisioning token: %w", err)
		}
		return audit(ctx, tx, orgID, "register", "gateway", r.GatewayID.String(), map[string]any{"serial": serial, "expires_at": r.ExpiresAt})
	})
	return r, err
}

func orgVisible(ctx context.Context, tx pgx.Tx, orgID int64) error {
	exists, err := accountsdb.New(tx).OrganizationExists(ctx, orgID)
	if err != nil {
		return fmt.Errorf("look up organisation: %w", err)
	}
	if !exists {
		return &apperr.FieldError{Field: "organization", Message: fmt.Sprintf("organisation %d does not exist", orgID)}
	}
	return nil
}

// audit appends an audit row through app.audit(), which stamps the
// organisation, user and actor from the verified tenant context (the
// runtime roles cannot insert audit rows themselves); orgID names the
// organisation acted on, which only an all-organisations context may set
// to another than its own.
func audit(ctx context.Context, tx pgx.Tx, orgID int64, action, resource, id string, details map[string]any) error {
	var org *int64
	if orgID != 0 {
		org = &orgID
	}
	b, err := json.Marshal(details)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if err := accountsdb.New(tx).Audit(ctx, accountsdb.AuditParams{OrganizationID: org, Action: action, Resource: resource,
		ResourceID: id, Details: b}); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// GatewayInOrganization tells whether gateway id belongs to organisation
// orgID, as the tenant t sees it.
func (s *Service) GatewayInOrganization(ctx context.Context, t postgres.Tenant, orgID int64, id uuid.UUID) (bool, error) {
	var belongs bool
	err := postgres.InTenant(ctx, s.db, t, func(tx pgx.Tx) error {
		var err error
		belongs, err = accountsdb.New(tx).GatewayInOrganization(ctx, accountsdb.GatewayInOrganizationParams{ID: id, OrganizationID: orgID})
		return err
	})
	return belongs, err
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// ErrRevoked means the gateway is revoked already.
var ErrRevoked = errors.New("gateway revoked already")

// Revocation is what RevokeGateway did.
type Revocation struct {
	GatewayID      uuid.UUID
	OrganizationID int64
	Serial         string
	// CancelledCommands is how many unfinished commands were cancelled.
	CancelledCommands int64
}

// RevokeGateway revokes a gateway for good, in one transaction: its API
// key (and a pending rotation's key, and its provisioning token) stop
// working at once, its unfinished commands are cancelled, its control
// socket is closed (the gateway_instances_revoked_notify trigger), and an
// audit row records it. ErrNotFound: no such gateway the actor may see;
// ErrRevoked: revoked already.
func (s *Service) RevokeGateway(ctx context.Context, actor Actor, id uuid.UUID) (Revocation, error) {
	r := Revocation{GatewayID: id}
	err := postgres.InTenant(ctx, s.db, actor.tenant(), func(tx pgx.Tx) error {
		q := accountsdb.New(tx)
		row, err := q.RevokeGateway(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			_, err := q.GatewayRevokedAt(ctx, id)
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrNotFound
			}
			if err != nil {
				return fmt.Errorf("look up gateway: %w", err)
			}
			return ErrRevoked
		}
		if err != nil {
			return fmt.Errorf("revoke gateway: %w", err)
		}
		r.OrganizationID, r.Serial = row.OrganizationID, row.Serial
		if r.CancelledCommands, err = q.CancelGatewayCommands(ctx, id); err != nil {
			return fmt.Errorf("cancel the gateway's commands: %w", err)
		}
		return audit(ctx, tx, r.OrganizationID, "revoke", "gateway", id.String(),
			map[string]any{"serial": r.Serial, "cancelled_commands": r.CancelledCommands})
	})
	return r, err
}
