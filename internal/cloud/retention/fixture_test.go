package retention_test

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/retention"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
)

// The global days the fixture sets (monitoring.retention), short so that
// few partitions are needed.
var fixtureGlobal = map[string]int{"active_windows": 12, "visited_sites": 12, "screenshots": 10, "user_sessions": 12, "device_events": 12}

// fixRow is one time-series row the fixture inserted.
type fixRow struct {
	table, schema string
	org           int64
	id            uuid.UUID
	at            time.Time
	file          string
	size          int64
}

// fixture is a database with organisations A and B on different policies
// and rows on both sides of every horizon, in both schemas, with
// screenshot files in a storage.Local:
//
//   - A: screenshots 3 days, archived; active_windows 5 days; an inactive
//     device_events rule of 1 day (ignored);
//   - B: only the seed's screenshots rule of 30 days (longer than the
//     global 10: capped, so the global drop applies);
//   - platform default: visited_sites 7 days (A and B), user_sessions 20
//     days (longer than the global 12: no effect).
type fixture struct {
	t      *testing.T
	db     *pgtest.Database
	admin  *pgx.Conn
	ingest *pgxpool.Pool
	files  *storage.Local
	dir    string
	a, b   pgtest.Seeded
	now    time.Time
	rows   []fixRow
	// rowLevel is the expected per-organisation horizons in days.
	rowLevel map[string]int
}

func rowKey(org int64, table string) string { return fmt.Sprintf("%d/%s", org, table) }

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{t: t, db: pg.NewDatabase(t), dir: t.TempDir()}
	var err error
	if f.admin, err = pgx.Connect(ctx, f.db.AdminURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.admin.Close(context.Background()) })
	f.ingest = pg.Pool(t, f.db.IngestURL, 4)
	if f.files, err = storage.NewLocal(f.dir); err != nil {
		t.Fatal(err)
	}
	if f.a, err = pgtest.SeedOrganization(ctx, f.admin, "a"); err != nil {
		t.Fatal(err)
	}
	if f.b, err = pgtest.SeedOrganization(ctx, f.admin, "b"); err != nil {
		t.Fatal(err)
	}
	// The seeds' own rows (now) stay; remove them from the count by
	// deleting them: the fixture's rows are the whole content.
	for _, tb := range retention.Tables() {
		f.exec(fmt.Sprintf(`DELETE FROM monitoring.%s`, tb))
		f.exec(`UPDATE monitoring.retention SET days = $2 WHERE table_name = $1`, tb, fixtureGlobal[tb])
	}
	f.exec(`SELECT monitoring.ensure_partitions((now() AT TIME ZONE 'UTC')::date - 20, (now() AT TIME ZONE 'UTC')::date + 1)`)

	// Policies: A's screenshots through SetPolicy as the platform ADMIN
	// (staff_admin), the rest as fixtures.
	platform := pg.Pool(t, f.db.PlatformAdminURL, 2)
	if _, err := retention.SetPolicy(ctx, platform, postgres.Tenant{Role: postgres.AppAdmin, Actor: "test"},
		retention.Policy{OrganizationID: f.a.OrganizationID, ResourceType: "screenshots", RetentionDays: 4, Action: "delete"}); err != nil {
		t.Fatal(err)
	}
	// A second call replaces the first (which stays, inactive).
	if _, err := retention.SetPolicy(ctx, platform, postgres.Tenant{Role: postgres.AppAdmin, Actor: "test"},
		retention.Policy{OrganizationID: f.a.OrganizationID, ResourceType: "screenshots", RetentionDays: 3, Action: "archive"}); err != nil {
		t.Fatal(err)
	}
	f.exec(`INSERT INTO retention_policies (organization_id, resource_type, retention_days, action) VALUES ($1, 'active_windows', 5, 'delete')`, f.a.OrganizationID)
	f.exec(`INSERT INTO retention_policies (organization_id, resource_type, retention_days, is_active) VALUES ($1, 'device_events', 1, false)`, f.a.OrganizationID)
	f.exec(`INSERT INTO retention_policies (organization_id, resource_type, retention_days) VALUES (NULL, 'visited_sites', 7)`)
	f.exec(`INSERT INTO retention_policies (organization_id, resource_type, retention_days) VALUES (NULL, 'user_sessions', 20)`)
	f.rowLevel = map[string]int{
		rowKey(f.a.OrganizationID, "screenshots"):    3,
		rowKey(f.a.OrganizationID, "active_windows"): 5,
		rowKey(f.a.OrganizationID, "visited_sites"):  7,
		rowKey(f.b.OrganizationID, "visited_sites"):  7,
	}

	if err := f.admin.QueryRow(ctx, `SELECT now()`).Scan(&f.now); err != nil {
		t.Fatal(err)
	}
	batch := &pgx.Batch{}
	n := 0
	for _, org := range []pgtest.Seeded{f.a, f.b} {
		for _, tb := range retention.Tables() {
			for _, schema := range []string{"monitoring", "monitoring_fallback"} {
				for k := 1; k <= 15; k++ {
					for _, delta := range []time.Duration{-time.Hour, time.Hour} {
						n++
						r := fixRow{table: tb, schema: schema, org: org.OrganizationID, id: uuid.Must(uuid.NewV7()),
							at: f.now.Add(-time.Duration(k)*24*time.Hour + delta)}
						if tb == "screenshots" {
							r.file = fmt.Sprintf("screenshots/%d/%s/%s-%s.png", r.org, r.at.UTC().Format(time.DateOnly), r.id, uuid.NewString())
							r.size = int64(100 + n)
							if err := f.files.Put(ctx, r.file, strings.NewReader(strings.Repeat("x", int(r.size)))); err != nil {
								t.Fatal(err)
							}
						}
						queueInsert(batch, r, org, n)
						f.rows = append(f.rows, r)
					}
				}
			}
		}
	}
	if err := f.admin.SendBatch(ctx, batch).Close(); err != nil {
		t.Fatal(err)
	}
	return f
}

