package dashboard_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/signin"
)

// The web console's tests: the real Dashboard API on loopback (the
// harness of harness_test.go, with its sign-in service) over a real
// PostgreSQL with two organisations, driven by a net/http client with a
// cookie jar as a browser would (redirects not followed, so each answer
// is checked).

// browser is a console visitor: a client with its own cookie jar.
type browser struct {
	t    testing.TB
	e    *apiEnv
	c    *http.Client
	lang string // Accept-Language, when set
}

// page is an answer read whole.
type page struct {
	Status int
	Header http.Header
	Body   string
}

func newBrowser(t testing.TB, e *apiEnv) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, e: e, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	if b.lang != "" {
		req.Header.Set("Accept-Language", b.lang)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return page{Status: resp.StatusCode, Header: resp.Header, Body: string(body)}
}

// get fetches path.
func (b *browser) get(path string) page {
	b.t.Helper()
	req, err := http.NewRequest("GET", b.e.srv.URL+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

// post submits a form to path.
func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	req, err := http.NewRequest("POST", b.e.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// csrf is the form token of a page.
func (b *browser) csrf(p page) string {
	b.t.Helper()
	m := csrfRE.FindStringSubmatch(p.Body)
	if m == nil {
		b.t.Fatalf("no CSRF token in the page: %.300s", p.Body)
	}
	return m[1]
}

// signIn signs in through the console's form and returns the sign-in's
// answer.
func (b *browser) signIn(email, password string) page {
	b.t.Helper()
	form := b.get("/console/signin")
	if form.Status != http.StatusOK {
		b.t.Fatalf("GET /console/signin: %d", form.Status)
	}
	return b.post("/console/signin", url.Values{"csrf_token": {b.csrf(form)}, "email": {email}, "password": {password}})
}

// mustSignIn signs in and fails the test unless it succeeds.
func (b *browser) mustSignIn(email, password string) {
	b.t.Helper()
	p := b.signIn(email, password)
	if p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/console/" {
		b.t.Fatalf("sign-in %s: %d %s %.500s", email, p.Status, p.Header.Get("Location"), p.Body)
	}
}

// ok fetches path and fails unless it answers 200.
func (b *browser) ok(path string) page {
	b.t.Helper()
	p := b.get(path)
	if p.Status != http.StatusOK {
		b.t.Fatalf("GET %s: %d %s %.500s", path, p.Status, p.Header.Get("Location"), p.Body)
	}
	return p
}

const consolePassword = "correct horse battery staple"

func newConsoleEnv(t testing.TB) *apiEnv {
	return newAPIEnv(t, withSignIn(signin.Config{MaxFailures: 3, LockBase: time.Minute}))
}

func TestConsoleSignInOut(t *testing.T) {
	e := newConsoleEnv(t)
	e.addUser(e.orgA.OrganizationID, "hr@acme.test", "HR", consolePassword, 0, 0)
	b := newBrowser(t, e)

	// Signed out: every page sends to the sign-in form.
	for _, path := range []string{"/console/", "/console/employees", fmt.Sprintf("/console/employees/%d", e.orgA.EmployeeID)} {
		if p := b.get(path); p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/console/signin" {
			t.Errorf("GET %s signed out: %d %q, want 303 to the sign-in", path, p.Status, p.Header.Get("Location"))
		}
	}
	form := b.ok("/console/signin")
	for _, want := range []string{`<label for="email">`, `<label for="password">`, `href="#main"`, `<main id="main"`} {
		if !strings.Contains(form.Body, want) {
			t.Errorf("sign-in page lacks %s", want)
		}
	}

	// A wrong password is refused with the form again.
	if p := b.signIn("hr@acme.test", "wrong"); p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "password is wrong") {
		t.Errorf("wrong password: %d %.300s", p.Status, p.Body)
	}

	p := b.signIn("hr@acme.test", consolePassword)
	if p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/console/" {
		t.Fatalf("sign-in: %d %.300s", p.Status, p.Body)
	}
	cookies := map[string]*http.Cookie{}
	for _, c := range (&http.Response{Header: p.Header}).Cookies() {
		cookies[c.Name] = c
	}
	for _, name := range []string{"sc_access", "sc_refresh"} {
		c := cookies[name]
		switch {
		case c == nil:
			t.Errorf("sign-in set no %s cookie", name)
		case !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/console/":
			t.Errorf("cookie %s: HttpOnly %v SameSite %v Path %q, want HttpOnly, Strict, /console/", name, c.HttpOnly, c.SameSite, c.Path)
		case c.Secure:
			t.Errorf("cookie %s is Secure over plain HTTP (the browser would drop it)", name)
		}
	}

	home := b.ok("/console/")
	var online, total int
	e.scan(&total, `SELECT count(*) FROM gateway_instances WHERE organization_id = $1 AND revoked_at IS NULL`, e.orgA.OrganizationID)
	e.scan(&online, `SELECT count(*) FROM gateway_instances WHERE organization_id = $1 AND revoked_at IS NULL AND status = 'online'`, e.orgA.OrganizationID)
	if want := fmt.Sprintf(`id="gateways-online">%d / %d<`, online, total); !strings.Contains(home.Body, want) {
		t.Errorf("overview lacks %s: %.2000s", want, home.Body)
	}
	var windows int
	e.scan(&windows, `SELECT count(*) FROM monitoring.active_windows WHERE organization_id = $1 AND datetime >= now() - interval '1 hour'`, e.orgA.OrganizationID)
	if want := fmt.Sprintf(`id="events-hour">%d `, windows); !strings.Contains(home.Body, want) {
		t.Errorf("overview lacks %s", want)
	}
	if !strings.Contains(home.Body, "Signed in: HR") {
		t.Errorf("overview does not name the role")
	}

	// Sign-out ends the session: the old cookies no longer open a page.
	old := b.c.Jar.Cookies(mustURL(t, e.srv.URL+"/console/"))
	p = b.post("/console/signout", url.Values{"csrf_token": {b.csrf(home)}})
	if p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/console/signin" {
		t.Fatalf("sign-out: %d %q", p.Status, p.Header.Get("Location"))
	}
	if p := b.get("/console/"); p.Status != http.StatusSeeOther {
		t.Errorf("after sign-out: %d, want 303 to the sign-in", p.Status)
	}
	replay := newBrowser(t, e)
	replay.c.Jar.SetCookies(mustURL(t, e.srv.URL+"/console/"), old)
	if p := replay.get("/console/"); p.Status != http.StatusSeeOther {
		t.Errorf("the signed-out session's cookies replayed: %d, want 303 to the sign-in", p.Status)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestConsoleLockoutMessage(t *testing.T) {
	e := newConsoleEnv(t)
	e.addUser(e.orgA.OrganizationID, "hr@acme.test", "HR", consolePassword, 0, 0)
	b := newBrowser(t, e)
	for i := 0; i < 3; i++ {
		b.signIn("hr@acme.test", "wrong")
	}
	p := b.signIn("hr@acme.test", consolePassword)
	if p.Status != http.StatusTooManyRequests || !strings.Contains(p.Body, "Too many failed attempts: try again in") {
		t.Fatalf("locked account: %d %.1000s", p.Status, p.Body)
	}
	if ra, err := strconv.Atoi(p.Header.Get("Retry-After")); err != nil || ra <= 0 || ra > 60 {
		t.Errorf("Retry-After %q, want 1..60 s", p.Header.Get("Retry-After"))
	}
}

func TestConsoleCSRFAndHeaders(t *testing.T) {
	e := newConsoleEnv(t)
	e.addUser(e.orgA.OrganizationID, "hr@acme.test", "HR", consolePassword, 0, 0)

	// A sign-in without the form's token (a cross-site form) is refused
	// before the credentials are looked at.
	stranger := newBrowser(t, e)
	if p := stranger.post("/console/signin", url.Values{"email": {"hr@acme.test"}, "password": {consolePassword}}); p.Status != http.StatusForbidden {
		t.Errorf("sign-in without a CSRF token: %d, want 403", p.Status)
	}

	b := newBrowser(t, e)
	b.mustSignIn("hr@acme.test", consolePassword)
	home := b.ok("/console/")
	token := b.csrf(home)
	for name, form := range map[string]url.Values{
		"none":      {},
		"empty":     {"csrf_token": {""}},
		"forged":    {"csrf_token": {strings.Repeat("A", len(token))}},
		"other tab": {"csrf_token": {stranger.csrf(stranger.ok("/console/signin"))}},
	} {
		if p := b.post("/console/signout", form); p.Status != http.StatusForbidden {
			t.Errorf("sign-out with %s token: %d, want 403", name, p.Status)
		}
	}
	b.ok("/console/") // still signed in

	// Another browser's token (its own secret) does not fit this session.
	other := newBrowser(t, e)
	other.mustSignIn("hr@acme.test", consolePassword)
	if p := b.post("/console/signout", url.Values{"csrf_token": {other.csrf(other.ok("/console/"))}}); p.Status != http.StatusForbidden {
		t.Errorf("sign-out with another session's token: %d, want 403", p.Status)
	}

	csp := home.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %s", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP %q allows inline or eval", csp)
	}
	// No inline script or style in any page: scripts have a src, no
	// style attributes or elements, no event-handler attributes.
	inline := regexp.MustCompile(`<script>|<script [^>]*>[^<]|<style|style="| on[a-z]+="`)
	for _, path := range []string{"/console/", "/console/employees", fmt.Sprintf("/console/employees/%d", e.orgA.EmployeeID), "/console/signin"} {
		p := b.get(path)
		if path == "/console/signin" {
			p = stranger.get(path)
		}
		if m := inline.FindString(p.Body); m != "" {
			t.Errorf("%s has inline code: %q", path, m)
		}
	}
	js := b.ok("/console/static/htmx.min.js")
	if !strings.HasPrefix(js.Header.Get("Content-Type"), "text/javascript") || len(js.Body) < 10000 {
		t.Errorf("htmx: %s, %d bytes", js.Header.Get("Content-Type"), len(js.Body))
	}
	b.ok("/console/static/console.css")
}

