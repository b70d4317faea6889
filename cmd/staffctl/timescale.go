package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"

	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries"
)

// Storage kinds monitoring.storage_kind() answers.
const (
	kindTimescale  = "timescaledb"
	kindPartitions = "partitions"
)

// storeInfo is what a database's time series are.
type storeInfo struct {
	// Kind is "timescaledb" (hypertables) or "partitions" (native
	// declarative partitions), as monitoring.storage_kind() reads it from
	// the tables themselves.
	Kind string
	// Version is the TimescaleDB extension's version in the database
	// (empty when the extension does not exist there).
	Version string
	// Why explains native partitions: what the server lacks, or that the
	// series predate the extension.
	Why string
}

// String describes the store in one line, for up's summary.
func (s storeInfo) String() string {
	if s.Kind == kindTimescale {
		return fmt.Sprintf("TimescaleDB %s (hypertables)", s.Version)
	}
	return "native partitions, not TimescaleDB: " + s.Why
}

// describeStore reads, as the administrator of the migrated database at
// adminURL, what its time series are and, for native partitions, why.
func describeStore(ctx context.Context, adminURL string) (storeInfo, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return storeInfo{}, fmt.Errorf("connect to %s: %w", redacted(adminURL), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// shared_preload_libraries needs a superuser or pg_read_all_settings
	// (missing_ok does not cover a permission error): read only when allowed.
	facts, err := timeseries.ReadStoreFacts(ctx, conn)
	st := storeInfo{Kind: facts.Kind, Version: facts.Version}
	available, preload := facts.Available, facts.Preload // preload nil: the administrator may not read the setting
	if err != nil {
		return storeInfo{}, fmt.Errorf("read the storage kind of %s: %w", redacted(adminURL), err)
	}
	if st.Kind == kindTimescale {
		return st, nil
	}
	switch {
	case st.Version != "":
		st.Why = fmt.Sprintf("the time series were created as native partitions before the TimescaleDB %s extension, and stay so", st.Version)
	case !available:
		st.Why = "the server has no TimescaleDB package"
	case preload == nil:
		st.Why = "TimescaleDB is installed, but this administrator may not read shared_preload_libraries, so the bootstrap did not create the extension (a superuser creates it before the first migration)"
	case !strings.Contains(*preload, "timescaledb"):
		st.Why = "TimescaleDB is installed but not preloaded (add timescaledb to shared_preload_libraries and restart the server, before the first migration)"
	default:
		st.Why = "TimescaleDB is preloaded, but the extension was not created in this database"
	}
	return st, nil
}

// timescaleStore is a separate time-series database up migrated.
type timescaleStore struct {
	adminURL  string
	ingestURL string // TIMESCALE_URL of the Agent API
	info      storeInfo
}

// prepareTimescaleStore makes the database at adminURL the Agent API's
// separate time-series store: it bootstraps and migrates it, installs the
// tenant context key there (the store verifies the service's contexts
// itself), and checks through the ingest role's own URL (ingestURL, or
// adminURL's server as staff_ingest when empty) that the role connects,
// that the store verifies this run's contexts, and what the series are.
func prepareTimescaleStore(ctx context.Context, adminURL, ingestURL string, key postgres.ContextKey) (timescaleStore, error) {
	ts := timescaleStore{adminURL: adminURL, ingestURL: ingestURL}
	if _, err := postgres.MigrateUp(ctx, adminURL, nil); err != nil {
		return ts, fmt.Errorf("migrate the time-series database: %w", err)
	}
	if err := postgres.InstallContextKey(ctx, adminURL, key); err != nil {
		return ts, fmt.Errorf("the time-series database: %w", err)
	}
	info, err := describeStore(ctx, adminURL)
	if err != nil {
		return ts, err
	}
	ts.info = info
	if ts.ingestURL == "" {
		if ts.ingestURL, err = postgres.WithUser(adminURL, postgres.RoleIngest, ""); err != nil {
			return ts, err
		}
	}
	if err := checkStoreAsIngest(ctx, ts.ingestURL, key, info.Kind); err != nil {
		return ts, err
	}
	return ts, nil
}

// checkStoreAsIngest connects to the store as the Agent API will and
// checks that the connection verifies a context signed with key and sees
// the same kind of series as the administrator.
func checkStoreAsIngest(ctx context.Context, ingestURL string, key postgres.ContextKey, kind string) error {
	pool, err := postgres.Connect(ctx, ingestURL, 1, key)
	if err != nil {
		return fmt.Errorf("TIMESCALE_URL: %w", err)
	}
	defer pool.Close()
	const probeOrg = 1 // any organisation id: only the signature is checked
	seenAs, err := timeseries.ConnectedRole(ctx, pool)
	if err != nil {
		return fmt.Errorf("TIMESCALE_URL %s: %w", redacted(ingestURL), err)
	}
	if seenAs != postgres.RoleIngest {
		return fmt.Errorf("TIMESCALE_URL %s logs in as %q, not the ingest role %s", redacted(ingestURL), seenAs, postgres.RoleIngest)
	}
	probe, err := timeseries.ProbeAsTenant(ctx, pool, postgres.Tenant{OrganizationID: probeOrg, Actor: "staffctl up"})
	org, observe := probe.OrganizationID, probe.Kind
	if err != nil {
		return fmt.Errorf("TIMESCALE_URL %s: %w", redacted(ingestURL), err)
	}
	if org == nil || *org != probeOrg {
		return errors.New("the time-series database does not verify this run's tenant contexts: its context key differs from the main database's")
	}
	if observe != kind {
		return fmt.Errorf("TIMESCALE_URL %s reaches a database whose series are %s, not the migrated one's (%s)", redacted(ingestURL), observe, kind)
	}
	return nil
}

// sameDatabase reports whether the main database's URL a and the
// time-series database's URL b name the same database on the same server
// (as written: host, port and database name).
func sameDatabase(a, b string) (bool, error) {
	ca, err := pgx.ParseConfig(a)
	if err != nil {
		return false, fmt.Errorf("database URL: %w", err)
	}
	cb, err := pgx.ParseConfig(b)
	if err != nil {
		return false, usagef("--timescale-url: %v", err)
	}
	return ca.Host == cb.Host && ca.Port == cb.Port && ca.Database == cb.Database, nil
}
