package dashboard_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
	"github.com/staffcontrol/staffcontrol/internal/cloud/directory"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// The Dashboard API's figures (docs/benchmarks.md, "Dashboard API"): each
// benchmark drives the API over loopback HTTP from 4 client goroutines and
// reports requests/s and the p50/p99 latency.

// seedEmployees gives acme n more employees, each with a Windows SID and
// a card number.
func seedEmployees(b *testing.B, e *apiEnv, n int) {
	b.Helper()
	e.exec(`INSERT INTO employees (organization_id, department_id, employee_number, first_name, last_name, email)
		SELECT $1, $2, 'B-' || g, 'First' || g, 'Last' || lpad(g::text, 6, '0'), 'p' || g || '@acme.test'
		FROM generate_series(1, $3) g`, e.orgA.OrganizationID, e.orgA.DepartmentID, n)
	e.exec(`INSERT INTO employee_identities (organization_id, employee_id, kind, value)
		SELECT organization_id, id, 'windows_sid', 'S-1-5-21-9-' || id FROM employees WHERE employee_number LIKE 'B-%'
		UNION ALL
		SELECT organization_id, id, 'card_number', 'C' || id FROM employees WHERE employee_number LIKE 'B-%'`)
	e.exec(`ANALYZE employees; ANALYZE employee_identities`)
}

// drive runs req from 4 goroutines b.N times in all and reports req/s,
// p50 and p99.
func drive(b *testing.B, e *apiEnv, req func() *http.Request, want int) {
	b.Helper()
	const workers = 4
	client := e.srv.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = workers
	var (
		mu   sync.Mutex
		lats []time.Duration
		next = make(chan struct{}, b.N)
		wg   sync.WaitGroup
		errs = make(chan error, workers)
	)
	for range b.N {
		next <- struct{}{}
	}
	close(next)
	b.ResetTimer()
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for range next {
				t0 := time.Now()
				resp, err := client.Do(req())
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	slices.Sort(lats)
	b.ReportMetric(float64(len(lats))/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(lats[len(lats)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkListEmployees: GET /api/v2/employees (one page of 50, with
// identities) as HR of an organisation of 10,000 employees.
func BenchmarkListEmployees(b *testing.B) {
	e := newAPIEnv(b)
	seedEmployees(b, e, 10000)
	tok := e.token(accesstoken.Claims{UserID: e.orgA.UserID, OrganizationID: e.orgA.OrganizationID, Role: "HR"})
	drive(b, e, func() *http.Request {
		r, _ := http.NewRequest("GET", e.srv.URL+"/api/v2/employees?limit=50&sort=last_name", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return r
	}, http.StatusOK)
}

// BenchmarkGetEmployee: GET /api/v2/employees/{id} with identities, over
// 10,000 employees.
func BenchmarkGetEmployee(b *testing.B) {
	e := newAPIEnv(b)
	seedEmployees(b, e, 10000)
	tok := e.token(accesstoken.Claims{UserID: e.orgA.UserID, OrganizationID: e.orgA.OrganizationID, Role: "HR"})
	var ids []int64
	conn, err := pgx.Connect(context.Background(), e.db.AdminURL)
	if err != nil {
		b.Fatal(err)
	}
	rows, _ := conn.Query(context.Background(), `SELECT id FROM employees WHERE employee_number LIKE 'B-%' ORDER BY random() LIMIT 1000`)
	ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	conn.Close(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	i := 0
	drive(b, e, func() *http.Request {
		mu.Lock()
		id := ids[i%len(ids)]
		i++
		mu.Unlock()
		r, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v2/employees/%d", e.srv.URL, id), nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return r
	}, http.StatusOK)
}

// BenchmarkLogin: POST /api/auth/login with the right password (argon2id
// at auth's parameters: the cost is the hash, by design).
func BenchmarkLogin(b *testing.B) {
	e := newAPIEnv(b, withSignIn(signInPolicy))
	e.addUser(e.orgA.OrganizationID, "bench@acme.test", "HR", "correct horse battery", 0, 0)
	drive(b, e, func() *http.Request {
		r, _ := http.NewRequest("POST", e.srv.URL+"/api/auth/login", stringsReader(`{"email":"bench@acme.test","password":"correct horse battery"}`))
		r.Header.Set("Content-Type", "application/json")
		return r
	}, http.StatusOK)
}

// BenchmarkListEmployeesRLS: the list's database work alone (directory
// ListEmployees, one page of 50 of 10,000), as the dashboard role under
// row-level security with HR's context, against the same call as the
// test server's superuser, which bypasses row-level security: the cost of
// RLS, side by side.
func BenchmarkListEmployeesRLS(b *testing.B) {
	e := newAPIEnv(b)
	seedEmployees(b, e, 10000)
	hr := postgres.Tenant{OrganizationID: e.orgA.OrganizationID, Role: postgres.AppHR, UserID: e.orgA.UserID}
	for _, tc := range []struct {
		name string
		url  string
	}{{"dashboard-role-rls", e.db.DashboardURL}, {"superuser-no-rls", e.db.AdminURL}} {
		b.Run(tc.name, func(b *testing.B) {
			pool := pg.Pool(b, tc.url, 4)
			svc := directory.New()
			ctx := context.Background()
			b.ResetTimer()
			for range b.N {
				es, _, err := svc.ListEmployees(ctx, pool, hr, directory.EmployeeFilter{}, directory.Page{Limit: 50, Sort: "last_name"})
				if err != nil || len(es) != 50 {
					b.Fatalf("%d employees, %v", len(es), err)
				}
			}
		})
	}
}
