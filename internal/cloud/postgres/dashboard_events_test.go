package postgres_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// publish runs the publisher as the Dashboard API does (00035), until the
// staging table is empty.
func (f *fnDB) publish() {
	f.t.Helper()
	for {
		var n int
		if err := f.dashboard.QueryRow(f.ctx, `SELECT app.dashboard_events_publish(1000)`).Scan(&n); err != nil {
			f.t.Fatal(err)
		}
		if n < 1000 {
			return
		}
	}
}

// events publishes what is staged, then lists dashboard_events after id as
// "kind|subject|status" (the data's status, or its stage and counts for a
// distribution's progress), in id order, as the administrator.
func (f *fnDB) events(after int64) []string {
	f.t.Helper()
	f.publish()
	rows, err := f.admin.Query(f.ctx, `SELECT kind || '|' || subject || '|' || CASE kind
		WHEN 'policy_distribution.progress' THEN format('%s t%s w%s p%s d%s a%s f%s', data->>'stage', data->>'total',
			data->>'waiting', data->>'pending', data->>'delivered', data->>'applied', data->>'failed')
		ELSE coalesce(data->>'previous', '') || '>' || (data->>'status') END
		FROM dashboard_events WHERE id > $1 ORDER BY id`, after)
	if err != nil {
		f.t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

// lastEvent is the highest id of dashboard_events (0 when empty).
func (f *fnDB) lastEvent() int64 {
	f.t.Helper()
	var id int64
	if err := f.admin.QueryRow(f.ctx, `SELECT coalesce(max(id), 0) FROM dashboard_events`).Scan(&id); err != nil {
		f.t.Fatal(err)
	}
	return id
}

// testDashboardEventsPublish: status changes of gateways and commands are
// staged by their transactions and published one event each (none for an
// update that leaves the status), a distribution's progress once per publish
// that touches it, with one notification of the last id per publish; an id
// never becomes visible after a higher one (a transaction still open when
// the publisher runs gets the higher id); events are visible only to
// ORG_ADMIN, HR and ADMIN of their organisation (a platform ADMIN through
// staff_admin: all); the staging table to no role.
func testDashboardEventsPublish(t *testing.T, f *fnDB) {
	gwA, gwB := f.a.GatewayID.String(), f.b.GatewayID.String()
	l := f.listen("dashboard_events")
	start := f.lastEvent()

	// Gateways: a change, no change, another column.
	f.exec(`UPDATE gateway_instances SET status = 'offline' WHERE id = $1`, f.a.GatewayID)
	f.exec(`UPDATE gateway_instances SET status = 'offline', last_seen_at = now() WHERE id = $1`, f.a.GatewayID)
	f.exec(`UPDATE gateway_instances SET name = 'renamed' WHERE id = $1`, f.a.GatewayID)
	equal(t, "gateway events", f.events(start), []string{"gateway.status|" + gwA + "|online>offline"})
	equal(t, "gateway notification", notifications(f.ctx, l, 5*time.Second), []string{fmt.Sprint(start + 1)})

	// Commands: inserted, then moved; a distribution's command also moves
	// its progress.
	start = f.lastEvent()
	var cmd, dist uuid.UUID
	if err := f.admin.QueryRow(f.ctx, `INSERT INTO gateway_commands (organization_id, gateway_id, type, payload)
		VALUES ($1, $2, 'policy_update', '{}') RETURNING id`, f.b.OrganizationID, f.b.GatewayID).Scan(&cmd); err != nil {
		t.Fatal(err)
	}
	f.publish()
	f.exec(`UPDATE gateway_commands SET priority = 3 WHERE id = $1`, cmd)
	f.publish()
	if err := f.admin.QueryRow(f.ctx, `SELECT distribution_id FROM policy_distribution_targets WHERE organization_id = $1`,
		f.b.OrganizationID).Scan(&dist); err != nil {
		t.Fatal(err)
	}
	f.exec(`UPDATE policy_distribution_targets SET command_id = $1 WHERE distribution_id = $2`, cmd, dist)
	f.publish()
	f.exec(`UPDATE gateway_commands SET status = 'delivered' WHERE id = $1`, cmd)
	f.publish()
	// One transaction: two changes of the command, and the stage: one
	// progress event, the state at the publish.
	tx, err := f.admin.Begin(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`UPDATE gateway_commands SET status = 'completed' WHERE id = $1`,
		`UPDATE policy_distributions SET stage = 'done' WHERE id = (SELECT distribution_id FROM policy_distribution_targets WHERE command_id = $1)`} {
		if _, err := tx.Exec(f.ctx, q, cmd); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(f.ctx); err != nil {
		t.Fatal(err)
	}
	c, d := cmd.String(), dist.String()
	equal(t, "command and progress events", f.events(start), []string{
		"command.status|" + c + "|>pending",
		"policy_distribution.progress|" + d + "|canary t1 w0 p1 d0 a0 f0",
		"command.status|" + c + "|pending>delivered",
		"policy_distribution.progress|" + d + "|canary t1 w0 p0 d1 a0 f0",
		"command.status|" + c + "|delivered>completed",
		"policy_distribution.progress|" + d + "|done t1 w0 p0 d0 a1 f0",
	})
	// One per publish that moved something: the command's insert, the
	// target, the delivery, the transaction.
	if got := len(notifications(f.ctx, l, 5*time.Second)); got != 4 {
		t.Errorf("%d notifications, want 4", got)
	}

	// Never visible after a higher id: the transaction that changed first
	// but is still open when the publisher runs gets the higher id.
	start = f.lastEvent()
	first, err := f.owner().Begin(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = first.Rollback(f.ctx) }()
	if _, err := first.Exec(f.ctx, `UPDATE gateway_instances SET status = 'online' WHERE id = $1`, f.a.GatewayID); err != nil {
		t.Fatal(err)
	}
	f.exec(`UPDATE gateway_instances SET status = 'offline' WHERE id = $1`, f.b.GatewayID)
	equal(t, "while the first is open", f.events(start), []string{"gateway.status|" + gwB + "|online>offline"})
	if err := first.Commit(f.ctx); err != nil {
		t.Fatal(err)
	}
	equal(t, "after it commits", f.events(start), []string{"gateway.status|" + gwB + "|online>offline", "gateway.status|" + gwA + "|offline>online"})

	// Who sees what.
	const count = `SELECT count(*) FROM dashboard_events`
	ten := func(o int64, role postgres.AppRole) postgres.Tenant {
		return postgres.Tenant{OrganizationID: o, Role: role, UserID: 1}
	}
	var total, ofA string
	total = f.one(`SELECT count(*)::text FROM dashboard_events`)
	ofA = f.one(`SELECT count(*)::text FROM dashboard_events WHERE organization_id = $1`, f.a.OrganizationID)
	for _, r := range []postgres.AppRole{postgres.AppOrgAdmin, postgres.AppHR, postgres.AppAdmin} {
		equal(t, "A's "+string(r), f.rows(f.dashboard, ten(f.a.OrganizationID, r), count), []string{ofA})
	}
	for _, r := range []postgres.AppRole{postgres.AppDepartmentLead, postgres.AppEmployee} {
		equal(t, "A's "+string(r), f.rows(f.dashboard, ten(f.a.OrganizationID, r), count), []string{"0"})
	}
	equal(t, "no context", f.rows(f.dashboard, none, count), []string{"0"})
	equal(t, "platform ADMIN", f.rows(f.platform, postgres.Tenant{Role: postgres.AppAdmin}, count), []string{total})
	f.refused(f.ingest, ten(f.a.OrganizationID, postgres.AppOrgAdmin), noPrivilege, "permission denied", count)
	f.refused(f.dashboard, ten(f.a.OrganizationID, postgres.AppOrgAdmin), noPrivilege, "permission denied",
		`INSERT INTO dashboard_events (organization_id, kind, subject) VALUES ($1, 'gateway.status', 'x')`, f.a.OrganizationID)
	// The staging table: no role reads or writes it.
	for _, p := range []*pgxpool.Pool{f.dashboard, f.ingest, f.platform} {
		f.refused(p, ten(f.a.OrganizationID, postgres.AppOrgAdmin), noPrivilege, "permission denied", `SELECT count(*) FROM dashboard_events_staged`)
	}
}

// testDashboardEventsPublishArguments: max_rows bounds what one call moves
// (the rest waits for the next call, in order); out of range it is refused
// naming the argument; the ingest role may not publish.
func testDashboardEventsPublishArguments(t *testing.T, f *fnDB) {
	f.publish()
	start := f.lastEvent()
	for _, s := range []string{"offline", "online", "offline"} {
		f.exec(`UPDATE gateway_instances SET status = $1 WHERE id = $2`, s, f.a.GatewayID)
	}
	gw := f.a.GatewayID.String()
	equal(t, "first call", f.rows(f.dashboard, none, `SELECT app.dashboard_events_publish(2)`), []string{"2"})
	moved := f.one(`SELECT string_agg(subject || '|' || (data->>'status'), ',' ORDER BY id) FROM dashboard_events WHERE id > $1`, start)
	equal(t, "two moved", []string{moved}, []string{gw + "|offline," + gw + "|online"})
	equal(t, "second call", f.rows(f.platform, none, `SELECT app.dashboard_events_publish(2)`), []string{"1"})
	equal(t, "nothing left", f.rows(f.dashboard, none, `SELECT app.dashboard_events_publish()`), []string{"0"})
	for _, n := range []string{"0", "-1", "100001", "NULL"} {
		f.refused(f.dashboard, none, "22023", "max_rows", `SELECT app.dashboard_events_publish(`+n+`)`)
	}
	f.refused(f.ingest, none, noPrivilege, "permission denied", `SELECT app.dashboard_events_publish()`)
}

// testDashboardEventsPrune: deletes events older than 24 hours, oldest
// first, at most 10,000 a call; the dashboard and admin roles may call it,
// the ingest role not.
func testDashboardEventsPrune(t *testing.T, f *fnDB) {
	f.exec(`DELETE FROM dashboard_events`)
	f.exec(`INSERT INTO dashboard_events (organization_id, kind, subject, created_at)
		SELECT $1, 'gateway.status', 'old', now() - interval '25 hours' FROM generate_series(1, 10005)`, f.a.OrganizationID)
	f.exec(`INSERT INTO dashboard_events (organization_id, kind, subject, created_at) VALUES ($1, 'gateway.status', 'new', now() - interval '23 hours')`, f.b.OrganizationID)
	const prune = `SELECT app.dashboard_events_prune()`
	equal(t, "first call", f.rows(f.dashboard, none, prune), []string{"10000"})
	equal(t, "left", []string{f.one(`SELECT string_agg(subject, ',' ORDER BY id) FROM dashboard_events`)}, []string{"old,old,old,old,old,new"})
	equal(t, "second call (admin)", f.rows(f.platform, none, prune), []string{"5"})
	equal(t, "third call", f.rows(f.dashboard, none, prune), []string{"0"})
	equal(t, "kept", []string{f.one(`SELECT string_agg(subject, ',') FROM dashboard_events`)}, []string{"new"})
	f.refused(f.ingest, none, noPrivilege, "permission denied", prune)
}

// testDashboardEventsBounds: the first and last id kept, across
// organisations (whatever the caller's context); with none kept, the next
// id and the one before.
func testDashboardEventsBounds(t *testing.T, f *fnDB) {
	const bounds = `SELECT format('%s-%s', first_id, last_id) FROM app.dashboard_events_bounds()`
	want := f.one(`SELECT format('%s-%s', min(id), max(id)) FROM dashboard_events`)
	equal(t, "seeded", f.rows(f.dashboard, none, bounds), []string{want})
	last := f.lastEvent()
	f.exec(`DELETE FROM dashboard_events`)
	equal(t, "empty", f.rows(f.platform, none, bounds), []string{fmt.Sprintf("%d-%d", last+1, last)})
	f.refused(f.ingest, none, noPrivilege, "permission denied", bounds)
}
