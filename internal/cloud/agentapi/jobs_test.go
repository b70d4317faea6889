package agentapi_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi/agentapitest"
)

// TestAgentAPIExportsTimescaleDBJobHealth (TimescaleDB only): with the
// TimescaleDB jobs of schema monitoring paused, the running Agent API's
// background maintenance reports every job overdue on GET /metrics and
// runs the retention and compression policies of the five tables itself.
func TestAgentAPIExportsTimescaleDBJobHealth(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := pg.NewDatabase(t)
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var kind string
	if err := admin.QueryRow(ctx, `SELECT monitoring.storage_kind()`).Scan(&kind); err != nil {
		t.Fatal(err)
	}
	if kind != "timescaledb" {
		t.Skip("the time series are native partitions here (point TEST_DATABASE_URL at a TimescaleDB server): there are no TimescaleDB jobs; " +
			"timeseries.TestJobFunctionsAreNoOpsOnPartitions checks the maintainer's TimescaleDB path is a no-op")
	}
	if _, err := admin.Exec(ctx, `SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs WHERE hypertable_schema = 'monitoring'`); err != nil {
		t.Fatal(err)
	}
	api := agentapitest.Start(t, pg.Pool(t, db.IngestURL, 4), agentapitest.Options{})
	want := map[string]*regexp.Regexp{
		"refresh overdue":      regexp.MustCompile(`(?m)^timeseries_job_overdue\{job="\d+",kind="refresh",table="activity_hourly"\} 1$`),
		"retention paused":     regexp.MustCompile(`(?m)^timeseries_job_scheduled\{job="\d+",kind="retention",table="screenshots"\} 0$`),
		"retention run by it":  regexp.MustCompile(`(?m)^timeseries_jobs_run_by_maintainer_total\{kind="retention"\} 5$`),
		"compression run":      regexp.MustCompile(`(?m)^timeseries_jobs_run_by_maintainer_total\{kind="compression"\} 5$`),
		"policy last run":      regexp.MustCompile(`(?m)^timeseries_policy_last_run_timestamp_seconds\{kind="retention",table="active_windows"\} [1-9]`),
		"health checked":       regexp.MustCompile(`(?m)^timeseries_job_health_checked_timestamp_seconds [1-9]`),
		"job failures counted": regexp.MustCompile(`(?m)^timeseries_job_failures_total\{job="\d+",kind="compression",table="user_sessions"\} \d+$`),
	}
	var body string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get(api.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		missing := 0
		for _, re := range want {
			if !re.MatchString(body) {
				missing++
			}
		}
		if missing == 0 {
			break
		}
	}
	for name, re := range want {
		if !re.MatchString(body) {
			t.Errorf("/metrics lacks %s (%s)", name, re)
		}
	}
}
