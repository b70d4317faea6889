package directory

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/directory/directorydb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// Employee is a person of an organisation, with the identities that tie
// monitoring data to them. Version is the row's version (the ETag).
type Employee struct {
	ID             int64
	OrganizationID int64
	DepartmentID   *int64
	EmployeeNumber string
	FirstName      string
	LastName       string
	Email          *string
	Position       *string
	Status         string // active, inactive
	Version        int64
	CreatedAt      time.Time
	UpdatedAt      time.Time
	Identities     []Identity
}

// Identity is one of an employee's identities: Kind is one of the Kind
// constants (windows_sid, computer, card_number, employee_number), Value
// unique per organisation and kind.
type Identity struct {
	ID    int64
	Kind  string
	Value string
}

// EmployeeInput is what CreateEmployee and UpdateEmployee write: every
// field (an update replaces all of them, identities included). Strings are
// trimmed; an empty Status is "active"; an empty Email or Position is none;
// a Windows SID is upper-cased.
type EmployeeInput struct {
	DepartmentID   *int64
	EmployeeNumber string
	FirstName      string
	LastName       string
	Email          *string
	Position       *string
	Status         string
	Identities     []IdentityInput
}

// IdentityInput is an identity to store: its kind and value.
type IdentityInput struct {
	Kind  string
	Value string
}

// EmployeeFilter narrows ListEmployees. Zero values filter nothing.
type EmployeeFilter struct {
	// DepartmentID keeps the employees of this department (field
	// "department_id": it must be visible).
	DepartmentID int64
	// IncludeSubdepartments widens DepartmentID to its whole subtree.
	IncludeSubdepartments bool
	// Status keeps active or inactive employees (field "status").
	Status string
	// Query keeps employees whose employee number, e-mail or "first last"
	// name contains it, case-insensitively (at most MaxQueryLen
	// characters, field "query").
	Query string
}

// EmployeeSorts are the sort orders of ListEmployees (Page.Sort), the
// first the default; each ties on the id.
var employeeSorts = []sortSpec{
	{"last_name", sortText}, {"-last_name", sortText},
	{"employee_number", sortText}, {"-employee_number", sortText},
	{"created_at", sortTime}, {"-created_at", sortTime},
	{"id", sortID}, {"-id", sortID},
}

// EmployeeSorts lists the sort orders ListEmployees accepts, the default
// first.
func EmployeeSorts() []string { return sortNames(employeeSorts) }

func sortNames(sorts []sortSpec) []string {
	out := make([]string, len(sorts))
	for i, s := range sorts {
		out[i] = s.name
	}
	return out
}

// employeeFields are the audited fields of an employee, in order.
var employeeFields = []string{"department_id", "employee_number", "first_name", "last_name", "email", "position", "status", "identities"}

// fields is e's audited fields by name.
func (e Employee) fields() map[string]any {
	ids := make([]map[string]string, len(e.Identities))
	for i, id := range e.Identities {
		ids[i] = map[string]string{"kind": id.Kind, "value": id.Value}
	}
	return map[string]any{"department_id": e.DepartmentID, "employee_number": e.EmployeeNumber, "first_name": e.FirstName,
		"last_name": e.LastName, "email": e.Email, "position": e.Position, "status": e.Status, "identities": ids}
}

func employeeFrom(r directorydb.Employee) Employee {
	return Employee{ID: r.ID, OrganizationID: r.OrganizationID, DepartmentID: r.DepartmentID, EmployeeNumber: r.EmployeeNumber,
		FirstName: r.FirstName, LastName: r.LastName, Email: r.Email, Position: r.Position, Status: r.Status,
		Version: r.RowVersion, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, Identities: []Identity{}}
}

