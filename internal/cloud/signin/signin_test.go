package signin_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/argon2"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/signin"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/throttle"
)

const (
	password = "correct horse battery staple"
	wrong    = "not the password at all"
)

var client = signin.Client{Address: netip.MustParseAddr("192.0.2.10"), UserAgent: "test-browser/1.0"}

// env is one test's database with organisation "alpha" seeded, its users,
// and a service over the dashboard role.
type env struct {
	t      *testing.T
	ctx    context.Context
	admin  *pgx.Conn // the test server's administrator: set-up and checks
	seed   pgtest.Seeded
	tokens *accesstoken.Issuer
	svc    *signin.Service
	// users by e-mail: their ids.
	users map[string]int64
}

func newEnv(t *testing.T, cfg signin.Config) *env {
	t.Helper()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	seed, err := pgtest.SeedOrganization(ctx, admin, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	iss, err := accesstoken.New(accesstoken.Config{Issuer: "https://dash.test", Audience: "staffcontrol-dashboard",
		Keys: []accesstoken.Key{{ID: "k1", Private: ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))}}})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := signin.New(cfg, signin.Deps{DB: pg.Pool(t, db.DashboardURL, 8), Tokens: iss, Logger: logtest.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, admin: admin, seed: seed, tokens: iss, svc: svc, users: map[string]int64{}}
	hash, err := auth.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	e.addUser("hr@alpha.test", "HR", hash, true)
	e.addUser("off@alpha.test", "EMPLOYEE", hash, false)
	e.addUser("root@platform.test", "ADMIN", hash, true)
	e.addUser("emp@alpha.test", "EMPLOYEE", hash, true)
	return e
}

func (e *env) addUser(email, role, hash string, active bool) {
	e.t.Helper()
	var org, dept, emp *int64
	if role != "ADMIN" {
		org, dept = &e.seed.OrganizationID, &e.seed.DepartmentID
	}
	if role == "EMPLOYEE" {
		emp = &e.seed.EmployeeID
	}
	var id int64
	if err := e.admin.QueryRow(e.ctx, `INSERT INTO users (organization_id, email, password_hash, role, department_id, employee_id, is_active)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`, org, email, hash, role, dept, emp, active).Scan(&id); err != nil {
		e.t.Fatal(err)
	}
	e.users[email] = id
}

// one is the single text value sql returns as the administrator.
func (e *env) one(sql string, args ...any) string {
	e.t.Helper()
	var s *string
	if err := e.admin.QueryRow(e.ctx, sql, args...).Scan(&s); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	if s == nil {
		return "NULL"
	}
	return *s
}

