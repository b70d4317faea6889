package dashboard

import (
	"net/http"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/signin"
	"github.com/staffcontrol/staffcontrol/internal/throttle"
)

// Sign-in (the signin package does the work): POST /api/auth/login (the
// seed's v1 path, kept), refresh, logout, log out everywhere, password
// change.

// authRoutes adds the sign-in routes to the table.
func (a *api) authRoutes() {
	a.handlePublic("POST", "/api/auth/login", a.login)
	a.handlePublic("GET", "/api/auth/login", a.loginHelp)
	a.handlePublic("POST", "/api/auth/refresh", a.refresh)
	a.handlePublic("POST", "/api/auth/logout", a.logout)
	a.handle("POST", "/api/auth/logout-everywhere", everyone, a.logoutEverywhere)
	a.handle("POST", "/api/auth/password", everyone, a.changePassword)
}

// session is the answer of a sign-in, a refresh and a password change.
// The camel-case members repeat the tokens under the names v1 clients
// read (docs/protocol.md, "v1 paths").
type session struct {
	TokenType        string      `json:"token_type"`
	AccessToken      string      `json:"access_token"`
	ExpiresIn        int64       `json:"expires_in"`
	ExpiresAt        time.Time   `json:"expires_at"`
	RefreshToken     string      `json:"refresh_token"`
	RefreshExpiresAt time.Time   `json:"refresh_expires_at"`
	User             sessionUser `json:"user"`
	V1AccessToken    string      `json:"accessToken"`
	V1RefreshToken   string      `json:"refreshToken"`
}

// sessionUser is who signed in.
type sessionUser struct {
	ID             int64  `json:"id"`
	Email          string `json:"email"`
	Role           string `json:"role"`
	OrganizationID *int64 `json:"organization_id"`
	DepartmentID   *int64 `json:"department_id,omitempty"`
	EmployeeID     *int64 `json:"employee_id,omitempty"`
}

func sessionOf(t signin.Tokens, now time.Time) session {
	return session{TokenType: "Bearer", AccessToken: t.AccessToken, ExpiresIn: int64(t.AccessExpiresAt.Sub(now).Round(time.Second).Seconds()),
		ExpiresAt: t.AccessExpiresAt, RefreshToken: t.RefreshToken, RefreshExpiresAt: t.RefreshExpiresAt,
		User: sessionUser{ID: t.User.ID, Email: t.User.Email, Role: t.User.Role, OrganizationID: nonZero(t.User.OrganizationID),
			DepartmentID: nonZero(t.User.DepartmentID), EmployeeID: nonZero(t.User.EmployeeID)},
		V1AccessToken: t.AccessToken, V1RefreshToken: t.RefreshToken}
}

// client is who is calling, for the per-address limit and the audit.
func (a *api) client(r *http.Request) signin.Client {
	ua := r.UserAgent()
	if len(ua) > 255 {
		ua = ua[:255]
	}
	return signin.Client{Address: throttle.Source(r, a.trustedProxies), UserAgent: ua}
}

// signIn returns the sign-in service, or an error when this instance has
// none.
func (a *api) signIn() (*signin.Service, error) {
	if a.signin == nil {
		return nil, apperr.New(apperr.Unavailable, "", "sign-in is not configured on this instance")
	}
	return a.signin, nil
}

// credentials is the body of a sign-in.
type credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

func (a *api) login(w http.ResponseWriter, r *http.Request) error {
	svc, err := a.signIn()
	if err != nil {
		return err
	}
	var in credentials
	if err := a.decode(r, &in); err != nil {
		return err
	}
	t, err := svc.Login(r.Context(), in.Email, in.Password, a.client(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sessionOf(t, time.Now()))
	return nil
}

// loginHelp answers GET /api/auth/login, which the seed's smoke test
// expects to answer 200: how to sign in, nothing more.
func (a *api) loginHelp(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{
		"method": "POST", "content_type": "application/json", "body": `{"email": "...", "password": "..."}`,
	})
	return nil
}

// refreshBody is the body of a refresh or a logout.
type refreshBody struct {
	RefreshToken string `json:"refresh_token"`
}

func (a *api) refresh(w http.ResponseWriter, r *http.Request) error {
	svc, err := a.signIn()
	if err != nil {
		return err
	}
	var in refreshBody
	if err := a.decode(r, &in); err != nil {
		return err
	}
	if in.RefreshToken == "" {
		return apperr.Field("refresh_token", "is required")
	}
	t, err := svc.Refresh(r.Context(), in.RefreshToken, a.client(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sessionOf(t, time.Now()))
	return nil
}

// logout ends the session of a refresh token. It answers 204 whether or
// not the session was still live: signing out twice is not an error.
func (a *api) logout(w http.ResponseWriter, r *http.Request) error {
	svc, err := a.signIn()
	if err != nil {
		return err
	}
	var in refreshBody
	if err := a.decode(r, &in); err != nil {
		return err
	}
	if in.RefreshToken == "" {
		return apperr.Field("refresh_token", "is required")
	}
	if err := svc.Logout(r.Context(), in.RefreshToken); err != nil && apperr.CodeOf(err) != apperr.Unauthenticated {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *api) logoutEverywhere(w http.ResponseWriter, r *http.Request, c *caller) error {
	svc, err := a.signIn()
	if err != nil {
		return err
	}
	if err := svc.LogoutEverywhere(r.Context(), c.claims.UserID, c.claims.SessionID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// passwordChange is the body of a password change.
type passwordChange struct {
	OldPassword string `json:"old_password"`
	NewPassword string `json:"new_password"`
}

// changePassword sets a new password, ends every session of the user and
// answers a new one for this client.
func (a *api) changePassword(w http.ResponseWriter, r *http.Request, c *caller) error {
	svc, err := a.signIn()
	if err != nil {
		return err
	}
	var in passwordChange
	if err := a.decode(r, &in); err != nil {
		return err
	}
	t, err := svc.ChangePassword(r.Context(), c.claims.UserID, c.claims.SessionID, in.OldPassword, in.NewPassword, a.client(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sessionOf(t, time.Now()))
	return nil
}
