package pipeline

import (
	"context"
	"fmt"
	"sync"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/sim/agentsim"
)

// Ledger records what the agents were told about every event id:
// acknowledged, indeterminate (the connection failed mid-request) or
// rejected. It is safe for concurrent use.
type Ledger struct {
	mu  sync.Mutex
	ids map[uuid.UUID]agentsim.Outcome
	bad int64 // ids that did not parse (counted, never expected)
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger { return &Ledger{ids: map[uuid.UUID]agentsim.Outcome{}} }

// Observe records the outcome of one request's ids (agentsim.Options.Observe).
func (l *Ledger) Observe(ids []string, o agentsim.Outcome) {
	parsed := make([]uuid.UUID, 0, len(ids))
	bad := 0
	for _, s := range ids {
		id, err := uuid.Parse(s)
		if err != nil {
			bad++
			continue
		}
		parsed = append(parsed, id)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bad += int64(bad)
	for _, id := range parsed {
		// An acknowledgement is final: a later outcome for the same id
		// (which agents never send) does not downgrade it.
		if prev, ok := l.ids[id]; !ok || prev != agentsim.Acked {
			l.ids[id] = o
		}
	}
}

// Counts returns how many ids the ledger holds per outcome.
func (l *Ledger) Counts() (acked, indeterminate, rejected int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, o := range l.ids {
		switch o {
		case agentsim.Acked:
			acked++
		case agentsim.Indeterminate:
			indeterminate++
		default:
			rejected++
		}
	}
	return acked, indeterminate, rejected
}

// Check is the per-id verdict of a run.
type Check struct {
	// Acked, Indeterminate and Rejected count the ledger's ids.
	Acked         int64 `json:"acked"`
	Indeterminate int64 `json:"indeterminate"`
	Rejected      int64 `json:"rejected"`
	// Stored counts distinct ids found in the database.
	Stored int64 `json:"stored"`
	// Lost counts acknowledged ids stored 0 times.
	Lost int64 `json:"lost"`
	// Duplicated counts ids stored more than once (whatever the agent was
	// told).
	Duplicated int64 `json:"duplicated"`
	// IndeterminateStored counts indeterminate ids stored once (fine: the
	// gateway may have committed before the connection failed).
	IndeterminateStored int64 `json:"indeterminate_stored"`
	// Unexpected counts ids stored that no agent sent, or that the gateway
	// rejected.
	Unexpected int64 `json:"unexpected"`
}

// OK reports whether nothing was lost, duplicated or unexpected.
func (c Check) OK() bool { return c.Lost == 0 && c.Duplicated == 0 && c.Unexpected == 0 }

// storedIDs reads every event id stored for org in the three event tables,
// in the main series and in the fail-over tables: an id's count is its
// number of rows. The primary keys are (organization_id, id, datetime) per
// table, so the same id can be stored more than once (another datetime,
// another table, the fail-over copy): the check counts rows, not keys.
const storedIDs = `
SELECT id FROM monitoring.active_windows WHERE organization_id = $1
UNION ALL SELECT id FROM monitoring.visited_sites WHERE organization_id = $1
UNION ALL SELECT id FROM monitoring.user_sessions WHERE organization_id = $1
UNION ALL SELECT id FROM monitoring_fallback.active_windows WHERE organization_id = $1
UNION ALL SELECT id FROM monitoring_fallback.visited_sites WHERE organization_id = $1
UNION ALL SELECT id FROM monitoring_fallback.user_sessions WHERE organization_id = $1`

// Verify compares the ledger with what organisation org has stored,
// reading with conn (an administrator's connection: it sees every row).
func (l *Ledger) Verify(ctx context.Context, conn *pgx.Conn, org int64) (Check, error) {
	rows, err := conn.Query(ctx, storedIDs, org)
	if err != nil {
		return Check{}, fmt.Errorf("pipeline: read stored ids: %w", err)
	}
	stored := map[uuid.UUID]uint8{}
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return Check{}, fmt.Errorf("pipeline: read stored ids: %w", err)
		}
		if n := stored[id]; n < 255 {
			stored[id] = n + 1
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Check{}, fmt.Errorf("pipeline: read stored ids: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c := Check{Stored: int64(len(stored))}
	for id, o := range l.ids {
		n := stored[id]
		switch o {
		case agentsim.Acked:
			c.Acked++
			if n == 0 {
				c.Lost++
			}
		case agentsim.Indeterminate:
			c.Indeterminate++
			if n == 1 {
				c.IndeterminateStored++
			}
		default:
			c.Rejected++
			if n > 0 {
				c.Unexpected++
			}
		}
	}
	for id, n := range stored {
		if n > 1 {
			c.Duplicated++
		}
		if _, ok := l.ids[id]; !ok {
			c.Unexpected++
		}
	}
	return c, nil
}
