package report_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// lcg is the tests' deterministic generator (math/rand is for backoff and
// the simulator only).
type lcg uint64

func (r *lcg) intn(n int) int {
	*r = *r*6364136223846793005 + 1442695040888963407
	return int(uint64(*r>>33) % uint64(n))
}

// row is one generated activity row (window or site).
type row struct {
	id      uuid.UUID
	org     int64
	kind    string // window, site
	sid     string
	process string
	url     string
	at      time.Time
	dur     int // seconds; -1: NULL
	schema  string
	both    bool // also in the other schema, same id (mid re-sync)
}

// sessionRow is one generated user_sessions row.
type sessionRow struct {
	id       uuid.UUID
	sid      string
	computer string
	typ      string
	at       time.Time
}

// badgeRow is one generated device event.
type badgeRow struct {
	id        uuid.UUID
	number    string // "" = NULL
	card      string // "" = NULL
	direction string // "" = NULL
	at        time.Time
}

// person is one generated employee.
type person struct {
	id      int64
	number  string
	dept    int64
	sids    []string
	cards   []string
	numbers []string // identities of kind employee_number
	status  string
	name    string
}

// dataset is organisation A's generated world (and B's noise).
type dataset struct {
	db                    *pgtest.Database
	a, b                  pgtest.Seeded
	admin                 *pgx.Conn
	ingest, dashboard     *pgxpool.Pool
	loc                   *time.Location
	root, eng, ops, sales int64 // departments: root ⊃ eng ⊃ ops; sales apart
	people                []person
	rows                  []row // A's rows
	sessions              []sessionRow
	badges                []badgeRow
	policyIdle, grace     int
	workStart, workEnd    int // minutes
	productiveProc        []string
	productiveSite        []string
	unproductiveProc      []string
	unproductiveSite      []string
	periods               [][2]string
}

// The generated days: around Berlin's two DST changes of 2026.
var genDays = []string{"2026-03-27", "2026-03-28", "2026-03-29", "2026-03-30", "2026-03-31", "2026-10-24", "2026-10-25", "2026-10-26"}

const policyJSON = `{"activity": {"idle_seconds": 570},
  "working_hours": {"start": "09:00", "end": "17:00", "days": [1, 2, 3, 4, 5], "grace_minutes": 5},
  "productivity": {"productive": {"processes": ["CODE.exe"], "sites": ["github.com"]},
                   "unproductive": {"processes": ["game.exe"], "sites": ["youtube.com"]}}}`

