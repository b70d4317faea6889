package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// insertFunctions are the series' insert functions of migration 00020.
var insertFunctions = []string{"insert_active_windows", "insert_visited_sites", "insert_user_sessions", "insert_screenshots", "insert_device_events"}

// insertCall is a call of the insert function fn with schema, $1 as the
// organisation, $2 as the gateway and, for every array argument, an array
// of $3 NULLs of its element type (lengths[i] instead of $3 for the i-th
// array when given), built from the function's signature in pg_proc.
func insertCall(ctx context.Context, t *testing.T, admin *pgx.Conn, fn, schema string, lengths map[int]int) string {
	t.Helper()
	var types []string
	if err := admin.QueryRow(ctx, `SELECT array_agg(format_type(a.t, NULL) ORDER BY a.n)
		FROM pg_proc p, unnest(p.proargtypes) WITH ORDINALITY a(t, n)
		WHERE p.oid = to_regproc('monitoring.' || $1)`, fn).Scan(&types); err != nil {
		t.Fatal(err)
	}
	if len(types) < 4 || types[0] != "text" || types[1] != "bigint" || types[2] != "uuid" {
		t.Fatalf("monitoring.%s(%v): want (text, bigint, uuid, arrays…)", fn, types)
	}
	args := []string{schema, "$1", "$2"}
	for i, typ := range types[3:] {
		if !strings.HasSuffix(typ, "[]") {
			t.Fatalf("monitoring.%s: argument %d is %s, want an array", fn, i+4, typ)
		}
		n := "$3"
		if l, ok := lengths[i]; ok {
			n = fmt.Sprint(l)
		}
		args = append(args, fmt.Sprintf("array_fill(NULL::%s, ARRAY[%s::int])", strings.TrimSuffix(typ, "[]"), n))
	}
	return fmt.Sprintf("SELECT monitoring.%s(%s)", fn, strings.Join(args, ", "))
}

// pgCode runs sql with args in org's verified context on pool and returns
// its SQLSTATE and message ("" when it succeeded).
func pgCode(ctx context.Context, pool *pgxpool.Pool, org int64, sql string, args ...any) (string, string, error) {
	err := postgres.InTenant(ctx, pool, postgres.Tenant{OrganizationID: org}, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, sql, args...)
		return err
	})
	var pe *pgconn.PgError
	switch {
	case err == nil:
		return "", "", nil
	case errors.As(err, &pe):
		return pe.Code, pe.Message, nil
	default:
		return "", "", err
	}
}

