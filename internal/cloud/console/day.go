package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/console/consoledb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// An employee's day: the day's figures as the employee-days report has
// them (the API's own route, JSON), the day's application windows in
// order (one statement in the caller's tenant context), and the day's CSV
// export, which is the API's CSV answer streamed as it is.

// dayWindowsShown is how many of a day's windows its timeline lists.
const dayWindowsShown = 200

// dayFigures is the employee-days report's row of the day (the fields the
// page shows).
type dayFigures struct {
	FirstActivity   *time.Time `json:"first_activity"`
	LastActivity    *time.Time `json:"last_activity"`
	ActiveSeconds   int64      `json:"active_seconds"`
	IdleSeconds     int64      `json:"idle_seconds"`
	OccupiedSeconds int64      `json:"occupied_seconds"`
}

// dayData is the day page's data.
type dayData struct {
	employeeData
	// Date is the day shown (YYYY-MM-DD in the organisation's zone).
	Date string
	// Figures is the report's row (nil: no activity that day).
	Figures *dayFigures
	Windows []consoledb.DayWindowsRow
}

// ExportURL is the day's CSV export (the API's employee-days CSV for this
// employee and day).
func (d dayData) ExportURL() string {
	q := url.Values{"report": {"employee-days"}, "from": {d.Date}, "to": {d.Date},
		"employee_id": {strconv.FormatInt(d.Employee.ID, 10)}}
	return Prefix + "reports/export?" + q.Encode()
}

// Seconds formats an *int32 of seconds as h:mm (0:00 when nil).
func (d dayData) Seconds(s *int32) string {
	if s == nil {
		return d.Duration(0)
	}
	return d.Duration(int64(*s))
}

// employeeDay shows one employee's day (?date=, default today in the
// organisation's zone).
func (c *Console) employeeDay(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return apperr.New(apperr.NotFound, "", "no such employee")
	}
	ctx := r.Context()
	e, err := c.d.Directory.GetEmployee(ctx, p.DB, p.Tenant, id)
	if err != nil {
		return err
	}
	loc, err := c.zone(r, p)
	if err != nil {
		return err
	}
	d := dayData{employeeData: employeeData{Employee: e}}
	day := c.d.Now().In(loc)
	if s := r.URL.Query().Get("date"); s != "" {
		if day, err = time.ParseInLocation(time.DateOnly, s, loc); err != nil {
			return apperr.New(apperr.Invalid, "date", "date: must be a day, YYYY-MM-DD")
		}
	}
	start := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, loc)
	d.Date, d.Since = start.Format(time.DateOnly), start

	var rep apiList[dayFigures]
	q := url.Values{"from": {d.Date}, "to": {d.Date}, "employee_id": {strconv.FormatInt(id, 10)}}
	if err := c.callAPI(r, p, http.MethodGet, "/api/v2/reports/employee-days", q, nil, &rep); err != nil {
		return err
	}
	if len(rep.Items) > 0 {
		d.Figures = &rep.Items[0]
	}
	var sids []string
	for _, id := range e.Identities {
		if id.Kind == "windows_sid" {
			sids = append(sids, id.Value)
		}
	}
	if len(sids) > 0 {
		err = postgres.InTenant(ctx, p.DB, p.Tenant, func(tx pgx.Tx) error {
			var err error
			d.Windows, err = consoledb.New(tx).DayWindows(ctx, consoledb.DayWindowsParams{Sids: sids, DayStart: start,
				DayEnd: start.AddDate(0, 0, 1), MaxRows: dayWindowsShown})
			if err != nil {
				return fmt.Errorf("the day's windows: %w", err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	v := c.newView(w, r, &p, "day.title")
	v.Loc, v.Data = loc, d
	c.render(w, r, http.StatusOK, "day", v, nil)
	return nil
}
