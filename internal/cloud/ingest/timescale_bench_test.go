package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/ingest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// BenchmarkInsertCheck measures what the organisation check of time-series
// inserts costs (issue 12). On TimescaleDB it is the row trigger
// monitoring.check_insert_organization, which calls app.org_id() — the
// HMAC verification of the tenant context, in plpgsql — for every row; on
// native partitions it is the row-level security INSERT policy, whose
// (SELECT app.org_id()) is evaluated once per statement. check=off removes
// it (drops the triggers, or disables row-level security) in this
// benchmark's own database; on TimescaleDB, check=statement replaces the
// row triggers by a statement-level trigger over the transition table of
// the inserted rows, which verifies the context once per statement (the
// cheaper design issue 12's benchmark proposes; it refuses another
// organisation's row like the row trigger, checked here). Two paths each: api, the issue-4 ingest path
// (4 gateways, 1,000-event gzip batches through the Agent API, as
// BenchmarkIngestVsCopyFrom's api side), and sql, one INSERT … SELECT of
// 1,000 active_windows rows as the ingest role in its verified context (the
// check and the insert alone). Runs on whichever engine the test server
// gives: TEST_DATABASE_URL at a server that preloads TimescaleDB for the
// trigger.
func BenchmarkInsertCheck(b *testing.B) {
	const perBatch = 1000
	ctx := context.Background()
	for _, check := range []string{"on", "statement", "off"} {
		e := newEnv(b, ingest.DefaultLimits())
		var kind string
		if err := e.admin.QueryRow(ctx, `SELECT monitoring.storage_kind()`).Scan(&kind); err != nil {
			b.Fatal(err)
		}
		if check == "statement" && kind != "timescaledb" {
			continue // native partitions check once per statement already (row-level security)
		}
		if check != "on" {
			removeInsertCheck(b, e.admin, kind)
		}
		pool, err := postgres.Connect(ctx, e.ingestURL, benchWorkers, pg.ContextKey())
		if err != nil {
			b.Fatal(err)
		}
		defer pool.Close()
		if check == "statement" {
			statementInsertCheck(b, e.admin, pool, e.a.org, e.b.org, e.a.id)
		}
		// Today's and yesterday's partitions (a no-op on TimescaleDB).
		if _, err := pool.Exec(ctx, `SELECT monitoring.ensure_recent_partitions(1, 1)`); err != nil {
			b.Fatal(err)
		}
		b.Run(kind+"/check="+check+"/api", func(b *testing.B) {
			bodies := make([][]byte, b.N)
			for i := range bodies {
				body, _ := json.Marshal(protocol.LogBatch{Events: makeEvents(perBatch, int64(i*perBatch+1))})
				bodies[i] = gz(body)
			}
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchWorkers}}
			runConcurrently(b, perBatch, func(i int) error {
				req, _ := http.NewRequest(http.MethodPost, e.srv.URL+protocol.PathIngestLogs, bytesReader(bodies[i]))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Content-Encoding", "gzip")
				req.Header.Set(protocol.HeaderAPIKey, e.a.key)
				req.Header.Set(protocol.HeaderIdempotencyKey, uuid.NewString())
				resp, err := client.Do(req)
				if err != nil {
					return err
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					return errStatus(resp.StatusCode)
				}
				return nil
			})
		})
		b.Run(kind+"/check="+check+"/sql", func(b *testing.B) {
			gw := uuid.MustParse(e.a.id)
			runConcurrently(b, perBatch, func(i int) error {
				return postgres.InTenant(ctx, pool, postgres.Tenant{OrganizationID: e.a.org}, func(tx pgx.Tx) error {
					_, err := tx.Exec(ctx, `INSERT INTO monitoring.active_windows (id, organization_id, gateway_id, seq, agent_uid,
						    computer_uid, user_sid, window_title, process_name, datetime, duration_seconds)
						SELECT gen_random_uuid(), $1, $2, $3::bigint + g, 'agent-' || g % 7, 'PC-' || g % 7, 'S-1-5-21-100-' || g % 7,
						       'main.go', 'code.exe', now() - g * interval '1 second', 30
						FROM generate_series(1, $4::int) g`, e.a.org, gw, int64(i)*perBatch, perBatch)
					return err
				})
			})
		})
	}
}

