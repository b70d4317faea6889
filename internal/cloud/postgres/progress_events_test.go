package postgres_test

import (
	"testing"

	"github.com/google/uuid"
)

// TestDashboardProgressEqualsCount (00035): whatever a commit changes in a
// distribution — one command's status, several commands in one statement,
// a command and a target together, new targets in bulk, a change and its
// undoing — the publish after it appends at most one progress row, and the
// distribution's last progress row equals a count of its targets.
func TestDashboardProgressEqualsCount(t *testing.T) {
	t.Parallel()
	f := newFnDB(t)
	org := f.a.OrganizationID
	var dist uuid.UUID
	if err := f.admin.QueryRow(f.ctx, `SELECT distribution_id FROM policy_distribution_targets WHERE organization_id = $1`, org).Scan(&dist); err != nil {
		t.Fatal(err)
	}
	count := func() string {
		return f.one(`SELECT jsonb_build_object('distribution_id', d.id, 'policy_id', d.policy_id, 'stage', d.stage,
			'total', count(*),
			'waiting', count(*) FILTER (WHERE t.command_id IS NULL),
			'pending', count(*) FILTER (WHERE c.status = 'pending'),
			'delivered', count(*) FILTER (WHERE c.status = 'delivered'),
			'applied', count(*) FILTER (WHERE c.status = 'completed'),
			'failed', count(*) FILTER (WHERE t.command_id IS NOT NULL AND (c.status IS NULL OR c.status NOT IN ('pending', 'delivered', 'completed')))
			)::text FROM policy_distributions d JOIN policy_distribution_targets t ON t.distribution_id = d.id
			LEFT JOIN gateway_commands c ON c.id = t.command_id WHERE d.id = $1 GROUP BY d.id`, dist)
	}
	check := func(step string, stmts ...string) {
		t.Helper()
		start := f.lastEvent()
		tx, err := f.admin.Begin(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range stmts {
			if _, err := tx.Exec(f.ctx, s, dist); err != nil {
				t.Fatalf("%s: %s: %v", step, s, err)
			}
		}
		if err := tx.Commit(f.ctx); err != nil {
			t.Fatal(err)
		}
		f.publish()
		var rows int
		if err := f.admin.QueryRow(f.ctx, `SELECT count(*) FROM dashboard_events WHERE id > $1 AND kind = 'policy_distribution.progress'`, start).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if rows > 1 {
			t.Errorf("%s: %d progress rows in one publish, want at most 1", step, rows)
		}
		last := f.one(`SELECT data::text FROM dashboard_events WHERE subject = $1::text AND kind = 'policy_distribution.progress' ORDER BY id DESC LIMIT 1`, dist)
		if want := count(); last != want {
			t.Errorf("%s: last progress row %s, want the count %s", step, last, want)
		}
	}
	cmdOf := func(n int) string { // the n-th target's command (by gateway serial)
		return `(SELECT t.command_id FROM policy_distribution_targets t JOIN gateway_instances g ON g.id = t.gateway_id
			WHERE t.distribution_id = $1 AND g.serial = 'P-` + string(rune('0'+n)) + `')`
	}
	for i := 1; i <= 6; i++ {
		f.exec(`INSERT INTO gateway_instances (organization_id, serial, api_key_hash, status)
			VALUES ($1, $2, sha256(convert_to($2, 'UTF8')), 'online')`, org, "P-"+string(rune('0'+i)))
	}
	check("bulk targets",
		`INSERT INTO policy_distribution_targets (distribution_id, organization_id, gateway_id)
		 SELECT $1, organization_id, id FROM gateway_instances WHERE serial LIKE 'P-%'`)
	check("bulk commands",
		`WITH c AS (INSERT INTO gateway_commands (organization_id, gateway_id, type, payload)
		   SELECT t.organization_id, t.gateway_id, 'policy_update', '{}' FROM policy_distribution_targets t
		    WHERE t.distribution_id = $1 AND t.command_id IS NULL RETURNING id, gateway_id)
		 UPDATE policy_distribution_targets t SET command_id = c.id FROM c WHERE t.distribution_id = $1 AND t.gateway_id = c.gateway_id`)
	check("one claim", `UPDATE gateway_commands SET status = 'delivered' WHERE id = `+cmdOf(1))
	check("one completed", `UPDATE gateway_commands SET status = 'completed' WHERE id = `+cmdOf(1))
	check("one failed", `UPDATE gateway_commands SET status = 'failed' WHERE id = `+cmdOf(2))
	check("three in one statement", `UPDATE gateway_commands SET status = 'delivered' WHERE id IN (`+cmdOf(3)+`, `+cmdOf(4)+`, `+cmdOf(5)+`)`)
	check("the same command twice", `UPDATE gateway_commands SET status = 'completed' WHERE id = `+cmdOf(3),
		`UPDATE gateway_commands SET status = 'pending' WHERE id = `+cmdOf(3))
	check("a command then a target", `UPDATE gateway_commands SET status = 'completed' WHERE id = `+cmdOf(4),
		`UPDATE policy_distribution_targets SET command_id = NULL WHERE distribution_id = $1 AND command_id = `+cmdOf(6))
	check("a command then the stage", `UPDATE gateway_commands SET status = 'completed' WHERE id = `+cmdOf(5),
		`UPDATE policy_distributions SET stage = 'full' WHERE id = $1`)
	check("there and back", `UPDATE gateway_commands SET status = 'delivered' WHERE id = `+cmdOf(3),
		`UPDATE gateway_commands SET status = 'pending' WHERE id = `+cmdOf(3))
	check("one expired", `UPDATE gateway_commands SET status = 'expired' WHERE id = `+cmdOf(3))
}
