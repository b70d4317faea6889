package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
)

// The role × endpoint matrix: every route of the routes table, called by
// every role of acme with globex's ids in its path (and, for lists, with
// none). Nothing of globex ever reaches acme's callers: an id of globex
// answers 404 (403 when the role may not call the route at all, which
// says nothing about the id), a list holds no row of globex, no answer is
// a 5xx, and globex's rows are byte for byte the same afterwards.

// paramTable is where a path parameter's value comes from, by the path
// segment before it ({id} after "employees" is an employee id) or by its
// own name.
var paramTable = map[string]string{
	"organizations":      `SELECT id::text FROM organizations WHERE id = $1`,
	"departments":        `SELECT id::text FROM departments WHERE organization_id = $1 ORDER BY id LIMIT 1`,
	"employees":          `SELECT id::text FROM employees WHERE organization_id = $1 ORDER BY id LIMIT 1`,
	"users":              `SELECT id::text FROM users WHERE organization_id = $1 ORDER BY id LIMIT 1`,
	"policies":           `SELECT id::text FROM policies WHERE organization_id = $1 ORDER BY id LIMIT 1`,
	"gateways":           `SELECT id::text FROM gateway_instances WHERE organization_id = $1 ORDER BY id LIMIT 1`,
	"devices":            `SELECT id::text FROM devices WHERE organization_id = $1 ORDER BY id LIMIT 1`,
	"retention-policies": `SELECT id::text FROM retention_policies WHERE organization_id = $1 ORDER BY id LIMIT 1`,
	"commands":           `SELECT id::text FROM gateway_commands WHERE organization_id = $1 ORDER BY id LIMIT 1`,
	"device-commands":    `SELECT id::text FROM device_commands WHERE organization_id = $1 ORDER BY id LIMIT 1`,
	"agents":             `SELECT id::text FROM agent_instances WHERE organization_id = $1 ORDER BY id LIMIT 1`,
	"distribution_id":    `SELECT id::text FROM policy_distributions WHERE organization_id = $1 ORDER BY id LIMIT 1`,
	"version":            `SELECT version FROM policy_versions WHERE organization_id = $1 ORDER BY released_at LIMIT 1`,
	"screenshots":        `SELECT id::text FROM monitoring.screenshots WHERE organization_id = $1 ORDER BY id LIMIT 1`,
}

// tenantTables are fingerprinted before and after the matrix.
var tenantTables = []string{"organizations", "departments", "employees", "employee_identities", "users", "policies",
	"policy_versions", "policy_distributions", "gateway_instances", "provisioning_tokens", "agent_instances", "devices",
	"gateway_commands", "device_commands", "retention_policies"}

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

// fillPath puts org's ids into path's parameters.
func fillPath(t *testing.T, conn *pgx.Conn, path string, org int64) string {
	t.Helper()
	segs := strings.Split(path, "/")
	for i, s := range segs {
		m := pathParam.FindStringSubmatch(s)
		if m == nil {
			continue
		}
		key := m[1]
		if key == "id" {
			key = segs[i-1]
		}
		q, ok := paramTable[key]
		if !ok {
			t.Fatalf("%s: no fixture for {%s}: add one to paramTable", path, m[1])
		}
		var v string
		if err := conn.QueryRow(context.Background(), q, org).Scan(&v); err != nil {
			t.Fatalf("%s: {%s}: %v", path, m[1], err)
		}
		segs[i] = v
	}
	return strings.Join(segs, "/")
}

// fingerprint is an md5 of every tenant table's rows of org.
func fingerprint(t *testing.T, conn *pgx.Conn, org int64) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, table := range tenantTables {
		col := "organization_id"
		if table == "organizations" {
			col = "id"
		}
		var fp string
		q := fmt.Sprintf(`SELECT coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM %s t WHERE %s = $1`, table, col)
		if err := conn.QueryRow(context.Background(), q, org).Scan(&fp); err != nil {
			t.Fatalf("fingerprint %s: %v", table, err)
		}
		out[table] = fp
	}
	return out
}

