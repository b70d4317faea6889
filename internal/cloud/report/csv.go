package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"iter"
	"strconv"
	"strings"
	"time"
)

// csvBatch is how many rows a CSV writer buffers before it flushes (and
// flushes w too when w can: an http.ResponseWriter streams).
const csvBatch = 200

// csvWriter writes rows and flushes per batch.
type csvWriter struct {
	w    io.Writer
	c    *csv.Writer
	rows int
}

func newCSV(w io.Writer, header []string) (*csvWriter, error) {
	cw := &csvWriter{w: w, c: csv.NewWriter(w)}
	if err := cw.c.Write(header); err != nil {
		return nil, fmt.Errorf("report: csv: %w", err)
	}
	return cw, nil
}

func (cw *csvWriter) write(rec []string) error {
	if err := cw.c.Write(rec); err != nil {
		return fmt.Errorf("report: csv: %w", err)
	}
	if cw.rows++; cw.rows%csvBatch == 0 {
		return cw.flush()
	}
	return nil
}

func (cw *csvWriter) flush() error {
	cw.c.Flush()
	if err := cw.c.Error(); err != nil {
		return fmt.Errorf("report: csv: %w", err)
	}
	if f, ok := cw.w.(interface{ Flush() }); ok {
		f.Flush()
	}
	return nil
}

func csvTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.Format(time.RFC3339)
}

func csvInt(v int64) string { return strconv.FormatInt(v, 10) }

func csvOptInt(v *int64) string {
	if v == nil {
		return ""
	}
	return csvInt(*v)
}

// csvUsages is "name=seconds;…".
func csvUsages(us []Usage) string {
	parts := make([]string, len(us))
	for i, u := range us {
		parts[i] = u.Name + "=" + csvInt(u.Seconds)
	}
	return strings.Join(parts, ";")
}

// WriteEmployeeDaysCSV streams rows as CSV (one line per employee-day),
// flushing every batch of rows; the first error of rows is returned.
func WriteEmployeeDaysCSV(w io.Writer, rows iter.Seq2[EmployeeDay, error]) error {
	cw, err := newCSV(w, []string{"employee_id", "employee_number", "name", "department_id", "date", "first_activity", "last_activity",
		"occupied_seconds", "active_seconds", "idle_seconds", "productive_seconds", "neutral_seconds", "unproductive_seconds",
		"top_applications", "top_sites", "sessions"})
	if err != nil {
		return err
	}
	for d, err := range rows {
		if err != nil {
			return err
		}
		sessions := make([]string, len(d.Sessions))
		for i, s := range d.Sessions {
			sessions[i] = s.Type + "@" + s.At.Format(time.RFC3339)
		}
		if err := cw.write([]string{csvInt(d.EmployeeID), d.EmployeeNumber, d.Name, csvOptInt(d.DepartmentID), d.Date,
			csvTime(d.FirstActivity), csvTime(d.LastActivity), csvInt(d.OccupiedSeconds), csvInt(d.ActiveSeconds), csvInt(d.IdleSeconds),
			csvInt(d.ProductiveSeconds), csvInt(d.NeutralSeconds), csvInt(d.UnproductiveSeconds),
			csvUsages(d.TopApplications), csvUsages(d.TopSites), strings.Join(sessions, ";")}); err != nil {
			return err
		}
	}
	return cw.flush()
}

// WriteAttendanceCSV streams attendance rows as CSV.
func WriteAttendanceCSV(w io.Writer, rows iter.Seq2[AttendanceDay, error]) error {
	cw, err := newCSV(w, []string{"employee_id", "employee_number", "name", "department_id", "date", "scheduled", "first_in", "last_out",
		"on_site_seconds", "late", "early_departure", "absent", "badges"})
	if err != nil {
		return err
	}
	for d, err := range rows {
		if err != nil {
			return err
		}
		if err := cw.write([]string{csvInt(d.EmployeeID), d.EmployeeNumber, d.Name, csvOptInt(d.DepartmentID), d.Date,
			strconv.FormatBool(d.Scheduled), csvTime(d.FirstIn), csvTime(d.LastOut), csvInt(d.OnSiteSeconds),
			strconv.FormatBool(d.Late), strconv.FormatBool(d.EarlyLeave), strconv.FormatBool(d.Absent), strconv.Itoa(d.Badges)}); err != nil {
			return err
		}
	}
	return cw.flush()
}

// WriteMismatchesCSV streams attendance-against-activity rows as CSV.
func WriteMismatchesCSV(w io.Writer, rows iter.Seq2[Mismatch, error]) error {
	cw, err := newCSV(w, []string{"employee_id", "employee_number", "name", "date", "kind", "first_badge", "first_activity"})
	if err != nil {
		return err
	}
	for m, err := range rows {
		if err != nil {
			return err
		}
		if err := cw.write([]string{csvInt(m.EmployeeID), m.EmployeeNumber, m.Name, m.Date, m.Kind, csvTime(m.FirstBadge), csvTime(m.FirstActivity)}); err != nil {
			return err
		}
	}
	return cw.flush()
}

// WriteSummaryCSV writes a summary's employee lines (ranked) as CSV.
func WriteSummaryCSV(w io.Writer, s Summary) error {
	cw, err := newCSV(w, []string{"rank", "employee_id", "employee_number", "name", "department_id", "active_seconds", "idle_seconds",
		"occupied_seconds", "productive_seconds", "neutral_seconds", "unproductive_seconds", "days_active"})
	if err != nil {
		return err
	}
	for _, e := range s.Employees {
		if err := cw.write([]string{strconv.Itoa(e.Rank), csvInt(e.EmployeeID), e.EmployeeNumber, e.Name, csvOptInt(e.DepartmentID),
			csvInt(e.ActiveSeconds), csvInt(e.IdleSeconds), csvInt(e.OccupiedSeconds), csvInt(e.ProductiveSeconds),
			csvInt(e.NeutralSeconds), csvInt(e.UnproductiveSeconds), strconv.Itoa(e.DaysActive)}); err != nil {
			return err
		}
	}
	return cw.flush()
}
