package retention_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/retention"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

func newRunner(t *testing.T, f *fixture, reg prometheus.Registerer, cfg retention.Config) *retention.Runner {
	t.Helper()
	r, err := retention.New(context.Background(), retention.Deps{DB: f.ingest, Files: f.files, Logger: logtest.New(t), Registry: reg}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestTwoOrganisations: A and B on different policies. A dry run counts
// exactly what the run then deletes and changes nothing; the run removes
// exactly the rows past each horizon (by id, both schemas) and A's
// screenshot files of those rows, archives exactly A's deleted screenshot
// rows, records both runs, and counts the metrics; a second run finds
// nothing.
func TestTwoOrganisations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	r := newRunner(t, f, reg, retention.Config{BatchSize: 7})
	wantRows, wantFiles, wantBytes, wantArchived := f.expected()
	if len(wantRows) != 5 || wantFiles == 0 {
		t.Fatalf("fixture: expected removals %v, %d files", wantRows, wantFiles)
	}
	before := f.remaining()

	dry, err := r.Run(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if dry.Status != retention.StatusSucceeded || !dry.DryRun {
		t.Fatalf("dry run: %+v", dry)
	}
	if !maps.Equal(dry.Rows, wantRows) || dry.Files != wantFiles || dry.Bytes != wantBytes {
		t.Errorf("dry run counted rows %v, %d files, %d bytes; want %v, %d, %d", dry.Rows, dry.Files, dry.Bytes, wantRows, wantFiles, wantBytes)
	}
	if got := f.remaining(); !maps.Equal(got, before) {
		t.Errorf("dry run changed rows: %d before, %d after", len(before), len(got))
	}
	for _, row := range f.rows {
		if row.file != "" && !f.fileExists(row.file) {
			t.Fatalf("dry run deleted %s", row.file)
		}
	}
	if got := f.archivedIDs(); len(got) != 0 {
		t.Errorf("dry run archived %v", sortedKeys(got))
	}

	res, err := r.Run(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != retention.StatusSucceeded || res.Interrupted != 0 {
		t.Fatalf("run: %+v", res)
	}
	if !maps.Equal(res.Rows, wantRows) || res.Files != wantFiles || res.Bytes != wantBytes {
		t.Errorf("run deleted rows %v, %d files, %d bytes; want %v, %d, %d", res.Rows, res.Files, res.Bytes, wantRows, wantFiles, wantBytes)
	}
	if !maps.Equal(res.Rows, dry.Rows) || res.Files != dry.Files || res.Bytes != dry.Bytes {
		t.Errorf("dry run %v/%d/%d differs from the run %v/%d/%d", dry.Rows, dry.Files, dry.Bytes, res.Rows, res.Files, res.Bytes)
	}
	f.checkRows("after the run")

	// Files: A's screenshots row by row, exactly those of deleted rows; B's
	// went with whole partitions, their files left to the screenshot sweep.
	for _, row := range f.rows {
		if row.file == "" {
			continue
		}
		want := f.kept(row) || row.org == f.b.OrganizationID
		if got := f.fileExists(row.file); got != want {
			t.Errorf("file %s (row kept: %v) exists: %v, want %v", row.file, f.kept(row), got, want)
		}
	}

	// The archive: A's screenshots only, exactly the deleted rows, once.
	archives := f.archivedIDs()
	got := map[uuid.UUID]bool{}
	for key, ids := range archives {
		if !strings.HasPrefix(key, "archive/"+itoa(f.a.OrganizationID)+"/screenshots/") || !strings.Contains(key, "_"+itoa(res.RunID)+"-") {
			t.Errorf("archive object %s: not A's screenshots of run %d", key, res.RunID)
		}
		for _, id := range ids {
			if got[id] {
				t.Errorf("row %s archived twice", id)
			}
			got[id] = true
		}
	}
	if !maps.Equal(got, wantArchived) {
		t.Errorf("archived %d rows, want %d (the deleted screenshot rows of A)", len(got), len(wantArchived))
	}
	if res.Archived != len(archives) {
		t.Errorf("result says %d archive objects, the store has %d", res.Archived, len(archives))
	}

	// The record of both runs.
	runs, err := retention.RecentRuns(ctx, f.ingest, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].ID != res.RunID || runs[1].ID != dry.RunID {
		t.Fatalf("runs: %+v", runs)
	}
	for i, want := range []retention.Result{res, dry} {
		run := runs[i]
		var rows map[string]int64
		if err := json.Unmarshal([]byte(run.Rows), &rows); err != nil {
			t.Fatal(err)
		}
		if run.Status != retention.StatusSucceeded || run.DryRun != want.DryRun || run.FinishedAt == nil || !maps.Equal(rows, wantRows) ||
			run.Files != wantFiles || run.Bytes != wantBytes || run.Archived != want.Archived || run.Error != "" {
			t.Errorf("run record %+v, want the result %+v", run, want)
		}
	}

	// Metrics: deletions of the real run only; both runs succeeded.
	for table, n := range wantRows {
		if got := metric(t, reg, "retention_rows_deleted_total", "table", table); got != float64(n) {
			t.Errorf("retention_rows_deleted_total{table=%q} = %v, want %d", table, got, n)
		}
	}
	for name, want := range map[string]float64{"retention_files_deleted_total": float64(wantFiles), "retention_bytes_deleted_total": float64(wantBytes)} {
		if got := metric(t, reg, name, "", ""); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := metric(t, reg, "retention_runs_total", "status", "succeeded"); got != 2 {
		t.Errorf("retention_runs_total{status=succeeded} = %v, want 2", got)
	}
	if got := metric(t, reg, "retention_last_success_timestamp_seconds", "", ""); got < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("retention_last_success_timestamp_seconds = %v", got)
	}

	// Nothing left to do.
	again, err := r.Run(ctx, false)
	if err != nil || again.TotalRows() != 0 || again.Files != 0 || again.Archived != 0 {
		t.Errorf("second run: %+v, %v", again, err)
	}
	f.checkRows("after a second run")

	// A new Runner reads the last success back.
	if got := metric(t, registryOf(t, f), "retention_last_success_timestamp_seconds", "", ""); got < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("a new runner's retention_last_success_timestamp_seconds = %v", got)
	}
}

func registryOf(t *testing.T, f *fixture) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	newRunner(t, f, reg, retention.Config{})
	return reg
}

// TestLock: a run while another session holds the lock is skipped and
// recorded; of two concurrent runs one is skipped; the database refuses
// deletes and records from a session without the lock.
func TestLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	r := newRunner(t, f, reg, retention.Config{BatchSize: 10, BatchPause: 10 * time.Millisecond})

	// Without the lock, the definer functions refuse.
	for _, sql := range []string{
		`SELECT * FROM monitoring.retention_delete('screenshots', $1, 10)`,
		`SELECT monitoring.retention_run_progress(1, 'screenshots', 1, 0, 0, 0)`,
		`SELECT monitoring.retention_run_finish(1, '')`,
	} {
		var args []any
		if strings.Contains(sql, "$1") {
			args = []any{f.a.OrganizationID}
		}
		if _, err := f.ingest.Exec(ctx, sql, args...); err == nil || !strings.Contains(err.Error(), "does not hold the retention lock") {
			t.Errorf("%s without the lock: %v", sql, err)
		}
	}

	// Two at once: the second finds the first's lock.
	var wg sync.WaitGroup
	var first retention.Result
	var firstErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		first, firstErr = r.Run(ctx, false)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var running int
		if err := f.admin.QueryRow(ctx, `SELECT count(*) FROM monitoring.retention_runs WHERE status = 'running'`).Scan(&running); err != nil {
			t.Fatal(err)
		}
		if running == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first run never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	second, err := r.Run(ctx, false)
	if err != nil || second.Status != retention.StatusSkipped {
		t.Errorf("concurrent run: %+v, %v; want skipped", second, err)
	}
	wg.Wait()
	if firstErr != nil || first.Status != retention.StatusSucceeded {
		t.Fatalf("first run: %+v, %v", first, firstErr)
	}
	f.checkRows("after the run that held the lock")
	if got := metric(t, reg, "retention_runs_total", "status", "skipped"); got != 1 {
		t.Errorf("retention_runs_total{status=skipped} = %v, want 1", got)
	}
	runs, err := retention.RecentRuns(ctx, f.ingest, 10)
	if err != nil {
		t.Fatal(err)
	}
	statuses := map[string]int{}
	for _, run := range runs {
		statuses[run.Status]++
	}
	if !maps.Equal(statuses, map[string]int{"skipped": 1, "succeeded": 1}) {
		t.Errorf("recorded runs %v", statuses)
	}
}

