package dashboard_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
)

// userBody is a user as the API answers it.
type userBody struct {
	ID              int64
	OrganizationID  *int64 `json:"organization_id"`
	Email           string
	Role            string
	DepartmentID    *int64 `json:"department_id"`
	EmployeeID      *int64 `json:"employee_id"`
	Active          bool
	InitialPassword string `json:"initial_password"`
}

// TestUsers: an organisation's administrator creates users (a generated
// initial password answered once when none is given; a lead needs a
// department of their organisation, an employee an employee record),
// lists them by role and state, changes a role under If-Match, disables
// and enables; nobody changes their own role or disables themself; HR
// may not; another organisation's users answer 404 and are not listed.
func TestUsers(t *testing.T) {
	e := newAPIEnv(t)
	tokA := e.orgAdmin(e.orgA)
	hr := e.token(accesstoken.Claims{UserID: e.orgA.UserID, OrganizationID: e.orgA.OrganizationID, Role: "HR"})

	a := e.call("POST", "/api/v2/users", tokA, map[string]any{"email": "Lead@Acme.test", "role": "DEPARTMENT_LEAD", "department_id": e.orgA.DepartmentID})
	wantStatus(t, "create a lead", a, http.StatusCreated)
	var lead userBody
	a.JSON(t, &lead)
	if lead.Email != "lead@acme.test" || lead.InitialPassword == "" || !lead.Active || lead.DepartmentID == nil || *lead.DepartmentID != e.orgA.DepartmentID ||
		lead.OrganizationID == nil || *lead.OrganizationID != e.orgA.OrganizationID || a.Header.Get("ETag") == "" ||
		a.Header.Get("Location") != fmt.Sprintf("/api/v2/users/%d", lead.ID) {
		t.Fatalf("created lead: %s %v", a.Body, a.Header)
	}
	a = e.call("POST", "/api/v2/users", tokA, map[string]any{"email": "hr@acme.test", "role": "HR", "password": "correct horse battery staple"})
	wantStatus(t, "create HR with a password", a, http.StatusCreated)
	var hrUser userBody
	a.JSON(t, &hrUser)
	if hrUser.InitialPassword != "" {
		t.Fatalf("a given password is answered: %s", a.Body)
	}

	for _, tt := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"lead without a department", map[string]any{"email": "l2@acme.test", "role": "DEPARTMENT_LEAD"}, "/department_id"},
		{"lead of globex's department", map[string]any{"email": "l2@acme.test", "role": "DEPARTMENT_LEAD", "department_id": e.orgB.DepartmentID}, "/department_id"},
		{"employee without a record", map[string]any{"email": "em@acme.test", "role": "EMPLOYEE"}, "/employee_id"},
		{"employee of globex", map[string]any{"email": "em@acme.test", "role": "EMPLOYEE", "employee_id": e.orgB.EmployeeID}, "/employee_id"},
		{"bad e-mail", map[string]any{"email": "nope", "role": "HR"}, "/email"},
		{"duplicate e-mail", map[string]any{"email": "lead@acme.test", "role": "HR"}, "/email"},
		{"unknown role", map[string]any{"email": "x@acme.test", "role": "GOD"}, "/role"},
		{"platform ADMIN", map[string]any{"email": "x@acme.test", "role": "ADMIN"}, "/role"},
		{"unknown member", map[string]any{"email": "x@acme.test", "role": "HR", "colour": "red"}, "/colour"},
	} {
		wantError(t, tt.name, e.call("POST", "/api/v2/users", tokA, tt.body), http.StatusUnprocessableEntity, tt.field)
	}
	wantStatus(t, "create as HR", e.call("POST", "/api/v2/users", hr, map[string]any{"email": "y@acme.test", "role": "HR"}), http.StatusForbidden)
	a = e.call("POST", "/api/v2/users", tokA, map[string]any{"email": "emp@acme.test", "role": "EMPLOYEE", "employee_id": e.orgA.EmployeeID})
	wantStatus(t, "create an employee", a, http.StatusCreated)

	// Lists: own organisation only, filters, pages.
	var page struct {
		Items      []userBody
		NextCursor string `json:"next_cursor"`
	}
	a = e.call("GET", "/api/v2/users", tokA, nil)
	a.JSON(t, &page)
	if a.Status != http.StatusOK || len(page.Items) != 4 {
		t.Fatalf("list: %d %s", a.Status, a.Body)
	}
	for _, u := range page.Items {
		if u.OrganizationID == nil || *u.OrganizationID != e.orgA.OrganizationID {
			t.Fatalf("acme's list holds %s", a.Body)
		}
	}
	a = e.call("GET", "/api/v2/users?role=DEPARTMENT_LEAD", tokA, nil)
	a.JSON(t, &page)
	if len(page.Items) != 1 || page.Items[0].ID != lead.ID {
		t.Fatalf("leads: %s", a.Body)
	}
	a = e.call("GET", "/api/v2/users?limit=3", tokA, nil)
	a.JSON(t, &page)
	if len(page.Items) != 3 || page.NextCursor == "" {
		t.Fatalf("page 1: %s", a.Body)
	}
	a = e.call("GET", "/api/v2/users?limit=3&cursor="+page.NextCursor, tokA, nil)
	page.NextCursor = ""
	a.JSON(t, &page)
	if len(page.Items) != 1 || page.NextCursor != "" {
		t.Fatalf("page 2: %s", a.Body)
	}
	wantError(t, "bad role filter", e.call("GET", "/api/v2/users?role=x", tokA, nil), http.StatusUnprocessableEntity, "role")
	wantError(t, "bad active filter", e.call("GET", "/api/v2/users?active=maybe", tokA, nil), http.StatusUnprocessableEntity, "active")
	wantError(t, "bad cursor", e.call("GET", "/api/v2/users?cursor=%25%25", tokA, nil), http.StatusUnprocessableEntity, "cursor")
	wantStatus(t, "list as HR", e.call("GET", "/api/v2/users", hr, nil), http.StatusForbidden)

	// Change the lead into HR under If-Match.
	path := fmt.Sprintf("/api/v2/users/%d", lead.ID)
	a = e.call("GET", path, tokA, nil)
	wantStatus(t, "get", a, http.StatusOK)
	tag := a.Header.Get("ETag")
	wantError(t, "update without If-Match", e.call("PATCH", path, tokA, map[string]any{"role": "HR"}), http.StatusPreconditionRequired, "If-Match")
	wantError(t, "lead into employee without a record", e.call("PATCH", path, tokA, map[string]any{"role": "EMPLOYEE"}, "If-Match", tag),
		http.StatusUnprocessableEntity, "/employee_id")
	wantError(t, "a lead without a department", e.call("PATCH", path, tokA, map[string]any{"department_id": nil}, "If-Match", tag),
		http.StatusUnprocessableEntity, "/department_id")
	wantError(t, "a non-positive department", e.call("PATCH", path, tokA, map[string]any{"department_id": 0}, "If-Match", tag),
		http.StatusUnprocessableEntity, "/department_id")
	wantStatus(t, "update as HR", e.call("PATCH", path, hr, map[string]any{"role": "HR"}, "If-Match", tag), http.StatusForbidden)
	a = e.call("PATCH", path, tokA, map[string]any{"role": "HR", "department_id": nil}, "If-Match", tag)
	wantStatus(t, "lead into HR", a, http.StatusOK)
	var u userBody
	a.JSON(t, &u)
	if u.Role != "HR" || u.DepartmentID != nil || a.Header.Get("ETag") == tag {
		t.Fatalf("updated: %s %v", a.Body, a.Header)
	}
	wantError(t, "stale update", e.call("PATCH", path, tokA, map[string]any{"role": "ORG_ADMIN"}, "If-Match", tag), http.StatusPreconditionFailed, "If-Match")

	// One's own account.
	self := fmt.Sprintf("/api/v2/users/%d", e.orgA.UserID)
	selfTag := e.call("GET", self, tokA, nil).Header.Get("ETag")
	wantError(t, "own role", e.call("PATCH", self, tokA, map[string]any{"role": "HR"}, "If-Match", selfTag), http.StatusForbidden, "/role")
	wantError(t, "disable oneself", e.call("POST", self+"/disable", tokA, nil), http.StatusForbidden, "id")
	wantStatus(t, "own unchanged role", e.call("PATCH", self, tokA, map[string]any{"role": "ORG_ADMIN"}, "If-Match", selfTag), http.StatusOK)

	// Disable and enable (idempotent).
	wantStatus(t, "disable as HR", e.call("POST", path+"/disable", hr, nil), http.StatusForbidden)
	for range 2 {
		a = e.call("POST", path+"/disable", tokA, nil)
		a.JSON(t, &u)
		if a.Status != http.StatusOK || u.Active {
			t.Fatalf("disable: %d %s", a.Status, a.Body)
		}
	}
	a = e.call("GET", "/api/v2/users?active=false", tokA, nil)
	a.JSON(t, &page)
	if len(page.Items) != 1 || page.Items[0].ID != lead.ID {
		t.Fatalf("disabled users: %s", a.Body)
	}
	a = e.call("POST", path+"/enable", tokA, nil)
	a.JSON(t, &u)
	if a.Status != http.StatusOK || !u.Active {
		t.Fatalf("enable: %d %s", a.Status, a.Body)
	}

	// The other organisation.
	tokB := e.orgAdmin(e.orgB)
	wantStatus(t, "globex reads", e.call("GET", path, tokB, nil), http.StatusNotFound)
	wantStatus(t, "globex updates", e.call("PATCH", path, tokB, map[string]any{"role": "HR"}, "If-Match", tag), http.StatusNotFound)
	wantStatus(t, "globex disables", e.call("POST", path+"/disable", tokB, nil), http.StatusNotFound)
	wantStatus(t, "globex enables", e.call("POST", path+"/enable", tokB, nil), http.StatusNotFound)
	wantStatus(t, "malformed id", e.call("GET", "/api/v2/users/abc", tokA, nil), http.StatusNotFound)
	a = e.call("GET", "/api/v2/users", tokB, nil)
	a.JSON(t, &page)
	if len(page.Items) != 1 || page.Items[0].ID != e.orgB.UserID {
		t.Fatalf("globex's list: %s", a.Body)
	}

	// A platform ADMIN sees both organisations' users, and changes them.
	admin := e.token(accesstoken.Claims{UserID: 1, Role: "ADMIN"})
	a = e.call("GET", "/api/v2/users", admin, nil)
	a.JSON(t, &page)
	if len(page.Items) != 5 {
		t.Fatalf("ADMIN's list: %s", a.Body)
	}
	wantStatus(t, "ADMIN disables", e.call("POST", path+"/disable", admin, nil), http.StatusOK)
	wantStatus(t, "ADMIN creates", e.call("POST", "/api/v2/users", admin, map[string]any{"email": "z@acme.test", "role": "HR"}), http.StatusForbidden)

	// Refusals audited: 4 by role (HR: create, list, update, disable), 2
	// of one's own account.
	e.assertDenials(6)
	a = e.call("GET", fmt.Sprintf("/api/v2/audit-log?resource_type=user&resource_id=%d&action=disable", lead.ID), tokA, nil)
	var audit struct{ Items []struct{ Action string } }
	a.JSON(t, &audit)
	if len(audit.Items) != 2 {
		t.Fatalf("disables audited: %s", a.Body)
	}
}
