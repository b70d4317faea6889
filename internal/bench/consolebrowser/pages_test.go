package consolebrowser

import (
	"fmt"
	"testing"
)

// consolePage is a page of the console that TestEveryPage visits as its
// user, checks with axe at every viewport and photographs.
type consolePage struct {
	// Name names the page in messages and screenshot files.
	Name string
	// User is the e-mail of the seeded user who opens it ("" signed out).
	User string
	// Path is the page's path (and query) in s.
	Path func(s *stack) string
	// Ready is a CSS selector present once the page has rendered what is
	// checked (default: the main landmark's h1).
	Ready string
}

// at is a Path that is the same in every stack.
func at(path string) func(*stack) string { return func(*stack) string { return path } }

// everyPage lists the console's pages. A new page is one line here; a
// page reached by a flow (a form's answer) calls browser.checkPage itself.
var everyPage = []consolePage{
	{Name: "signin", Path: at("/console/signin")},
	{Name: "overview", User: hrEmail, Path: at("/console/")},
	{Name: "employees", User: hrEmail, Path: at("/console/employees")},
	{Name: "employees-search", User: hrEmail, Path: at("/console/employees?q=okafor")},
	{Name: "employees-none", User: hrEmail, Path: at("/console/employees?q=nobody-at-all")},
	{Name: "employee", User: hrEmail, Path: func(s *stack) string { return fmt.Sprintf("/console/employees/%d", s.ann) }},
	{Name: "employee-day", User: hrEmail, Path: func(s *stack) string { return fmt.Sprintf("/console/employees/%d/day", s.ann) }},
	{Name: "employee-day-empty", User: hrEmail, Path: func(s *stack) string { return fmt.Sprintf("/console/employees/%d/day?date=2020-01-01", s.ben) }},
	{Name: "profile", User: hrEmail, Path: at("/console/profile")},
	{Name: "employee-no-activity", User: hrEmail, Path: func(s *stack) string { return fmt.Sprintf("/console/employees/%d", s.ben) }},
	{Name: "not-found", User: hrEmail, Path: at("/console/no-such-page")},
	{Name: "overview-lead", User: leadEmail, Path: at("/console/")},
	{Name: "employees-lead", User: leadEmail, Path: at("/console/employees")},
	{Name: "departments", User: hrEmail, Path: at("/console/departments")},
	{Name: "departments-lead", User: leadEmail, Path: at("/console/departments")},
	{Name: "gateways", User: hrEmail, Path: at("/console/gateways")},
	{Name: "devices", User: hrEmail, Path: at("/console/devices")},
	{Name: "commands", User: hrEmail, Path: at("/console/commands")},
	{Name: "audit-log", User: hrEmail, Path: at("/console/audit-log")},
	{Name: "users", User: hrEmail, Path: at("/console/users")},
	{Name: "reports", User: hrEmail, Path: at("/console/reports")},
	{Name: "attendance", User: hrEmail, Path: at("/console/attendance")},
	{Name: "policies", User: hrEmail, Path: at("/console/policies")},
}

// TestEveryPage opens every page of everyPage as its user (one browser
// per user, signed in through the form) and runs the every-page check.
func TestEveryPage(t *testing.T) {
	s := sharedStack(t)
	browsers := map[string]*browser{}
	for _, p := range everyPage {
		if browsers[p.User] == nil {
			b := newBrowser(t, s)
			if p.User != "" {
				b.signIn(p.User)
			}
			browsers[p.User] = b
		}
	}
	for _, p := range everyPage {
		if browsers[p.User] == nil {
			// The previous page of this user failed and may have left its
			// tab busy (an axe run cut off by the deadline on a loaded
			// machine): a fresh tab, so that one slow page fails alone.
			b := newBrowser(t, s)
			if p.User != "" {
				b.signIn(p.User)
			}
			browsers[p.User] = b
		}
		ok := t.Run(p.Name, func(t *testing.T) {
			b := browsers[p.User]
			b.use(t)
			b.open(p.Path(s))
			ready := p.Ready
			if ready == "" {
				ready = "main h1"
			}
			b.waitFor(ready, fmt.Sprintf("!!document.querySelector(%q)", ready))
			b.checkPage(p.Name)
		})
		if !ok {
			browsers[p.User] = nil
		}
	}
}
