package dashboard_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
)

// TestEmployeesOverHTTP: an HR user creates, reads, updates and deletes an
// employee with identities; stale and missing If-Match answer 412 and
// 428; validation names the field as a JSON Pointer; the other
// organisation's employee is 404 for every verb; a department lead may
// not write (403, audited).
func TestEmployeesOverHTTP(t *testing.T) {
	e := newAPIEnv(t)
	hr := e.token(accesstoken.Claims{UserID: e.orgA.UserID, OrganizationID: e.orgA.OrganizationID, Role: "HR"})
	body := map[string]any{
		"employee_number": "E-100", "first_name": "Grace", "last_name": "Hopper", "department_id": e.orgA.DepartmentID,
		"identities": []map[string]string{{"kind": "windows_sid", "value": "S-1-5-21-100"}, {"kind": "card_number", "value": "0042"}},
	}
	a := e.call("POST", "/api/v2/employees", hr, body)
	if a.Status != http.StatusCreated || a.Header.Get("ETag") != `"1"` {
		t.Fatalf("create: %d %s %q", a.Status, a.Body, a.Header.Get("ETag"))
	}
	var emp struct {
		ID         int64
		Version    int64
		Identities []struct{ Kind, Value string }
	}
	a.JSON(t, &emp)
	if len(emp.Identities) != 2 {
		t.Fatalf("identities: %s", a.Body)
	}
	path := fmt.Sprintf("/api/v2/employees/%d", emp.ID)
	a = e.call("GET", path, hr, nil)
	if a.Status != http.StatusOK || a.Header.Get("ETag") != `"1"` {
		t.Fatalf("get: %d %s", a.Status, a.Body)
	}

	body["last_name"] = "Hopper-Murray"
	if a := e.call("PUT", path, hr, body); a.Status != http.StatusPreconditionRequired {
		t.Fatalf("update without If-Match: %d %s", a.Status, a.Body)
	} else if code, field := a.errorCode(t); code != "precondition_required" || field != "If-Match" {
		t.Fatalf("update without If-Match: %s", a.Body)
	}
	a = e.call("PUT", path, hr, body, "If-Match", `"1"`)
	if a.Status != http.StatusOK || a.Header.Get("ETag") != `"2"` {
		t.Fatalf("update: %d %s", a.Status, a.Body)
	}
	body["last_name"] = "Lost"
	a = e.call("PUT", path, hr, body, "If-Match", `"1"`)
	if code, _ := a.errorCode(t); a.Status != http.StatusPreconditionFailed || code != "precondition_failed" {
		t.Fatalf("stale update: %d %s", a.Status, a.Body)
	}
	a = e.call("GET", path, hr, nil)
	a.JSON(t, &emp)
	if emp.Version != 2 {
		t.Fatalf("after a stale write: %s", a.Body)
	}

	// Validation: the field as a JSON Pointer; a duplicate identity in the
	// organisation is a conflict naming it.
	bad := map[string]any{"employee_number": "E-101", "first_name": "A", "last_name": "B",
		"identities": []map[string]string{{"kind": "windows_sid", "value": "not a sid"}}}
	a = e.call("POST", "/api/v2/employees", hr, bad)
	if _, field := a.errorCode(t); a.Status != http.StatusUnprocessableEntity || field != "/identities/0/value" {
		t.Fatalf("bad SID: %d %s", a.Status, a.Body)
	}
	dup := map[string]any{"employee_number": "E-102", "first_name": "A", "last_name": "B",
		"identities": []map[string]string{{"kind": "card_number", "value": "0042"}}}
	a = e.call("POST", "/api/v2/employees", hr, dup)
	if _, field := a.errorCode(t); a.Status != http.StatusConflict || field != "/identities/0/value" {
		t.Fatalf("duplicate card: %d %s", a.Status, a.Body)
	}
	a = e.call("POST", "/api/v2/employees", hr, `{"employee_number": "E-103", "first_name": 7}`)
	if _, field := a.errorCode(t); a.Status != http.StatusBadRequest && a.Status != http.StatusUnprocessableEntity || field != "/first_name" {
		t.Fatalf("wrong type: %d %s", a.Status, a.Body)
	}
	if a := e.call("GET", "/api/v2/employees?limit=0", hr, nil); a.Status != http.StatusUnprocessableEntity {
		t.Fatalf("limit=0: %d", a.Status)
	} else if _, field := a.errorCode(t); field != "limit" {
		t.Fatalf("limit=0: %s", a.Body)
	}

	// The other organisation's employee, as acme's HR: 404 for every verb.
	other := fmt.Sprintf("/api/v2/employees/%d", e.orgB.EmployeeID)
	for _, m := range []string{"GET", "PUT", "DELETE"} {
		var b any
		if m == "PUT" {
			b = body
		}
		if a := e.call(m, other, hr, b, "If-Match", `"1"`); a.Status != http.StatusNotFound {
			t.Errorf("%s globex's employee as acme's HR: %d %s", m, a.Status, a.Body)
		}
	}

	// A department lead may read but not write.
	lead := e.token(accesstoken.Claims{UserID: e.orgA.UserID, OrganizationID: e.orgA.OrganizationID, Role: "DEPARTMENT_LEAD", DepartmentID: e.orgA.DepartmentID})
	if a := e.call("DELETE", path, lead, nil, "If-Match", `"2"`); a.Status != http.StatusForbidden {
		t.Fatalf("delete as a lead: %d %s", a.Status, a.Body)
	}
	if a := e.call("DELETE", path, hr, nil, "If-Match", `"2"`); a.Status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", a.Status, a.Body)
	}
	if a := e.call("GET", path, hr, nil); a.Status != http.StatusNotFound {
		t.Fatalf("get after delete: %d", a.Status)
	}
	e.assertDenials(1)
}