// TestInsertFunctionsAreBounded: every insert function refuses (22023,
// naming the bound) more than 10,000 rows, column arrays of unequal
// length, and a schema other than monitoring and monitoring_fallback,
// before it inserts anything; up to the bound the rows reach the INSERT,
// whose data errors come back unchanged (class 23 here: NULL keys), and
// 10,000 real rows are taken, once.
func TestInsertFunctionsAreBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, admin, a, _ := seedTwo(ctx, t)
	pool, err := postgres.Connect(ctx, db.IngestURL, 1, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for _, fn := range insertFunctions {
		tests := []struct {
			name, schema string
			rows         int
			lengths      map[int]int
			wantCode     string // SQLSTATE, or its class for class 23
			wantMessage  string
		}{
			{"10,001 rows", "'monitoring'", 10001, nil, "22023", fn + ": 10001 rows at once, at most 10000"},
			{"10,001 rows into the fallback", "'monitoring_fallback'", 10001, nil, "22023", fn + ": 10001 rows at once, at most 10000"},
			{"one longer column", "'monitoring'", 3, map[int]int{2: 4}, "22023", fn + ": column arrays of unequal length"},
			{"a longer column past the bound", "'monitoring'", 1, map[int]int{1: 20000}, "22023", fn + ": column arrays of unequal length"},
			{"10,000 rows reach the insert", "'monitoring'", 10000, nil, "23", ""},
			{"into the fallback too", "'monitoring_fallback'", 2, nil, "23", ""},
			{"schema public", "'public'", 1, nil, "22023", fn + ": unknown schema public"},
			{"schema monitoring_read", "'monitoring_read'", 1, nil, "22023", fn + ": unknown schema monitoring_read"},
			{"schema in another case", "'Monitoring'", 1, nil, "22023", fn + ": unknown schema Monitoring"},
			{"schema NULL", "NULL", 1, nil, "22023", fn + ": unknown schema <NULL>"},
			{"schema with a dot", "'monitoring.active_windows'", 1, nil, "22023", fn + ": unknown schema monitoring.active_windows"},
		}
		for _, tt := range tests {
			code, msg, err := pgCode(ctx, pool, a.OrganizationID, insertCall(ctx, t, admin, fn, tt.schema, tt.lengths), a.OrganizationID, a.GatewayID, tt.rows)
			switch {
			case err != nil:
				t.Fatalf("%s/%s: %v", fn, tt.name, err)
			case !strings.HasPrefix(code, tt.wantCode) || (tt.wantMessage != "" && msg != tt.wantMessage):
				t.Errorf("%s/%s: SQLSTATE %s %q, want %s %q", fn, tt.name, code, msg, tt.wantCode, tt.wantMessage)
			}
		}
	}
	// Exactly the bound, with real rows: all taken, then all duplicates.
	bound := `SELECT monitoring.insert_user_sessions('monitoring', $1, $2, array_agg(gen_random_uuid()), array_agg(g::bigint),
		array_agg('agent-1'::text), array_agg('PC-1'::text), array_agg('S-1'::text), array_agg('login'::text), array_agg(now() - g * interval '1 second'))
		FROM generate_series(1, 10000) g`
	var n int
	err = postgres.InTenant(ctx, pool, postgres.Tenant{OrganizationID: a.OrganizationID}, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, bound, a.OrganizationID, a.GatewayID).Scan(&n)
	})
	if err != nil || n != 10000 {
		t.Fatalf("10,000 rows: %d inserted, %v; want 10000", n, err)
	}
	// The stored rows, read back by the administrator, sent again by the
	// ingest role: nothing new.
	var ids, times, seqs string
	var stored int
	if err := admin.QueryRow(ctx, `SELECT count(*), array_agg(id)::text, array_agg(datetime)::text, array_agg(seq)::text
		FROM monitoring.user_sessions WHERE organization_id = $1 AND user_sid = 'S-1' AND agent_uid = 'agent-1'`,
		a.OrganizationID).Scan(&stored, &ids, &times, &seqs); err != nil || stored != 10000 {
		t.Fatalf("%d rows stored (%v), want 10000", stored, err)
	}
	err = postgres.InTenant(ctx, pool, postgres.Tenant{OrganizationID: a.OrganizationID}, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT monitoring.insert_user_sessions('monitoring', $1, $2, $3::uuid[], $4::bigint[],
			array_fill('agent-1'::text, ARRAY[10000]), array_fill('PC-1'::text, ARRAY[10000]), array_fill('S-1'::text, ARRAY[10000]),
			array_fill('login'::text, ARRAY[10000]), $5::timestamptz[])`, a.OrganizationID, a.GatewayID, ids, seqs, times).Scan(&n)
	})
	if err != nil || n != 0 {
		t.Errorf("the same 10,000 rows again: %d inserted, %v; want 0 (duplicates skipped)", n, err)
	}
}

// TestResyncInsertTakesOnlyTheVerifiedOrganisationsRows: the re-sync's
// copy into the store (monitoring.resync_insert) takes whole rows of one of
// the five tables, at most 5,000, all of the verified organisation, and
// refuses everything else before inserting anything.
func TestResyncInsertTakesOnlyTheVerifiedOrganisationsRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, admin, a, b := seedTwo(ctx, t)
	pool, err := postgres.Connect(ctx, db.IngestURL, 1, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// Whole rows, as monitoring.fallback_chunk gives them: n rows of org.
	rows := func(org int64, n int, seq int) string {
		var out string
		if err := admin.QueryRow(ctx, `SELECT jsonb_agg(to_jsonb(r))::text FROM (
			SELECT gen_random_uuid() AS id, $1::bigint AS organization_id, gen_random_uuid() AS gateway_id, $3::bigint + g AS seq,
			       'agent-1' AS agent_uid, 'PC-1' AS computer_uid, 'S-1' AS user_sid, 'login' AS session_type,
			       now() - g * interval '1 second' AS datetime, now() AS ingested_at
			FROM generate_series(1, $2) g) r`, org, n, seq).Scan(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	own := rows(a.OrganizationID, 3, 1000)
	mixed := `[` + strings.TrimPrefix(strings.TrimSuffix(rows(a.OrganizationID, 2, 2000), "]"), "[") + `, ` +
		strings.TrimPrefix(rows(b.OrganizationID, 1, 2100), "[")
	tests := []struct {
		name, table, rows string
		org               int64 // the verified organisation; 0: none
		wantCode, wantMsg string
		wantInserted      int
	}{
		{"own rows", "user_sessions", own, a.OrganizationID, "", "", 3},
		{"own rows again", "user_sessions", own, a.OrganizationID, "", "", 0},
		{"another organisation's rows", "user_sessions", rows(b.OrganizationID, 2, 3000), a.OrganizationID, "42501",
			`new row violates row-level security policy for table "user_sessions"`, 0},
		{"one foreign row among own rows", "user_sessions", mixed, a.OrganizationID, "42501",
			`new row violates row-level security policy for table "user_sessions"`, 0},
		{"a row without organisation", "user_sessions", `[{"id": "0190a6b4-0000-7000-8000-000000000009", "seq": 1}]`, a.OrganizationID, "42501",
			`new row violates row-level security policy for table "user_sessions"`, 0},
		{"no verified context", "user_sessions", rows(a.OrganizationID, 1, 4000), 0, "42501",
			`new row violates row-level security policy for table "user_sessions"`, 0},
		{"5,001 rows", "user_sessions", rows(a.OrganizationID, 5001, 10000), a.OrganizationID, "22023",
			"resync_insert: 5001 rows at once, at most 5000", 0},
		{"not an array", "user_sessions", `{"id": "0190a6b4-0000-7000-8000-000000000009"}`, a.OrganizationID, "22023",
			"resync_insert: the rows must be a JSON array", 0},
		{"a relational table", "organizations", `[]`, a.OrganizationID, "22023", "resync_insert: unknown table organizations", 0},
		{"the aggregate", "activity_hourly", `[]`, a.OrganizationID, "22023", "resync_insert: unknown table activity_hourly", 0},
		{"a qualified name", "monitoring.user_sessions", `[]`, a.OrganizationID, "22023", "resync_insert: unknown table monitoring.user_sessions", 0},
		{"an injection", `user_sessions; DROP TABLE organizations`, `[]`, a.OrganizationID, "22023",
			"resync_insert: unknown table user_sessions; DROP TABLE organizations", 0},
	}
	for _, tt := range tests {
		var n int
		run := func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `SELECT monitoring.resync_insert($1, $2::jsonb)`, tt.table, tt.rows).Scan(&n)
		}
		if tt.org != 0 {
			err = postgres.InTenant(ctx, pool, postgres.Tenant{OrganizationID: tt.org}, run)
		} else {
			err = pgx.BeginFunc(ctx, pool, run)
		}
		var pe *pgconn.PgError
		switch {
		case tt.wantCode == "" && (err != nil || n != tt.wantInserted):
			t.Errorf("%s: %d inserted, %v; want %d", tt.name, n, err, tt.wantInserted)
		case tt.wantCode != "" && (!errors.As(err, &pe) || pe.Code != tt.wantCode || pe.Message != tt.wantMsg):
			t.Errorf("%s: %v, want SQLSTATE %s %q", tt.name, err, tt.wantCode, tt.wantMsg)
		}
	}
	var stored, foreign int
	if err := admin.QueryRow(ctx, `SELECT count(*) FILTER (WHERE organization_id = $1), count(*) FILTER (WHERE organization_id <> $1)
		FROM monitoring.user_sessions WHERE seq > 1000`, a.OrganizationID).Scan(&stored, &foreign); err != nil {
		t.Fatal(err)
	}
	if stored != 3 || foreign != 0 {
		t.Errorf("rows stored by resync_insert: %d of organisation %d (want 3), %d of others (want 0)", stored, a.OrganizationID, foreign)
	}
}
