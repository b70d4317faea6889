package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
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

// functionTests holds a test of its own for every function the migrations
// create, keyed by its signature as pg_proc prints it (regprocedure). Each
// calls the function directly, as the role that calls it in production,
// on a database of its own with organisations A and B seeded, and checks
// its contract: results, refusals (another organisation, bad arguments,
// the wrong role) and side effects. TestEveryFunctionHasATest fails for a
// function of the schema that has no entry here, so a new function comes
// with its test.
var functionTests = map[string]func(t *testing.T, f *fnDB){
	// The signed tenant context (00014), called by every login role.
	"app.context()":           testAppContext,
	"app.org_id()":            testContextField("org_id", func(f *fnDB) string { return fmt.Sprint(f.a.OrganizationID) }),
	"app.app_role()":          testContextField("app_role", func(*fnDB) string { return "HR" }),
	"app.user_id()":           testContextField("user_id", func(f *fnDB) string { return fmt.Sprint(f.a.UserID) }),
	"app.scope()":             testContextField("scope", func(f *fnDB) string { return fmt.Sprintf("department:%d", f.a.DepartmentID) }),
	"app.actor()":             testContextField("actor", func(*fnDB) string { return "alice" }),
	"app.all_organizations()": testAppAllOrganizations,
	"app.audit(bigint,text,text,text,text,jsonb)": testAppAudit,
	// Roles and scopes (00022; scopes_test.go).
	"app.sees_whole_organization()": testSeesWholeOrganization,
	"app.writes_people()":           testWritesPeople,
	"app.writes_organization()":     testWritesOrganization,
	"app.scope_departments()":       testScopeDepartments,
	"app.scope_employees()":         testScopeEmployees,
	"app.scope_identities(text)":    testScopeIdentities,
	// Triggers.
	"audit_log_append_only()":            testAuditLogAppendOnly,
	"gateway_commands_notify()":          testGatewayCommandsNotify,
	"gateway_commands_notify_inserted()": testGatewayCommandsNotifyInserted,
	"gateway_instances_revoked_notify()": testGatewayInstancesRevokedNotify,
	"gateway_instances_void_pending()":   testGatewayInstancesVoidPending,
	"app.bump_version()":                 testBumpVersion,
	"device_commands_follow()":           testDeviceCommandsFollow,
	// Gateways and their command queue (staff_ingest).
	"gateway_by_api_key_hash(bytea)":                       testGatewayByAPIKeyHash,
	"gateway_provision(bigint,text,bytea,bytea,text)":      testGatewayProvision,
	"gateway_commands_due(uuid[])":                         testGatewayCommandsDue,
	"gateway_commands_sweep(interval)":                     testGatewayCommandsSweep,
	"gateways_mark_offline_after(interval)":                testGatewaysMarkOfflineAfter,
	"policy_distributions_active()":                        testPolicyDistributionsActive,
	"gateway_commands_depth()":                             testGatewayCommandsDepth,
	"policy_distributions_ready()":                         testPolicyDistributionsReady,
	"monitoring.storage_kind()":                            testStorageKind,
	"monitoring.ensure_recent_partitions(integer,integer)": testEnsureRecentPartitions,
	"monitoring.ensure_day_partitions(text,text[],date[])": testEnsureDayPartitions,
	"monitoring.drop_expired_partitions()":                 testDropExpiredPartitions,
	// The owner's old signatures that took a caller's time (00012).
	"monitoring.ensure_partitions(date,date)":                      testEnsurePartitionsOwnerOnly,
	"monitoring.drop_expired_partitions(timestamp with time zone)": testDropExpiredPartitionsAtOwnerOnly,
	// TimescaleDB jobs (00018): nothing on partitions.
	"monitoring.apply_retention(text)":   testApplyRetention,
	"monitoring.apply_compression(text)": testApplyCompression,
	"monitoring.job_health()":            testJobHealth,
	// Retention (00027; retention_functions_test.go).
	"monitoring.retention_horizons()":                                             testRetentionHorizons,
	"monitoring.retention_run_begin(boolean)":                                     testRetentionRunBegin,
	"monitoring.retention_run_progress(bigint,text,bigint,bigint,bigint,integer)": testRetentionRunProgress,
	"monitoring.retention_run_finish(bigint,text)":                                testRetentionRunFinish,
	"monitoring.retention_delete(text,bigint,integer)":                            testRetentionDelete,
	"monitoring.retention_preview()":                                              testRetentionPreview,
	"monitoring.retention_expired_partitions()":                                   testRetentionExpiredPartitions,
	// Ingest's questions (00010, 00017).
	"monitoring.stored_event_seqs(text,text,uuid[],timestamp with time zone[])": testStoredEventSeqs,
	"monitoring.stored_screenshots(text,uuid[],timestamp with time zone[])":     testStoredScreenshots,
	"monitoring.screenshot_files_referenced(bigint,date,text[])":                testScreenshotFilesReferenced,
	// The series' inserts (00020).
	"monitoring.insert_active_windows(text,bigint,uuid,uuid[],bigint[],text[],text[],text[],text[],text[],text[],timestamp with time zone[],integer[])":                      testInsertFunction("insert_active_windows", "active_windows"),
	"monitoring.insert_visited_sites(text,bigint,uuid,uuid[],bigint[],text[],text[],text[],text[],text[],timestamp with time zone[],integer[])":                              testInsertFunction("insert_visited_sites", "visited_sites"),
	"monitoring.insert_screenshots(text,bigint,uuid,uuid[],bigint[],text[],text[],text[],text[],bigint[],text[],timestamp with time zone[])":                                 testInsertFunction("insert_screenshots", "screenshots"),
	"monitoring.insert_user_sessions(text,bigint,uuid,uuid[],bigint[],text[],text[],text[],text[],timestamp with time zone[])":                                               testInsertFunction("insert_user_sessions", "user_sessions"),
	"monitoring.insert_device_events(text,bigint,uuid,uuid[],bigint[],bigint[],text[],timestamp with time zone[],text[],text[],integer[],integer[],integer[],text[],text[])": testInsertFunction("insert_device_events", "device_events"),
	// The re-sync (00014, 00020).
	"monitoring.fallback_organizations()":                                    testFallbackOrganizations,
	"monitoring.fallback_rows()":                                             testFallbackRows,
	"monitoring.fallback_days(text)":                                         testFallbackDays,
	"monitoring.fallback_chunk(text,date,integer)":                           testFallbackChunk,
	"monitoring.chunk_checksum(text,text,uuid[],timestamp with time zone[])": testChunkChecksum,
	"monitoring.fallback_delete(text,uuid[],timestamp with time zone[])":     testFallbackDelete,
	"monitoring.resync_insert(text,jsonb)":                                   testResyncInsert,
	// Dashboard sign-in (00021; signin_functions_test.go).
	"app.login_lookup(text)": testLoginLookup,
	"app.login_result(text,bigint,text,text,text,bytea,interval,interval,integer,interval,interval,inet,text)": testLoginResult,
	"app.session_refresh(bytea,bytea,interval,inet)":                                                           testSessionRefresh,
	"app.session_logout(bytea,inet)":                                                                           testSessionLogout,
	"app.sessions_revoke_user(bigint,uuid,inet)":                                                               testSessionsRevokeUser,
	"app.session_email(bigint,uuid)":                                                                           testSessionEmail,
	"app.password_change(bigint,uuid,text,bytea,interval,interval,inet,text)":                                  testPasswordChange,
	"app.session_active(uuid)":                                                                                 testSessionActive,
	// The Dashboard API's live events (00024, 00035; dashboard_events_test.go):
	// the staging triggers are exercised through what the publisher makes of
	// their rows.
	"app.dashboard_events_stage_gateway()":      testDashboardEventsPublish,
	"app.dashboard_events_stage_commands()":     testDashboardEventsPublish,
	"app.dashboard_events_stage_targets()":      testDashboardEventsPublish,
	"app.dashboard_events_stage_distribution()": testDashboardEventsPublish,
	"app.dashboard_events_publish(integer)":     testDashboardEventsPublishArguments,
	"app.dashboard_events_prune()":              testDashboardEventsPrune,
	"app.dashboard_events_bounds()":             testDashboardEventsBounds,
	// A user's changes end their sessions (00025; user_sessions_test.go).
	"app.users_end_sessions()":      testUsersEndSessions,
	"app.user_sessions_end(bigint)": testUserSessionsEnd,
	// Each user's own language (00041; user_language_test.go).
	"app.set_user_language(text)": testSetUserLanguage,
	// Reports (00026; reports_functions_test.go).
	"app.organizations_check_time_zone()":                                                       testOrganizationsCheckTimeZone,
	"app.organizations_time_zone_changed()":                                                     testOrganizationsTimeZoneChanged,
	"app.report_settings()":                                                                     testReportSettings,
	"monitoring.activity_claim(integer,timestamp with time zone)":                               testActivityClaim,
	"monitoring.activity_backlog(timestamp with time zone)":                                     testActivityBacklog,
	"monitoring.activity_time_zone(bigint)":                                                     testActivityTimeZone,
	"monitoring.activity_source(bigint,text,timestamp with time zone,timestamp with time zone)": testActivitySource,
	"monitoring.activity_store(bigint,text,date,text,bytea,timestamp with time zone,timestamp with time zone,text[],text[],text[],bigint[],bigint[])": testActivityStore,
	// Retention reaches the rollups (00028; retention_rollups_test.go).
	"monitoring.retention_rollups(integer)": testRetentionRollups,
}

// TestFunctions runs each function's test on a database of its own.
func TestFunctions(t *testing.T) {
	t.Parallel()
	names := make([]string, 0, len(functionTests))
	for name := range functionTests {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		test := functionTests[name]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, newFnDB(t))
		})
	}
}

// appFunctions lists every function of the application's schemas: all
// but the system's, and not those an extension owns (TimescaleDB's,
// pgcrypto's).
const appFunctions = `SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
	WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'
	  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
	  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')
	ORDER BY 1`

// TestEveryFunctionHasATest: every function of the migrated schema has an
// entry in functionTests, and every entry names a function that exists.
func TestEveryFunctionHasATest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	rows, err := admin.Query(ctx, appFunctions)
	if err != nil {
		t.Fatal(err)
	}
	fns, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(fns) < 40 {
		t.Fatalf("found %d functions in the schema; the catalog query is wrong?", len(fns))
	}
	for _, fn := range fns {
		if functionTests[fn] == nil {
			t.Errorf("function %s has no test: add a test of its contract to functionTests (functions_test.go)", fn)
		}
	}
	for name := range functionTests {
		if !slices.Contains(fns, name) {
			t.Errorf("functionTests names %s, which the schema does not have (renamed or dropped? fix the entry)", name)
		}
	}
}

// fnDB is a test database with organisations A and B seeded
// (pgtest.SeedOrganization) and a pool for each login role, each signing
// with the server's tenant context key.
type fnDB struct {
	t                           *testing.T
	ctx                         context.Context
	db                          *pgtest.Database
	admin                       *pgx.Conn // the test server's administrator: bypasses RLS, for set-up and checks
	a, b                        pgtest.Seeded
	ingest, dashboard, platform *pgxpool.Pool
}

func newFnDB(t *testing.T) *fnDB {
	ctx := context.Background()
	db, admin, a, b := seedTwo(ctx, t)
	return &fnDB{t: t, ctx: ctx, db: db, admin: admin, a: a, b: b,
		ingest: pg.Pool(t, db.IngestURL, 2), dashboard: pg.Pool(t, db.DashboardURL, 2), platform: pg.Pool(t, db.PlatformAdminURL, 2)}
}

// owner is a connection as the administrator assuming the owner role (the
// role migrations run as), closed when the test ends.
func (f *fnDB) owner() *pgx.Conn {
	f.t.Helper()
	c, err := pgx.Connect(f.ctx, f.db.OwnerURL)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// org is organisation id's verified context; none is no context.
func org(id int64) postgres.Tenant { return postgres.Tenant{OrganizationID: id} }

var none = postgres.Tenant{}

// exec runs set-up SQL as the administrator.
func (f *fnDB) exec(sql string, args ...any) {
	f.t.Helper()
	if _, err := f.admin.Exec(f.ctx, sql, args...); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
}

// one is the single text value sql returns as the administrator ("NULL"
// for NULL).
func (f *fnDB) one(sql string, args ...any) string {
	f.t.Helper()
	var s *string
	if err := f.admin.QueryRow(f.ctx, sql, args...).Scan(&s); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
	if s == nil {
		return "NULL"
	}
	return *s
}

// rows runs sql, which returns one column, in ten's context on db and
// returns the values as text ("NULL" for NULL), failing the test on an
// error.
func (f *fnDB) rows(db postgres.Beginner, ten postgres.Tenant, sql string, args ...any) []string {
	f.t.Helper()
	out, err := f.query(db, ten, sql, args...)
	if err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func (f *fnDB) query(db postgres.Beginner, ten postgres.Tenant, sql string, args ...any) ([]string, error) {
	var out []string
	err := postgres.InTenant(f.ctx, db, ten, func(tx pgx.Tx) error {
		rows, err := tx.Query(f.ctx, sql, args...)
		if err != nil {
			return err
		}
		vals, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
			v, err := r.Values()
			if err != nil {
				return "", err
			}
			if len(v) != 1 {
				return "", fmt.Errorf("%d columns, want 1", len(v))
			}
			switch x := v[0].(type) {
			case nil:
				return "NULL", nil
			case [16]byte:
				return uuid.UUID(x).String(), nil
			}
			return fmt.Sprint(v[0]), nil
		})
		out = vals
		return err
	})
	return out, err
}