func TestConsoleEscaping(t *testing.T) {
	e := newConsoleEnv(t)
	e.addUser(e.orgA.OrganizationID, "hr@acme.test", "HR", consolePassword, 0, 0)
	const name = `<script>alert("name")</script>`
	const title = `<img src=x onerror=alert(1)> & "quotes"`
	// The employee is posted through the API like any other.
	e.addUser(e.orgA.OrganizationID, "console-admin@acme.test", "ORG_ADMIN", consolePassword, 0, 0)
	admin := e.login("console-admin@acme.test", consolePassword)
	dept := e.orgA.DepartmentID
	a := e.call("POST", "/api/v2/employees", admin.AccessToken, map[string]any{
		"department_id": dept, "employee_number": "X-1", "first_name": name, "last_name": "Markup",
		"status": "active", "identities": []map[string]string{{"kind": "windows_sid", "value": "S-1-5-21-99"}},
	})
	if a.Status != http.StatusCreated {
		t.Fatalf("create employee: %d %s", a.Status, a.Body)
	}
	var created struct {
		ID int64 `json:"id"`
	}
	a.JSON(t, &created)
	e.exec(`INSERT INTO monitoring.active_windows (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, window_title, process_name, datetime, duration_seconds)
		VALUES (gen_random_uuid(), $1, $2, 1000, 'agent-1', 'pc-1', 'S-1-5-21-99', $3, 'evil.exe', now(), 120)`, e.orgA.OrganizationID, e.orgA.GatewayID, title)

	b := newBrowser(t, e)
	b.mustSignIn("hr@acme.test", consolePassword)
	for _, path := range []string{"/console/employees", fmt.Sprintf("/console/employees/%d", created.ID), "/console/employees?q=" + url.QueryEscape(name)} {
		p := b.ok(path)
		if strings.Contains(p.Body, name) || strings.Contains(p.Body, "<img src=x") {
			t.Errorf("%s renders markup unescaped", path)
		}
		if !strings.Contains(p.Body, "&lt;script&gt;alert(&#34;name&#34;)&lt;/script&gt;") {
			t.Errorf("%s does not show the name as text: %.3000s", path, p.Body)
		}
	}
	p := b.ok(fmt.Sprintf("/console/employees/%d", created.ID))
	if !strings.Contains(p.Body, "&lt;img src=x onerror=alert(1)&gt; &amp; &#34;quotes&#34;") {
		t.Errorf("the window title is not shown as text: %.4000s", p.Body)
	}
	if !strings.Contains(p.Body, "<td>evil.exe</td><td>0:02</td>") {
		t.Errorf("the top application is missing: %.4000s", p.Body)
	}
}

