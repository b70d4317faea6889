// Package signin is the Dashboard API's sign-in service (issue 14): login
// with e-mail and password, short-lived access tokens (accesstoken) and
// rotating refresh tokens, logout, logout everywhere, password change, and
// the per-request check that an access token's session still holds.
//
// Passwords are argon2id hashes (auth); a hash with older parameters is
// replaced at the next successful login. An unknown e-mail, a wrong
// password and a disabled account give the same error in about the same
// time (an unknown e-mail is checked against a dummy hash).
//
// Guessing is limited twice. Per account, in the database (so the limit
// holds across API instances): after Config.MaxFailures consecutive
// failures the account is locked for LockBase, doubling with every lockout
// that follows without a success, up to LockMax; every attempt during a
// lock is refused with apperr.Throttled and its RetryAfter, even with the
// right password; a success resets the count. Per client address, in this
// process (internal/throttle): too many failures from one address (an IPv6
// address by its /64) are refused the same way before any database call.
//
// Refresh tokens are 256-bit random secrets stored only as SHA-256. Every
// login opens a session (a token "family", whose id is the access token's
// session id); every refresh spends the presented token and issues the
// next one in the family. A spent token presented again has been copied:
// the whole family is revoked and the reuse audited. A refresh token
// expires RefreshIdle after it was issued (default 14 days: a session
// unused for that long ends) and never after its family's absolute
// maximum, RefreshMax after the login (default 30 days). Logout revokes
// one family, LogoutEverywhere and ChangePassword every family of the
// user. Every step runs through SECURITY DEFINER functions of migration
// 00021 (the dashboard role cannot read users before a tenant context
// exists), which also write the audit rows.
package signin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/signin/signindb"
	"github.com/staffcontrol/staffcontrol/internal/throttle"
)

// Defaults of Config.
const (
	DefaultRefreshIdle = 14 * 24 * time.Hour
	DefaultRefreshMax  = 30 * 24 * time.Hour
	DefaultMaxFailures = 5
	DefaultLockBase    = time.Minute
	DefaultLockMax     = time.Hour
	// DefaultAddressFreeFailures is the per-address allowance of failed
	// logins before the address is locked (throttle.Config.FreeFailures):
	// higher than the per-account one, since an office behind one NAT
	// shares an address.
	DefaultAddressFreeFailures = 20
)

// Limits of the input.
const (
	// MaxPasswordBytes bounds a password (and the new one of a change).
	MaxPasswordBytes = 1024
	// MinPasswordChars is the shortest new password accepted.
	MinPasswordChars = 12
	// MaxEmailBytes bounds an e-mail address (users.email's CHECK).
	MaxEmailBytes = 255
	// maxRefreshTokenBytes bounds a presented refresh token (ours are 48).
	maxRefreshTokenBytes = 256
	// maxUserAgentBytes is what is kept of a client's User-Agent.
	maxUserAgentBytes = 512
)

// RefreshTokenPrefix starts every refresh token, so that one found in a log
// or a ticket says what it is.
const RefreshTokenPrefix = "scrt_"

// throttleKind is the throttle.Attempt kind (a metric label) of logins.
const throttleKind = "login"

// Config is the sign-in policy. A zero field takes its default.
type Config struct {
	// RefreshIdle is how long a refresh token lives after it is issued
	// (default 14 days); every refresh issues a new one.
	RefreshIdle time.Duration
	// RefreshMax is the absolute lifetime of a session (a refresh-token
	// family) from its login (default 30 days; at least RefreshIdle).
	RefreshMax time.Duration
	// MaxFailures is the consecutive failed logins after which an account
	// is locked (default 5).
	MaxFailures int
	// LockBase is the first lockout (default 1 min); each further lockout
	// without a success in between doubles it.
	LockBase time.Duration
	// LockMax caps a lockout (default 1 h).
	LockMax time.Duration
	// AddressLimit is the per-client-address limiter of failed logins
	// (throttle.Config; a zero FreeFailures is DefaultAddressFreeFailures,
	// the other zero fields take throttle's defaults).
	AddressLimit throttle.Config
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.RefreshIdle <= 0 {
		c.RefreshIdle = DefaultRefreshIdle
	}
	if c.RefreshMax <= 0 {
		c.RefreshMax = DefaultRefreshMax
	}
	if c.MaxFailures <= 0 {
		c.MaxFailures = DefaultMaxFailures
	}
	if c.LockBase <= 0 {
		c.LockBase = DefaultLockBase
	}
	if c.LockMax <= 0 {
		c.LockMax = DefaultLockMax
	}
	if c.AddressLimit.FreeFailures <= 0 {
		c.AddressLimit.FreeFailures = DefaultAddressFreeFailures
	}
	return c
}