// try runs sql in ten's context on db and returns the SQLSTATE and message
// of its failure ("" when it succeeded); an error without a SQLSTATE fails
// the test.
func (f *fnDB) try(db postgres.Beginner, ten postgres.Tenant, sql string, args ...any) (code, msg string) {
	f.t.Helper()
	_, err := f.query(db, ten, sql, args...)
	var pe *pgconn.PgError
	switch {
	case err == nil:
		return "", ""
	case errors.As(err, &pe):
		return pe.Code, pe.Message
	default:
		f.t.Fatalf("%s: %v", sql, err)
		return "", ""
	}
}

// refused checks that sql in ten's context on db fails with SQLSTATE code
// (and a message containing msg).
func (f *fnDB) refused(db postgres.Beginner, ten postgres.Tenant, code, msg, sql string, args ...any) {
	f.t.Helper()
	gotCode, gotMsg := f.try(db, ten, sql, args...)
	if gotCode != code || !strings.Contains(gotMsg, msg) {
		f.t.Errorf("%s: SQLSTATE %q (%s), want %s containing %q", sql, gotCode, gotMsg, code, msg)
	}
}

// equal checks got against want, naming what.
func equal[T comparable](t *testing.T, what string, got, want []T) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

// Codes of the refusals.
const (
	invalidParameter = "22023" // invalid_parameter_value
	programLimit     = "54000" // program_limit_exceeded
	noPrivilege      = "42501" // insufficient_privilege
)

// --- the signed tenant context ------------------------------------------

