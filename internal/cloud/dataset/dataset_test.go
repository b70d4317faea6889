package dataset

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

// testDB is a test database's pools for Generate and an administrator's
// connection for the checks.
type testDB struct {
	deps  Deps
	admin *pgx.Conn
}

func newTestDB(t testing.TB, writers int32) *testDB {
	t.Helper()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	owner := pg.Pool(t, db.AdminURL, writers)
	platform := pg.Pool(t, db.PlatformAdminURL, writers)
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	return &testDB{deps: Deps{Owner: owner, Platform: platform}, admin: admin}
}

// small is the tests' dataset: 20 employees over Saturday 2026-03-28 to
// Tuesday 2026-03-31 in Berlin (Sunday is the switch to summer time).
func small(slug string, seed uint64) Config {
	return Config{Employees: 20, Days: 4, EndDate: "2026-03-31", Seed: seed, OrgSlug: slug, Password: "correct horse battery",
		Writers: 2}
}

func (d *testDB) generate(t *testing.T, cfg Config) Result {
	t.Helper()
	res, err := Generate(context.Background(), d.deps, cfg)
	if err != nil {
		t.Fatalf("Generate(%s): %v", cfg.OrgSlug, err)
	}
	return res
}

func (d *testDB) one(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := d.admin.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// checksums is one digest per series of an organisation's rows, over every
// column but the organisation and the gateway (both differ between runs)
// and ingested_at; the organisation's id is cut out of screenshot paths.
func (d *testDB) checksums(t *testing.T, org int64) map[string]string {
	t.Helper()
	out := map[string]string{}
	for i, table := range tableNames {
		var cols []string
		for _, c := range columns[i] {
			switch c {
			case "organization_id", "gateway_id":
			case "file_path":
				cols = append(cols, "replace(file_path, 'screenshots/' || organization_id || '/', '')")
			default:
				cols = append(cols, c)
			}
		}
		q := fmt.Sprintf("SELECT coalesce(md5(string_agg(concat_ws('|', %s), ',' ORDER BY id)), '') FROM monitoring.%s WHERE organization_id = $1",
			strings.Join(cols, ", "), table)
		var sum string
		if err := d.admin.QueryRow(context.Background(), q, org).Scan(&sum); err != nil {
			t.Fatalf("checksum %s: %v", table, err)
		}
		out[table] = sum
	}
	return out
}

// TestGenerateSmall: a small organisation, generated twice with the same
// seed and once with another, checked against the database.
func TestGenerateSmall(t *testing.T) {
	db := newTestDB(t, 4)
	a := db.generate(t, small("gen-a", 7))
	b := db.generate(t, small("gen-b", 7))
	c := db.generate(t, small("gen-c", 8))

	if a.Storage != "partitions" {
		t.Errorf("storage = %q, want partitions (the tests' server has no TimescaleDB)", a.Storage)
	}
	// Deterministic: the same seed gives the same rows, another seed others.
	sa, sb, sc := db.checksums(t, a.OrganizationID), db.checksums(t, b.OrganizationID), db.checksums(t, c.OrganizationID)
	for _, table := range tableNames {
		if a.Rows[table] != b.Rows[table] || sa[table] != sb[table] {
			t.Errorf("%s: seed 7 twice: %d rows (%s) vs %d rows (%s)", table, a.Rows[table], sa[table], b.Rows[table], sb[table])
		}
		if sa[table] == sc[table] {
			t.Errorf("%s: seeds 7 and 8 gave the same rows", table)
		}
	}

	for _, r := range []Result{a, b, c} {
		org := r.OrganizationID
		// Counts: what Generate says it wrote is in the database, under the
		// right organisation, and nothing else.
		var total int64
		for _, table := range tableNames {
			n := db.one(t, fmt.Sprintf("SELECT count(*) FROM monitoring.%s WHERE organization_id = $1", table), org)
			if n != r.Rows[table] || n == 0 {
				t.Errorf("org %d %s: %d rows in the database, Generate says %d", org, table, n, r.Rows[table])
			}
			total += n
		}
		all := db.one(t, `SELECT (SELECT count(*) FROM monitoring.active_windows) + (SELECT count(*) FROM monitoring.visited_sites)
			+ (SELECT count(*) FROM monitoring.screenshots) + (SELECT count(*) FROM monitoring.user_sessions)
			+ (SELECT count(*) FROM monitoring.device_events)`)
		if want := a.Total() + b.Total() + c.Total(); all != want {
			t.Errorf("the database holds %d series rows, the three runs wrote %d", all, want)
		}
		if total != r.Total() {
			t.Errorf("org %d: total %d, Generate says %d", org, total, r.Total())
		}

		// The relational part.
		if n := db.one(t, "SELECT count(*) FROM employees WHERE organization_id = $1", org); n != 20 {
			t.Errorf("org %d: %d employees, want 20", org, n)
		}
		if n := db.one(t, "SELECT count(*) FROM departments WHERE organization_id = $1", org); n != 10 {
			t.Errorf("org %d: %d departments, want 10", org, n)
		}
		if n := db.one(t, "SELECT count(*) FROM departments WHERE organization_id = $1 AND parent_id IS NOT NULL", org); n != 5 {
			t.Errorf("org %d: %d sub-departments, want 5", org, n)
		}
		if n := db.one(t, "SELECT count(*) FROM users WHERE organization_id = $1 AND role = 'DEPARTMENT_LEAD' AND department_id IS NOT NULL", org); n != 10 {
			t.Errorf("org %d: %d department leads, want 10", org, n)
		}
		if n := db.one(t, "SELECT count(*) FROM users WHERE organization_id = $1 AND role IN ('HR', 'EMPLOYEE', 'ORG_ADMIN')", org); n != 3 {
			t.Errorf("org %d: %d HR/employee/admin users, want 3", org, n)
		}
		if n := db.one(t, `SELECT count(*) FROM (SELECT employee_id FROM employee_identities WHERE organization_id = $1 AND kind = 'windows_sid'
			GROUP BY employee_id HAVING count(*) = 2) x`, org); n < 1 {
			t.Errorf("org %d: no employee with two SIDs", org)
		}
		if n := db.one(t, `SELECT count(*) FROM policies WHERE organization_id = $1 AND id = $2 AND current_version IS NOT NULL
			AND content->'working_hours'->>'grace_minutes' = '10' AND content->'activity'->>'idle_seconds' = '300'
			AND jsonb_array_length(content->'productivity'->'productive'->'processes') + jsonb_array_length(content->'productivity'->'unproductive'->'processes') = 10
			AND jsonb_array_length(content->'productivity'->'productive'->'sites') + jsonb_array_length(content->'productivity'->'unproductive'->'sites') = 15`,
			org, r.PolicyID); n != 1 {
			t.Errorf("org %d: report policy %d not released", org, r.PolicyID)
		}

		// The report settings, and the rollups' dirty keys: exactly the
		// (SID, UTC hour) pairs the insert functions would have marked for
		// these windows and sites.
		if n := db.one(t, "SELECT count(*) FROM organizations WHERE id = $1 AND time_zone = 'Europe/Berlin' AND report_policy_id = $2", org, r.PolicyID); n != 1 {
			t.Errorf("org %d: time zone or report policy not set", org)
		}
		const marked = `SELECT DISTINCT user_sid, h FROM (SELECT user_sid, datetime, duration_seconds FROM monitoring.active_windows WHERE organization_id = $1
			UNION ALL SELECT user_sid, datetime, duration_seconds FROM monitoring.visited_sites WHERE organization_id = $1) i,
			generate_series(date_trunc('hour', i.datetime, 'UTC'), date_trunc('hour', i.datetime + make_interval(secs => i.duration_seconds), 'UTC'), interval '1 hour') h`
		const dirty = `SELECT user_sid, hour FROM monitoring.activity_dirty WHERE organization_id = $1`
		if n := db.one(t, "SELECT count(*) FROM ("+marked+" EXCEPT "+dirty+") x", org); n != 0 {
			t.Errorf("org %d: %d hours of activity not marked dirty", org, n)
		}
		if n := db.one(t, "SELECT count(*) FROM ("+dirty+" EXCEPT "+marked+") x", org); n != 0 {
			t.Errorf("org %d: %d dirty hours without activity", org, n)
		}
		if n := db.one(t, "SELECT count(*) FROM monitoring.activity_dirty WHERE organization_id = $1", org); n != int64(r.DirtyHours) || n == 0 {
			t.Errorf("org %d: %d dirty hours, Generate says %d", org, n, r.DirtyHours)
		}

		// Identities resolve: every SID is a windows_sid of the organisation
		// whose employee also has the row's computer.
		for _, table := range []string{"active_windows", "visited_sites", "screenshots", "user_sessions"} {
			n := db.one(t, fmt.Sprintf(`SELECT count(*) FROM monitoring.%s s WHERE s.organization_id = $1 AND NOT EXISTS (
				SELECT 1 FROM employee_identities w JOIN employee_identities c ON c.employee_id = w.employee_id AND c.kind = 'computer'
				WHERE w.organization_id = $1 AND w.kind = 'windows_sid' AND w.value = s.user_sid AND c.value = s.computer_uid)`, table), org)
			if n != 0 {
				t.Errorf("org %d %s: %d rows whose SID and computer do not resolve to one employee", org, table, n)
			}
		}
		// Badges: by employee number (both terminals) and card (Hikvision);
		// only the visitors' unknown cards resolve to nobody.
		if n := db.one(t, `SELECT count(*) FROM monitoring.device_events d WHERE d.organization_id = $1 AND d.minor_code <> 9 AND NOT EXISTS (
			SELECT 1 FROM employees e WHERE e.organization_id = $1 AND e.employee_number = d.employee_number AND (d.card_number IS NULL
			OR EXISTS (SELECT 1 FROM employee_identities i WHERE i.employee_id = e.id AND i.kind = 'card_number' AND i.value = d.card_number)))`, org); n != 0 {
			t.Errorf("org %d: %d badge events of employees do not resolve", org, n)
		}
		unknown := db.one(t, `SELECT count(*) FROM monitoring.device_events d WHERE d.organization_id = $1 AND NOT EXISTS (
			SELECT 1 FROM employee_identities i WHERE i.organization_id = $1 AND i.kind = 'card_number' AND i.value = d.card_number)
			AND d.card_number IS NOT NULL`, org)
		if unknown != 2 { // one visitor on each of the two weekdays
			t.Errorf("org %d: %d badges of unknown cards, want 2", org, unknown)
		}

		// Sessions pair up: as many logouts as logins, unlocks as locks,
		// and some day ends past midnight for a dataset this size? (Not
		// guaranteed at 20 employees; the big run has them.)
		logins := db.one(t, "SELECT count(*) FROM monitoring.user_sessions WHERE organization_id = $1 AND session_type = 'login'", org)
		logouts := db.one(t, "SELECT count(*) FROM monitoring.user_sessions WHERE organization_id = $1 AND session_type = 'logout'", org)
		locks := db.one(t, "SELECT count(*) FROM monitoring.user_sessions WHERE organization_id = $1 AND session_type = 'lock'", org)
		unlocks := db.one(t, "SELECT count(*) FROM monitoring.user_sessions WHERE organization_id = $1 AND session_type = 'unlock'", org)
		if logins != logouts || locks != unlocks || logins == 0 || locks == 0 {
			t.Errorf("org %d: %d logins, %d logouts, %d locks, %d unlocks", org, logins, logouts, locks, unlocks)
		}
		// Window rows have a duration, browsers a URL; screenshot paths are
		// in the ingest's layout.
		if n := db.one(t, `SELECT count(*) FROM monitoring.active_windows WHERE organization_id = $1 AND (duration_seconds NOT BETWEEN 0 AND 30
			OR (process_name IN ('chrome.exe', 'msedge.exe')) <> (url IS NOT NULL))`, org); n != 0 {
			t.Errorf("org %d: %d window rows with a bad duration or URL", org, n)
		}
		if n := db.one(t, `SELECT count(*) FROM monitoring.screenshots WHERE organization_id = $1
			AND file_path <> format('screenshots/%s/%s/%s-gen.png', organization_id, to_char(datetime AT TIME ZONE 'UTC', 'YYYY-MM-DD'), id)`, org); n != 0 {
			t.Errorf("org %d: %d screenshot paths not in the ingest's layout", org, n)
		}

		// Partitions: each table has its own partition for each UTC day the
		// local days touch, and every row sits in the partition of its day.
		for _, table := range tableNames {
			n := db.one(t, fmt.Sprintf(`SELECT count(*) FROM monitoring.%s s JOIN pg_class c ON c.oid = s.tableoid
				WHERE s.organization_id = $1 AND c.relname <> '%s_p' || to_char(s.datetime AT TIME ZONE 'UTC', 'YYYYMMDD')`, table, table), org)
			if n != 0 {
				t.Errorf("org %d %s: %d rows outside their day's partition", org, table, n)
			}
		}
		for d := time.Date(2026, 3, 27, 0, 0, 0, 0, time.UTC); !d.After(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)); d = d.AddDate(0, 0, 1) {
			for _, table := range tableNames {
				if n := db.one(t, "SELECT count(*) FROM pg_class WHERE oid = to_regclass($1)", fmt.Sprintf("monitoring.%s_p%s", table, d.Format("20060102"))); n != 1 {
					t.Errorf("no partition %s of %s", d.Format(time.DateOnly), table)
				}
			}
		}
	}
}