// validate checks the bounds the database functions enforce too, so that a
// bad configuration fails at start, naming the field.
func (c Config) validate() error {
	switch {
	case c.RefreshIdle < time.Minute || c.RefreshIdle > 90*24*time.Hour:
		return apperr.Field("refresh_idle", "must be between 1m and 90 days")
	case c.RefreshMax < c.RefreshIdle || c.RefreshMax > 365*24*time.Hour:
		return apperr.Field("refresh_max", "must be between refresh_idle and 365 days")
	case c.MaxFailures > 100:
		return apperr.Field("max_failures", "must be between 1 and 100")
	case c.LockBase < time.Second || c.LockBase > 24*time.Hour:
		return apperr.Field("lock_base", "must be between 1s and 24h")
	case c.LockMax < c.LockBase || c.LockMax > 7*24*time.Hour:
		return apperr.Field("lock_max", "must be between lock_base and 7 days")
	}
	return nil
}

// Deps are the service's dependencies.
type Deps struct {
	// DB is a pool of the dashboard role (staff_dashboard), or of
	// staff_admin; either may call the sign-in functions.
	DB *pgxpool.Pool
	// Tokens issues the access tokens.
	Tokens *accesstoken.Issuer
	// Logger receives failures of the service itself (default: discarded).
	// Passwords and tokens are never logged.
	Logger *slog.Logger
	// Now is the clock of the per-address limiter (default time.Now); the
	// account locks and token expiry use the database's clock.
	Now func() time.Time
}

// Service signs users in and manages their sessions.
type Service struct {
	cfg     Config
	db      *signindb.Queries
	tokens  *accesstoken.Issuer
	log     *slog.Logger
	limiter *throttle.Limiter
	// dummyHash is verified when the e-mail is unknown, so that the answer
	// takes as long as a wrong password's.
	dummyHash string
}

