package postgres_test

import (
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// testSetUserLanguage (00041): a signed-in user of any role sets their own
// language and only theirs (another user's row, another organisation's
// and a context without a user are untouched: false); a value that is no
// language is refused by the column's check; NULL resets it.
func testSetUserLanguage(t *testing.T, f *fnDB) {
	const call = `SELECT app.set_user_language($1)::text`
	const read = `SELECT coalesce(language, '-') FROM users WHERE id = $1`
	hr := postgres.Tenant{OrganizationID: f.a.OrganizationID, Role: postgres.AppHR, UserID: f.a.UserID}
	equal(t, "no context", f.rows(f.dashboard, none, call, "ru"), []string{"false"})
	equal(t, "a context without a user", f.rows(f.dashboard, postgres.Tenant{OrganizationID: f.a.OrganizationID, Role: postgres.AppOrgAdmin}, call, "ru"), []string{"false"})
	equal(t, "unchanged", []string{f.one(read, f.a.UserID)}, []string{"-"})
	equal(t, "own, as HR", f.rows(f.dashboard, hr, call, "ru"), []string{"true"})
	equal(t, "stored", []string{f.one(read, f.a.UserID)}, []string{"ru"})
	equal(t, "the other organisation's user", []string{f.one(read, f.b.UserID)}, []string{"-"})
	// A user id of another organisation in A's context matches no row.
	equal(t, "a foreign user id", f.rows(f.dashboard, postgres.Tenant{OrganizationID: f.a.OrganizationID, Role: postgres.AppHR, UserID: f.b.UserID}, call, "uz"),
		[]string{"false"})
	equal(t, "the foreign user untouched", []string{f.one(read, f.b.UserID)}, []string{"-"})
	f.refused(f.dashboard, hr, "23514", "users_language_check", call, "de")
	equal(t, "reset", f.rows(f.dashboard, hr, `SELECT app.set_user_language(NULL)::text`), []string{"true"})
	equal(t, "reset stored", []string{f.one(read, f.a.UserID)}, []string{"-"})
	f.refused(f.ingest, none, noPrivilege, "permission denied", call, "ru")
}
