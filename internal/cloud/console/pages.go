package console

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/console/consoledb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/directory"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// PageLimit is how many employees a page of the list shows.
const PageLimit = 50

// maxGateways bounds the overview's gateway table.
const maxGateways = 100

// maxApps bounds an employee's top applications.
const maxApps = 10

// maxDepartments bounds the department filter's choices.
const maxDepartments = 200

// view is what every template gets: the language, the signed-in user,
// the form token, the time zone and the page's own data.
type view struct {
	Lang      Lang
	TitleKey  string
	CSRF      string
	User      *Principal
	Path      string
	Languages []langOption
	Data      any
	Err       string
	Loc       *time.Location
}

// langOption is one entry of the language switcher.
type langOption struct {
	Code     Lang
	Name     string
	Selected bool
}

// T is the message of key in the page's language.
func (v view) T(key string) string { return v.Lang.T(key) }

// F formats the message of key in the page's language.
func (v view) F(key string, args ...any) string { return v.Lang.F(key, args...) }

// Time formats t in the organisation's time zone ("—" for nil or zero).
func (v view) Time(t any) string {
	var tt time.Time
	switch x := t.(type) {
	case time.Time:
		tt = x
	case *time.Time:
		if x != nil {
			tt = *x
		}
	}
	if tt.IsZero() {
		return v.T("none")
	}
	loc := v.Loc
	if loc == nil {
		loc = time.UTC
	}
	return tt.In(loc).Format("2006-01-02 15:04")
}

// Zone is the name of the page's time zone.
func (v view) Zone() string {
	if v.Loc == nil {
		return "UTC"
	}
	return v.Loc.String()
}

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"pct": func(f *float64) string {
		if f == nil {
			return "—"
		}
		return strconv.FormatFloat(*f, 'f', 1, 64) + " %"
	},
	"num": func(n *int32) string {
		if n == nil {
			return "—"
		}
		return strconv.Itoa(int(*n))
	},
	"str": func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	},
}

// newView starts a page's view for r (p nil: signed out); it sets the
// visitor's CSRF secret cookie when they have none yet.
func (c *Console) newView(w http.ResponseWriter, r *http.Request, p *Principal, titleKey string) view {
	l := c.lang(r)
	v := view{Lang: l, TitleKey: titleKey, User: p, Path: r.URL.Path}
	session := ""
	if p != nil {
		session = p.SessionID
	}
	v.CSRF = csrfToken(c.csrfSecret(w, r), session)
	for _, code := range languages {
		v.Languages = append(v.Languages, langOption{Code: code, Name: languageNames[code], Selected: code == l})
	}
	return v
}

// render writes page name with v (and err's message, if any) with
// status. The page is rendered into a buffer first so that a template
// error becomes a 500, not half a page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, v view, err error) {
	if err != nil {
		v.Err = c.message(v.Lang, err)
	}
	var buf bytes.Buffer
	if terr := c.pages[name].ExecuteTemplate(&buf, "layout.html", v); terr != nil {
		c.d.Logger.Error("console: render", "page", name, "err", terr)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Language", string(v.Lang))
	h.Set("Cache-Control", "no-store")
	h.Set("Vary", "Cookie, Accept-Language")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// message is what a visitor is told of err: an apperr's own message (the
// API's words), a generic one otherwise (details go to the log).
func (c *Console) message(l Lang, err error) string {
	if apperr.CodeOf(err) == apperr.NotFound {
		return l.T("error.notfound")
	}
	var ae *apperr.Error
	if errors.As(err, &ae) || apperr.CodeOf(err) == apperr.Invalid {
		return err.Error()
	}
	if err.Error() == l.T("error.csrf") {
		return err.Error()
	}
	return l.T("error.title")
}

// orgLocation loads the IANA zone name (UTC when unknown to this host).
func orgLocation(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		return time.UTC
	}
	return loc
}

// signInForm shows the sign-in page (or the overview when signed in).
func (c *Console) signInForm(w http.ResponseWriter, r *http.Request) {
	if _, ok := c.session(w, r); ok {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "signin", c.newView(w, r, nil, "signin.title"), nil)
}

