package dashboard_test

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
)

// The report routes over HTTP: the same report as HR, as a department
// lead and as an employee returns exactly their employees' days, never
// the other organisation's; CSV is streamed with its header; bad input is
// a 422 naming the parameter. The reports' arithmetic is report's tests'
// business; here: the wiring, the scopes and the formats.
func TestReportRoutes(t *testing.T) {
	e := newAPIEnv(t)
	a, b := e.orgA, e.orgB
	// A second department and employee in A, with activity of their own.
	var dep2, emp2 int64
	e.scan(&dep2, `INSERT INTO departments (organization_id, name) VALUES ($1, 'Sales') RETURNING id`, a.OrganizationID)
	e.scan(&emp2, `INSERT INTO employees (organization_id, department_id, employee_number, first_name, last_name)
		VALUES ($1, $2, 'E-2', 'Bo', 'Ray') RETURNING id`, a.OrganizationID, dep2)
	e.exec(`INSERT INTO employee_identities (organization_id, employee_id, kind, value) VALUES ($1, $2, 'windows_sid', 'S-2')`, a.OrganizationID, emp2)
	day := time.Now().UTC().Add(-48 * time.Hour).Truncate(24 * time.Hour)
	for _, org := range []struct {
		id  int64
		gw  uuid.UUID
		sid string
	}{{a.OrganizationID, a.GatewayID, "S-1-5-21-1"}, {a.OrganizationID, a.GatewayID, "S-2"}, {b.OrganizationID, b.GatewayID, "S-1-5-21-1"}} {
		for i := range 3 {
			e.exec(`INSERT INTO monitoring.active_windows (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, process_name, datetime, duration_seconds)
				VALUES ($1, $2, $3, 100, 'agent', 'PC', $4, 'code.exe', $5, 600)`,
				uuid.Must(uuid.NewV7()), org.id, org.gw, org.sid, day.Add(9*time.Hour+time.Duration(i)*10*time.Minute))
		}
		// What the insert functions mark in the same transaction: the hours
		// whose rollup is stale (here: never built, so read raw).
		e.exec(`INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour) VALUES ($1, $2, $3)`, org.id, org.sid, day.Add(9*time.Hour))
	}
	from, to := day.Format(time.DateOnly), day.Format(time.DateOnly)
	period := "from=" + from + "&to=" + to
	callers := map[string]struct {
		token string
		want  []string // employee numbers
	}{
		"HR":              {e.token(accesstoken.Claims{UserID: a.UserID, OrganizationID: a.OrganizationID, Role: "HR"}), []string{"E-1", "E-2"}},
		"ORG_ADMIN":       {e.orgAdmin(a), []string{"E-1", "E-2"}},
		"DEPARTMENT_LEAD": {e.token(accesstoken.Claims{UserID: a.UserID, OrganizationID: a.OrganizationID, Role: "DEPARTMENT_LEAD", DepartmentID: dep2}), []string{"E-2"}},
		"EMPLOYEE":        {e.token(accesstoken.Claims{UserID: a.UserID, OrganizationID: a.OrganizationID, Role: "EMPLOYEE", EmployeeID: a.EmployeeID}), []string{"E-1"}},
	}
	for role, c := range callers {
		t.Run(role, func(t *testing.T) {
			ans := e.call("GET", "/api/v2/reports/employee-days?"+period, c.token, nil)
			if ans.Status != http.StatusOK {
				t.Fatalf("employee-days: %d %s", ans.Status, ans.Body)
			}
			var days struct {
				Items []struct {
					EmployeeNumber  string `json:"employee_number"`
					Date            string `json:"date"`
					OccupiedSeconds int64  `json:"occupied_seconds"`
				} `json:"items"`
			}
			ans.JSON(t, &days)
			var got []string
			for _, d := range days.Items {
				got = append(got, d.EmployeeNumber)
				if d.Date != from || d.OccupiedSeconds != 30*60 {
					t.Errorf("%s: %+v, want %s with 30 occupied minutes", role, d, from)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, c.want) {
				t.Errorf("%s sees employees %v, want %v", role, got, c.want)
			}
			// The same rows as CSV, streamed with a header.
			ans = e.call("GET", "/api/v2/reports/employee-days?format=csv&"+period, c.token, nil)
			if ans.Status != http.StatusOK || !strings.HasPrefix(ans.Header.Get("Content-Type"), "text/csv") {
				t.Fatalf("csv: %d %s %s", ans.Status, ans.Header.Get("Content-Type"), ans.Body)
			}
			recs, err := csv.NewReader(strings.NewReader(string(ans.Body))).ReadAll()
			if err != nil || len(recs) != len(c.want)+1 {
				t.Errorf("csv: %d records (want header + %d): %v\n%s", len(recs), len(c.want), err, ans.Body)
			}
			// The summary ranks exactly the same employees.
			ans = e.call("GET", "/api/v2/reports/summary?"+period, c.token, nil)
			if ans.Status != http.StatusOK {
				t.Fatalf("summary: %d %s", ans.Status, ans.Body)
			}
			var sum struct {
				Employees []struct {
					EmployeeNumber string `json:"employee_number"`
				} `json:"employees"`
				Totals struct {
					OccupiedSeconds int64 `json:"occupied_seconds"`
				} `json:"totals"`
			}
			ans.JSON(t, &sum)
			got = got[:0]
			for _, s := range sum.Employees {
				got = append(got, s.EmployeeNumber)
			}
			slices.Sort(got)
			if !slices.Equal(got, c.want) || sum.Totals.OccupiedSeconds != int64(len(c.want))*30*60 {
				t.Errorf("%s: summary employees %v total %d, want %v", role, got, sum.Totals.OccupiedSeconds, c.want)
			}
			for _, path := range []string{"attendance", "attendance-vs-activity", "unknown-badges"} {
				if ans := e.call("GET", "/api/v2/reports/"+path+"?"+period, c.token, nil); ans.Status != http.StatusOK {
					t.Errorf("%s: %d %s", path, ans.Status, ans.Body)
				}
			}
		})
	}
	// B's employee E-1 has the same activity: asked by id, A's callers
	// never see it (not in their scope: no row).
	var empB int64
	e.scan(&empB, `SELECT id FROM employees WHERE organization_id = $1`, b.OrganizationID)
	ans := e.call("GET", fmt.Sprintf("/api/v2/reports/employee-days?%s&employee_id=%d", period, empB), callers["HR"].token, nil)
	var none struct{ Items []any }
	ans.JSON(t, &none)
	if ans.Status != http.StatusOK || len(none.Items) != 0 {
		t.Errorf("another organisation's employee: %d %s", ans.Status, ans.Body)
	}
	// Refusals name the parameter.
	hr := callers["HR"].token
	for _, c := range []struct{ query, field string }{
		{"to=" + to, "from"},
		{"from=" + from, "to"},
		{"from=yesterday&to=" + to, "from"},
		{"from=2026-01-01&to=2027-06-01", "to"},
		{period + "&format=xml", "format"},
		{period + "&employee_id=x", "employee_id"},
		{period + "&department_id=-1", "department_id"},
	} {
		ans := e.call("GET", "/api/v2/reports/employee-days?"+c.query, hr, nil)
		if code, field := ans.errorCode(t); ans.Status != http.StatusUnprocessableEntity || code != "validation_failed" || !strings.HasSuffix(field, c.field) {
			t.Errorf("%s: %d %s %s, want 422 naming %s", c.query, ans.Status, code, field, c.field)
		}
	}
}