// TestPolicyValidation: a policy naming anything but a series is refused
// naming the field, by SetPolicy and by the database.
func TestPolicyValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		p     retention.Policy
		field string
	}{
		{retention.Policy{ResourceType: "screenshot", RetentionDays: 3, Action: "delete"}, "resource_type"},
		{retention.Policy{ResourceType: "users", RetentionDays: 3, Action: "delete"}, "resource_type"},
		{retention.Policy{ResourceType: "screenshots", RetentionDays: 0, Action: "delete"}, "retention_days"},
		{retention.Policy{ResourceType: "screenshots", RetentionDays: 3, Action: "keep"}, "action"},
	} {
		err := tc.p.Validate()
		var fe apperr.FieldErrors
		if !errors.As(err, &fe) || len(fe) != 1 || fe[0].Field != tc.field {
			t.Errorf("%+v: %v, want an error naming %s", tc.p, err, tc.field)
		}
		if apperr.CodeOf(err) != apperr.Invalid {
			t.Errorf("%+v: code %v", tc.p, apperr.CodeOf(err))
		}
	}
	if err := (retention.Policy{ResourceType: "device_events", RetentionDays: 400, Action: "archive"}).Validate(); err != nil {
		t.Errorf("valid policy: %v", err)
	}
	db := pg.NewDatabase(t)
	admin, err := pgx.Connect(context.Background(), db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	_, err = admin.Exec(context.Background(), `INSERT INTO retention_policies (resource_type, retention_days) VALUES ('screenshot', 3)`)
	if err == nil || !strings.Contains(err.Error(), "retention_policies_resource_type_fkey") {
		t.Errorf("insert of resource_type 'screenshot': %v, want the foreign key's refusal", err)
	}
	platform := pg.Pool(t, db.PlatformAdminURL, 1)
	if _, err := retention.SetPolicy(context.Background(), platform, postgres.Tenant{Role: postgres.AppAdmin, Actor: "test"},
		retention.Policy{ResourceType: "users", RetentionDays: 3, Action: "delete"}); apperr.CodeOf(err) != apperr.Invalid {
		t.Errorf("SetPolicy of users: %v", err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// metric reads one counter or gauge from reg (label: the one label to
// match, or "" for none).
func metric(t *testing.T, reg prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && !hasLabel(m, label, value) {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("metric %s{%s=%q} not found", name, label, value)
	return 0
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}