// audits lists the audit rows of action as outcome|reason, oldest first.
func (e *env) audits(action string) []string {
	e.t.Helper()
	rows, err := e.admin.Query(e.ctx, `SELECT outcome || '|' || coalesce(details->>'reason', '') FROM audit_log
		WHERE action = $1 ORDER BY id`, action)
	if err != nil {
		e.t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) login(email, pw string) signin.Tokens {
	e.t.Helper()
	tok, err := e.svc.Login(e.ctx, email, pw, client)
	if err != nil {
		e.t.Fatalf("login %s: %v", email, err)
	}
	return tok
}

func (e *env) active(session string) bool {
	e.t.Helper()
	ok, err := e.svc.SessionActive(e.ctx, session)
	if err != nil {
		e.t.Fatal(err)
	}
	return ok
}

func code(err error) apperr.Code { return apperr.CodeOf(err) }

// wantCode fails unless err carries code.
func wantCode(t *testing.T, what string, err error, c apperr.Code) {
	t.Helper()
	if code(err) != c {
		t.Fatalf("%s: error %v (code %q), want %q", what, err, code(err), c)
	}
}

// TestLogin: the tokens of a login describe the user; the access token
// verifies and names the session, which is active; the login is audited.
func TestLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, signin.Config{})
	tests := []struct {
		email string
		want  signin.User
	}{
		{"hr@alpha.test", signin.User{ID: e.users["hr@alpha.test"], OrganizationID: e.seed.OrganizationID, Email: "hr@alpha.test",
			Role: "HR", DepartmentID: e.seed.DepartmentID}},
		{"  Root@Platform.TEST ", signin.User{ID: e.users["root@platform.test"], Email: "root@platform.test", Role: "ADMIN"}},
		{"emp@alpha.test", signin.User{ID: e.users["emp@alpha.test"], OrganizationID: e.seed.OrganizationID, Email: "emp@alpha.test",
			Role: "EMPLOYEE", DepartmentID: e.seed.DepartmentID, EmployeeID: e.seed.EmployeeID}},
	}
	for _, tc := range tests {
		tok := e.login(tc.email, password)
		if tok.User != tc.want {
			t.Errorf("%s: user %+v, want %+v", tc.email, tok.User, tc.want)
		}
		claims, err := e.tokens.Verify(tok.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if claims.UserID != tc.want.ID || claims.OrganizationID != tc.want.OrganizationID || claims.Role != tc.want.Role ||
			claims.DepartmentID != tc.want.DepartmentID || claims.EmployeeID != tc.want.EmployeeID || claims.SessionID != tok.SessionID {
			t.Errorf("%s: claims %+v", tc.email, claims)
		}
		if !tok.AccessExpiresAt.Equal(claims.ExpiresAt) || time.Until(tok.AccessExpiresAt) > accesstoken.MaxTTL {
			t.Errorf("%s: access expires %v", tc.email, tok.AccessExpiresAt)
		}
		if d := time.Until(tok.RefreshExpiresAt); d < signin.DefaultRefreshIdle-time.Minute || d > signin.DefaultRefreshIdle {
			t.Errorf("%s: refresh token expires in %v, want %v", tc.email, d, signin.DefaultRefreshIdle)
		}
		if !strings.HasPrefix(tok.RefreshToken, signin.RefreshTokenPrefix) || !e.active(tok.SessionID) {
			t.Errorf("%s: refresh token %q… or session inactive", tc.email, tok.RefreshToken[:5])
		}
		if got := e.one(`SELECT format('%s|%s', client_address, user_agent) FROM auth_sessions WHERE id = $1::uuid`, tok.SessionID); got != "192.0.2.10|test-browser/1.0" {
			t.Errorf("%s: session client %s", tc.email, got)
		}
	}
	if got := e.audits("auth.login"); !slices.Equal(got, []string{"allowed|", "allowed|", "allowed|"}) {
		t.Errorf("audit rows %v", got)
	}
	if got := e.one(`SELECT (last_login_at IS NOT NULL)::text FROM users WHERE email = 'hr@alpha.test'`); got != "true" {
		t.Errorf("last_login_at set: %s", got)
	}
}

