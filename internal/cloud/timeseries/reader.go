package timeseries

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries/timeseriesdb"
)

// Reader reads the time series as the dashboard role, through the
// tenant-filtering views of both stores: the time-series store and, when it
// is a separate database, the main database, whose views show the fallback
// rows. An event present in both (mid re-sync) is read once.
type Reader struct {
	ts, main *pgxpool.Pool
}

// NewReader returns a Reader. main may be nil or equal ts when the time
// series live in the main database.
func NewReader(ts, main *pgxpool.Pool) *Reader {
	if main == ts {
		main = nil
	}
	return &Reader{ts: ts, main: main}
}

// EventIDs lists the ids of table's events in [from, to) visible to tenant.
func (r *Reader) EventIDs(ctx context.Context, t postgres.Tenant, table string, from, to time.Time) ([]uuid.UUID, error) {
	if !slices.Contains(Tables(), table) {
		return nil, fmt.Errorf("timeseries: unknown table %q", table)
	}
	// One query per series: the view is an identifier, not a parameter.
	q := map[string]func(*timeseriesdb.Queries) ([]uuid.UUID, error){
		"active_windows": func(q *timeseriesdb.Queries) ([]uuid.UUID, error) {
			return q.ActiveWindowIDs(ctx, timeseriesdb.ActiveWindowIDsParams{FromTime: from, ToTime: to})
		},
		"visited_sites": func(q *timeseriesdb.Queries) ([]uuid.UUID, error) {
			return q.VisitedSiteIDs(ctx, timeseriesdb.VisitedSiteIDsParams{FromTime: from, ToTime: to})
		},
		"screenshots": func(q *timeseriesdb.Queries) ([]uuid.UUID, error) {
			return q.ScreenshotIDs(ctx, timeseriesdb.ScreenshotIDsParams{FromTime: from, ToTime: to})
		},
		"user_sessions": func(q *timeseriesdb.Queries) ([]uuid.UUID, error) {
			return q.UserSessionIDs(ctx, timeseriesdb.UserSessionIDsParams{FromTime: from, ToTime: to})
		},
		"device_events": func(q *timeseriesdb.Queries) ([]uuid.UUID, error) {
			return q.DeviceEventIDs(ctx, timeseriesdb.DeviceEventIDsParams{FromTime: from, ToTime: to})
		},
	}[table]
	if q == nil {
		return nil, fmt.Errorf("timeseries: no query of table %q", table)
	}
	seen := map[uuid.UUID]bool{}
	var out []uuid.UUID
	for _, db := range []*pgxpool.Pool{r.ts, r.main} {
		if db == nil {
			continue
		}
		err := postgres.InTenant(ctx, db, t, func(tx pgx.Tx) error {
			ids, err := q(timeseriesdb.New(tx))
			for _, id := range ids {
				if !seen[id] {
					seen[id] = true
					out = append(out, id)
				}
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("timeseries: read %s: %w", table, err)
		}
	}
	return out, nil
}
