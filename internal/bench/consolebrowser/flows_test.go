package consolebrowser

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// mainText is the text of the page's main landmark as the user sees it.
func (b *browser) mainText() string {
	b.t.Helper()
	return eval[string](b, `document.querySelector("main").innerText`)
}

// rows is the text of each body row of the first table under selector.
func (b *browser) rows(selector string) []string {
	b.t.Helper()
	return eval[[]string](b, fmt.Sprintf(`Array.from(document.querySelectorAll(%q)).map(r => r.innerText)`, selector+" tbody tr"))
}

// TestKeyboardFindEmployee: an HR manager signs in, finds an employee by
// search and opens their page with the keyboard alone.
func TestKeyboardFindEmployee(t *testing.T) {
	s := sharedStack(t)
	b := newBrowser(t, s)

	// The first Tab of a page reaches the skip link, which shows itself.
	b.open("/console/signin")
	b.do("press Tab", chromedp.KeyEvent(kb.Tab))
	if f := b.focused(); !eval[bool](b, `document.activeElement.matches("a.skip[href='#main']")`) {
		t.Errorf("the first Tab focuses %s, want the skip link", f)
	}
	if box := eval[[]float64](b, `(r => [r.left, r.top, r.width])(document.activeElement.getBoundingClientRect())`); box[0] < 0 || box[1] < 0 || box[2] == 0 {
		t.Errorf("the focused skip link is off the screen at %v", box)
	}

	b.signIn(hrEmail)
	if h := eval[string](b, `document.querySelector("main h1").innerText`); h != "Overview" {
		t.Errorf("after sign-in the heading is %q, want Overview", h)
	}
	if who := eval[string](b, `document.querySelector(".who").innerText`); !strings.Contains(who, "HR") {
		t.Errorf("the header says %q, want the role HR", who)
	}

	// To the employees through the navigation.
	b.tabTo(`nav a[href="/console/employees"]`)
	b.enterAndLoad()
	if p := b.path(); p != "/console/employees" {
		t.Fatalf("the navigation's Employees link led to %s", p)
	}
	all := strings.Join(b.rows("#results"), "\n")
	for _, want := range []string{"Lee, Ann", "Okafor, Ben", "Salesonly, Sara"} {
		if !strings.Contains(all, want) {
			t.Errorf("the HR manager's list lacks %s: %s", want, all)
		}
	}
	if strings.Contains(all, "Globexonly") {
		t.Error("the HR manager's list shows another organisation's employee")
	}

	// Search: type into the search field and press Enter; htmx swaps the
	// results in place and puts the query in the address.
	b.tabTo("#q")
	b.keys("okafor")
	b.do("press Enter", chromedp.KeyEvent(kb.Enter))
	b.waitFor("the search's results", `document.querySelectorAll("#results tbody tr").length === 1`)
	if r := b.rows("#results"); len(r) != 1 || !strings.Contains(r[0], "Okafor, Ben") {
		t.Fatalf("searching okafor lists %q", r)
	}
	b.waitFor("the query in the address", `location.search.includes("q=okafor")`)

	// Open the match.
	b.tabTo("#results tbody a")
	b.enterAndLoad()
	if want := fmt.Sprintf("/console/employees/%d", s.ben); b.path() != want {
		t.Fatalf("the result's link led to %s, want %s", b.path(), want)
	}
	if h := eval[string](b, `document.querySelector("main h2").innerText`); h != "Ben Okafor" {
		t.Errorf("the employee page's heading is %q, want Ben Okafor", h)
	}
	if txt := b.mainText(); !strings.Contains(txt, "Engineering") || !strings.Contains(txt, "E-2") {
		t.Errorf("the employee page lacks the department or number: %s", txt)
	}

	// Ann's page lists her applications, the longest first.
	b.open(fmt.Sprintf("/console/employees/%d", s.ann))
	apps := b.rows("section[aria-labelledby='apps-h']")
	if len(apps) != 3 || !strings.HasPrefix(apps[0], "excel.exe") || !strings.Contains(apps[0], "Quarterly report.xlsx - Excel") {
		t.Errorf("Ann's applications: %q", apps)
	}

	// The language switch, by keyboard: Russian, and the page still fits.
	b.tabTo("#lang-select")
	b.do("choose Russian", chromedp.KeyEvent(kb.ArrowDown)) // English, Русский, Oʻzbekcha
	if v := eval[string](b, `document.querySelector("#lang-select").value`); v != "ru" {
		t.Fatalf("the arrow key chose %q in the language list, want ru", v)
	}
	b.do("press Tab", chromedp.KeyEvent(kb.Tab))
	b.enterAndLoad()
	if lang := eval[string](b, `document.documentElement.lang`); lang != "ru" {
		t.Fatalf("after choosing Russian the page's lang is %q", lang)
	}
	if h := eval[string](b, `document.querySelector("main h2").innerText`); h != "Ann Lee" {
		t.Errorf("the language switch did not come back to Ann's page: %q", h)
	}
	b.checkPage("employee-russian")
}