// leaks reports where a JSON answer holds globex: an organization_id of
// globex or its slug in any string.
func leaks(body []byte, org int64, slug string) string {
	var v any
	if json.Unmarshal(body, &v) != nil {
		if strings.Contains(string(body), slug) {
			return "the slug in a non-JSON answer"
		}
		return ""
	}
	var walk func(path string, v any) string
	walk = func(path string, v any) string {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				if k == "organization_id" {
					if n, ok := c.(float64); ok && int64(n) == org {
						return path + "/" + k
					}
				}
				if r := walk(path+"/"+k, c); r != "" {
					return r
				}
			}
		case []any:
			for i, c := range x {
				if r := walk(fmt.Sprintf("%s/%d", path, i), c); r != "" {
					return r
				}
			}
		case string:
			if strings.Contains(x, slug) {
				return path
			}
		}
		return ""
	}
	return walk("", v)
}

func TestRoleEndpointMatrix(t *testing.T) {
	e := newAPIEnv(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	before := fingerprint(t, conn, e.orgB.OrganizationID)
	a := e.orgA
	callers := map[string]string{
		"ORG_ADMIN":       e.orgAdmin(a),
		"HR":              e.token(accesstoken.Claims{UserID: a.UserID, OrganizationID: a.OrganizationID, Role: "HR"}),
		"DEPARTMENT_LEAD": e.token(accesstoken.Claims{UserID: a.UserID, OrganizationID: a.OrganizationID, Role: "DEPARTMENT_LEAD", DepartmentID: a.DepartmentID}),
		"EMPLOYEE":        e.token(accesstoken.Claims{UserID: a.UserID, OrganizationID: a.OrganizationID, Role: "EMPLOYEE", EmployeeID: a.EmployeeID}),
	}
	roles := []string{"ORG_ADMIN", "HR", "DEPARTMENT_LEAD", "EMPLOYEE"}
	tried := 0
	for _, r := range e.api.Routes() {
		if r.Public || r.Path == "/api/v2/events" || strings.HasPrefix(r.Path, "/api/auth/") {
			continue // no tenant data (the caller's own session); the stream has its own test
		}
		withIDs := strings.Contains(r.Path, "{")
		path := r.Path
		if withIDs {
			path = fillPath(t, conn, r.Path, e.orgB.OrganizationID)
		}
		for _, role := range roles {
			var body any
			if r.Method != "GET" && r.Method != "DELETE" {
				body = map[string]any{}
			}
			ans := e.call(r.Method, path, callers[role], body, "If-Match", `"1"`)
			tried++
			allowed := len(r.Roles) == 0 || slices.Contains(r.Roles, role)
			what := fmt.Sprintf("%s %s as %s", r.Method, path, role)
			switch {
			case ans.Status >= 500:
				t.Errorf("%s: %d %s", what, ans.Status, ans.Body)
			case !allowed:
				if ans.Status != http.StatusForbidden {
					t.Errorf("%s: %d, want 403 (the role may not)", what, ans.Status)
				}
			case withIDs && r.Method == "GET":
				// 404; or a required query parameter missing, refused
				// before any row is read (the field names the parameter).
				if _, field := ans.errorCode(t); ans.Status != http.StatusNotFound &&
					!(ans.Status == http.StatusUnprocessableEntity && field != "" && !strings.HasPrefix(field, "/")) {
					t.Errorf("%s: %d, want 404 for globex's id: %s", what, ans.Status, ans.Body)
				}
			case withIDs:
				// A write with globex's id: not found, or refused for its
				// body before the row is looked up (then globex's rows are
				// checked unchanged below).
				if ans.Status != http.StatusNotFound && ans.Status != http.StatusUnprocessableEntity && ans.Status != http.StatusBadRequest {
					t.Errorf("%s: %d, want 404: %s", what, ans.Status, ans.Body)
				}
			}
			if where := leaks(ans.Body, e.orgB.OrganizationID, "globex"); where != "" {
				t.Errorf("%s: globex in the answer at %s: %s", what, where, ans.Body)
			}
		}
	}
	if after := fingerprint(t, conn, e.orgB.OrganizationID); !maps.Equal(before, after) {
		t.Errorf("globex's rows changed:\nbefore %v\nafter  %v", before, after)
	}
	t.Logf("%d calls over %d routes", tried, len(e.api.Routes()))
}

// TestScopesOverHTTP: a department lead sees their department's subtree
// and its employees only, an employee themself only (the database's
// role scopes, through the API); another department's employee is 404 to
// both, and gateways are refused to both.
func TestScopesOverHTTP(t *testing.T) {
	e := newAPIEnv(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	a := e.orgA
	var child, sibling, childEmp, siblingEmp int64
	q := func(dst *int64, sql string, args ...any) {
		t.Helper()
		if err := conn.QueryRow(ctx, sql, args...).Scan(dst); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	q(&child, `INSERT INTO departments (organization_id, parent_id, name) VALUES ($1, $2, 'Backend') RETURNING id`, a.OrganizationID, a.DepartmentID)
	q(&sibling, `INSERT INTO departments (organization_id, name) VALUES ($1, 'Sales') RETURNING id`, a.OrganizationID)
	q(&childEmp, `INSERT INTO employees (organization_id, department_id, employee_number, first_name, last_name) VALUES ($1, $2, 'E-2', 'Bo', 'Child') RETURNING id`, a.OrganizationID, child)
	q(&siblingEmp, `INSERT INTO employees (organization_id, department_id, employee_number, first_name, last_name) VALUES ($1, $2, 'E-3', 'Cy', 'Sibling') RETURNING id`, a.OrganizationID, sibling)
	ids := func(tok, path string) []int64 {
		t.Helper()
		ans := e.call("GET", path, tok, nil)
		if ans.Status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, ans.Status, ans.Body)
		}
		var page struct{ Items []struct{ ID int64 } }
		ans.JSON(t, &page)
		var out []int64
		for _, it := range page.Items {
			out = append(out, it.ID)
		}
		slices.Sort(out)
		return out
	}
	sorted := func(v ...int64) []int64 { slices.Sort(v); return v }
	lead := e.token(accesstoken.Claims{UserID: a.UserID, OrganizationID: a.OrganizationID, Role: "DEPARTMENT_LEAD", DepartmentID: a.DepartmentID})
	emp := e.token(accesstoken.Claims{UserID: a.UserID, OrganizationID: a.OrganizationID, Role: "EMPLOYEE", EmployeeID: a.EmployeeID})
	hr := e.token(accesstoken.Claims{UserID: a.UserID, OrganizationID: a.OrganizationID, Role: "HR"})
	for _, tc := range []struct {
		who, tok         string
		employees, depts []int64
	}{
		{"HR", hr, sorted(a.EmployeeID, childEmp, siblingEmp), sorted(a.DepartmentID, child, sibling)},
		{"lead", lead, sorted(a.EmployeeID, childEmp), sorted(a.DepartmentID, child)},
		{"employee", emp, []int64{a.EmployeeID}, []int64{a.DepartmentID}},
	} {
		if got := ids(tc.tok, "/api/v2/employees"); !slices.Equal(got, tc.employees) {
			t.Errorf("%s sees employees %v, want %v", tc.who, got, tc.employees)
		}
		if got := ids(tc.tok, "/api/v2/departments"); !slices.Equal(got, tc.depts) {
			t.Errorf("%s sees departments %v, want %v", tc.who, got, tc.depts)
		}
	}
	for who, tok := range map[string]string{"lead": lead, "employee": emp} {
		if ans := e.call("GET", fmt.Sprintf("/api/v2/employees/%d", siblingEmp), tok, nil); ans.Status != http.StatusNotFound {
			t.Errorf("%s GET another department's employee: %d", who, ans.Status)
		}
		if ans := e.call("GET", "/api/v2/gateways", tok, nil); ans.Status != http.StatusForbidden {
			t.Errorf("%s GET gateways: %d", who, ans.Status)
		}
	}
	if ans := e.call("GET", fmt.Sprintf("/api/v2/employees/%d", childEmp), emp, nil); ans.Status != http.StatusNotFound {
		t.Errorf("employee GET a colleague: %d", ans.Status)
	}
	// A lead token whose department is not signed sees nothing scoped.
	unscoped := e.token(accesstoken.Claims{UserID: a.UserID, OrganizationID: a.OrganizationID, Role: "DEPARTMENT_LEAD"})
	if got := ids(unscoped, "/api/v2/employees"); len(got) != 0 {
		t.Errorf("a lead without a department sees %v", got)
	}
}
