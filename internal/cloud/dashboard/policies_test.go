package dashboard_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
)

// wantStatus fails the test when a is not status, showing the body.
func wantStatus(t *testing.T, what string, a answer, status int) {
	t.Helper()
	if a.Status != status {
		t.Fatalf("%s: %d, want %d: %s", what, a.Status, status, a.Body)
	}
}

// wantError fails the test unless a is status with the error field.
func wantError(t *testing.T, what string, a answer, status int, field string) {
	t.Helper()
	_, f := a.errorCode(t)
	if a.Status != status || f != field {
		t.Fatalf("%s: %d field %q, want %d field %q: %s", what, a.Status, f, status, field, a.Body)
	}
}

// TestPoliciesLifecycle: an organisation's administrator creates a
// policy, updates its draft under If-Match, releases it, changes and
// releases again, lists and reads the versions, compares them, rolls back
// and distributes with a canary share; HR reads but does not write; the
// other organisation's policy, versions and distributions answer 404.
func TestPoliciesLifecycle(t *testing.T) {
	e := newAPIEnv(t)
	tokA := e.orgAdmin(e.orgA)
	hr := e.token(accesstoken.Claims{UserID: e.orgA.UserID, OrganizationID: e.orgA.OrganizationID, Role: "HR"})
	lead := e.token(accesstoken.Claims{UserID: e.orgA.UserID, OrganizationID: e.orgA.OrganizationID, Role: "DEPARTMENT_LEAD", DepartmentID: e.orgA.DepartmentID})

	a := e.call("POST", "/api/v2/policies", tokA, map[string]any{"name": "Office", "content": map[string]any{"screenshots": map[string]any{"enabled": true}}})
	wantStatus(t, "create", a, http.StatusCreated)
	var p struct {
		ID             int64
		Name           string
		CurrentVersion *string `json:"current_version"`
	}
	a.JSON(t, &p)
	etag := a.Header.Get("ETag")
	if p.ID == 0 || etag == "" || a.Header.Get("Location") != fmt.Sprintf("/api/v2/policies/%d", p.ID) || p.CurrentVersion != nil {
		t.Fatalf("created: %s %v", a.Body, a.Header)
	}
	base := fmt.Sprintf("/api/v2/policies/%d", p.ID)

	// Validation names the member; duplicates, unknown members, HR.
	a = e.call("POST", "/api/v2/policies", tokA, map[string]any{"name": "Bad", "content": map[string]any{"screenshots": map[string]any{"interval_seconds": 1}}})
	wantError(t, "invalid content", a, http.StatusUnprocessableEntity, "/content/screenshots/interval_seconds")
	a = e.call("POST", "/api/v2/policies", tokA, map[string]any{"name": "Office", "content": map[string]any{}})
	wantError(t, "duplicate name", a, http.StatusUnprocessableEntity, "/name")
	a = e.call("POST", "/api/v2/policies", tokA, map[string]any{"name": "X"})
	wantError(t, "no content", a, http.StatusUnprocessableEntity, "/content")
	a = e.call("POST", "/api/v2/policies", hr, map[string]any{"name": "HR's", "content": map[string]any{}})
	wantStatus(t, "create as HR", a, http.StatusForbidden)
	a = e.call("POST", "/api/v2/policies", e.token(accesstoken.Claims{UserID: 1, Role: "ADMIN"}), map[string]any{"name": "Platform", "content": map[string]any{}})
	wantStatus(t, "create as platform ADMIN", a, http.StatusForbidden)

	// Reads: HR may, a department lead may not.
	wantStatus(t, "get as HR", e.call("GET", base, hr, nil), http.StatusOK)
	wantStatus(t, "get as lead", e.call("GET", base, lead, nil), http.StatusForbidden)
	wantStatus(t, "list as lead", e.call("GET", "/api/v2/policies", lead, nil), http.StatusForbidden)

	// Update under If-Match.
	draft := map[string]any{"content": map[string]any{"screenshots": map[string]any{"enabled": true, "interval_seconds": 60}}}
	wantError(t, "update without If-Match", e.call("PUT", base, tokA, draft), http.StatusPreconditionRequired, "If-Match")
	wantError(t, "update with a malformed If-Match", e.call("PUT", base, tokA, draft, "If-Match", "W/x"), http.StatusUnprocessableEntity, "If-Match")
	wantStatus(t, "update as HR", e.call("PUT", base, hr, draft, "If-Match", etag), http.StatusForbidden)
	a = e.call("PUT", base, tokA, draft, "If-Match", etag)
	wantStatus(t, "update", a, http.StatusOK)
	newTag := a.Header.Get("ETag")
	if newTag == etag || newTag == "" {
		t.Fatalf("ETag after update %q (before %q)", newTag, etag)
	}
	wantError(t, "stale update", e.call("PUT", base, tokA, draft, "If-Match", etag), http.StatusPreconditionFailed, "If-Match")
	a = e.call("PUT", base, tokA, map[string]any{"content": map[string]any{"activity": map[string]any{"idle_seconds": 1}}}, "If-Match", newTag)
	wantError(t, "invalid update", a, http.StatusUnprocessableEntity, "/content/activity/idle_seconds")
	if a := e.call("GET", base, tokA, nil); a.Header.Get("ETag") != newTag {
		t.Fatalf("GET ETag %q, want %q", a.Header.Get("ETag"), newTag)
	}

	// Release twice: 1.0.0, then a setting added (minor).
	a = e.call("POST", base+"/release", tokA, map[string]any{})
	wantStatus(t, "release", a, http.StatusCreated)
	var v struct {
		Version  string
		Checksum string
	}
	a.JSON(t, &v)
	if v.Version != "1.0.0" || len(v.Checksum) != 64 {
		t.Fatalf("first release: %s", a.Body)
	}
	wantError(t, "release unchanged", e.call("POST", base+"/release", tokA, map[string]any{}), http.StatusUnprocessableEntity, "/content")
	wantStatus(t, "release as HR", e.call("POST", base+"/release", hr, map[string]any{}), http.StatusForbidden)
	tag := e.call("GET", base, tokA, nil).Header.Get("ETag")
	a = e.call("PUT", base, tokA, map[string]any{"content": map[string]any{"screenshots": map[string]any{"enabled": true, "interval_seconds": 60},
		"blocked_sites": []string{"games.example"}}}, "If-Match", tag)
	wantStatus(t, "second update", a, http.StatusOK)
	a = e.call("POST", base+"/release", tokA, map[string]any{"requires_restart": false})
	a.JSON(t, &v)
	if a.Status != http.StatusCreated || v.Version != "1.1.0" {
		t.Fatalf("second release: %d %s", a.Status, a.Body)
	}

	// Versions, newest first, paged.
	var page struct {
		Items []struct {
			Version string
		}
		NextCursor string `json:"next_cursor"`
	}
	a = e.call("GET", base+"/versions?limit=1", hr, nil)
	a.JSON(t, &page)
	if a.Status != http.StatusOK || len(page.Items) != 1 || page.Items[0].Version != "1.1.0" || page.NextCursor == "" {
		t.Fatalf("versions page 1: %d %s", a.Status, a.Body)
	}
	a = e.call("GET", base+"/versions?limit=1&cursor="+page.NextCursor, hr, nil)
	page.NextCursor = ""
	a.JSON(t, &page)
	if len(page.Items) != 1 || page.Items[0].Version != "1.0.0" || page.NextCursor != "" {
		t.Fatalf("versions page 2: %s", a.Body)
	}
	wantError(t, "bad cursor", e.call("GET", base+"/versions?cursor=!!", hr, nil), http.StatusUnprocessableEntity, "cursor")
	wantError(t, "bad limit", e.call("GET", base+"/versions?limit=0", hr, nil), http.StatusUnprocessableEntity, "limit")
	wantStatus(t, "version 1.0.0", e.call("GET", base+"/versions/1.0.0", hr, nil), http.StatusOK)
	wantStatus(t, "version 9.9.9", e.call("GET", base+"/versions/9.9.9", hr, nil), http.StatusNotFound)

	// Compare.
	a = e.call("GET", base+"/compare?from=1.0.0&to=1.1.0", hr, nil)
	var cmp struct {
		Changes []struct{ Op, Path string }
	}
	a.JSON(t, &cmp)
	if a.Status != http.StatusOK || len(cmp.Changes) != 1 || cmp.Changes[0].Op != "add" || cmp.Changes[0].Path != "/blocked_sites" {
		t.Fatalf("compare: %d %s", a.Status, a.Body)
	}
	wantError(t, "compare without to", e.call("GET", base+"/compare?from=1.0.0", hr, nil), http.StatusUnprocessableEntity, "to")
	wantError(t, "compare with an unknown version", e.call("GET", base+"/compare?from=1.0.0&to=7.0.0", hr, nil), http.StatusUnprocessableEntity, "to")

	// Rollback to 1.0.0: a setting removed, a major version.
	wantError(t, "rollback without version", e.call("POST", base+"/rollback", tokA, map[string]any{}), http.StatusUnprocessableEntity, "/version")
	wantError(t, "rollback to an unknown version", e.call("POST", base+"/rollback", tokA, map[string]any{"version": "0.1.0"}), http.StatusUnprocessableEntity, "/version")
	wantStatus(t, "rollback as HR", e.call("POST", base+"/rollback", hr, map[string]any{"version": "1.0.0"}), http.StatusForbidden)
	a = e.call("POST", base+"/rollback", tokA, map[string]any{"version": "1.0.0"})
	a.JSON(t, &v)
	if a.Status != http.StatusCreated || v.Version != "2.0.0" {
		t.Fatalf("rollback: %d %s", a.Status, a.Body)
	}

	// Distribute with a canary share; progress.
	wantError(t, "distribute to another organisation's gateway", e.call("POST", base+"/distributions", tokA,
		map[string]any{"version": "2.0.0", "gateways": []string{e.orgB.GatewayID.String()}}), http.StatusUnprocessableEntity, "/gateways/0")
	wantError(t, "distribute a bad share", e.call("POST", base+"/distributions", tokA,
		map[string]any{"version": "2.0.0", "canary_percent": 101}), http.StatusUnprocessableEntity, "/canary_percent")
	wantError(t, "distribute an unknown version", e.call("POST", base+"/distributions", tokA,
		map[string]any{"version": "3.0.0"}), http.StatusUnprocessableEntity, "/version")
	wantStatus(t, "distribute as HR", e.call("POST", base+"/distributions", hr, map[string]any{"version": "2.0.0"}), http.StatusForbidden)
	a = e.call("POST", base+"/distributions", tokA, map[string]any{"version": "2.0.0", "canary_percent": 50})
	wantStatus(t, "distribute", a, http.StatusCreated)
	var d struct {
		ID       string
		Stage    string
		Total    int
		Pending  int
		Gateways []struct{ Status string }
	}
	a.JSON(t, &d)
	if d.Stage != "canary" || d.Total != 1 || d.Pending != 1 || len(d.Gateways) != 1 || a.Header.Get("Location") != base+"/distributions/"+d.ID {
		t.Fatalf("distribution: %s", a.Body)
	}
	wantStatus(t, "progress as HR", e.call("GET", base+"/distributions/"+d.ID, hr, nil), http.StatusOK)
	wantStatus(t, "progress under another policy", e.call("GET", fmt.Sprintf("/api/v2/policies/%d/distributions/%s", e.orgA.PolicyID, d.ID), hr, nil), http.StatusNotFound)
	wantStatus(t, "progress of a malformed id", e.call("GET", base+"/distributions/nope", hr, nil), http.StatusNotFound)

	// The other organisation: nothing of it is visible.
	tokB := e.orgAdmin(e.orgB)
	for _, path := range []string{base, base + "/versions", base + "/versions/1.0.0", base + "/compare?from=1.0.0&to=1.1.0", base + "/distributions/" + d.ID} {
		wantStatus(t, "globex reads "+path, e.call("GET", path, tokB, nil), http.StatusNotFound)
	}
	wantStatus(t, "globex updates", e.call("PUT", base, tokB, draft, "If-Match", tag), http.StatusNotFound)
	wantStatus(t, "globex releases", e.call("POST", base+"/release", tokB, map[string]any{}), http.StatusNotFound)
	wantStatus(t, "globex rolls back", e.call("POST", base+"/rollback", tokB, map[string]any{"version": "1.0.0"}), http.StatusNotFound)
	wantStatus(t, "globex distributes", e.call("POST", base+"/distributions", tokB, map[string]any{"version": "2.0.0"}), http.StatusNotFound)
	var list struct {
		Items []struct {
			ID             int64
			OrganizationID int64 `json:"organization_id"`
		}
		NextCursor string `json:"next_cursor"`
	}
	a = e.call("GET", "/api/v2/policies", tokB, nil)
	a.JSON(t, &list)
	if len(list.Items) != 1 || list.Items[0].ID != e.orgB.PolicyID {
		t.Fatalf("globex's list: %s", a.Body)
	}

	// acme's list, paged by one.
	var ids []int64
	cursor := ""
	for range 5 {
		a = e.call("GET", "/api/v2/policies?limit=1&cursor="+cursor, tokA, nil)
		list.NextCursor = ""
		a.JSON(t, &list)
		for _, it := range list.Items {
			if it.OrganizationID != e.orgA.OrganizationID {
				t.Fatalf("acme's list holds %s", a.Body)
			}
			ids = append(ids, it.ID)
		}
		if cursor = list.NextCursor; cursor == "" {
			break
		}
	}
	if len(ids) != 2 || ids[0] != e.orgA.PolicyID || ids[1] != p.ID {
		t.Fatalf("acme's policies %v", ids)
	}
	// A platform ADMIN reads and releases any organisation's policy
	// (through the admin role's pool) and lists both organisations'.
	admin := e.token(accesstoken.Claims{UserID: 1, Role: "ADMIN"})
	wantStatus(t, "ADMIN reads", e.call("GET", base, admin, nil), http.StatusOK)
	wantStatus(t, "ADMIN's versions", e.call("GET", base+"/versions", admin, nil), http.StatusOK)
	wantStatus(t, "ADMIN's progress", e.call("GET", base+"/distributions/"+d.ID, admin, nil), http.StatusOK)
	a = e.call("GET", "/api/v2/policies", admin, nil)
	a.JSON(t, &list)
	if len(list.Items) != 3 {
		t.Fatalf("ADMIN's list: %s", a.Body)
	}
	tag = e.call("GET", base, admin, nil).Header.Get("ETag")
	a = e.call("PUT", base, admin, map[string]any{"content": map[string]any{"blocked_processes": []string{"x.exe"}}}, "If-Match", tag)
	wantStatus(t, "ADMIN updates", a, http.StatusOK)
	wantStatus(t, "ADMIN releases", e.call("POST", base+"/release", admin, map[string]any{}), http.StatusCreated)

	// The role refusals, audited: HR's create, update, release, rollback
	// and distribute; the lead's get and list.
	e.assertDenials(7)
}

