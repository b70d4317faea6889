package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// scopeTree is what seedScopeTree adds to an organisation seeded by
// pgtest.SeedOrganization, shaped identically in every organisation:
//
//	Engineering (seeded; Ann, E-1)
//	├── Platform (Pia, E-2: windows_sid S-1-5-21-2)
//	│   └── Storage (Sam, E-3: windows_sid S-1-5-21-3, card C-3)
//	└── Frontend (Fay, E-4: windows_sid S-1-5-21-4, employee_number identity B-4)
//
// with the users lead (DEPARTMENT_LEAD of Platform, Pia's account), sam
// (EMPLOYEE, Sam's account), fay (EMPLOYEE, Fay's account) and hr (HR), and
// one row per agent series and one access-control event for each of Pia,
// Sam and Fay (Pia's event by her employee number, Sam's by his card, Fay's
// by her badge identity), and a fallback-only window event for Sam and Fay.
type scopeTree struct {
	org                               int64
	gateway                           uuid.UUID
	root, platform, storage, frontend int64
	ann, pia, sam, fay                int64
	admin, lead, samUser, fayUser, hr int64
	identities                        map[int64][]string            // employee → identity ids
	series                            map[string]map[int64][]string // view → employee → row ids
}

func seedScopeTree(ctx context.Context, t testing.TB, admin *pgx.Conn, s pgtest.Seeded) *scopeTree {
	t.Helper()
	tr := &scopeTree{org: s.OrganizationID, gateway: s.GatewayID, root: s.DepartmentID, ann: s.EmployeeID, admin: s.UserID,
		identities: map[int64][]string{}, series: map[string]map[int64][]string{}}
	one := func(sql string, args ...any) int64 {
		t.Helper()
		var id int64
		if err := admin.QueryRow(ctx, sql, args...).Scan(&id); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return id
	}
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := admin.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	dept := `INSERT INTO departments (organization_id, parent_id, name) VALUES ($1, $2, $3) RETURNING id`
	tr.platform = one(dept, tr.org, tr.root, "Platform")
	tr.storage = one(dept, tr.org, tr.platform, "Storage")
	tr.frontend = one(dept, tr.org, tr.root, "Frontend")
	emp := `INSERT INTO employees (organization_id, department_id, employee_number, first_name, last_name) VALUES ($1, $2, $3, $4, 'Doe') RETURNING id`
	tr.pia = one(emp, tr.org, tr.platform, "E-2", "Pia")
	tr.sam = one(emp, tr.org, tr.storage, "E-3", "Sam")
	tr.fay = one(emp, tr.org, tr.frontend, "E-4", "Fay")
	tr.identities[tr.ann] = []string{fmt.Sprint(one(`SELECT id FROM employee_identities WHERE employee_id = $1`, tr.ann))}
	ident := func(e int64, kind, value string) {
		tr.identities[e] = append(tr.identities[e], fmt.Sprint(one(`INSERT INTO employee_identities (organization_id, employee_id, kind, value) VALUES ($1, $2, $3, $4) RETURNING id`,
			tr.org, e, kind, value)))
	}
	ident(tr.pia, "windows_sid", "S-1-5-21-2")
	ident(tr.sam, "windows_sid", "S-1-5-21-3")
	ident(tr.sam, "card_number", "C-3")
	ident(tr.fay, "windows_sid", "S-1-5-21-4")
	ident(tr.fay, "employee_number", "B-4")
	user := `INSERT INTO users (organization_id, email, password_hash, role, department_id, employee_id) VALUES ($1, $2, 'x', $3, $4, $5) RETURNING id`
	slug := fmt.Sprint(tr.org)
	tr.lead = one(user, tr.org, "lead@"+slug+".test", "DEPARTMENT_LEAD", tr.platform, tr.pia)
	tr.samUser = one(user, tr.org, "sam@"+slug+".test", "EMPLOYEE", tr.storage, tr.sam)
	tr.fayUser = one(user, tr.org, "fay@"+slug+".test", "EMPLOYEE", tr.frontend, tr.fay)
	tr.hr = one(user, tr.org, "hr@"+slug+".test", "HR", nil, nil)

	now := time.Now().UTC()
	seq := int64(100)
	add := func(view string, e int64, sql string, args ...any) {
		t.Helper()
		id := uuid.Must(uuid.NewV7())
		seq++
		exec(sql, append([]any{id, tr.org, tr.gateway, seq, now}, args...)...)
		if tr.series[view] == nil {
			tr.series[view] = map[int64][]string{}
		}
		tr.series[view][e] = append(tr.series[view][e], id.String())
	}
	for _, p := range []struct {
		e   int64
		sid string
	}{{tr.pia, "S-1-5-21-2"}, {tr.sam, "S-1-5-21-3"}, {tr.fay, "S-1-5-21-4"}} {
		add("active_windows", p.e, `INSERT INTO monitoring.active_windows (id, organization_id, gateway_id, seq, datetime, agent_uid, computer_uid, user_sid, window_title, duration_seconds)
			VALUES ($1, $2, $3, $4, $5, 'agent-1', 'PC-1', $6, 'Editor', 30)`, p.sid)
		add("visited_sites", p.e, `INSERT INTO monitoring.visited_sites (id, organization_id, gateway_id, seq, datetime, agent_uid, computer_uid, user_sid, url)
			VALUES ($1, $2, $3, $4, $5, 'agent-1', 'PC-1', $6, 'https://example.com')`, p.sid)
		add("screenshots", p.e, `INSERT INTO monitoring.screenshots (id, organization_id, gateway_id, seq, datetime, agent_uid, computer_uid, user_sid, file_path)
			VALUES ($1, $2, $3, $4, $5, 'agent-1', 'PC-1', $6, 'shots/x.png')`, p.sid)
		add("user_sessions", p.e, `INSERT INTO monitoring.user_sessions (id, organization_id, gateway_id, seq, datetime, agent_uid, computer_uid, user_sid, session_type)
			VALUES ($1, $2, $3, $4, $5, 'agent-1', 'PC-1', $6, 'login')`, p.sid)
	}
	// The reports' rollups and dirty hours (00026), one row each per sid.
	for _, sid := range []string{"S-1-5-21-2", "S-1-5-21-3", "S-1-5-21-4"} {
		exec(`INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour) VALUES ($1, $2, date_trunc('hour', now()))`, tr.org, sid)
		exec(`INSERT INTO monitoring.activity_days (organization_id, user_sid, day, time_zone, active_minutes) VALUES ($1, $2, current_date, 'UTC', $3)`,
			tr.org, sid, make([]byte, 180))
		exec(`INSERT INTO monitoring.activity_day_usage (organization_id, user_sid, day, kind, process_name, host, seconds, events)
			VALUES ($1, $2, current_date, 'window', 'code.exe', '', 30, 1)`, tr.org, sid)
	}
	// Fallback-only rows: the views' second branch.
	for _, p := range []struct {
		e   int64
		sid string
	}{{tr.sam, "S-1-5-21-3"}, {tr.fay, "S-1-5-21-4"}} {
		add("active_windows", p.e, `INSERT INTO monitoring_fallback.active_windows (id, organization_id, gateway_id, seq, datetime, agent_uid, computer_uid, user_sid, duration_seconds)
			VALUES ($1, $2, $3, $4, $5, 'agent-1', 'PC-1', $6, 60)`, p.sid)
	}
	event := `INSERT INTO monitoring.device_events (id, organization_id, gateway_id, seq, datetime, device_serial, employee_number, card_number, major_code, minor_code)
		VALUES ($1, $2, $3, $4, $5, 'DS-1', $6, $7, 5, 75)`
	add("device_events", tr.pia, event, "E-2", nil)
	add("device_events", tr.sam, event, nil, "C-3")
	add("device_events", tr.fay, event, "B-4", nil)
	return tr
}

