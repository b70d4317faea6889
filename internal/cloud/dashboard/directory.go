package dashboard

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/directory"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// Departments and employees (the directory package does the work; every
// call runs under the caller's tenant context, so a department lead reads
// their subtree and an employee themself, by row-level security).

// directoryRoutes adds the directory's routes to the table.
func (a *api) directoryRoutes() {
	a.handle("GET", "/api/v2/departments", everyone, a.listDepartments)
	a.handle("GET", "/api/v2/departments/tree", everyone, a.departmentTree)
	a.handle("POST", "/api/v2/departments", peopleAdmins, a.createDepartment)
	a.handle("GET", "/api/v2/departments/{id}", everyone, a.getDepartment)
	a.handle("PUT", "/api/v2/departments/{id}", peopleAdmins, a.updateDepartment)
	a.handle("DELETE", "/api/v2/departments/{id}", peopleAdmins, a.deleteDepartment)
	a.handle("GET", "/api/v2/employees", everyone, a.listEmployees)
	a.handle("POST", "/api/v2/employees", peopleAdmins, a.createEmployee)
	a.handle("GET", "/api/v2/employees/{id}", everyone, a.getEmployee)
	a.handle("PUT", "/api/v2/employees/{id}", peopleAdmins, a.updateEmployee)
	a.handle("DELETE", "/api/v2/employees/{id}", peopleAdmins, a.deleteEmployee)
}