// queueInsert adds r's INSERT to batch.
func queueInsert(batch *pgx.Batch, r fixRow, org pgtest.Seeded, seq int) {
	table := r.schema + "." + r.table
	switch r.table {
	case "active_windows":
		batch.Queue(`INSERT INTO `+table+` (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, window_title, datetime)
			VALUES ($1, $2, $3, $4, 'agent-1', 'PC-1', 'S-1-5-21-1', 'Editor, "quoted"', $5)`, r.id, r.org, org.GatewayID, seq, r.at)
	case "visited_sites":
		batch.Queue(`INSERT INTO `+table+` (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, url, datetime)
			VALUES ($1, $2, $3, $4, 'agent-1', 'PC-1', 'S-1-5-21-1', 'https://example.com', $5)`, r.id, r.org, org.GatewayID, seq, r.at)
	case "screenshots":
		batch.Queue(`INSERT INTO `+table+` (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, file_path, file_size, datetime)
			VALUES ($1, $2, $3, $4, 'agent-1', 'PC-1', 'S-1-5-21-1', $5, $6, $7)`, r.id, r.org, org.GatewayID, seq, r.file, r.size, r.at)
	case "user_sessions":
		batch.Queue(`INSERT INTO `+table+` (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, session_type, datetime)
			VALUES ($1, $2, $3, $4, 'agent-1', 'PC-1', 'S-1-5-21-1', 'login', $5)`, r.id, r.org, org.GatewayID, seq, r.at)
	case "device_events":
		batch.Queue(`INSERT INTO `+table+` (id, organization_id, gateway_id, seq, device_serial, datetime, major_code, minor_code)
			VALUES ($1, $2, $3, $4, 'DS-1', $5, 5, 75)`, r.id, r.org, org.GatewayID, seq, r.at)
	}
}

func (f *fixture) exec(sql string, args ...any) {
	f.t.Helper()
	if _, err := f.admin.Exec(context.Background(), sql, args...); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
}

