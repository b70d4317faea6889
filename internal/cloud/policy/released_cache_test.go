package policy_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/policy"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// TestReleasedCache: a version fetched once is served from the cache (here
// after the database is gone), per organisation (another organisation's
// fetch of the same policy id and version goes to the database: not found);
// the latest (no version named) is never cached; entries expire after the
// TTL and the cache holds at most max.
func TestReleasedCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	sa, err := pgtest.SeedOrganization(ctx, admin, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := pgtest.SeedOrganization(ctx, admin, "beta")
	if err != nil {
		t.Fatal(err)
	}
	dash, err := postgres.Connect(ctx, db.DashboardURL, 2, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dash.Close)
	svc, err := policy.New(dash)
	if err != nil {
		t.Fatal(err)
	}
	a := accounts.Actor{Name: "alpha-admin", UserID: sa.UserID, Tenant: postgres.Tenant{OrganizationID: sa.OrganizationID, Role: postgres.AppOrgAdmin}}
	p, err := svc.Create(ctx, a, "Cached", []byte(`{"screenshots": {"enabled": true, "interval_seconds": 300}}`))
	if err != nil {
		t.Fatal(err)
	}
	v1, err := svc.Release(ctx, a, p.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Update(ctx, a, p.ID, []byte(`{"screenshots": {"enabled": true, "interval_seconds": 600}}`)); err != nil {
		t.Fatal(err)
	}
	v2, err := svc.Release(ctx, a, p.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	// As the Agent API reads: the ingest role, the gateway's organisation.
	ta, tb := postgres.Tenant{OrganizationID: sa.OrganizationID}, postgres.Tenant{OrganizationID: sb.OrganizationID}
	for _, tc := range []struct {
		name  string
		ttl   time.Duration
		max   int
		fetch []string // versions fetched while the database is up
		wait  time.Duration
		// after the database is gone: versions that must still be served
		// (cached), and those that must fail.
		cached, gone []string
	}{
		{name: "fetched versions are cached", ttl: time.Minute, max: 10, fetch: []string{v1.Version, v2.Version},
			cached: []string{v1.Version, v2.Version}, gone: []string{""}},
		{name: "the latest is never cached", ttl: time.Minute, max: 10, fetch: []string{""}, gone: []string{"", v1.Version}},
		{name: "entries expire", ttl: 20 * time.Millisecond, max: 10, fetch: []string{v1.Version}, wait: 50 * time.Millisecond,
			gone: []string{v1.Version}},
		{name: "at most max", ttl: time.Minute, max: 1, fetch: []string{v1.Version, v2.Version},
			cached: []string{v2.Version}, gone: []string{v1.Version}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool, err := postgres.Connect(ctx, db.IngestURL, 2, pg.ContextKey())
			if err != nil {
				t.Fatal(err)
			}
			c := policy.NewReleasedCache(pool, tc.ttl, tc.max)
			for _, v := range tc.fetch {
				doc, err := c.Released(ctx, ta, p.ID, v)
				if err != nil || doc.Checksum == "" {
					t.Fatalf("fetch %q: %+v %v", v, doc, err)
				}
			}
			// Another organisation's fetch of the same key is its own.
			if _, err := c.Released(ctx, tb, p.ID, v1.Version); !errors.Is(err, policy.ErrNotFound) {
				t.Fatalf("organisation B's fetch: %v, want not found", err)
			}
			time.Sleep(tc.wait)
			pool.Close()
			for _, v := range tc.cached {
				if doc, err := c.Released(ctx, ta, p.ID, v); err != nil || doc.Version != v {
					t.Errorf("cached %q: %+v %v", v, doc, err)
				}
			}
			for _, v := range tc.gone {
				if _, err := c.Released(ctx, ta, p.ID, v); err == nil {
					t.Errorf("%q served without the database", v)
				}
			}
		})
	}
}