// department is a department on the wire.
type department struct {
	ID             int64     `json:"id"`
	OrganizationID int64     `json:"organization_id"`
	ParentID       *int64    `json:"parent_id"`
	Name           string    `json:"name"`
	Version        int64     `json:"version"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

func departmentOf(d directory.Department) department {
	return department{ID: d.ID, OrganizationID: d.OrganizationID, ParentID: d.ParentID, Name: d.Name, Version: d.Version,
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
}

// departmentNode is a department of the tree with its children.
type departmentNode struct {
	department
	Children []departmentNode `json:"children"`
}

func nodesOf(ns []directory.DepartmentNode) []departmentNode {
	out := make([]departmentNode, 0, len(ns))
	for _, n := range ns {
		out = append(out, departmentNode{department: departmentOf(n.Department), Children: nodesOf(n.Children)})
	}
	return out
}

// departmentInput is the body of a department's create or update.
type departmentInput struct {
	ParentID *int64 `json:"parent_id"`
	Name     string `json:"name"`
	// OrganizationID names the organisation a platform ADMIN creates in;
	// anyone else's is their own.
	OrganizationID *int64 `json:"organization_id,omitempty"`
}

// forWrite returns the tenant a create runs under: the caller's, or for a
// platform ADMIN the organisation the body names. Anyone else naming an
// organisation not theirs is refused.
func (c *caller) forWrite(org *int64) (postgres.Tenant, error) {
	t := c.tenant
	if org == nil {
		return t, nil
	}
	if t.Role == postgres.AppAdmin {
		t.OrganizationID = *org
		return t, nil
	}
	if *org != t.OrganizationID {
		return t, apperr.Field("organization_id", "leave it out: you act in your own organisation")
	}
	return t, nil
}

// listParams maps the directory's page and filter errors to the query
// parameters that carry them.
func listParams(err error) error {
	var fe *apperr.FieldError
	var fes apperr.FieldErrors
	switch {
	case errors.As(err, &fes) && len(fes) > 0:
		fe = fes[0]
	case errors.As(err, &fe):
	default:
		return err
	}
	field := fe.Field
	if field == "query" {
		field = "q"
	}
	return inParams(apperr.New(apperr.Invalid, field, "%s", fe.Message))
}

func (a *api) listDepartments(w http.ResponseWriter, r *http.Request, c *caller) error {
	p, err := pageOf(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := directory.DepartmentFilter{Query: q.Get("q")}
	if v := q.Get("parent_id"); v != "" {
		f.Parent = true
		if v != "root" {
			id, err := queryInt64(r, "parent_id")
			if err != nil {
				return err
			}
			f.ParentID = &id
		}
	}
	ds, next, err := directory.New().ListDepartments(r.Context(), c.db, c.tenant, f,
		directory.Page{Limit: p.Limit, Cursor: p.Cursor, Sort: p.Sort})
	if err != nil {
		return listParams(err)
	}
	out := make([]department, 0, len(ds))
	for _, d := range ds {
		out = append(out, departmentOf(d))
	}
	writeJSON(w, http.StatusOK, newList(out, next))
	return nil
}

func (a *api) departmentTree(w http.ResponseWriter, r *http.Request, c *caller) error {
	ns, err := directory.New().DepartmentTree(r.Context(), c.db, c.tenant)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": nodesOf(ns)})
	return nil
}

func (a *api) getDepartment(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	d, err := directory.New().GetDepartment(r.Context(), c.db, c.tenant, id)
	if err != nil {
		return err
	}
	writeVersioned(w, http.StatusOK, d.Version, departmentOf(d))
	return nil
}

func (a *api) createDepartment(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in departmentInput
	if err := a.decode(r, &in); err != nil {
		return err
	}
	t, err := c.forWrite(in.OrganizationID)
	if err != nil {
		return err
	}
	d, err := directory.New().CreateDepartment(r.Context(), c.db, t, directory.DepartmentInput{ParentID: in.ParentID, Name: in.Name})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v2/departments/"+strconv.FormatInt(d.ID, 10))
	writeVersioned(w, http.StatusCreated, d.Version, departmentOf(d))
	return nil
}

func (a *api) updateDepartment(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	version, err := ifMatch(r)
	if err != nil {
		return err
	}
	var in departmentInput
	if err := a.decode(r, &in); err != nil {
		return err
	}
	if in.OrganizationID != nil {
		return apperr.Field("organization_id", "a department cannot move to another organisation")
	}
	d, err := directory.New().UpdateDepartment(r.Context(), c.db, c.tenant, id, version, directory.DepartmentInput{ParentID: in.ParentID, Name: in.Name})
	if err != nil {
		return staleAs(err, "department")
	}
	writeVersioned(w, http.StatusOK, d.Version, departmentOf(d))
	return nil
}

func (a *api) deleteDepartment(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	version, err := ifMatch(r)
	if err != nil {
		return err
	}
	if err := directory.New().DeleteDepartment(r.Context(), c.db, c.tenant, id, version); err != nil {
		return staleAs(err, "department")
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// staleAs answers the directory's version mismatch as 412.
func staleAs(err error, what string) error {
	if errors.Is(err, directory.ErrStale) {
		return stale(what)
	}
	return err
}

// employee is an employee on the wire, with their identities.
type employee struct {
	ID             int64      `json:"id"`
	OrganizationID int64      `json:"organization_id"`
	DepartmentID   *int64     `json:"department_id"`
	EmployeeNumber string     `json:"employee_number"`
	FirstName      string     `json:"first_name"`
	LastName       string     `json:"last_name"`
	Email          *string    `json:"email"`
	Position       *string    `json:"position"`
	Status         string     `json:"status"`
	Identities     []identity `json:"identities"`
	Version        int64      `json:"version"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

// identity is one of an employee's identities.
type identity struct {
	ID    int64  `json:"id,omitempty"`
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

func employeeOf(e directory.Employee) employee {
	ids := make([]identity, 0, len(e.Identities))
	for _, i := range e.Identities {
		ids = append(ids, identity{ID: i.ID, Kind: i.Kind, Value: i.Value})
	}
	return employee{ID: e.ID, OrganizationID: e.OrganizationID, DepartmentID: e.DepartmentID, EmployeeNumber: e.EmployeeNumber,
		FirstName: e.FirstName, LastName: e.LastName, Email: e.Email, Position: e.Position, Status: e.Status, Identities: ids,
		Version: e.Version, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
}

// employeeInput is the body of an employee's create or update (an update
// replaces every field, identities included).
type employeeInput struct {
	OrganizationID *int64          `json:"organization_id,omitempty"`
	DepartmentID   *int64          `json:"department_id"`
	EmployeeNumber string          `json:"employee_number"`
	FirstName      string          `json:"first_name"`
	LastName       string          `json:"last_name"`
	Email          *string         `json:"email"`
	Position       *string         `json:"position"`
	Status         string          `json:"status"`
	Identities     []identityInput `json:"identities"`
}

// identityInput is an identity to store.
type identityInput struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

func (in employeeInput) directory() directory.EmployeeInput {
	out := directory.EmployeeInput{DepartmentID: in.DepartmentID, EmployeeNumber: in.EmployeeNumber, FirstName: in.FirstName,
		LastName: in.LastName, Email: in.Email, Position: in.Position, Status: in.Status}
	for _, i := range in.Identities {
		out.Identities = append(out.Identities, directory.IdentityInput{Kind: i.Kind, Value: i.Value})
	}
	return out
}

func (a *api) listEmployees(w http.ResponseWriter, r *http.Request, c *caller) error {
	p, err := pageOf(r)
	if err != nil {
		return err
	}
	dept, err := queryInt64(r, "department_id")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := directory.EmployeeFilter{DepartmentID: dept, Status: q.Get("status"), Query: q.Get("q")}
	switch v := q.Get("include_subdepartments"); v {
	case "", "false":
	case "true":
		f.IncludeSubdepartments = true
	default:
		return inParams(apperr.New(apperr.Invalid, "include_subdepartments", "include_subdepartments must be true or false"))
	}
	es, next, err := directory.New().ListEmployees(r.Context(), c.db, c.tenant, f, directory.Page{Limit: p.Limit, Cursor: p.Cursor, Sort: p.Sort})
	if err != nil {
		return listParams(err)
	}
	out := make([]employee, 0, len(es))
	for _, e := range es {
		out = append(out, employeeOf(e))
	}
	writeJSON(w, http.StatusOK, newList(out, next))
	return nil
}

func (a *api) getEmployee(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	e, err := directory.New().GetEmployee(r.Context(), c.db, c.tenant, id)
	if err != nil {
		return err
	}
	writeVersioned(w, http.StatusOK, e.Version, employeeOf(e))
	return nil
}

func (a *api) createEmployee(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in employeeInput
	if err := a.decode(r, &in); err != nil {
		return err
	}
	t, err := c.forWrite(in.OrganizationID)
	if err != nil {
		return err
	}
	e, err := directory.New().CreateEmployee(r.Context(), c.db, t, in.directory())
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v2/employees/"+strconv.FormatInt(e.ID, 10))
	writeVersioned(w, http.StatusCreated, e.Version, employeeOf(e))
	return nil
}

func (a *api) updateEmployee(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	version, err := ifMatch(r)
	if err != nil {
		return err
	}
	var in employeeInput
	if err := a.decode(r, &in); err != nil {
		return err
	}
	if in.OrganizationID != nil {
		return apperr.Field("organization_id", "an employee cannot move to another organisation")
	}
	e, err := directory.New().UpdateEmployee(r.Context(), c.db, c.tenant, id, version, in.directory())
	if err != nil {
		return staleAs(err, "employee")
	}
	writeVersioned(w, http.StatusOK, e.Version, employeeOf(e))
	return nil
}

func (a *api) deleteEmployee(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	version, err := ifMatch(r)
	if err != nil {
		return err
	}
	if err := directory.New().DeleteEmployee(r.Context(), c.db, c.tenant, id, version); err != nil {
		return staleAs(err, "employee")
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
