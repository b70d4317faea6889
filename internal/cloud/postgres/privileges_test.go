package postgres_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// privilegesQuery lists every effective privilege (granted directly or to
// PUBLIC) each runtime role holds on the database, the schemas, and every
// table, view, sequence, column and function outside the system schemas,
// as "role kind object privilege". Partitions and chunks included, so that
// one created later with a grant shows up.
const privilegesQuery = `
WITH roles(r) AS (VALUES ('staff_dashboard'), ('staff_ingest'), ('staff_admin')),
schemas AS (
    SELECT oid, nspname FROM pg_namespace
    WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND nspname NOT LIKE 'pg_temp%' AND nspname NOT LIKE 'pg_toast_temp%'
),
tp(p) AS (VALUES ('SELECT'), ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE'), ('REFERENCES'), ('TRIGGER')),
cp(p) AS (VALUES ('SELECT'), ('INSERT'), ('UPDATE'), ('REFERENCES'))
SELECT r || ' database ' || p FROM roles, (VALUES ('CONNECT'), ('CREATE'), ('TEMPORARY')) d(p)
 WHERE has_database_privilege(r, current_database(), p)
UNION ALL
SELECT r || ' schema ' || s.nspname || ' ' || p FROM roles, schemas s, (VALUES ('USAGE'), ('CREATE')) sp(p)
 WHERE has_schema_privilege(r, s.oid, p)
UNION ALL
SELECT r || ' ' || CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' WHEN 'm' THEN 'view' ELSE 'table' END
       || ' ' || s.nspname || '.' || c.relname || ' ' || p
  FROM roles, pg_class c JOIN schemas s ON s.oid = c.relnamespace, tp
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND has_table_privilege(r, c.oid, p)
UNION ALL
SELECT r || ' sequence ' || s.nspname || '.' || c.relname || ' ' || p
  FROM roles, pg_class c JOIN schemas s ON s.oid = c.relnamespace, (VALUES ('USAGE'), ('SELECT'), ('UPDATE')) sq(p)
 WHERE c.relkind = 'S' AND has_sequence_privilege(r, c.oid, p)
UNION ALL
SELECT r || ' column ' || s.nspname || '.' || c.relname || '.' || a.attname || ' ' || p
  FROM roles, pg_class c JOIN schemas s ON s.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid, cp
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped
   AND has_column_privilege(r, c.oid, a.attnum, p) AND NOT has_table_privilege(r, c.oid, p)
UNION ALL
SELECT r || ' function ' || p.oid::regprocedure::text || ' EXECUTE'
  FROM roles, pg_proc p JOIN schemas s ON s.oid = p.pronamespace
 WHERE has_function_privilege(r, p.oid, 'EXECUTE')
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
ORDER BY 1`