func TestConsoleTenantIsolation(t *testing.T) {
	e := newConsoleEnv(t)
	// The seeded organisations are alike; name each one's employee apart.
	e.exec(`UPDATE employees SET first_name = 'Acmeonly' WHERE id = $1`, e.orgA.EmployeeID)
	e.exec(`UPDATE employees SET first_name = 'Globexonly' WHERE id = $1`, e.orgB.EmployeeID)
	// Organisation A gets a second department with a lead and an employee.
	var sales, salesEmp int64
	e.scan(&sales, `INSERT INTO departments (organization_id, name) VALUES ($1, 'Sales') RETURNING id`, e.orgA.OrganizationID)
	e.scan(&salesEmp, `INSERT INTO employees (organization_id, department_id, employee_number, first_name, last_name)
		VALUES ($1, $2, 'S-1', 'Salesonly', 'Person') RETURNING id`, e.orgA.OrganizationID, sales)
	e.addUser(e.orgA.OrganizationID, "hr@acme.test", "HR", consolePassword, 0, 0)
	e.addUser(e.orgA.OrganizationID, "lead@acme.test", "DEPARTMENT_LEAD", consolePassword, sales, 0)
	e.addUser(e.orgB.OrganizationID, "hr@globex.test", "HR", consolePassword, 0, 0)

	hrA := newBrowser(t, e)
	hrA.mustSignIn("hr@acme.test", consolePassword)
	list := hrA.ok("/console/employees")
	for _, want := range []string{"Acmeonly", "Salesonly", ">Sales<", ">Engineering<"} {
		if !strings.Contains(list.Body, want) {
			t.Errorf("A's HR does not see %s", want)
		}
	}
	if strings.Contains(list.Body, "Globexonly") {
		t.Error("A's HR sees B's employee")
	}
	if p := hrA.get(fmt.Sprintf("/console/employees/%d", e.orgB.EmployeeID)); p.Status != http.StatusNotFound || strings.Contains(p.Body, "Globexonly") {
		t.Errorf("A's HR opening B's employee: %d", p.Status)
	}
	// The department filter narrows to the department.
	if p := hrA.ok(fmt.Sprintf("/console/employees?department=%d", sales)); strings.Contains(p.Body, "Acmeonly") || !strings.Contains(p.Body, "Salesonly") {
		t.Error("the department filter does not narrow the list")
	}
	// The search narrows to the match.
	if p := hrA.ok("/console/employees?q=salesonly"); strings.Contains(p.Body, "Acmeonly") || !strings.Contains(p.Body, "Salesonly") {
		t.Error("the search does not narrow the list")
	}

	hrB := newBrowser(t, e)
	hrB.mustSignIn("hr@globex.test", consolePassword)
	if p := hrB.ok("/console/employees"); strings.Contains(p.Body, "Acmeonly") || strings.Contains(p.Body, "Salesonly") || !strings.Contains(p.Body, "Globexonly") {
		t.Error("B's HR sees A's employees or not its own")
	}

	lead := newBrowser(t, e)
	lead.mustSignIn("lead@acme.test", consolePassword)
	p := lead.ok("/console/employees")
	if !strings.Contains(p.Body, "Salesonly") || strings.Contains(p.Body, "Acmeonly") || strings.Contains(p.Body, "Globexonly") {
		t.Errorf("the lead's list is not their own department's: %.3000s", p.Body)
	}
	if strings.Contains(p.Body, ">Engineering<") {
		t.Error("the lead's department filter offers another department")
	}
	if p := lead.get(fmt.Sprintf("/console/employees/%d", e.orgA.EmployeeID)); p.Status != http.StatusNotFound {
		t.Errorf("the lead opening another department's employee: %d, want 404", p.Status)
	}
	lead.ok(fmt.Sprintf("/console/employees/%d", salesEmp))
	// The fleet is the whole organisation's business: a lead sees none.
	if p := lead.ok("/console/"); !strings.Contains(p.Body, `id="gateways-online">0 / 0<`) {
		t.Errorf("the lead's overview counts gateways: %.2000s", p.Body)
	}
}

