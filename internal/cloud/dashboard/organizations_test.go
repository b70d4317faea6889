package dashboard_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
)

// TestOrganizationsTwoTenants: an organisation's administrator sees their
// own organisation only; the other's id answers 404; only a platform
// ADMIN creates organisations (403 otherwise, audited and counted); the
// platform ADMIN sees both.
func TestOrganizationsTwoTenants(t *testing.T) {
	e := newAPIEnv(t)
	tokA := e.orgAdmin(e.orgA)
	var page struct {
		Items []struct {
			ID   int64
			Slug string
		}
	}
	a := e.call("GET", "/api/v2/organizations", tokA, nil)
	a.JSON(t, &page)
	if a.Status != http.StatusOK || len(page.Items) != 1 || page.Items[0].ID != e.orgA.OrganizationID {
		t.Fatalf("list as acme's admin: %d %s", a.Status, a.Body)
	}
	if a := e.call("GET", fmt.Sprintf("/api/v2/organizations/%d", e.orgB.OrganizationID), tokA, nil); a.Status != http.StatusNotFound {
		t.Fatalf("globex as acme's admin: %d %s", a.Status, a.Body)
	}
	if a := e.call("GET", fmt.Sprintf("/api/v2/organizations/%d", e.orgA.OrganizationID), tokA, nil); a.Status != http.StatusOK {
		t.Fatalf("acme as acme's admin: %d %s", a.Status, a.Body)
	}
	for _, id := range []string{"0", "-1", "abc", "99999999999999999999"} {
		if a := e.call("GET", "/api/v2/organizations/"+id, tokA, nil); a.Status != http.StatusNotFound {
			t.Errorf("organisation %q: %d", id, a.Status)
		}
	}
	a = e.call("POST", "/api/v2/organizations", tokA, map[string]string{"name": "Initech"})
	if code, _ := a.errorCode(t); a.Status != http.StatusForbidden || code != "forbidden" {
		t.Fatalf("create as an org admin: %d %s", a.Status, a.Body)
	}
	admin := e.token(accesstoken.Claims{UserID: 1, Role: "ADMIN"})
	a = e.call("POST", "/api/v2/organizations", admin, map[string]string{"name": "Initech"})
	if a.Status != http.StatusCreated || a.Header.Get("Location") == "" {
		t.Fatalf("create as ADMIN: %d %s", a.Status, a.Body)
	}
	a = e.call("POST", "/api/v2/organizations", admin, map[string]string{"name": "Initech"})
	if code, field := a.errorCode(t); a.Status != http.StatusUnprocessableEntity || field != "/slug" {
		t.Fatalf("duplicate slug: %d %s %s", a.Status, code, a.Body)
	}
	a = e.call("POST", "/api/v2/organizations", admin, map[string]any{"name": "X", "colour": "red"})
	if _, field := a.errorCode(t); a.Status != http.StatusUnprocessableEntity || field != "/colour" {
		t.Fatalf("unknown member: %d %s", a.Status, a.Body)
	}
	a = e.call("GET", "/api/v2/organizations", admin, nil)
	a.JSON(t, &page)
	if len(page.Items) != 3 {
		t.Fatalf("ADMIN sees %d organisations: %s", len(page.Items), a.Body)
	}
	// Renaming: acme's administrator renames acme (If-Match), not globex
	// (404); HR may not (403); a stale ETag is 412.
	acme := fmt.Sprintf("/api/v2/organizations/%d", e.orgA.OrganizationID)
	a = e.call("GET", acme, tokA, nil)
	tag := a.Header.Get("ETag")
	a = e.call("PATCH", acme, tokA, map[string]string{"name": "Acme Ltd"}, "If-Match", tag)
	if a.Status != http.StatusOK || a.Header.Get("ETag") == tag {
		t.Fatalf("rename: %d %s", a.Status, a.Body)
	}
	if a := e.call("PATCH", acme, tokA, map[string]string{"name": "Acme plc"}, "If-Match", tag); a.Status != http.StatusPreconditionFailed {
		t.Fatalf("stale rename: %d %s", a.Status, a.Body)
	}
	globex := fmt.Sprintf("/api/v2/organizations/%d", e.orgB.OrganizationID)
	if a := e.call("PATCH", globex, tokA, map[string]string{"name": "Mine"}, "If-Match", `"1"`); a.Status != http.StatusNotFound {
		t.Fatalf("rename globex as acme's admin: %d %s", a.Status, a.Body)
	}
	hr := e.token(accesstoken.Claims{UserID: e.orgA.UserID, OrganizationID: e.orgA.OrganizationID, Role: "HR"})
	if a := e.call("PATCH", acme, hr, map[string]string{"name": "HR's"}, "If-Match", `"2"`); a.Status != http.StatusForbidden {
		t.Fatalf("rename as HR: %d %s", a.Status, a.Body)
	}
	e.assertDenials(2)
}
