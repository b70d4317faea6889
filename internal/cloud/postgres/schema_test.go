package postgres_test

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// update rewrites schema.sql from the migrations instead of comparing.
var update = flag.Bool("update", false, "rewrite schema.sql from the migrated schema")

// TestSchemaDumpCurrent: schema.sql, the schema sqlc reads (sqlc.yaml), is
// pg_dump's view of the migrated database. The migrations cannot be given
// to sqlc directly: they create the time-series tables with EXECUTE inside
// DO blocks (partitioned or hypertables depending on TimescaleDB), which
// sqlc's catalog never sees, so the views over them fail to parse.
// `go test ./internal/cloud/postgres/ -run TestSchemaDumpCurrent -update`
// rewrites it.
func TestSchemaDumpCurrent(t *testing.T) {
	db := pg.NewDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	var kind string
	err = conn.QueryRow(ctx, "SELECT monitoring.storage_kind()").Scan(&kind)
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if kind != "partitions" {
		t.Skipf("schema.sql is the dump without TimescaleDB; this server stores the series in %s", kind)
	}
	out, err := exec.Command("pg_dump", "--schema-only", "--no-owner", "--no-privileges", "--no-comments",
		"--schema=public", "--schema=app", "--schema=monitoring", "--schema=monitoring_read", "--schema=monitoring_fallback",
		"--dbname="+db.AdminURL).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	got := cleanDump(string(out))
	if *update {
		if err := os.WriteFile("schema.sql", []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile("schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != got {
		t.Fatal("schema.sql is not the migrated schema: run go test ./internal/cloud/postgres/ -run TestSchemaDumpCurrent -update, then sqlc generate")
	}
}

// partition is a statement about one day's partition (created by the
// migrations for the days around today, so the dump's would change daily).
var partition = regexp.MustCompile(`^(CREATE|ALTER) [^\n]*_p\d{8}`)

var dumpNoise = regexp.MustCompile(`(?m)^(--.*|\\(un)?restrict .*|SET .*|SELECT pg_catalog\.set_config.*)\n`)

func cleanDump(s string) string {
	s = dumpNoise.ReplaceAllString(s, "")
	var keep []string
	for _, block := range strings.Split(s, "\n\n") {
		if !partition.MatchString(strings.TrimSpace(block)) {
			keep = append(keep, block)
		}
	}
	s = strings.Join(keep, "\n\n")
	s = regexp.MustCompile(`\n{3,}`).ReplaceAllString(s, "\n\n")
	return "-- Generated: the migrated schema as pg_dump sees it, for sqlc (sqlc.yaml). Not run.\n" +
		"-- Rewrite with: go test ./internal/cloud/postgres/ -run TestSchemaDumpCurrent -update\n\n" + strings.TrimSpace(s) + "\n"
}