// ids renders ids as sorted text.
func ids(v ...int64) []string {
	out := make([]string, 0, len(v))
	for _, x := range v {
		out = append(out, fmt.Sprint(x))
	}
	slices.Sort(out)
	return out
}

// seededScope is the scope isolation_test.go gives a narrowed role in
// organisation org: the seeded department for a lead, the seeded employee
// for an employee.
func seededScope(role postgres.AppRole, a, b pgtest.Seeded, org int64) string {
	s := a
	if org == b.OrganizationID {
		s = b
	}
	if role == postgres.AppDepartmentLead {
		return fmt.Sprintf("department:%d", s.DepartmentID)
	}
	return fmt.Sprintf("employee:%d", s.EmployeeID)
}

// visibility is what one application role should see of its organisation.
type visibility struct {
	whole                          bool    // the whole organisation
	departments, employees, users  []int64 // when not whole
	retention                      bool    // reads the retention policies
	writesPeople, writesEverything bool
}

// roleCase is an application role as the Dashboard API signs it.
type roleCase struct {
	name   string
	tenant func(tr *scopeTree) postgres.Tenant
	see    func(tr *scopeTree) visibility
}

var roleCases = []roleCase{
	{"ORG_ADMIN",
		func(tr *scopeTree) postgres.Tenant {
			return postgres.Tenant{OrganizationID: tr.org, Role: postgres.AppOrgAdmin, UserID: tr.admin}
		},
		func(*scopeTree) visibility {
			return visibility{whole: true, retention: true, writesPeople: true, writesEverything: true}
		}},
	{"HR",
		func(tr *scopeTree) postgres.Tenant {
			return postgres.Tenant{OrganizationID: tr.org, Role: postgres.AppHR, UserID: tr.hr}
		},
		func(*scopeTree) visibility { return visibility{whole: true, retention: true, writesPeople: true} }},
	{"DEPARTMENT_LEAD of Platform",
		func(tr *scopeTree) postgres.Tenant {
			return postgres.Tenant{OrganizationID: tr.org, Role: postgres.AppDepartmentLead, UserID: tr.lead,
				Scope: fmt.Sprintf("department:%d", tr.platform)}
		},
		func(tr *scopeTree) visibility {
			return visibility{departments: []int64{tr.platform, tr.storage}, employees: []int64{tr.pia, tr.sam},
				users: []int64{tr.lead, tr.samUser}, retention: true}
		}},
	{"EMPLOYEE Sam",
		func(tr *scopeTree) postgres.Tenant {
			return postgres.Tenant{OrganizationID: tr.org, Role: postgres.AppEmployee, UserID: tr.samUser,
				Scope: fmt.Sprintf("employee:%d", tr.sam)}
		},
		func(tr *scopeTree) visibility {
			return visibility{departments: []int64{tr.storage}, employees: []int64{tr.sam}, users: []int64{tr.samUser}}
		}},
}

