package directory_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/directory"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

func validEmployee(number string) directory.EmployeeInput {
	return directory.EmployeeInput{EmployeeNumber: number, FirstName: "Jane", LastName: "Doe", Email: ptr("jane@example.com")}
}

func TestEmployeeValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mod := func(f func(*directory.EmployeeInput)) directory.EmployeeInput {
		in := validEmployee("V-1")
		in.Identities = []directory.IdentityInput{{Kind: "windows_sid", Value: "S-1-5-21-100"}}
		f(&in)
		return in
	}
	tests := []struct {
		name   string
		in     directory.EmployeeInput
		fields []string
	}{
		{"employee number missing", mod(func(in *directory.EmployeeInput) { in.EmployeeNumber = "  " }), []string{"employee_number"}},
		{"employee number too long", mod(func(in *directory.EmployeeInput) { in.EmployeeNumber = strings.Repeat("9", 65) }), []string{"employee_number"}},
		{"first name missing", mod(func(in *directory.EmployeeInput) { in.FirstName = "" }), []string{"first_name"}},
		{"last name too long", mod(func(in *directory.EmployeeInput) { in.LastName = strings.Repeat("x", 256) }), []string{"last_name"}},
		{"control character", mod(func(in *directory.EmployeeInput) { in.FirstName = "Ja\x00ne" }), []string{"first_name"}},
		{"bad e-mail", mod(func(in *directory.EmployeeInput) { in.Email = ptr("not an address") }), []string{"email"}},
		{"position too long", mod(func(in *directory.EmployeeInput) { in.Position = ptr(strings.Repeat("p", 256)) }), []string{"position"}},
		{"bad status", mod(func(in *directory.EmployeeInput) { in.Status = "fired" }), []string{"status"}},
		{"bad department id", mod(func(in *directory.EmployeeInput) { in.DepartmentID = ptr(int64(-3)) }), []string{"department_id"}},
		{"unknown department", mod(func(in *directory.EmployeeInput) { in.DepartmentID = ptr(int64(999999)) }), []string{"department_id"}},
		{"other organisation's department", mod(func(in *directory.EmployeeInput) { in.DepartmentID = &e.b.DepartmentID }), []string{"department_id"}},
		{"several at once", mod(func(in *directory.EmployeeInput) { in.FirstName, in.LastName, in.Status = "", "", "x" }),
			[]string{"first_name", "last_name", "status"}},
		{"identity kind", mod(func(in *directory.EmployeeInput) {
			in.Identities = append(in.Identities, directory.IdentityInput{Kind: "passport", Value: "X"})
		}), []string{"identities/1/kind"}},
		{"identity value empty", mod(func(in *directory.EmployeeInput) {
			in.Identities = append(in.Identities, directory.IdentityInput{Kind: "computer", Value: " "})
		}), []string{"identities/1/value"}},
		{"SID shape", mod(func(in *directory.EmployeeInput) {
			in.Identities = append(in.Identities, directory.IdentityInput{Kind: "card_number", Value: "42"},
				directory.IdentityInput{Kind: "windows_sid", Value: "S-1-x-21"})
		}), []string{"identities/2/value"}},
		{"SID without sub-authority", mod(func(in *directory.EmployeeInput) { in.Identities[0].Value = "S-1-5" }), []string{"identities/0/value"}},
		{"identity value too long", mod(func(in *directory.EmployeeInput) {
			in.Identities = append(in.Identities, directory.IdentityInput{Kind: "computer", Value: strings.Repeat("c", 256)})
		}), []string{"identities/1/value"}},
		{"identity twice in the input", mod(func(in *directory.EmployeeInput) {
			in.Identities = append(in.Identities, directory.IdentityInput{Kind: "windows_sid", Value: "s-1-5-21-100"})
		}), []string{"identities/1/value"}},
		{"too many identities", mod(func(in *directory.EmployeeInput) {
			for i := range directory.MaxIdentities {
				in.Identities = append(in.Identities, directory.IdentityInput{Kind: "card_number", Value: fmt.Sprint(i)})
			}
		}), []string{"identities"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.svc.CreateEmployee(e.ctx, e.dash, e.hrA, tt.in)
			if apperr.CodeOf(err) != apperr.Invalid || !slices.Equal(fieldsOf(err), tt.fields) {
				t.Errorf("err = %v, want Invalid on %v", err, tt.fields)
			}
			// The same input on an update is refused alike.
			_, err = e.svc.UpdateEmployee(e.ctx, e.dash, e.hrA, e.a.EmployeeID, 1, tt.in)
			if apperr.CodeOf(err) != apperr.Invalid || !slices.Equal(fieldsOf(err), tt.fields) {
				t.Errorf("update: err = %v, want Invalid on %v", err, tt.fields)
			}
		})
	}
	if n := e.one(t, `SELECT count(*)::text FROM employees`); n != "2" {
		t.Errorf("%s employees after refused input, want the 2 seeded", n)
	}
	if v := e.one(t, `SELECT row_version::text FROM employees WHERE id = $1`, e.a.EmployeeID); v != "1" {
		t.Errorf("seeded employee's version %s after refused updates, want 1", v)
	}
	_, err := e.svc.UpdateEmployee(e.ctx, e.dash, e.hrA, e.a.EmployeeID, 0, validEmployee("V-2"))
	wantCode(t, "version 0", err, apperr.Invalid, "version", "")
}

func TestEmployeeRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	in := directory.EmployeeInput{DepartmentID: &e.a.DepartmentID, EmployeeNumber: " E-100 ", FirstName: "Grace", LastName: "Hopper",
		Email: ptr("grace@example.com"), Position: ptr(""), Identities: []directory.IdentityInput{
			{Kind: "windows_sid", Value: "s-1-5-21-7-1001"}, {Kind: "card_number", Value: "0042"}, {Kind: "computer", Value: "PC-GRACE"}}}
	created, err := e.svc.CreateEmployee(e.ctx, e.dash, e.hrA, in)
	if err != nil {
		t.Fatal(err)
	}
	if created.ID == 0 || created.Version != 1 || created.EmployeeNumber != "E-100" || created.Status != "active" ||
		created.Position != nil || created.OrganizationID != e.a.OrganizationID || len(created.Identities) != 3 ||
		created.Identities[0].Value != "S-1-5-21-7-1001" || created.Identities[0].ID == 0 {
		t.Fatalf("created %+v", created)
	}
	got, err := e.svc.GetEmployee(e.ctx, e.dash, e.hrA, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if show(got) != show(created) {
		t.Errorf("get:\n %+v\nwant\n %+v", got, created)
	}

	// A full replace: other fields, one identity kept, one dropped, one new.
	upd := directory.EmployeeInput{EmployeeNumber: "E-100", FirstName: "Grace", LastName: "Hopper-Murray", Status: "inactive",
		Identities: []directory.IdentityInput{{Kind: "card_number", Value: "0042"}, {Kind: "employee_number", Value: "E-100"}}}
	updated, err := e.svc.UpdateEmployee(e.ctx, e.dash, e.hrA, created.ID, created.Version, upd)
	if err != nil {
		t.Fatal(err)
	}
	if updated.Version != 2 || updated.DepartmentID != nil || updated.Email != nil || updated.LastName != "Hopper-Murray" ||
		updated.Status != "inactive" || len(updated.Identities) != 2 || !updated.UpdatedAt.After(created.UpdatedAt) {
		t.Fatalf("updated %+v", updated)
	}
	got, _ = e.svc.GetEmployee(e.ctx, e.dash, e.hrA, created.ID)
	if show(got) != show(updated) {
		t.Errorf("get after update:\n %+v\nwant\n %+v", got, updated)
	}

	// The stale version is refused.
	_, err = e.svc.UpdateEmployee(e.ctx, e.dash, e.hrA, created.ID, 1, in)
	wantCode(t, "stale update", err, apperr.Conflict, "", directory.ReasonStale)
	if !errors.Is(err, directory.ErrStale) {
		t.Errorf("stale update: errors.Is(err, ErrStale) false for %v", err)
	}
	err = e.svc.DeleteEmployee(e.ctx, e.dash, e.hrA, created.ID, 1)
	if !errors.Is(err, directory.ErrStale) {
		t.Errorf("stale delete: %v", err)
	}
	if err := e.svc.DeleteEmployee(e.ctx, e.dash, e.hrA, created.ID, 2); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.GetEmployee(e.ctx, e.dash, e.hrA, created.ID)
	wantCode(t, "get deleted", err, apperr.NotFound, "", "")
	if n := e.one(t, `SELECT count(*)::text FROM employee_identities WHERE employee_id = $1`, created.ID); n != "0" {
		t.Errorf("%s identities left after delete", n)
	}

	// The audit: create, update, delete, each with the changed fields,
	// stamped with the actor.
	rows, err := e.admin.Query(e.ctx, `SELECT action, resource_id, actor, actor_user_id, organization_id, details FROM audit_log
		WHERE resource_type = 'employee' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		action, id, actor string
		user, org         int64
		details           []byte
	}
	var audits []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.action, &r.id, &r.actor, &r.user, &r.org, &r.details); err != nil {
			t.Fatal(err)
		}
		audits = append(audits, r)
	}
	if len(audits) != 3 {
		t.Fatalf("%d audit rows, want 3", len(audits))
	}
	for i, action := range []string{"create", "update", "delete"} {
		r := audits[i]
		if r.action != action || r.id != fmt.Sprint(created.ID) || r.actor != "hr@alpha" || r.user != e.a.UserID || r.org != e.a.OrganizationID {
			t.Errorf("audit %d: %+v", i, r)
		}
	}
	var upDetails struct{ Changes []directory.Change }
	if err := json.Unmarshal(audits[1].details, &upDetails); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, c := range upDetails.Changes {
		paths = append(paths, c.Op+" "+c.Path)
	}
	want := []string{"replace /department_id", "replace /last_name", "replace /email", "replace /status", "replace /identities"}
	if !slices.Equal(paths, want) {
		t.Errorf("update's audited changes %v, want %v", paths, want)
	}
}

// TestUpdateRefusedWritesNothing: an update refused half-way (an identity
// taken by another employee, after the employee's row was updated) leaves
// the employee and its identities as they were.
func TestUpdateRefusedWritesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	other, err := e.svc.CreateEmployee(e.ctx, e.dash, e.hrA, directory.EmployeeInput{EmployeeNumber: "E-2", FirstName: "Bo", LastName: "Ek",
		Identities: []directory.IdentityInput{{Kind: "computer", Value: "PC-BO"}}})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := e.svc.GetEmployee(e.ctx, e.dash, e.hrA, e.a.EmployeeID)
	in := directory.EmployeeInput{EmployeeNumber: "E-1", FirstName: "Changed", LastName: "Lee",
		Identities: []directory.IdentityInput{{Kind: "card_number", Value: "1"}, {Kind: "computer", Value: "PC-BO"}}}
	_, err = e.svc.UpdateEmployee(e.ctx, e.dash, e.hrA, e.a.EmployeeID, before.Version, in)
	wantCode(t, "identity taken", err, apperr.Conflict, "identities/1/value", "")
	in.Identities = nil
	in.EmployeeNumber = other.EmployeeNumber
	_, err = e.svc.UpdateEmployee(e.ctx, e.dash, e.hrA, e.a.EmployeeID, before.Version, in)
	wantCode(t, "number taken", err, apperr.Conflict, "employee_number", "")
	after, _ := e.svc.GetEmployee(e.ctx, e.dash, e.hrA, e.a.EmployeeID)
	if show(after) != show(before) {
		t.Errorf("after refused updates:\n %+v\nwant\n %+v", after, before)
	}
	if n := e.one(t, `SELECT count(*)::text FROM audit_log WHERE resource_type = 'employee' AND action = 'update'`); n != "0" {
		t.Errorf("%s audit rows of refused updates", n)
	}
}

func TestIdentityUniquenessPerOrganization(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sid := []directory.IdentityInput{{Kind: "windows_sid", Value: "S-1-5-21-555"}}
	in := validEmployee("U-1")
	in.Identities = sid
	if _, err := e.svc.CreateEmployee(e.ctx, e.dash, e.hrA, in); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateEmployee(e.ctx, e.dash, e.hrB, in); err != nil {
		t.Errorf("the same SID and number in another organisation: %v", err)
	}
	in2 := validEmployee("U-2")
	in2.Identities = []directory.IdentityInput{{Kind: "computer", Value: "PC"}, {Kind: "windows_sid", Value: "S-1-5-21-555"}}
	_, err := e.svc.CreateEmployee(e.ctx, e.dash, e.hrA, in2)
	wantCode(t, "SID twice in one organisation", err, apperr.Conflict, "identities/1/value", "")
	// The seeded S-1-5-21-1 of the seeded employee.
	in2.Identities = []directory.IdentityInput{{Kind: "windows_sid", Value: "S-1-5-21-1"}}
	_, err = e.svc.CreateEmployee(e.ctx, e.dash, e.hrA, in2)
	wantCode(t, "seeded SID", err, apperr.Conflict, "identities/0/value", "")
	// The same value under another kind is another identity.
	in2.Identities = []directory.IdentityInput{{Kind: "card_number", Value: "S-1-5-21-555"}}
	if _, err := e.svc.CreateEmployee(e.ctx, e.dash, e.hrA, in2); err != nil {
		t.Errorf("same value, other kind: %v", err)
	}
	_, err = e.svc.CreateEmployee(e.ctx, e.dash, e.hrA, validEmployee("U-1"))
	wantCode(t, "employee number twice", err, apperr.Conflict, "employee_number", "")
	if n := e.one(t, `SELECT count(*)::text FROM employees WHERE organization_id = $1`, e.a.OrganizationID); n != "3" {
		t.Errorf("organisation A has %s employees, want 3 (seeded, U-1, U-2)", n)
	}
}

// TestOtherOrganizationIsNotFound: the ids of organisation B's rows are
// NotFound to A's HR on every call, lists never show them, and nothing of
// B changes.
func TestOtherOrganizationIsNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.svc.GetEmployee(e.ctx, e.dash, e.hrA, e.b.EmployeeID)
	wantCode(t, "get employee", err, apperr.NotFound, "", "")
	_, err = e.svc.UpdateEmployee(e.ctx, e.dash, e.hrA, e.b.EmployeeID, 1, validEmployee("X"))
	wantCode(t, "update employee", err, apperr.NotFound, "", "")
	err = e.svc.DeleteEmployee(e.ctx, e.dash, e.hrA, e.b.EmployeeID, 1)
	wantCode(t, "delete employee", err, apperr.NotFound, "", "")
	_, err = e.svc.GetDepartment(e.ctx, e.dash, e.hrA, e.b.DepartmentID)
	wantCode(t, "get department", err, apperr.NotFound, "", "")
	_, err = e.svc.UpdateDepartment(e.ctx, e.dash, e.hrA, e.b.DepartmentID, 1, directory.DepartmentInput{Name: "Mine"})
	wantCode(t, "update department", err, apperr.NotFound, "", "")
	err = e.svc.DeleteDepartment(e.ctx, e.dash, e.hrA, e.b.DepartmentID, 1)
	wantCode(t, "delete department", err, apperr.NotFound, "", "")
	_, err = e.svc.CreateDepartment(e.ctx, e.dash, e.hrA, directory.DepartmentInput{Name: "Sub", ParentID: &e.b.DepartmentID})
	wantCode(t, "create under B's department", err, apperr.Invalid, "parent_id", "")
	_, err = e.svc.UpdateDepartment(e.ctx, e.dash, e.hrA, e.a.DepartmentID, 1, directory.DepartmentInput{Name: "Eng", ParentID: &e.b.DepartmentID})
	wantCode(t, "move under B's department", err, apperr.Invalid, "parent_id", "")
	_, _, err = e.svc.ListEmployees(e.ctx, e.dash, e.hrA, directory.EmployeeFilter{DepartmentID: e.b.DepartmentID}, directory.Page{})
	wantCode(t, "list by B's department", err, apperr.Invalid, "department_id", "")

	for _, sort := range directory.EmployeeSorts() {
		items, next, err := e.svc.ListEmployees(e.ctx, e.dash, e.hrA, directory.EmployeeFilter{}, directory.Page{Sort: sort})
		if err != nil || next != "" || len(items) != 1 || items[0].ID != e.a.EmployeeID {
			t.Errorf("list employees by %s: %v %q %+v, want only A's", sort, err, next, items)
		}
	}
	deps, _, err := e.svc.ListDepartments(e.ctx, e.dash, e.hrA, directory.DepartmentFilter{}, directory.Page{})
	if err != nil || len(deps) != 1 || deps[0].ID != e.a.DepartmentID {
		t.Errorf("list departments: %v %+v", err, deps)
	}
	tree, err := e.svc.DepartmentTree(e.ctx, e.dash, e.hrA)
	if err != nil || len(tree) != 1 || tree[0].ID != e.a.DepartmentID {
		t.Errorf("tree: %v %+v", err, tree)
	}
	if v := e.one(t, `SELECT format('%s|%s', (SELECT row_version FROM employees WHERE id = $1), (SELECT row_version FROM departments WHERE id = $2))`,
		e.b.EmployeeID, e.b.DepartmentID); v != "1|1" {
		t.Errorf("B's rows changed: versions %s", v)
	}
	// No tenant context at all sees nothing.
	_, err = e.svc.GetEmployee(e.ctx, e.dash, postgres.Tenant{}, e.a.EmployeeID)
	wantCode(t, "no context", err, apperr.NotFound, "", "")
}

// TestPlatformAdmin: a platform ADMIN on the staff_admin pool sees every
// organisation's rows; it creates in the organisation its context names
// and must name one.
func TestPlatformAdmin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	platform := pg.Pool(t, e.platformURL, 2)
	adm := postgres.Tenant{Role: postgres.AppAdmin, Actor: "root"}
	_, err := e.svc.CreateEmployee(e.ctx, platform, adm, validEmployee("ADM-1"))
	wantCode(t, "create without an organisation", err, apperr.Invalid, "organization_id", "")
	inB := adm
	inB.OrganizationID = e.b.OrganizationID
	created, err := e.svc.CreateEmployee(e.ctx, platform, inB, validEmployee("ADM-1"))
	if err != nil || created.OrganizationID != e.b.OrganizationID {
		t.Fatalf("create in B: %v %+v", err, created)
	}
	got, err := e.svc.GetEmployee(e.ctx, platform, adm, e.a.EmployeeID)
	if err != nil {
		t.Fatalf("ADMIN reads A's employee: %v", err)
	}
	in := validEmployee("E-1")
	in.DepartmentID = &e.b.DepartmentID // B's department for A's employee
	_, err = e.svc.UpdateEmployee(e.ctx, platform, adm, got.ID, got.Version, in)
	wantCode(t, "another organisation's department", err, apperr.Invalid, "department_id", "")
	in.DepartmentID = &e.a.DepartmentID
	if _, err := e.svc.UpdateEmployee(e.ctx, platform, adm, got.ID, got.Version, in); err != nil {
		t.Fatalf("ADMIN updates A's employee: %v", err)
	}
	if org := e.one(t, `SELECT organization_id::text FROM audit_log WHERE resource_type = 'employee' AND action = 'update'`); org != fmt.Sprint(e.a.OrganizationID) {
		t.Errorf("ADMIN's update audited in organisation %s, want A's", org)
	}
	// The same ADMIN context on the dashboard pool sees nothing.
	_, err = e.svc.GetEmployee(e.ctx, e.dash, adm, e.a.EmployeeID)
	wantCode(t, "ADMIN on the dashboard pool", err, apperr.NotFound, "", "")
}