func newDataset(t testing.TB) *dataset {
	t.Helper()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	ds := &dataset{db: db, admin: admin, ingest: pg.Pool(t, db.IngestURL, 4), dashboard: pg.Pool(t, db.DashboardURL, 4),
		policyIdle: 570, grace: 5, workStart: 9 * 60, workEnd: 17 * 60,
		productiveProc: []string{"code.exe"}, productiveSite: []string{"github.com"},
		unproductiveProc: []string{"game.exe"}, unproductiveSite: []string{"youtube.com"},
		periods: [][2]string{{"2026-03-27", "2026-03-31"}, {"2026-10-24", "2026-10-26"}}}
	ds.loc, _ = time.LoadLocation("Europe/Berlin")
	if ds.a, err = pgtest.SeedOrganization(ctx, admin, "rep-a"); err != nil {
		t.Fatal(err)
	}
	if ds.b, err = pgtest.SeedOrganization(ctx, admin, "rep-b"); err != nil {
		t.Fatal(err)
	}
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := admin.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	one := func(sql string, args ...any) int64 {
		t.Helper()
		var id int64
		if err := admin.QueryRow(ctx, sql, args...).Scan(&id); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return id
	}
	org := ds.a.OrganizationID
	var policy int64 = one(`INSERT INTO policies (organization_id, name, content) VALUES ($1, 'Reports', $2) RETURNING id`, org, policyJSON)
	exec(`UPDATE organizations SET time_zone = 'Europe/Berlin', report_policy_id = $2 WHERE id = $1`, org, policy)
	ds.root = one(`INSERT INTO departments (organization_id, name) VALUES ($1, 'Root') RETURNING id`, org)
	ds.eng = one(`INSERT INTO departments (organization_id, name, parent_id) VALUES ($1, 'Eng', $2) RETURNING id`, org, ds.root)
	ds.ops = one(`INSERT INTO departments (organization_id, name, parent_id) VALUES ($1, 'Ops', $2) RETURNING id`, org, ds.eng)
	ds.sales = one(`INSERT INTO departments (organization_id, name) VALUES ($1, 'Sales') RETURNING id`, org)
	ds.people = []person{
		{number: "N1", dept: ds.eng, sids: []string{"S-E1a", "S-E1b"}, numbers: []string{}, cards: []string{}, status: "active"},
		{number: "N2", dept: ds.ops, sids: []string{"S-E2"}, cards: []string{"C2"}, numbers: []string{}, status: "active"},
		{number: "N3", dept: ds.sales, sids: []string{"S-E3"}, numbers: []string{"X3"}, cards: []string{}, status: "active"},
		{number: "N4", dept: ds.root, sids: []string{"S-E4"}, cards: []string{"C4"}, numbers: []string{}, status: "inactive"},
	}
	for i := range ds.people {
		p := &ds.people[i]
		p.name = "First " + p.number
		p.id = one(`INSERT INTO employees (organization_id, department_id, employee_number, first_name, last_name, status)
			VALUES ($1, $2, $3, 'First', $3, $4) RETURNING id`, org, p.dept, p.number, p.status)
		for kind, vals := range map[string][]string{"windows_sid": p.sids, "card_number": p.cards, "employee_number": p.numbers} {
			for _, v := range vals {
				exec(`INSERT INTO employee_identities (organization_id, employee_id, kind, value) VALUES ($1, $2, $3, $4)`, org, p.id, kind, v)
			}
		}
	}
	// The seeded employee: no activity in the generated days.
	ds.people = append(ds.people, person{id: ds.a.EmployeeID, number: "E-1", dept: ds.a.DepartmentID, sids: []string{"S-1-5-21-1"},
		cards: []string{}, numbers: []string{}, status: "active", name: "Ann Lee"})
	// Partitions of the generated days (and the week before: long rows),
	// kept for longer than the days are old.
	exec(`UPDATE monitoring.retention SET days = 3650`)
	exec(`SELECT monitoring.ensure_day_partitions(s, ARRAY['active_windows', 'visited_sites', 'user_sessions', 'device_events'],
		ARRAY(SELECT DISTINCT generate_series(d::date - 8, d::date + 2, '1 day')::date FROM unnest($1::text[]) d))
		FROM unnest(ARRAY['monitoring', 'monitoring_fallback']) s`, genDays)
	exec(`DELETE FROM monitoring.activity_dirty`) // the seed's: this hour's
	ds.generate()
	ds.insert(t)
	return ds
}

// sorted is the people in id order (the reports' order).
func (ds *dataset) sorted() []person {
	out := append([]person{}, ds.people...)
	slices.SortFunc(out, func(a, b person) int { return cmp.Compare(a.id, b.id) })
	return out
}

