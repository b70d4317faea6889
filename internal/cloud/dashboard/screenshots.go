package dashboard

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/dashboard/dashboarddb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// Screenshots: metadata read through monitoring_read.screenshots in the
// caller's tenant transaction (the database narrows to the caller's
// organisation and scope: an employee sees their own, a department lead
// their subtree's), and signed, expiring download URLs of the file store.
// With a separate time-series store, both stores' views are read (the
// main one holds the fallback rows) and an id in both is answered once, as
// timeseries.Reader does.

func (a *api) screenshotRoutes() {
	a.handle("GET", "/api/v2/screenshots", everyone, a.listScreenshots)
	a.handle("GET", "/api/v2/screenshots/{id}", everyone, a.getScreenshot)
	a.handle("GET", "/api/v2/screenshots/{id}/download", everyone, a.downloadScreenshot)
}

// screenshot is a screenshot's metadata on the wire. EmployeeID is the
// employee whose windows_sid identity is the screenshot's user_sid (null
// when none the caller may see holds it).
type screenshot struct {
	ID             uuid.UUID `json:"id"`
	OrganizationID int64     `json:"organization_id"`
	Datetime       time.Time `json:"datetime"`
	EmployeeID     *int64    `json:"employee_id"`
	UserSID        string    `json:"user_sid"`
	ComputerUID    string    `json:"computer_uid"`
	FileSize       *int64    `json:"file_size"`
	SHA256         *string   `json:"sha256"`
}

// screenshotDownload is one screenshot's metadata with a fresh download
// URL and the time it stops working.
type screenshotDownload struct {
	screenshot
	URL          string    `json:"url"`
	URLExpiresAt time.Time `json:"url_expires_at"`
}

// screenshotCursor is the keyset of a page's last row.
type screenshotCursor struct {
	Datetime time.Time `json:"t"`
	ID       uuid.UUID `json:"id"`
}

// Bounds of a listing's time range when from or to is left out.
var (
	earliest = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	latest   = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
)

// maxUUID sorts after every id: the keyset of a first page.
var maxUUID = uuid.UUID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// queryTime reads an optional RFC 3339 time from the query (def when
// absent).
func queryTime(r *http.Request, name string, def time.Time) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return def, inParams(apperr.New(apperr.Invalid, name, "%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z", name))
	}
	return t, nil
}

// screenshotStore is the separate time-series store of the caller's role
// (nil when the time series live in the main database): read besides the
// caller's own pool, whose view holds the fallback rows.
func (a *api) screenshotStore(c *caller) *pgxpool.Pool {
	ts := a.tsDB
	if c.tenant.Role == postgres.AppAdmin {
		ts = a.adminTSDB
	}
	if ts == c.db {
		return nil
	}
	return ts
}

func (a *api) listScreenshots(w http.ResponseWriter, r *http.Request, c *caller) error {
	p, err := pageOf(r)
	if err != nil {
		return err
	}
	employee, err := queryInt64(r, "employee_id")
	if err != nil {
		return err
	}
	from, err := queryTime(r, "from", earliest)
	if err != nil {
		return err
	}
	to, err := queryTime(r, "to", latest)
	if err != nil {
		return err
	}
	if !from.Before(to) {
		return inParams(apperr.New(apperr.Invalid, "to", "to must be after from"))
	}
	params := dashboarddb.ListScreenshotsParams{FromTime: from, ToTime: to, BeforeTime: to, BeforeID: maxUUID, MaxRows: int32(p.Limit + 1)}
	if p.Cursor != "" {
		var k screenshotCursor
		if err := decodeCursor(p.Cursor, &k); err != nil {
			return err
		}
		if k.Datetime.IsZero() || k.ID == uuid.Nil {
			return badCursor()
		}
		params.BeforeTime, params.BeforeID = k.Datetime, k.ID
	}
	ctx := r.Context()
	var rows []dashboarddb.ListScreenshotsRow
	var employees map[sidKey]int64
	err = c.inTenant(ctx, func(tx pgx.Tx) error {
		q := dashboarddb.New(tx)
		if employee != 0 {
			sids, err := q.EmployeeWindowsSIDs(ctx, employee)
			if err != nil || len(sids) == 0 {
				return err // an employee without SIDs (or not visible) has no screenshots
			}
			params.ByUserSid, params.UserSids = true, sids
		}
		if rows, err = q.ListScreenshots(ctx, params); err != nil {
			return err
		}
		if ts := a.screenshotStore(c); ts != nil {
			var more []dashboarddb.ListScreenshotsRow
			if err := postgres.InTenant(ctx, ts, c.tenant, func(tx pgx.Tx) error {
				more, err = dashboarddb.New(tx).ListScreenshots(ctx, params)
				return err
			}); err != nil {
				return err
			}
			rows = mergeScreenshots(rows, more)
		}
		employees, err = employeesOf(ctx, q, rows, func(s dashboarddb.ListScreenshotsRow) sidKey { return sidKey{s.OrganizationID, s.UserSid} })
		return err
	})
	if err != nil {
		return err
	}
	rows, next := trimPage(rows, p.Limit, func(last dashboarddb.ListScreenshotsRow) any {
		return screenshotCursor{Datetime: last.Datetime, ID: last.ID}
	})
	out := make([]screenshot, 0, len(rows))
	for _, s := range rows {
		out = append(out, screenshot{ID: s.ID, OrganizationID: s.OrganizationID, Datetime: s.Datetime, EmployeeID: nonZero(employees[sidKey{s.OrganizationID, s.UserSid}]),
			UserSID: s.UserSid, ComputerUID: s.ComputerUid, FileSize: s.FileSize, SHA256: s.Sha256})
	}
	writeJSON(w, http.StatusOK, newList(out, next))
	return nil
}

