package console

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
)

// The reports' pages: a summary over a period (the organisation's or a
// department's, in the organisation's time zone, as report.Engine
// computes it for the API's /api/v2/reports/summary) with a server-drawn
// SVG bar chart, attendance at the doors, and CSV exports that are the
// API's own CSV answers streamed through byte for byte.

// reportRowsShown bounds the rows a report page shows (the CSV export has
// them all).
const reportRowsShown = 200

// chartBars is how many employees the summary's chart shows.
const chartBars = 15

// reportKinds are the reports the CSV export offers, by their API names
// (those the API answers as CSV).
var reportKinds = []string{"summary", "employee-days", "attendance", "attendance-vs-activity"}

// reportForm is the period form's values.
type reportForm struct {
	From, To     string
	DepartmentID string
	Zone         string
}

// Query is the form as the API's query (from, to, department_id).
func (f reportForm) Query() url.Values {
	q := url.Values{"from": {f.From}, "to": {f.To}}
	if f.DepartmentID != "" {
		q.Set("department_id", f.DepartmentID)
	}
	return q
}

// ExportURL is the console's CSV export link of report kind.
func (f reportForm) ExportURL(kind string) string {
	q := f.Query()
	q.Set("report", kind)
	return Prefix + "reports/export?" + q.Encode()
}

// reportFormOf reads the period form: the last seven days (today in the
// organisation's zone included) by default.
func reportFormOf(r *http.Request, loc *time.Location, now time.Time) reportForm {
	q := r.URL.Query()
	today := now.In(loc)
	f := reportForm{From: q.Get("from"), To: q.Get("to"), DepartmentID: q.Get("department_id"), Zone: loc.String()}
	if f.To == "" {
		f.To = today.Format(time.DateOnly)
	}
	if f.From == "" {
		f.From = today.AddDate(0, 0, -6).Format(time.DateOnly)
	}
	return f
}

// summaryTotals are a summary's sums as the API answers them.
type summaryTotals struct {
	ActiveSeconds       int64 `json:"active_seconds"`
	IdleSeconds         int64 `json:"idle_seconds"`
	ProductiveSeconds   int64 `json:"productive_seconds"`
	NeutralSeconds      int64 `json:"neutral_seconds"`
	UnproductiveSeconds int64 `json:"unproductive_seconds"`
	DaysActive          int   `json:"days_active"`
}

// summaryAnswer is the API's summary.
type summaryAnswer struct {
	TimeZone  string        `json:"time_zone"`
	Totals    summaryTotals `json:"totals"`
	Employees []struct {
		Rank           int    `json:"rank"`
		EmployeeNumber string `json:"employee_number"`
		Name           string `json:"name"`
		summaryTotals
	} `json:"employees"`
	Departments []struct {
		Rank      int    `json:"rank"`
		Name      string `json:"name"`
		Employees int    `json:"employees"`
		summaryTotals
	} `json:"departments"`
}

// bar is one bar of the chart: its label, value and geometry.
type bar struct {
	Label    string
	Value    string
	Y, Width int
}

// chart is a horizontal bar chart drawn as SVG by the template.
type chart struct {
	Bars          []bar
	Height, Width int
}

// reportsData is the reports page's data.
type reportsData struct {
	Form      reportForm
	Kinds     []string
	Summary   *summaryAnswer
	Chart     chart
	Truncated bool
}

// Hours formats seconds as hours and minutes ("12:05").
func (reportsData) Hours(seconds int64) string {
	return fmt.Sprintf("%d:%02d", seconds/3600, seconds%3600/60)
}

// barChart draws the employees' active time, the longest bar 400 wide.
func barChart(s *summaryAnswer, hours func(int64) string) chart {
	const rowHeight, barSpace = 22, 400
	var c chart
	n := min(len(s.Employees), chartBars)
	var top int64
	for _, e := range s.Employees[:n] {
		top = max(top, e.ActiveSeconds)
	}
	for i, e := range s.Employees[:n] {
		w := 0
		if top > 0 {
			w = int(e.ActiveSeconds * barSpace / top)
		}
		c.Bars = append(c.Bars, bar{Label: e.Name, Value: hours(e.ActiveSeconds), Y: i * rowHeight, Width: w})
	}
	c.Height, c.Width = n*rowHeight, barSpace+260
	return c
}