// scopeFixture is a database with organisations A and B seeded identically,
// each with its scopeTree.
type scopeFixture struct {
	db    *pgtest.Database
	admin *pgx.Conn
	a, b  *scopeTree
}

func newScopeFixture(ctx context.Context, t *testing.T) *scopeFixture {
	t.Helper()
	db, admin, a, b := seedTwo(ctx, t)
	return &scopeFixture{db: db, admin: admin, a: seedScopeTree(ctx, t, admin, a), b: seedScopeTree(ctx, t, admin, b)}
}

// texts is the one text column sql returns as the administrator.
func texts(ctx context.Context, t *testing.T, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string, args ...any) []string {
	t.Helper()
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	slices.Sort(out)
	return out
}

// bySid: the views checked by their user sids (they have no id).
func bySid(rel string) bool {
	return slices.Contains([]string{"monitoring_read.activity_hourly", "monitoring_read.activity_days",
		"monitoring_read.activity_day_usage", "monitoring_read.activity_dirty"}, rel)
}

// expectedIDs is the exact set of ids (the activity views: user_sids) the role
// described by v must see of relation rel in tr's organisation, and
// whether rel is checked by id; other relations are checked by count.
func (fx *scopeFixture) expectedIDs(ctx context.Context, t *testing.T, tr *scopeTree, v visibility, rel string) ([]string, bool) {
	t.Helper()
	whole := func(sql string) []string { return texts(ctx, t, fx.admin, sql, tr.org) }
	switch rel {
	case "public.organizations":
		return ids(tr.org), true
	case "public.departments":
		if v.whole {
			return whole(`SELECT id::text FROM departments WHERE organization_id = $1`), true
		}
		return ids(v.departments...), true
	case "public.employees":
		if v.whole {
			return whole(`SELECT id::text FROM employees WHERE organization_id = $1`), true
		}
		return ids(v.employees...), true
	case "public.employee_identities":
		if v.whole {
			return whole(`SELECT id::text FROM employee_identities WHERE organization_id = $1`), true
		}
		var out []string
		for _, e := range v.employees {
			out = append(out, tr.identities[e]...)
		}
		slices.Sort(out)
		return out, true
	case "public.users":
		if v.whole {
			return whole(`SELECT id::text FROM users WHERE organization_id = $1`), true
		}
		return ids(v.users...), true
	case "public.retention_policies":
		if v.retention {
			return whole(`SELECT id::text FROM retention_policies WHERE organization_id = $1 OR organization_id IS NULL`), true
		}
		return []string{}, true
	case "monitoring_read.activity_hourly", "monitoring_read.activity_days", "monitoring_read.activity_day_usage", "monitoring_read.activity_dirty":
		if v.whole && rel == "monitoring_read.activity_hourly" {
			return whole(`SELECT DISTINCT user_sid FROM (SELECT user_sid, organization_id FROM monitoring.active_windows
				UNION ALL SELECT user_sid, organization_id FROM monitoring_fallback.active_windows) x WHERE organization_id = $1`), true
		}
		if v.whole {
			return whole(`SELECT DISTINCT user_sid FROM monitoring.` + strings.TrimPrefix(rel, "monitoring_read.") + ` WHERE organization_id = $1`), true
		}
		var out []string
		for _, e := range v.employees {
			out = append(out, texts(ctx, t, fx.admin, `SELECT value FROM employee_identities WHERE employee_id = $1 AND kind = 'windows_sid'`, e)...)
		}
		slices.Sort(out)
		return out, true
	}
	if view, ok := strings.CutPrefix(rel, "monitoring_read."); ok {
		if v.whole {
			return whole(fmt.Sprintf(`SELECT id::text FROM monitoring.%[1]s WHERE organization_id = $1
				UNION SELECT id::text FROM monitoring_fallback.%[1]s WHERE organization_id = $1`, view)), true
		}
		var out []string
		for _, e := range v.employees {
			out = append(out, tr.series[view][e]...)
		}
		slices.Sort(out)
		return out, true
	}
	return nil, false
}