// New checks cfg and returns the service; errors name the field.
func New(cfg Config, d Deps) (*Service, error) {
	if d.DB == nil {
		return nil, errors.New("signin: no database pool")
	}
	if d.Tokens == nil {
		return nil, errors.New("signin: no access-token issuer")
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lim, err := throttle.New(cfg.AddressLimit, throttle.Deps{Now: d.Now, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("signin: address limit: %w", err)
	}
	pw, err := auth.NewPassword()
	if err != nil {
		return nil, err
	}
	dummy, err := auth.HashPassword(pw + pw) // ≥ 12 characters
	if err != nil {
		return nil, fmt.Errorf("signin: dummy hash: %w", err)
	}
	return &Service{cfg: cfg, db: signindb.New(d.DB), tokens: d.Tokens, log: log, limiter: lim, dummyHash: dummy}, nil
}

// Client is who presents a request: its address (the TCP peer, or the one
// a trusted proxy names) and User-Agent. Both are recorded with a session
// and in the audit trail; the address is also what failed logins are
// limited by. A zero Address is recorded as unknown and limited as one
// address.
type Client struct {
	Address   netip.Addr
	UserAgent string
}

// Tokens is what a login, a refresh or a password change hands the client.
type Tokens struct {
	// AccessToken is a signed JWT (accesstoken) valid until AccessExpiresAt.
	AccessToken     string
	AccessExpiresAt time.Time
	// RefreshToken is the secret to present to Refresh (once) until
	// RefreshExpiresAt; only its SHA-256 is stored.
	RefreshToken     string
	RefreshExpiresAt time.Time
	// SessionID is the session (refresh-token family) both belong to, the
	// access token's "sid".
	SessionID string
	// User is who signed in.
	User User
}

// User is a signed-in user as the tokens describe it.
type User struct {
	ID int64
	// OrganizationID is 0 for a platform ADMIN.
	OrganizationID int64
	Email          string
	// Role is ADMIN, ORG_ADMIN, HR, DEPARTMENT_LEAD or EMPLOYEE.
	Role string
	// DepartmentID and EmployeeID are 0 when the user has none.
	DepartmentID, EmployeeID int64
}

// errBadLogin is the one answer to an unknown e-mail, a wrong password and
// a disabled account.
func errBadLogin() error {
	return &apperr.Error{Code: apperr.Unauthenticated, Message: "invalid e-mail or password"}
}

func errBadRefresh(msg string) error {
	return &apperr.Error{Code: apperr.Unauthenticated, Message: msg}
}

func throttled(d time.Duration) error {
	if d < time.Second {
		d = time.Second
	}
	return &apperr.Error{Code: apperr.Throttled, Message: "too many failed sign-in attempts; try again later", RetryAfter: d}
}

// NormalizeEmail trims and lower-cases an e-mail address and checks it is
// one bare address (no display name) of at most MaxEmailBytes; the error
// names the field "email".
func NormalizeEmail(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch {
	case s == "":
		return "", apperr.Field("email", "is required")
	case len(s) > MaxEmailBytes:
		return "", apperr.Field("email", "must be at most %d bytes", MaxEmailBytes)
	case !utf8.ValidString(s):
		return "", apperr.Field("email", "is not an e-mail address")
	}
	// The rule accounts applies when a user is created.
	if a, err := mail.ParseAddress(s); err != nil || a.Address != s {
		return "", apperr.Field("email", "is not an e-mail address")
	}
	return s, nil
}

func checkPassword(field, p string) error {
	switch {
	case p == "":
		return apperr.Field(field, "is required")
	case len(p) > MaxPasswordBytes:
		return apperr.Field(field, "must be at most %d bytes", MaxPasswordBytes)
	}
	return nil
}

// interval renders d as a PostgreSQL interval.
func interval(d time.Duration) string { return fmt.Sprintf("%d microseconds", d.Microseconds()) }

func clientAddr(c Client) *netip.Addr {
	if !c.Address.IsValid() {
		return nil
	}
	a := c.Address.Unmap().WithZone("")
	return &a
}

func userAgent(c Client) string {
	ua := strings.ToValidUTF8(c.UserAgent, "")
	if len(ua) > maxUserAgentBytes {
		ua = ua[:maxUserAgentBytes]
		for !utf8.ValidString(ua) {
			ua = ua[:len(ua)-1]
		}
	}
	return ua
}

func (s *Service) unavailable(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("signin: %s: %w", op, err)
	}
	s.log.Error("sign-in database call failed", "op", op, "err", err)
	return apperr.Wrap(apperr.Unavailable, fmt.Errorf("signin: %s: %w", op, err), "the sign-in service is unavailable")
}

// Login checks an e-mail and password and, when they match an active
// account that is not locked, opens a session and returns its tokens.
// Errors: apperr Invalid naming "email" or "password" for malformed input;
// Unauthenticated "invalid e-mail or password" for an unknown e-mail, a
// wrong password or a disabled account alike; Throttled with RetryAfter
// while the account or the client's address is locked.
func (s *Service) Login(ctx context.Context, email, password string, c Client) (Tokens, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return Tokens{}, err
	}
	if err := checkPassword("password", password); err != nil {
		return Tokens{}, err
	}
	attempt := throttle.Attempt{Kind: throttleKind, Source: c.Address}
	if d := s.limiter.Check(attempt); !d.OK {
		return Tokens{}, throttled(d.RetryAfter)
	}
	rows, err := s.db.LoginLookup(ctx, email)
	if err != nil {
		s.limiter.Done(attempt)
		return Tokens{}, s.unavailable("login lookup", err)
	}
	res := signindb.LoginResultParams{Email: email, Action: "login", RefreshIdle: interval(s.cfg.RefreshIdle),
		RefreshMax: interval(s.cfg.RefreshMax), MaxFailures: int32(s.cfg.MaxFailures),
		LockBase: interval(s.cfg.LockBase), LockMax: interval(s.cfg.LockMax), Client: clientAddr(c),
		UserAgent: userAgent(c)}
	if len(rows) == 0 {
		// Unknown e-mail: the same work and the same answer as a wrong
		// password.
		_, _ = auth.VerifyPassword(s.dummyHash, password)
		res.Outcome = "wrong_password"
		if _, err := s.db.LoginResult(ctx, res); err != nil {
			s.limiter.Done(attempt)
			return Tokens{}, s.unavailable("login result", err)
		}
		s.limiter.Fail(attempt, "unknown")
		return Tokens{}, errBadLogin()
	}
	u := rows[0]
	res.UserID = &u.UserID
	if u.RetryAfterMs > 0 {
		res.Outcome = "locked"
		out, err := s.db.LoginResult(ctx, res)
		s.limiter.Done(attempt)
		if err != nil {
			return Tokens{}, s.unavailable("login result", err)
		}
		if out.Outcome == "locked" {
			return Tokens{}, throttled(time.Duration(out.RetryAfterMs) * time.Millisecond)
		}
		// The lock ended in between: check the password after all.
		res.Outcome = ""
	}
	ok, verr := auth.VerifyPassword(u.PasswordHash, password)
	if verr != nil {
		// A stored hash this code cannot read: a failure like any other
		// (the account cannot be signed into until its password is reset).
		s.log.Warn("stored password hash unreadable", "user_id", u.UserID, "err", verr)
		ok = false
	}
	switch {
	case !ok:
		res.Outcome = "wrong_password"
	case !u.IsActive:
		res.Outcome = "inactive"
	default:
		res.Outcome = "success"
		if auth.NeedsRehash(u.PasswordHash) {
			if h, err := auth.HashPassword(password); err == nil {
				res.NewHash = h
			} else {
				// A password shorter than today's minimum cannot be
				// rehashed; it keeps its old hash.
				s.log.Info("password hash not upgraded", "user_id", u.UserID, "err", err)
			}
		}
	}
	secret, hash, err := auth.NewSecret(RefreshTokenPrefix)
	if err != nil {
		s.limiter.Done(attempt)
		return Tokens{}, err
	}
	res.RefreshHash = hash
	out, err := s.db.LoginResult(ctx, res)
	if err != nil {
		s.limiter.Done(attempt)
		return Tokens{}, s.unavailable("login result", err)
	}
	switch out.Outcome {
	case "ok":
		s.limiter.Succeed(attempt)
	case "locked":
		s.limiter.Fail(attempt, "locked")
		return Tokens{}, throttled(time.Duration(out.RetryAfterMs) * time.Millisecond)
	default:
		s.limiter.Fail(attempt, res.Outcome)
		return Tokens{}, errBadLogin()
	}
	user := User{ID: u.UserID, OrganizationID: u.OrganizationID, Email: u.Email, Role: u.Role,
		DepartmentID: u.DepartmentID, EmployeeID: u.EmployeeID}
	return s.issue(user, out.SessionID, secret, out.RefreshExpiresAt)
}

