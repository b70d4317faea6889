package dashboard_test

import (
	"fmt"
	"net/http"
	"testing"
)

// BenchmarkConsolePages measures the web console's pages against the
// JSON API route that reads the same rows (the baseline), over the same
// running API and database: 180 employees more than the seed, one page
// of 50. Reported: bytes per answer.
//
//	TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//	  nice go test ./internal/cloud/dashboard/ -run '^$' -bench BenchmarkConsolePages -count 5
func BenchmarkConsolePages(b *testing.B) {
	e := newConsoleEnv(b)
	e.addUser(e.orgA.OrganizationID, "hr@acme.test", "HR", consolePassword, 0, 0)
	e.exec(`INSERT INTO employees (organization_id, department_id, employee_number, first_name, last_name, position, email)
		SELECT $1, $2, 'P-' || lpad(i::text, 4, '0'), 'Firstname' || i, 'Lastname' || lpad(i::text, 4, '0'),
		       'Position ' || i, 'person' || i || '@acme.test'
		FROM generate_series(1, 180) i`, e.orgA.OrganizationID, e.orgA.DepartmentID)
	br := newBrowser(b, e)
	br.mustSignIn("hr@acme.test", consolePassword)
	api := e.login("hr@acme.test", consolePassword)
	for _, bc := range []struct {
		name string
		get  func() (int, int)
	}{
		{"api_employees_json", func() (int, int) {
			// A plain request (e.call would also validate the answer
			// against the OpenAPI document, which the pages do not pay).
			req, err := http.NewRequest("GET", e.srv.URL+"/api/v2/employees?limit=50", nil)
			if err != nil {
				b.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+api.AccessToken)
			p := br.do(req)
			return p.Status, len(p.Body)
		}},
		{"console_employees", func() (int, int) {
			p := br.get("/console/employees")
			return p.Status, len(p.Body)
		}},
		{"console_overview", func() (int, int) {
			p := br.get("/console/")
			return p.Status, len(p.Body)
		}},
		{"console_employee", func() (int, int) {
			p := br.get(fmt.Sprintf("/console/employees/%d", e.orgA.EmployeeID))
			return p.Status, len(p.Body)
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			size := 0
			for b.Loop() {
				status, n := bc.get()
				if status != http.StatusOK {
					b.Fatalf("%s: %d", bc.name, status)
				}
				size = n
			}
			b.ReportMetric(float64(size), "bytes/page")
		})
	}
}