// TestRoleScopes: for every application role, through the dashboard and
// the admin login roles' own connections, the exact rows of every tenant
// table and monitoring view each role sees of its organisation, and none
// of the other's.
func TestRoleScopes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fx := newScopeFixture(ctx, t)
	relations := tenantRelations(ctx, t, fx.admin)
	for _, login := range []struct{ name, url string }{{postgres.RoleDashboard, fx.db.DashboardURL}, {postgres.RoleAdmin, fx.db.PlatformAdminURL}} {
		pool := pg.Pool(t, login.url, 2)
		for _, rc := range roleCases {
			for _, pair := range [][2]*scopeTree{{fx.a, fx.b}, {fx.b, fx.a}} {
				self, other := pair[0], pair[1]
				v := rc.see(self)
				for _, rel := range relations {
					name := fmt.Sprintf("%s/%s/org%d/%s", login.name, rc.name, self.org, rel.name)
					var canSelect bool
					if err := fx.admin.QueryRow(ctx, `SELECT has_table_privilege($1, $2::oid, 'SELECT')`, login.name, rel.oid).Scan(&canSelect); err != nil {
						t.Fatal(err)
					}
					if !canSelect {
						continue
					}
					want, byID := fx.expectedIDs(ctx, t, self, v, rel.name)
					err := postgres.InTenant(ctx, pool, rc.tenant(self), func(tx pgx.Tx) error {
						var foreign int
						if err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s WHERE %[2]s IS DISTINCT FROM $1 AND %[2]s IS NOT NULL`, rel.name, rel.orgCol),
							self.org).Scan(&foreign); err != nil {
							return err
						}
						if foreign != 0 {
							return fmt.Errorf("sees %d rows of another organisation (%d)", foreign, other.org)
						}
						if byID {
							col := "id::text"
							if bySid(rel.name) {
								col = "DISTINCT user_sid"
							}
							got := texts(ctx, t, tx, fmt.Sprintf(`SELECT %s FROM %s`, col, rel.name))
							if !slices.Equal(got, want) {
								return fmt.Errorf("sees %v, want %v", got, want)
							}
							return nil
						}
						var got, all int
						if err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s`, rel.name)).Scan(&got); err != nil {
							return err
						}
						if err := fx.admin.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s WHERE %s = $1`, rel.name, rel.orgCol), self.org).Scan(&all); err != nil {
							return err
						}
						if all == 0 {
							return errors.New("the seed has no row here; the test proves nothing")
						}
						if wantN := map[bool]int{true: all, false: 0}[v.whole]; got != wantN {
							return fmt.Errorf("sees %d rows, want %d", got, wantN)
						}
						return nil
					})
					if err != nil {
						t.Errorf("%s: %v", name, err)
					}
				}
			}
		}
	}
}

// errRollback ends an attempt's transaction without committing it.
var errRollback = errors.New("rollback")

// attempt runs sql in ten's context and rolls it back: the rows it
// affected, or the SQLSTATE of its failure.
func attempt(ctx context.Context, t *testing.T, pool *pgxpool.Pool, ten postgres.Tenant, sql string, args ...any) (int64, string) {
	t.Helper()
	var n int64
	err := postgres.InTenant(ctx, pool, ten, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, sql, args...)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		return errRollback
	})
	var pe *pgconn.PgError
	switch {
	case errors.Is(err, errRollback):
		return n, ""
	case errors.As(err, &pe):
		return 0, pe.Code
	default:
		t.Fatalf("%s: %v", sql, err)
		return 0, ""
	}
}

// peopleTables are the tables HR writes; every other table only ORG_ADMIN
// (and ADMIN, and the services' machine contexts).
var peopleTables = []string{"public.departments", "public.employees", "public.employee_identities"}

// TestRoleScopesWrites: what each application role may change, through
// the dashboard role's connection. Refused INSERTs and UPDATEs of rows the
// role can see fail with 42501; refused DELETEs, and UPDATEs of rows it
// cannot see, change zero rows. Every attempt is rolled back.
func TestRoleScopesWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fx := newScopeFixture(ctx, t)
	dash := pg.Pool(t, fx.db.DashboardURL, 2)
	tr := fx.a
	relations := tenantRelations(ctx, t, fx.admin)
	inserts := map[string]struct {
		sql  string
		args []any
	}{
		"public.departments":         {`INSERT INTO departments (organization_id, parent_id, name) VALUES ($1, $2, 'New')`, []any{tr.org, tr.storage}},
		"public.employees":           {`INSERT INTO employees (organization_id, department_id, employee_number, first_name, last_name) VALUES ($1, $2, 'E-99', 'New', 'Hire')`, []any{tr.org, tr.storage}},
		"public.employee_identities": {`INSERT INTO employee_identities (organization_id, employee_id, kind, value) VALUES ($1, $2, 'computer', 'PC-99')`, []any{tr.org, tr.sam}},
		"public.users":               {`INSERT INTO users (organization_id, email, password_hash, role, employee_id) VALUES ($1, 'new@new.test', 'x', 'EMPLOYEE', $2)`, []any{tr.org, tr.sam}},
		"public.devices":             {`INSERT INTO devices (organization_id, name, adapter_type) VALUES ($1, 'Door 9', 'hikvision')`, []any{tr.org}},
		"public.policies":            {`INSERT INTO policies (organization_id, name) VALUES ($1, 'New policy')`, []any{tr.org}},
		"public.gateway_commands":    {`INSERT INTO gateway_commands (organization_id, gateway_id, type, payload) VALUES ($1, $2, 'restart_agent', '{}')`, []any{tr.org, tr.gateway}},
		"public.retention_policies":  {`INSERT INTO retention_policies (organization_id, resource_type, retention_days) VALUES ($1, 'visited_site', 10)`, []any{tr.org}},
	}
	checked := 0
	for _, rc := range roleCases {
		v := rc.see(tr)
		ten := rc.tenant(tr)
		for _, rel := range relations {
			if rel.isView {
				continue
			}
			var canSelect, canInsert, canUpdate, canDelete bool
			if err := fx.admin.QueryRow(ctx, `SELECT has_table_privilege('staff_dashboard', $1::oid, 'SELECT'), has_table_privilege('staff_dashboard', $1::oid, 'INSERT'),
				has_table_privilege('staff_dashboard', $1::oid, 'UPDATE'), has_table_privilege('staff_dashboard', $1::oid, 'DELETE')`,
				rel.oid).Scan(&canSelect, &canInsert, &canUpdate, &canDelete); err != nil {
				t.Fatal(err)
			}
			if !canSelect {
				continue
			}
			writer := v.writesEverything || (v.writesPeople && slices.Contains(peopleTables, rel.name))
			name := fmt.Sprintf("%s/%s", rc.name, rel.name)
			// How many rows of its organisation the role sees here.
			var visible int64
			err := postgres.InTenant(ctx, dash, ten, func(tx pgx.Tx) error {
				return tx.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s WHERE %s = $1`, rel.name, rel.orgCol), tr.org).Scan(&visible)
			})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if canUpdate {
				checked++
				n, code := attempt(ctx, t, dash, ten, fmt.Sprintf(`UPDATE %s SET %[2]s = %[2]s WHERE %[3]s = $1`, rel.name, rel.touchCol, rel.orgCol), tr.org)
				switch {
				case writer && (code != "" || n != visible || n == 0):
					t.Errorf("%s: UPDATE: %d rows, SQLSTATE %q; want all %d visible rows updated", name, n, code, visible)
				case !writer && visible > 0 && code != noPrivilege:
					t.Errorf("%s: UPDATE of %d visible rows: %d rows, SQLSTATE %q; want %s", name, visible, n, code, noPrivilege)
				case !writer && visible == 0 && (code != "" || n != 0):
					t.Errorf("%s: UPDATE of no visible row: %d rows, SQLSTATE %q; want 0 rows, no error", name, n, code)
				}
			}
			if canDelete && !writer {
				checked++
				if n, code := attempt(ctx, t, dash, ten, fmt.Sprintf(`DELETE FROM %s WHERE %s = $1`, rel.name, rel.orgCol), tr.org); code != "" || n != 0 {
					t.Errorf("%s: DELETE: %d rows, SQLSTATE %q; want 0 rows, no error", name, n, code)
				}
			}
			if ins, ok := inserts[rel.name]; ok && canInsert {
				checked++
				n, code := attempt(ctx, t, dash, ten, ins.sql, ins.args...)
				switch {
				case writer && (code != "" || n != 1):
					t.Errorf("%s: INSERT: %d rows, SQLSTATE %q; want 1 row", name, n, code)
				case !writer && code != noPrivilege:
					t.Errorf("%s: INSERT: %d rows, SQLSTATE %q; want %s", name, n, code, noPrivilege)
				}
			}
		}
	}
	// Writers' deletes go through (one of each class).
	hr := roleCases[1].tenant(tr)
	if n, code := attempt(ctx, t, dash, hr, `DELETE FROM employee_identities WHERE employee_id = $1`, tr.sam); code != "" || n != 2 {
		t.Errorf("HR deletes Sam's identities: %d rows, SQLSTATE %q; want 2", n, code)
	}
	if n, code := attempt(ctx, t, dash, hr, `DELETE FROM device_commands`); code != "" || n != 0 {
		t.Errorf("HR deletes device commands: %d rows, SQLSTATE %q; want 0", n, code)
	}
	orgAdmin := roleCases[0].tenant(tr)
	if n, code := attempt(ctx, t, dash, orgAdmin, `DELETE FROM device_commands`); code != "" || n != 1 {
		t.Errorf("ORG_ADMIN deletes device commands: %d rows, SQLSTATE %q; want 1", n, code)
	}
	// Nothing changed for real.
	if n := texts(ctx, t, fx.admin, `SELECT count(*)::text FROM employee_identities WHERE employee_id = $1`, tr.sam); !slices.Equal(n, []string{"2"}) {
		t.Errorf("Sam's identities after the attempts: %v, want 2", n)
	}
	if checked < 60 {
		t.Errorf("only %d write attempts checked; the catalog or the grants changed?", checked)
	}
}

