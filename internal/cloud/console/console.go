// Package console is the web console (issue 18): server-rendered pages
// (html/template, templates and static files embedded) that the Dashboard
// API serves itself under /console/, on the API's own sign-in service and
// tenant context. A page runs the same services and row-level-security
// scoped queries as the API routes, as the signed-in user, so every role
// sees exactly what its scope allows.
//
// The session is the API's own: the sign-in stores the access token and
// the refresh token the API issues in two cookies (HttpOnly,
// SameSite=Strict, Secure over TLS, Path /console/); an expired access
// token is refreshed on the next page, and a page checks the session is
// live (signed out, password changed) exactly as the API does. Nothing is
// kept on the server, so any replica serves any page.
//
// Forms are protected from cross-site requests by a token tied to the
// session: a random secret in its own HttpOnly cookie, and in each form
// HMAC-SHA256(secret, session id) (before sign-in, of a fixed label).
// A POST whose token does not match is refused with 403 before anything
// else is done. Pages carry a Content-Security-Policy without
// 'unsafe-inline': scripts and styles come from /console/static/ only.
package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/directory"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/signin"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is the path under which the console is served.
const Prefix = "/console/"

// Cookie names.
const (
	accessCookie  = "sc_access"
	refreshCookie = "sc_refresh"
	csrfCookie    = "sc_csrf"
	langCookie    = "sc_lang"
)

// csrfField is the form field carrying the CSRF token.
const csrfField = "csrf_token"

// maxForm bounds a form body.
const maxForm = 64 << 10

// contentSecurityPolicy is every page's CSP: nothing inline, nothing from
// elsewhere, no framing, forms only to this origin.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// Principal is a signed-in user as the Dashboard API sees them: the
// tenant context their verified access token maps to and the pool that
// context is served by.
type Principal struct {
	Tenant    postgres.Tenant
	DB        *pgxpool.Pool
	SessionID string
	// Caller is the API's own record of the caller, handed back to
	// Deps.API for the pages' in-process calls of the API's routes.
	Caller any
}