// signIn checks the credentials through the API's sign-in service and
// sets the session cookies; a refusal re-shows the form with the reason
// (the lockout's remaining time when locked).
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	l := c.lang(r)
	v := c.newView(w, r, nil, "signin.title")
	email := r.PostFormValue("email")
	v.Data = map[string]string{"Email": email}
	if c.d.SignIn == nil {
		c.renderMessage(w, r, http.StatusServiceUnavailable, "signin", v, l.T("signin.unavailable"))
		return
	}
	t, err := c.d.SignIn.Login(r.Context(), email, r.PostFormValue("password"), c.d.Client(r))
	if err != nil {
		status, msg := http.StatusUnauthorized, l.T("signin.failed")
		switch ae := apperr.As(err); {
		case ae != nil && ae.Code == apperr.Throttled:
			wait := max(1, int((ae.RetryAfter+time.Second-1)/time.Second))
			status, msg = http.StatusTooManyRequests, l.F("signin.locked", wait)
			w.Header().Set("Retry-After", strconv.Itoa(wait))
		case ae != nil && ae.Code == apperr.Unauthenticated, ae != nil && ae.Code == apperr.Invalid:
		default:
			c.d.Logger.Error("console: sign-in", "err", err)
			status, msg = http.StatusServiceUnavailable, l.T("signin.unavailable")
		}
		c.renderMessage(w, r, status, "signin", v, msg)
		return
	}
	c.setSession(w, r, t)
	c.applyUserLanguage(w, r, t.AccessToken)
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

