package consolebrowser

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestUserLanguage: the language is the user's. A user whose stored
// language is Russian signs in from an English browser and sees Russian;
// they switch to Uzbek on their profile (a CSRF-protected form), which is
// stored on the user: a fresh browser signing in shows Uzbek at once. A
// value that is no language is refused, naming the field.
func TestUserLanguage(t *testing.T) {
	s := startStack(t)
	ctx := context.Background()
	if _, err := s.admin.Exec(ctx, `UPDATE users SET language = 'ru' WHERE email = $1`, leadEmail); err != nil {
		t.Fatal(err)
	}
	stored := func() string {
		var l *string
		if err := s.admin.QueryRow(ctx, `SELECT language FROM users WHERE email = $1`, leadEmail).Scan(&l); err != nil {
			t.Fatal(err)
		}
		if l == nil {
			return ""
		}
		return *l
	}

	b := newBrowser(t, s)
	b.open("/console/signin")
	if l := eval[string](b, `document.documentElement.lang`); l != "en" {
		t.Fatalf("the sign-in page of an English browser is in %q", l)
	}
	b.signIn(leadEmail)
	if l, h := eval[string](b, `document.documentElement.lang`), eval[string](b, `document.querySelector("main h1").innerText`); l != "ru" || h != "Обзор" {
		t.Fatalf("after the sign-in of a user with language ru the page is in %q, heading %q; want ru, Обзор", l, h)
	}

	b.clickAndLoad("#profile-link")
	if h := eval[string](b, `document.querySelector("main h1").innerText`); h != "Профиль" {
		t.Errorf("the profile's heading is %q, want Профиль", h)
	}
	if v := eval[string](b, `document.querySelector("#language").value`); v != "ru" {
		t.Errorf("the profile shows the stored language %q, want ru", v)
	}
	b.checkPage("profile-ru")
	b.do("choose Uzbek", chromedp.SetValue(chromedp.CSS("#language"), "uz"))
	b.clickAndLoad("#profile-save")
	if l := eval[string](b, `document.documentElement.lang`); l != "uz" || !eval[bool](b, `!!document.querySelector("#profile-saved")`) {
		t.Fatalf("after saving Uzbek the page is in %q (saved note: %v)", l, eval[bool](b, `!!document.querySelector("#profile-saved")`))
	}
	if got := stored(); got != "uz" {
		t.Fatalf("the stored language is %q after saving uz", got)
	}

	// A fresh browser (no cookie, English): the user's language at once.
	b2 := newBrowser(t, s)
	b2.signIn(leadEmail)
	if l, h := eval[string](b2, `document.documentElement.lang`), eval[string](b2, `document.querySelector("main h1").innerText`); l != "uz" || h != "Umumiy koʻrinish" {
		t.Fatalf("a fresh browser's sign-in shows %q, heading %q; want uz", l, h)
	}

	// Another user's language is untouched (the function writes the
	// caller's row only).
	var hr *string
	if err := s.admin.QueryRow(ctx, `SELECT language FROM users WHERE email = $1`, hrEmail).Scan(&hr); err != nil || hr != nil {
		t.Errorf("the HR manager's language is %v (%v), want none", hr, err)
	}

	// A value that is no language: refused, naming the field; nothing stored.
	b2.open("/console/profile")
	eval[bool](b2, `(() => { const o = document.createElement("option"); o.value = "xx"; o.textContent = "xx";
		const s = document.querySelector("#language"); s.appendChild(o); s.value = "xx"; return true; })()`)
	b2.clickAndLoad("#profile-save")
	if msg := eval[string](b2, `(document.querySelector("main .error") || {innerText: ""}).innerText`); !strings.Contains(msg, "language") {
		t.Errorf("saving language xx answered %q, want an error naming the field", msg)
	}
	if got := stored(); got != "uz" {
		t.Errorf("the stored language is %q after a refused value, want uz", got)
	}

	// Back to the browser's choice (empty): stored as none.
	b2.open("/console/profile")
	b2.do("choose the browser's", chromedp.SetValue(chromedp.CSS("#language"), ""))
	b2.clickAndLoad("#profile-save")
	if got, l := stored(), eval[string](b2, `document.documentElement.lang`); got != "" || l != "en" {
		t.Errorf("after choosing the browser's language the stored one is %q and the page %q, want none and en", got, l)
	}
}