// Deps are what the console is given.
type Deps struct {
	// SignIn signs users in and out and refreshes their sessions (nil:
	// the console answers 503).
	SignIn *signin.Service
	// Authenticate verifies an access token and maps it to the caller's
	// tenant context, exactly as the API's routes do (including the
	// check that the session is live). Its errors are apperr errors.
	Authenticate func(ctx context.Context, accessToken string) (Principal, error)
	// Client names who is calling (address and user agent) for the
	// sign-in's limits and audit.
	Client func(r *http.Request) signin.Client
	// OverTLS reports whether the browser reached r over TLS (directly or
	// through a trusted proxy), so that the cookies are marked Secure
	// (nil: when r.TLS is set).
	OverTLS func(r *http.Request) bool
	// Directory lists and reads employees and departments.
	Directory *directory.Service
	// API serves r, a request for one of the Dashboard API's routes, as
	// p's caller, in process: the pages that act (and most that read) call
	// the API's routes this way, so the role checks, validation, queries
	// and audit are the API's own (nil: those pages answer 503).
	API func(w http.ResponseWriter, r *http.Request, p Principal)
	// Logger logs failures (nil discards).
	Logger *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Console is the web console's HTTP handler, to be mounted at Prefix.
type Console struct {
	d      Deps
	mux    *http.ServeMux
	pages  map[string]*template.Template
	static http.Handler
}

// New builds the console: it parses the embedded templates (failing on a
// template error) and its routes.
func New(d Deps) (*Console, error) {
	if d.Authenticate == nil || d.Directory == nil {
		return nil, errors.New("console: Authenticate and Directory are required")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.OverTLS == nil {
		d.OverTLS = func(r *http.Request) bool { return r.TLS != nil }
	}
	if d.Client == nil {
		d.Client = func(*http.Request) signin.Client { return signin.Client{} }
	}
	c := &Console{d: d, mux: http.NewServeMux(), pages: map[string]*template.Template{}}
	for _, name := range append([]string{"signin", "overview", "employees", "employee", "error"}, pageTemplates...) {
		t, err := template.New("layout.html").Funcs(funcs).Funcs(pageFuncs).ParseFS(templateFS, "templates/layout.html", "templates/pager.html", "templates/reportform.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		c.pages[name] = t
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("console: static files: %w", err)
	}
	c.static = http.StripPrefix(Prefix+"static/", http.FileServerFS(sub))
	c.routes()
	return c, nil
}

// routes adds the console's pages.
func (c *Console) routes() {
	c.mux.HandleFunc("GET "+Prefix+"static/", c.serveStatic)
	c.mux.HandleFunc("GET "+Prefix+"{$}", c.page(c.overview))
	c.mux.HandleFunc("GET "+Prefix+"signin", c.signInForm)
	c.mux.HandleFunc("POST "+Prefix+"signin", c.signIn)
	c.mux.HandleFunc("POST "+Prefix+"signout", c.signOut)
	c.mux.HandleFunc("POST "+Prefix+"language", c.setLanguage)
	c.mux.HandleFunc("GET "+Prefix+"employees", c.page(c.employees))
	c.mux.HandleFunc("GET "+Prefix+"employees/{id}", c.page(c.employee))
	c.pageRoutes()
	c.mux.HandleFunc(Prefix, func(w http.ResponseWriter, r *http.Request) {
		c.render(w, r, http.StatusNotFound, "error", c.newView(w, r, nil, "error.title"), apperr.New(apperr.NotFound, "", "not found"))
	})
}

// ServeHTTP serves the console: every answer carries its CSP; every POST
// is a same-session form checked for its CSRF token first.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		p, ok := c.checkCSRF(w, r)
		if !ok {
			c.d.Logger.Warn("console: refused a form without a valid CSRF token", "path", r.URL.Path)
			c.render(w, r, http.StatusForbidden, "error", c.newView(w, r, nil, "error.title"), errors.New(c.lang(r).T("error.csrf")))
			return
		}
		if p != nil {
			r = r.WithContext(context.WithValue(r.Context(), principalKey{}, *p))
		}
	}
	c.mux.ServeHTTP(w, r)
}

// serveStatic serves the embedded static files (cacheable for a day:
// they change only with the binary).
func (c *Console) serveStatic(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=86400")
	c.static.ServeHTTP(w, r)
}

// pageFunc renders a page for a signed-in principal.
type pageFunc func(w http.ResponseWriter, r *http.Request, p Principal) error

// page wraps fn: it resolves the session (refreshing an expired access
// token once) and sends an anonymous visitor to the sign-in page.
func (c *Console) page(fn pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := c.session(w, r)
		if !ok {
			http.Redirect(w, r, Prefix+"signin", http.StatusSeeOther)
			return
		}
		if err := fn(w, r, p); err != nil {
			status := http.StatusInternalServerError
			switch apperr.CodeOf(err) {
			case apperr.NotFound:
				status = http.StatusNotFound
			case apperr.Forbidden:
				status = http.StatusForbidden
			case apperr.Invalid, apperr.Malformed:
				status = http.StatusBadRequest
			case apperr.Conflict:
				status = http.StatusConflict
			case apperr.Unavailable:
				status = http.StatusServiceUnavailable
			default:
				c.d.Logger.Error("console: page failed", "path", r.URL.Path, "err", err)
			}
			c.render(w, r, status, "error", c.newView(w, r, &p, "error.title"), err)
		}
	}
}