// TestFailuresLookAlike: an unknown e-mail, a wrong password and a
// disabled account (with its right password) give the same error, with no
// field, in similar time; each is audited as denied with its reason.
func TestFailuresLookAlike(t *testing.T) {
	t.Parallel()
	e := newEnv(t, signin.Config{MaxFailures: 100, AddressLimit: throttle.Config{FreeFailures: 1000}})
	cases := []struct {
		name, email, pw, reason string
	}{
		{"unknown e-mail", "nobody@alpha.test", password, "unknown_email"},
		{"wrong password", "hr@alpha.test", wrong, "wrong_password"},
		{"disabled account", "off@alpha.test", password, "inactive"},
	}
	var first string
	medians := map[string]time.Duration{}
	// Round-robin over the cases, so that the machine's load falls on all
	// of them alike.
	times := map[string][]time.Duration{}
	for range 7 {
		for _, tc := range cases {
			start := time.Now()
			_, err := e.svc.Login(e.ctx, tc.email, tc.pw, client)
			times[tc.name] = append(times[tc.name], time.Since(start))
			ae := apperr.As(err)
			if ae == nil || ae.Code != apperr.Unauthenticated || ae.Field != "" || ae.Message != "invalid e-mail or password" {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if first == "" {
				first = err.Error()
			} else if err.Error() != first {
				t.Errorf("%s: %q, unlike %q", tc.name, err.Error(), first)
			}
		}
	}
	for name, ts := range times {
		slices.Sort(ts)
		medians[name] = ts[len(ts)/2]
	}
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for _, m := range medians {
		lo, hi = min(lo, m), max(hi, m)
	}
	if float64(hi)/float64(lo) >= 3 {
		t.Errorf("median times differ by %.1f× (%v)", float64(hi)/float64(lo), medians)
	}
	t.Logf("median times %v", medians)
	got := e.audits("auth.login")
	for _, tc := range cases {
		if n := strings.Count(strings.Join(got, ","), "denied|"+tc.reason); n != 7 {
			t.Errorf("%s: %d audit rows denied|%s, want 7 (%v)", tc.name, n, tc.reason, got)
		}
	}
	if got := e.one(`SELECT format('%s|%s', organization_id, actor) FROM audit_log WHERE details->>'reason' = 'unknown_email' LIMIT 1`); got != "|nobody@alpha.test" {
		t.Errorf("unknown e-mail audit row org|actor = %s", got)
	}
}

// TestLockout: after MaxFailures failures the account is locked: every
// attempt, the right password too, is throttled with RetryAfter; the lock
// ends by time; the next lock doubles; a success resets the count.
func TestLockout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, signin.Config{MaxFailures: 3, LockBase: time.Second, LockMax: 2 * time.Second})
	fail := func(n int) error {
		var err error
		for range n {
			_, err = e.svc.Login(e.ctx, "hr@alpha.test", wrong, client)
		}
		return err
	}
	wantCode(t, "two failures", fail(2), apperr.Unauthenticated)
	err := fail(1)
	wantCode(t, "third failure", err, apperr.Throttled)
	if ra := apperr.As(err).RetryAfter; ra != time.Second {
		t.Errorf("first lock: RetryAfter %v, want 1s", ra)
	}
	_, err = e.svc.Login(e.ctx, "hr@alpha.test", password, client)
	wantCode(t, "right password during the lock", err, apperr.Throttled)
	if ra := apperr.As(err).RetryAfter; ra < time.Second || ra > time.Second {
		t.Errorf("during the lock: RetryAfter %v", ra)
	}
	time.Sleep(1100 * time.Millisecond)
	// Expired: counting starts again; the next lock is twice as long.
	wantCode(t, "after the lock, two failures", fail(2), apperr.Unauthenticated)
	err = fail(1)
	wantCode(t, "second lock", err, apperr.Throttled)
	if ra := apperr.As(err).RetryAfter; ra != 2*time.Second {
		t.Errorf("second lock: RetryAfter %v, want 2s", ra)
	}
	time.Sleep(2100 * time.Millisecond)
	e.login("hr@alpha.test", password)
	if got := e.one(`SELECT format('%s|%s|%s', failed_logins, lockouts, locked_until IS NULL) FROM auth_lockouts WHERE user_id = $1`,
		e.users["hr@alpha.test"]); got != "0|0|t" {
		t.Errorf("after a success: failed|lockouts|unlocked = %s", got)
	}
	if got := e.audits("auth.lockout"); len(got) != 2 {
		t.Errorf("lockout audit rows %v, want 2", got)
	}
	if got := e.audits("auth.login"); !slices.Contains(got, "denied|locked") {
		t.Errorf("no audit row of the attempt refused during the lock: %v", got)
	}
}

// TestLockCap: the lock doubles up to LockMax.
func TestLockCap(t *testing.T) {
	t.Parallel()
	e := newEnv(t, signin.Config{MaxFailures: 1, LockBase: time.Second, LockMax: time.Second})
	for i := range 2 {
		_, err := e.svc.Login(e.ctx, "hr@alpha.test", wrong, client)
		wantCode(t, "failure", err, apperr.Throttled)
		if ra := apperr.As(err).RetryAfter; ra != time.Second {
			t.Errorf("lock %d: RetryAfter %v, want the cap 1s", i+1, ra)
		}
		time.Sleep(1100 * time.Millisecond)
	}
}

// TestParallelFailuresAllCount: concurrent wrong guesses are all counted.
func TestParallelFailuresAllCount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, signin.Config{MaxFailures: 50})
	const n = 8
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := e.svc.Login(e.ctx, "hr@alpha.test", wrong, client); code(err) != apperr.Unauthenticated {
				t.Errorf("parallel guess: %v", err)
			}
		})
	}
	wg.Wait()
	if got := e.one(`SELECT failed_logins::text FROM auth_lockouts WHERE user_id = $1`, e.users["hr@alpha.test"]); got != fmt.Sprint(n) {
		t.Errorf("failed_logins = %s, want %d", got, n)
	}
}

