// Package ingest is the Agent API's exactly-once batch ingest: gateways
// upload batches of events under an Idempotency-Key; the key makes a retried
// batch return the stored answer, and per-event dedupe on the event id makes
// a batch re-formed under a new key after a gateway crash add no row. The
// organisation of every row comes from the authenticated gateway.
package ingest

import (
	"embed"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/staffcontrol/staffcontrol/internal/cloud/sqlfile"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries"
	"github.com/staffcontrol/staffcontrol/internal/jsondecode"
	"github.com/staffcontrol/staffcontrol/internal/tracing"
)

// The time series' inserts, hand-written (sql/raw/inserts.sql says why).
//
//go:embed sql/raw/inserts.sql
var rawSQL embed.FS

// Limits bound what one request may carry.
type Limits struct {
	// MaxBodyBytes bounds the body as sent (compressed).
	MaxBodyBytes int64
	// MaxDecodedBytes bounds the body after gzip decompression (gzip bombs).
	MaxDecodedBytes int64
	// MaxEvents bounds the events of one batch.
	MaxEvents int
	// MaxImageBytes bounds one screenshot image.
	MaxImageBytes int64
	// MaxDays bounds the distinct UTC days the events of one batch fall on,
	// and so the daily partitions one batch may cause to be created (per
	// table written); a batch over it is answered 413 so that the gateway
	// halves it. 0 means DefaultMaxDays; at most timeseries.MaxDaysPerEnsure.
	MaxDays int
}

// DefaultMaxDays is the default of Limits.MaxDays.
const DefaultMaxDays = 31

// DefaultLimits are generous for 1,000-event batches and 8 MiB screenshots.
func DefaultLimits() Limits {
	return Limits{MaxBodyBytes: 16 << 20, MaxDecodedBytes: 64 << 20, MaxEvents: 5000, MaxImageBytes: 8 << 20, MaxDays: DefaultMaxDays}
}

// inserts are the insert statements of the five time series into one
// schema: the store's (monitoring) or the fallback's (monitoring_fallback).
// Each calls the series' bounded definer function (00020), which inserts
// only the verified organisation's rows and returns how many it inserted.
type inserts struct {
	schema                                                               string
	activeWindows, visitedSites, userSessions, screenshots, deviceEvents string
}

// queries are the inserts into each schema; every other statement is
// sqlc's (ingestdb).
type queries struct {
	store, fallback inserts
}

func loadQueries() (queries, error) {
	var q queries
	if err := sqlfile.Load(rawSQL, "sql/raw/inserts.sql", map[string]*string{
		"InsertActiveWindows": &q.store.activeWindows, "InsertVisitedSites": &q.store.visitedSites,
		"InsertUserSessions": &q.store.userSessions, "InsertScreenshots": &q.store.screenshots,
		"InsertDeviceEvents": &q.store.deviceEvents,
	}); err != nil {
		return q, fmt.Errorf("ingest: %w", err)
	}
	// The fallback tables have the same columns in schema
	// monitoring_fallback: the same insert functions, given that schema.
	store := "('" + timeseries.SchemaStore + "',"
	fallback := "('" + timeseries.SchemaFallback + "',"
	q.store.schema = timeseries.SchemaStore
	q.fallback.schema = timeseries.SchemaFallback
	for _, f := range []struct {
		dst  *string
		from string
	}{
		{&q.fallback.activeWindows, q.store.activeWindows}, {&q.fallback.visitedSites, q.store.visitedSites},
		{&q.fallback.userSessions, q.store.userSessions}, {&q.fallback.screenshots, q.store.screenshots},
		{&q.fallback.deviceEvents, q.store.deviceEvents},
	} {
		if n := strings.Count(f.from, store); n != 1 {
			return q, fmt.Errorf("ingest: an insert names schema %s %d times, want once: %s", timeseries.SchemaStore, n, f.from)
		}
		*f.dst = strings.Replace(f.from, store, fallback, 1)
	}
	return q, nil
}

// Service ingests batches into PostgreSQL.
type Service struct {
	tracer  trace.Tracer
	db      *pgxpool.Pool // the main database, as the ingest role
	ts      *timeseries.Store
	files   storage.Store
	logger  *slog.Logger
	limits  Limits
	now     func() time.Time
	q       queries
	metrics *metrics
	json    *jsondecode.Decoder

	// days remembers, for a bounded time, which daily partitions exist.
	days *timeseries.Days
	// retention is each table's retention (monitoring.retention), cached.
	retention *timeseries.Retention
}

// Deps are a Service's dependencies.
type Deps struct {
	// Store routes time-series writes (and owns the main database pool).
	Store    *timeseries.Store
	Files    storage.Store
	Logger   *slog.Logger
	Registry prometheus.Registerer
	Limits   Limits
	Now      func() time.Time
	// TracerProvider traces each batch (a span continuing the upload's
	// traceparent, a child span for the write); nil: no tracing.
	TracerProvider trace.TracerProvider
}

// New returns a Service.
func New(d Deps) (*Service, error) {
	q, err := loadQueries()
	if err != nil {
		return nil, err
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Limits == (Limits{}) {
		d.Limits = DefaultLimits()
	}
	if d.Limits.MaxDays <= 0 {
		d.Limits.MaxDays = DefaultMaxDays
	}
	d.Limits.MaxDays = min(d.Limits.MaxDays, timeseries.MaxDaysPerEnsure)
	return &Service{db: d.Store.Main(), ts: d.Store, files: d.Files, logger: d.Logger, limits: d.Limits, now: d.Now, q: q,
		metrics: newMetrics(d.Registry), json: newDecoder(), days: timeseries.NewDays(10*time.Minute, d.Now),
		retention: timeseries.NewRetention(d.Store.Main(), time.Minute, d.Now),
		tracer:    tracing.OrNoop(d.TracerProvider).Tracer("github.com/staffcontrol/staffcontrol/internal/cloud/ingest")}, nil
}

// orgLabel is the organisation as a metric label.
func orgLabel(org int64) string { return fmt.Sprint(org) }
