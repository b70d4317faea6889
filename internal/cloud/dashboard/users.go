package dashboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// Dashboard users of the caller's organisation, through the accounts
// service (staffctl user creates them the same way): list, get, create
// (with a generated initial password when none is given, answered once),
// change of role and links, disable and enable. Organisation
// administrators only; nobody changes their own role or disables themself.

// userRoutes registers the users routes.
func (a *api) userRoutes() {
	a.handle("GET", "/api/v2/users", orgManagers, a.listUsers)
	a.handle("POST", "/api/v2/users", orgManagers, a.createUser)
	a.handle("GET", "/api/v2/users/{id}", orgManagers, a.getUser)
	a.handle("PATCH", "/api/v2/users/{id}", orgManagers, a.updateUser)
	a.handle("POST", "/api/v2/users/{id}/disable", orgManagers, a.disableUser)
	a.handle("POST", "/api/v2/users/{id}/enable", orgManagers, a.enableUser)
}

// userOut is a dashboard user on the wire (never a password hash).
type userOut struct {
	ID             int64      `json:"id"`
	OrganizationID *int64     `json:"organization_id"`
	Email          string     `json:"email"`
	Role           string     `json:"role"`
	DepartmentID   *int64     `json:"department_id"`
	EmployeeID     *int64     `json:"employee_id"`
	Active         bool       `json:"active"`
	LastLoginAt    *time.Time `json:"last_login_at"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

func optInt(v int64) *int64 {
	if v == 0 {
		return nil
	}
	return &v
}

func userOutOf(u accounts.User) userOut {
	return userOut{ID: u.ID, OrganizationID: optInt(u.OrganizationID), Email: u.Email, Role: string(u.Role),
		DepartmentID: optInt(u.DepartmentID), EmployeeID: optInt(u.EmployeeID), Active: u.Active, LastLoginAt: u.LastLoginAt,
		CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

// userNotFound maps the accounts service's not-found to a 404.
func userNotFound(err error) error {
	if errors.Is(err, accounts.ErrNotFound) {
		return apperr.New(apperr.NotFound, "", "no such user")
	}
	return err
}

func (a *api) listUsers(w http.ResponseWriter, r *http.Request, c *caller) error {
	pg, err := pageOf(r)
	if err != nil {
		return err
	}
	var after struct {
		ID int64 `json:"id"`
	}
	if err := decodeCursor(pg.Cursor, &after); err != nil {
		return err
	}
	f := accounts.UserFilter{AfterID: after.ID, Limit: pg.Limit + 1}
	q := r.URL.Query()
	if v := q.Get("role"); v != "" {
		if f.Role, err = postgres.ParseAppRole(v); err != nil {
			return inParams(apperr.New(apperr.Invalid, "role", "role must be one of ADMIN, ORG_ADMIN, HR, DEPARTMENT_LEAD, EMPLOYEE"))
		}
	}
	if v := q.Get("active"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return inParams(apperr.New(apperr.Invalid, "active", "active must be true or false"))
		}
		f.Active = &b
	}
	us, err := a.accounts(c).ListUsers(r.Context(), c.actor(), f)
	if err != nil {
		return err
	}
	next := ""
	if len(us) > pg.Limit {
		us = us[:pg.Limit]
		next = encodeCursor(map[string]int64{"id": us[len(us)-1].ID})
	}
	out := make([]userOut, 0, len(us))
	for _, u := range us {
		out = append(out, userOutOf(u))
	}
	writeJSON(w, http.StatusOK, newList(out, next))
	return nil
}

func (a *api) getUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	u, err := a.accounts(c).UserByID(r.Context(), c.actor(), id)
	if err != nil {
		return userNotFound(err)
	}
	writeVersioned(w, http.StatusOK, u.Version(), userOutOf(u))
	return nil
}

// newUserRequest is the body of POST /api/v2/users.
type newUserRequest struct {
	Email        string `json:"email"`
	Role         string `json:"role"`
	Password     string `json:"password,omitempty"`
	DepartmentID int64  `json:"department_id,omitempty"`
	EmployeeID   int64  `json:"employee_id,omitempty"`
}

// createdUser is the answer to POST /api/v2/users: the user and, when the
// request gave no password, the generated initial password, shown this
// once (only its hash is stored).
type createdUser struct {
	userOut
	InitialPassword string `json:"initial_password,omitempty"`
}

func (a *api) createUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in newUserRequest
	if err := a.decode(r, &in); err != nil {
		return err
	}
	if c.tenant.OrganizationID == 0 {
		return apperr.New(apperr.Forbidden, "", "a platform ADMIN belongs to no organisation: create users with staffctl user, or as an organisation's administrator")
	}
	if in.Role == string(postgres.AppAdmin) {
		return apperr.New(apperr.Invalid, "role", "a platform ADMIN is created with staffctl user, not here")
	}
	generated := ""
	if in.Password == "" {
		var err error
		if generated, err = auth.NewPassword(); err != nil {
			return err
		}
		in.Password = generated
	}
	u, err := a.accounts(c).CreateUser(r.Context(), c.actor(), accounts.NewUser{OrganizationID: c.tenant.OrganizationID, Email: in.Email,
		Role: in.Role, Password: in.Password, DepartmentID: in.DepartmentID, EmployeeID: in.EmployeeID})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v2/users/"+itoa(u.ID))
	writeVersioned(w, http.StatusCreated, u.Version(), createdUser{userOut: userOutOf(u), InitialPassword: generated})
	return nil
}

// userUpdate is the body of PATCH /api/v2/users/{id}; absent members are
// left as they are, department_id or employee_id null clears the link.
type userUpdate struct {
	Role         *string `json:"role"`
	DepartmentID *int64  `json:"department_id"`
	EmployeeID   *int64  `json:"employee_id"`
}

// link turns a nullable id member into the accounts change: nil when
// absent (keep), 0 when null (clear), else the id.
func link(present bool, v *int64) *int64 {
	if !present {
		return nil
	}
	var id int64
	if v != nil {
		id = *v
	}
	return &id
}

func (a *api) updateUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	version, err := ifMatch(r)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var in userUpdate
	if err := a.decode(r, &in); err != nil {
		return err
	}
	// Which members were sent (null included): decode checked the body.
	var present map[string]json.RawMessage
	if err := json.Unmarshal(body, &present); err != nil {
		return apperr.New(apperr.Invalid, "", "the body must be a JSON object")
	}
	for name, v := range map[string]*int64{"department_id": in.DepartmentID, "employee_id": in.EmployeeID} {
		if v != nil && *v <= 0 {
			return apperr.New(apperr.Invalid, name, "%s must be a positive id, or null to clear it", name)
		}
	}
	_, hasDept := present["department_id"]
	_, hasEmp := present["employee_id"]
	u, err := a.accounts(c).UpdateUser(r.Context(), c.actor(), id,
		accounts.UserChange{Role: in.Role, DepartmentID: link(hasDept, in.DepartmentID), EmployeeID: link(hasEmp, in.EmployeeID)}, version)
	if err != nil {
		return a.userWriteError(r, c, err)
	}
	writeVersioned(w, http.StatusOK, u.Version(), userOutOf(u))
	return nil
}

// userWriteError maps the accounts service's answers to a user change:
// a refused change of one's own account is audited like any refusal.
func (a *api) userWriteError(r *http.Request, c *caller, err error) error {
	switch {
	case errors.Is(err, accounts.ErrStale):
		return stale("user")
	case errors.Is(err, accounts.ErrNotFound):
		return apperr.New(apperr.NotFound, "", "no such user")
	}
	if e := apperr.As(err); e != nil && e.Code == apperr.Forbidden {
		a.deny(r, c, "self", e.Message)
	}
	return err
}

func (a *api) disableUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	return a.setUserActive(w, r, c, false)
}

func (a *api) enableUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	return a.setUserActive(w, r, c, true)
}

// setUserActive disables or enables a user (idempotent, no If-Match: the
// answer is the same whatever the user was).
func (a *api) setUserActive(w http.ResponseWriter, r *http.Request, c *caller, active bool) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if !active && id == c.tenant.UserID {
		a.deny(r, c, "self", "a user tried to disable themself")
		return inParams(apperr.New(apperr.Forbidden, "id", "you cannot disable yourself"))
	}
	u, err := a.accounts(c).UpdateUser(r.Context(), c.actor(), id, accounts.UserChange{Active: &active}, 0)
	if err != nil {
		return a.userWriteError(r, c, err)
	}
	// A disabled user's sessions have ended with the update (migration
	// 00025's trigger; app.session_active checks is_active too), so their
	// access tokens stop working at once.
	writeVersioned(w, http.StatusOK, u.Version(), userOutOf(u))
	return nil
}