// TestAddressLimit: too many failures from one address are refused before
// the database; another address is not affected.
func TestAddressLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, signin.Config{AddressLimit: throttle.Config{FreeFailures: 2, BaseLockout: time.Minute}})
	// Two failures are free; the third locks the address, so the fourth
	// attempt (the right password this time) is refused.
	for i := range 3 {
		_, err := e.svc.Login(e.ctx, fmt.Sprintf("guess%d@alpha.test", i), wrong, client)
		wantCode(t, "guess", err, apperr.Unauthenticated)
	}
	_, err := e.svc.Login(e.ctx, "hr@alpha.test", password, client)
	wantCode(t, "locked address", err, apperr.Throttled)
	if ra := apperr.As(err).RetryAfter; ra < time.Second {
		t.Errorf("RetryAfter %v", ra)
	}
	other := client
	other.Address = netip.MustParseAddr("198.51.100.1")
	if _, err := e.svc.Login(e.ctx, "hr@alpha.test", password, other); err != nil {
		t.Errorf("another address: %v", err)
	}
	if got := e.audits("auth.login"); len(got) != 4 {
		t.Errorf("audit rows %v: the refused attempt reached the database?", got)
	}
}

// TestInvalidInput: malformed input is refused naming the field, before
// any database call.
func TestInvalidInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, signin.Config{})
	long := strings.Repeat("p", signin.MaxPasswordBytes+1)
	tests := []struct {
		name, email, pw, field string
	}{
		{"no e-mail", " ", password, "email"},
		{"not an address", "hr-at-alpha.test", password, "email"},
		{"a display name", "HR <hr@alpha.test>", password, "email"},
		{"too long e-mail", strings.Repeat("a", 250) + "@alpha.test", password, "email"},
		{"no password", "hr@alpha.test", "", "password"},
		{"too long password", "hr@alpha.test", long, "password"},
	}
	for _, tc := range tests {
		_, err := e.svc.Login(e.ctx, tc.email, tc.pw, client)
		ae := apperr.As(err)
		if ae == nil || ae.Code != apperr.Invalid || ae.Field != tc.field {
			t.Errorf("%s: %v, want invalid naming %s", tc.name, err, tc.field)
		}
	}
	if got := e.one(`SELECT count(*)::text FROM audit_log WHERE action LIKE 'auth.%'`); got != "0" {
		t.Errorf("%s audit rows: malformed input reached the database", got)
	}
}

// TestRefresh: every refresh rotates (the old token dies, the new one
// works, the access token is new); a spent token presented again revokes
// the family — the newest token and the session too — and is audited.
func TestRefresh(t *testing.T) {
	t.Parallel()
	e := newEnv(t, signin.Config{})
	first := e.login("hr@alpha.test", password)
	second, err := e.svc.Refresh(e.ctx, first.RefreshToken, client)
	if err != nil {
		t.Fatal(err)
	}
	if second.SessionID != first.SessionID || second.RefreshToken == first.RefreshToken || second.User != first.User {
		t.Errorf("rotation: %+v after %+v", second, first)
	}
	if _, err := e.tokens.Verify(second.AccessToken); err != nil {
		t.Fatal(err)
	}
	third, err := e.svc.Refresh(e.ctx, second.RefreshToken, client)
	if err != nil {
		t.Fatal(err)
	}
	// Reuse of the first (spent) token.
	_, err = e.svc.Refresh(e.ctx, first.RefreshToken, client)
	wantCode(t, "reuse", err, apperr.Unauthenticated)
	_, err = e.svc.Refresh(e.ctx, third.RefreshToken, client)
	wantCode(t, "newest after reuse", err, apperr.Unauthenticated)
	if e.active(first.SessionID) {
		t.Error("session active after reuse")
	}
	if got := e.audits("auth.refresh_reuse"); !slices.Equal(got, []string{"denied|"}) {
		t.Errorf("reuse audit rows %v", got)
	}
	// Garbage and unknown tokens.
	for _, tok := range []string{"", "x", signin.RefreshTokenPrefix + "unknown", strings.Repeat("a", 5000)} {
		_, err := e.svc.Refresh(e.ctx, tok, client)
		wantCode(t, "token "+tok[:min(len(tok), 8)], err, apperr.Unauthenticated)
	}
	// A role change ends the session (migration 00025: its tokens say the
	// old role); the next sign-in's tokens say the new one.
	fresh := e.login("hr@alpha.test", password)
	if _, err := e.admin.Exec(e.ctx, `UPDATE users SET role = 'ORG_ADMIN' WHERE email = 'hr@alpha.test'`); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Refresh(e.ctx, fresh.RefreshToken, client)
	wantCode(t, "refresh after a role change", err, apperr.Unauthenticated)
	if again := e.login("hr@alpha.test", password); again.User.Role != "ORG_ADMIN" {
		t.Errorf("after a role change: %+v", again.User)
	}
}

