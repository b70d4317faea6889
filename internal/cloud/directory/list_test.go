package directory_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/directory"
)

// sortKey is the value an employee sorts by under sort (without the sign).
func sortKey(e directory.Employee, sort string) string {
	switch strings.TrimPrefix(sort, "-") {
	case "last_name":
		return e.LastName
	case "employee_number":
		return e.EmployeeNumber
	case "created_at":
		return e.CreatedAt.Format("2006-01-02T15:04:05.000000")
	}
	return ""
}

// TestPaginationStable: for every sort, page 1, then rows inserted before
// and after the cursor (and one deleted after it), then the remaining
// pages: every row that existed throughout appears exactly once, in
// order, and nothing repeats.
func TestPaginationStable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// 25 employees whose last names repeat (ties broken by id).
	for i := range 25 {
		in := directory.EmployeeInput{EmployeeNumber: fmt.Sprintf("N-%03d", i*4), FirstName: "F", LastName: fmt.Sprintf("L%02d", i%7)}
		if _, err := e.svc.CreateEmployee(e.ctx, e.dash, e.hrA, in); err != nil {
			t.Fatal(err)
		}
	}
	extra := 0
	for _, sort := range directory.EmployeeSorts() {
		t.Run(sort, func(t *testing.T) {
			all, _, err := e.svc.ListEmployees(e.ctx, e.dash, e.hrA, directory.EmployeeFilter{}, directory.Page{Sort: sort, Limit: 200})
			if err != nil {
				t.Fatal(err)
			}
			page1, next, err := e.svc.ListEmployees(e.ctx, e.dash, e.hrA, directory.EmployeeFilter{}, directory.Page{Sort: sort, Limit: 10})
			if err != nil || len(page1) != 10 || next == "" {
				t.Fatalf("page 1: %v, %d rows, next %q", err, len(page1), next)
			}
			if show(page1) != show(all[:10]) {
				t.Fatalf("page 1 is not the first 10 rows")
			}
			// Insert rows sorting before and after the cursor, delete one
			// row after it.
			for _, ln := range []string{"A-first", "L03", "Z-last"} {
				extra++
				in := directory.EmployeeInput{EmployeeNumber: fmt.Sprintf("%s-%02d", ln[:1], extra), FirstName: "New", LastName: ln}
				if ln == "L03" {
					in.EmployeeNumber = fmt.Sprintf("N-%03d-x%d", 40, extra)
				}
				if _, err := e.svc.CreateEmployee(e.ctx, e.dash, e.hrA, in); err != nil {
					t.Fatal(err)
				}
			}
			deleted := all[15]
			if err := e.svc.DeleteEmployee(e.ctx, e.dash, e.hrA, deleted.ID, deleted.Version); err != nil {
				t.Fatal(err)
			}
			seen := map[int64]bool{}
			var rest []directory.Employee
			for page := 2; next != ""; page++ {
				var items []directory.Employee
				items, next, err = e.svc.ListEmployees(e.ctx, e.dash, e.hrA, directory.EmployeeFilter{}, directory.Page{Sort: sort, Limit: 10, Cursor: next})
				if err != nil {
					t.Fatalf("page %d: %v", page, err)
				}
				if page > 20 {
					t.Fatal("no end of the pages")
				}
				rest = append(rest, items...)
			}
			for _, it := range page1 {
				seen[it.ID] = true
			}
			desc := strings.HasPrefix(sort, "-")
			prev := page1[len(page1)-1]
			for _, it := range rest {
				if seen[it.ID] {
					t.Errorf("employee %d twice", it.ID)
				}
				seen[it.ID] = true
				k1, k2 := sortKey(prev, sort), sortKey(it, sort)
				inOrder := k1 < k2 || k1 == k2 && prev.ID < it.ID
				if desc {
					inOrder = k1 > k2 || k1 == k2 && prev.ID > it.ID
				}
				if !inOrder {
					t.Errorf("employee %d (%s) after %d (%s): out of order", it.ID, k2, prev.ID, k1)
				}
				prev = it
			}
			for _, it := range all {
				if !seen[it.ID] && it.ID != deleted.ID {
					t.Errorf("employee %d (%s) skipped", it.ID, sortKey(it, sort))
				}
			}
			if seen[deleted.ID] {
				t.Errorf("deleted employee %d listed", deleted.ID)
			}
		})
	}
}

func TestListFiltersAndPageErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sub, err := e.svc.CreateDepartment(e.ctx, e.dash, e.hrA, directory.DepartmentInput{Name: "Platform", ParentID: &e.a.DepartmentID})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []directory.EmployeeInput{
		{EmployeeNumber: "P-1", FirstName: "Ada", LastName: "Lovelace", DepartmentID: &sub.ID, Email: ptr("ada@example.com")},
		{EmployeeNumber: "P-2", FirstName: "Alan", LastName: "Turing", DepartmentID: &sub.ID, Status: "inactive"},
		{EmployeeNumber: "X_9", FirstName: "Edsger", LastName: "Dijkstra"},
	} {
		if _, err := e.svc.CreateEmployee(e.ctx, e.dash, e.hrA, in); err != nil {
			t.Fatal(err)
		}
	}
	names := func(f directory.EmployeeFilter) string {
		t.Helper()
		items, _, err := e.svc.ListEmployees(e.ctx, e.dash, e.hrA, f, directory.Page{})
		if err != nil {
			t.Fatalf("%+v: %v", f, err)
		}
		var out []string
		for _, it := range items {
			out = append(out, it.LastName)
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		f    directory.EmployeeFilter
		want string
	}{
		{directory.EmployeeFilter{}, "Dijkstra,Lee,Lovelace,Turing"},
		{directory.EmployeeFilter{DepartmentID: e.a.DepartmentID}, "Lee"},
		{directory.EmployeeFilter{DepartmentID: e.a.DepartmentID, IncludeSubdepartments: true}, "Lee,Lovelace,Turing"},
		{directory.EmployeeFilter{DepartmentID: sub.ID, Status: "active"}, "Lovelace"},
		{directory.EmployeeFilter{Status: "inactive"}, "Turing"},
		{directory.EmployeeFilter{Query: "ada LOVE"}, "Lovelace"},
		{directory.EmployeeFilter{Query: "@example"}, "Lovelace"},
		{directory.EmployeeFilter{Query: "p-"}, "Lovelace,Turing"},
		{directory.EmployeeFilter{Query: "_"}, "Dijkstra"}, // a literal underscore, not a wildcard
		{directory.EmployeeFilter{Query: "%"}, ""},
	} {
		if got := names(c.f); got != c.want {
			t.Errorf("%+v: %s, want %s", c.f, got, c.want)
		}
	}
	deps, _, err := e.svc.ListDepartments(e.ctx, e.dash, e.hrA, directory.DepartmentFilter{Parent: true, ParentID: &e.a.DepartmentID}, directory.Page{})
	if err != nil || len(deps) != 1 || deps[0].ID != sub.ID {
		t.Errorf("children of Engineering: %v %+v", err, deps)
	}
	deps, _, err = e.svc.ListDepartments(e.ctx, e.dash, e.hrA, directory.DepartmentFilter{Parent: true}, directory.Page{Sort: "-name"})
	if err != nil || len(deps) != 1 || deps[0].ID != e.a.DepartmentID {
		t.Errorf("roots: %v %+v", err, deps)
	}

	_, next, err := e.svc.ListEmployees(e.ctx, e.dash, e.hrA, directory.EmployeeFilter{}, directory.Page{Limit: 1})
	if err != nil || next == "" {
		t.Fatalf("page of 1: %v %q", err, next)
	}
	_, depNext, err := e.svc.ListDepartments(e.ctx, e.dash, e.hrA, directory.DepartmentFilter{}, directory.Page{Limit: 1})
	if err != nil || depNext == "" {
		t.Fatalf("departments page of 1: %v %q", err, depNext)
	}
	for _, c := range []struct {
		name   string
		f      directory.EmployeeFilter
		p      directory.Page
		fields []string
	}{
		{"limit too big", directory.EmployeeFilter{}, directory.Page{Limit: 201}, []string{"limit"}},
		{"negative limit", directory.EmployeeFilter{}, directory.Page{Limit: -1}, []string{"limit"}},
		{"unknown sort", directory.EmployeeFilter{}, directory.Page{Sort: "salary"}, []string{"sort"}},
		{"garbage cursor", directory.EmployeeFilter{}, directory.Page{Cursor: "!!not-base64!!"}, []string{"cursor"}},
		{"JSON but not a cursor", directory.EmployeeFilter{}, directory.Page{Cursor: "eyJ4IjoxfQ"}, []string{"cursor"}},
		{"another sort's cursor", directory.EmployeeFilter{}, directory.Page{Cursor: next, Sort: "employee_number"}, []string{"cursor"}},
		{"a department list's cursor", directory.EmployeeFilter{}, directory.Page{Cursor: depNext}, []string{"cursor"}},
		{"tampered cursor", directory.EmployeeFilter{}, directory.Page{Cursor: next[:len(next)-2]}, []string{"cursor"}},
		{"bad status", directory.EmployeeFilter{Status: "gone"}, directory.Page{}, []string{"status"}},
		{"long query", directory.EmployeeFilter{Query: strings.Repeat("q", 101)}, directory.Page{}, []string{"query"}},
		{"several", directory.EmployeeFilter{DepartmentID: -1, Status: "x"}, directory.Page{Limit: 1000, Sort: "x"},
			[]string{"department_id", "status", "limit", "sort"}},
	} {
		_, _, err := e.svc.ListEmployees(e.ctx, e.dash, e.hrA, c.f, c.p)
		if apperr.CodeOf(err) != apperr.Invalid || !slices.Equal(fieldsOf(err), c.fields) {
			t.Errorf("%s: %v, want Invalid on %v", c.name, err, c.fields)
		}
	}
	_, _, err = e.svc.ListDepartments(e.ctx, e.dash, e.hrA, directory.DepartmentFilter{}, directory.Page{Cursor: next})
	wantCode(t, "an employee cursor for departments", err, apperr.Invalid, "cursor", "")
}

