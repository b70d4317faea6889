package timeseries

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries/timeseriesdb"
)

// StoreFacts are what a migrated database's time series are, and what
// decides it (staffctl up reports them).
type StoreFacts struct {
	// Kind is monitoring.storage_kind(): "timescaledb" or "partitions".
	Kind string
	// Version is the TimescaleDB extension's, "" when it is not created.
	Version string
	// Available tells whether the server has the TimescaleDB package.
	Available bool
	// Preload is shared_preload_libraries, nil when the role may not read it.
	Preload *string
}

// ReadStoreFacts reads the facts of the database db is connected to.
func ReadStoreFacts(ctx context.Context, db timeseriesdb.DBTX) (StoreFacts, error) {
	r, err := timeseriesdb.New(db).StoreFacts(ctx)
	if err != nil {
		return StoreFacts{}, err
	}
	f := StoreFacts{Kind: r.Kind, Version: r.Version, Available: r.Available}
	if r.MayReadSettings {
		f.Preload = &r.Preload
	}
	return f, nil
}

// ConnectedRole is the role db is connected as.
func ConnectedRole(ctx context.Context, db timeseriesdb.DBTX) (string, error) {
	return timeseriesdb.New(db).CurrentUser(ctx)
}

// TenantProbe is what a connection sees of a database as a tenant.
type TenantProbe struct {
	// OrganizationID is the organisation of the tenant context as the
	// database verified it, nil when it did not verify it.
	OrganizationID *int64
	// Kind is the storage kind the connection sees.
	Kind string
}

// ProbeAsTenant reads, in a transaction of tenant t on db, whether the
// database verifies t's signed context and what the series are.
func ProbeAsTenant(ctx context.Context, db *pgxpool.Pool, t postgres.Tenant) (TenantProbe, error) {
	var p TenantProbe
	err := postgres.InTenant(ctx, db, t, func(tx pgx.Tx) error {
		r, err := timeseriesdb.New(tx).TenantView(ctx)
		if err != nil {
			return err
		}
		if r.Verified {
			p.OrganizationID = &r.OrganizationID
		}
		p.Kind = r.Kind
		return nil
	})
	return p, err
}