// TestRoleScopesFailClosed: a lead or employee context without a valid
// scope of its kind and organisation sees no scoped row; a scope changed in
// a signed context (unsigned, so unverified) sees nothing at all.
func TestRoleScopesFailClosed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fx := newScopeFixture(ctx, t)
	dash := pg.Pool(t, fx.db.DashboardURL, 2)
	tr, other := fx.a, fx.b
	lead := func(scope string) postgres.Tenant {
		return postgres.Tenant{OrganizationID: tr.org, Role: postgres.AppDepartmentLead, Scope: scope}
	}
	employee := func(scope string) postgres.Tenant {
		return postgres.Tenant{OrganizationID: tr.org, Role: postgres.AppEmployee, Scope: scope}
	}
	scoped := []string{"departments", "employees", "employee_identities", "users",
		"monitoring_read.active_windows", "monitoring_read.visited_sites", "monitoring_read.screenshots",
		"monitoring_read.user_sessions", "monitoring_read.device_events", "monitoring_read.activity_hourly"}
	count := func(t *testing.T, ten postgres.Tenant, setTenant string) map[string]int {
		t.Helper()
		got := map[string]int{}
		tx, err := dash.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if setTenant != "" {
			if _, err := tx.Exec(ctx, `SELECT set_config('app.tenant', $1, true)`, setTenant); err != nil {
				t.Fatal(err)
			}
		} else if err := postgres.SetTenant(ctx, tx, ten); err != nil {
			t.Fatal(err)
		}
		for _, rel := range append(slices.Clone(scoped), "organizations") {
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+rel).Scan(&n); err != nil {
				t.Fatalf("%s: %v", rel, err)
			}
			got[rel] = n
		}
		return got
	}
	cases := []struct {
		name string
		ten  postgres.Tenant
	}{
		{"lead without scope", lead("")},
		{"lead with an employee scope", lead(fmt.Sprintf("employee:%d", tr.pia))},
		{"lead of another organisation's department", lead(fmt.Sprintf("department:%d", other.platform))},
		{"lead of a department that does not exist", lead("department:999999999")},
		{"employee without scope", employee("")},
		{"employee with a department scope", employee(fmt.Sprintf("department:%d", tr.storage))},
		{"employee who is another organisation's", employee(fmt.Sprintf("employee:%d", other.sam))},
	}
	for _, tc := range cases {
		got := count(t, tc.ten, "")
		for _, rel := range scoped {
			if got[rel] != 0 {
				t.Errorf("%s: sees %d rows of %s, want 0", tc.name, got[rel], rel)
			}
		}
		if got["organizations"] != 1 {
			t.Errorf("%s: sees %d organisations, want its own", tc.name, got["organizations"])
		}
	}
	// A lead of Storage who widens the signed scope to the whole tree.
	signed, err := pg.ContextKey().Sign(lead(fmt.Sprintf("department:%d", tr.storage)), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Split(signed, "|")
	f[5] = fmt.Sprintf("department:%d", tr.root)
	got := count(t, postgres.Tenant{}, strings.Join(f, "|"))
	for rel, n := range got {
		if n != 0 {
			t.Errorf("forged scope: sees %d rows of %s, want 0", n, rel)
		}
	}
	// The same lead, signed, sees Storage only.
	if got := count(t, lead(fmt.Sprintf("department:%d", tr.storage)), ""); got["departments"] != 1 || got["employees"] != 1 {
		t.Errorf("lead of Storage: %v, want 1 department and 1 employee", got)
	}
}