// issue signs the access token of a session.
func (s *Service) issue(u User, session uuid.UUID, refresh string, refreshExp time.Time) (Tokens, error) {
	tok, claims, err := s.tokens.Issue(accesstoken.Claims{UserID: u.ID, OrganizationID: u.OrganizationID, Role: u.Role,
		DepartmentID: u.DepartmentID, EmployeeID: u.EmployeeID, SessionID: session.String()})
	if err != nil {
		return Tokens{}, fmt.Errorf("signin: %w", err)
	}
	return Tokens{AccessToken: tok, AccessExpiresAt: claims.ExpiresAt, RefreshToken: refresh,
		RefreshExpiresAt: refreshExp.UTC(), SessionID: session.String(), User: u}, nil
}

// validRefreshToken reports whether t looks like one of our refresh tokens,
// so that garbage costs no database call.
func validRefreshToken(t string) bool {
	return len(t) <= maxRefreshTokenBytes && strings.HasPrefix(t, RefreshTokenPrefix) && len(t) > len(RefreshTokenPrefix)
}

// Refresh spends a refresh token and returns a new access token and the
// next refresh token of its session, with the user's current role and
// scope. Unauthenticated for an unknown, expired or spent token, a revoked
// session or a disabled user; a spent token presented again revokes its
// whole session (reuse: the token was copied), which is audited.
func (s *Service) Refresh(ctx context.Context, refreshToken string, c Client) (Tokens, error) {
	if !validRefreshToken(refreshToken) {
		return Tokens{}, errBadRefresh("the refresh token is not valid")
	}
	secret, hash, err := auth.NewSecret(RefreshTokenPrefix)
	if err != nil {
		return Tokens{}, err
	}
	out, err := s.db.SessionRefresh(ctx, signindb.SessionRefreshParams{OldHash: auth.HashSecret(refreshToken),
		NewHash: hash, RefreshIdle: interval(s.cfg.RefreshIdle), Client: clientAddr(c)})
	if err != nil {
		return Tokens{}, s.unavailable("refresh", err)
	}
	switch out.Outcome {
	case "ok":
	case "reuse":
		s.log.Warn("refresh token reused: session revoked", "session_id", out.SessionID.String())
		return Tokens{}, errBadRefresh("the refresh token was already used; the session is revoked")
	case "expired":
		return Tokens{}, errBadRefresh("the refresh token has expired")
	case "revoked", "disabled":
		return Tokens{}, errBadRefresh("the session has ended")
	default:
		return Tokens{}, errBadRefresh("the refresh token is not valid")
	}
	user := User{ID: out.UserID, OrganizationID: out.OrganizationID, Email: out.Email, Role: out.Role,
		DepartmentID: out.DepartmentID, EmployeeID: out.EmployeeID}
	return s.issue(user, out.SessionID, secret, out.RefreshExpiresAt)
}

