package agentapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi"
	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi/agentapitest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// TestAgentAPIMaintainsRollups: a window stored through the insert
// function (as ingest stores it) two hours ago is rolled up by the running
// Agent API's rollup maintainer within a few of its intervals.
func TestAgentAPIMaintainsRollups(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	a, err := pgtest.SeedOrganization(ctx, admin, "rollups")
	if err != nil {
		t.Fatal(err)
	}
	ingest := pg.Pool(t, db.IngestURL, 4)
	agentapitest.Start(t, ingest, agentapitest.Options{Config: agentapi.Config{RollupInterval: 100 * time.Millisecond}})
	at := time.Now().Add(-2 * time.Hour)
	err = postgres.InTenant(ctx, ingest, postgres.Tenant{OrganizationID: a.OrganizationID}, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT monitoring.insert_active_windows('monitoring', $1, $2, ARRAY[$3::uuid], ARRAY[1::bigint], ARRAY['a'], ARRAY['PC'],
			ARRAY['S-R'], ARRAY['t'], ARRAY['code.exe'], ARRAY[NULL::text], ARRAY[$4::timestamptz], ARRAY[60])`,
			a.OrganizationID, a.GatewayID, uuid.Must(uuid.NewV7()), at)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var days, dirty int
		if err := admin.QueryRow(ctx, `SELECT (SELECT count(*) FROM monitoring.activity_days WHERE user_sid = 'S-R'),
			(SELECT count(*) FROM monitoring.activity_dirty WHERE user_sid = 'S-R')`).Scan(&days, &dirty); err != nil {
			t.Fatal(err)
		}
		if days >= 1 && dirty == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not rolled up: %d day rows, %d dirty hours", days, dirty)
		}
	}
}