// runtimePrivileges is every privilege the runtime roles hold, exactly:
// the list docs/architecture.md ("Roles and privileges") explains line by
// line. TestRuntimeRolePrivilegesAreExactlyTheDocumentedList fails on any
// privilege missing from or added to the database.
var runtimePrivileges = []string{
	// staff_admin
	"staff_admin database CONNECT",
	"staff_admin sequence public.devices_update_version USAGE",
	"staff_admin function app.actor() EXECUTE",
	"staff_admin function app.all_organizations() EXECUTE",
	"staff_admin function app.app_role() EXECUTE",
	"staff_admin function app.audit(bigint,text,text,text,text,jsonb) EXECUTE",
	"staff_admin function app.context() EXECUTE",
	"staff_admin function app.dashboard_events_bounds() EXECUTE",
	"staff_admin function app.dashboard_events_prune() EXECUTE",
	"staff_admin function app.dashboard_events_publish(integer) EXECUTE",
	"staff_admin function app.org_id() EXECUTE",
	"staff_admin function app.scope() EXECUTE",
	"staff_admin function app.user_id() EXECUTE",
	"staff_admin schema app USAGE",
	"staff_admin schema monitoring_read USAGE",
	"staff_admin schema public USAGE",
	"staff_admin table public.agent_instances DELETE",
	"staff_admin table public.agent_instances INSERT",
	"staff_admin table public.agent_instances SELECT",
	"staff_admin table public.agent_instances UPDATE",
	"staff_admin table public.audit_log SELECT",
	"staff_admin table public.dashboard_events SELECT",
	"staff_admin table public.departments DELETE",
	"staff_admin table public.departments INSERT",
	"staff_admin table public.departments SELECT",
	"staff_admin table public.departments UPDATE",
	"staff_admin table public.device_adapters SELECT",
	"staff_admin table public.device_commands DELETE",
	"staff_admin table public.device_commands INSERT",
	"staff_admin table public.device_commands SELECT",
	"staff_admin table public.device_commands UPDATE",
	"staff_admin table public.devices DELETE",
	"staff_admin table public.devices INSERT",
	"staff_admin table public.devices SELECT",
	"staff_admin table public.devices UPDATE",
	"staff_admin table public.employee_identities DELETE",
	"staff_admin table public.employee_identities INSERT",
	"staff_admin table public.employee_identities SELECT",
	"staff_admin table public.employee_identities UPDATE",
	"staff_admin table public.employees DELETE",
	"staff_admin table public.employees INSERT",
	"staff_admin table public.employees SELECT",
	"staff_admin table public.employees UPDATE",
	"staff_admin table public.gateway_commands DELETE",
	"staff_admin table public.gateway_commands INSERT",
	"staff_admin table public.gateway_commands SELECT",
	"staff_admin table public.gateway_commands UPDATE",
	"staff_admin table public.gateway_drop_reports SELECT",
	"staff_admin table public.gateway_ingest_stats SELECT",
	"staff_admin table public.gateway_instances DELETE",
	"staff_admin table public.gateway_instances INSERT",
	"staff_admin table public.gateway_instances SELECT",
	"staff_admin table public.gateway_instances UPDATE",
	"staff_admin table public.gateway_status_snapshots DELETE",
	"staff_admin table public.gateway_status_snapshots INSERT",
	"staff_admin table public.gateway_status_snapshots SELECT",
	"staff_admin table public.gateway_status_snapshots UPDATE",
	"staff_admin table public.organizations DELETE",
	"staff_admin table public.organizations INSERT",
	"staff_admin table public.organizations SELECT",
	"staff_admin table public.organizations UPDATE",
	"staff_admin table public.policies DELETE",
	"staff_admin table public.policies INSERT",
	"staff_admin table public.policies SELECT",
	"staff_admin table public.policies UPDATE",
	"staff_admin table public.policy_changes DELETE",
	"staff_admin table public.policy_changes INSERT",
	"staff_admin table public.policy_changes SELECT",
	"staff_admin table public.policy_changes UPDATE",
	"staff_admin table public.policy_distribution_targets INSERT",
	"staff_admin table public.policy_distribution_targets SELECT",
	"staff_admin table public.policy_distribution_targets UPDATE",
	"staff_admin table public.policy_distributions INSERT",
	"staff_admin table public.policy_distributions SELECT",
	"staff_admin table public.policy_distributions UPDATE",
	"staff_admin table public.policy_versions DELETE",
	"staff_admin table public.policy_versions INSERT",
	"staff_admin table public.policy_versions SELECT",
	"staff_admin table public.policy_versions UPDATE",
	"staff_admin table public.provisioning_tokens DELETE",
	"staff_admin table public.provisioning_tokens INSERT",
	"staff_admin table public.provisioning_tokens SELECT",
	"staff_admin table public.provisioning_tokens UPDATE",
	"staff_admin table public.retention_policies DELETE",
	"staff_admin table public.retention_policies INSERT",
	"staff_admin table public.retention_policies SELECT",
	"staff_admin table public.retention_policies UPDATE",
	"staff_admin table public.users DELETE",
	"staff_admin table public.users INSERT",
	"staff_admin table public.users SELECT",
	"staff_admin table public.users UPDATE",
	"staff_admin view monitoring_read.active_windows SELECT",
	"staff_admin view monitoring_read.activity_day_usage SELECT",
	"staff_admin view monitoring_read.activity_days SELECT",
	"staff_admin view monitoring_read.activity_dirty SELECT",
	"staff_admin view monitoring_read.activity_hourly SELECT",
	"staff_admin view monitoring_read.device_events SELECT",
	"staff_admin view monitoring_read.screenshots SELECT",
	"staff_admin view monitoring_read.user_sessions SELECT",
	"staff_admin view monitoring_read.visited_sites SELECT",
	// staff_dashboard
	"staff_dashboard database CONNECT",
	"staff_dashboard sequence public.devices_update_version USAGE",
	"staff_dashboard function app.actor() EXECUTE",
	"staff_dashboard function app.all_organizations() EXECUTE",
	"staff_dashboard function app.app_role() EXECUTE",
	"staff_dashboard function app.audit(bigint,text,text,text,text,jsonb) EXECUTE",
	"staff_dashboard function app.context() EXECUTE",
	"staff_dashboard function app.dashboard_events_bounds() EXECUTE",
	"staff_dashboard function app.dashboard_events_prune() EXECUTE",
	"staff_dashboard function app.dashboard_events_publish(integer) EXECUTE",
	"staff_dashboard function app.org_id() EXECUTE",
	"staff_dashboard function app.scope() EXECUTE",
	"staff_dashboard function app.user_id() EXECUTE",
	"staff_dashboard schema app USAGE",
	"staff_dashboard schema monitoring_read USAGE",
	"staff_dashboard schema public USAGE",
	"staff_dashboard table public.agent_instances DELETE",
	"staff_dashboard table public.agent_instances INSERT",
	"staff_dashboard table public.agent_instances SELECT",
	"staff_dashboard table public.agent_instances UPDATE",
	"staff_dashboard table public.audit_log SELECT",
	"staff_dashboard table public.dashboard_events SELECT",
	"staff_dashboard table public.departments DELETE",
	"staff_dashboard table public.departments INSERT",
	"staff_dashboard table public.departments SELECT",
	"staff_dashboard table public.departments UPDATE",
	"staff_dashboard table public.device_adapters SELECT",
	"staff_dashboard table public.device_commands DELETE",
	"staff_dashboard table public.device_commands INSERT",
	"staff_dashboard table public.device_commands SELECT",
	"staff_dashboard table public.device_commands UPDATE",
	"staff_dashboard table public.devices DELETE",
	"staff_dashboard table public.devices INSERT",
	"staff_dashboard table public.devices SELECT",
	"staff_dashboard table public.devices UPDATE",
	"staff_dashboard table public.employee_identities DELETE",
	"staff_dashboard table public.employee_identities INSERT",
	"staff_dashboard table public.employee_identities SELECT",
	"staff_dashboard table public.employee_identities UPDATE",
	"staff_dashboard table public.employees DELETE",
	"staff_dashboard table public.employees INSERT",
	"staff_dashboard table public.employees SELECT",
	"staff_dashboard table public.employees UPDATE",
	"staff_dashboard table public.gateway_commands DELETE",
	"staff_dashboard table public.gateway_commands INSERT",
	"staff_dashboard table public.gateway_commands SELECT",
	"staff_dashboard table public.gateway_commands UPDATE",
	"staff_dashboard table public.gateway_drop_reports SELECT",
	"staff_dashboard table public.gateway_ingest_stats SELECT",
	"staff_dashboard table public.gateway_instances DELETE",
	"staff_dashboard table public.gateway_instances INSERT",
	"staff_dashboard table public.gateway_instances SELECT",
	"staff_dashboard table public.gateway_instances UPDATE",
	"staff_dashboard table public.gateway_status_snapshots DELETE",
	"staff_dashboard table public.gateway_status_snapshots INSERT",
	"staff_dashboard table public.gateway_status_snapshots SELECT",
	"staff_dashboard table public.gateway_status_snapshots UPDATE",
	"staff_dashboard table public.organizations DELETE",
	"staff_dashboard table public.organizations INSERT",
	"staff_dashboard table public.organizations SELECT",
	"staff_dashboard table public.organizations UPDATE",
	"staff_dashboard table public.policies DELETE",
	"staff_dashboard table public.policies INSERT",
	"staff_dashboard table public.policies SELECT",
	"staff_dashboard table public.policies UPDATE",
	"staff_dashboard table public.policy_changes DELETE",
	"staff_dashboard table public.policy_changes INSERT",
	"staff_dashboard table public.policy_changes SELECT",
	"staff_dashboard table public.policy_changes UPDATE",
	"staff_dashboard table public.policy_distribution_targets INSERT",
	"staff_dashboard table public.policy_distribution_targets SELECT",
	"staff_dashboard table public.policy_distribution_targets UPDATE",
	"staff_dashboard table public.policy_distributions INSERT",
	"staff_dashboard table public.policy_distributions SELECT",
	"staff_dashboard table public.policy_distributions UPDATE",
	"staff_dashboard table public.policy_versions DELETE",
	"staff_dashboard table public.policy_versions INSERT",
	"staff_dashboard table public.policy_versions SELECT",
	"staff_dashboard table public.policy_versions UPDATE",
	"staff_dashboard table public.provisioning_tokens DELETE",
	"staff_dashboard table public.provisioning_tokens INSERT",
	"staff_dashboard table public.provisioning_tokens SELECT",
	"staff_dashboard table public.provisioning_tokens UPDATE",
	"staff_dashboard table public.retention_policies DELETE",
	"staff_dashboard table public.retention_policies INSERT",
	"staff_dashboard table public.retention_policies SELECT",
	"staff_dashboard table public.retention_policies UPDATE",
	"staff_dashboard table public.users DELETE",
	"staff_dashboard table public.users INSERT",
	"staff_dashboard table public.users SELECT",
	"staff_dashboard table public.users UPDATE",
	"staff_dashboard view monitoring_read.active_windows SELECT",
	"staff_dashboard view monitoring_read.activity_day_usage SELECT",
	"staff_dashboard view monitoring_read.activity_days SELECT",
	"staff_dashboard view monitoring_read.activity_dirty SELECT",
	"staff_dashboard view monitoring_read.activity_hourly SELECT",
	"staff_dashboard view monitoring_read.device_events SELECT",
	"staff_dashboard view monitoring_read.screenshots SELECT",
	"staff_dashboard view monitoring_read.user_sessions SELECT",
	"staff_dashboard view monitoring_read.visited_sites SELECT",
	// staff_ingest
	"staff_ingest database CONNECT",
	"staff_ingest function app.actor() EXECUTE",
	"staff_ingest function app.all_organizations() EXECUTE",
	"staff_ingest function app.app_role() EXECUTE",
	"staff_ingest function app.audit(bigint,text,text,text,text,jsonb) EXECUTE",
	"staff_ingest function app.context() EXECUTE",
	"staff_ingest function app.org_id() EXECUTE",
	"staff_ingest function app.scope() EXECUTE",
	"staff_ingest function app.user_id() EXECUTE",
	"staff_ingest function gateway_by_api_key_hash(bytea) EXECUTE",
	"staff_ingest function gateway_commands_due(uuid[]) EXECUTE",
	"staff_ingest function gateway_commands_sweep(interval) EXECUTE",
	"staff_ingest function gateway_provision(bigint,text,bytea,bytea,text) EXECUTE",
	"staff_ingest function gateways_mark_offline_after(interval) EXECUTE",
	"staff_ingest function monitoring.chunk_checksum(text,text,uuid[],timestamp with time zone[]) EXECUTE",
	"staff_ingest function monitoring.drop_expired_partitions() EXECUTE",
	"staff_ingest function monitoring.ensure_day_partitions(text,text[],date[]) EXECUTE",
	"staff_ingest function monitoring.ensure_recent_partitions(integer,integer) EXECUTE",
	"staff_ingest function monitoring.fallback_chunk(text,date,integer) EXECUTE",
	"staff_ingest function monitoring.fallback_days(text) EXECUTE",
	"staff_ingest function monitoring.fallback_delete(text,uuid[],timestamp with time zone[]) EXECUTE",
	"staff_ingest function monitoring.fallback_organizations() EXECUTE",
	"staff_ingest function monitoring.fallback_rows() EXECUTE",
	"staff_ingest function monitoring.screenshot_files_referenced(bigint,date,text[]) EXECUTE",
	"staff_ingest function monitoring.storage_kind() EXECUTE",
	"staff_ingest function monitoring.stored_event_seqs(text,text,uuid[],timestamp with time zone[]) EXECUTE",
	"staff_ingest function monitoring.stored_screenshots(text,uuid[],timestamp with time zone[]) EXECUTE",
	"staff_ingest function policy_distributions_active() EXECUTE",
	"staff_ingest function policy_distributions_ready() EXECUTE",
	"staff_ingest function gateway_commands_depth() EXECUTE", // 00042: the queue's depth, counts only
	"staff_ingest schema app USAGE",
	"staff_ingest schema monitoring USAGE",
	"staff_ingest schema monitoring_fallback USAGE",
	"staff_ingest schema public USAGE",
	"staff_ingest table monitoring.retention SELECT",
	"staff_ingest table public.agent_instances INSERT",
	"staff_ingest table public.agent_instances SELECT",
	"staff_ingest table public.agent_instances UPDATE",
	"staff_ingest table public.devices SELECT",
	"staff_ingest column public.devices.last_seen_at UPDATE",
	"staff_ingest column public.devices.serial UPDATE",
	"staff_ingest column public.devices.status UPDATE",
	"staff_ingest table public.gateway_commands INSERT",
	"staff_ingest table public.gateway_commands SELECT",
	"staff_ingest table public.gateway_commands UPDATE",
	"staff_ingest table public.gateway_drop_reports INSERT",
	"staff_ingest table public.gateway_drop_reports SELECT",
	"staff_ingest table public.gateway_ingest_stats INSERT",
	"staff_ingest table public.gateway_ingest_stats SELECT",
	"staff_ingest table public.gateway_ingest_stats UPDATE",
	"staff_ingest table public.gateway_instances SELECT",
	"staff_ingest table public.gateway_instances UPDATE",
	"staff_ingest table public.gateway_resent_seqs INSERT",
	"staff_ingest table public.gateway_resent_seqs SELECT",
	"staff_ingest table public.gateway_status_snapshots INSERT",
	"staff_ingest table public.gateway_status_snapshots SELECT",
	"staff_ingest table public.ingest_batches DELETE",
	"staff_ingest table public.ingest_batches INSERT",
	"staff_ingest table public.ingest_batches SELECT",
	"staff_ingest table public.ingest_batches UPDATE",
	"staff_ingest table public.ingest_store_accounting DELETE",
	"staff_ingest table public.ingest_store_accounting INSERT",
	"staff_ingest table public.ingest_store_accounting SELECT",
	"staff_ingest table public.ingest_store_accounting UPDATE",
	"staff_ingest table public.organizations SELECT",
	"staff_ingest table public.policies SELECT",
	"staff_ingest table public.policy_distribution_targets INSERT",
	"staff_ingest table public.policy_distribution_targets SELECT",
	"staff_ingest table public.policy_distribution_targets UPDATE",
	"staff_ingest table public.policy_distributions INSERT",
	"staff_ingest table public.policy_distributions SELECT",
	"staff_ingest table public.policy_distributions UPDATE",
	"staff_ingest table public.policy_versions SELECT",
	// 00018: TimescaleDB job health and the bounded policy functions
	"staff_ingest function monitoring.apply_compression(text) EXECUTE",
	"staff_ingest function monitoring.apply_retention(text) EXECUTE",
	"staff_ingest function monitoring.job_health() EXECUTE",
	// 00020: time-series inserts only through bounded definer functions
	// (no INSERT on the ten parents any more)
	"staff_ingest function monitoring.insert_active_windows(text,bigint,uuid,uuid[],bigint[],text[],text[],text[],text[],text[],text[],timestamp with time zone[],integer[]) EXECUTE",
	"staff_ingest function monitoring.insert_device_events(text,bigint,uuid,uuid[],bigint[],bigint[],text[],timestamp with time zone[],text[],text[],integer[],integer[],integer[],text[],text[]) EXECUTE",
	"staff_ingest function monitoring.insert_screenshots(text,bigint,uuid,uuid[],bigint[],text[],text[],text[],text[],bigint[],text[],timestamp with time zone[]) EXECUTE",
	"staff_ingest function monitoring.insert_user_sessions(text,bigint,uuid,uuid[],bigint[],text[],text[],text[],text[],timestamp with time zone[]) EXECUTE",
	"staff_ingest function monitoring.insert_visited_sites(text,bigint,uuid,uuid[],bigint[],text[],text[],text[],text[],text[],timestamp with time zone[],integer[]) EXECUTE",
	"staff_ingest function monitoring.resync_insert(text,jsonb) EXECUTE",
	// 00027: retention, only through definer functions that compute the
	// horizons themselves, bound a batch and require the retention lock;
	// the run history readable
	"staff_ingest function monitoring.retention_delete(text,bigint,integer) EXECUTE",
	"staff_ingest function monitoring.retention_expired_partitions() EXECUTE",
	"staff_ingest function monitoring.retention_horizons() EXECUTE",
	"staff_ingest function monitoring.retention_preview() EXECUTE",
	"staff_ingest function monitoring.retention_rollups(integer) EXECUTE",
	"staff_ingest function monitoring.retention_run_begin(boolean) EXECUTE",
	"staff_ingest function monitoring.retention_run_finish(bigint,text) EXECUTE",
	"staff_ingest function monitoring.retention_run_progress(bigint,text,bigint,bigint,bigint,integer) EXECUTE",
	"staff_ingest table monitoring.retention_runs SELECT",
	// 00026: the rollups' maintainer, only through definer functions
	"staff_ingest function monitoring.activity_claim(integer,timestamp with time zone) EXECUTE",
	"staff_ingest function monitoring.activity_backlog(timestamp with time zone) EXECUTE",
	"staff_ingest function monitoring.activity_source(bigint,text,timestamp with time zone,timestamp with time zone) EXECUTE",
	"staff_ingest function monitoring.activity_store(bigint,text,date,text,bytea,timestamp with time zone,timestamp with time zone,text[],text[],text[],bigint[],bigint[]) EXECUTE",
	"staff_ingest function monitoring.activity_time_zone(bigint) EXECUTE",
	// 00021: dashboard sign-in, only through definer functions (no
	// privilege on the auth_* tables)
	"staff_admin function app.login_lookup(text) EXECUTE",
	"staff_admin function app.login_result(text,bigint,text,text,text,bytea,interval,interval,integer,interval,interval,inet,text) EXECUTE",
	"staff_admin function app.password_change(bigint,uuid,text,bytea,interval,interval,inet,text) EXECUTE",
	"staff_admin function app.session_active(uuid) EXECUTE",
	"staff_admin function app.session_email(bigint,uuid) EXECUTE",
	"staff_admin function app.session_logout(bytea,inet) EXECUTE",
	"staff_admin function app.session_refresh(bytea,bytea,interval,inet) EXECUTE",
	"staff_admin function app.sessions_revoke_user(bigint,uuid,inet) EXECUTE",
	"staff_dashboard function app.login_lookup(text) EXECUTE",
	"staff_dashboard function app.login_result(text,bigint,text,text,text,bytea,interval,interval,integer,interval,interval,inet,text) EXECUTE",
	"staff_dashboard function app.password_change(bigint,uuid,text,bytea,interval,interval,inet,text) EXECUTE",
	"staff_dashboard function app.session_active(uuid) EXECUTE",
	"staff_dashboard function app.session_email(bigint,uuid) EXECUTE",
	"staff_dashboard function app.session_logout(bytea,inet) EXECUTE",
	"staff_dashboard function app.session_refresh(bytea,bytea,interval,inet) EXECUTE",
	"staff_dashboard function app.sessions_revoke_user(bigint,uuid,inet) EXECUTE",
	// 00025: an administrator's password reset ends the user's sessions
	"staff_admin function app.user_sessions_end(bigint) EXECUTE",
	"staff_dashboard function app.user_sessions_end(bigint) EXECUTE",
	// 00041: a user sets their own console language
	"staff_admin function app.set_user_language(text) EXECUTE",
	"staff_dashboard function app.set_user_language(text) EXECUTE",
	// 00022: the role and scope helpers of the dashboard's row-level
	// security, for the two login roles that serve people
	"staff_admin function app.scope_departments() EXECUTE",
	"staff_admin function app.scope_employees() EXECUTE",
	"staff_admin function app.scope_identities(text) EXECUTE",
	"staff_admin function app.sees_whole_organization() EXECUTE",
	"staff_admin function app.writes_organization() EXECUTE",
	"staff_admin function app.writes_people() EXECUTE",
	"staff_dashboard function app.scope_departments() EXECUTE",
	"staff_dashboard function app.scope_employees() EXECUTE",
	"staff_dashboard function app.scope_identities(text) EXECUTE",
	"staff_dashboard function app.sees_whole_organization() EXECUTE",
	"staff_dashboard function app.writes_organization() EXECUTE",
	"staff_dashboard function app.writes_people() EXECUTE",
	// 00026: what a report applies, for every role
	"staff_admin function app.report_settings() EXECUTE",
	"staff_dashboard function app.report_settings() EXECUTE",
}