// session returns the signed-in principal of r: the access cookie
// verified, or, when it has expired, a refresh through the refresh cookie
// (new cookies set on w).
func (c *Console) session(w http.ResponseWriter, r *http.Request) (Principal, bool) {
	if p, ok := r.Context().Value(principalKey{}).(Principal); ok {
		return p, true
	}
	if ck, err := r.Cookie(accessCookie); err == nil && ck.Value != "" {
		p, err := c.d.Authenticate(r.Context(), ck.Value)
		if err == nil {
			return p, true
		}
		if apperr.CodeOf(err) != apperr.Unauthenticated {
			c.d.Logger.Warn("console: check a session", "err", err)
			return Principal{}, false
		}
	}
	rk, err := r.Cookie(refreshCookie)
	if err != nil || rk.Value == "" || c.d.SignIn == nil {
		return Principal{}, false
	}
	t, err := c.d.SignIn.Refresh(r.Context(), rk.Value, c.d.Client(r))
	if err != nil {
		c.clearSession(w, r)
		return Principal{}, false
	}
	c.setSession(w, r, t)
	p, err := c.d.Authenticate(r.Context(), t.AccessToken)
	if err != nil {
		return Principal{}, false
	}
	return p, true
}

// cookie is a console cookie: HttpOnly, SameSite=Strict, Secure over
// TLS, scoped to the console's path.
func (c *Console) cookie(r *http.Request, name, value string, expires time.Time) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: Prefix, Expires: expires, HttpOnly: true,
		Secure: c.d.OverTLS(r), SameSite: http.SameSiteStrictMode}
}

// setSession stores a sign-in's or refresh's tokens in the cookies.
func (c *Console) setSession(w http.ResponseWriter, r *http.Request, t signin.Tokens) {
	// The access cookie outlives its token so that an expired token is
	// refreshed rather than the visitor sent to sign in.
	http.SetCookie(w, c.cookie(r, accessCookie, t.AccessToken, t.RefreshExpiresAt))
	http.SetCookie(w, c.cookie(r, refreshCookie, t.RefreshToken, t.RefreshExpiresAt))
}

// clearSession removes the session cookies.
func (c *Console) clearSession(w http.ResponseWriter, r *http.Request) {
	for _, name := range []string{accessCookie, refreshCookie} {
		ck := c.cookie(r, name, "", time.Unix(1, 0))
		ck.MaxAge = -1
		http.SetCookie(w, ck)
	}
}

// csrfSecret returns the visitor's CSRF secret, making (and setting) one
// when the request has none.
func (c *Console) csrfSecret(w http.ResponseWriter, r *http.Request) []byte {
	if ck, err := r.Cookie(csrfCookie); err == nil {
		if b, err := base64.RawURLEncoding.DecodeString(ck.Value); err == nil && len(b) == 32 {
			return b
		}
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	if w != nil {
		http.SetCookie(w, c.cookie(r, csrfCookie, base64.RawURLEncoding.EncodeToString(b), time.Time{}))
	}
	return b
}

// csrfToken is the token of secret for a session (empty: signed out).
func csrfToken(secret []byte, sessionID string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("staffcontrol-console-csrf\x00"))
	m.Write([]byte(sessionID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkCSRF reports whether r's form carries the token of its CSRF
// secret for its session (that of its session cookies, refreshed when the
// access token has expired; none when signed out). A form rendered signed
// out (the sign-in form) is accepted only on the sign-in and language
// routes. The principal found, if any, is returned for the handler.
func (c *Console) checkCSRF(w http.ResponseWriter, r *http.Request) (*Principal, bool) {
	ck, err := r.Cookie(csrfCookie)
	if err != nil {
		return nil, false
	}
	secret, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil || len(secret) != 32 {
		return nil, false
	}
	got := r.PostFormValue(csrfField)
	if got == "" {
		return nil, false
	}
	var p *Principal
	session := ""
	if sp, ok := c.session(w, r); ok {
		p, session = &sp, sp.SessionID
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(csrfToken(secret, session))) == 1 {
		return p, true
	}
	anon := r.URL.Path == Prefix+"signin" || r.URL.Path == Prefix+"language"
	return p, session != "" && anon && subtle.ConstantTimeCompare([]byte(got), []byte(csrfToken(secret, ""))) == 1
}

// principalKey is the request-context key of the principal a POST's
// CSRF check resolved.
type principalKey struct{}
