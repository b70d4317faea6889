package postgres_test

import (
	"fmt"
	"testing"
)

// The sign-in functions of 00021, called as staff_dashboard (and
// staff_admin) with no tenant context, as the sign-in service calls them.
// internal/cloud/signin tests the service over them end to end.

// loginArgs are app.login_result's arguments after p_email, p_user_id and
// p_outcome: the action, no new hash, the refresh token hash, idle 1 day,
// max 2 days, 3 failures, lock 1 min doubling to 1 h, client, user agent.
const loginResult = `SELECT format('%s|%s|%s', outcome, retry_after_ms > 0, session_id IS NOT NULL)
	FROM app.login_result($1, $2, $3, 'login', $4, sha256($5::text::bytea), '1 day', '2 days', 3, '1 minute', '1 hour',
	                      '192.0.2.7', 'test-agent')`

// signIn opens a session for user with refresh token token (its SHA-256
// stored) and returns the session id.
func (f *fnDB) signIn(user int64, email, token string) string {
	f.t.Helper()
	got := f.rows(f.dashboard, none, `SELECT session_id::text FROM app.login_result($1, $2, 'success', 'login', NULL,
		sha256($3::text::bytea), '1 day', '2 days', 3, '1 minute', '1 hour', '192.0.2.7', 'ua')`, email, user, token)
	if len(got) != 1 || got[0] == "NULL" {
		f.t.Fatalf("sign-in: %v", got)
	}
	return got[0]
}

func (f *fnDB) emailOf(user int64) string {
	return f.one(`SELECT email FROM users WHERE id = $1`, user)
}

// testLoginLookup: the account of an e-mail (any case), with its hash and
// the lock's remaining time; nothing for an unknown one; staff_ingest may
// not call it.
func testLoginLookup(t *testing.T, f *fnDB) {
	const call = `SELECT format('%s|%s|%s|%s|%s', user_id, organization_id, role, password_hash, retry_after_ms > 0)
		FROM app.login_lookup($1)`
	email := f.emailOf(f.a.UserID)
	want := fmt.Sprintf("%d|%d|ORG_ADMIN|x|f", f.a.UserID, f.a.OrganizationID)
	equal(t, "exact", f.rows(f.dashboard, none, call, email), []string{want})
	equal(t, "upper case", f.rows(f.platform, none, call, "ADMIN@ALPHA.TEST"), []string{want})
	equal(t, "unknown", f.rows(f.dashboard, none, call, "nobody@alpha.test"), nil)
	f.exec(`INSERT INTO auth_lockouts (user_id, organization_id, locked_until) VALUES ($1, $2, now() + interval '1 minute')`,
		f.a.UserID, f.a.OrganizationID)
	equal(t, "locked", f.rows(f.dashboard, none, call, email), []string{fmt.Sprintf("%d|%d|ORG_ADMIN|x|t", f.a.UserID, f.a.OrganizationID)})
	f.refused(f.ingest, none, noPrivilege, "permission denied", call, email)
}

