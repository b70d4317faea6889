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
	q := fmt.Sprintf(`SELECT id FROM monitoring_read.%s WHERE datetime >= $1 AND datetime < $2`, pgx.Identifier{table}.Sanitize())
	seen := map[uuid.UUID]bool{}
	var out []uuid.UUID
	for _, db := range []*pgxpool.Pool{r.ts, r.main} {
		if db == nil {
			continue
		}
		err := postgres.InTenant(ctx, db, t, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, q, from, to)
			if err != nil {
				return err
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
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