// mergeScreenshots merges two pages of the same query (newest first),
// keeping an id of an organisation once.
func mergeScreenshots(a, b []dashboarddb.ListScreenshotsRow) []dashboarddb.ListScreenshotsRow {
	type key struct {
		org int64
		id  uuid.UUID
	}
	seen := map[key]bool{}
	var out []dashboarddb.ListScreenshotsRow
	for _, s := range append(a, b...) {
		if k := (key{s.OrganizationID, s.ID}); !seen[k] {
			seen[k] = true
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(x, y dashboarddb.ListScreenshotsRow) int {
		if c := y.Datetime.Compare(x.Datetime); c != 0 {
			return c
		}
		return bytes.Compare(y.ID[:], x.ID[:])
	})
	return out
}

// sidKey is a Windows SID in an organisation.
type sidKey struct {
	org int64
	sid string
}

// employeesOf maps the rows' SIDs to the employees the caller may see who
// hold them.
func employeesOf[T any](ctx context.Context, q *dashboarddb.Queries, rows []T, keyOf func(T) sidKey) (map[sidKey]int64, error) {
	var sids []string
	for _, r := range rows {
		if s := keyOf(r).sid; !slices.Contains(sids, s) {
			sids = append(sids, s)
		}
	}
	out := map[sidKey]int64{}
	if len(sids) == 0 {
		return out, nil
	}
	found, err := q.EmployeesByWindowsSID(ctx, sids)
	for _, f := range found {
		out[sidKey{f.OrganizationID, f.Value}] = f.EmployeeID
	}
	return out, err
}

// screenshotTx reads one screenshot the caller may see (404 otherwise)
// and the employee who holds its SID.
func (a *api) screenshotTx(r *http.Request, c *caller) (dashboarddb.GetScreenshotRow, int64, error) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return dashboarddb.GetScreenshotRow{}, 0, apperr.New(apperr.NotFound, "", "no such screenshot")
	}
	ctx := r.Context()
	var rows []dashboarddb.GetScreenshotRow
	var employee int64
	err = c.inTenant(ctx, func(tx pgx.Tx) error {
		q := dashboarddb.New(tx)
		if ts := a.screenshotStore(c); ts != nil {
			if err := postgres.InTenant(ctx, ts, c.tenant, func(tx pgx.Tx) error {
				rows, err = dashboarddb.New(tx).GetScreenshot(ctx, id)
				return err
			}); err != nil {
				return err
			}
		}
		if len(rows) == 0 {
			if rows, err = q.GetScreenshot(ctx, id); err != nil {
				return err
			}
		}
		if len(rows) == 0 {
			return nil
		}
		m, err := employeesOf(ctx, q, rows[:1], func(s dashboarddb.GetScreenshotRow) sidKey { return sidKey{s.OrganizationID, s.UserSid} })
		employee = m[sidKey{rows[0].OrganizationID, rows[0].UserSid}]
		return err
	})
	switch {
	case err != nil:
		return dashboarddb.GetScreenshotRow{}, 0, err
	case len(rows) == 0:
		return dashboarddb.GetScreenshotRow{}, 0, apperr.New(apperr.NotFound, "", "no such screenshot")
	case len(rows) > 1:
		// Only a platform administrator sees several organisations, and
		// an event id is unique within one organisation only.
		return dashboarddb.GetScreenshotRow{}, 0, apperr.New(apperr.Conflict, "", "several organisations hold a screenshot with this id; sign in to one of them")
	}
	return rows[0], employee, nil
}

// signScreenshot hands out a download URL of s's file, valid for the
// configured lifetime.
func (a *api) signScreenshot(r *http.Request, s dashboarddb.GetScreenshotRow) (string, time.Time, error) {
	if a.files == nil {
		return "", time.Time{}, apperr.New(apperr.Unavailable, "", "file storage is not configured on this API instance")
	}
	expires := time.Now().Add(a.fileURLTTL).Truncate(time.Second)
	u, err := a.files.URL(r.Context(), s.FilePath, a.fileURLTTL)
	if err != nil {
		return "", time.Time{}, apperr.Wrap(apperr.Internal, err, "the download URL could not be made")
	}
	return u, expires, nil
}

func (a *api) getScreenshot(w http.ResponseWriter, r *http.Request, c *caller) error {
	s, employee, err := a.screenshotTx(r, c)
	if err != nil {
		return err
	}
	u, exp, err := a.signScreenshot(r, s)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, screenshotDownload{
		screenshot: screenshot{ID: s.ID, OrganizationID: s.OrganizationID, Datetime: s.Datetime, EmployeeID: nonZero(employee),
			UserSID: s.UserSid, ComputerUID: s.ComputerUid, FileSize: s.FileSize, SHA256: s.Sha256},
		URL: u, URLExpiresAt: exp})
	return nil
}

// downloadScreenshot answers 302 to a fresh download URL of the file.
func (a *api) downloadScreenshot(w http.ResponseWriter, r *http.Request, c *caller) error {
	s, _, err := a.screenshotTx(r, c)
	if err != nil {
		return err
	}
	u, _, err := a.signScreenshot(r, s)
	if err != nil {
		return err
	}
	w.Header().Set("Location", u)
	w.WriteHeader(http.StatusFound)
	return nil
}