// withTenantValue runs sql on db in a transaction whose app.tenant is the
// raw value (signed or not) and returns its one text value.
func (f *fnDB) withTenantValue(db *pgxpool.Pool, value, sql string) string {
	f.t.Helper()
	tx, err := db.Begin(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(f.ctx) }()
	if _, err := tx.Exec(f.ctx, `SELECT set_config('app.tenant', $1, true)`, value); err != nil {
		f.t.Fatal(err)
	}
	var s string
	if err := tx.QueryRow(f.ctx, sql).Scan(&s); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// contextFields renders app.context() as org|role|user|scope|actor, or
// NULL.
const contextFields = `SELECT CASE WHEN c IS NULL THEN 'NULL' ELSE
	format('%s|%s|%s|%s|%s', (c).organization_id, (c).app_role, (c).user_id, (c).scope, (c).actor) END
	FROM (SELECT app.context() AS c) x`

// testAppContext: app.context() returns the fields of a context signed
// with an installed key and not expired, as every login role; anything
// else — none, expired, another key under the key's id, an unknown key
// id, a tampered field, an unsigned or malformed value — is NULL.
func testAppContext(t *testing.T, f *fnDB) {
	key := pg.ContextKey()
	wrong, err := postgres.GenerateContextKey(key.ID())
	if err != nil {
		t.Fatal(err)
	}
	unknown, err := postgres.GenerateContextKey("unknown-key")
	if err != nil {
		t.Fatal(err)
	}
	ten := postgres.Tenant{OrganizationID: f.a.OrganizationID, Role: postgres.AppHR, UserID: f.a.UserID,
		Scope: fmt.Sprintf("department:%d", f.a.DepartmentID), Actor: "alice"}
	sign := func(k postgres.ContextKey, ten postgres.Tenant, exp time.Duration) string {
		v, err := k.Sign(ten, time.Now().Add(exp))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	valid := sign(key, ten, time.Minute)
	tampered := strings.Replace(valid, fmt.Sprintf("|%d|HR|", f.a.OrganizationID), fmt.Sprintf("|%d|HR|", f.b.OrganizationID), 1)
	if tampered == valid {
		t.Fatal("the tampered context equals the signed one")
	}
	tests := []struct {
		name, value, want string
	}{
		{"signed", valid, fmt.Sprintf("%d|HR|%d|department:%d|alice", f.a.OrganizationID, f.a.UserID, f.a.DepartmentID)},
		{"signed, organisation only", sign(key, org(f.b.OrganizationID), time.Minute), fmt.Sprintf("%d||||", f.b.OrganizationID)},
		{"none", "", "NULL"},
		{"expired", sign(key, ten, -time.Second), "NULL"},
		{"another key under the key's id", sign(wrong, ten, time.Minute), "NULL"},
		{"unknown key id", sign(unknown, ten, time.Minute), "NULL"},
		{"organisation tampered", tampered, "NULL"},
		{"unsigned", fmt.Sprintf("v1|%s|%d|HR|||||9999999999", key.ID(), f.a.OrganizationID), "NULL"},
		{"malformed", "v1|x", "NULL"},
		{"too long", valid + strings.Repeat("0", 1200), "NULL"},
	}
	for _, tc := range tests {
		for _, role := range []struct {
			name string
			pool *pgxpool.Pool
		}{{postgres.RoleDashboard, f.dashboard}, {postgres.RoleIngest, f.ingest}, {postgres.RoleAdmin, f.platform}} {
			if got := f.withTenantValue(role.pool, tc.value, contextFields); got != tc.want {
				t.Errorf("%s, as %s: app.context() = %s, want %s", tc.name, role.name, got, tc.want)
			}
		}
	}
}

// testContextField: app.<field>() is that field of the verified context,
// as every login role; NULL without a context or with an expired one.
func testContextField(field string, want func(f *fnDB) string) func(t *testing.T, f *fnDB) {
	return func(t *testing.T, f *fnDB) {
		ten := postgres.Tenant{OrganizationID: f.a.OrganizationID, Role: postgres.AppHR, UserID: f.a.UserID,
			Scope: fmt.Sprintf("department:%d", f.a.DepartmentID), Actor: "alice"}
		expired, err := pg.ContextKey().Sign(ten, time.Now().Add(-time.Second))
		if err != nil {
			t.Fatal(err)
		}
		sql := fmt.Sprintf(`SELECT coalesce(app.%s()::text, 'NULL')`, field)
		for _, db := range []*pgxpool.Pool{f.dashboard, f.ingest, f.platform} {
			equal(t, "signed context", f.rows(db, ten, sql), []string{want(f)})
			equal(t, "no context", f.rows(db, none, sql), []string{"NULL"})
			if got := f.withTenantValue(db, expired, sql); got != "NULL" {
				t.Errorf("expired context: app.%s() = %s, want NULL", field, got)
			}
		}
	}
}

// testAppAllOrganizations: true only for a verified ADMIN context in a
// session logged in as staff_admin, and for the owner.
func testAppAllOrganizations(t *testing.T, f *fnDB) {
	admin := postgres.Tenant{Role: postgres.AppAdmin, Actor: "root"}
	orgAdmin := postgres.Tenant{OrganizationID: f.a.OrganizationID, Role: postgres.AppOrgAdmin}
	tests := []struct {
		name string
		db   postgres.Beginner
		ten  postgres.Tenant
		want string
	}{
		{"staff_admin, ADMIN", f.platform, admin, "true"},
		{"staff_admin, ORG_ADMIN", f.platform, orgAdmin, "false"},
		{"staff_admin, no context", f.platform, none, "false"},
		{"staff_dashboard, ADMIN", f.dashboard, admin, "false"},
		{"staff_ingest, ADMIN", f.ingest, admin, "false"},
		{"staff_dashboard, ORG_ADMIN", f.dashboard, orgAdmin, "false"},
		{"the owner, no context", f.owner(), none, "true"},
	}
	for _, tc := range tests {
		equal(t, tc.name, f.rows(tc.db, tc.ten, `SELECT app.all_organizations()`), []string{tc.want})
	}
}

// testAppAudit: app.audit appends one row stamped from the verified
// context (organisation, user, actor); naming another organisation is
// refused (42501) but for staff_admin's ADMIN context; without a verified
// context the row has no organisation and the actor unverified:<role>.
func testAppAudit(t *testing.T, f *fnDB) {
	a, b := f.a.OrganizationID, f.b.OrganizationID
	alice := postgres.Tenant{OrganizationID: a, Role: postgres.AppHR, UserID: f.a.UserID, Actor: "alice"}
	admin := postgres.Tenant{Role: postgres.AppAdmin}
	const call = `SELECT app.audit($1, 'update', 'policy', '7', $2, $3)`
	const row = `SELECT format('%s|%s|%s|%s|%s|%s|%s|%s', organization_id, actor_user_id, actor, action, resource_type, resource_id, outcome, details)
		FROM audit_log WHERE id::text = $1`
	tests := []struct {
		name    string
		db      *pgxpool.Pool
		ten     postgres.Tenant
		org     *int64
		outcome *string
		want    string // the row, or the SQLSTATE
	}{
		{"own organisation implied", f.dashboard, alice, nil, nil, fmt.Sprintf("%d|%d|alice|update|policy|7|allowed|{}", a, f.a.UserID)},
		{"own organisation named", f.dashboard, alice, &a, ptr("denied"), fmt.Sprintf("%d|%d|alice|update|policy|7|denied|{}", a, f.a.UserID)},
		{"another organisation named", f.dashboard, alice, &b, nil, noPrivilege},
		{"no context", f.ingest, none, nil, nil, "||unverified:staff_ingest|update|policy|7|allowed|{}"},
		{"no context, an organisation named", f.ingest, none, &b, nil, "||unverified:staff_ingest|update|policy|7|allowed|{}"},
		{"staff_admin's ADMIN, another organisation named", f.platform, admin, &b, nil, fmt.Sprintf("%d||ADMIN|update|policy|7|allowed|{}", b)},
		{"staff_dashboard's ADMIN, an organisation named", f.dashboard, admin, &b, nil, noPrivilege},
	}
	for _, tc := range tests {
		before := f.one(`SELECT count(*)::text FROM audit_log`)
		ids, err := f.query(tc.db, tc.ten, call, tc.org, tc.outcome, nil)
		var pe *pgconn.PgError
		switch {
		case errors.As(err, &pe):
			if pe.Code != tc.want {
				t.Errorf("%s: SQLSTATE %s (%s), want %s", tc.name, pe.Code, pe.Message, tc.want)
			}
			if after := f.one(`SELECT count(*)::text FROM audit_log`); after != before {
				t.Errorf("%s: refused, yet the audit log went from %s to %s rows", tc.name, before, after)
			}
		case err != nil:
			t.Fatal(err)
		default:
			if got := f.one(row, ids[0]); got != tc.want {
				t.Errorf("%s: row %s, want %s", tc.name, got, tc.want)
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }

// --- triggers ---------------------------------------------------------------

// testAuditLogAppendOnly: UPDATE, DELETE and TRUNCATE of audit_log are
// refused (42501) even for the administrator, who bypasses row-level
// security; the owner's TRUNCATE is refused too (its UPDATE and DELETE
// reach no row: no policy lets them, so the trigger is the second line);
// the runtime roles hold no such privilege. No row changes.
func testAuditLogAppendOnly(t *testing.T, f *fnDB) {
	before := f.one(`SELECT count(*)::text FROM audit_log`)
	ops := []struct{ op, sql string }{
		{"UPDATE", `UPDATE audit_log SET action = 'erased'`},
		{"DELETE", `DELETE FROM audit_log`},
		{"TRUNCATE", `TRUNCATE audit_log`},
	}
	for _, op := range ops {
		f.refused(f.admin, none, noPrivilege, "audit_log is append-only: "+op.op, op.sql)
	}
	owner := f.owner()
	f.refused(owner, none, noPrivilege, "audit_log is append-only: TRUNCATE", `TRUNCATE audit_log`)
	for _, op := range ops[:2] {
		if code, msg := f.try(owner, none, op.sql); code != "" && code != noPrivilege {
			t.Errorf("owner: %s: %s %s", op.sql, code, msg)
		}
	}
	for _, db := range []*pgxpool.Pool{f.dashboard, f.ingest, f.platform} {
		for _, op := range ops {
			f.refused(db, org(f.a.OrganizationID), noPrivilege, "", op.sql)
		}
	}
	if after := f.one(`SELECT count(*)::text FROM audit_log`); after != before || before == "0" {
		t.Errorf("audit log rows: %s before, %s after, want the same non-zero count", before, after)
	}
	if got := f.one(`SELECT count(*)::text FROM audit_log WHERE action = 'erased'`); got != "0" {
		t.Errorf("%s rows updated", got)
	}
}

// listen is a connection (the administrator's) listening on channel.
func (f *fnDB) listen(channel string) *pgx.Conn {
	f.t.Helper()
	c, err := pgx.Connect(f.ctx, f.db.AdminURL)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { c.Close(context.Background()) })
	if _, err := c.Exec(f.ctx, "LISTEN "+channel); err != nil {
		f.t.Fatal(err)
	}
	return c
}

// notifications are the payloads c receives within wait.
func notifications(ctx context.Context, c *pgx.Conn, wait time.Duration) []string {
	var out []string
	for {
		wctx, cancel := context.WithTimeout(ctx, wait)
		n, err := c.WaitForNotification(wctx)
		cancel()
		if err != nil {
			return out
		}
		out = append(out, n.Payload)
		wait = 200 * time.Millisecond // the rest arrive together
	}
}

// testGatewayCommandsNotify: a command becoming pending (inserted, or
// set back to pending) notifies gateway_commands with its gateway's id;
// other changes notify nothing.
func testGatewayCommandsNotify(t *testing.T, f *fnDB) {
	l := f.listen("gateway_commands")
	var id uuid.UUID
	if err := f.admin.QueryRow(f.ctx, `INSERT INTO gateway_commands (organization_id, gateway_id, type, payload)
		VALUES ($1, $2, 'restart_agent', '{}') RETURNING id`, f.a.OrganizationID, f.a.GatewayID).Scan(&id); err != nil {
		t.Fatal(err)
	}
	equal(t, "insert pending", notifications(f.ctx, l, 5*time.Second), []string{f.a.GatewayID.String()})
	f.exec(`UPDATE gateway_commands SET status = 'delivered' WHERE id = $1`, id)
	f.exec(`UPDATE gateway_commands SET priority = 5 WHERE id = $1`, id)
	f.exec(`INSERT INTO gateway_commands (organization_id, gateway_id, type, payload, status) VALUES ($1, $2, 'restart_agent', '{}', 'completed')`,
		f.b.OrganizationID, f.b.GatewayID)
	equal(t, "delivered, other column, inserted completed", notifications(f.ctx, l, 500*time.Millisecond), nil)
	f.exec(`UPDATE gateway_commands SET status = 'pending' WHERE id = $1`, id)
	equal(t, "back to pending", notifications(f.ctx, l, 5*time.Second), []string{f.a.GatewayID.String()})
}

// testGatewayCommandsNotifyInserted: an INSERT statement of many commands
// (the group commit's) notifies gateway_commands once per gateway with a
// pending command among them (00044; their order is not promised, so
// compared sorted); commands inserted finished notify nothing.
func testGatewayCommandsNotifyInserted(t *testing.T, f *fnDB) {
	l := f.listen("gateway_commands")
	f.exec(`INSERT INTO gateway_commands (organization_id, gateway_id, type, payload, status)
		SELECT o, g, 'restart_agent', '{}', s FROM (VALUES ($1::bigint, $2::uuid, 'pending'), ($1, $2, 'pending'), ($3, $4, 'pending'),
		($1, $2, 'pending'), ($3, $4, 'completed')) AS v(o, g, s)`, f.a.OrganizationID, f.a.GatewayID, f.b.OrganizationID, f.b.GatewayID)
	got := notifications(f.ctx, l, 5*time.Second)
	slices.Sort(got)
	want := []string{f.a.GatewayID.String(), f.b.GatewayID.String()}
	slices.Sort(want)
	equal(t, "one statement, two gateways", got, want)
	f.exec(`INSERT INTO gateway_commands (organization_id, gateway_id, type, payload, status)
		SELECT $1, $2, 'restart_agent', '{}', 'cancelled' FROM generate_series(1, 3)`, f.b.OrganizationID, f.b.GatewayID)
	equal(t, "inserted cancelled", notifications(f.ctx, l, 500*time.Millisecond), nil)
}

// testGatewayInstancesRevokedNotify: revoking a gateway or replacing its
// API key notifies gateway_revoked with its id; other updates nothing.
func testGatewayInstancesRevokedNotify(t *testing.T, f *fnDB) {
	l := f.listen("gateway_revoked")
	f.exec(`UPDATE gateway_instances SET status = 'offline', last_seen_at = now() WHERE id = $1`, f.a.GatewayID)
	f.exec(`UPDATE gateway_instances SET api_key_hash = api_key_hash WHERE id = $1`, f.a.GatewayID)
	equal(t, "status, same key", notifications(f.ctx, l, 500*time.Millisecond), nil)
	f.exec(`UPDATE gateway_instances SET api_key_hash = sha256('new key') WHERE id = $1`, f.b.GatewayID)
	equal(t, "new key", notifications(f.ctx, l, 5*time.Second), []string{f.b.GatewayID.String()})
	f.exec(`UPDATE gateway_instances SET revoked_at = now(), status = 'revoked' WHERE id = $1`, f.a.GatewayID)
	equal(t, "revoked", notifications(f.ctx, l, 5*time.Second), []string{f.a.GatewayID.String()})
}

// testGatewayInstancesVoidPending: replacing a gateway's API key voids a
// pending (rotated, unconfirmed) key, unless the same update sets the
// pending key itself; other updates keep it.
func testGatewayInstancesVoidPending(t *testing.T, f *fnDB) {
	const setPending = `UPDATE gateway_instances SET pending_key_hash = sha256('pending'), pending_key_prefix = 'scgw_pend',
		pending_key_expires_at = now() + interval '1 hour' WHERE id = $1`
	const pending = `SELECT format('%s|%s|%s', pending_key_hash IS NOT NULL, pending_key_prefix, pending_key_expires_at IS NOT NULL)
		FROM gateway_instances WHERE id = $1`
	gw := f.a.GatewayID
	f.exec(setPending, gw)
	f.exec(`UPDATE gateway_instances SET status = 'offline', api_key_prefix = 'scgw_same' WHERE id = $1`, gw)
	if got := f.one(pending, gw); got != "t|scgw_pend|t" {
		t.Errorf("after an update keeping the key: pending %s, want kept", got)
	}
	f.exec(`UPDATE gateway_instances SET api_key_hash = sha256('replacement'), pending_key_prefix = 'scgw_new' WHERE id = $1`, gw)
	if got := f.one(pending, gw); got != "f||f" {
		t.Errorf("after the key was replaced: pending %s, want voided", got)
	}
	f.exec(setPending, gw)
	f.exec(`UPDATE gateway_instances SET api_key_hash = sha256('another'), pending_key_hash = sha256('pending 2') WHERE id = $1`, gw)
	if got := f.one(pending, gw); got != "t|scgw_pend|t" {
		t.Errorf("after an update setting the pending key itself: pending %s, want kept", got)
	}
	if got := f.one(pending, f.b.GatewayID); got != "f||f" {
		t.Errorf("the other gateway: pending %s, want none", got)
	}
}

// testDeviceCommandsFollow: a device_commands row follows the status of its
// device_command gateway command, whoever moves it (the ingest role in the
// gateway's context, the sweep without one, the dashboard role): delivered,
// completed → completed or failed per the result's status, failed, expired
// and cancelled with the reason; a final row stays; another row, or an
// unlinked one, never moves; nobody calls the function itself.
func testDeviceCommandsFollow(t *testing.T, f *fnDB) {
	link := func(o pgtest.Seeded) (cmd, row uuid.UUID) {
		t.Helper()
		if err := f.admin.QueryRow(f.ctx, `INSERT INTO gateway_commands (organization_id, gateway_id, type, payload, expires_at)
			VALUES ($1, $2, 'device_command', '{}', now() + interval '1 hour') RETURNING id`, o.OrganizationID, o.GatewayID).Scan(&cmd); err != nil {
			t.Fatal(err)
		}
		if err := f.admin.QueryRow(f.ctx, `INSERT INTO device_commands (organization_id, device_id, gateway_id, adapter_type, command_type, payload,
			gateway_command_id) VALUES ($1, $2, $3, 'hikvision', 'open_door', '{}', $4) RETURNING id`, o.OrganizationID, o.DeviceID, o.GatewayID, cmd).Scan(&row); err != nil {
			t.Fatal(err)
		}
		return cmd, row
	}
	state := func(row uuid.UUID) string {
		return f.one(`SELECT format('%s|%s|%s|%s|%s', status, coalesce(response::text, '-'), coalesce(error, '-'),
			delivered_at IS NOT NULL, completed_at IS NOT NULL) FROM device_commands WHERE id = $1`, row)
	}
	a := org(f.a.OrganizationID)
	move := func(db *pgxpool.Pool, ten postgres.Tenant, sql string, args ...any) {
		t.Helper()
		f.rows(db, ten, sql+` RETURNING id::text`, args...)
	}
	bCmd, bRow := link(f.b)
	var unlinked uuid.UUID
	if err := f.admin.QueryRow(f.ctx, `INSERT INTO device_commands (organization_id, device_id, gateway_id, adapter_type, command_type, payload)
		VALUES ($1, $2, $3, 'hikvision', 'reboot', '{}') RETURNING id`, f.a.OrganizationID, f.a.DeviceID, f.a.GatewayID).Scan(&unlinked); err != nil {
		t.Fatal(err)
	}

	cmd, row := link(f.a)
	move(f.ingest, a, `UPDATE gateway_commands SET status = 'delivered', delivered_at = now(), attempts = 1 WHERE id = $1`, cmd)
	equal(t, "delivered", []string{state(row)}, []string{"delivered|-|-|t|f"})
	move(f.ingest, a, `UPDATE gateway_commands SET status = 'completed', result = '{"status":"ok","message":"opened"}', completed_at = now() WHERE id = $1`, cmd)
	equal(t, "completed ok", []string{state(row)}, []string{`completed|{"status": "ok", "message": "opened"}|-|t|t`})
	move(f.ingest, a, `UPDATE gateway_commands SET status = 'failed', error = 'late' WHERE id = $1`, cmd)
	equal(t, "a final row stays", []string{state(row)}, []string{`completed|{"status": "ok", "message": "opened"}|-|t|t`})

	cmd, row = link(f.a)
	move(f.ingest, a, `UPDATE gateway_commands SET status = 'completed', result = '{"status":"failed","message":"jammed"}' WHERE id = $1`, cmd)
	equal(t, "completed, the device failed", []string{state(row)}, []string{`failed|{"status": "failed", "message": "jammed"}|jammed|f|t`})

	cmd, row = link(f.a)
	move(f.ingest, a, `UPDATE gateway_commands SET status = 'completed' WHERE id = $1`, cmd)
	equal(t, "completed without a result", []string{state(row)}, []string{`failed|-|the device command failed|f|t`})

	cmd, row = link(f.a)
	move(f.ingest, a, `UPDATE gateway_commands SET status = 'failed', error = 'no such device' WHERE id = $1`, cmd)
	equal(t, "failed", []string{state(row)}, []string{`failed|-|no such device|f|t`})

	cmd, row = link(f.a)
	f.exec(`UPDATE gateway_commands SET expires_at = now() - interval '1 second' WHERE id = $1`, cmd)
	f.rows(f.ingest, none, `SELECT id::text FROM gateway_commands_sweep('1 second')`)
	equal(t, "expired by the sweep", []string{state(row)}, []string{`expired|-|expired before delivery|f|t`})

	cmd, row = link(f.a)
	move(f.dashboard, postgres.Tenant{OrganizationID: f.a.OrganizationID, Role: postgres.AppOrgAdmin},
		`UPDATE gateway_commands SET status = 'cancelled' WHERE id = $1`, cmd)
	equal(t, "cancelled", []string{state(row)}, []string{`cancelled|-|cancelled|f|t`})

	equal(t, "B's row", []string{state(bRow)}, []string{"pending|-|-|f|f"})
	equal(t, "an unlinked row", []string{state(unlinked)}, []string{"pending|-|-|f|f"})
	move(f.ingest, org(f.b.OrganizationID), `UPDATE gateway_commands SET status = 'delivered' WHERE id = $1`, bCmd)
	equal(t, "B's row, its command delivered", []string{state(bRow)}, []string{"delivered|-|-|t|f"})
	f.refused(f.dashboard, a, noPrivilege, "permission denied", `SELECT device_commands_follow()`)
}

// --- gateways and the command queue -------------------------------------------

// testGatewayByAPIKeyHash: the current key's hash finds its gateway
// (id, organisation, status) across organisations; an unknown hash or a
// revoked gateway's finds nothing; the first use of a pending key promotes
// it (the old key stops working) and completes the rotation command; the
// current key past a pending key's expiry voids the pending key.
func testGatewayByAPIKeyHash(t *testing.T, f *fnDB) {
	const call = `SELECT format('%s|%s|%s', gateway_id, organization_id, status) FROM gateway_by_api_key_hash(sha256($1::text::bytea))`
	lookup := func(key string) []string { return f.rows(f.ingest, none, call, key) }
	equal(t, "A's key", lookup("key-alpha"), []string{fmt.Sprintf("%s|%d|online", f.a.GatewayID, f.a.OrganizationID)})
	equal(t, "B's key", lookup("key-beta"), []string{fmt.Sprintf("%s|%d|online", f.b.GatewayID, f.b.OrganizationID)})
	equal(t, "unknown key", lookup("key-gamma"), nil)

	// Rotation: A gets a pending key bound to a delivered rotate command.
	var cmd uuid.UUID
	if err := f.admin.QueryRow(f.ctx, `INSERT INTO gateway_commands (organization_id, gateway_id, type, payload, status, attempts, delivered_at, ack_deadline)
		VALUES ($1, $2, 'rotate_api_key', '{}', 'delivered', 1, now(), now() + interval '1 minute') RETURNING id`,
		f.a.OrganizationID, f.a.GatewayID).Scan(&cmd); err != nil {
		t.Fatal(err)
	}
	f.exec(`UPDATE gateway_instances SET pending_key_hash = sha256('key-alpha-2'), pending_key_prefix = 'scgw_a2',
		pending_key_expires_at = now() + interval '1 hour', pending_command_id = $2 WHERE id = $1`, f.a.GatewayID, cmd)
	equal(t, "A's old key while a key is pending", lookup("key-alpha"), []string{fmt.Sprintf("%s|%d|online", f.a.GatewayID, f.a.OrganizationID)})
	equal(t, "A's pending key", lookup("key-alpha-2"), []string{fmt.Sprintf("%s|%d|online", f.a.GatewayID, f.a.OrganizationID)})
	if got := f.one(`SELECT format('%s|%s|%s', api_key_hash = sha256('key-alpha-2'), api_key_prefix, pending_key_hash IS NULL)
		FROM gateway_instances WHERE id = $1`, f.a.GatewayID); got != "t|scgw_a2|t" {
		t.Errorf("after the pending key's first use: key promoted|prefix|pending cleared = %s", got)
	}
	if got := f.one(`SELECT format('%s|%s', status, result->>'key_prefix') FROM gateway_commands WHERE id = $1`, cmd); got != "completed|scgw_a2" {
		t.Errorf("rotation command: %s, want completed|scgw_a2", got)
	}
	equal(t, "A's old key after the promotion", lookup("key-alpha"), nil)
	equal(t, "A's new key", lookup("key-alpha-2"), []string{fmt.Sprintf("%s|%d|online", f.a.GatewayID, f.a.OrganizationID)})

	// An expired pending key is voided by the next use of the current one.
	f.exec(`UPDATE gateway_instances SET pending_key_hash = sha256('key-beta-2'), pending_key_expires_at = now() - interval '1 second' WHERE id = $1`, f.b.GatewayID)
	equal(t, "B's key past its pending key's expiry", lookup("key-beta"), []string{fmt.Sprintf("%s|%d|online", f.b.GatewayID, f.b.OrganizationID)})
	if got := f.one(`SELECT (pending_key_hash IS NULL)::text FROM gateway_instances WHERE id = $1`, f.b.GatewayID); got != "true" {
		t.Errorf("B's expired pending key kept")
	}
	equal(t, "B's voided pending key", lookup("key-beta-2"), nil)

	f.exec(`UPDATE gateway_instances SET revoked_at = now(), status = 'revoked' WHERE id = $1`, f.b.GatewayID)
	equal(t, "revoked gateway's key", lookup("key-beta"), nil)
	f.refused(f.dashboard, none, noPrivilege, "permission denied", `SELECT * FROM gateway_by_api_key_hash(sha256('key-alpha-2'))`)
}

// testGatewayProvision: a provisioning token exchanged once, before it
// expires, for its organisation's and serial's gateway (not revoked), sets
// the gateway's API key and returns its id; every other call returns NULL
// and changes nothing.
func testGatewayProvision(t *testing.T, f *fnDB) {
	a := f.a
	const call = `SELECT gateway_provision($1, $2, sha256($3::text::bytea), sha256('new-key'), 'scgw_new1')`
	const gateway = `SELECT format('%s|%s|%s', api_key_hash = sha256('new-key'), api_key_prefix, status) FROM gateway_instances WHERE id = $1`
	f.exec(`UPDATE provisioning_tokens SET expires_at = now() - interval '1 second' WHERE organization_id = $1`, f.b.OrganizationID)
	tests := []struct {
		name   string
		org    int64
		serial string
		token  string
		want   string
	}{
		{"another organisation", f.b.OrganizationID, "GW-1", "token-alpha", "NULL"},
		{"another serial", a.OrganizationID, "GW-2", "token-alpha", "NULL"},
		{"a wrong token", a.OrganizationID, "GW-1", "token-gamma", "NULL"},
		{"another organisation's token", a.OrganizationID, "GW-1", "token-beta", "NULL"},
		{"an expired token", f.b.OrganizationID, "GW-1", "token-beta", "NULL"},
		{"the right one", a.OrganizationID, "GW-1", "token-alpha", a.GatewayID.String()},
		{"the right one again", a.OrganizationID, "GW-1", "token-alpha", "NULL"},
	}
	for _, tc := range tests {
		if tc.want != "NULL" {
			if got := f.one(gateway, a.GatewayID); got != "f||online" {
				t.Fatalf("before the exchange: gateway %s", got)
			}
		}
		equal(t, tc.name, f.rows(f.ingest, none, call, tc.org, tc.serial, tc.token), []string{tc.want})
		if tc.want != "NULL" {
			if got := f.one(gateway, a.GatewayID); got != "t|scgw_new1|offline" {
				t.Errorf("after the exchange: key set|prefix|status = %s, want t|scgw_new1|offline", got)
			}
		}
	}
	if got := f.one(gateway, f.b.GatewayID); got != "f||online" {
		t.Errorf("B's gateway changed: %s", got)
	}
	// A revoked gateway's valid token.
	f.exec(`UPDATE provisioning_tokens SET expires_at = now() + interval '1 hour' WHERE organization_id = $1`, f.b.OrganizationID)
	f.exec(`UPDATE gateway_instances SET revoked_at = now(), status = 'revoked' WHERE id = $1`, f.b.GatewayID)
	equal(t, "revoked gateway", f.rows(f.ingest, none, call, f.b.OrganizationID, "GW-1", "token-beta"), []string{"NULL"})
	f.refused(f.dashboard, none, noPrivilege, "permission denied", call, a.OrganizationID, "GW-1", "token-alpha")
}

// testGatewayCommandsDue: the ids of the given gateways that have a
// pending command due and not expired, of the verified organisation only.
func testGatewayCommandsDue(t *testing.T, f *fnDB) {
	a, b := f.a, f.b
	// The seeded commands are pending and due.
	const call = `SELECT gateway_commands_due($1)::text`
	both := []uuid.UUID{a.GatewayID, b.GatewayID}
	equal(t, "no context", f.rows(f.ingest, none, call, both), nil)
	equal(t, "A's context, both", f.rows(f.ingest, org(a.OrganizationID), call, both), []string{a.GatewayID.String()})
	equal(t, "A's context, B's gateway", f.rows(f.ingest, org(a.OrganizationID), call, []uuid.UUID{b.GatewayID}), nil)
	equal(t, "B's context, both", f.rows(f.ingest, org(b.OrganizationID), call, both), []string{b.GatewayID.String()})
	for _, tc := range []struct{ name, set string }{
		{"not yet due", `next_attempt_at = now() + interval '1 minute'`},
		{"expired", `expires_at = now() - interval '1 second'`},
		{"delivered", `status = 'delivered'`},
	} {
		f.exec(`UPDATE gateway_commands SET `+tc.set+` WHERE organization_id = $1`, a.OrganizationID)
		equal(t, tc.name, f.rows(f.ingest, org(a.OrganizationID), call, both), nil)
		f.exec(`UPDATE gateway_commands SET status = 'pending', next_attempt_at = now(), expires_at = now() + interval '1 hour' WHERE organization_id = $1`, a.OrganizationID)
	}
	equal(t, "due again", f.rows(f.ingest, org(a.OrganizationID), call, both), []string{a.GatewayID.String()})
}

// testGatewayCommandsDepth: the queue's pending and delivered commands
// counted by status and type over both organisations, with the oldest's
// age; terminal ones left out; figures only (no organisation, gateway or
// payload column), whatever the caller's context; for the ingest role only.
func testGatewayCommandsDepth(t *testing.T, f *fnDB) {
	a, b := f.a, f.b
	f.exec(`DELETE FROM gateway_commands`)
	const call = `SELECT status || ' ' || type || ' ' || commands || ' ' || round(extract(epoch from now() - oldest) / 60) FROM gateway_commands_depth()`
	equal(t, "empty", f.rows(f.ingest, none, call), nil)
	for _, c := range []struct {
		o           pgtest.Seeded
		typ, status string
		minutesAgo  int
	}{
		{a, "policy_update", "pending", 0},
		{a, "policy_update", "pending", 90},
		{b, "policy_update", "pending", 30},
		{a, "restart_agent", "delivered", 5},
		{b, "restart_agent", "completed", 600},
		{b, "policy_update", "failed", 600},
		{a, "policy_update", "expired", 600},
		{b, "devices_update", "cancelled", 600},
	} {
		f.exec(`INSERT INTO gateway_commands (organization_id, gateway_id, type, payload, status, created_at)
			VALUES ($1, $2, $3, '{"secret":"x"}', $4, now() - make_interval(mins => $5))`, c.o.OrganizationID, c.o.GatewayID, c.typ, c.status, c.minutesAgo)
	}
	want := []string{"delivered restart_agent 1 5", "pending policy_update 3 90"}
	equal(t, "no context", f.rows(f.ingest, none, call), want)
	// A context changes nothing: platform figures, not one organisation's.
	equal(t, "A's context", f.rows(f.ingest, org(a.OrganizationID), call), want)
	equal(t, "B's context", f.rows(f.ingest, org(b.OrganizationID), call), want)
	// Counts only: the result has no column that could carry a row.
	equal(t, "result columns", f.rows(f.ingest, none, `SELECT a FROM unnest((SELECT proargnames FROM pg_proc WHERE oid = 'gateway_commands_depth()'::regprocedure)) a`),
		[]string{"status", "type", "commands", "oldest"})
	// The tenant roles cannot call it, whatever their context.
	const count = `SELECT count(*) FROM gateway_commands_depth()`
	for _, ten := range []postgres.Tenant{none, org(a.OrganizationID)} {
		f.refused(f.dashboard, ten, noPrivilege, "permission denied", count)
		f.refused(f.platform, ten, noPrivilege, "permission denied", count)
	}
	f.refused(f.platform, postgres.Tenant{Role: postgres.AppAdmin}, noPrivilege, "permission denied", count)
}

// testGatewayCommandsSweep: at the server's clock, a delivery past its ack
// deadline goes back to pending after a backoff (clamped to 5 min) or,
// with its attempts spent, fails; a pending command past its expiry
// expires; nothing else changes. Every organisation is swept.
func testGatewayCommandsSweep(t *testing.T, f *fnDB) {
	f.exec(`DELETE FROM gateway_commands`)
	ins := func(o pgtest.Seeded, set string) uuid.UUID {
		t.Helper()
		var id uuid.UUID
		if err := f.admin.QueryRow(f.ctx, `INSERT INTO gateway_commands (organization_id, gateway_id, type, payload) VALUES ($1, $2, 'restart_agent', '{}') RETURNING id`,
			o.OrganizationID, o.GatewayID).Scan(&id); err != nil {
			t.Fatal(err)
		}
		f.exec(`UPDATE gateway_commands SET `+set+` WHERE id = $1`, id)
		return id
	}
	late := ins(f.a, `status = 'delivered', attempts = 1, max_attempts = 3, ack_deadline = now() - interval '1 second'`)
	spent := ins(f.b, `status = 'delivered', attempts = 3, max_attempts = 3, ack_deadline = now() - interval '1 second'`)
	old := ins(f.b, `expires_at = now() - interval '1 second'`)
	waiting := ins(f.a, `status = 'delivered', attempts = 1, ack_deadline = now() + interval '1 minute'`)
	fresh := ins(f.a, `expires_at = now() + interval '1 hour'`)
	got := f.rows(f.ingest, none, `SELECT format('%s|%s|%s', id, gateway_id, status) FROM gateway_commands_sweep('1 hour')`)
	sort.Strings(got)
	want := []string{fmt.Sprintf("%s|%s|pending", late, f.a.GatewayID), fmt.Sprintf("%s|%s|failed", spent, f.b.GatewayID),
		fmt.Sprintf("%s|%s|expired", old, f.b.GatewayID)}
	sort.Strings(want)
	equal(t, "swept", got, want)
	state := `SELECT format('%s|%s', status, ack_deadline IS NULL) FROM gateway_commands WHERE id = $1`
	for _, c := range []struct {
		id   uuid.UUID
		want string
	}{{late, "pending|t"}, {spent, "failed|t"}, {old, "expired|t"}, {waiting, "delivered|f"}, {fresh, "pending|t"}} {
		if got := f.one(state, c.id); got != c.want {
			t.Errorf("command %s: %s, want %s", c.id, got, c.want)
		}
	}
	// The backoff of 1 hour is clamped to 5 minutes.
	if got := f.one(`SELECT (next_attempt_at <= now() + interval '5 minutes' AND next_attempt_at > now() + interval '4 minutes')::text
		FROM gateway_commands WHERE id = $1`, late); got != "true" {
		t.Errorf("the redelivery is not due in about 5 minutes (backoff clamped)")
	}
	if got := f.one(`SELECT error FROM gateway_commands WHERE id = $1`, spent); !strings.Contains(got, "not acknowledged after 3 attempts") {
		t.Errorf("failed command's error %q", got)
	}
	// A negative backoff is clamped to 0: due at once.
	f.exec(`UPDATE gateway_commands SET status = 'delivered', attempts = 1, ack_deadline = now() - interval '1 second' WHERE id = $1`, late)
	f.rows(f.ingest, none, `SELECT id::text FROM gateway_commands_sweep('-1 hour')`)
	if got := f.one(`SELECT (next_attempt_at <= now())::text FROM gateway_commands WHERE id = $1`, late); got != "true" {
		t.Errorf("a negative backoff delayed the redelivery")
	}
	equal(t, "nothing left to sweep", f.rows(f.ingest, none, `SELECT id::text FROM gateway_commands_sweep(NULL)`), nil)
	f.refused(f.dashboard, none, noPrivilege, "permission denied", `SELECT * FROM gateway_commands_sweep('1 second')`)
}

// testGatewaysMarkOfflineAfter: online gateways silent for longer than
// the silence — at least 30 s, measured at the server's clock — go
// offline and are returned, in every organisation; the others stay.
func testGatewaysMarkOfflineAfter(t *testing.T, f *fnDB) {
	const status = `SELECT string_agg(status, ',' ORDER BY organization_id) FROM gateway_instances`
	reset := func() {
		f.exec(`UPDATE gateway_instances SET status = 'online', last_seen_at = now() - interval '10 seconds' WHERE id = $1`, f.a.GatewayID)
		f.exec(`UPDATE gateway_instances SET status = 'online', last_seen_at = now() - interval '10 minutes' WHERE id = $1`, f.b.GatewayID)
	}
	// A silence under 30 s counts as 30 s: A (10 s) stays, B (10 min) goes.
	for _, silence := range []string{"'0'", "'-1 hour'", "NULL", "'20 seconds'", "'5 minutes'"} {
		reset()
		equal(t, "silence "+silence, f.rows(f.ingest, none, `SELECT gateways_mark_offline_after(`+silence+`::interval)::text`), []string{f.b.GatewayID.String()})
		if got := f.one(status); got != "online,offline" {
			t.Errorf("silence %s: %s, want A online and B offline", silence, got)
		}
	}
	reset()
	equal(t, "silence 1 hour", f.rows(f.ingest, none, `SELECT gateways_mark_offline_after('1 hour')::text`), nil)
	if got := f.one(status); got != "online,online" {
		t.Errorf("silence 1 hour: %s, want both online", got)
	}
	f.exec(`UPDATE gateway_instances SET last_seen_at = NULL WHERE id = $1`, f.a.GatewayID)
	f.exec(`UPDATE gateway_instances SET status = 'offline' WHERE id = $1`, f.b.GatewayID)
	equal(t, "never seen; already offline", f.rows(f.ingest, none, `SELECT gateways_mark_offline_after('1 hour')::text`), []string{f.a.GatewayID.String()})
	f.refused(f.dashboard, none, noPrivilege, "permission denied", `SELECT gateways_mark_offline_after('1 hour')`)
}

// testPolicyDistributionsActive: the distributions in stage canary or
// full, of every organisation (ids and organisations only).
func testPolicyDistributionsActive(t *testing.T, f *fnDB) {
	const call = `SELECT format('%s', organization_id) FROM policy_distributions_active()`
	got := f.rows(f.ingest, none, call)
	sort.Strings(got)
	equal(t, "both canary", got, sortedIDs(f.a.OrganizationID, f.b.OrganizationID))
	f.exec(`UPDATE policy_distributions SET stage = 'full' WHERE organization_id = $1`, f.a.OrganizationID)
	f.exec(`UPDATE policy_distributions SET stage = 'done' WHERE organization_id = $1`, f.b.OrganizationID)
	equal(t, "A full, B done", f.rows(f.ingest, none, call), sortedIDs(f.a.OrganizationID))
	f.exec(`UPDATE policy_distributions SET stage = 'halted' WHERE organization_id = $1`, f.a.OrganizationID)
	equal(t, "A halted, B done", f.rows(f.ingest, none, call), nil)
	f.refused(f.dashboard, none, noPrivilege, "permission denied", call)
}

// testPolicyDistributionsReady (00036): an active distribution is listed
// exactly when an advance would move it — a target of its stage without a
// command, no command of its stage still pending or delivered, a failed
// canary, an applied target of a restart-requiring version without its
// restart command; never a finished one; across organisations, for the
// ingest role only.
func testPolicyDistributionsReady(t *testing.T, f *fnDB) {
	const call = `SELECT format('%s', organization_id) FROM policy_distributions_ready()`
	got := f.rows(f.ingest, none, call)
	sort.Strings(got)
	equal(t, "seeded: targets without commands", got, sortedIDs(f.a.OrganizationID, f.b.OrganizationID))
	org := f.a.OrganizationID
	var dist uuid.UUID
	if err := f.admin.QueryRow(f.ctx, `SELECT id FROM policy_distributions WHERE organization_id = $1`, org).Scan(&dist); err != nil {
		t.Fatal(err)
	}
	// A second gateway and target; both targets canaries with a command.
	f.exec(`INSERT INTO gateway_instances (organization_id, serial, api_key_hash, status)
		VALUES ($1, 'R-2', sha256(convert_to('R-2', 'UTF8')), 'online')`, org)
	f.exec(`INSERT INTO policy_distribution_targets (distribution_id, organization_id, gateway_id)
		SELECT $1, $2, id FROM gateway_instances WHERE serial = 'R-2'`, dist, org)
	f.exec(`WITH c AS (INSERT INTO gateway_commands (organization_id, gateway_id, type, payload)
		   SELECT t.organization_id, t.gateway_id, 'policy_update', '{}' FROM policy_distribution_targets t
		    WHERE t.distribution_id = $1 RETURNING id, gateway_id)
		 UPDATE policy_distribution_targets t SET command_id = c.id, canary = true FROM c
		  WHERE t.distribution_id = $1 AND t.gateway_id = c.gateway_id`, dist)
	f.exec(`UPDATE policy_distributions SET stage = 'done' WHERE organization_id = $1`, f.b.OrganizationID)
	ready := func() bool {
		t.Helper()
		return len(f.rows(f.ingest, none, call)) == 1
	}
	setAll := func(status string) {
		f.exec(`UPDATE gateway_commands SET status = $2 WHERE id IN (SELECT command_id FROM policy_distribution_targets WHERE distribution_id = $1)`, dist, status)
	}
	setOne := func(serial, status string) {
		f.exec(`UPDATE gateway_commands SET status = $2 WHERE id = (SELECT t.command_id FROM policy_distribution_targets t
			JOIN gateway_instances g ON g.id = t.gateway_id WHERE t.distribution_id = $1 AND g.serial = $3)`, dist, status, serial)
	}
	serialA := f.one(`SELECT serial FROM gateway_instances WHERE id = $1`, f.a.GatewayID)
	steps := []struct {
		name string
		do   func()
		want bool
	}{
		{"canaries pending", func() { setAll("pending") }, false},
		{"one delivered, one completed", func() { setOne(serialA, "delivered"); setOne("R-2", "completed") }, false},
		{"both completed: canary over", func() { setOne(serialA, "completed") }, true},
		{"one failed, one pending: halt", func() { setOne(serialA, "failed"); setOne("R-2", "pending") }, true},
		{"one expired counts as failed", func() { setOne(serialA, "expired") }, true},
		{"canary, both pending again", func() { setAll("pending") }, false},
		{"full stage, only canaries, pending", func() {
			f.exec(`UPDATE policy_distributions SET stage = 'full' WHERE id = $1`, dist)
		}, false},
		{"full: a non-canary target without a command", func() {
			f.exec(`UPDATE policy_distribution_targets SET canary = false WHERE distribution_id = $1
				AND gateway_id = (SELECT id FROM gateway_instances WHERE serial = 'R-2')`, dist)
			f.exec(`UPDATE policy_distribution_targets SET command_id = NULL WHERE distribution_id = $1 AND canary = false`, dist)
		}, true},
		{"full: it gets its command", func() {
			f.exec(`WITH c AS (INSERT INTO gateway_commands (organization_id, gateway_id, type, payload)
				SELECT organization_id, gateway_id, 'policy_update', '{}' FROM policy_distribution_targets
				 WHERE distribution_id = $1 AND command_id IS NULL RETURNING id, gateway_id)
				UPDATE policy_distribution_targets t SET command_id = c.id FROM c WHERE t.distribution_id = $1 AND t.gateway_id = c.gateway_id`, dist)
		}, false},
		{"full: one completed, one delivered", func() { setOne(serialA, "completed"); setOne("R-2", "delivered") }, false},
		{"full, restart required: the completed one needs its restart", func() {
			f.exec(`UPDATE policy_versions SET requires_restart = true WHERE id = (SELECT version_id FROM policy_distributions WHERE id = $1)`, dist)
		}, true},
		{"it has its restart command", func() {
			f.exec(`UPDATE policy_distribution_targets SET restart_command_id = command_id WHERE distribution_id = $1 AND command_id IS NOT NULL
				AND gateway_id = $2`, dist, f.a.GatewayID)
		}, false},
		{"full: all completed", func() { setAll("completed") }, true},
		{"done", func() { f.exec(`UPDATE policy_distributions SET stage = 'done' WHERE id = $1`, dist) }, false},
	}
	for _, s := range steps {
		s.do()
		if got := ready(); got != s.want {
			t.Errorf("%s: ready %v, want %v", s.name, got, s.want)
		}
	}
	f.refused(f.dashboard, none, noPrivilege, "permission denied", call)
}

// sortedIDs are ids as text, sorted as text.
func sortedIDs(ids ...int64) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = fmt.Sprint(id)
	}
	sort.Strings(out)
	return out
}

// --- partitions ---------------------------------------------------------------

// timescale reports whether the test database's series are TimescaleDB
// hypertables.
func (f *fnDB) timescale() bool { return f.one(`SELECT monitoring.storage_kind()`) == "timescaledb" }

// testStorageKind: 'partitions' when the series are partitioned tables,
// 'timescaledb' when they are hypertables; the ingest role may ask.
func testStorageKind(t *testing.T, f *fnDB) {
	want := "timescaledb"
	if f.one(`SELECT relkind::text FROM pg_class WHERE oid = 'monitoring.active_windows'::regclass`) == "p" {
		want = "partitions"
	}
	equal(t, "storage kind", f.rows(f.ingest, none, `SELECT monitoring.storage_kind()`), []string{want})
	f.refused(f.dashboard, none, noPrivilege, "permission denied", `SELECT monitoring.storage_kind()`)
}

// dayPartitions are the daily partitions of schema's series, as
// table_pYYYYMMDD.
func (f *fnDB) dayPartitions(schema string) []string {
	f.t.Helper()
	rows, err := f.admin.Query(f.ctx, `SELECT c.relname FROM monitoring.retention r
		JOIN pg_inherits i ON i.inhparent = to_regclass($1 || '.' || r.table_name)
		JOIN pg_class c ON c.oid = i.inhrelid WHERE c.relname ~ '_p[0-9]{8}$' ORDER BY 1`, schema)
	if err != nil {
		f.t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		f.t.Fatal(err)
	}
	return names
}

// dropDayPartitions drops every daily partition of both schemas (the
// administrator).
func (f *fnDB) dropDayPartitions() {
	f.t.Helper()
	for _, s := range []string{"monitoring", "monitoring_fallback"} {
		if s == "monitoring" && f.timescale() {
			continue
		}
		for _, p := range f.dayPartitions(s) {
			f.exec(fmt.Sprintf(`DROP TABLE %s.%s`, s, p))
		}
	}
}

// utcDay is today's UTC date shifted by days, as YYYYMMDD.
func utcDay(days int) string { return time.Now().UTC().AddDate(0, 0, days).Format("20060102") }

// partitionsOf are table's partitions among names, by their day suffix.
func partitionsOf(names []string, table string) []string {
	var out []string
	for _, n := range names {
		if day, ok := strings.CutPrefix(n, table+"_p"); ok {
			out = append(out, day)
		}
	}
	return out
}

// days are the YYYYMMDD of today+from … today+to.
func days(from, to int) []string {
	var out []string
	for d := from; d <= to; d++ {
		out = append(out, utcDay(d))
	}
	return out
}

// testEnsureRecentPartitions: creates the daily partitions of today −
// least(behind, 62, retention) … today + least(ahead, 3) of every series in
// both schemas (monitoring only on partitions), none outside; returns how
// many it created; a second call creates nothing.
func testEnsureRecentPartitions(t *testing.T, f *fnDB) {
	f.dropDayPartitions()
	if got := f.rows(f.ingest, none, `SELECT monitoring.ensure_recent_partitions(2, 1)`); got[0] == "0" {
		t.Fatalf("created %s partitions", got[0])
	}
	schemas := []string{"monitoring_fallback"}
	if !f.timescale() {
		schemas = append(schemas, "monitoring")
	} else if got := f.dayPartitions("monitoring"); len(got) != 0 {
		t.Errorf("TimescaleDB: daily partitions %v created in monitoring", got)
	}
	for _, s := range schemas {
		for _, table := range []string{"active_windows", "screenshots", "device_events"} {
			equal(t, s+"."+table+" (2, 1)", partitionsOf(f.dayPartitions(s), table), days(-2, 1))
		}
	}
	equal(t, "second call", f.rows(f.ingest, none, `SELECT monitoring.ensure_recent_partitions(2, 1)`), []string{"0"})
	// Extreme arguments stay within 62 days (or the retention) behind and 3 ahead.
	f.dropDayPartitions()
	for i := 0; ; i++ {
		if n := f.rows(f.ingest, none, `SELECT monitoring.ensure_recent_partitions(100000, 100000)`); n[0] == "0" {
			break
		}
		if i == 20 {
			t.Fatal("still creating partitions after 20 calls")
		}
	}
	for _, s := range schemas {
		equal(t, s+".screenshots (extreme)", partitionsOf(f.dayPartitions(s), "screenshots"), days(-30, 3))
		equal(t, s+".device_events (extreme)", partitionsOf(f.dayPartitions(s), "device_events"), days(-62, 3))
	}
	f.dropDayPartitions()
	if got := f.rows(f.ingest, none, `SELECT monitoring.ensure_recent_partitions(-5, NULL)`); got[0] == "0" {
		t.Fatalf("(-5, NULL) created nothing, want today")
	}
	equal(t, "(-5, NULL): today only", partitionsOf(f.dayPartitions("monitoring_fallback"), "visited_sites"), days(0, 0))
	f.refused(f.dashboard, none, noPrivilege, "permission denied", `SELECT monitoring.ensure_recent_partitions(1, 1)`)
}

// testEnsureDayPartitions: creates the named tables' partitions of the
// given days in one of the two schemas, skipping days wholly past
// retention and more than 2 days ahead; refuses another schema or table
// (22023) and more than 62 days (54000).
func testEnsureDayPartitions(t *testing.T, f *fnDB) {
	f.dropDayPartitions()
	const call = `SELECT monitoring.ensure_day_partitions($1, $2, $3::date[])`
	day := func(d int) string { return time.Now().UTC().AddDate(0, 0, d).Format("2006-01-02") }
	schemas := []string{"monitoring_fallback"}
	if !f.timescale() {
		schemas = append(schemas, "monitoring")
	}
	for _, s := range schemas {
		equal(t, s+": today and yesterday of two tables", f.rows(f.ingest, none, call, s, []string{"screenshots", "user_sessions"}, []string{day(0), day(-1)}), []string{"4"})
		equal(t, s+": again", f.rows(f.ingest, none, call, s, []string{"screenshots", "user_sessions"}, []string{day(0), day(-1)}), []string{"0"})
		equal(t, s+": past retention, 3 days ahead", f.rows(f.ingest, none, call, s, []string{"screenshots"}, []string{day(-40), day(3), day(2)}), []string{"1"})
		equal(t, s+".screenshots", partitionsOf(f.dayPartitions(s), "screenshots"), []string{utcDay(-1), utcDay(0), utcDay(2)})
		equal(t, s+".user_sessions", partitionsOf(f.dayPartitions(s), "user_sessions"), []string{utcDay(-1), utcDay(0)})
	}
	if f.timescale() {
		equal(t, "TimescaleDB: monitoring", f.rows(f.ingest, none, call, "monitoring", []string{"screenshots"}, []string{day(0)}), []string{"0"})
	}
	var many []string
	for d := 0; d < 63; d++ {
		many = append(many, day(-d))
	}
	f.refused(f.ingest, none, invalidParameter, "unknown schema", call, "public", []string{"screenshots"}, []string{day(0)})
	f.refused(f.ingest, none, invalidParameter, "unknown table", call, "monitoring_fallback", []string{"users"}, []string{day(0)})
	f.refused(f.ingest, none, programLimit, "at most 62", call, "monitoring_fallback", []string{"screenshots"}, many)
	f.refused(f.dashboard, none, noPrivilege, "permission denied", call, "monitoring_fallback", []string{"screenshots"}, []string{day(0)})
}

// expiredPartitions creates, as the owner, the partitions of the day
// daysAgo of every series in both schemas (monitoring on partitions only).
func (f *fnDB) expiredPartitions(daysAgo int) {
	f.t.Helper()
	d := time.Now().UTC().AddDate(0, 0, -daysAgo).Format("2006-01-02")
	if _, err := f.owner().Exec(f.ctx, `SELECT monitoring.ensure_partitions($1::date, $1::date)`, d); err != nil {
		f.t.Fatal(err)
	}
}

// testDropExpiredPartitions: drops (and names) only the partitions wholly
// past their table's retention at the server's clock, in both schemas
// (monitoring on partitions only); the rest stay.
func testDropExpiredPartitions(t *testing.T, f *fnDB) {
	f.expiredPartitions(40) // past screenshots' 30 days only
	schemas := []string{"monitoring_fallback"}
	if !f.timescale() {
		schemas = []string{"monitoring", "monitoring_fallback"}
	}
	var want []string
	for _, s := range schemas {
		want = append(want, s+".screenshots_p"+utcDay(-40))
	}
	got := f.rows(f.ingest, none, `SELECT monitoring.drop_expired_partitions() ORDER BY 1`)
	sort.Strings(got)
	equal(t, "dropped", got, want)
	for _, s := range schemas {
		if p := partitionsOf(f.dayPartitions(s), "active_windows"); !slices.Contains(p, utcDay(-40)) {
			t.Errorf("%s.active_windows_p%s (90 days' retention) dropped", s, utcDay(-40))
		}
		if p := partitionsOf(f.dayPartitions(s), "screenshots"); slices.Contains(p, utcDay(-40)) {
			t.Errorf("%s.screenshots_p%s kept", s, utcDay(-40))
		}
	}
	equal(t, "again", f.rows(f.ingest, none, `SELECT monitoring.drop_expired_partitions()`), nil)
	f.refused(f.dashboard, none, noPrivilege, "permission denied", `SELECT monitoring.drop_expired_partitions()`)
}

// testEnsurePartitionsOwnerOnly: the caller-chosen range of 00002 is the
// owner's only (migrations, tests); for the owner it creates every
// series' partitions of the range and refuses a reversed or longer than
// 400-day range.
func testEnsurePartitionsOwnerOnly(t *testing.T, f *fnDB) {
	for _, db := range []*pgxpool.Pool{f.ingest, f.dashboard, f.platform} {
		f.refused(db, none, noPrivilege, "permission denied", `SELECT monitoring.ensure_partitions('9999-12-30', '9999-12-31')`)
	}
	owner := f.owner()
	f.dropDayPartitions()
	d := time.Now().UTC().AddDate(0, 0, -100).Format("2006-01-02")
	equal(t, "one day of 5 series in both schemas", f.rows(owner, none, `SELECT monitoring.ensure_partitions($1::date, $1::date)`, d),
		[]string{map[bool]string{false: "10", true: "5"}[f.timescale()]})
	equal(t, "fallback", partitionsOf(f.dayPartitions("monitoring_fallback"), "screenshots"), []string{utcDay(-100)})
	f.refused(owner, none, invalidParameter, "bad range", `SELECT monitoring.ensure_partitions('2026-01-02', '2026-01-01')`)
	f.refused(owner, none, invalidParameter, "bad range", `SELECT monitoring.ensure_partitions('2024-01-01', '2026-01-01')`)
}

// testDropExpiredPartitionsAtOwnerOnly: the caller-chosen time of 00002
// is the owner's only; for the owner it drops what is expired at that
// time.
func testDropExpiredPartitionsAtOwnerOnly(t *testing.T, f *fnDB) {
	for _, db := range []*pgxpool.Pool{f.ingest, f.dashboard, f.platform} {
		f.refused(db, none, noPrivilege, "permission denied", `SELECT monitoring.drop_expired_partitions('9999-12-31'::timestamptz)`)
	}
	f.expiredPartitions(40)
	owner := f.owner()
	equal(t, "at a time before the partitions", f.rows(owner, none, `SELECT monitoring.drop_expired_partitions(now() - interval '1 year')`), nil)
	got := f.rows(owner, none, `SELECT monitoring.drop_expired_partitions(now()) ORDER BY 1`)
	if !slices.Contains(got, "monitoring_fallback.screenshots_p"+utcDay(-40)) || slices.Contains(got, "monitoring_fallback.active_windows_p"+utcDay(-40)) {
		t.Errorf("dropped %v, want screenshots_p%s (30 days' retention) and not active_windows' (90)", got, utcDay(-40))
	}
}

// --- TimescaleDB jobs ----------------------------------------------------------

// testApplyRetention: refuses a table that is not a series (22023); on
// partitions does nothing; on TimescaleDB drops the named series' chunks
// wholly past its retention and records the run.
func testApplyRetention(t *testing.T, f *fnDB) {
	f.refused(f.ingest, none, invalidParameter, "not a time-series table", `SELECT monitoring.apply_retention('users')`)
	f.refused(f.ingest, none, invalidParameter, "not a time-series table", `SELECT monitoring.apply_retention(NULL)`)
	f.refused(f.dashboard, none, noPrivilege, "permission denied", `SELECT monitoring.apply_retention('screenshots')`)
	if !f.timescale() {
		for _, table := range []string{"active_windows", "visited_sites", "screenshots", "user_sessions", "device_events"} {
			equal(t, table+" on partitions", f.rows(f.ingest, none, `SELECT monitoring.apply_retention($1)`, table), nil)
		}
		t.Log("TimescaleDB path: " + skipUnlessTimescaleDB)
		return
	}
	f.exec(`INSERT INTO monitoring.screenshots (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, file_path, datetime)
		VALUES (gen_random_uuid(), $1, $2, 99, 'a', 'PC', 'S-1', 'old.png', now() - interval '40 days')`, f.a.OrganizationID, f.a.GatewayID)
	if got := f.rows(f.ingest, none, `SELECT monitoring.apply_retention('screenshots')`); len(got) == 0 {
		t.Errorf("no chunk dropped")
	}
	if got := f.one(`SELECT format('%s|%s', (SELECT count(*) FROM monitoring.screenshots WHERE file_path = 'old.png'),
		(SELECT count(*) FROM monitoring.screenshots))`); got != "0|2" {
		t.Errorf("old rows|all rows = %s, want 0|2 (the seeded ones kept)", got)
	}
	if got := f.one(`SELECT runs::text FROM monitoring.maintainer_policy_runs WHERE kind = 'retention' AND table_name = 'screenshots'`); got != "1" {
		t.Errorf("retention runs recorded: %s, want 1", got)
	}
}

// testApplyCompression: refuses a table that is not a series (22023); on
// partitions does nothing; on TimescaleDB compresses the named series'
// uncompressed chunks older than its compression policy's compress_after
// and not past retention, and records the run.
func testApplyCompression(t *testing.T, f *fnDB) {
	f.refused(f.ingest, none, invalidParameter, "not a time-series table", `SELECT monitoring.apply_compression('users')`)
	f.refused(f.dashboard, none, noPrivilege, "permission denied", `SELECT monitoring.apply_compression('screenshots')`)
	if !f.timescale() {
		for _, table := range []string{"active_windows", "visited_sites", "screenshots", "user_sessions", "device_events"} {
			equal(t, table+" on partitions", f.rows(f.ingest, none, `SELECT monitoring.apply_compression($1)`, table), nil)
		}
		t.Log("TimescaleDB path: " + skipUnlessTimescaleDB)
		return
	}
	f.exec(`INSERT INTO monitoring.active_windows (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, datetime)
		VALUES (gen_random_uuid(), $1, $2, 99, 'a', 'PC', 'S-1', now() - interval '10 days')`, f.a.OrganizationID, f.a.GatewayID)
	policy := f.one(`SELECT count(*)::text FROM timescaledb_information.jobs WHERE proc_name = 'policy_compression'
		AND hypertable_schema = 'monitoring' AND hypertable_name = 'active_windows'`)
	got := f.rows(f.ingest, none, `SELECT monitoring.apply_compression('active_windows')`)
	if policy == "0" {
		equal(t, "no compression policy", got, nil)
		return
	}
	if len(got) != 1 {
		t.Fatalf("compressed %v, want the one chunk 10 days old", got)
	}
	if c := f.one(`SELECT count(*)::text FROM timescaledb_information.chunks WHERE hypertable_schema = 'monitoring'
		AND hypertable_name = 'active_windows' AND is_compressed`); c != "1" {
		t.Errorf("%s compressed chunks, want 1 (today's stays uncompressed)", c)
	}
	equal(t, "again", f.rows(f.ingest, none, `SELECT monitoring.apply_compression('active_windows')`), nil)
	if got := f.one(`SELECT format('%s|%s', runs, chunks) FROM monitoring.maintainer_policy_runs WHERE kind = 'compression' AND table_name = 'active_windows'`); got != "2|1" {
		t.Errorf("compression runs|chunks recorded: %s, want 2|1", got)
	}
}

// testJobHealth: no rows on partitions; on TimescaleDB a row per job of
// schema monitoring, and a retention row for every series.
func testJobHealth(t *testing.T, f *fnDB) {
	f.refused(f.dashboard, none, noPrivilege, "permission denied", `SELECT * FROM monitoring.job_health()`)
	got := f.rows(f.ingest, none, `SELECT format('%s/%s', kind, table_name) FROM monitoring.job_health()`)
	if !f.timescale() {
		equal(t, "on partitions", got, nil)
		t.Log("TimescaleDB path: " + skipUnlessTimescaleDB)
		return
	}
	for _, table := range []string{"active_windows", "visited_sites", "screenshots", "user_sessions", "device_events"} {
		if !slices.Contains(got, "retention/"+table) {
			t.Errorf("no retention row for %s in %v", table, got)
		}
	}
}

// --- ingest's questions ----------------------------------------------------------

// seededKeys are the (id, datetime) keys of schema.table's rows of
// organisation o, ids and times apart.
func (f *fnDB) seededKeys(schema, table string, o int64) ([]uuid.UUID, []time.Time) {
	f.t.Helper()
	rows, err := f.admin.Query(f.ctx, fmt.Sprintf(`SELECT id, datetime FROM %s.%s WHERE organization_id = $1 ORDER BY id`, schema, table), o)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	var ids []uuid.UUID
	var times []time.Time
	for rows.Next() {
		var id uuid.UUID
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			f.t.Fatal(err)
		}
		ids, times = append(ids, id), append(times, at)
	}
	if err := rows.Err(); err != nil {
		f.t.Fatal(err)
	}
	return ids, times
}

// bothKeys are the keys of table's rows of A and B in schema.
func (f *fnDB) bothKeys(schema, table string) ([]uuid.UUID, []time.Time, uuid.UUID, uuid.UUID) {
	f.t.Helper()
	ia, ta := f.seededKeys(schema, table, f.a.OrganizationID)
	ib, tb := f.seededKeys(schema, table, f.b.OrganizationID)
	if len(ia) != 1 || len(ib) != 1 {
		f.t.Fatalf("%s.%s: %d rows of A and %d of B, want 1 each", schema, table, len(ia), len(ib))
	}
	return append(ia, ib...), append(ta, tb...), ia[0], ib[0]
}

// copyToFallback copies the seeded rows of the series into the fallback
// (the administrator), so that both schemas hold one row per organisation.
func (f *fnDB) copyToFallback() {
	f.t.Helper()
	for _, table := range []string{"active_windows", "visited_sites", "screenshots", "user_sessions", "device_events"} {
		f.exec(fmt.Sprintf(`INSERT INTO monitoring_fallback.%[1]s SELECT * FROM monitoring.%[1]s`, table))
	}
}

// testStoredEventSeqs: the stored seq of the given keys, of the verified
// organisation's rows only, in either schema; nothing without a context;
// another schema or table refused (22023).
func testStoredEventSeqs(t *testing.T, f *fnDB) {
	f.copyToFallback()
	const call = `SELECT format('%s|%s', id, seq) FROM monitoring.stored_event_seqs($1, $2, $3, $4)`
	for _, s := range []string{"monitoring", "monitoring_fallback"} {
		ids, times, a, b := f.bothKeys(s, "user_sessions")
		equal(t, s+": A's context", f.rows(f.ingest, org(f.a.OrganizationID), call, s, "user_sessions", ids, times), []string{a.String() + "|4"})
		equal(t, s+": B's context", f.rows(f.ingest, org(f.b.OrganizationID), call, s, "user_sessions", ids, times), []string{b.String() + "|4"})
		equal(t, s+": no context", f.rows(f.ingest, none, call, s, "user_sessions", ids, times), nil)
		equal(t, s+": another table's keys", f.rows(f.ingest, org(f.a.OrganizationID), call, s, "active_windows", ids, times), nil)
	}
	f.refused(f.ingest, org(f.a.OrganizationID), invalidParameter, "unknown table", call, "public", "user_sessions", []uuid.UUID{}, []time.Time{})
	f.refused(f.ingest, org(f.a.OrganizationID), invalidParameter, "unknown table", call, "monitoring", "users", []uuid.UUID{}, []time.Time{})
	f.refused(f.dashboard, org(f.a.OrganizationID), noPrivilege, "permission denied", call, "monitoring", "user_sessions", []uuid.UUID{}, []time.Time{})
}

// testStoredScreenshots: id, seq and file of the given keys' stored
// screenshots, of the verified organisation only; nothing without a
// context or for more than 10,000 keys; another schema refused (22023).
func testStoredScreenshots(t *testing.T, f *fnDB) {
	f.copyToFallback()
	const call = `SELECT format('%s|%s|%s', id, seq, file_path) FROM monitoring.stored_screenshots($1, $2, $3)`
	for _, s := range []string{"monitoring", "monitoring_fallback"} {
		ids, times, a, b := f.bothKeys(s, "screenshots")
		equal(t, s+": A's context", f.rows(f.ingest, org(f.a.OrganizationID), call, s, ids, times), []string{a.String() + "|3|shots/1.png"})
		equal(t, s+": B's context", f.rows(f.ingest, org(f.b.OrganizationID), call, s, ids, times), []string{b.String() + "|3|shots/1.png"})
		equal(t, s+": no context", f.rows(f.ingest, none, call, s, ids, times), nil)
		many, manyTimes := make([]uuid.UUID, 10001), make([]time.Time, 10001)
		for i := range many {
			many[i], manyTimes[i] = ids[0], times[0]
		}
		equal(t, s+": 10,001 keys", f.rows(f.ingest, org(f.a.OrganizationID), call, s, many, manyTimes), nil)
	}
	f.refused(f.ingest, org(f.a.OrganizationID), invalidParameter, "unknown schema", call, "public", []uuid.UUID{}, []time.Time{})
	f.refused(f.dashboard, org(f.a.OrganizationID), noPrivilege, "permission denied", call, "monitoring", []uuid.UUID{}, []time.Time{})
}

// testScreenshotFilesReferenced: which of the given paths a screenshot
// row of the named organisation and UTC day references, in either schema
// (the orphan sweep asks for every organisation, without a context).
func testScreenshotFilesReferenced(t *testing.T, f *fnDB) {
	f.exec(`INSERT INTO monitoring_fallback.screenshots (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, file_path, datetime)
		VALUES (gen_random_uuid(), $1, $2, 9, 'a', 'PC', 'S-1', 'shots/2.png', now())`, f.a.OrganizationID, f.a.GatewayID)
	const call = `SELECT monitoring.screenshot_files_referenced($1, $2::date, $3) ORDER BY 1`
	today := f.one(`SELECT (now() AT TIME ZONE 'UTC')::date::text`)
	yesterday := f.one(`SELECT ((now() AT TIME ZONE 'UTC')::date - 1)::text`)
	paths := []string{"shots/1.png", "shots/2.png", "shots/3.png"}
	equal(t, "A today", f.rows(f.ingest, none, call, f.a.OrganizationID, today, paths), []string{"shots/1.png", "shots/2.png"})
	equal(t, "B today", f.rows(f.ingest, none, call, f.b.OrganizationID, today, paths), []string{"shots/1.png"})
	equal(t, "A yesterday", f.rows(f.ingest, none, call, f.a.OrganizationID, yesterday, paths), nil)
	equal(t, "no organisation", f.rows(f.ingest, none, call, 0, today, paths), nil)
	f.refused(f.dashboard, none, noPrivilege, "permission denied", call, f.a.OrganizationID, today, paths)
}

// insertArgs builds a call of monitoring.fn with schema $1, organisation
// $2, gateway $3 and n rows of plausible values (ids from $4, a uuid[];
// the time $5),
// from the function's signature in pg_proc.
func (f *fnDB) insertArgs(fn string, n int) string {
	f.t.Helper()
	var names, types []string
	if err := f.admin.QueryRow(f.ctx, `SELECT p.proargnames, array_agg(format_type(a.t, NULL) ORDER BY a.n)
		FROM pg_proc p, unnest(p.proargtypes) WITH ORDINALITY a(t, n)
		WHERE p.oid = to_regproc('monitoring.' || $1) GROUP BY p.proargnames`, fn).Scan(&names, &types); err != nil {
		f.t.Fatal(err)
	}
	args := []string{"$1", "$2", "$3"}
	for i, typ := range types[3:] {
		name := names[i+3]
		var v string
		switch {
		case name == "p_ids":
			v = "$4::uuid[]"
		case name == "p_device_ids":
			v = fmt.Sprintf("array_fill(NULL::bigint, ARRAY[%d])", n)
		case typ == "timestamp with time zone[]":
			v = fmt.Sprintf("array_fill($5::timestamptz, ARRAY[%d])", n)
		case typ == "text[]":
			v = fmt.Sprintf("array_fill('x'::text, ARRAY[%d])", n)
		default:
			v = fmt.Sprintf("array_fill(7::%s, ARRAY[%d])", strings.TrimSuffix(typ, "[]"), n)
		}
		args = append(args, v)
	}
	return fmt.Sprintf("SELECT monitoring.%s(%s)", fn, strings.Join(args, ", "))
}

// testInsertFunction: monitoring.insert_<table> inserts the rows into
// either schema as the verified organisation's and returns how many it
// inserted (a duplicate is skipped); it refuses another organisation's
// rows and rows without a context (42501), another schema, column arrays
// of unequal length and more than 10,000 rows (22023), inserting nothing.
func testInsertFunction(fn, table string) func(t *testing.T, f *fnDB) {
	return func(t *testing.T, f *fnDB) {
		a, b := f.a, f.b
		at := time.Now().Truncate(time.Second)
		ids := []uuid.UUID{uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())}
		call := f.insertArgs(fn, len(ids))
		count := func(s string) string {
			return f.one(fmt.Sprintf(`SELECT count(*)::text FROM %s.%s WHERE id = ANY($1)`, s, table), ids)
		}
		for _, s := range []string{"monitoring", "monitoring_fallback"} {
			f.refused(f.ingest, org(a.OrganizationID), noPrivilege, "row-level security", call, s, b.OrganizationID, b.GatewayID, ids, at)
			f.refused(f.ingest, none, noPrivilege, "row-level security", call, s, a.OrganizationID, a.GatewayID, ids, at)
			f.refused(f.ingest, org(a.OrganizationID), noPrivilege, "row-level security", call, s, nil, a.GatewayID, ids, at)
			if got := count(s); got != "0" {
				t.Fatalf("%s: %s rows after refusals", s, got)
			}
			equal(t, s+": inserted", f.rows(f.ingest, org(a.OrganizationID), call, s, a.OrganizationID, a.GatewayID, ids, at), []string{"2"})
			equal(t, s+": again", f.rows(f.ingest, org(a.OrganizationID), call, s, a.OrganizationID, a.GatewayID, ids, at), []string{"0"})
			if got := f.one(fmt.Sprintf(`SELECT string_agg(DISTINCT format('%%s|%%s', organization_id, gateway_id), ',') FROM %s.%s WHERE id = ANY($1)`, s, table), ids); got != fmt.Sprintf("%d|%s", a.OrganizationID, a.GatewayID) {
				t.Errorf("%s: rows stored as %s", s, got)
			}
		}
		other := []uuid.UUID{uuid.Must(uuid.NewV7())}
		f.refused(f.ingest, org(a.OrganizationID), invalidParameter, "unknown schema", call, "public", a.OrganizationID, a.GatewayID, ids, at)
		f.refused(f.ingest, org(a.OrganizationID), invalidParameter, "unequal length", call, "monitoring", a.OrganizationID, a.GatewayID, other, at)
		big := f.insertArgs(fn, 10001)
		many := make([]uuid.UUID, 10001)
		for i := range many {
			many[i] = uuid.Must(uuid.NewV7())
		}
		f.refused(f.ingest, org(a.OrganizationID), invalidParameter, "at most 10000", big, "monitoring", a.OrganizationID, a.GatewayID, many, at)
		if got := f.one(fmt.Sprintf(`SELECT count(*)::text FROM monitoring.%s WHERE id = ANY($1)`, table), append(many, other...)); got != "0" {
			t.Errorf("%s rows inserted by refused calls", got)
		}
		f.refused(f.dashboard, org(a.OrganizationID), noPrivilege, "permission denied", call, "monitoring", a.OrganizationID, a.GatewayID, ids, at)
	}
}

