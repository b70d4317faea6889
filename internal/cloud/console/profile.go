package console

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/console/consoledb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// Each user's language (migration 00041, users.language): chosen on the
// profile page (or with the header's switcher while signed in), stored
// on the user, and applied at every sign-in, in any browser. The pages
// read the language from the language cookie, which the sign-in and each
// change set from the stored choice, so that no page pays a query for it.

// profileData is the profile page's data.
type profileData struct {
	// Stored is the user's stored language ("" : the browser's choice).
	Stored string
	// Saved reports a change just made.
	Saved bool
}

// userLanguage reads p's stored language ("" when none).
func (c *Console) userLanguage(ctx context.Context, p Principal) (Lang, error) {
	var l *string
	err := postgres.InTenant(ctx, p.DB, p.Tenant, func(tx pgx.Tx) error {
		var err error
		l, err = consoledb.New(tx).UserLanguage(ctx)
		if err == pgx.ErrNoRows {
			return nil
		}
		return err
	})
	if err != nil || l == nil {
		return "", err
	}
	return parseLang(*l), nil
}

// storeLanguage stores l ("" : the browser's choice) as p's language.
func (c *Console) storeLanguage(ctx context.Context, p Principal, l Lang) error {
	var arg *string
	if l != "" {
		s := string(l)
		arg = &s
	}
	return postgres.InTenant(ctx, p.DB, p.Tenant, func(tx pgx.Tx) error {
		ok, err := consoledb.New(tx).SetUserLanguage(ctx, arg)
		if err != nil {
			return err
		}
		if !ok {
			return apperr.New(apperr.NotFound, "", "no such user")
		}
		return nil
	})
}

// setLangCookie sets the language cookie to l, or removes it ("").
func (c *Console) setLangCookie(w http.ResponseWriter, r *http.Request, l Lang) {
	if l == "" {
		ck := c.cookie(r, langCookie, "", time.Unix(1, 0))
		ck.MaxAge = -1
		http.SetCookie(w, ck)
		return
	}
	http.SetCookie(w, c.cookie(r, langCookie, string(l), c.d.Now().AddDate(1, 0, 0)))
}

// applyUserLanguage sets the language cookie from the stored language of
// the session that accessToken opened (nothing when the user has none).
func (c *Console) applyUserLanguage(w http.ResponseWriter, r *http.Request, accessToken string) {
	p, err := c.d.Authenticate(r.Context(), accessToken)
	if err != nil {
		c.d.Logger.Warn("console: the new session's language", "err", err)
		return
	}
	l, err := c.userLanguage(r.Context(), p)
	if err != nil {
		c.d.Logger.Warn("console: the user's language", "err", err)
		return
	}
	if l != "" {
		c.setLangCookie(w, r, l)
	}
}

// profile shows the user's language choice.
func (c *Console) profile(w http.ResponseWriter, r *http.Request, p Principal) error {
	l, err := c.userLanguage(r.Context(), p)
	if err != nil {
		return err
	}
	v := c.newView(w, r, &p, "profile.title")
	v.Data = profileData{Stored: string(l), Saved: r.URL.Query().Get("saved") != ""}
	c.render(w, r, http.StatusOK, "profile", v, nil)
	return nil
}

// saveProfile stores the chosen language ("" : the browser's) on the user
// and in the cookie.
func (c *Console) saveProfile(w http.ResponseWriter, r *http.Request, p Principal) error {
	l := Lang(r.PostFormValue("language"))
	if l != "" && !slices.Contains(languages, l) {
		return apperr.New(apperr.Invalid, "language", "language: must be one of en, ru, uz, or empty for the browser's")
	}
	if err := c.storeLanguage(r.Context(), p, l); err != nil {
		return err
	}
	c.setLangCookie(w, r, l)
	http.Redirect(w, r, Prefix+"profile?saved=1", http.StatusSeeOther)
	return nil
}
