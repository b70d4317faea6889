package dashboard_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
)

// TestAuditLog: the audit log is the caller's organisation's only, newest
// first, paged by cursor without repeats or gaps, filtered by action,
// resource, outcome, actor and time; ORG_ADMIN and ADMIN read it, HR may
// not; bad filters name the parameter.
func TestAuditLog(t *testing.T) {
	e := newAPIEnv(t)
	// Five rows in acme, one of them denied and by the seeded user, and
	// one in globex, at known times.
	base := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	for i := range 5 {
		outcome := "allowed"
		var actor any
		if i == 3 {
			outcome, actor = "denied", e.orgA.UserID
		}
		e.exec(`INSERT INTO audit_log (organization_id, actor_user_id, actor, action, resource_type, resource_id, outcome, created_at)
			VALUES ($1, $2, 'test', 'update', 'widget', $3, $4, $5)`, e.orgA.OrganizationID, actor, fmt.Sprint(i), outcome, base.Add(time.Duration(i)*time.Hour))
	}
	e.exec(`INSERT INTO audit_log (organization_id, actor, action, resource_type, created_at) VALUES ($1, 'test', 'update', 'widget', $2)`,
		e.orgB.OrganizationID, base)
	tokA := e.orgAdmin(e.orgA)
	type page struct {
		Items []struct {
			ID             int64
			OrganizationID *int64  `json:"organization_id"`
			ResourceID     *string `json:"resource_id"`
			Outcome        string
			CreatedAt      time.Time `json:"created_at"`
		}
		NextCursor string `json:"next_cursor"`
	}
	get := func(query string) page {
		t.Helper()
		a := e.call("GET", "/api/v2/audit-log?"+query, tokA, nil)
		wantStatus(t, query, a, http.StatusOK)
		var p page
		a.JSON(t, &p)
		for _, it := range p.Items {
			if it.OrganizationID == nil || *it.OrganizationID != e.orgA.OrganizationID {
				t.Fatalf("acme's audit log holds %s", a.Body)
			}
		}
		return p
	}
	// Pages of two over the widget rows: 4, 3 | 2, 1 | 0.
	var got []string
	cursor := ""
	for range 4 {
		p := get("resource_type=widget&limit=2&cursor=" + url.QueryEscape(cursor))
		for _, it := range p.Items {
			got = append(got, *it.ResourceID)
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if fmt.Sprint(got) != "[4 3 2 1 0]" {
		t.Fatalf("widget rows newest first: %v", got)
	}
	if p := get("outcome=denied&resource_type=widget"); len(p.Items) != 1 || *p.Items[0].ResourceID != "3" {
		t.Fatalf("denied: %+v", p)
	}
	if p := get(fmt.Sprintf("actor_user_id=%d&resource_type=widget", e.orgA.UserID)); len(p.Items) != 1 || *p.Items[0].ResourceID != "3" {
		t.Fatalf("by actor: %+v", p)
	}
	if p := get("resource_type=widget&resource_id=2&action=update"); len(p.Items) != 1 {
		t.Fatalf("by resource: %+v", p)
	}
	window := "from=" + url.QueryEscape(base.Add(time.Hour).Format(time.RFC3339)) + "&to=" + url.QueryEscape(base.Add(3*time.Hour).Format(time.RFC3339))
	if p := get("resource_type=widget&" + window); len(p.Items) != 2 || *p.Items[0].ResourceID != "2" || *p.Items[1].ResourceID != "1" {
		t.Fatalf("in [1h, 3h): %+v", p)
	}
	if p := get("action=nothing-like-this"); len(p.Items) != 0 {
		t.Fatalf("no match: %+v", p)
	}

	for _, tt := range []struct{ query, field string }{
		{"outcome=maybe", "outcome"},
		{"actor_user_id=x", "actor_user_id"},
		{"from=yesterday", "from"},
		{"from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "to"},
		{"cursor=***", "cursor"},
		{"limit=500", "limit"},
	} {
		a := e.call("GET", "/api/v2/audit-log?"+tt.query, tokA, nil)
		wantError(t, tt.query, a, http.StatusUnprocessableEntity, tt.field)
	}

	hr := e.token(accesstoken.Claims{UserID: e.orgA.UserID, OrganizationID: e.orgA.OrganizationID, Role: "HR"})
	wantStatus(t, "HR", e.call("GET", "/api/v2/audit-log", hr, nil), http.StatusForbidden)
	admin := e.token(accesstoken.Claims{UserID: 1, Role: "ADMIN"})
	a := e.call("GET", "/api/v2/audit-log?resource_type=widget", admin, nil)
	var all page
	a.JSON(t, &all)
	if len(all.Items) != 6 {
		t.Fatalf("ADMIN sees %d widget rows: %s", len(all.Items), a.Body)
	}
	// HR's refusal is itself in the log, as denied.
	if p := get("outcome=denied&resource_type=api"); len(p.Items) != 1 {
		t.Fatalf("HR's refusal: %+v", p)
	}
}

// TestGroupRoutesRefuseLesserRoles: every policy, retention, audit-log and
// users route refuses a DEPARTMENT_LEAD and an EMPLOYEE with 403 before
// reading anything (the body included), each refusal audited.
func TestGroupRoutesRefuseLesserRoles(t *testing.T) {
	e := newAPIEnv(t)
	tokens := []string{
		e.token(accesstoken.Claims{UserID: e.orgA.UserID, OrganizationID: e.orgA.OrganizationID, Role: "DEPARTMENT_LEAD", DepartmentID: e.orgA.DepartmentID}),
		e.token(accesstoken.Claims{UserID: e.orgA.UserID, OrganizationID: e.orgA.OrganizationID, Role: "EMPLOYEE", EmployeeID: e.orgA.EmployeeID}),
	}
	ids := strings.NewReplacer("{id}", fmt.Sprint(e.orgA.PolicyID), "{version}", "1.0.0",
		"{distribution_id}", "00000000-0000-0000-0000-000000000001")
	n := 0
	for _, r := range e.api.Routes() {
		if !strings.HasPrefix(r.Path, "/api/v2/policies") && !strings.HasPrefix(r.Path, "/api/v2/retention-policies") &&
			!strings.HasPrefix(r.Path, "/api/v2/audit-log") && !strings.HasPrefix(r.Path, "/api/v2/users") {
			continue
		}
		path := ids.Replace(r.Path)
		if strings.HasPrefix(r.Path, "/api/v2/retention-policies/") {
			path = "/api/v2/retention-policies/00000000-0000-0000-0000-000000000001"
		}
		for _, tok := range tokens {
			var body any
			if r.Method != "GET" {
				body = map[string]any{}
			}
			a := e.call(r.Method, path, tok, body, "If-Match", `"1"`)
			if code, _ := a.errorCode(t); a.Status != http.StatusForbidden || code != "forbidden" {
				t.Errorf("%s %s: %d %s", r.Method, path, a.Status, a.Body)
			}
			n++
		}
	}
	if n < 40 {
		t.Fatalf("only %d calls: are the routes registered?", n)
	}
	e.assertDenials(n)
}