// --- the re-sync ------------------------------------------------------------------

// fallbackRow inserts one fallback active window of organisation o at
// time at (the administrator) and returns its id.
func (f *fnDB) fallbackRow(o pgtest.Seeded, at string) uuid.UUID {
	f.t.Helper()
	id := uuid.Must(uuid.NewV7())
	f.exec(`INSERT INTO monitoring_fallback.active_windows (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, datetime)
		VALUES ($1, $2, $3, 1, 'a', 'PC', 'S-1', `+at+`)`, id, o.OrganizationID, o.GatewayID)
	return id
}

// testFallbackOrganizations: the organisations with fallback rows in any
// series (ids only, no context needed).
func testFallbackOrganizations(t *testing.T, f *fnDB) {
	const call = `SELECT x::text FROM monitoring.fallback_organizations() x ORDER BY x`
	equal(t, "empty fallback", f.rows(f.ingest, none, call), nil)
	f.fallbackRow(f.b, "now()")
	equal(t, "B's row", f.rows(f.ingest, none, call), []string{fmt.Sprint(f.b.OrganizationID)})
	f.exec(`INSERT INTO monitoring_fallback.device_events SELECT * FROM monitoring.device_events WHERE organization_id = $1`, f.a.OrganizationID)
	equal(t, "B's window, A's device event", f.rows(f.ingest, none, call), sortedIDs(f.a.OrganizationID, f.b.OrganizationID))
	f.refused(f.dashboard, none, noPrivilege, "permission denied", call)
}

