package dashboard_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestConsoleUserLanguage: the language is stored on the user by the
// profile's CSRF-protected form (a value that is no language refused,
// naming the field) and applied at the next sign-in in any browser.
func TestConsoleUserLanguage(t *testing.T) {
	e := newConsoleEnv(t)
	hr := signedInAs(t, e, e.orgA.OrganizationID, "hr@acme.test", "HR", 0)
	stored := func() string {
		var l *string
		e.scan(&l, `SELECT language FROM users WHERE email = 'hr@acme.test'`)
		if l == nil {
			return ""
		}
		return *l
	}
	prof := hr.okPage(t, "/console/profile")
	if !strings.Contains(prof.Body, `<option value="" selected>`) || stored() != "" {
		t.Fatalf("a new user's profile: stored %q, %.3000s", stored(), prof.Body)
	}
	if p := hr.post("/console/profile", url.Values{"language": {"ru"}}); p.Status != http.StatusForbidden || stored() != "" {
		t.Errorf("a profile form without its CSRF token: %d (stored %q), want 403", p.Status, stored())
	}
	if p := hr.post("/console/profile", url.Values{"csrf_token": {hr.csrf(prof)}, "language": {"RU-ru"}}); p.Status != http.StatusBadRequest ||
		!strings.Contains(p.Body, "language: must be one of") || stored() != "" {
		t.Errorf("language RU-ru: %d (stored %q) %.2000s, want 400 naming the field", p.Status, stored(), p.Body)
	}
	p := hr.post("/console/profile", url.Values{"csrf_token": {hr.csrf(prof)}, "language": {"ru"}})
	if p.Status != http.StatusSeeOther || stored() != "ru" {
		t.Fatalf("saving ru: %d %q (stored %q)", p.Status, p.Header.Get("Location"), stored())
	}
	if p := hr.ok("/console/profile?saved=1"); !strings.Contains(p.Body, `<html lang="ru">`) || !strings.Contains(p.Body, `<option value="ru" lang="ru" selected>`) {
		t.Errorf("the profile after saving ru: %.3000s", p.Body)
	}
	// Another browser (English) signing in: Russian at once.
	b := newBrowser(t, e)
	b.lang = "en-GB,en;q=0.9"
	b.mustSignIn("hr@acme.test", consolePassword)
	if p := b.ok("/console/"); !strings.Contains(p.Body, `<html lang="ru">`) {
		t.Errorf("a new browser's overview for a user with ru: %.500s", p.Body)
	}
	// The header's switcher, signed in, stores the choice too.
	home := b.ok("/console/")
	if p := b.post("/console/language", url.Values{"csrf_token": {b.csrf(home)}, "lang": {"uz"}, "back": {"/console/"}}); p.Status != http.StatusSeeOther || stored() != "uz" {
		t.Errorf("the header's switch to uz: %d, stored %q", p.Status, stored())
	}
	// Back to the browser's choice.
	prof = b.ok("/console/profile")
	if p := b.post("/console/profile", url.Values{"csrf_token": {b.csrf(prof)}, "language": {""}}); p.Status != http.StatusSeeOther || stored() != "" {
		t.Errorf("the browser's choice: %d, stored %q", p.Status, stored())
	}
	if p := b.ok("/console/"); !strings.Contains(p.Body, `<html lang="en">`) {
		t.Errorf("the browser's choice again (en): %.300s", p.Body)
	}
}

// TestConsoleEmployeeDay: an employee's day page (figures, timeline, the
// export link) and its CSV, the API's own for the same query; a date that
// is none is refused naming the field.
func TestConsoleEmployeeDay(t *testing.T) {
	e := newConsoleEnv(t)
	hr := signedInAs(t, e, e.orgA.OrganizationID, "hr@acme.test", "HR", 0)
	day := time.Now().UTC().Format(time.DateOnly)
	path := fmt.Sprintf("/console/employees/%d/day?date=%s", e.orgA.EmployeeID, day)
	p := hr.okPage(t, path)
	for _, want := range []string{`id="timeline"`, "code.exe", `id="day-export"`, "employee_id=" + fmt.Sprint(e.orgA.EmployeeID)} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("the day page lacks %s: %.4000s", want, p.Body)
		}
	}
	if p := hr.get(fmt.Sprintf("/console/employees/%d/day?date=yesterday", e.orgA.EmployeeID)); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "date: must be a day") {
		t.Errorf("a date that is none: %d %.1000s", p.Status, p.Body)
	}
	if p := hr.get(fmt.Sprintf("/console/employees/%d/day", e.orgB.EmployeeID)); p.Status != http.StatusNotFound {
		t.Errorf("another organisation's employee's day: %d, want 404", p.Status)
	}
	q := url.Values{"from": {day}, "to": {day}, "employee_id": {fmt.Sprint(e.orgA.EmployeeID)}}
	csv := hr.get("/console/reports/export?report=employee-days&" + q.Encode())
	q.Set("format", "csv")
	api := e.call("GET", "/api/v2/reports/employee-days?"+q.Encode(), e.login("hr@acme.test", consolePassword).AccessToken, nil)
	if csv.Status != http.StatusOK || api.Status != http.StatusOK || csv.Body != string(api.Body) || strings.Count(csv.Body, "\n") != 2 {
		t.Errorf("the day's CSV: %d %q; the API's: %d %q", csv.Status, csv.Body, api.Status, api.Body)
	}
}