// generate makes A's rows.
func (ds *dataset) generate() {
	r := lcg(42)
	procs := []string{"code.exe", "chrome.exe", "slack.exe", "game.exe", "Code.exe", ""}
	urls := []string{"https://github.com/x", "https://docs.github.com/y", "https://www.youtube.com/z", "news.example.org/a", "", "https://example.com:8443/p"}
	all := append([]string{}, "S-UNK")
	for _, p := range ds.people {
		all = append(all, p.sids...)
	}
	for di, date := range genDays {
		d, _ := time.ParseInLocation(time.DateOnly, date, ds.loc)
		for si, sid := range all {
			if sid == "S-E3" && di == 1 { // a badge without activity
				continue
			}
			n := 20 + r.intn(20)
			for k := 0; k < n; k++ {
				at := d.Add(time.Duration(7*3600+r.intn(13*3600)) * time.Second)
				dur := r.intn(1500)
				switch r.intn(10) {
				case 0:
					dur = 0
				case 1:
					dur = -1
				case 2:
					dur = 3600 + r.intn(7200) // long, overlapping
				}
				proc := procs[r.intn(len(procs))]
				u := ""
				if proc == "chrome.exe" {
					u = urls[r.intn(len(urls))]
				}
				ds.rows = append(ds.rows, ds.mk("window", sid, proc, u, at, dur, k))
				if r.intn(3) == 0 {
					ds.rows = append(ds.rows, ds.mk("site", sid, "", urls[r.intn(len(urls))], at.Add(time.Duration(r.intn(600))*time.Second), r.intn(900), k+1))
				}
			}
			// Across midnight: 23:50 local + 20 min; a row started 2 days back
			// lasting 50 h.
			ds.rows = append(ds.rows, ds.mk("window", sid, "code.exe", "", d.Add(23*time.Hour+50*time.Minute), 20*60, si))
			if di == 4 && si == 1 {
				ds.rows = append(ds.rows, ds.mk("window", sid, "slack.exe", "", d.Add(-40*time.Hour), 50*3600, 0))
			}
			// Sessions: login in the morning, lock/unlock, and a login at 22:00
			// whose logout comes at 02:00 the next day.
			comp := "PC-" + sid
			ds.sessions = append(ds.sessions,
				sessionRow{uuid.Must(uuid.NewV7()), sid, comp, "login", d.Add(8 * time.Hour)},
				sessionRow{uuid.Must(uuid.NewV7()), sid, comp, "lock", d.Add(12 * time.Hour)},
				sessionRow{uuid.Must(uuid.NewV7()), sid, comp, "unlock", d.Add(13 * time.Hour)},
				sessionRow{uuid.Must(uuid.NewV7()), sid, comp, "logout", d.Add(18 * time.Hour)},
				sessionRow{uuid.Must(uuid.NewV7()), sid, comp, "login", d.Add(22 * time.Hour)},
				sessionRow{uuid.Must(uuid.NewV7()), sid, comp, "logout", d.Add(26 * time.Hour)})
		}
		// Badges: N1 by employee number, N2 by card, N3 by its employee
		// number identity; N4 (inactive) none; unknown cards.
		for pi, p := range ds.people {
			if p.status != "active" || pi > 2 || (pi == 0 && di == 3) { // N1 absent on 03-30 (activity without badge)
				continue
			}
			in := d.Add(time.Duration(8*3600+30*60+r.intn(60*60)) * time.Second)
			out := d.Add(time.Duration(16*3600+30*60+r.intn(60*60)) * time.Second)
			b := badgeRow{at: in, direction: "in"}
			switch pi {
			case 0:
				b.number = "N1"
			case 1:
				b.card = "C2"
			case 2:
				b.number = "X3"
			}
			mid := b
			mid.at, mid.direction = in.Add(2*time.Hour), ""
			last := b
			last.at, last.direction = out, "out"
			early := b
			early.at, early.direction = in.Add(-time.Hour), "out" // an exit before the first entry
			for _, x := range []badgeRow{early, b, mid, last} {
				x.id = uuid.Must(uuid.NewV7())
				ds.badges = append(ds.badges, x)
			}
		}
		ds.badges = append(ds.badges, badgeRow{id: uuid.Must(uuid.NewV7()), card: "C-UNK", at: d.Add(10 * time.Hour)},
			badgeRow{id: uuid.Must(uuid.NewV7()), number: "N-UNK", card: "C-UNK2", direction: "in", at: d.Add(11 * time.Hour)})
	}
}