// testFallbackRows: how many rows the fallback holds, all series and
// organisations together.
func testFallbackRows(t *testing.T, f *fnDB) {
	const call = `SELECT monitoring.fallback_rows()`
	equal(t, "empty fallback", f.rows(f.ingest, none, call), []string{"0"})
	f.copyToFallback()
	f.fallbackRow(f.a, "now()")
	equal(t, "two organisations' series and one more", f.rows(f.ingest, none, call), []string{"11"})
	f.refused(f.dashboard, none, noPrivilege, "permission denied", call)
}

// testFallbackDays: the UTC days of the verified organisation's fallback
// rows of a series; nothing without a context; a table that is not a
// series refused (22023).
func testFallbackDays(t *testing.T, f *fnDB) {
	f.fallbackRow(f.a, "now()")
	f.fallbackRow(f.a, "now() - interval '2 days'")
	f.fallbackRow(f.b, "now() - interval '5 days'")
	const call = `SELECT monitoring.fallback_days($1)::text`
	// The days as the server computes them (its clock, UTC).
	equal(t, "A", f.rows(f.ingest, org(f.a.OrganizationID), call, "active_windows"), []string{
		f.one(`SELECT ((now() - interval '2 days') AT TIME ZONE 'UTC')::date::text`), f.one(`SELECT (now() AT TIME ZONE 'UTC')::date::text`)})
	equal(t, "B", f.rows(f.ingest, org(f.b.OrganizationID), call, "active_windows"), []string{
		f.one(`SELECT ((now() - interval '5 days') AT TIME ZONE 'UTC')::date::text`)})
	equal(t, "A, another series", f.rows(f.ingest, org(f.a.OrganizationID), call, "screenshots"), nil)
	equal(t, "no context", f.rows(f.ingest, none, call, "active_windows"), nil)
	f.refused(f.ingest, org(f.a.OrganizationID), invalidParameter, "unknown table", call, "users")
	f.refused(f.dashboard, org(f.a.OrganizationID), noPrivilege, "permission denied", call, "active_windows")
}