// ownRoleAwarePolicy are tenant tables created after 00022 whose own
// policy already names the roles that may read them (00024's live events:
// ORG_ADMIN, HR, ADMIN), so they carry no role_* policies.
var ownRoleAwarePolicy = []string{"dashboard_events"}

// TestRolePoliciesCatalog: every tenant table the two login roles that
// serve people may touch carries the restrictive role policies, for those
// two roles only (tables only definer functions reach, such as the
// sign-in's, need none), and a lead's statement resolves its scope once (an
// InitPlan), not per row.
func TestRolePoliciesCatalog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fx := newScopeFixture(ctx, t)
	rows, err := fx.admin.Query(ctx, `SELECT c.relname::text,
			coalesce(string_agg(p.polname || ':' || p.polcmd::text || ':' || (NOT p.polpermissive)::text || ':' ||
			    (SELECT string_agg(r::regrole::text, ',' ORDER BY r::regrole::text) FROM unnest(p.polroles) r), ' ' ORDER BY p.polname)
			  FILTER (WHERE p.polname LIKE 'role\_%'), '')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_policy p ON p.polrelid = c.oid
		WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname::text <> ALL ($1::text[])
		  AND (has_table_privilege('staff_dashboard', c.oid, 'SELECT, INSERT, UPDATE, DELETE')
		       OR has_table_privilege('staff_admin', c.oid, 'SELECT, INSERT, UPDATE, DELETE'))
		GROUP BY c.relname ORDER BY 1`, append(slices.Clone(nonTenantTables), ownRoleAwarePolicy...))
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ Table, Policies string }
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		t.Fatal(err)
	}
	const roles = "staff_admin,staff_dashboard"
	all := fmt.Sprintf("role_delete:d:true:%[1]s role_insert:a:true:%[1]s role_read:r:true:%[1]s role_update:w:true:%[1]s", roles)
	for _, r := range got {
		want := all
		if r.Table == "audit_log" {
			want = "role_read:r:true:" + roles
		}
		if r.Policies != want {
			t.Errorf("table %s: role policies %q, want %q", r.Table, r.Policies, want)
		}
	}
	if len(got) < 20 {
		t.Fatalf("checked only %d tables", len(got))
	}

	dash := pg.Pool(t, fx.db.DashboardURL, 1)
	lead := postgres.Tenant{OrganizationID: fx.a.org, Role: postgres.AppDepartmentLead, Scope: fmt.Sprintf("department:%d", fx.a.platform)}
	for _, q := range []string{`SELECT * FROM employees`, `SELECT * FROM monitoring_read.device_events`} {
		err := postgres.InTenant(ctx, dash, lead, func(tx pgx.Tx) error {
			plan := strings.Join(texts(ctx, t, tx, `EXPLAIN (VERBOSE) `+q), "\n")
			if !strings.Contains(plan, "InitPlan") {
				return fmt.Errorf("no InitPlan in\n%s", plan)
			}
			for _, line := range strings.Split(plan, "\n") {
				if strings.Contains(line, "Filter:") && strings.Contains(line, "scope_") {
					return fmt.Errorf("the scope is computed per row: %s", strings.TrimSpace(line))
				}
			}
			return nil
		})
		if err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
}

