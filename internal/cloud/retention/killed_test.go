package retention_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/retention"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

// childEnv, set, makes the test binary a retention run of its own (TestMain
// calls child): the process TestKilledMidRun kills.
const childEnv = "RETENTION_TEST_CHILD"

// child runs retention once in small, paced batches against the database
// and directory the parent names, and returns the exit code.
func child() int {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("RETENTION_TEST_CHILD_DB"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer pool.Close()
	files, err := storage.NewLocal(os.Getenv("RETENTION_TEST_CHILD_FILES"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	r, err := retention.New(ctx, retention.Deps{DB: pool, Files: files}, retention.Config{BatchSize: 5, BatchPause: 150 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := r.Run(ctx, false); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestKilledMidRun: a run in a real process, SIGKILLed after some of its
// screenshot batches committed, then a run again: all rows past each
// horizon are gone (exactly, by id), no row points to a missing file, the
// archive holds every deleted archived row (at least once), and the killed
// run's record is marked failed.
func TestKilledMidRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	_, _, _, wantArchived := f.expected()
	countShots := func() int {
		var n int
		if err := f.admin.QueryRow(ctx, `SELECT (SELECT count(*) FROM monitoring.screenshots WHERE organization_id = $1)
			+ (SELECT count(*) FROM monitoring_fallback.screenshots WHERE organization_id = $1)`, f.a.OrganizationID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	initial := countShots()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", "RETENTION_TEST_CHILD_DB="+f.db.IngestURL, "RETENTION_TEST_CHILD_FILES="+f.dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(2 * time.Minute)
	for countShots() > initial-10 { // two batches of A's screenshots committed
		select {
		case err := <-exited:
			t.Fatalf("the run ended before it was killed (%v): %s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatal("the run made no progress")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child: %v, want killed; %s", err, stderr.String())
	}
	left := countShots()
	if left == 0 || left >= initial {
		t.Fatalf("killed with %d of A's %d screenshot rows left: not mid-run", left, initial)
	}
	var killedID int64
	var status string
	if err := f.admin.QueryRow(ctx, `SELECT id, status FROM monitoring.retention_runs ORDER BY id DESC LIMIT 1`).Scan(&killedID, &status); err != nil || status != "running" {
		t.Fatalf("the killed run's record: %s, %v", status, err)
	}
	f.checkFilesOfRows("after the kill")

	// Run again (the killed session's lock goes once the server notices
	// the connection closed: retry while skipped).
	r, err := retention.New(ctx, retention.Deps{DB: f.ingest, Files: f.files, Logger: logtest.New(t), Registry: prometheus.NewRegistry()}, retention.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var res retention.Result
	for try := 0; ; try++ {
		if res, err = r.Run(ctx, false); err != nil {
			t.Fatal(err)
		}
		if res.Status != retention.StatusSkipped || try == 100 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if res.Status != retention.StatusSucceeded || res.Interrupted != 1 {
		t.Fatalf("rerun: %+v", res)
	}
	f.checkRows("after the rerun")
	f.checkFilesOfRows("after the rerun")
	var errText string
	if err := f.admin.QueryRow(ctx, `SELECT status, coalesce(error, '') FROM monitoring.retention_runs WHERE id = $1`, killedID).Scan(&status, &errText); err != nil ||
		status != "failed" || !strings.Contains(errText, "interrupted") {
		t.Errorf("the killed run's record after the rerun: %s %q, %v", status, errText, err)
	}
	var running int
	if err := f.admin.QueryRow(ctx, `SELECT count(*) FROM monitoring.retention_runs WHERE status = 'running'`).Scan(&running); err != nil || running != 0 {
		t.Errorf("%d runs still running, %v", running, err)
	}
	// Every deleted archived row is in an archive (a batch archived but
	// not committed when killed is archived again: at least once).
	got := map[string]bool{}
	for _, ids := range f.archivedIDs() {
		for _, id := range ids {
			got[id.String()] = true
		}
	}
	for id := range wantArchived {
		if !got[id.String()] {
			t.Errorf("deleted row %s is in no archive", id)
		}
	}
	if len(got) != len(wantArchived) {
		t.Errorf("%d rows archived, want %d", len(got), len(wantArchived))
	}
	orphans := 0
	for _, row := range f.rows {
		if row.file != "" && row.org == f.a.OrganizationID && !f.kept(row) && f.fileExists(row.file) {
			orphans++
		}
	}
	t.Logf("killed after %d of %d screenshot rows; %d orphan files left for the sweep", initial-left, initial, orphans)
}

// checkFilesOfRows fails when a remaining screenshot row's file is missing.
func (f *fixture) checkFilesOfRows(label string) {
	f.t.Helper()
	got := f.remaining()
	for _, row := range f.rows {
		if row.file != "" && got[row.id] && !f.fileExists(row.file) {
			f.t.Errorf("%s: row %s remains but its file %s is gone", label, row.id, row.file)
		}
	}
}