// testLoginResult: failures counted to a lock (refusing even a success
// while it holds, audited as a lockout), an unknown e-mail audited without
// organisation, a success resetting the count, storing a rehash and
// opening a session with its first refresh token; bad arguments refused.
func testLoginResult(t *testing.T, f *fnDB) {
	user, org := f.a.UserID, f.a.OrganizationID
	email := f.emailOf(user)
	steps := []struct {
		name, outcome, want string
	}{
		{"first failure", "wrong_password", "failed|f|f"},
		{"disabled counts alike", "inactive", "failed|f|f"},
		{"third failure locks", "wrong_password", "locked|t|f"},
		{"success while locked", "success", "locked|t|f"},
	}
	for _, s := range steps {
		equal(t, s.name, f.rows(f.dashboard, none, loginResult, email, user, s.outcome, nil, "tok"), []string{s.want})
	}
	if got := f.one(`SELECT format('%s|%s', failed_logins, lockouts) FROM auth_lockouts WHERE user_id = $1`, user); got != "0|1" {
		t.Errorf("after the lock: failed|lockouts = %s, want 0|1", got)
	}
	if got := f.one(`SELECT count(*)::text FROM audit_log WHERE action = 'auth.lockout' AND organization_id = $1 AND actor = $2`, org, email); got != "1" {
		t.Errorf("lockout audit rows: %s, want 1", got)
	}
	// The lock expires by time (moved into the past here): the next lock
	// is twice as long.
	f.exec(`UPDATE auth_lockouts SET locked_until = now() - interval '1 second' WHERE user_id = $1`, user)
	for range 3 {
		f.rows(f.dashboard, none, loginResult, email, user, "wrong_password", nil, "tok")
	}
	if got := f.one(`SELECT round(extract(epoch FROM locked_until - now()))::text FROM auth_lockouts WHERE user_id = $1`, user); got != "120" {
		t.Errorf("second lock: %s s, want 120", got)
	}
	f.exec(`UPDATE auth_lockouts SET locked_until = now() - interval '1 second' WHERE user_id = $1`, user)
	// Sessions past their end or revoked over a day ago go at the next
	// login; a recently revoked one stays (its reuse still answers
	// "revoked").
	f.exec(`INSERT INTO auth_sessions (user_id, organization_id, expires_at, revoked_at, revoked_reason) VALUES
		($1, $2, now() - interval '1 second', NULL, NULL), ($1, $2, now() + interval '1 day', now() - interval '2 days', 'logout'),
		($1, $2, now() + interval '1 day', now() - interval '1 hour', 'reuse')`, user, org)
	equal(t, "success", f.rows(f.dashboard, none, loginResult, email, user, "success", "$argon2id$new", "tok"), []string{"ok|f|t"})
	if got := f.one(`SELECT format('%s|%s|%s', failed_logins, lockouts, locked_until IS NULL) FROM auth_lockouts WHERE user_id = $1`, user); got != "0|0|t" {
		t.Errorf("after a success: %s, want 0|0|true", got)
	}
	if got := f.one(`SELECT string_agg(coalesce(revoked_reason, 'active'), ',' ORDER BY revoked_reason) FROM auth_sessions WHERE user_id = $1`, user); got != "reuse,active" {
		t.Errorf("sessions after the login: %s, want reuse,active", got)
	}
	if got := f.one(`SELECT format('%s|%s', password_hash, last_login_at IS NOT NULL) FROM users WHERE id = $1`, user); got != "$argon2id$new|t" {
		t.Errorf("after a success with a rehash: hash|last_login = %s", got)
	}
	if got := f.one(`SELECT format('%s|%s|%s', s.organization_id, s.client_address, t.expires_at <= s.expires_at)
		FROM auth_sessions s JOIN auth_refresh_tokens t ON t.session_id = s.id WHERE t.token_hash = sha256('tok')`); got != fmt.Sprintf("%d|192.0.2.7|t", org) {
		t.Errorf("session|client|token within family = %s", got)
	}
	// An unknown e-mail: audited without organisation or user.
	equal(t, "unknown", f.rows(f.dashboard, none, loginResult, "nobody@alpha.test", nil, "wrong_password", nil, "tok2"), []string{"failed|f|f"})
	if got := f.one(`SELECT format('%s|%s|%s|%s', organization_id, actor_user_id, outcome, details->>'reason') FROM audit_log
		WHERE actor = 'nobody@alpha.test'`); got != "||denied|unknown_email" {
		t.Errorf("unknown e-mail audit row: %s", got)
	}
	// Refusals.
	f.refused(f.dashboard, none, invalidParameter, "unknown outcome", loginResult, email, user, "maybe", nil, "tok3")
	f.refused(f.dashboard, none, invalidParameter, "limits out of bounds", `SELECT outcome FROM app.login_result($1, $2, 'success', 'login', NULL,
		sha256('x'), '1 day', '2 days', 0, '1 minute', '1 hour', NULL, NULL)`, email, user)
	f.refused(f.ingest, none, noPrivilege, "permission denied", loginResult, email, user, "success", nil, "tok4")
	// No password or token in the audit trail.
	if got := f.one(`SELECT count(*)::text FROM audit_log WHERE details::text LIKE '%tok%' OR details::text LIKE '%argon%'`); got != "0" {
		t.Errorf("%s audit rows mention a token or hash", got)
	}
}