// reports shows the summary of the period (GET /api/v2/reports/summary)
// with its chart and the CSV export links.
func (c *Console) reports(w http.ResponseWriter, r *http.Request, p Principal) error {
	loc, err := c.zone(r, p)
	if err != nil {
		return err
	}
	d := reportsData{Form: reportFormOf(r, loc, c.d.Now()), Kinds: reportKinds}
	var s summaryAnswer
	if err := c.callAPI(r, p, http.MethodGet, "/api/v2/reports/summary", d.Form.Query(), nil, &s); err != nil {
		if code := apperr.CodeOf(err); code != apperr.Invalid && code != apperr.Malformed && code != apperr.NotFound {
			return err
		}
		v := c.newView(w, r, &p, "reports.title")
		v.Loc, v.Data = loc, d
		c.render(w, r, http.StatusUnprocessableEntity, "reports", v, err)
		return nil
	}
	if s.TimeZone != "" {
		d.Form.Zone = s.TimeZone
	}
	d.Chart = barChart(&s, d.Hours)
	if len(s.Employees) > reportRowsShown {
		s.Employees, d.Truncated = s.Employees[:reportRowsShown], true
	}
	if len(s.Departments) > reportRowsShown {
		s.Departments, d.Truncated = s.Departments[:reportRowsShown], true
	}
	d.Summary = &s
	v := c.newView(w, r, &p, "reports.title")
	v.Loc, v.Data = loc, d
	c.render(w, r, http.StatusOK, "reports", v, nil)
	return nil
}

// attendanceDay is a day of the API's attendance report.
type attendanceDay struct {
	EmployeeNumber string     `json:"employee_number"`
	Name           string     `json:"name"`
	Date           string     `json:"date"`
	Scheduled      bool       `json:"scheduled"`
	FirstIn        *time.Time `json:"first_in"`
	LastOut        *time.Time `json:"last_out"`
	OnSiteSeconds  int64      `json:"on_site_seconds"`
	Late           bool       `json:"late"`
	EarlyLeave     bool       `json:"early_departure"`
	Absent         bool       `json:"absent"`
	Badges         int        `json:"badges"`
}

// attendanceData is the attendance page's data.
type attendanceData struct {
	reportsData
	Days []attendanceDay
}

// attendance shows the period's attendance at the doors (GET
// /api/v2/reports/attendance), the first rows of it, and its CSV export.
func (c *Console) attendance(w http.ResponseWriter, r *http.Request, p Principal) error {
	loc, err := c.zone(r, p)
	if err != nil {
		return err
	}
	d := attendanceData{reportsData: reportsData{Form: reportFormOf(r, loc, c.d.Now()), Kinds: reportKinds}}
	var l apiList[attendanceDay]
	status := http.StatusOK
	err = c.callAPI(r, p, http.MethodGet, "/api/v2/reports/attendance", d.Form.Query(), nil, &l)
	if code := apperr.CodeOf(err); err != nil && code != apperr.Invalid && code != apperr.Malformed && code != apperr.NotFound {
		return err
	} else if err != nil {
		status = http.StatusUnprocessableEntity
	}
	d.Days = l.Items
	if len(d.Days) > reportRowsShown {
		d.Days, d.Truncated = d.Days[:reportRowsShown], true
	}
	v := c.newView(w, r, &p, "attendance.title")
	v.Loc, v.Data = loc, d
	c.render(w, r, status, "attendance", v, err)
	return nil
}

// exportReport streams a report's CSV as the API writes it
// (GET /api/v2/reports/{report}?format=csv); a refusal is a page.
func (c *Console) exportReport(w http.ResponseWriter, r *http.Request, p Principal) error {
	kind := r.URL.Query().Get("report")
	if !slices.Contains(reportKinds, kind) {
		return apperr.New(apperr.Invalid, "report", "report: must be one of %v", reportKinds)
	}
	q := url.Values{"format": {"csv"}}
	for _, name := range []string{"from", "to", "department_id"} {
		if v := r.URL.Query().Get(name); v != "" {
			q.Set(name, v)
		}
	}
	// An employee's day exports their rows only (the API checks the ids).
	if ids := r.URL.Query()["employee_id"]; len(ids) > 0 {
		q["employee_id"] = ids
	}
	return c.streamAPI(w, r, p, "/api/v2/reports/"+kind, q)
}