// TestRefreshDisabledAndExpired: a disabled user's session ends (refresh
// and SessionActive); an expired refresh token fails.
func TestRefreshDisabledAndExpired(t *testing.T) {
	t.Parallel()
	e := newEnv(t, signin.Config{})
	tok := e.login("hr@alpha.test", password)
	if _, err := e.admin.Exec(e.ctx, `UPDATE users SET is_active = false WHERE email = 'hr@alpha.test'`); err != nil {
		t.Fatal(err)
	}
	if e.active(tok.SessionID) {
		t.Error("session of a disabled user active")
	}
	_, err := e.svc.Refresh(e.ctx, tok.RefreshToken, client)
	wantCode(t, "disabled", err, apperr.Unauthenticated)
	if _, err := e.admin.Exec(e.ctx, `UPDATE users SET is_active = true WHERE email = 'hr@alpha.test'`); err != nil {
		t.Fatal(err)
	}
	tok = e.login("hr@alpha.test", password)
	if _, err := e.admin.Exec(e.ctx, `UPDATE auth_refresh_tokens SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Refresh(e.ctx, tok.RefreshToken, client)
	wantCode(t, "expired", err, apperr.Unauthenticated)
}

// TestLogout: the family of the token ends; a second logout is refused;
// other sessions of the user stay.
func TestLogout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, signin.Config{})
	a := e.login("hr@alpha.test", password)
	b := e.login("hr@alpha.test", password)
	if err := e.svc.Logout(e.ctx, a.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if e.active(a.SessionID) || !e.active(b.SessionID) {
		t.Errorf("after logout: a active %v, b active %v", e.active(a.SessionID), e.active(b.SessionID))
	}
	_, err := e.svc.Refresh(e.ctx, a.RefreshToken, client)
	wantCode(t, "refresh after logout", err, apperr.Unauthenticated)
	wantCode(t, "second logout", e.svc.Logout(e.ctx, a.RefreshToken), apperr.Unauthenticated)
	if got := e.audits("auth.logout"); !slices.Equal(got, []string{"allowed|"}) {
		t.Errorf("logout audit rows %v", got)
	}
}

// TestLogoutEverywhere: every family of the user ends, another user's
// stay; only on behalf of an active session of the user.
func TestLogoutEverywhere(t *testing.T) {
	t.Parallel()
	e := newEnv(t, signin.Config{})
	a := e.login("hr@alpha.test", password)
	b := e.login("hr@alpha.test", password)
	other := e.login("root@platform.test", password)
	wantCode(t, "another user's session", e.svc.LogoutEverywhere(e.ctx, a.User.ID, other.SessionID), apperr.Unauthenticated)
	wantCode(t, "a malformed session", e.svc.LogoutEverywhere(e.ctx, a.User.ID, "nope"), apperr.Unauthenticated)
	if err := e.svc.LogoutEverywhere(e.ctx, a.User.ID, b.SessionID); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []signin.Tokens{a, b} {
		if e.active(tok.SessionID) {
			t.Error("a session survived logout everywhere")
		}
		_, err := e.svc.Refresh(e.ctx, tok.RefreshToken, client)
		wantCode(t, "refresh after logout everywhere", err, apperr.Unauthenticated)
	}
	if !e.active(other.SessionID) {
		t.Error("another user's session ended")
	}
	wantCode(t, "again", e.svc.LogoutEverywhere(e.ctx, a.User.ID, b.SessionID), apperr.Unauthenticated)
	if got := e.audits("auth.logout_everywhere"); !slices.Equal(got, []string{"allowed|"}) {
		t.Errorf("audit rows %v", got)
	}
}

// TestChangePassword: the policy names new_password; a wrong current
// password is refused (and counted); a change revokes every session and
// returns a new one; the new password signs in, the old one not.
func TestChangePassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t, signin.Config{})
	a := e.login("hr@alpha.test", password)
	b := e.login("hr@alpha.test", password)
	const newPassword = "a brand new passphrase"
	tests := []struct {
		name, old, new string
		code           apperr.Code
		field          string
	}{
		{"short", password, "short", apperr.Invalid, "new_password"},
		{"too long", password, strings.Repeat("n", 1025), apperr.Invalid, "new_password"},
		{"empty", password, "", apperr.Invalid, "new_password"},
		{"unchanged", password, password, apperr.Invalid, "new_password"},
		{"no old", "", newPassword, apperr.Invalid, "old_password"},
		{"wrong old", wrong, newPassword, apperr.Unauthenticated, "old_password"},
	}
	for _, tc := range tests {
		_, err := e.svc.ChangePassword(e.ctx, a.User.ID, a.SessionID, tc.old, tc.new, client)
		ae := apperr.As(err)
		if ae == nil || ae.Code != tc.code || ae.Field != tc.field {
			t.Errorf("%s: %v, want %s naming %s", tc.name, err, tc.code, tc.field)
		}
	}
	if got := e.one(`SELECT failed_logins::text FROM auth_lockouts WHERE user_id = $1`, a.User.ID); got != "1" {
		t.Errorf("wrong current password counted %s times, want 1", got)
	}
	fresh, err := e.svc.ChangePassword(e.ctx, a.User.ID, a.SessionID, password, newPassword, client)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.SessionID == a.SessionID || !e.active(fresh.SessionID) || fresh.User != a.User {
		t.Errorf("new session %+v", fresh)
	}
	for _, old := range []signin.Tokens{a, b} {
		if e.active(old.SessionID) {
			t.Error("an old session is active after the change")
		}
		_, err := e.svc.Refresh(e.ctx, old.RefreshToken, client)
		wantCode(t, "old refresh token", err, apperr.Unauthenticated)
	}
	if _, err := e.svc.Refresh(e.ctx, fresh.RefreshToken, client); err != nil {
		t.Errorf("the new refresh token: %v", err)
	}
	_, err = e.svc.Login(e.ctx, "hr@alpha.test", password, client)
	wantCode(t, "old password", err, apperr.Unauthenticated)
	e.login("hr@alpha.test", newPassword)
	_, err = e.svc.ChangePassword(e.ctx, a.User.ID, a.SessionID, newPassword, "yet another passphrase", client)
	wantCode(t, "change from a revoked session", err, apperr.Unauthenticated)
	if got := e.audits("auth.password_change"); !slices.Equal(got, []string{"denied|wrong_password", "allowed|"}) {
		t.Errorf("audit rows %v", got)
	}
}

// phc builds an argon2id hash with the given (weaker) parameters, as an
// older release stored them.
func phc(pw string, mem, iters uint32) string {
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte(pw), salt, iters, mem, 1, 32)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=1$%s$%s", argon2.Version, mem, iters, enc.EncodeToString(salt), enc.EncodeToString(key))
}

// TestRehashOnLogin: a hash with older parameters is replaced by a
// current one at the next successful login, and still verifies.
func TestRehashOnLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, signin.Config{})
	weak := phc(password, 8*1024, 1)
	e.addUser("old@alpha.test", "HR", weak, true)
	// A failed login leaves it.
	if _, err := e.svc.Login(e.ctx, "old@alpha.test", wrong, client); code(err) != apperr.Unauthenticated {
		t.Fatal(err)
	}
	if got := e.one(`SELECT password_hash FROM users WHERE email = 'old@alpha.test'`); got != weak {
		t.Fatal("hash changed by a failed login")
	}
	e.login("old@alpha.test", password)
	got := e.one(`SELECT password_hash FROM users WHERE email = 'old@alpha.test'`)
	if got == weak || auth.NeedsRehash(got) {
		t.Fatalf("hash not upgraded: %s", got)
	}
	if ok, err := auth.VerifyPassword(got, password); !ok || err != nil {
		t.Fatalf("upgraded hash does not verify: %v", err)
	}
	e.login("old@alpha.test", password)
}

// TestNothingInClear: no refresh token, access token or password appears
// in any sign-in table or the audit trail.
func TestNothingInClear(t *testing.T) {
	t.Parallel()
	e := newEnv(t, signin.Config{})
	a := e.login("hr@alpha.test", password)
	b, err := e.svc.Refresh(e.ctx, a.RefreshToken, client)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Login(e.ctx, "hr@alpha.test", wrong, client); code(err) != apperr.Unauthenticated {
		t.Fatal(err)
	}
	secrets := []string{a.RefreshToken, b.RefreshToken, a.AccessToken, password, wrong,
		strings.TrimPrefix(a.RefreshToken, signin.RefreshTokenPrefix)}
	for _, table := range []string{"auth_sessions", "auth_refresh_tokens", "auth_lockouts", "audit_log"} {
		rows, err := e.admin.Query(e.ctx, fmt.Sprintf(`SELECT t::text FROM %s t`, table))
		if err != nil {
			t.Fatal(err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		all := strings.Join(texts, "\n")
		for i, s := range secrets {
			if strings.Contains(all, s) {
				t.Errorf("%s holds secret %d in clear", table, i)
			}
		}
	}
	if got := e.one(`SELECT count(*)::text FROM auth_refresh_tokens WHERE length(token_hash) = 32`); got != "2" {
		t.Errorf("refresh token hashes: %s, want 2", got)
	}
}

// TestNew: a configuration out of bounds fails naming the field.
func TestNew(t *testing.T) {
	t.Parallel()
	iss, err := accesstoken.New(accesstoken.Config{Issuer: "i", Audience: "a",
		Keys: []accesstoken.Key{{ID: "k", Private: ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))}}})
	if err != nil {
		t.Fatal(err)
	}
	db := pg.NewDatabase(t)
	pool := pg.Pool(t, db.DashboardURL, 1)
	tests := []struct {
		name  string
		cfg   signin.Config
		field string
	}{
		{"idle too short", signin.Config{RefreshIdle: time.Second}, "refresh_idle"},
		{"max below idle", signin.Config{RefreshIdle: time.Hour, RefreshMax: time.Minute}, "refresh_max"},
		{"lock base too short", signin.Config{LockBase: time.Millisecond}, "lock_base"},
		{"lock max below base", signin.Config{LockBase: time.Hour, LockMax: time.Minute}, "lock_max"},
		{"too many failures", signin.Config{MaxFailures: 1000}, "max_failures"},
	}
	for _, tc := range tests {
		_, err := signin.New(tc.cfg, signin.Deps{DB: pool, Tokens: iss})
		var fe *apperr.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: %v, want a field error naming %s", tc.name, err, tc.field)
		}
	}
	if _, err := signin.New(signin.Config{}, signin.Deps{DB: pool, Tokens: iss}); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

// TestConcurrentRefresh: the same token presented twice at once succeeds
// at most once, and the second presentation is reuse: the family ends.
func TestConcurrentRefresh(t *testing.T) {
	t.Parallel()
	e := newEnv(t, signin.Config{})
	tok := e.login("hr@alpha.test", password)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { _, errs[i] = e.svc.Refresh(e.ctx, tok.RefreshToken, client) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch code(err) {
		case "":
			if err != nil {
				t.Fatal(err)
			}
			ok++
		case apperr.Unauthenticated:
		default:
			t.Fatalf("concurrent refresh: %v", err)
		}
	}
	if ok > 1 {
		t.Errorf("%d concurrent refreshes with one token succeeded", ok)
	}
	if e.active(tok.SessionID) {
		t.Error("the family survived a concurrent reuse")
	}
}