// --- the functions' own tests (functions_test.go lists them) -------------

// scopeTenants are the contexts the scope functions are tried with.
func scopeTenants(tr *scopeTree) map[string]postgres.Tenant {
	return map[string]postgres.Tenant{
		"ORG_ADMIN":        {OrganizationID: tr.org, Role: postgres.AppOrgAdmin},
		"HR with a scope":  {OrganizationID: tr.org, Role: postgres.AppHR, Scope: fmt.Sprintf("department:%d", tr.platform)},
		"lead of Platform": {OrganizationID: tr.org, Role: postgres.AppDepartmentLead, Scope: fmt.Sprintf("department:%d", tr.platform)},
		"lead of Engineering": {OrganizationID: tr.org, Role: postgres.AppDepartmentLead,
			Scope: fmt.Sprintf("department:%d", tr.root)},
		"lead without scope": {OrganizationID: tr.org, Role: postgres.AppDepartmentLead},
		"employee Sam":       {OrganizationID: tr.org, Role: postgres.AppEmployee, Scope: fmt.Sprintf("employee:%d", tr.sam)},
		"machine context":    {OrganizationID: tr.org},
		"no context":         {},
	}
}

// checkRoleFunction checks a function of no argument that returns one
// text value per context (want: context name of scopeTenants → value), as
// staff_dashboard and staff_admin, and that staff_ingest may not call it.
func checkRoleFunction(t *testing.T, f *fnDB, tr *scopeTree, call string, want map[string]string) {
	t.Helper()
	tenants := scopeTenants(tr)
	for name, w := range want {
		for _, db := range []*pgxpool.Pool{f.dashboard, f.platform} {
			equal(t, name, f.rows(db, tenants[name], `SELECT `+call+`::text`), []string{w})
		}
	}
	f.refused(f.ingest, tenants["ORG_ADMIN"], noPrivilege, "permission denied", `SELECT `+call)
}

// seedScopeTrees gives f's organisations A and B their scopeTree and
// returns A's.
func (f *fnDB) seedScopeTrees() *scopeTree {
	f.t.Helper()
	tr := seedScopeTree(f.ctx, f.t, f.admin, f.a)
	seedScopeTree(f.ctx, f.t, f.admin, f.b)
	return tr
}

