package consolebrowser

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/dashboard"
	"github.com/staffcontrol/staffcontrol/internal/cloud/directory"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/signin"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

// The stack every browser test runs against: a fresh migrated database,
// the Dashboard API (with its sign-in service, so the console works) on a
// loopback HTTP server, and two organisations seeded through the real
// services (accounts for organisations and users, directory for
// departments and employees), as an operator and an HR manager would.

// password is every seeded user's password.
const password = "correct horse battery staple"

// Seeded users, by e-mail.
const (
	hrEmail     = "hr@acme.test"
	leadEmail   = "lead@acme.test"
	globexEmail = "hr@globex.test"
)

// stack is one test's running console and what was seeded into it.
type stack struct {
	t testing.TB
	// URL is the API's base URL (the console is under /console/).
	URL string
	// admin is the test server's administrator pool: fixtures the
	// services have no way in for (agent data) and checks only.
	admin *pgxpool.Pool
	// db is the Dashboard API's own pool (the dashboard role).
	db  *pgxpool.Pool
	dir *directory.Service
	// database is the stack's database (its URLs start the live parts,
	// see startLiveStack).
	database *pgtest.Database
	// gw1 is the seeded gateway ACME-GW-1's registration (its one-time
	// provisioning token: a live stack provisions it).
	gw1 accounts.Registration

	// Acme: Engineering (Ann Lee, Ben Okafor) and Sales (Sara Salesonly,
	// led by lead@acme.test); Globex: Gil Globexonly.
	acme, globex          int64
	engineering, sales    int64
	ann, ben, sara, gil   int64
	annSID                string
	acmeTenant, gxtTenant postgres.Tenant
}

// startStack starts the API over a fresh database for t and seeds it.
// Every stack is for a browser, so a test without Chromium skips (or
// fails, see EnvRequire) here, before the work.
func startStack(t *testing.T) *stack {
	t.Helper()
	chromium(t)
	return newStack(t, logtest.New(t))
}

// shared is the stack of the tests that only read (see sharedStack).
var shared struct {
	once sync.Once
	tb   *binaryTB
	s    *stack
	err  error
}

// sharedStack returns the test binary's shared stack, started by the
// first test asking for it and removed by TestMain. Tests that change
// nothing seeded (they sign in, browse and search) share it, which saves
// a database and a seeding each; a test that changes data or locks an
// account starts its own (startStack).
func sharedStack(t *testing.T) *stack {
	t.Helper()
	chromium(t)
	shared.once.Do(func() {
		shared.tb = &binaryTB{}
		defer func() {
			if r := recover(); r != nil {
				f, ok := r.(binaryFatal)
				if !ok {
					panic(r)
				}
				shared.err = f
			}
		}()
		log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		shared.s = newStack(shared.tb, log)
	})
	if shared.err != nil {
		t.Fatalf("the shared stack: %v", shared.err)
	}
	return shared.s
}

// stopSharedStack removes the shared stack, if one was started.
func stopSharedStack() {
	if shared.tb != nil {
		shared.tb.cleanup()
	}
}

// binaryTB is the testing.TB of what outlives one test (the shared
// stack): its cleanups run when TestMain calls cleanup, its fatal errors
// are panics of type binaryFatal (recovered by sharedStack), its logs go
// to stderr. Methods it does not define are not used by the stack.
type binaryTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
}

// binaryFatal is a fatal error of a binaryTB.
type binaryFatal struct{ msg string }

func (f binaryFatal) Error() string { return f.msg }

// Helper, Name, Cleanup, Fatalf, Fatal, Errorf and Logf are the
// testing.TB methods the stack, pgtest and the services call.
func (b *binaryTB) Helper()      {}
func (b *binaryTB) Name() string { return "shared" }
func (b *binaryTB) Cleanup(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cleanups = append(b.cleanups, f)
}
func (b *binaryTB) Fatalf(format string, args ...any) {
	panic(binaryFatal{fmt.Sprintf(format, args...)})
}
func (b *binaryTB) Fatal(args ...any) { panic(binaryFatal{fmt.Sprint(args...)}) }
func (b *binaryTB) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "consolebrowser: shared stack: "+format+"\n", args...)
}
func (b *binaryTB) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "consolebrowser: shared stack: "+format+"\n", args...)
}