// TestEmployeePagesAreStable: paging through employees while others are
// inserted before and after the cursor returns every employee that
// existed at the start exactly once.
func TestEmployeePagesAreStable(t *testing.T) {
	e := newAPIEnv(t)
	tok := e.orgAdmin(e.orgA)
	for i := range 25 {
		e.exec(`INSERT INTO employees (organization_id, employee_number, first_name, last_name) VALUES ($1, $2, 'P', $3)`,
			e.orgA.OrganizationID, fmt.Sprintf("N-%03d", i), fmt.Sprintf("L%03d", i*2))
	}
	want := map[int64]bool{}
	a := e.call("GET", "/api/v2/employees?limit=200", tok, nil)
	var all struct{ Items []struct{ ID int64 } }
	a.JSON(t, &all)
	for _, it := range all.Items {
		want[it.ID] = true
	}
	if len(want) != 26 {
		t.Fatalf("%d employees, want 26", len(want))
	}
	seen := map[int64]int{}
	cursor := ""
	for pageNo := 0; pageNo < 20; pageNo++ {
		q := "/api/v2/employees?limit=7&sort=last_name"
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		a := e.call("GET", q, tok, nil)
		if a.Status != http.StatusOK {
			t.Fatalf("page %d: %d %s", pageNo, a.Status, a.Body)
		}
		var p struct {
			Items      []struct{ ID int64 }
			NextCursor string `json:"next_cursor"`
		}
		a.JSON(t, &p)
		for _, it := range p.Items {
			seen[it.ID]++
		}
		// Insert rows sorting before and after the page.
		e.exec(`INSERT INTO employees (organization_id, employee_number, first_name, last_name) VALUES ($1, $2, 'Q', 'A-first'), ($1, $3, 'Q', 'Z-last')`,
			e.orgA.OrganizationID, fmt.Sprintf("X-%d-a", pageNo), fmt.Sprintf("X-%d-z", pageNo))
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("employee %d seen %d times", id, seen[id])
		}
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("employee %d seen %d times", id, n)
		}
	}
	if a := e.call("GET", "/api/v2/employees?cursor=garbage", tok, nil); a.Status != http.StatusUnprocessableEntity {
		t.Fatalf("garbage cursor: %d %s", a.Status, a.Body)
	} else if _, field := a.errorCode(t); field != "cursor" {
		t.Fatalf("garbage cursor: %s", a.Body)
	}
}

// TestDepartmentsOverHTTP: the tree, a move under its own child refused
// naming parent_id, and the other organisation's department 404.
func TestDepartmentsOverHTTP(t *testing.T) {
	e := newAPIEnv(t)
	tok := e.orgAdmin(e.orgA)
	a := e.call("POST", "/api/v2/departments", tok, map[string]any{"name": "Backend", "parent_id": e.orgA.DepartmentID})
	if a.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", a.Status, a.Body)
	}
	var child struct{ ID int64 }
	a.JSON(t, &child)
	a = e.call("GET", "/api/v2/departments/tree", tok, nil)
	var tree struct {
		Items []struct {
			ID       int64
			Children []struct{ ID int64 }
		}
	}
	a.JSON(t, &tree)
	if len(tree.Items) != 1 || len(tree.Items[0].Children) != 1 || tree.Items[0].Children[0].ID != child.ID {
		t.Fatalf("tree: %s", a.Body)
	}
	root := fmt.Sprintf("/api/v2/departments/%d", e.orgA.DepartmentID)
	a = e.call("GET", root, tok, nil)
	a = e.call("PUT", root, tok, map[string]any{"name": "Engineering", "parent_id": child.ID}, "If-Match", a.Header.Get("ETag"))
	if _, field := a.errorCode(t); a.Status != http.StatusUnprocessableEntity || field != "/parent_id" {
		t.Fatalf("cycle: %d %s", a.Status, a.Body)
	}
	if a := e.call("GET", fmt.Sprintf("/api/v2/departments/%d", e.orgB.DepartmentID), tok, nil); a.Status != http.StatusNotFound {
		t.Fatalf("globex's department: %d", a.Status)
	}
	a = e.call("GET", "/api/v2/departments?parent_id=root", tok, nil)
	var roots struct{ Items []struct{ ID int64 } }
	a.JSON(t, &roots)
	if len(roots.Items) != 1 || roots.Items[0].ID != e.orgA.DepartmentID {
		t.Fatalf("roots: %s", a.Body)
	}
}