// mk makes one row; every fifth goes to the fallback, every 23rd to both.
func (ds *dataset) mk(kind, sid, proc, u string, at time.Time, dur, k int) row {
	rw := row{id: uuid.Must(uuid.NewV7()), org: ds.a.OrganizationID, kind: kind, sid: sid, process: proc, url: u, at: at, dur: dur, schema: "monitoring"}
	if len(ds.rows)%5 == 0 {
		rw.schema = "monitoring_fallback"
	}
	if len(ds.rows)%23 == 0 {
		rw.both = true
	}
	_ = k
	return rw
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// insert writes the dataset through the insert functions as the ingest
// role, and noise for B (the same sids, other rows).
func (ds *dataset) insert(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	a := ds.a
	err := postgres.InTenant(ctx, ds.ingest, postgres.Tenant{OrganizationID: a.OrganizationID}, func(tx pgx.Tx) error {
		for _, schema := range []string{"monitoring", "monitoring_fallback"} {
			other := "monitoring_fallback"
			if schema == other {
				other = "monitoring"
			}
			if err := insertRows(ctx, tx, schema, other, a.OrganizationID, a.GatewayID, ds.rows); err != nil {
				return err
			}
		}
		var ids []uuid.UUID
		var sids, comps, types []string
		var ats []time.Time
		for _, s := range ds.sessions {
			ids, sids, comps, types, ats = append(ids, s.id), append(sids, s.sid), append(comps, s.computer), append(types, s.typ), append(ats, s.at)
		}
		seqs, agents := make([]int64, len(ids)), make([]string, len(ids))
		for i := range agents {
			agents[i] = "agent"
		}
		if _, err := tx.Exec(ctx, `SELECT monitoring.insert_user_sessions('monitoring', $1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			a.OrganizationID, a.GatewayID, ids, seqs, agents, comps, sids, types, ats); err != nil {
			return err
		}
		ids = nil
		var nums, cards, dirs []*string
		ats = nil
		for _, b := range ds.badges {
			ids, ats = append(ids, b.id), append(ats, b.at)
			nums, cards, dirs = append(nums, nullable(b.number)), append(cards, nullable(b.card)), append(dirs, nullable(b.direction))
		}
		n := len(ids)
		devs, doors, codes := make([]*int64, n), make([]int32, n), make([]int32, n)
		serials, modes := make([]string, n), make([]*string, n)
		for i := range serials {
			serials[i], doors[i], codes[i] = "DS-1", 1, 5
			devs[i] = &a.DeviceID
		}
		_, err := tx.Exec(ctx, `SELECT monitoring.insert_device_events('monitoring', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13)`,
			a.OrganizationID, a.GatewayID, ids, make([]int64, n), devs, serials, ats, nums, cards, doors, codes, modes, dirs)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// B: rows of the same sids on the same days.
	var noise []row
	for i, rw := range ds.rows {
		if i%4 == 0 && rw.sid != "S-1-5-21-1" { // B's own employee has that sid
			rw.id, rw.org, rw.schema, rw.both = uuid.Must(uuid.NewV7()), ds.b.OrganizationID, "monitoring", false
			rw.at = rw.at.Add(17 * time.Minute)
			noise = append(noise, rw)
		}
	}
	err = postgres.InTenant(ctx, ds.ingest, postgres.Tenant{OrganizationID: ds.b.OrganizationID}, func(tx pgx.Tx) error {
		return insertRows(ctx, tx, "monitoring", "", ds.b.OrganizationID, ds.b.GatewayID, noise)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// insertRows inserts the rows of schema (and those marked both, when other
// is set, into other too).
func insertRows(ctx context.Context, tx pgx.Tx, schema, other string, org int64, gw uuid.UUID, rows []row) error {
	type cols struct {
		ids                      []uuid.UUID
		seqs                     []int64
		agents, comps, sids, tit []string
		procs, urls              []*string
		surls                    []string
		ats                      []time.Time
		durs                     []*int32
	}
	var w, s cols
	for _, rw := range rows {
		if rw.schema != schema && !(rw.both && other != "" && rw.schema == other) {
			continue
		}
		c := &w
		if rw.kind == "site" {
			c = &s
		}
		var dur *int32
		if rw.dur >= 0 {
			d := int32(rw.dur)
			dur = &d
		}
		c.ids, c.seqs, c.agents, c.comps, c.sids, c.tit = append(c.ids, rw.id), append(c.seqs, 1), append(c.agents, "agent"), append(c.comps, "PC"), append(c.sids, rw.sid), append(c.tit, "t")
		c.procs, c.urls, c.surls, c.ats, c.durs = append(c.procs, nullable(rw.process)), append(c.urls, nullable(rw.url)), append(c.surls, rw.url), append(c.ats, rw.at), append(c.durs, dur)
	}
	if len(w.ids) > 0 {
		if _, err := tx.Exec(ctx, `SELECT monitoring.insert_active_windows($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			schema, org, gw, w.ids, w.seqs, w.agents, w.comps, w.sids, w.tit, w.procs, w.urls, w.ats, w.durs); err != nil {
			return fmt.Errorf("windows: %w", err)
		}
	}
	if len(s.ids) > 0 {
		if _, err := tx.Exec(ctx, `SELECT monitoring.insert_visited_sites($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			schema, org, gw, s.ids, s.seqs, s.agents, s.comps, s.sids, s.surls, s.tit, s.ats, s.durs); err != nil {
			return fmt.Errorf("sites: %w", err)
		}
	}
	return nil
}