// testSessionRefresh: rotation (the old token spent, the new one works),
// reuse revoking the family (the newest token dies too, audited), unknown
// tokens, a disabled user.
func testSessionRefresh(t *testing.T, f *fnDB) {
	const call = `SELECT format('%s|%s', outcome, user_id) FROM app.session_refresh(sha256($1::text::bytea), sha256($2::text::bytea), '1 day', '192.0.2.8')`
	user := f.a.UserID
	sid := f.signIn(user, f.emailOf(user), "r1")
	ok := fmt.Sprintf("ok|%d", user)
	equal(t, "first rotation", f.rows(f.dashboard, none, call, "r1", "r2"), []string{ok})
	equal(t, "second rotation", f.rows(f.platform, none, call, "r2", "r3"), []string{ok})
	equal(t, "reuse of r1", f.rows(f.dashboard, none, call, "r1", "r4"), []string{"reuse|"})
	equal(t, "newest after reuse", f.rows(f.dashboard, none, call, "r3", "r5"), []string{"revoked|"})
	equal(t, "unknown", f.rows(f.dashboard, none, call, "nope", "r6"), []string{"unknown|"})
	if got := f.one(`SELECT revoked_reason FROM auth_sessions WHERE id = $1`, sid); got != "reuse" {
		t.Errorf("revoked_reason = %s, want reuse", got)
	}
	if got := f.one(`SELECT count(*)::text FROM audit_log WHERE action = 'auth.refresh_reuse' AND resource_id = $1`, sid); got != "1" {
		t.Errorf("reuse audit rows: %s, want 1", got)
	}
	// A disabled user's family ends when they are disabled (00025's
	// trigger), so its next refresh finds it revoked.
	sid2 := f.signIn(user, f.emailOf(user), "s1")
	f.exec(`UPDATE users SET is_active = false WHERE id = $1`, user)
	equal(t, "disabled", f.rows(f.dashboard, none, call, "s1", "s2"), []string{"revoked|"})
	if got := f.one(`SELECT revoked_reason FROM auth_sessions WHERE id = $1`, sid2); got != "disabled" {
		t.Errorf("revoked_reason = %s, want disabled", got)
	}
	// An expired token.
	f.exec(`UPDATE users SET is_active = true WHERE id = $1`, user)
	f.signIn(user, f.emailOf(user), "e1")
	f.exec(`UPDATE auth_refresh_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = sha256('e1')`)
	equal(t, "expired", f.rows(f.dashboard, none, call, "e1", "e2"), []string{"expired|"})
	f.refused(f.dashboard, none, invalidParameter, "32 bytes", `SELECT outcome FROM app.session_refresh(sha256('e1'), '\x00', '1 day', NULL)`)
	f.refused(f.ingest, none, noPrivilege, "permission denied", call, "r3", "r7")
}

// testSessionLogout: revokes the family of any of its tokens, once.
func testSessionLogout(t *testing.T, f *fnDB) {
	const call = `SELECT app.session_logout(sha256($1::text::bytea), NULL)::text`
	sid := f.signIn(f.a.UserID, f.emailOf(f.a.UserID), "l1")
	other := f.signIn(f.b.UserID, f.emailOf(f.b.UserID), "m1")
	equal(t, "logout", f.rows(f.dashboard, none, call, "l1"), []string{"true"})
	equal(t, "again", f.rows(f.dashboard, none, call, "l1"), []string{"false"})
	equal(t, "unknown", f.rows(f.dashboard, none, call, "zz"), []string{"false"})
	if got := f.one(`SELECT format('%s|%s', (SELECT revoked_reason FROM auth_sessions WHERE id = $1), (SELECT revoked_at IS NULL FROM auth_sessions WHERE id = $2))`, sid, other); got != "logout|t" {
		t.Errorf("own reason|other untouched = %s", got)
	}
	if got := f.one(`SELECT count(*)::text FROM audit_log WHERE action = 'auth.logout' AND resource_id = $1`, sid); got != "1" {
		t.Errorf("logout audit rows: %s", got)
	}
	f.refused(f.ingest, none, noPrivilege, "permission denied", call, "m1")
}

// testSessionsRevokeUser: every family of the user, only on behalf of an
// active session of that user.
func testSessionsRevokeUser(t *testing.T, f *fnDB) {
	const call = `SELECT app.sessions_revoke_user($1, $2::uuid, NULL)::text`
	email := f.emailOf(f.a.UserID)
	s1 := f.signIn(f.a.UserID, email, "a1")
	f.signIn(f.a.UserID, email, "a2")
	other := f.signIn(f.b.UserID, f.emailOf(f.b.UserID), "b1")
	equal(t, "another user's session", f.rows(f.dashboard, none, call, f.a.UserID, other), []string{"-1"})
	equal(t, "own", f.rows(f.dashboard, none, call, f.a.UserID, s1), []string{"2"})
	equal(t, "again", f.rows(f.dashboard, none, call, f.a.UserID, s1), []string{"-1"})
	if got := f.one(`SELECT count(*)::text FROM auth_sessions WHERE revoked_at IS NULL`); got != "1" {
		t.Errorf("active sessions left: %s, want B's 1", got)
	}
	f.refused(f.ingest, none, noPrivilege, "permission denied", call, f.b.UserID, other)
}