// testFallbackChunk: up to limit (clamped to [0, 5000]) fallback rows of
// a series on a UTC day, of the verified organisation, as a JSON array
// ordered by id; '[]' without a context; a table that is not a series
// refused (22023).
func testFallbackChunk(t *testing.T, f *fnDB) {
	a1, a2 := f.fallbackRow(f.a, "now()"), f.fallbackRow(f.a, "now()")
	f.fallbackRow(f.a, "now() - interval '2 days'")
	f.fallbackRow(f.b, "now()")
	today := f.one(`SELECT (now() AT TIME ZONE 'UTC')::date::text`)
	const call = `SELECT coalesce(jsonb_path_query_array(monitoring.fallback_chunk($1, $2::date, $3), '$[*].id')::text, 'NULL')`
	ids := func(u ...uuid.UUID) []string {
		q := make([]string, len(u))
		for i, id := range u {
			q[i] = fmt.Sprintf("%q", id.String())
		}
		return []string{"[" + strings.Join(q, ", ") + "]"}
	}
	equal(t, "A today", f.rows(f.ingest, org(f.a.OrganizationID), call, "active_windows", today, 10), ids(a1, a2))
	equal(t, "A today, limit 1", f.rows(f.ingest, org(f.a.OrganizationID), call, "active_windows", today, 1), ids(a1))
	equal(t, "A today, limit -1", f.rows(f.ingest, org(f.a.OrganizationID), call, "active_windows", today, -1), ids())
	equal(t, "A today, limit NULL", f.rows(f.ingest, org(f.a.OrganizationID), call, "active_windows", today, nil), ids())
	equal(t, "no context", f.rows(f.ingest, none, call, "active_windows", today, 10), ids())
	if got := f.rows(f.ingest, org(f.a.OrganizationID), `SELECT (monitoring.fallback_chunk('active_windows', $1::date, 10) -> 0 ->> 'organization_id')`, today); got[0] != fmt.Sprint(f.a.OrganizationID) {
		t.Errorf("whole rows: organisation %v", got)
	}
	f.refused(f.ingest, org(f.a.OrganizationID), invalidParameter, "unknown table", call, "users", today, 10)
	f.refused(f.dashboard, org(f.a.OrganizationID), noPrivilege, "permission denied", call, "active_windows", today, 10)
}