// BenchmarkListEmployees: one page of 50 of 10,000 employees, as HR.
func BenchmarkListEmployees(b *testing.B) {
	e := newEnv(b)
	if _, err := e.admin.Exec(e.ctx, `INSERT INTO employees (organization_id, department_id, employee_number, first_name, last_name, email)
		SELECT $1, $2, 'B-' || g, 'First' || g, 'Last' || (g % 997), 'e' || g || '@example.com' FROM generate_series(1, 10000) g`,
		e.a.OrganizationID, e.a.DepartmentID); err != nil {
		b.Fatal(err)
	}
	if _, err := e.admin.Exec(e.ctx, `INSERT INTO employee_identities (organization_id, employee_id, kind, value)
		SELECT organization_id, id, 'windows_sid', 'S-1-5-21-9-' || id FROM employees WHERE employee_number LIKE 'B-%'`); err != nil {
		b.Fatal(err)
	}
	if _, err := e.admin.Exec(e.ctx, `ANALYZE employees, employee_identities`); err != nil {
		b.Fatal(err)
	}
	for _, sort := range []string{"last_name", "-created_at", "id"} {
		b.Run(sort, func(b *testing.B) {
			_, next, err := e.svc.ListEmployees(e.ctx, e.dash, e.hrA, directory.EmployeeFilter{}, directory.Page{Sort: sort, Limit: 50})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				items, _, err := e.svc.ListEmployees(e.ctx, e.dash, e.hrA, directory.EmployeeFilter{}, directory.Page{Sort: sort, Limit: 50, Cursor: next})
				if err != nil || len(items) != 50 {
					b.Fatalf("%v, %d items", err, len(items))
				}
			}
		})
	}
}