func TestConsoleLanguages(t *testing.T) {
	e := newConsoleEnv(t)
	e.addUser(e.orgA.OrganizationID, "hr@acme.test", "HR", consolePassword, 0, 0)
	b := newBrowser(t, e)
	b.lang = "uz-Latn-UZ,uz;q=0.9,en;q=0.5"
	if p := b.ok("/console/signin"); !strings.Contains(p.Body, `<html lang="uz">`) || !strings.Contains(p.Body, "Parol") {
		t.Errorf("Accept-Language uz: %.500s", p.Body)
	}
	b.lang = "de-DE,ru;q=0.8,en;q=0.7"
	b.mustSignIn("hr@acme.test", consolePassword)
	if p := b.ok("/console/"); !strings.Contains(p.Body, `<html lang="ru">`) || !strings.Contains(p.Body, "Шлюзы в сети") {
		t.Errorf("Accept-Language ru: %.500s", p.Body)
	}
	// The visitor's choice outlives the browser's preference.
	home := b.ok("/console/employees")
	p := b.post("/console/language", url.Values{"csrf_token": {b.csrf(home)}, "lang": {"en"}, "back": {"/console/employees"}})
	if p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/console/employees" {
		t.Fatalf("language switch: %d %q", p.Status, p.Header.Get("Location"))
	}
	if p := b.ok("/console/employees"); !strings.Contains(p.Body, `<html lang="en">`) || !strings.Contains(p.Body, "All departments") {
		t.Errorf("after switching to English: %.500s", p.Body)
	}
	// Off-site "back" addresses are not followed.
	p = b.post("/console/language", url.Values{"csrf_token": {b.csrf(home)}, "lang": {"uz"}, "back": {"https://evil.test/console/"}})
	if p.Header.Get("Location") != "/console/" {
		t.Errorf("language switch to an off-site back: %q", p.Header.Get("Location"))
	}
	if p := b.ok("/console/"); !strings.Contains(p.Body, "Umumiy koʻrinish") {
		t.Errorf("Uzbek overview: %.500s", p.Body)
	}
	// Dates are in the organisation's zone.
	e.exec(`UPDATE organizations SET time_zone = 'Asia/Tashkent' WHERE id = $1`, e.orgA.OrganizationID)
	var updated time.Time
	e.scan(&updated, `SELECT updated_at FROM employees WHERE id = $1`, e.orgA.EmployeeID)
	tz, err := time.LoadLocation("Asia/Tashkent")
	if err != nil {
		t.Skip("no zone data:", err)
	}
	p = b.ok(fmt.Sprintf("/console/employees/%d", e.orgA.EmployeeID))
	if want := updated.In(tz).Format("2006-01-02 15:04") + " (Asia/Tashkent)"; !strings.Contains(p.Body, want) {
		t.Errorf("employee page lacks %q: %.3000s", want, p.Body)
	}
}

