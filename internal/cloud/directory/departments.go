package directory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/directory/directorydb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// Department is a unit of an organisation; departments form a tree
// (ParentID nil for a root). Version is the row's version (the ETag).
type Department struct {
	ID             int64
	OrganizationID int64
	ParentID       *int64
	Name           string
	Version        int64
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// DepartmentNode is a department of the tree with its children, sorted by
// name.
type DepartmentNode struct {
	Department
	Children []DepartmentNode
}

// DepartmentInput is what CreateDepartment and UpdateDepartment write.
// Name is unique per organisation (trimmed, 1-255 characters).
type DepartmentInput struct {
	ParentID *int64
	Name     string
}

// DepartmentFilter narrows ListDepartments. Zero values filter nothing.
type DepartmentFilter struct {
	// Parent keeps the children of ParentID (nil: the roots) when set.
	Parent   bool
	ParentID *int64
	// Query keeps departments whose name contains it, case-insensitively
	// (at most MaxQueryLen characters, field "query").
	Query string
}

// MaxTreeDepartments bounds DepartmentTree (and so an organisation's
// departments the tree can show).
const MaxTreeDepartments = 10000

var departmentSorts = []sortSpec{
	{"name", sortText}, {"-name", sortText},
	{"created_at", sortTime}, {"-created_at", sortTime},
	{"id", sortID}, {"-id", sortID},
}

// DepartmentSorts lists the sort orders ListDepartments accepts, the
// default first.
func DepartmentSorts() []string { return sortNames(departmentSorts) }

var departmentFields = []string{"parent_id", "name"}

func (d Department) fields() map[string]any {
	return map[string]any{"parent_id": d.ParentID, "name": d.Name}
}

func departmentFrom(r directorydb.Department) Department {
	return Department{ID: r.ID, OrganizationID: r.OrganizationID, ParentID: r.ParentID, Name: r.Name, Version: r.RowVersion,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

// ListDepartments returns one page of the departments visible to t
// matching f, and the cursor of the next page ("" after the last).
func (s *Service) ListDepartments(ctx context.Context, db postgres.Beginner, t postgres.Tenant, f DepartmentFilter, p Page) ([]Department, string, error) {
	var errs apperr.FieldErrors
	query := strings.TrimSpace(f.Query)
	if utf8.RuneCountInString(query) > MaxQueryLen || !utf8.ValidString(query) {
		errs = append(errs, apperr.Field("query", "must be valid text of at most %d characters", MaxQueryLen))
	}
	args, err := parsePage(p, departmentSorts)
	if err != nil {
		var fe apperr.FieldErrors
		errors.As(err, &fe)
		errs = append(errs, fe...)
	}
	if len(errs) > 0 {
		return nil, "", errs
	}
	var out []Department
	next := ""
	err = postgres.InTenant(ctx, db, t, func(tx pgx.Tx) error {
		q := directorydb.New(tx)
		p := directorydb.ListDepartmentsByNameParams{ByParent: f.Parent, ParentID: f.ParentID, Pattern: likePattern(query), RowLimit: args.fetchN}
		if c := args.after; c != nil {
			p.HasCursor, p.AfterText, p.AfterID = true, c.Text, c.ID
		}
		var at time.Time
		if args.after != nil && args.sort.kind == sortTime {
			at = args.after.afterTime()
		}
		byTime := directorydb.ListDepartmentsByCreatedAtParams{ByParent: p.ByParent, ParentID: p.ParentID, Pattern: p.Pattern,
			HasCursor: p.HasCursor, AfterTime: at, AfterID: p.AfterID, RowLimit: p.RowLimit}
		byID := directorydb.ListDepartmentsByIDParams{ByParent: p.ByParent, ParentID: p.ParentID, Pattern: p.Pattern,
			HasCursor: p.HasCursor, AfterID: p.AfterID, RowLimit: p.RowLimit}
		var rows []directorydb.Department
		var err error
		switch args.sort.name {
		case "name":
			rows, err = q.ListDepartmentsByName(ctx, p)
		case "-name":
			rows, err = q.ListDepartmentsByNameDesc(ctx, directorydb.ListDepartmentsByNameDescParams(p))
		case "created_at":
			rows, err = q.ListDepartmentsByCreatedAt(ctx, byTime)
		case "-created_at":
			rows, err = q.ListDepartmentsByCreatedAtDesc(ctx, directorydb.ListDepartmentsByCreatedAtDescParams(byTime))
		case "id":
			rows, err = q.ListDepartmentsByID(ctx, byID)
		case "-id":
			rows, err = q.ListDepartmentsByIDDesc(ctx, directorydb.ListDepartmentsByIDDescParams(byID))
		default:
			err = fmt.Errorf("no statement for sort %q", args.sort.name)
		}
		if err != nil {
			return fmt.Errorf("list departments: %w", err)
		}
		if len(rows) > args.limit {
			rows = rows[:args.limit]
			last := rows[len(rows)-1]
			c := cursor{Sort: args.sort.name, ID: last.ID}
			switch args.sort.kind {
			case sortText:
				c.Text = last.Name
			case sortTime:
				c.Time = last.CreatedAt.UnixMicro()
			}
			next = encodeCursor(c)
		}
		out = make([]Department, len(rows))
		for i, r := range rows {
			out[i] = departmentFrom(r)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// GetDepartment returns the department; NotFound when it does not exist or
// t cannot see it.
func (s *Service) GetDepartment(ctx context.Context, db postgres.Beginner, t postgres.Tenant, id int64) (Department, error) {
	var d Department
	err := postgres.InTenant(ctx, db, t, func(tx pgx.Tx) error {
		var err error
		d, err = getDepartment(ctx, directorydb.New(tx), id, false)
		return err
	})
	return d, err
}

func getDepartment(ctx context.Context, q *directorydb.Queries, id int64, lock bool) (Department, error) {
	get := q.DepartmentByID
	if lock {
		get = q.DepartmentForUpdate
	}
	r, err := get(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return Department{}, notFound("department", id)
	}
	if err != nil {
		return Department{}, fmt.Errorf("read department %d: %w", id, err)
	}
	return departmentFrom(r), nil
}

// CreateDepartment creates a department of t's organisation (t must name
// one: field "organization_id"), under ParentID when set (field
// "parent_id": it must exist and be visible). A duplicate name is a
// Conflict naming "name".
func (s *Service) CreateDepartment(ctx context.Context, db postgres.Beginner, t postgres.Tenant, in DepartmentInput) (Department, error) {
	in, err := in.normalize()
	if err != nil {
		return Department{}, err
	}
	if t.OrganizationID <= 0 {
		return Department{}, apperr.Field("organization_id", "a department is created in an organisation's context")
	}
	var d Department
	err = postgres.InTenant(ctx, db, t, func(tx pgx.Tx) error {
		q := directorydb.New(tx)
		if err := parentUsable(ctx, q, in.ParentID, t.OrganizationID); err != nil {
			return err
		}
		r, err := q.CreateDepartment(ctx, directorydb.CreateDepartmentParams{OrganizationID: t.OrganizationID, ParentID: in.ParentID, Name: in.Name})
		if err != nil {
			return departmentWriteError(err, in)
		}
		d = departmentFrom(r)
		return audit(ctx, tx, d.OrganizationID, "create", "department", d.ID, diffFields(departmentFields, nil, d.fields()))
	})
	if err != nil {
		return Department{}, err
	}
	return d, nil
}

// UpdateDepartment renames or moves the department if its version is
// still ifVersion (ErrStale otherwise, nothing written). A move under
// itself or one of its descendants is refused (field "parent_id"); moves
// within an organisation are serialised so that two concurrent moves
// cannot make a cycle together.
func (s *Service) UpdateDepartment(ctx context.Context, db postgres.Beginner, t postgres.Tenant, id, ifVersion int64, in DepartmentInput) (Department, error) {
	in, err := in.normalize()
	if err != nil {
		return Department{}, err
	}
	if err := checkVersion(ifVersion); err != nil {
		return Department{}, err
	}
	var d Department
	err = postgres.InTenant(ctx, db, t, func(tx pgx.Tx) error {
		q := directorydb.New(tx)
		old, err := getDepartment(ctx, q, id, false)
		if err != nil {
			return err
		}
		// A move locks the organisation's tree first (all its rows, in id
		// order, so that two moves queue rather than deadlock), then reads
		// the row again under the lock.
		move := !samePtr(old.ParentID, in.ParentID)
		if move {
			if err := q.LockDepartmentTree(ctx, old.OrganizationID); err != nil {
				return writeRefused(fmt.Errorf("lock the department tree: %w", err), "departments")
			}
		}
		if old, err = getDepartment(ctx, q, id, true); err != nil {
			return err
		}
		if old.Version != ifVersion {
			return stale("department", id, ifVersion, old.Version)
		}
		if move {
			if err := parentUsable(ctx, q, in.ParentID, old.OrganizationID); err != nil {
				return err
			}
			if in.ParentID != nil {
				sub, err := q.DepartmentSubtree(ctx, id)
				if err != nil {
					return fmt.Errorf("department subtree: %w", err)
				}
				if slices.Contains(sub, *in.ParentID) {
					return apperr.Field("parent_id", "department %d is %d itself or one of its sub-departments: the tree would have a cycle", *in.ParentID, id)
				}
			}
		}
		r, err := q.UpdateDepartment(ctx, directorydb.UpdateDepartmentParams{ID: id, ParentID: in.ParentID, Name: in.Name})
		if errors.Is(err, pgx.ErrNoRows) {
			return apperr.New(apperr.Forbidden, "", "your role may not change department %d", id)
		}
		if err != nil {
			return departmentWriteError(err, in)
		}
		d = departmentFrom(r)
		return audit(ctx, tx, d.OrganizationID, "update", "department", id, diffFields(departmentFields, old.fields(), d.fields()))
	})
	if err != nil {
		return Department{}, err
	}
	return d, nil
}

// DeleteDepartment deletes the department if its version is still
// ifVersion (ErrStale otherwise). A department with sub-departments or
// employees, or one a dashboard user is attached to, is not deleted: a
// Conflict (move or delete them first); nothing cascades.
func (s *Service) DeleteDepartment(ctx context.Context, db postgres.Beginner, t postgres.Tenant, id, ifVersion int64) error {
	if err := checkVersion(ifVersion); err != nil {
		return err
	}
	return postgres.InTenant(ctx, db, t, func(tx pgx.Tx) error {
		q := directorydb.New(tx)
		old, err := getDepartment(ctx, q, id, true)
		if err != nil {
			return err
		}
		if old.Version != ifVersion {
			return stale("department", id, ifVersion, old.Version)
		}
		dep, err := q.DepartmentDependents(ctx, id)
		if err != nil {
			return fmt.Errorf("department %d dependents: %w", id, err)
		}
		if dep.Children > 0 || dep.Employees > 0 {
			return apperr.New(apperr.Conflict, "", "department %d has %d sub-departments and %d employees: move or delete them first",
				id, dep.Children, dep.Employees)
		}
		n, err := q.DeleteDepartment(ctx, id)
		if pe := pgError(err); pe != nil && pe.Code == foreignKeyViolation {
			return &apperr.Error{Code: apperr.Conflict, Message: fmt.Sprintf("department %d is still in use (sub-departments, employees or dashboard users)", id), Err: err}
		}
		if err != nil {
			return writeRefused(fmt.Errorf("delete department %d: %w", id, err), "this department")
		}
		if n == 0 {
			return apperr.New(apperr.Forbidden, "", "your role may not delete department %d", id)
		}
		return audit(ctx, tx, old.OrganizationID, "delete", "department", id, diffFields(departmentFields, old.fields(), nil))
	})
}

// DepartmentTree returns the departments visible to t as a forest: each
// department under its parent, a department whose parent t cannot see (a
// lead's own department) at the top; siblings sorted by name. At most
// MaxTreeDepartments departments (TooLarge beyond).
func (s *Service) DepartmentTree(ctx context.Context, db postgres.Beginner, t postgres.Tenant) ([]DepartmentNode, error) {
	var rows []directorydb.Department
	err := postgres.InTenant(ctx, db, t, func(tx pgx.Tx) error {
		var err error
		rows, err = directorydb.New(tx).AllDepartments(ctx, MaxTreeDepartments+1)
		if err != nil {
			return fmt.Errorf("read departments: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(rows) > MaxTreeDepartments {
		return nil, apperr.New(apperr.TooLarge, "", "more than %d departments: list them page by page", MaxTreeDepartments)
	}
	return buildTree(rows), nil
}

// buildTree nests rows (sorted by name) under their parents. Rows whose
// parent is absent are roots; a cycle (impossible through this package,
// but rows are data) is broken by showing its members as roots.
func buildTree(rows []directorydb.Department) []DepartmentNode {
	present := make(map[int64]bool, len(rows))
	for _, r := range rows {
		present[r.ID] = true
	}
	children := make(map[int64][]directorydb.Department)
	var roots []directorydb.Department
	for _, r := range rows {
		if r.ParentID != nil && present[*r.ParentID] && *r.ParentID != r.ID {
			children[*r.ParentID] = append(children[*r.ParentID], r)
		} else {
			roots = append(roots, r)
		}
	}
	placed := make(map[int64]bool, len(rows))
	var build func(r directorydb.Department) DepartmentNode
	build = func(r directorydb.Department) DepartmentNode {
		placed[r.ID] = true
		n := DepartmentNode{Department: departmentFrom(r), Children: []DepartmentNode{}}
		for _, c := range children[r.ID] {
			if !placed[c.ID] {
				n.Children = append(n.Children, build(c))
			}
		}
		return n
	}
	out := []DepartmentNode{}
	for _, r := range roots {
		out = append(out, build(r))
	}
	for _, r := range rows { // members of a cycle, unreachable from a root
		if !placed[r.ID] {
			out = append(out, build(r))
		}
	}
	return out
}

// parentUsable checks that a department's parent exists, is visible and
// belongs to the organisation.
func parentUsable(ctx context.Context, q *directorydb.Queries, id *int64, orgID int64) error {
	if id == nil {
		return nil
	}
	ok, err := q.DepartmentInOrganization(ctx, directorydb.DepartmentInOrganizationParams{ID: *id, OrganizationID: orgID})
	if err != nil {
		return fmt.Errorf("look up department %d: %w", *id, err)
	}
	if !ok {
		return apperr.Field("parent_id", "department %d not found", *id)
	}
	return nil
}

// departmentWriteError maps the failure of a department's insert or
// update.
func departmentWriteError(err error, in DepartmentInput) error {
	pe := pgError(err)
	switch {
	case pe != nil && pe.Code == uniqueViolation && pe.ConstraintName == "departments_organization_id_name_key":
		return &apperr.Error{Code: apperr.Conflict, Field: "name", Message: fmt.Sprintf("another department is named %q", in.Name), Err: err}
	case pe != nil && pe.Code == foreignKeyViolation:
		return &apperr.Error{Code: apperr.Invalid, Field: "parent_id", Message: "department not found", Err: err}
	}
	return writeRefused(fmt.Errorf("write department: %w", err), "departments")
}

func samePtr(a, b *int64) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}
