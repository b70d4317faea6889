package report_test

import (
	"bytes"
	"encoding/csv"
	"errors"
	"iter"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/report"
)

// flushCounter counts the flushes a CSV writer asks of its destination.
type flushCounter struct {
	bytes.Buffer
	flushes int
}

func (f *flushCounter) Flush() { f.flushes++ }

// TestCSV: one header and one line per row, flushed per batch, the
// iterator's error returned.
func TestCSV(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 29, 8, 0, 0, 0, time.UTC)
	rows := func(n int, fail error) iter.Seq2[report.EmployeeDay, error] {
		return func(yield func(report.EmployeeDay, error) bool) {
			for i := range n {
				d := report.EmployeeDay{EmployeeID: int64(i), Name: "A, \"B\"", Date: "2026-03-29", FirstActivity: &at, ActiveSeconds: 60,
					TopApplications: []report.Usage{{Name: "code.exe", Seconds: 60}}, Sessions: []report.SessionEvent{{Type: "login", At: at}}}
				if !yield(d, nil) {
					return
				}
			}
			if fail != nil {
				yield(report.EmployeeDay{}, fail)
			}
		}
	}
	var out flushCounter
	if err := report.WriteEmployeeDaysCSV(&out, rows(450, nil)); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(out.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 451 || recs[0][0] != "employee_id" || recs[1][2] != `A, "B"` || recs[1][5] != "2026-03-29T08:00:00Z" || recs[1][13] != "code.exe=60" {
		t.Errorf("csv: %d records, first %v", len(recs), recs[1])
	}
	if out.flushes != 3 { // after 200, 400 and at the end
		t.Errorf("%d flushes, want 3", out.flushes)
	}
	boom := errors.New("boom")
	if err := report.WriteEmployeeDaysCSV(&bytes.Buffer{}, rows(3, boom)); !errors.Is(err, boom) {
		t.Errorf("error %v, want boom", err)
	}
}