// kept says whether r survives a run at the fixture's time: row by row,
// rows younger than the organisation's horizon; otherwise rows whose day
// partition is not wholly past the global days.
func (f *fixture) kept(r fixRow) bool {
	if days, ok := f.rowLevel[rowKey(r.org, r.table)]; ok {
		return !r.at.Before(f.now.Add(-time.Duration(days) * 24 * time.Hour))
	}
	cut := f.now.Add(-time.Duration(fixtureGlobal[r.table]) * 24 * time.Hour).UTC().Truncate(24 * time.Hour)
	return !r.at.Before(cut)
}

// expected is what a run removes: per table rows, and A's screenshot
// files with their bytes, and the ids removed row by row with archive.
func (f *fixture) expected() (rows map[string]int64, files, bytes int64, archived map[uuid.UUID]bool) {
	rows = map[string]int64{}
	archived = map[uuid.UUID]bool{}
	for _, r := range f.rows {
		if f.kept(r) {
			continue
		}
		rows[r.table]++
		if r.table == "screenshots" && r.org == f.a.OrganizationID {
			files++
			bytes += r.size
			archived[r.id] = true
		}
	}
	return rows, files, bytes, archived
}

// remaining returns the ids of every row in both schemas.
func (f *fixture) remaining() map[uuid.UUID]bool {
	f.t.Helper()
	got := map[uuid.UUID]bool{}
	for _, tb := range retention.Tables() {
		rows, err := f.admin.Query(context.Background(), fmt.Sprintf(`SELECT id FROM monitoring.%[1]s UNION ALL SELECT id FROM monitoring_fallback.%[1]s`, tb))
		if err != nil {
			f.t.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil {
			f.t.Fatal(err)
		}
		for _, id := range ids {
			got[id] = true
		}
	}
	return got
}

// fileExists says whether the store has key.
func (f *fixture) fileExists(key string) bool {
	_, err := os.Stat(filepath.Join(f.dir, filepath.FromSlash(key)))
	return err == nil
}

// checkRows fails unless exactly the rows kept() remain, by id.
func (f *fixture) checkRows(label string) {
	f.t.Helper()
	got := f.remaining()
	var missing, extra []string
	for _, r := range f.rows {
		switch {
		case f.kept(r) && !got[r.id]:
			missing = append(missing, fmt.Sprintf("%s.%s org %d at -%v", r.schema, r.table, r.org, f.now.Sub(r.at).Round(time.Hour)))
		case !f.kept(r) && got[r.id]:
			extra = append(extra, fmt.Sprintf("%s.%s org %d at -%v", r.schema, r.table, r.org, f.now.Sub(r.at).Round(time.Hour)))
		}
	}
	if len(missing)+len(extra) > 0 || len(got) != f.countKept() {
		f.t.Errorf("%s: %d rows remain, want %d; deleted but should be kept: %v; kept but should be deleted: %v",
			label, len(got), f.countKept(), missing, extra)
	}
}

func (f *fixture) countKept() int {
	n := 0
	for _, r := range f.rows {
		if f.kept(r) {
			n++
		}
	}
	return n
}

// archivedIDs reads every archive object under archive/ and returns the
// ids per key, checking each object's header.
func (f *fixture) archivedIDs() map[string][]uuid.UUID {
	f.t.Helper()
	out := map[string][]uuid.UUID{}
	err := f.files.List(context.Background(), "archive/", func(key string, _ time.Time) error {
		rc, err := f.files.Get(context.Background(), key)
		if err != nil {
			return err
		}
		defer rc.Close()
		zr, err := gzip.NewReader(bufio.NewReader(rc))
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		records, err := csv.NewReader(zr).ReadAll()
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		if len(records) < 2 || records[0][0] != "id" || !slices.Contains(records[0], "file_path") {
			return fmt.Errorf("%s: header %v", key, records[0])
		}
		for _, rec := range records[1:] {
			id, err := uuid.Parse(rec[0])
			if err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			out[key] = append(out[key], id)
		}
		if _, err := io.Copy(io.Discard, zr); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

// sortedKeys returns m's keys, sorted.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
