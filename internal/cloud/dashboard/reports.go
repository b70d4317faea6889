package dashboard

import (
	"bufio"
	"encoding/json"
	"io"
	"iter"
	"net/http"
	"strconv"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/report"
)

// The reports (issue 15): per employee and day, a department's or the
// organisation's summary, attendance at the doors, attendance against
// computer activity, and the badges of no known employee — all computed by
// report.Engine, the one implementation staffctl report uses too. Every
// role may call them: the database narrows what each sees (an employee
// their own days, a department lead their subtree). JSON by default, CSV
// with format=csv; per-employee reports are streamed row by row, never
// built in memory.

// reportRoutes registers the report routes.
func (a *api) reportRoutes() {
	a.handle("GET", "/api/v2/reports/employee-days", everyone, a.reportEmployeeDays)
	a.handle("GET", "/api/v2/reports/summary", everyone, a.reportSummary)
	a.handle("GET", "/api/v2/reports/attendance", everyone, a.reportAttendance)
	a.handle("GET", "/api/v2/reports/attendance-vs-activity", everyone, a.reportReconcile)
	a.handle("GET", "/api/v2/reports/unknown-badges", everyone, a.reportUnknownBadges)
}

// reports returns the engine serving c: the platform administrator's pools
// for an ADMIN, the dashboard role's otherwise.
func (a *api) reports(c *caller) *report.Engine {
	if c.tenant.Role == postgres.AppAdmin {
		return a.adminReports
	}
	return a.orgReports
}

// maxReportEmployees bounds the employee_id list of one request.
const maxReportEmployees = 1000

// reportQuery reads from, to, employee_id (repeatable) and department_id.
func reportQuery(r *http.Request) (report.EmployeeDaysQuery, error) {
	q := r.URL.Query()
	out := report.EmployeeDaysQuery{Period: report.Period{From: q.Get("from"), To: q.Get("to")}}
	if out.From == "" {
		return out, inParams(apperr.New(apperr.Invalid, "from", "from is required: the first day, YYYY-MM-DD"))
	}
	if out.To == "" {
		return out, inParams(apperr.New(apperr.Invalid, "to", "to is required: the last day, YYYY-MM-DD"))
	}
	ids := q["employee_id"]
	if len(ids) > maxReportEmployees {
		return out, inParams(apperr.New(apperr.Invalid, "employee_id", "at most %d employee_id values", maxReportEmployees))
	}
	for _, v := range ids {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			return out, inParams(apperr.New(apperr.Invalid, "employee_id", "employee_id must be a positive integer, not %q", truncate(v, 40)))
		}
		out.EmployeeIDs = append(out.EmployeeIDs, id)
	}
	dep, err := queryInt64(r, "department_id")
	if err != nil {
		return out, err
	}
	if dep != 0 {
		out.DepartmentID = &dep
	}
	return out, nil
}

// reportFormat reads format: json (default) or csv.
func reportFormat(r *http.Request) (string, error) {
	switch f := r.URL.Query().Get("format"); f {
	case "", "json":
		return "json", nil
	case "csv":
		return "csv", nil
	default:
		return "", inParams(apperr.New(apperr.Invalid, "format", "format must be json or csv, not %q", truncate(f, 20)))
	}
}

func (a *api) reportEmployeeDays(w http.ResponseWriter, r *http.Request, c *caller) error {
	q, err := reportQuery(r)
	if err != nil {
		return err
	}
	return streamReport(a, w, r, "employee-days", a.reports(c).EmployeeDays(r.Context(), c.tenant, q), report.WriteEmployeeDaysCSV)
}

func (a *api) reportAttendance(w http.ResponseWriter, r *http.Request, c *caller) error {
	q, err := reportQuery(r)
	if err != nil {
		return err
	}
	return streamReport(a, w, r, "attendance", a.reports(c).Attendance(r.Context(), c.tenant, q), report.WriteAttendanceCSV)
}

func (a *api) reportReconcile(w http.ResponseWriter, r *http.Request, c *caller) error {
	q, err := reportQuery(r)
	if err != nil {
		return err
	}
	return streamReport(a, w, r, "attendance-vs-activity", a.reports(c).Reconcile(r.Context(), c.tenant, q), report.WriteMismatchesCSV)
}

func (a *api) reportSummary(w http.ResponseWriter, r *http.Request, c *caller) error {
	q, err := reportQuery(r)
	if err != nil {
		return err
	}
	if len(q.EmployeeIDs) > 0 {
		return inParams(apperr.New(apperr.Invalid, "employee_id", "a summary covers a department (department_id) or the organisation, not chosen employees"))
	}
	format, err := reportFormat(r)
	if err != nil {
		return err
	}
	s, err := a.reports(c).Summary(r.Context(), c.tenant, report.SummaryQuery{Period: q.Period, DepartmentID: q.DepartmentID})
	if err != nil {
		return inParams(err)
	}
	if format == "csv" {
		csvHeaders(w, "summary")
		return report.WriteSummaryCSV(w, s)
	}
	writeJSON(w, http.StatusOK, s)
	return nil
}

func (a *api) reportUnknownBadges(w http.ResponseWriter, r *http.Request, c *caller) error {
	q, err := reportQuery(r)
	if err != nil {
		return err
	}
	badges, err := a.reports(c).UnknownBadges(r.Context(), c.tenant, q.Period)
	if err != nil {
		return inParams(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": badges})
	return nil
}

// csvHeaders starts a CSV download named name.csv.
func csvHeaders(w http.ResponseWriter, name string) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
}

// streamReport answers a per-employee report, JSON ({"items": [...]}) or
// CSV, written as the rows come. The first row is read before anything
// is written, so a refusal (a bad period, an unknown department) is an
// ordinary error answer; an error after the first byte aborts the
// connection (http.ErrAbortHandler), so that a client never takes a
// truncated report for a whole one.
func streamReport[T any](a *api, w http.ResponseWriter, r *http.Request, name string, rows iter.Seq2[T, error], writeCSV func(io.Writer, iter.Seq2[T, error]) error) error {
	format, err := reportFormat(r)
	if err != nil {
		return err
	}
	next, stop := iter.Pull2(rows)
	defer stop()
	first, err, more := next()
	if more && err != nil {
		return inParams(err)
	}
	rest := func(yield func(T, error) bool) {
		if !more || !yield(first, nil) {
			return
		}
		for {
			v, err, ok := next()
			if !ok || !yield(v, err) {
				return
			}
		}
	}
	abort := func(err error) {
		a.logger.WarnContext(r.Context(), "report aborted after its first byte", "report", name, "err", err)
		panic(http.ErrAbortHandler)
	}
	if format == "csv" {
		csvHeaders(w, name)
		w.WriteHeader(http.StatusOK)
		if err := writeCSV(flushWriter{w}, rest); err != nil {
			abort(err)
		}
		return nil
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(flushWriter{w}, 32<<10)
	enc := json.NewEncoder(bw)
	_, _ = bw.WriteString(`{"items":[`)
	n := 0
	for v, err := range rest {
		if err != nil {
			abort(err)
		}
		if n > 0 {
			_ = bw.WriteByte(',')
		}
		if err := enc.Encode(v); err != nil {
			abort(err)
		}
		n++
	}
	_, _ = bw.WriteString("]}\n")
	if err := bw.Flush(); err != nil {
		abort(err)
	}
	return nil
}

// flushWriter flushes the response after every write it passes on, so
// that a streamed report reaches the client as it is computed.
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = http.NewResponseController(f.w).Flush()
	}
	return n, err
}