// TestGenerateShape: the rows of a week follow the plan — the rate the
// package documents, weekends mostly off, ~3 % absences, ~7 % late
// arrivals, some sessions past midnight — on a run large enough to show
// them (100 employees × 7 days, Sunday 2026-10-25 being the end of summer
// time in Berlin).
func TestGenerateShape(t *testing.T) {
	if testing.Short() {
		t.Skip("a 100 × 7 run")
	}
	db := newTestDB(t, 4)
	res := db.generate(t, Config{Employees: 100, Days: 7, EndDate: "2026-10-28", Seed: 42, OrgSlug: "shape", Password: "correct horse battery", Writers: 2})
	org := res.OrganizationID
	perDay := float64(res.Total()) / (100 * 7)
	t.Logf("%d rows, %.0f per employee-day: %v", res.Total(), perDay, res.Rows)
	if perDay < 1400 || perDay > 1900 {
		t.Errorf("%.0f rows per employee and calendar day, want about 1,650", perDay)
	}
	// Per local day: employees at work (a login), and of them late (first
	// login after 09:10).
	rows, err := db.admin.Query(context.Background(), `SELECT day, extract(isodow FROM day)::int, count(*), count(*) FILTER (WHERE first::time > '09:10')
		FROM (SELECT i.employee_id, (s.datetime AT TIME ZONE 'Europe/Berlin')::date AS day, min(s.datetime AT TIME ZONE 'Europe/Berlin') AS first
		      FROM monitoring.user_sessions s JOIN employee_identities i ON i.organization_id = s.organization_id AND i.kind = 'windows_sid' AND i.value = s.user_sid
		      WHERE s.organization_id = $1 AND s.session_type = 'login' GROUP BY 1, 2) f
		GROUP BY day ORDER BY day`, org)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var late, weekdays int64
	for rows.Next() {
		var day time.Time
		var dow int
		var n, l int64
		if err := rows.Scan(&day, &dow, &n, &l); err != nil {
			t.Fatal(err)
		}
		if dow >= 6 {
			if n > 10 {
				t.Errorf("%s (weekend): %d at work, want a few", day.Format(time.DateOnly), n)
			}
			continue
		}
		if n < 90 {
			t.Errorf("%s: %d of 100 at work, want ~97", day.Format(time.DateOnly), n)
		}
		late += l
		weekdays += n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if weekdays < 450 || late < weekdays/40 || late > weekdays/6 {
		t.Errorf("%d late of %d employee-weekdays, want ~7 %%", late, weekdays)
	}
	if n := db.one(t, `SELECT count(*) FROM monitoring.user_sessions WHERE organization_id = $1 AND session_type = 'logout'
		AND (datetime AT TIME ZONE 'Europe/Berlin')::time < '03:00'`, org); n == 0 {
		t.Errorf("no session crosses midnight")
	}
}

// TestGenerateScreenshotFiles: with Files, every screenshot row's file
// exists and matches its size and digest.
func TestGenerateScreenshotFiles(t *testing.T) {
	db := newTestDB(t, 2)
	dir := t.TempDir()
	local, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	db.deps.Files = local
	cfg := small("files", 3)
	cfg.Employees, cfg.Days = 3, 1
	res := db.generate(t, cfg)
	digest := sha256.Sum256(tinyPNG())
	wantSum := hex.EncodeToString(digest[:])
	rows, err := db.admin.Query(context.Background(), "SELECT file_path, file_size, sha256 FROM monitoring.screenshots WHERE organization_id = $1", res.OrganizationID)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var path, sum string
		var size int64
		if err := rows.Scan(&path, &size, &sum); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(path)))
		if err != nil || int64(len(b)) != size || sum != wantSum {
			t.Errorf("%s: %d bytes (err %v), row says %d bytes", path, len(b), err, size)
		}
		n++
	}
	if rows.Err() != nil || n == 0 || int64(n) != res.Rows["screenshots"] {
		t.Errorf("%d screenshot rows checked (err %v), Generate says %d", n, rows.Err(), res.Rows["screenshots"])
	}
}

// TestGenerateRefuses: bad configurations are refused naming the field,
// before anything is written.
func TestGenerateRefuses(t *testing.T) {
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{OrgSlug: "x", Employees: -1}, "employees"},
		{Config{OrgSlug: "x", Days: MaxDays + 1}, "days"},
		{Config{}, "org_slug"},
		{Config{OrgSlug: "x", TimeZone: "Mars/Olympus"}, "time_zone"},
		{Config{OrgSlug: "x", EndDate: "31.03.2026"}, "end_date"},
		{Config{OrgSlug: "x", Password: "short"}, "password"},
	} {
		_, err := Generate(context.Background(), Deps{}, tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: err = %v, want one naming %s", tc.cfg, err, tc.field)
		}
	}
}