// cleanup runs the cleanups, the last registered first, each on its own
// (a failing one does not stop the others).
func (b *binaryTB) cleanup() {
	b.mu.Lock()
	fs := b.cleanups
	b.cleanups = nil
	b.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		func() {
			defer func() {
				if r := recover(); r != nil {
					fmt.Fprintf(os.Stderr, "consolebrowser: shared stack cleanup: %v\n", r)
				}
			}()
			fs[i]()
		}()
	}
}

// newStack starts the API over a fresh database for t (logging to log)
// and seeds it.
func newStack(t testing.TB, log *slog.Logger) *stack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := pg.NewDatabase(t)
	s := &stack{t: t, admin: pg.Pool(t, db.AdminURL, 2), db: pg.Pool(t, db.DashboardURL, 4), dir: directory.New(), database: db}

	key, err := accesstoken.GenerateKey("consolebrowser")
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := accesstoken.New(accesstoken.Config{Issuer: "consolebrowser", Audience: "consolebrowser", Keys: []accesstoken.Key{key}})
	if err != nil {
		t.Fatal(err)
	}
	in, err := signin.New(signin.Config{MaxFailures: 3, LockBase: time.Minute}, signin.Deps{DB: s.db, Tokens: tokens, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	api, err := dashboard.NewAPI(dashboard.Deps{DB: s.db, AdminDB: pg.Pool(t, db.PlatformAdminURL, 2), Tokens: tokens,
		SignIn: in, SessionRecheck: 200 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := api.Events().Start(ctx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(func() {
		srv.Close()
		_ = api.Events().Stop(context.Background())
	})
	s.URL = srv.URL
	s.seed(ctx, pg.Pool(t, db.PlatformAdminURL, 2))
	return s
}

// seed creates the organisations, departments, employees and users.
func (s *stack) seed(ctx context.Context, platform *pgxpool.Pool) {
	t := s.t
	t.Helper()
	acc := accounts.New(platform, time.Now)
	op := accounts.Actor{Name: "consolebrowser", Tenant: postgres.Tenant{Role: postgres.AppAdmin, Actor: "consolebrowser"}}
	org := func(name, slug string) int64 {
		o, err := acc.CreateOrganization(ctx, op, name, slug)
		if err != nil {
			t.Fatalf("create organisation %s: %v", slug, err)
		}
		return o.ID
	}
	s.acme, s.globex = org("Acme", "acme"), org("Globex", "globex")
	s.acmeTenant = postgres.Tenant{OrganizationID: s.acme, Role: postgres.AppOrgAdmin, Actor: "consolebrowser"}
	s.gxtTenant = postgres.Tenant{OrganizationID: s.globex, Role: postgres.AppOrgAdmin, Actor: "consolebrowser"}

	dept := func(tn postgres.Tenant, name string) int64 {
		d, err := s.dir.CreateDepartment(ctx, s.db, tn, directory.DepartmentInput{Name: name})
		if err != nil {
			t.Fatalf("create department %s: %v", name, err)
		}
		return d.ID
	}
	s.engineering, s.sales = dept(s.acmeTenant, "Engineering"), dept(s.acmeTenant, "Sales")
	gxEng := dept(s.gxtTenant, "Engineering")

	s.annSID = "S-1-5-21-1001"
	s.ann = s.addEmployee(s.acmeTenant, s.engineering, "E-1", "Ann", "Lee", s.annSID)
	// Ben's e-mail and position are long, as real ones can be: they must
	// wrap on a tablet.
	email := "benjamin.chukwuemeka.okafor-international-partnerships@engineering.acme-holdings.example"
	position := "Senior Principal Engineer, Infrastructure Reliability and Developer Productivity"
	s.ben = s.addEmployeeWith(s.acmeTenant, directory.EmployeeInput{DepartmentID: &s.engineering, EmployeeNumber: "E-2",
		FirstName: "Ben", LastName: "Okafor", Email: &email, Position: &position,
		Identities: []directory.IdentityInput{{Kind: directory.KindWindowsSID, Value: "S-1-5-21-1002"}}})
	s.sara = s.addEmployee(s.acmeTenant, s.sales, "S-1", "Sara", "Salesonly", "S-1-5-21-1003")
	s.gil = s.addEmployee(s.gxtTenant, gxEng, "G-1", "Gil", "Globexonly", "S-1-5-21-2001")

	user := func(orgID int64, email, role string, department int64) {
		if _, err := acc.CreateUser(ctx, op, accounts.NewUser{OrganizationID: orgID, Email: email, Role: role,
			Password: password, DepartmentID: department}); err != nil {
			t.Fatalf("create user %s: %v", email, err)
		}
	}
	user(s.acme, hrEmail, "HR", 0)
	user(s.acme, leadEmail, "DEPARTMENT_LEAD", s.sales)
	user(s.globex, globexEmail, "HR", 0)

	// A registered gateway, so that the overview's fleet table has a row.
	reg, err := acc.RegisterGateway(ctx, op, s.acme, "ACME-GW-1", "Head office", time.Hour)
	if err != nil {
		t.Fatalf("register a gateway: %v", err)
	}
	s.gw1 = reg
	// Some activity of Ann's, so that her page lists applications.
	s.addWindow(s.acme, s.annSID, "Quarterly report.xlsx - Excel", "excel.exe", 40*time.Minute)
	s.addWindow(s.acme, s.annSID, "Inbox - Outlook", "outlook.exe", 15*time.Minute)
	// A long title without a space (a path), which must wrap rather than
	// widen the page on a tablet.
	s.addWindow(s.acme, s.annSID, `C:\Users\ann.lee\AppData\Local\Temp\`+strings.Repeat("quarterly_forecast_", 8)+`final.docx`, "winword.exe", 5*time.Minute)
}

// addEmployee creates an employee of tn's organisation in department
// through the directory, with a Windows SID identity, and returns its id.
func (s *stack) addEmployee(tn postgres.Tenant, department int64, number, first, last, sid string) int64 {
	s.t.Helper()
	return s.addEmployeeWith(tn, directory.EmployeeInput{DepartmentID: &department, EmployeeNumber: number,
		FirstName: first, LastName: last, Identities: []directory.IdentityInput{{Kind: directory.KindWindowsSID, Value: sid}}})
}

// addEmployeeWith creates the employee in (active) through the directory
// and returns its id.
func (s *stack) addEmployeeWith(tn postgres.Tenant, in directory.EmployeeInput) int64 {
	s.t.Helper()
	in.Status = "active"
	number := in.EmployeeNumber
	e, err := s.dir.CreateEmployee(context.Background(), s.db, tn, in)
	if err != nil {
		s.t.Fatalf("create employee %s: %v", number, err)
	}
	return e.ID
}

// addWindow records an active-window event of the agent user sid, as the
// ingest would store it (the agents' path is exercised by the pipeline
// tests; here only what the console shows of it matters).
func (s *stack) addWindow(org int64, sid, title, process string, d time.Duration) {
	s.t.Helper()
	var gw string
	if err := s.admin.QueryRow(context.Background(), `SELECT id::text FROM gateway_instances WHERE organization_id = $1 LIMIT 1`, org).Scan(&gw); err != nil {
		s.t.Fatalf("a gateway of organisation %d: %v", org, err)
	}
	if _, err := s.admin.Exec(context.Background(), `INSERT INTO monitoring.active_windows (id, organization_id, gateway_id, seq, agent_uid,
		computer_uid, user_sid, window_title, process_name, datetime, duration_seconds)
		VALUES (gen_random_uuid(), $1, $2, (SELECT coalesce(max(seq), 0) + 1 FROM monitoring.active_windows), 'agent-1', 'pc-1', $3, $4, $5, now(), $6)`,
		org, gw, sid, title, process, int(d.Seconds())); err != nil {
		s.t.Fatalf("record a window: %v", err)
	}
}