// testChunkChecksum: the count and checksum of the given keys' rows of
// the verified organisation in either schema (equal for equal rows in
// both, ingested_at aside); (0, '0') without a context; another schema or
// table refused (22023), more than 5,000 keys refused (54000).
func testChunkChecksum(t *testing.T, f *fnDB) {
	f.copyToFallback()
	f.exec(`UPDATE monitoring_fallback.visited_sites SET ingested_at = ingested_at - interval '1 hour'`)
	const call = `SELECT format('%s|%s', n, checksum) FROM monitoring.chunk_checksum($1, $2, $3, $4)`
	ids, times, _, _ := f.bothKeys("monitoring", "visited_sites")
	sum := func(ten postgres.Tenant, s string) string {
		return f.rows(f.ingest, ten, call, s, "visited_sites", ids, times)[0]
	}
	a, b := sum(org(f.a.OrganizationID), "monitoring"), sum(org(f.b.OrganizationID), "monitoring")
	if !strings.HasPrefix(a, "1|") || !strings.HasPrefix(b, "1|") || a == b {
		t.Errorf("A's %s and B's %s: want one row each, with different checksums", a, b)
	}
	if fb := sum(org(f.a.OrganizationID), "monitoring_fallback"); fb != a {
		t.Errorf("A's fallback copy %s, store %s: want equal (ingested_at aside)", fb, a)
	}
	if got := sum(none, "monitoring"); got != "0|0" {
		t.Errorf("no context: %s, want 0|0", got)
	}
	f.exec(`UPDATE monitoring_fallback.visited_sites SET url = 'https://changed.example' WHERE organization_id = $1`, f.a.OrganizationID)
	if fb := sum(org(f.a.OrganizationID), "monitoring_fallback"); fb == a {
		t.Errorf("a changed row has the same checksum %s", fb)
	}
	many, manyTimes := make([]uuid.UUID, 5001), make([]time.Time, 5001)
	f.refused(f.ingest, org(f.a.OrganizationID), programLimit, "at most 5000", call, "monitoring", "visited_sites", many, manyTimes)
	f.refused(f.ingest, org(f.a.OrganizationID), invalidParameter, "unknown table", call, "public", "visited_sites", ids, times)
	f.refused(f.ingest, org(f.a.OrganizationID), invalidParameter, "unknown table", call, "monitoring", "users", ids, times)
	f.refused(f.dashboard, org(f.a.OrganizationID), noPrivilege, "permission denied", call, "monitoring", "visited_sites", ids, times)
}