// ListEmployees returns one page of the employees visible to t matching f,
// and the cursor of the next page ("" after the last). Pages are keyset
// pages: rows inserted or deleted meanwhile never make the next page
// repeat or skip a row that existed throughout.
func (s *Service) ListEmployees(ctx context.Context, db postgres.Beginner, t postgres.Tenant, f EmployeeFilter, p Page) ([]Employee, string, error) {
	var errs apperr.FieldErrors
	if f.DepartmentID < 0 {
		errs = append(errs, apperr.Field("department_id", "must be a department's id"))
	}
	if f.Status != "" && !validStatus(f.Status) {
		errs = append(errs, apperr.Field("status", "must be active or inactive"))
	}
	query := strings.TrimSpace(f.Query)
	if utf8.RuneCountInString(query) > MaxQueryLen || !utf8.ValidString(query) {
		errs = append(errs, apperr.Field("query", "must be valid text of at most %d characters", MaxQueryLen))
	}
	args, err := parsePage(p, employeeSorts)
	if err != nil {
		var fe apperr.FieldErrors
		errors.As(err, &fe)
		errs = append(errs, fe...)
	}
	if len(errs) > 0 {
		return nil, "", errs
	}
	var out []Employee
	next := ""
	err = postgres.InTenant(ctx, db, t, func(tx pgx.Tx) error {
		q := directorydb.New(tx)
		params := directorydb.ListEmployeesByLastNameParams{Status: f.Status, Pattern: likePattern(query), RowLimit: args.fetchN}
		if f.DepartmentID > 0 {
			if _, err := q.DepartmentByID(ctx, f.DepartmentID); errors.Is(err, pgx.ErrNoRows) {
				return apperr.Field("department_id", "department %d not found", f.DepartmentID)
			} else if err != nil {
				return fmt.Errorf("look up department: %w", err)
			}
			params.ByDepartment, params.DepartmentIds = true, []int64{f.DepartmentID}
			if f.IncludeSubdepartments {
				ids, err := q.DepartmentSubtree(ctx, f.DepartmentID)
				if err != nil {
					return fmt.Errorf("department subtree: %w", err)
				}
				params.DepartmentIds = ids
			}
		}
		if c := args.after; c != nil {
			params.HasCursor, params.AfterText, params.AfterID = true, c.Text, c.ID
		}
		rows, err := listEmployees(ctx, q, args, params)
		if err != nil {
			return fmt.Errorf("list employees: %w", err)
		}
		if len(rows) > args.limit {
			rows = rows[:args.limit]
			last := rows[len(rows)-1]
			c := cursor{Sort: args.sort.name, ID: last.ID}
			switch strings.TrimPrefix(args.sort.name, "-") {
			case "last_name":
				c.Text = last.LastName
			case "employee_number":
				c.Text = last.EmployeeNumber
			case "created_at":
				c.Time = last.CreatedAt.UnixMicro()
			}
			next = encodeCursor(c)
		}
		out = make([]Employee, len(rows))
		for i, r := range rows {
			out[i] = employeeFrom(r)
		}
		return withIdentities(ctx, q, out)
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// listEmployees runs the list statement of the sort.
func listEmployees(ctx context.Context, q *directorydb.Queries, a pageArgs, p directorydb.ListEmployeesByLastNameParams) ([]directorydb.Employee, error) {
	var at time.Time
	if a.after != nil && a.sort.kind == sortTime {
		at = a.after.afterTime()
	}
	byTime := directorydb.ListEmployeesByCreatedAtParams{ByDepartment: p.ByDepartment, DepartmentIds: p.DepartmentIds, Status: p.Status,
		Pattern: p.Pattern, HasCursor: p.HasCursor, AfterTime: at, AfterID: p.AfterID, RowLimit: p.RowLimit}
	byID := directorydb.ListEmployeesByIDParams{ByDepartment: p.ByDepartment, DepartmentIds: p.DepartmentIds, Status: p.Status,
		Pattern: p.Pattern, HasCursor: p.HasCursor, AfterID: p.AfterID, RowLimit: p.RowLimit}
	switch a.sort.name {
	case "last_name":
		return q.ListEmployeesByLastName(ctx, p)
	case "-last_name":
		return q.ListEmployeesByLastNameDesc(ctx, directorydb.ListEmployeesByLastNameDescParams(p))
	case "employee_number":
		return q.ListEmployeesByEmployeeNumber(ctx, directorydb.ListEmployeesByEmployeeNumberParams(p))
	case "-employee_number":
		return q.ListEmployeesByEmployeeNumberDesc(ctx, directorydb.ListEmployeesByEmployeeNumberDescParams(p))
	case "created_at":
		return q.ListEmployeesByCreatedAt(ctx, byTime)
	case "-created_at":
		return q.ListEmployeesByCreatedAtDesc(ctx, directorydb.ListEmployeesByCreatedAtDescParams(byTime))
	case "id":
		return q.ListEmployeesByID(ctx, byID)
	case "-id":
		return q.ListEmployeesByIDDesc(ctx, directorydb.ListEmployeesByIDDescParams(byID))
	}
	return nil, fmt.Errorf("no statement for sort %q", a.sort.name)
}

// withIdentities fills the identities of the employees (one query).
func withIdentities(ctx context.Context, q *directorydb.Queries, emps []Employee) error {
	if len(emps) == 0 {
		return nil
	}
	ids := make([]int64, len(emps))
	at := make(map[int64]int, len(emps))
	for i, e := range emps {
		ids[i] = e.ID
		at[e.ID] = i
	}
	rows, err := q.IdentitiesOf(ctx, ids)
	if err != nil {
		return fmt.Errorf("identities: %w", err)
	}
	for _, r := range rows {
		if i, ok := at[r.EmployeeID]; ok {
			emps[i].Identities = append(emps[i].Identities, Identity{ID: r.ID, Kind: r.Kind, Value: r.Value})
		}
	}
	return nil
}

// GetEmployee returns the employee with its identities; NotFound when it
// does not exist or t cannot see it.
func (s *Service) GetEmployee(ctx context.Context, db postgres.Beginner, t postgres.Tenant, id int64) (Employee, error) {
	var e Employee
	err := postgres.InTenant(ctx, db, t, func(tx pgx.Tx) error {
		var err error
		e, err = getEmployee(ctx, directorydb.New(tx), id, false)
		return err
	})
	return e, err
}

func getEmployee(ctx context.Context, q *directorydb.Queries, id int64, lock bool) (Employee, error) {
	get := q.EmployeeByID
	if lock {
		get = q.EmployeeForUpdate
	}
	r, err := get(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return Employee{}, notFound("employee", id)
	}
	if err != nil {
		return Employee{}, fmt.Errorf("read employee %d: %w", id, err)
	}
	e := []Employee{employeeFrom(r)}
	if err := withIdentities(ctx, q, e); err != nil {
		return Employee{}, err
	}
	return e[0], nil
}

// CreateEmployee creates an employee of t's organisation with its
// identities. t must name an organisation (field "organization_id"
// otherwise: a platform ADMIN acts in one organisation's context).
func (s *Service) CreateEmployee(ctx context.Context, db postgres.Beginner, t postgres.Tenant, in EmployeeInput) (Employee, error) {
	in, err := in.normalize()
	if err != nil {
		return Employee{}, err
	}
	if t.OrganizationID <= 0 {
		return Employee{}, apperr.Field("organization_id", "an employee is created in an organisation's context")
	}
	var e Employee
	err = postgres.InTenant(ctx, db, t, func(tx pgx.Tx) error {
		q := directorydb.New(tx)
		if err := departmentUsable(ctx, q, in.DepartmentID, t.OrganizationID); err != nil {
			return err
		}
		r, err := q.CreateEmployee(ctx, directorydb.CreateEmployeeParams{OrganizationID: t.OrganizationID, DepartmentID: in.DepartmentID,
			EmployeeNumber: in.EmployeeNumber, FirstName: in.FirstName, LastName: in.LastName, Email: in.Email, Position: in.Position,
			Status: in.Status})
		if err != nil {
			return employeeWriteError(err, in)
		}
		e = employeeFrom(r)
		if err := insertIdentities(ctx, q, &e, in.Identities); err != nil {
			return err
		}
		return audit(ctx, tx, e.OrganizationID, "create", "employee", e.ID, diffFields(employeeFields, nil, e.fields()))
	})
	if err != nil {
		return Employee{}, err
	}
	return e, nil
}

// UpdateEmployee replaces every field of the employee (identities
// included) if its version is still ifVersion: ErrStale (nothing written)
// when it moved on, NotFound when the employee does not exist or t cannot
// see it.
func (s *Service) UpdateEmployee(ctx context.Context, db postgres.Beginner, t postgres.Tenant, id, ifVersion int64, in EmployeeInput) (Employee, error) {
	in, err := in.normalize()
	if err != nil {
		return Employee{}, err
	}
	if err := checkVersion(ifVersion); err != nil {
		return Employee{}, err
	}
	var e Employee
	err = postgres.InTenant(ctx, db, t, func(tx pgx.Tx) error {
		q := directorydb.New(tx)
		old, err := getEmployee(ctx, q, id, true)
		if err != nil {
			return err
		}
		if old.Version != ifVersion {
			return stale("employee", id, ifVersion, old.Version)
		}
		if err := departmentUsable(ctx, q, in.DepartmentID, old.OrganizationID); err != nil {
			return err
		}
		r, err := q.UpdateEmployee(ctx, directorydb.UpdateEmployeeParams{ID: id, DepartmentID: in.DepartmentID,
			EmployeeNumber: in.EmployeeNumber, FirstName: in.FirstName, LastName: in.LastName, Email: in.Email, Position: in.Position,
			Status: in.Status})
		if errors.Is(err, pgx.ErrNoRows) {
			return apperr.New(apperr.Forbidden, "", "your role may not change employee %d", id)
		}
		if err != nil {
			return employeeWriteError(err, in)
		}
		e = employeeFrom(r)
		if err := q.DeleteIdentities(ctx, id); err != nil {
			return writeRefused(fmt.Errorf("replace identities: %w", err), "identities")
		}
		if err := insertIdentities(ctx, q, &e, in.Identities); err != nil {
			return err
		}
		return audit(ctx, tx, e.OrganizationID, "update", "employee", id, diffFields(employeeFields, old.fields(), e.fields()))
	})
	if err != nil {
		return Employee{}, err
	}
	return e, nil
}

// DeleteEmployee deletes the employee and its identities if its version is
// still ifVersion (ErrStale otherwise; NotFound when it does not exist or
// t cannot see it; Conflict when a dashboard user is linked to it).
func (s *Service) DeleteEmployee(ctx context.Context, db postgres.Beginner, t postgres.Tenant, id, ifVersion int64) error {
	if err := checkVersion(ifVersion); err != nil {
		return err
	}
	return postgres.InTenant(ctx, db, t, func(tx pgx.Tx) error {
		q := directorydb.New(tx)
		old, err := getEmployee(ctx, q, id, true)
		if err != nil {
			return err
		}
		if old.Version != ifVersion {
			return stale("employee", id, ifVersion, old.Version)
		}
		n, err := q.DeleteEmployee(ctx, id)
		if pe := pgError(err); pe != nil && pe.Code == foreignKeyViolation {
			return &apperr.Error{Code: apperr.Conflict, Message: fmt.Sprintf("employee %d is linked to a dashboard user: unlink or delete the user first", id), Err: err}
		}
		if err != nil {
			return writeRefused(fmt.Errorf("delete employee %d: %w", id, err), "this employee")
		}
		if n == 0 {
			return apperr.New(apperr.Forbidden, "", "your role may not delete employee %d", id)
		}
		return audit(ctx, tx, old.OrganizationID, "delete", "employee", id, diffFields(employeeFields, old.fields(), nil))
	})
}

// departmentUsable checks that an employee's department exists, is
// visible and belongs to the organisation (a field error otherwise, not a
// foreign key's failure).
func departmentUsable(ctx context.Context, q *directorydb.Queries, id *int64, orgID int64) error {
	if id == nil {
		return nil
	}
	ok, err := q.DepartmentInOrganization(ctx, directorydb.DepartmentInOrganizationParams{ID: *id, OrganizationID: orgID})
	if err != nil {
		return fmt.Errorf("look up department %d: %w", *id, err)
	}
	if !ok {
		return apperr.Field("department_id", "department %d not found", *id)
	}
	return nil
}

// insertIdentities stores the identities of e (in order, so that a
// duplicate names its index) and appends them to e.
func insertIdentities(ctx context.Context, q *directorydb.Queries, e *Employee, ids []IdentityInput) error {
	for i, in := range ids {
		id, err := q.InsertIdentity(ctx, directorydb.InsertIdentityParams{OrganizationID: e.OrganizationID, EmployeeID: e.ID,
			Kind: in.Kind, Value: in.Value})
		if pe := pgError(err); pe != nil && pe.Code == uniqueViolation {
			field := fmt.Sprintf("identities/%d/value", i)
			return &apperr.Error{Code: apperr.Conflict, Field: field,
				Message: fmt.Sprintf("another employee has the %s %q", in.Kind, in.Value), Err: err}
		}
		if err != nil {
			return writeRefused(fmt.Errorf("insert identity %d: %w", i, err), "identities")
		}
		e.Identities = append(e.Identities, Identity{ID: id, Kind: in.Kind, Value: in.Value})
	}
	return nil
}

// employeeWriteError maps the failure of an employee's insert or update.
func employeeWriteError(err error, in EmployeeInput) error {
	pe := pgError(err)
	switch {
	case pe != nil && pe.Code == uniqueViolation && pe.ConstraintName == "employees_organization_id_employee_number_key":
		return &apperr.Error{Code: apperr.Conflict, Field: "employee_number",
			Message: fmt.Sprintf("another employee has the number %q", in.EmployeeNumber), Err: err}
	case pe != nil && pe.Code == foreignKeyViolation:
		return &apperr.Error{Code: apperr.Invalid, Field: "department_id", Message: "department not found", Err: err}
	}
	return writeRefused(fmt.Errorf("write employee: %w", err), "employees")
}