// Logout revokes the session of a refresh token (spent or not): its
// refresh tokens stop working and SessionActive turns false for its access
// tokens. Unauthenticated when the token is unknown or its session already
// ended.
func (s *Service) Logout(ctx context.Context, refreshToken string) error {
	if !validRefreshToken(refreshToken) {
		return errBadRefresh("the refresh token is not valid")
	}
	ok, err := s.db.SessionLogout(ctx, signindb.SessionLogoutParams{Hash: auth.HashSecret(refreshToken)})
	if err != nil {
		return s.unavailable("logout", err)
	}
	if !ok {
		return errBadRefresh("the session has ended or the refresh token is not valid")
	}
	return nil
}

func parseSession(sessionID string) (uuid.UUID, error) {
	id, err := uuid.Parse(sessionID)
	if err != nil || len(sessionID) != 36 {
		return uuid.UUID{}, errBadRefresh("the session is not valid")
	}
	return id, nil
}

// LogoutEverywhere revokes every session of the user, on behalf of one of
// its active sessions (userID and sessionID from the caller's verified
// access token). Unauthenticated when that session is not active.
func (s *Service) LogoutEverywhere(ctx context.Context, userID int64, sessionID string) error {
	id, err := parseSession(sessionID)
	if err != nil {
		return err
	}
	n, err := s.db.SessionsRevokeUser(ctx, signindb.SessionsRevokeUserParams{UserID: userID, SessionID: id})
	if err != nil {
		return s.unavailable("logout everywhere", err)
	}
	if n < 0 {
		return errBadRefresh("the session has ended")
	}
	return nil
}