// renderMessage renders a page with msg as its error line.
func (c *Console) renderMessage(w http.ResponseWriter, r *http.Request, status int, name string, v view, msg string) {
	v.Err = msg
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, "layout.html", v); err != nil {
		c.d.Logger.Error("console: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// signOut ends the session (its refresh family, so the access token dies
// with it) and clears the cookies.
func (c *Console) signOut(w http.ResponseWriter, r *http.Request) {
	if rk, err := r.Cookie(refreshCookie); err == nil && rk.Value != "" && c.d.SignIn != nil {
		if err := c.d.SignIn.Logout(r.Context(), rk.Value); err != nil && apperr.CodeOf(err) != apperr.Unauthenticated {
			c.d.Logger.Warn("console: sign out", "err", err)
		}
	}
	c.clearSession(w, r)
	http.Redirect(w, r, Prefix+"signin", http.StatusSeeOther)
}

// setLanguage stores the visitor's language choice for a year and goes
// back to the page the switcher was on.
func (c *Console) setLanguage(w http.ResponseWriter, r *http.Request) {
	l := parseLang(r.PostFormValue("lang"))
	if l == "" {
		http.Error(w, "lang: must be one of en, ru, uz", http.StatusBadRequest)
		return
	}
	// Signed in, the choice is the user's from now on (in any browser).
	if p, ok := r.Context().Value(principalKey{}).(Principal); ok {
		if err := c.storeLanguage(r.Context(), p, l); err != nil {
			c.d.Logger.Warn("console: store the user's language", "err", err)
		}
	}
	c.setLangCookie(w, r, l)
	back := r.PostFormValue("back")
	if u, err := url.Parse(back); err != nil || u.IsAbs() || u.Host != "" || len(back) < len(Prefix) || back[:len(Prefix)] != Prefix {
		back = Prefix
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// overviewData is the overview page's data.
type overviewData struct {
	Counts   consoledb.OverviewCountsRow
	Gateways []consoledb.GatewayBuffersRow
}

// overview shows gateways online of total, the last hour's events and
// the gateways' buffer levels: two statements, one per widget, in the
// caller's tenant context.
func (c *Console) overview(w http.ResponseWriter, r *http.Request, p Principal) error {
	var d overviewData
	err := postgres.InTenant(r.Context(), p.DB, p.Tenant, func(tx pgx.Tx) error {
		q := consoledb.New(tx)
		var err error
		if d.Counts, err = q.OverviewCounts(r.Context(), p.Tenant.OrganizationID); err != nil {
			return fmt.Errorf("overview counts: %w", err)
		}
		if d.Gateways, err = q.GatewayBuffers(r.Context(), maxGateways); err != nil {
			return fmt.Errorf("gateway buffers: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	v := c.newView(w, r, &p, "overview.title")
	v.Loc = orgLocation(d.Counts.TimeZone)
	v.Data = d
	c.render(w, r, http.StatusOK, "overview", v, nil)
	return nil
}

// employeesData is the employee list's data.
type employeesData struct {
	Query        string
	DepartmentID int64
	Departments  []directory.Department
	Employees    []directory.Employee
	Next         string
	Paged        bool
}

// NextURL is the link to the next page (same filter, the cursor).
func (d employeesData) NextURL() string {
	q := url.Values{}
	if d.Query != "" {
		q.Set("q", d.Query)
	}
	if d.DepartmentID > 0 {
		q.Set("department", strconv.FormatInt(d.DepartmentID, 10))
	}
	q.Set("cursor", d.Next)
	return Prefix + "employees?" + q.Encode()
}

// FirstURL is the link to the first page of the same filter.
func (d employeesData) FirstURL() string {
	q := url.Values{}
	if d.Query != "" {
		q.Set("q", d.Query)
	}
	if d.DepartmentID > 0 {
		q.Set("department", strconv.FormatInt(d.DepartmentID, 10))
	}
	return Prefix + "employees?" + q.Encode()
}

// employees lists the employees the caller sees, searched and filtered by
// department (its subtree), a keyset page at a time; the department
// filter's choices are the departments the caller sees.
func (c *Console) employees(w http.ResponseWriter, r *http.Request, p Principal) error {
	qs := r.URL.Query()
	d := employeesData{Query: qs.Get("q"), Paged: qs.Get("cursor") != ""}
	if s := qs.Get("department"); s != "" {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id <= 0 {
			return apperr.New(apperr.Invalid, "department", "department: must be a department's id")
		}
		d.DepartmentID = id
	}
	ctx := r.Context()
	var err error
	d.Departments, _, err = c.d.Directory.ListDepartments(ctx, p.DB, p.Tenant, directory.DepartmentFilter{}, directory.Page{Limit: maxDepartments})
	if err != nil {
		return fmt.Errorf("departments: %w", err)
	}
	d.Employees, d.Next, err = c.d.Directory.ListEmployees(ctx, p.DB, p.Tenant,
		directory.EmployeeFilter{DepartmentID: d.DepartmentID, IncludeSubdepartments: d.DepartmentID > 0, Query: d.Query},
		directory.Page{Limit: PageLimit, Cursor: qs.Get("cursor")})
	if err != nil {
		return fmt.Errorf("employees: %w", err)
	}
	v := c.newView(w, r, &p, "employees.title")
	v.Data = d
	c.render(w, r, http.StatusOK, "employees", v, nil)
	return nil
}

// employeeData is an employee's page's data.
type employeeData struct {
	Employee   directory.Employee
	Department string
	// Apps are today's top applications (since Since, the day's start in
	// the organisation's zone).
	Apps  []consoledb.TopApplicationsRow
	Since time.Time
}

// Duration formats seconds as hours and minutes ("1:05").
func (employeeData) Duration(seconds int64) string {
	return fmt.Sprintf("%d:%02d", seconds/3600, seconds%3600/60)
}

// employee shows one employee the caller sees (another's is not found)
// with their identities; dates in the organisation's zone.
func (c *Console) employee(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return apperr.New(apperr.NotFound, "", "no such employee")
	}
	ctx := r.Context()
	e, err := c.d.Directory.GetEmployee(ctx, p.DB, p.Tenant, id)
	if err != nil {
		return err
	}
	d := employeeData{Employee: e}
	var sids []string
	for _, id := range e.Identities {
		if id.Kind == "windows_sid" {
			sids = append(sids, id.Value)
		}
	}
	zone := "UTC"
	err = postgres.InTenant(ctx, p.DB, p.Tenant, func(tx pgx.Tx) error {
		q := consoledb.New(tx)
		if p.Tenant.OrganizationID != 0 {
			if zone, err = q.OrganizationTimeZone(ctx, p.Tenant.OrganizationID); err != nil {
				return fmt.Errorf("organisation time zone: %w", err)
			}
		}
		if len(sids) == 0 {
			return nil
		}
		now := c.d.Now().In(orgLocation(zone))
		d.Since = time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, now.Location())
		if d.Apps, err = q.TopApplications(ctx, consoledb.TopApplicationsParams{Sids: sids, Since: d.Since, MaxRows: maxApps}); err != nil {
			return fmt.Errorf("top applications: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if e.DepartmentID != nil {
		if dep, err := c.d.Directory.GetDepartment(ctx, p.DB, p.Tenant, *e.DepartmentID); err == nil {
			d.Department = dep.Name
		}
	}
	v := c.newView(w, r, &p, "nav.employees")
	v.Loc = orgLocation(zone)
	v.Data = d
	c.render(w, r, http.StatusOK, "employee", v, nil)
	return nil
}