// TestSignInErrors: a wrong password and the lockout are announced on the
// form, which passes the every-page check in both states.
func TestSignInErrors(t *testing.T) {
	s := startStack(t)
	b := newBrowser(t, s)
	b.submitSignIn(hrEmail, "wrong password")
	if p := b.path(); p != "/console/signin" {
		t.Fatalf("a wrong password led to %s", p)
	}
	alert := `(e => e ? e.innerText : "")(document.querySelector("main [role=alert]"))`
	if msg := eval[string](b, alert); !strings.Contains(msg, "password is wrong") {
		t.Errorf("the wrong password's message: %q", msg)
	}
	if v := eval[string](b, `document.querySelector("#email").value`); v != hrEmail {
		t.Errorf("the form forgot the e-mail: %q", v)
	}
	b.checkPage("signin-wrong-password")

	b.submitSignIn(hrEmail, "wrong again")
	b.submitSignIn(hrEmail, "still wrong")
	b.submitSignIn(hrEmail, password) // locked: the right password is refused too
	if msg := eval[string](b, alert); !strings.Contains(msg, "Too many failed attempts: try again in") {
		t.Fatalf("the locked account's message: %q", msg)
	}
	if p := b.path(); p != "/console/signin" {
		t.Errorf("a locked account's sign-in led to %s", p)
	}
	b.checkPage("signin-locked")
}

// TestDepartmentLead: a department lead sees only their department's
// employees, cannot open another's, and sees no fleet.
func TestDepartmentLead(t *testing.T) {
	s := sharedStack(t)
	b := newBrowser(t, s)
	b.signIn(leadEmail)
	if txt := b.mainText(); !strings.Contains(txt, "0 / 0") {
		t.Errorf("the lead's overview counts gateways: %s", txt)
	}
	b.open("/console/employees")
	if r := b.rows("#results"); len(r) != 1 || !strings.Contains(r[0], "Salesonly, Sara") {
		t.Errorf("the lead's list: %q, want Sara Salesonly alone", r)
	}
	opts := eval[[]string](b, `Array.from(document.querySelectorAll("#department option")).map(o => o.innerText)`)
	if len(opts) != 2 || opts[1] != "Sales" {
		t.Errorf("the lead's department filter offers %q, want all and Sales", opts)
	}
	for _, id := range []int64{s.ann, s.gil} {
		b.open(fmt.Sprintf("/console/employees/%d", id))
		if txt := b.mainText(); strings.Contains(txt, "Lee") || strings.Contains(txt, "Globexonly") || !strings.Contains(strings.ToLower(txt), "not found") {
			t.Errorf("the lead opening employee %d: %s", id, txt)
		}
	}
	b.open(fmt.Sprintf("/console/employees/%d", s.sara))
	if h := eval[string](b, `document.querySelector("main h2").innerText`); h != "Sara Salesonly" {
		t.Errorf("the lead's own employee's page: %q", h)
	}
}

