package postgres_test

import (
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// testUsersEndSessions: changing a user's role, department, employee or
// organisation, or disabling them, ends every session of theirs; a sign-in
// time, a re-enable or an unchanged value does not; the other
// organisation's user keeps theirs.
func testUsersEndSessions(t *testing.T, f *fnDB) {
	const active = `SELECT app.session_active($1::uuid)::text`
	for _, tc := range []struct {
		name, change string
		ends         bool
	}{
		{"sign-in time", `UPDATE users SET last_login_at = now() WHERE id = $1`, false},
		{"same role", `UPDATE users SET role = role WHERE id = $1`, false},
		{"role", `UPDATE users SET role = 'HR' WHERE id = $1`, true},
		{"department", `UPDATE users SET department_id = NULL WHERE id = $1`, true},
		{"disabled", `UPDATE users SET is_active = false WHERE id = $1`, true},
	} {
		f.exec(`UPDATE users SET is_active = true WHERE id = $1`, f.a.UserID)
		sa := f.signIn(f.a.UserID, f.emailOf(f.a.UserID), "a-"+tc.name)
		sb := f.signIn(f.b.UserID, f.emailOf(f.b.UserID), "b-"+tc.name)
		f.exec(tc.change, f.a.UserID)
		f.exec(`UPDATE users SET is_active = true WHERE id = $1`, f.a.UserID)
		want := "true"
		if tc.ends {
			want = "false"
		}
		equal(t, tc.name, f.rows(f.dashboard, none, active, sa), []string{want})
		equal(t, tc.name+": the other organisation's", f.rows(f.dashboard, none, active, sb), []string{"true"})
	}
}

// testUserSessionsEnd: an organisation administrator ends the sessions of
// a user of theirs, the platform ADMIN of anyone's; HR, another
// organisation's administrator and no context change nothing (-1).
func testUserSessionsEnd(t *testing.T, f *fnDB) {
	const call = `SELECT app.user_sessions_end($1)::text`
	const active = `SELECT app.session_active($1::uuid)::text`
	orgAdmin := func(o int64) postgres.Tenant {
		return postgres.Tenant{OrganizationID: o, Role: postgres.AppOrgAdmin, UserID: 1}
	}
	sid := f.signIn(f.a.UserID, f.emailOf(f.a.UserID), "t1")
	equal(t, "no context", f.rows(f.dashboard, none, call, f.a.UserID), []string{"-1"})
	equal(t, "HR", f.rows(f.dashboard, postgres.Tenant{OrganizationID: f.a.OrganizationID, Role: postgres.AppHR}, call, f.a.UserID), []string{"-1"})
	equal(t, "another organisation's admin", f.rows(f.dashboard, orgAdmin(f.b.OrganizationID), call, f.a.UserID), []string{"-1"})
	equal(t, "ADMIN through the dashboard role", f.rows(f.dashboard, postgres.Tenant{Role: postgres.AppAdmin}, call, f.a.UserID), []string{"-1"})
	equal(t, "unknown user", f.rows(f.dashboard, orgAdmin(f.a.OrganizationID), call, 999999), []string{"-1"})
	equal(t, "still active", f.rows(f.dashboard, none, active, sid), []string{"true"})
	equal(t, "own admin", f.rows(f.dashboard, orgAdmin(f.a.OrganizationID), call, f.a.UserID), []string{"1"})
	equal(t, "ended", f.rows(f.dashboard, none, active, sid), []string{"false"})
	sid = f.signIn(f.b.UserID, f.emailOf(f.b.UserID), "t2")
	equal(t, "platform ADMIN", f.rows(f.platform, postgres.Tenant{Role: postgres.AppAdmin}, call, f.b.UserID), []string{"1"})
	equal(t, "ended by ADMIN", f.rows(f.dashboard, none, active, sid), []string{"false"})
	f.refused(f.ingest, none, noPrivilege, "permission denied", call, f.a.UserID)
}