// TestRetentionPolicies: managers read their organisation's rules and the
// platform defaults; ORG_ADMIN changes its own under If-Match, not a
// platform default (403) nor another organisation's (404); HR may not.
func TestRetentionPolicies(t *testing.T) {
	e := newAPIEnv(t)
	e.exec(`INSERT INTO retention_policies (organization_id, resource_type, retention_days) VALUES (NULL, 'active_windows', 90)`)
	tokA := e.orgAdmin(e.orgA)
	hr := e.token(accesstoken.Claims{UserID: e.orgA.UserID, OrganizationID: e.orgA.OrganizationID, Role: "HR"})
	var list struct {
		Items []struct {
			ID             string
			OrganizationID *int64 `json:"organization_id"`
			ResourceType   string `json:"resource_type"`
		}
		NextCursor string `json:"next_cursor"`
	}
	a := e.call("GET", "/api/v2/retention-policies", tokA, nil)
	a.JSON(t, &list)
	if a.Status != http.StatusOK || len(list.Items) != 2 {
		t.Fatalf("list: %d %s", a.Status, a.Body)
	}
	var own, platform string
	for _, it := range list.Items {
		switch {
		case it.OrganizationID == nil:
			platform = it.ID
		case *it.OrganizationID == e.orgA.OrganizationID:
			own = it.ID
		default:
			t.Fatalf("acme sees %s", a.Body)
		}
	}
	a = e.call("GET", "/api/v2/retention-policies?limit=1", tokA, nil)
	a.JSON(t, &list)
	if len(list.Items) != 1 || list.NextCursor == "" {
		t.Fatalf("page 1: %s", a.Body)
	}
	first := list.Items[0].ID
	a = e.call("GET", "/api/v2/retention-policies?limit=1&cursor="+list.NextCursor, tokA, nil)
	a.JSON(t, &list)
	if len(list.Items) != 1 || list.Items[0].ID == first {
		t.Fatalf("page 2: %s", a.Body)
	}
	wantStatus(t, "list as HR", e.call("GET", "/api/v2/retention-policies", hr, nil), http.StatusForbidden)

	path := "/api/v2/retention-policies/" + own
	a = e.call("GET", path, tokA, nil)
	wantStatus(t, "get", a, http.StatusOK)
	tag := a.Header.Get("ETag")
	change := map[string]any{"retention_days": 14, "action": "archive"}
	wantError(t, "update without If-Match", e.call("PATCH", path, tokA, change), http.StatusPreconditionRequired, "If-Match")
	wantError(t, "invalid days", e.call("PATCH", path, tokA, map[string]any{"retention_days": 0}, "If-Match", tag), http.StatusUnprocessableEntity, "/retention_days")
	wantError(t, "invalid action", e.call("PATCH", path, tokA, map[string]any{"action": "shred"}, "If-Match", tag), http.StatusUnprocessableEntity, "/action")
	wantStatus(t, "update as HR", e.call("PATCH", path, hr, change, "If-Match", tag), http.StatusForbidden)
	a = e.call("PATCH", path, tokA, change, "If-Match", tag)
	wantStatus(t, "update", a, http.StatusOK)
	var r struct {
		RetentionDays int    `json:"retention_days"`
		Action        string `json:"action"`
		Active        bool   `json:"active"`
	}
	a.JSON(t, &r)
	if r.RetentionDays != 14 || r.Action != "archive" || !r.Active || a.Header.Get("ETag") == tag {
		t.Fatalf("updated: %s %v", a.Body, a.Header)
	}
	wantError(t, "stale update", e.call("PATCH", path, tokA, map[string]any{"active": false}, "If-Match", tag), http.StatusPreconditionFailed, "If-Match")

	ptag := e.call("GET", "/api/v2/retention-policies/"+platform, tokA, nil).Header.Get("ETag")
	wantStatus(t, "update a platform default", e.call("PATCH", "/api/v2/retention-policies/"+platform, tokA, change, "If-Match", ptag), http.StatusForbidden)
	admin := e.token(accesstoken.Claims{UserID: 1, Role: "ADMIN"})
	wantStatus(t, "ADMIN updates a platform default", e.call("PATCH", "/api/v2/retention-policies/"+platform, admin, change, "If-Match", ptag), http.StatusOK)

	tokB := e.orgAdmin(e.orgB)
	wantStatus(t, "globex reads acme's", e.call("GET", path, tokB, nil), http.StatusNotFound)
	wantStatus(t, "globex updates acme's", e.call("PATCH", path, tokB, change, "If-Match", tag), http.StatusNotFound)
	wantStatus(t, "malformed id", e.call("GET", "/api/v2/retention-policies/x", tokA, nil), http.StatusNotFound)

	a = e.call("GET", "/api/v2/audit-log?resource_type=retention_policy", tokA, nil)
	if !strings.Contains(string(a.Body), own) {
		t.Fatalf("the change is not audited: %s", a.Body)
	}
}
