package ingest_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/ingest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// TestEventIDsAreUniquePerOrganisation: an event id is unique within its
// organisation (issue 11). Organisation B stores events first; A sends
// events with the same ids and times: each is accepted (not a duplicate),
// both are stored, and each organisation reads only its own through the
// monitoring_read views. Within one organisation a re-sent id is still a
// duplicate.
func TestEventIDsAreUniquePerOrganisation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ingest.DefaultLimits())

	inB := makeEvents(9, 1)
	inA := make([]protocol.Event, len(inB))
	for i, ev := range inB {
		ev.ComputerName, ev.WindowTitle, ev.Title = "A-PC", "A's window", "A's title"
		if ev.URL != "" {
			ev.URL = "https://a.example/"
		}
		inA[i] = ev
	}

	send := func(g gatewayCreds, events []protocol.Event) protocol.IngestResponse {
		t.Helper()
		var r protocol.IngestResponse
		if code := e.postGzip(protocol.PathIngestLogs, g, uuid.NewString(), protocol.LogBatch{Events: events}, &r); code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
		return r
	}
	if r := send(e.b, inB); r.Accepted != 9 || r.Duplicates != 0 {
		t.Fatalf("B's batch: %+v, want 9 accepted", r)
	}
	if r := send(e.a, inA); r.Accepted != 9 || r.Duplicates != 0 {
		t.Fatalf("A's batch with B's ids: %+v, want 9 accepted, 0 duplicates", r)
	}
	// Within one organisation the same id (under a new idempotency key) is
	// still a duplicate, for either organisation.
	if r := send(e.a, inA); r.Accepted != 0 || r.Duplicates != 9 {
		t.Fatalf("A's batch again: %+v, want 9 duplicates", r)
	}
	if r := send(e.b, inB[:4]); r.Accepted != 0 || r.Duplicates != 4 {
		t.Fatalf("B's events again: %+v, want 4 duplicates", r)
	}

	// Both stored: each id twice, once per organisation.
	if n := e.count(`SELECT count(*)::int FROM (
		SELECT id, organization_id FROM monitoring.active_windows UNION ALL SELECT id, organization_id FROM monitoring.visited_sites
		UNION ALL SELECT id, organization_id FROM monitoring.user_sessions) s WHERE organization_id IN ($1, $2)`, e.a.org, e.b.org); n != 18 {
		t.Fatalf("%d rows stored, want 18 (9 per organisation)", n)
	}
	for _, g := range []gatewayCreds{e.a, e.b} {
		if got := e.storedIDs(g.org); len(got) != 9 {
			t.Errorf("organisation %d holds %d ids, want 9", g.org, len(got))
		}
	}

	// Each organisation reads only its own rows through monitoring_read.
	dash, err := postgres.Connect(ctx, strings.Replace(e.ingestURL, postgres.RoleIngest, postgres.RoleDashboard, 1), 2, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dash.Close)
	reader := timeseries.NewReader(dash, nil)
	from, to := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	for _, g := range []gatewayCreds{e.a, e.b} {
		var ids []string
		for _, table := range []string{"active_windows", "visited_sites", "user_sessions"} {
			got, err := reader.EventIDs(ctx, postgres.Tenant{OrganizationID: g.org}, table, from, to)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range got {
				ids = append(ids, id.String())
			}
		}
		want := make([]string, len(inB))
		for i, ev := range inB {
			want[i] = ev.EventID
		}
		slices.Sort(ids)
		slices.Sort(want)
		if !slices.Equal(ids, want) {
			t.Errorf("organisation %d reads ids %v, want %v", g.org, ids, want)
		}
		// The rows read are the organisation's own, not the other's.
		var foreign int
		err = postgres.InTenant(ctx, dash, postgres.Tenant{OrganizationID: g.org}, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `SELECT count(*) FROM monitoring_read.active_windows
				WHERE organization_id <> $1 OR (computer_uid = 'A-PC') <> $2`, g.org, g.org == e.a.org).Scan(&foreign)
		})
		if err != nil {
			t.Fatal(err)
		}
		if foreign != 0 {
			t.Errorf("organisation %d reads %d rows that are not its own", g.org, foreign)
		}
	}
}
