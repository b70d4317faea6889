package dataset

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/report"
)

// TestGeneratedReports: what the generator writes is what the reports
// need — the rollup maintainer works off every dirty key it left, and the
// HR report of the generated days is the same from the rollups as from
// the raw rows, with activity, categories, sessions and badges in it.
func TestGeneratedReports(t *testing.T) {
	ctx := context.Background()
	db := pg.NewDatabase(t)
	d := &testDB{deps: Deps{Owner: pg.Pool(t, db.AdminURL, 2), Platform: pg.Pool(t, db.PlatformAdminURL, 2)}}
	res, err := Generate(ctx, d.deps, small("rep", 11))
	if err != nil {
		t.Fatal(err)
	}
	ingest := pg.Pool(t, db.IngestURL, 2)
	dash := pg.Pool(t, db.DashboardURL, 2)

	m := report.NewMaintainer(ingest, nil, report.MaintainerConfig{SidsPerClaim: 50})
	var hours int
	for {
		r, err := m.RunOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r.Hours == 0 {
			break
		}
		hours += r.Hours
	}
	if hours != res.DirtyHours {
		t.Errorf("the maintainer worked off %d dirty hours, the generator left %d", hours, res.DirtyHours)
	}

	hr := postgres.Tenant{OrganizationID: res.OrganizationID, Role: postgres.AppHR, Actor: "test"}
	q := report.EmployeeDaysQuery{Period: report.Period{From: res.From, To: res.To}}
	collect := func(useRollups bool) []report.EmployeeDay {
		var out []report.EmployeeDay
		for day, err := range report.New(dash, nil, report.Options{UseRollups: useRollups, Now: time.Now}).EmployeeDays(ctx, hr, q) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, day)
		}
		return out
	}
	raw, rolled := collect(false), collect(true)
	a, _ := json.Marshal(raw)
	b, _ := json.Marshal(rolled)
	if string(a) != string(b) {
		t.Errorf("the report from the rollups differs from the raw one")
	}
	var active, productive, unproductive, sessions int64
	for _, day := range raw {
		active += day.ActiveSeconds
		productive += day.ProductiveSeconds
		unproductive += day.UnproductiveSeconds
		sessions += int64(len(day.Sessions))
	}
	if len(raw) != 20*4 || active == 0 || productive == 0 || unproductive == 0 || sessions == 0 {
		t.Errorf("%d employee-days, %d s active, %d s productive, %d s unproductive, %d session events", len(raw), active, productive, unproductive, sessions)
	}
}