func TestConsolePageSizeAndPaging(t *testing.T) {
	e := newConsoleEnv(t)
	e.addUser(e.orgA.OrganizationID, "hr@acme.test", "HR", consolePassword, 0, 0)
	e.exec(`INSERT INTO employees (organization_id, department_id, employee_number, first_name, last_name, position, email)
		SELECT $1, $2, 'P-' || lpad(i::text, 4, '0'), 'Firstname' || i, 'Lastname' || lpad(i::text, 4, '0'),
		       'A rather long position title of this employee number ' || i, 'person' || i || '@acme.test'
		FROM generate_series(1, 180) i`, e.orgA.OrganizationID, e.orgA.DepartmentID)
	b := newBrowser(t, e)
	b.mustSignIn("hr@acme.test", consolePassword)
	nextRE := regexp.MustCompile(`href="([^"]+)" rel="next"`)
	seen := map[string]bool{}
	path := "/console/employees"
	pages := 0
	for ; path != "" && pages < 10; pages++ {
		p := b.ok(path)
		if len(p.Body) >= 100<<10 {
			t.Errorf("%s: %d bytes, want < 100 KB", path, len(p.Body))
		}
		for _, m := range regexp.MustCompile(`<td>(P-\d{4}|E-1)</td>`).FindAllStringSubmatch(p.Body, -1) {
			if seen[m[1]] {
				t.Errorf("%s repeats %s", path, m[1])
			}
			seen[m[1]] = true
		}
		path = ""
		if m := nextRE.FindStringSubmatch(p.Body); m != nil {
			path = strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	if len(seen) != 181 || pages != 4 {
		t.Errorf("paged through %d employees in %d pages, want 181 in 4", len(seen), pages)
	}
	for _, path := range []string{"/console/", "/console/signin", fmt.Sprintf("/console/employees/%d", e.orgA.EmployeeID)} {
		if p := b.get(path); len(p.Body) >= 100<<10 {
			t.Errorf("%s: %d bytes, want < 100 KB", path, len(p.Body))
		}
	}
}

// TestConsoleForwardedProtoUntrusted: a client claiming HTTPS in
// X-Forwarded-Proto is not a trusted proxy, so the cookies are not
// marked Secure on its word (the harness trusts no proxy).
func TestConsoleForwardedProtoUntrusted(t *testing.T) {
	e := newConsoleEnv(t)
	e.addUser(e.orgA.OrganizationID, "hr@acme.test", "HR", consolePassword, 0, 0)
	b := newBrowser(t, e)
	form := b.ok("/console/signin")
	req, err := http.NewRequest("POST", e.srv.URL+"/console/signin", strings.NewReader(url.Values{
		"csrf_token": {b.csrf(form)}, "email": {"hr@acme.test"}, "password": {consolePassword}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-Proto", "https")
	p := b.do(req)
	if p.Status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", p.Status)
	}
	n := 0
	for _, c := range (&http.Response{Header: p.Header}).Cookies() {
		n++
		if c.Secure {
			t.Errorf("cookie %s marked Secure on an untrusted peer's X-Forwarded-Proto", c.Name)
		}
	}
	if n < 2 {
		t.Errorf("%d cookies set, want the session's two", n)
	}
}