// TestRuntimeRolePrivilegesAreExactlyTheDocumentedList computes every
// runtime role's privileges from pg_catalog, as migrated and after the
// ingest role created partitions, and compares them with runtimePrivileges.
// Run with PRINT_PRIVILEGES=1 to print the actual list.
func TestRuntimeRolePrivilegesAreExactlyTheDocumentedList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	// Database privileges are not copied from the template: bootstrap this
	// database as staffctl migrate up does.
	if err := postgres.Bootstrap(ctx, db.AdminURL); err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	check := func(t *testing.T) {
		rows, err := admin.Query(ctx, privilegesQuery)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		// TimescaleDB only: its own objects and the chunks, checked apart.
		got = timescaleDBPrivileges(ctx, t, admin, got)
		if os.Getenv("PRINT_PRIVILEGES") != "" {
			var b strings.Builder
			for _, g := range got {
				fmt.Fprintf(&b, "\t%q,\n", g)
			}
			t.Logf("actual privileges:\n%s", b.String())
		}
		want := slices.Clone(runtimePrivileges)
		slices.Sort(want)
		for _, g := range got {
			if _, found := slices.BinarySearch(want, g); !found {
				t.Errorf("extra privilege: %s", g)
			}
		}
		slices.Sort(got)
		for _, w := range want {
			if _, found := slices.BinarySearch(got, w); !found {
				t.Errorf("missing privilege: %s", w)
			}
		}
	}
	t.Run("as migrated", check)
	ingest, err := pgx.Connect(ctx, db.IngestURL)
	if err != nil {
		t.Fatal(err)
	}
	defer ingest.Close(ctx)
	if _, err := ingest.Exec(ctx, `SELECT monitoring.ensure_recent_partitions(20, 3)`); err != nil {
		t.Fatal(err)
	}
	makeTimescaleDBChunks(ctx, t, db)
	t.Run("after new partitions", check)
}
