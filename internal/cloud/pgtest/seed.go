package pgtest

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Seeded holds the ids of one organisation seeded by SeedOrganization.
type Seeded struct {
	OrganizationID int64
	DepartmentID   int64
	EmployeeID     int64
	UserID         int64
	PolicyID       int64
	GatewayID      uuid.UUID
	DeviceID       int64
}

// SeedOrganization creates an organisation with one row in every tenant
// table and every time series, all shaped identically whatever the slug, so
// that two seeded organisations differ only by their ids. conn must bypass
// row-level security (the administrator of the test server).
func SeedOrganization(ctx context.Context, conn *pgx.Conn, slug string) (Seeded, error) {
	var s Seeded
	tx, err := conn.Begin(ctx)
	if err != nil {
		return s, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	now := time.Now().UTC()
	one := func(dst any, sql string, args ...any) {
		if err != nil {
			return
		}
		if dst == nil {
			_, err = tx.Exec(ctx, sql, args...)
		} else {
			err = tx.QueryRow(ctx, sql, args...).Scan(dst)
		}
		if err != nil {
			err = fmt.Errorf("seed %s: %s: %w", slug, sql, err)
		}
	}
	one(&s.OrganizationID, `INSERT INTO organizations (name, slug) VALUES ($1, $2) RETURNING id`, "Org "+slug, slug)
	org := s.OrganizationID
	one(&s.DepartmentID, `INSERT INTO departments (organization_id, name) VALUES ($1, 'Engineering') RETURNING id`, org)
	one(&s.EmployeeID, `INSERT INTO employees (organization_id, department_id, employee_number, first_name, last_name)
		VALUES ($1, $2, 'E-1', 'Ann', 'Lee') RETURNING id`, org, s.DepartmentID)
	one(nil, `INSERT INTO employee_identities (organization_id, employee_id, kind, value) VALUES ($1, $2, 'windows_sid', 'S-1-5-21-1')`, org, s.EmployeeID)
	one(&s.UserID, `INSERT INTO users (organization_id, email, password_hash, role, department_id)
		VALUES ($1, $2, 'x', 'ORG_ADMIN', $3) RETURNING id`, org, "admin@"+slug+".test", s.DepartmentID)
	// Released as the policy service releases: its version 1.0.0 (below)
	// is its current one, so a release of the seeded policy follows it
	// (1.1.0) instead of colliding with it.
	one(&s.PolicyID, `INSERT INTO policies (organization_id, name, content, current_version, created_by) VALUES ($1, 'Default', '{"screenshots":true}', '1.0.0', $2) RETURNING id`, org, s.UserID)
	one(&s.GatewayID, `INSERT INTO gateway_instances (organization_id, serial, api_key_hash, status)
		VALUES ($1, 'GW-1', sha256(convert_to($2, 'UTF8')), 'online') RETURNING id`, org, "key-"+slug)
	one(nil, `INSERT INTO provisioning_tokens (organization_id, gateway_id, token_hash, expires_at, created_by)
		VALUES ($1, $2, sha256(convert_to($3, 'UTF8')), now() + interval '1 day', 'seed')`, org, s.GatewayID, "token-"+slug)
	one(nil, `INSERT INTO gateway_status_snapshots (organization_id, gateway_id, "timestamp", cpu_usage) VALUES ($1, $2, now(), 1.5)`, org, s.GatewayID)
	one(nil, `INSERT INTO agent_instances (organization_id, gateway_id, agent_uid, computer_name) VALUES ($1, $2, 'agent-1', 'PC-1')`, org, s.GatewayID)
	one(nil, `INSERT INTO gateway_commands (organization_id, gateway_id, type, payload) VALUES ($1, $2, 'restart_agent', '{}')`, org, s.GatewayID)
	var versionID uuid.UUID
	one(&versionID, `INSERT INTO policy_versions (organization_id, policy_id, version, content, checksum, released_by)
		VALUES ($1, $2, '1.0.0', '{}', repeat('a', 64), $3) RETURNING id`, org, s.PolicyID, s.UserID)
	one(nil, `INSERT INTO policy_changes (organization_id, policy_id, version_id, changed_by, changeset, change_type)
		VALUES ($1, $2, $3, $4, '{}', 'release')`, org, s.PolicyID, versionID, s.UserID)
	one(&s.DeviceID, `INSERT INTO devices (organization_id, gateway_id, name, adapter_type) VALUES ($1, $2, 'Door 1', 'hikvision') RETURNING id`, org, s.GatewayID)
	one(nil, `INSERT INTO device_commands (organization_id, device_id, gateway_id, adapter_type, command_type, payload)
		VALUES ($1, $2, $3, 'hikvision', 'open_door', '{}')`, org, s.DeviceID, s.GatewayID)
	one(nil, `INSERT INTO retention_policies (organization_id, resource_type, retention_days) VALUES ($1, 'screenshots', 30)`, org)
	one(nil, `INSERT INTO audit_log (organization_id, actor, action, resource_type) VALUES ($1, 'seed', 'create', 'organization')`, org)
	one(nil, `INSERT INTO ingest_batches (organization_id, gateway_id, idempotency_key, endpoint, request_hash, status, locked_until, response_status, response_body)
		VALUES ($1, $2, $3, 'logs', sha256('x'), 'done', now(), 200, '{}')`, org, s.GatewayID, uuid.Must(uuid.NewV7()))
	one(nil, `INSERT INTO gateway_ingest_stats (organization_id, gateway_id, max_seq, events_accepted) VALUES ($1, $2, 5, 5)`, org, s.GatewayID)
	one(nil, `INSERT INTO gateway_drop_reports (organization_id, gateway_id, reason, class, count) VALUES ($1, $2, 'retention', 'log', 1)`, org, s.GatewayID)
	one(nil, `INSERT INTO gateway_resent_seqs (organization_id, gateway_id, seq) VALUES ($1, $2, 6)`, org, s.GatewayID)
	one(nil, `INSERT INTO ingest_store_accounting (organization_id, gateway_id, idempotency_key, accepted) VALUES ($1, $2, $3, 1)`, org, s.GatewayID, uuid.Must(uuid.NewV7()))
	var distID uuid.UUID
	one(&distID, `INSERT INTO policy_distributions (organization_id, policy_id, version_id, created_by) VALUES ($1, $2, $3, 'seed') RETURNING id`, org, s.PolicyID, versionID)
	one(nil, `INSERT INTO policy_distribution_targets (distribution_id, organization_id, gateway_id) VALUES ($1, $2, $3)`, distID, org, s.GatewayID)
	common := []any{org, s.GatewayID, "agent-1", "PC-1", "S-1-5-21-1", now}
	one(nil, `INSERT INTO monitoring.active_windows (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, window_title, process_name, datetime, duration_seconds)
		VALUES ($7, $1, $2, 1, $3, $4, $5, 'Editor', 'code.exe', $6, 30)`, append(common, uuid.Must(uuid.NewV7()))...)
	one(nil, `INSERT INTO monitoring.visited_sites (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, url, datetime, duration_seconds)
		VALUES ($7, $1, $2, 2, $3, $4, $5, 'https://example.com', $6, 10)`, append(common, uuid.Must(uuid.NewV7()))...)
	one(nil, `INSERT INTO monitoring.screenshots (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, file_path, file_size, datetime)
		VALUES ($7, $1, $2, 3, $3, $4, $5, 'shots/1.png', 100, $6)`, append(common, uuid.Must(uuid.NewV7()))...)
	one(nil, `INSERT INTO monitoring.user_sessions (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, session_type, datetime)
		VALUES ($7, $1, $2, 4, $3, $4, $5, 'login', $6)`, append(common, uuid.Must(uuid.NewV7()))...)
	one(nil, `INSERT INTO monitoring.device_events (id, organization_id, gateway_id, seq, device_id, device_serial, datetime, employee_number, card_number, door, major_code, minor_code)
		VALUES ($4, $1, $2, 5, $5, 'DS-1', $3, 'E-1', '123456', 1, 5, 75)`, org, s.GatewayID, now, uuid.Must(uuid.NewV7()), s.DeviceID)
	// The reports' rollups and dirty hours (migration 00026).
	one(nil, `INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour) VALUES ($1, 'S-1-5-21-1', date_trunc('hour', $2::timestamptz))`, org, now)
	one(nil, `INSERT INTO monitoring.activity_days (organization_id, user_sid, day, time_zone, active_minutes) VALUES ($1, 'S-1-5-21-1', $2::date, 'UTC', $3)`,
		org, now, make([]byte, 180))
	one(nil, `INSERT INTO monitoring.activity_day_usage (organization_id, user_sid, day, kind, process_name, host, seconds, events)
		VALUES ($1, 'S-1-5-21-1', $2::date, 'window', 'code.exe', '', 30, 1)`, org, now)
	if err != nil {
		return s, err
	}
	if err := tx.Commit(ctx); err != nil {
		return s, err
	}
	// The live events its rows staged (00035), published as the Dashboard
	// API would, so the log holds its rows too.
	_, err = conn.Exec(ctx, `SELECT app.dashboard_events_publish()`)
	return s, err
}