// removeInsertCheck removes the organisation check of the time-series
// inserts in a benchmark's database, and checks that it is gone.
func removeInsertCheck(b *testing.B, admin *pgx.Conn, kind string) {
	b.Helper()
	ctx := context.Background()
	q := `DO $$
		DECLARE t text;
		BEGIN
		    FOR t IN SELECT table_name FROM monitoring.retention LOOP
		        EXECUTE format('ALTER TABLE monitoring.%I NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY', t);
		    END LOOP;
		END $$`
	if kind == "timescaledb" {
		q = `DO $$
			DECLARE t text;
			BEGIN
			    FOR t IN SELECT table_name FROM monitoring.retention LOOP
			        EXECUTE format('DROP TRIGGER check_insert_organization ON monitoring.%I', t);
			    END LOOP;
			END $$`
	}
	if _, err := admin.Exec(ctx, q); err != nil {
		b.Fatalf("remove the insert check: %v", err)
	}
	var left int
	err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN monitoring.retention r ON c.oid = format('monitoring.%I', r.table_name)::regclass
		WHERE c.relrowsecurity OR EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = c.oid AND g.tgname = 'check_insert_organization')`).Scan(&left)
	if err != nil {
		b.Fatal(err)
	}
	if left != 0 {
		b.Fatalf("%d tables still check inserts", left)
	}
}

// statementInsertCheck installs, in a benchmark's database whose row
// triggers are gone, the statement-level organisation check over the
// inserted rows' transition table, and checks that it still refuses a row
// of another organisation (other) in org's context, and takes org's own.
func statementInsertCheck(b *testing.B, admin *pgx.Conn, pool *pgxpool.Pool, org, other int64, gateway string) {
	b.Helper()
	ctx := context.Background()
	_, err := admin.Exec(ctx, `
		CREATE FUNCTION monitoring.check_insert_organization_statement() RETURNS trigger
		LANGUAGE plpgsql SET search_path = pg_catalog AS $f$
		BEGIN
		    IF EXISTS (SELECT 1 FROM new_rows WHERE organization_id IS DISTINCT FROM (SELECT app.org_id()))
		       AND NOT (SELECT r.rolsuper OR r.rolbypassrls OR r.rolname = 'staff_owner'
		                  FROM pg_roles r WHERE r.rolname = current_user) THEN
		        RAISE EXCEPTION 'new row violates row-level security policy for table "%"', TG_TABLE_NAME
		            USING ERRCODE = 'insufficient_privilege';
		    END IF;
		    RETURN NULL;
		END $f$;
		DO $$
		DECLARE t text;
		BEGIN
		    FOR t IN SELECT table_name FROM monitoring.retention LOOP
		        EXECUTE format('CREATE TRIGGER check_insert_organization_statement AFTER INSERT ON monitoring.%I
		            REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
		            EXECUTE FUNCTION monitoring.check_insert_organization_statement()', t);
		    END LOOP;
		END $$`)
	if err != nil {
		b.Fatalf("statement-level insert check: %v", err)
	}
	insert := func(rowOrg int64) error {
		return postgres.InTenant(ctx, pool, postgres.Tenant{OrganizationID: org}, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO monitoring.active_windows (id, organization_id, gateway_id, seq, agent_uid,
				    computer_uid, user_sid, datetime)
				VALUES (gen_random_uuid(), $1, $2, 0, 'a', 'c', 'u', now()), (gen_random_uuid(), $3, $2, 0, 'a', 'c', 'u', now())
				ON CONFLICT DO NOTHING`, org, uuid.MustParse(gateway), rowOrg)
			return err
		})
	}
	var pgErr *pgconn.PgError
	if err := insert(other); !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		b.Fatalf("another organisation's row in a batch: %v, want 42501", err)
	}
	if err := insert(org); err != nil {
		b.Fatalf("the organisation's own rows: %v", err)
	}
}