// TestMarkupInjection: names and window titles holding markup render as
// text: the DOM has no element they would create, no script of theirs ran
// (no dialog, no global set), and the text is shown as it is.
func TestMarkupInjection(t *testing.T) {
	s := startStack(t)
	const (
		first = `<script>window.__pwned = "name"</script>`
		last  = `Markup<img src=x onerror="window.__pwned='img'">`
		title = `<img src=x onerror=alert(1)> & "quotes" <script>alert(2)</script>`
		sid   = "S-1-5-21-6666"
	)
	id := s.addEmployee(s.acmeTenant, s.engineering, "X-1", first, last, sid)
	s.addWindow(s.acme, sid, title, "evil.exe", 2*time.Minute)
	// Directory input is stored as given: what is shown must be exactly it.
	e, err := s.dir.GetEmployee(context.Background(), s.db, s.acmeTenant, id)
	if err != nil || e.FirstName != first || e.LastName != last {
		t.Fatalf("the employee was not stored as given: %+v %v", e, err)
	}

	b := newBrowser(t, s)
	b.signIn(hrEmail)
	injected := `document.querySelectorAll("main script, main img, main iframe, main svg, main object").length`
	for _, path := range []string{
		"/console/employees",
		"/console/employees?q=markup",
		"/console/employees?q=" + url.QueryEscape(`"><img src=x onerror=alert(3)>`),
		fmt.Sprintf("/console/employees/%d", id),
	} {
		b.open(path)
		b.waitFor("the page", `!!document.querySelector("main h1")`)
		if n := eval[int](b, injected); n != 0 {
			t.Errorf("%s: %d elements made of data", path, n)
		}
		if v := eval[string](b, `String(window.__pwned)`); v != "undefined" {
			t.Errorf("%s: injected script ran (window.__pwned = %s)", path, v)
		}
		if strings.Contains(path, "onerror") {
			if v := eval[string](b, `document.querySelector("#q").value`); v != `"><img src=x onerror=alert(3)>` {
				t.Errorf("the search field does not hold the query as text: %q", v)
			}
		} else if !strings.Contains(b.mainText(), first) {
			t.Errorf("%s does not show the name as text: %s", path, b.mainText())
		}
	}
	b.open(fmt.Sprintf("/console/employees/%d", id))
	txt := b.mainText()
	for _, want := range []string{first + " " + last, title} {
		if !strings.Contains(txt, want) {
			t.Errorf("the employee page does not show %q as text: %s", want, txt)
		}
	}
	b.checkPage("employee-markup")
}

// focusRing describes the focused element's focus indicator: its outline
// and the contrast of the outline's colour with the background it is
// drawn on (the nearest ancestor's opaque background: the outline sits
// outside the element, outline-offset away).
const focusRing = `(() => {
	const e = document.activeElement;
	const rgb = c => { const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null;
		const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number); return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
	const lum = c => { const f = v => { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
		return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
	let bg = {r: 255, g: 255, b: 255, a: 1};
	for (let n = e.parentElement; n; n = n.parentElement) {
		const c = rgb(getComputedStyle(n).backgroundColor);
		if (c && c.a > 0) { bg = c; break; }
	}
	const cs = getComputedStyle(e), oc = rgb(cs.outlineColor) || bg;
	const [hi, lo] = [lum(oc), lum(bg)].sort((a, b) => b - a);
	const name = e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + " " + JSON.stringify((e.innerText || e.value || e.getAttribute("href") || "").slice(0, 30));
	return {name, style: cs.outlineStyle, width: parseFloat(cs.outlineWidth) || 0, ratio: (hi + 0.05) / (lo + 0.05)};
})()`

// TestFocusVisible: on each page, Tab reaches every control in turn and
// each shows a focus indicator — an outline at least 2 px wide whose
// colour stands out 3:1 from the background behind it (WCAG 2.2 2.4.7
// and 1.4.11).
func TestFocusVisible(t *testing.T) {
	s := sharedStack(t)
	b := newBrowser(t, s)
	check := func(page string) {
		t.Helper()
		first := ""
		for i := range 40 {
			b.do("press Tab", chromedp.KeyEvent(kb.Tab))
			f := eval[struct {
				Name, Style  string
				Width, Ratio float64
			}](b, focusRing)
			if f.Name == first || strings.HasPrefix(f.Name, "body") {
				if i < 3 {
					t.Errorf("%s: Tab went round after %d controls", page, i)
				}
				return
			}
			if first == "" {
				first = f.Name
			}
			if f.Style == "none" || f.Width < 2 || f.Ratio < 3 {
				t.Errorf("%s: focused %s shows outline %s %.1f px at contrast %.2f:1, want a 2 px outline at 3:1", page, f.Name, f.Style, f.Width, f.Ratio)
			}
		}
		t.Errorf("%s: 40 presses of Tab did not go round", page)
	}
	b.open("/console/signin")
	check("signin")
	b.signIn(hrEmail)
	for _, p := range []string{"/console/", "/console/employees", fmt.Sprintf("/console/employees/%d", s.ann)} {
		b.open(p)
		check(p)
	}
}