// testRoleFunction is checkRoleFunction on a fresh pair of trees.
func testRoleFunction(call string, want func(tr *scopeTree) map[string]string) func(t *testing.T, f *fnDB) {
	return func(t *testing.T, f *fnDB) {
		tr := f.seedScopeTrees()
		checkRoleFunction(t, f, tr, call, want(tr))
	}
}

func arr(v ...int64) string { return "{" + strings.Join(sortedNums(v), ",") + "}" }

func sortedNums(v []int64) []string {
	s := slices.Clone(v)
	slices.Sort(s)
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = fmt.Sprint(x)
	}
	return out
}

// testSeesWholeOrganization: true for ADMIN, ORG_ADMIN, HR and machine
// contexts (no role), false for a lead or an employee, whatever the scope.
var testSeesWholeOrganization = testRoleFunction("app.sees_whole_organization()", func(*scopeTree) map[string]string {
	return map[string]string{"ORG_ADMIN": "true", "HR with a scope": "true", "lead of Platform": "false",
		"lead without scope": "false", "employee Sam": "false", "machine context": "true"}
})

// testWritesPeople: who may write departments, employees and identities.
var testWritesPeople = testRoleFunction("app.writes_people()", func(*scopeTree) map[string]string {
	return map[string]string{"ORG_ADMIN": "true", "HR with a scope": "true", "lead of Platform": "false",
		"employee Sam": "false", "machine context": "true"}
})

// testWritesOrganization: who may write everything else.
var testWritesOrganization = testRoleFunction("app.writes_organization()", func(*scopeTree) map[string]string {
	return map[string]string{"ORG_ADMIN": "true", "HR with a scope": "false", "lead of Platform": "false",
		"employee Sam": "false", "machine context": "true"}
})

// testScopeDepartments: a lead's department and its descendants (a cycle
// in the tree ends the walk), an employee's department, '{}' otherwise.
func testScopeDepartments(t *testing.T, f *fnDB) {
	tr := f.seedScopeTrees()
	checkRoleFunction(t, f, tr, "app.scope_departments()", map[string]string{"ORG_ADMIN": "{}", "HR with a scope": "{}",
		"lead of Platform": arr(tr.platform, tr.storage), "lead of Engineering": arr(tr.root, tr.platform, tr.storage, tr.frontend),
		"lead without scope": "{}", "employee Sam": arr(tr.storage), "machine context": "{}", "no context": "{}"})
	// A cycle (Engineering under Storage) still ends, with the same set.
	f.exec(`UPDATE departments SET parent_id = (SELECT id FROM departments WHERE organization_id = $1 AND name = 'Storage') WHERE id = $2`,
		f.a.OrganizationID, f.a.DepartmentID)
	lead := postgres.Tenant{OrganizationID: f.a.OrganizationID, Role: postgres.AppDepartmentLead, Scope: fmt.Sprintf("department:%d", f.a.DepartmentID)}
	if got := f.rows(f.dashboard, lead, `SELECT cardinality(app.scope_departments())::text`); !slices.Equal(got, []string{"4"}) {
		t.Errorf("lead of a cycle: %v departments, want 4", got)
	}
}

// testScopeEmployees: the employees of a lead's departments, an employee
// themself, '{}' otherwise.
var testScopeEmployees = testRoleFunction("app.scope_employees()", func(tr *scopeTree) map[string]string {
	return map[string]string{"ORG_ADMIN": "{}", "HR with a scope": "{}", "lead of Platform": arr(tr.pia, tr.sam),
		"lead of Engineering": arr(tr.ann, tr.pia, tr.sam, tr.fay), "lead without scope": "{}",
		"employee Sam": arr(tr.sam), "machine context": "{}", "no context": "{}"}
})

// testScopeIdentities: the identity values of a kind of the scope's
// employees (employee_number also from the employees' own column).
func testScopeIdentities(t *testing.T, f *fnDB) {
	tr := f.seedScopeTrees()
	for kind, want := range map[string]map[string]string{
		"windows_sid": {"ORG_ADMIN": "{}", "lead of Platform": "{S-1-5-21-2,S-1-5-21-3}",
			"lead of Engineering": "{S-1-5-21-1,S-1-5-21-2,S-1-5-21-3,S-1-5-21-4}", "employee Sam": "{S-1-5-21-3}",
			"lead without scope": "{}", "no context": "{}"},
		"card_number":     {"lead of Platform": "{C-3}", "employee Sam": "{C-3}", "HR with a scope": "{}"},
		"employee_number": {"lead of Platform": "{E-2,E-3}", "lead of Engineering": "{B-4,E-1,E-2,E-3,E-4}", "employee Sam": "{E-3}"},
		"no such kind":    {"lead of Engineering": "{}"},
	} {
		checkRoleFunction(t, f, tr, fmt.Sprintf("app.scope_identities('%s')", kind), want)
	}
}