// testFallbackDelete: deletes the given keys' fallback rows of the
// verified organisation only and returns how many; 0 without a context; a
// table that is not a series refused (22023), more than 5,000 keys
// refused (54000).
func testFallbackDelete(t *testing.T, f *fnDB) {
	f.copyToFallback()
	ids, times, _, bID := f.bothKeys("monitoring_fallback", "screenshots")
	const call = `SELECT monitoring.fallback_delete($1, $2, $3)`
	many, manyTimes := make([]uuid.UUID, 5001), make([]time.Time, 5001)
	f.refused(f.ingest, org(f.a.OrganizationID), programLimit, "at most 5000", call, "screenshots", many, manyTimes)
	f.refused(f.ingest, org(f.a.OrganizationID), invalidParameter, "unknown table", call, "users", ids, times)
	f.refused(f.dashboard, org(f.a.OrganizationID), noPrivilege, "permission denied", call, "screenshots", ids, times)
	equal(t, "no context", f.rows(f.ingest, none, call, "screenshots", ids, times), []string{"0"})
	equal(t, "another series", f.rows(f.ingest, org(f.a.OrganizationID), call, "active_windows", ids, times), []string{"0"})
	equal(t, "A's context, both keys", f.rows(f.ingest, org(f.a.OrganizationID), call, "screenshots", ids, times), []string{"1"})
	if got := f.one(`SELECT string_agg(id::text, ',') FROM monitoring_fallback.screenshots`); got != bID.String() {
		t.Errorf("left %s, want only B's %s", got, bID)
	}
	if got := f.one(`SELECT count(*)::text FROM monitoring.screenshots`); got != "2" {
		t.Errorf("the store's screenshots: %s, want both kept", got)
	}
	equal(t, "A's context again", f.rows(f.ingest, org(f.a.OrganizationID), call, "screenshots", ids, times), []string{"0"})
}

// testResyncInsert: whole rows of a series, all of the verified
// organisation, are copied into the store (duplicates skipped) and
// counted; a row of another organisation, no context (42501), a table
// that is not a series, rows not an array, more than 5,000 rows (22023)
// are refused, inserting nothing.
func testResyncInsert(t *testing.T, f *fnDB) {
	f.fallbackRow(f.a, "now()")
	f.fallbackRow(f.a, "now() - interval '1 day'")
	f.fallbackRow(f.b, "now()")
	rowsOf := func(o int64) string {
		return f.one(`SELECT jsonb_agg(to_jsonb(r))::text FROM monitoring_fallback.active_windows r WHERE organization_id = $1`, o)
	}
	a, b := rowsOf(f.a.OrganizationID), rowsOf(f.b.OrganizationID)
	both := f.one(`SELECT jsonb_agg(to_jsonb(r))::text FROM monitoring_fallback.active_windows r`)
	const call = `SELECT monitoring.resync_insert($1, $2::jsonb)`
	const stored = `SELECT count(*)::text FROM monitoring.active_windows r JOIN monitoring_fallback.active_windows f USING (id, datetime)`
	f.refused(f.ingest, org(f.a.OrganizationID), noPrivilege, "row-level security", call, "active_windows", b)
	f.refused(f.ingest, org(f.a.OrganizationID), noPrivilege, "row-level security", call, "active_windows", both)
	f.refused(f.ingest, none, noPrivilege, "row-level security", call, "active_windows", a)
	f.refused(f.ingest, org(f.a.OrganizationID), invalidParameter, "unknown table", call, "users", a)
	f.refused(f.ingest, org(f.a.OrganizationID), invalidParameter, "unknown table", call, nil, a)
	f.refused(f.ingest, org(f.a.OrganizationID), invalidParameter, "JSON array", call, "active_windows", `{"id": 1}`)
	f.refused(f.ingest, org(f.a.OrganizationID), invalidParameter, "at most 5000", call, "active_windows",
		f.one(`SELECT jsonb_agg('{}'::jsonb)::text FROM generate_series(1, 5001)`))
	f.refused(f.dashboard, org(f.a.OrganizationID), noPrivilege, "permission denied", call, "active_windows", a)
	if got := f.one(stored); got != "0" {
		t.Fatalf("%s rows copied by refused calls", got)
	}
	equal(t, "A's rows", f.rows(f.ingest, org(f.a.OrganizationID), call, "active_windows", a), []string{"2"})
	equal(t, "A's rows again", f.rows(f.ingest, org(f.a.OrganizationID), call, "active_windows", a), []string{"0"})
	equal(t, "B's rows in B's context", f.rows(f.ingest, org(f.b.OrganizationID), call, "active_windows", b), []string{"1"})
	if got := f.one(stored); got != "3" {
		t.Errorf("%s rows in the store, want 3", got)
	}
	if got := f.one(`SELECT count(*)::text FROM monitoring.active_windows r JOIN monitoring_fallback.active_windows f USING (id, datetime)
		WHERE to_jsonb(r) - 'ingested_at' <> to_jsonb(f) - 'ingested_at'`); got != "0" {
		t.Errorf("%s rows copied differently", got)
	}
}

// testBumpVersion: an update moves a row's row_version on by one and its
// updated_at to the transaction's time, whatever the statement wrote into
// row_version (the caller cannot choose a version); updates by machines —
// a gateway's heartbeat, a device's status, a user's sign-in — leave the
// version alone; no runtime role may call the function.
func testBumpVersion(t *testing.T, f *fnDB) {
	const emp = `SELECT format('%s|%s', row_version, updated_at > now() - interval '1 minute') FROM employees WHERE id = $1`
	a := org(f.a.OrganizationID)
	a.Role = "HR"
	f.rows(f.dashboard, a, `UPDATE employees SET first_name = 'Anna' WHERE id = $1`, f.a.EmployeeID)
	if got := f.one(`SELECT row_version::text FROM employees WHERE id = $1`, f.a.EmployeeID); got != "2" {
		t.Errorf("employee after one update: row_version %s, want 2", got)
	}
	f.exec(`UPDATE employees SET row_version = 100, updated_at = '2000-01-01' WHERE id = $1`, f.a.EmployeeID)
	if got := f.one(emp, f.a.EmployeeID); got != "3|t" {
		t.Errorf("employee after an update writing row_version 100: %s, want 3|t", got)
	}
	if got := f.one(`SELECT row_version::text FROM employees WHERE id = $1`, f.b.EmployeeID); got != "1" {
		t.Errorf("the other organisation's employee: row_version %s, want 1", got)
	}
	for _, c := range []struct{ what, update, read, want string }{
		{"department", `UPDATE departments SET name = 'R&D' WHERE id = $1`, `SELECT row_version::text FROM departments WHERE id = $1`, "2"},
		{"organisation", `UPDATE organizations SET name = 'Renamed' WHERE id = $1`, `SELECT row_version::text FROM organizations WHERE id = $1`, "2"},
		{"policy", `UPDATE policies SET name = 'Strict' WHERE id = $1`, `SELECT row_version::text FROM policies WHERE id = $1`, "2"},
		{"retention", `UPDATE retention_policies SET retention_days = 31 WHERE organization_id = $1`,
			`SELECT format('%s|%s', row_version, updated_at = now()) FROM retention_policies WHERE organization_id = $1`, "2|t"},
	} {
		id := any(f.a.OrganizationID)
		switch c.what {
		case "department":
			id = f.a.DepartmentID
		case "policy":
			id = f.a.PolicyID
		}
		tx, err := f.admin.Begin(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(f.ctx, c.update, id); err != nil {
			t.Fatalf("%s: %v", c.update, err)
		}
		var got string
		if err := tx.QueryRow(f.ctx, c.read, id).Scan(&got); err != nil {
			t.Fatalf("%s: %v", c.read, err)
		}
		if err := tx.Commit(f.ctx); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s after one update: %s, want %s", c.what, got, c.want)
		}
	}
	// Machines' updates leave the version alone; the dashboard's move it.
	f.exec(`UPDATE gateway_instances SET status = 'online', last_seen_at = now(), version = '2.0.0' WHERE id = $1`, f.a.GatewayID)
	f.exec(`UPDATE devices SET status = 'online', last_seen_at = now() WHERE id = $1`, f.a.DeviceID)
	f.exec(`UPDATE users SET last_login_at = now() WHERE id = $1`, f.a.UserID)
	const versions = `SELECT format('%s|%s|%s', (SELECT row_version FROM gateway_instances WHERE id = $1),
		(SELECT row_version FROM devices WHERE id = $2), (SELECT row_version FROM users WHERE id = $3))`
	if got := f.one(versions, f.a.GatewayID, f.a.DeviceID, f.a.UserID); got != "1|1|1" {
		t.Errorf("gateway, device, user after machine updates: %s, want 1|1|1", got)
	}
	f.exec(`UPDATE gateway_instances SET name = 'Front desk' WHERE id = $1`, f.a.GatewayID)
	f.exec(`UPDATE devices SET name = 'Door 2' WHERE id = $1`, f.a.DeviceID)
	f.exec(`UPDATE users SET is_active = false WHERE id = $1`, f.a.UserID)
	if got := f.one(versions, f.a.GatewayID, f.a.DeviceID, f.a.UserID); got != "2|2|2" {
		t.Errorf("gateway, device, user after the dashboard's updates: %s, want 2|2|2", got)
	}
	for _, role := range []string{postgres.RoleDashboard, postgres.RoleIngest, postgres.RoleAdmin} {
		if got := f.one(`SELECT has_function_privilege($1, 'app.bump_version()', 'EXECUTE')::text`, role); got != "false" {
			t.Errorf("%s may execute app.bump_version()", role)
		}
	}
}