// testSessionEmail: the e-mail of an active session's active user only.
func testSessionEmail(t *testing.T, f *fnDB) {
	const call = `SELECT app.session_email($1, $2::uuid)`
	email := f.emailOf(f.a.UserID)
	sid := f.signIn(f.a.UserID, email, "e1")
	equal(t, "own", f.rows(f.dashboard, none, call, f.a.UserID, sid), []string{email})
	equal(t, "another user", f.rows(f.dashboard, none, call, f.b.UserID, sid), []string{"NULL"})
	f.exec(`UPDATE users SET is_active = false WHERE id = $1`, f.a.UserID)
	equal(t, "disabled", f.rows(f.dashboard, none, call, f.a.UserID, sid), []string{"NULL"})
	f.refused(f.ingest, none, noPrivilege, "permission denied", call, f.a.UserID, sid)
}

// testPasswordChange: the new hash stored, every family revoked, a new one
// opened; nothing for a session that is not the user's.
func testPasswordChange(t *testing.T, f *fnDB) {
	const call = `SELECT format('%s|%s', outcome, session_id IS NOT NULL) FROM app.password_change($1, $2::uuid, $3,
		sha256($4::text::bytea), '1 day', '2 days', '192.0.2.9', 'ua')`
	email := f.emailOf(f.a.UserID)
	s1 := f.signIn(f.a.UserID, email, "p1")
	f.signIn(f.a.UserID, email, "p2")
	other := f.signIn(f.b.UserID, f.emailOf(f.b.UserID), "q1")
	equal(t, "another user's session", f.rows(f.dashboard, none, call, f.a.UserID, other, "$argon2id$x", "p3"), []string{"unauthenticated|f"})
	equal(t, "own", f.rows(f.dashboard, none, call, f.a.UserID, s1, "$argon2id$x", "p3"), []string{"ok|t"})
	if got := f.one(`SELECT format('%s|%s', password_hash,
		(SELECT count(*) FROM auth_sessions WHERE user_id = $1 AND revoked_reason = 'password_change')) FROM users WHERE id = $1`, f.a.UserID); got != "$argon2id$x|2" {
		t.Errorf("hash|revoked = %s", got)
	}
	if got := f.one(`SELECT count(*)::text FROM auth_sessions s JOIN auth_refresh_tokens t ON t.session_id = s.id
		WHERE t.token_hash = sha256('p3') AND s.revoked_at IS NULL`); got != "1" {
		t.Errorf("new session: %s", got)
	}
	equal(t, "revoked session", f.rows(f.dashboard, none, call, f.a.UserID, s1, "$argon2id$y", "p4"), []string{"unauthenticated|f"})
	f.refused(f.dashboard, none, invalidParameter, "argon2id", call, f.a.UserID, s1, "plain", "p5")
	if got := f.one(`SELECT count(*)::text FROM audit_log WHERE action = 'auth.password_change'`); got != "1" {
		t.Errorf("password change audit rows: %s", got)
	}
	f.refused(f.ingest, none, noPrivilege, "permission denied", call, f.b.UserID, other, "$argon2id$z", "q2")
}

// testSessionActive: true for an active family of an active user only.
func testSessionActive(t *testing.T, f *fnDB) {
	const call = `SELECT app.session_active($1::uuid)::text`
	sid := f.signIn(f.a.UserID, f.emailOf(f.a.UserID), "k1")
	equal(t, "active", f.rows(f.dashboard, none, call, sid), []string{"true"})
	equal(t, "unknown", f.rows(f.platform, none, call, "00000000-0000-0000-0000-000000000001"), []string{"false"})
	f.exec(`UPDATE users SET is_active = false WHERE id = $1`, f.a.UserID)
	equal(t, "disabled user", f.rows(f.dashboard, none, call, sid), []string{"false"})
	f.exec(`UPDATE users SET is_active = true WHERE id = $1`, f.a.UserID)
	f.exec(`UPDATE auth_sessions SET expires_at = now() - interval '1 second' WHERE id = $1`, sid)
	equal(t, "expired", f.rows(f.dashboard, none, call, sid), []string{"false"})
	f.exec(`UPDATE auth_sessions SET expires_at = now() + interval '1 day', revoked_at = now(), revoked_reason = 'logout' WHERE id = $1`, sid)
	equal(t, "revoked", f.rows(f.dashboard, none, call, sid), []string{"false"})
	f.refused(f.ingest, none, noPrivilege, "permission denied", call, sid)
}