// ChangePassword checks the caller's current password, stores the new one
// (argon2id), revokes every session of the user and returns the tokens of
// a new session for the caller. userID and sessionID come from the
// caller's verified access token. Errors: Invalid naming "old_password" or
// "new_password" (empty, over MaxPasswordBytes, a new one shorter than
// MinPasswordChars characters or equal to the old one); Unauthenticated
// with field "old_password" when the current password does not match
// (counted towards the account lock like a failed login); Throttled while
// the account is locked; Unauthenticated when the session has ended.
func (s *Service) ChangePassword(ctx context.Context, userID int64, sessionID, oldPassword, newPassword string, c Client) (Tokens, error) {
	id, err := parseSession(sessionID)
	if err != nil {
		return Tokens{}, err
	}
	if err := checkPassword("old_password", oldPassword); err != nil {
		return Tokens{}, err
	}
	if err := checkPassword("new_password", newPassword); err != nil {
		return Tokens{}, err
	}
	if utf8.RuneCountInString(newPassword) < MinPasswordChars {
		return Tokens{}, apperr.Field("new_password", "must be at least %d characters", MinPasswordChars)
	}
	if newPassword == oldPassword {
		return Tokens{}, apperr.Field("new_password", "must differ from the current password")
	}
	email, err := s.db.SessionEmail(ctx, signindb.SessionEmailParams{UserID: userID, SessionID: id})
	if err != nil {
		return Tokens{}, s.unavailable("session e-mail", err)
	}
	if email == "" {
		return Tokens{}, errBadRefresh("the session has ended")
	}
	rows, err := s.db.LoginLookup(ctx, email)
	if err != nil {
		return Tokens{}, s.unavailable("login lookup", err)
	}
	if len(rows) == 0 || rows[0].UserID != userID {
		return Tokens{}, errBadRefresh("the session has ended")
	}
	u := rows[0]
	res := signindb.LoginResultParams{Email: email, UserID: &u.UserID, Action: "password_change",
		RefreshIdle: interval(s.cfg.RefreshIdle), RefreshMax: interval(s.cfg.RefreshMax),
		MaxFailures: int32(s.cfg.MaxFailures), LockBase: interval(s.cfg.LockBase), LockMax: interval(s.cfg.LockMax),
		Client: clientAddr(c), UserAgent: userAgent(c)}
	if u.RetryAfterMs > 0 {
		res.Outcome = "locked"
		out, err := s.db.LoginResult(ctx, res)
		if err != nil {
			return Tokens{}, s.unavailable("login result", err)
		}
		if out.Outcome == "locked" {
			return Tokens{}, throttled(time.Duration(out.RetryAfterMs) * time.Millisecond)
		}
	}
	ok, verr := auth.VerifyPassword(u.PasswordHash, oldPassword)
	if verr != nil || !ok {
		res.Outcome = "wrong_password"
		out, err := s.db.LoginResult(ctx, res)
		if err != nil {
			return Tokens{}, s.unavailable("login result", err)
		}
		if out.Outcome == "locked" {
			return Tokens{}, throttled(time.Duration(out.RetryAfterMs) * time.Millisecond)
		}
		return Tokens{}, &apperr.Error{Code: apperr.Unauthenticated, Field: "old_password", Message: "the current password is wrong"}
	}
	newHash, err := auth.HashPassword(newPassword)
	if err != nil {
		return Tokens{}, apperr.Field("new_password", "%s", err.Error())
	}
	secret, hash, err := auth.NewSecret(RefreshTokenPrefix)
	if err != nil {
		return Tokens{}, err
	}
	out, err := s.db.PasswordChange(ctx, signindb.PasswordChangeParams{UserID: userID, SessionID: id, NewHash: newHash,
		RefreshHash: hash, RefreshIdle: interval(s.cfg.RefreshIdle), RefreshMax: interval(s.cfg.RefreshMax),
		Client: clientAddr(c), UserAgent: userAgent(c)})
	if err != nil {
		return Tokens{}, s.unavailable("password change", err)
	}
	if out.Outcome != "ok" {
		return Tokens{}, errBadRefresh("the session has ended")
	}
	user := User{ID: u.UserID, OrganizationID: u.OrganizationID, Email: u.Email, Role: u.Role,
		DepartmentID: u.DepartmentID, EmployeeID: u.EmployeeID}
	return s.issue(user, out.SessionID, secret, out.RefreshExpiresAt)
}

// SessionActive reports whether the session an access token names (its
// "sid") still holds: not revoked, not past its absolute expiry, its user
// active. One indexed query; the HTTP middleware calls it per request. A
// malformed id is false.
func (s *Service) SessionActive(ctx context.Context, sessionID string) (bool, error) {
	id, err := uuid.Parse(sessionID)
	if err != nil || len(sessionID) != 36 {
		return false, nil
	}
	ok, err := s.db.SessionActive(ctx, id)
	if err != nil {
		return false, s.unavailable("session active", err)
	}
	return ok, nil
}
