package scenario

import (
	"context"
	_ "embed" // the queue depth's SQL
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/bench/stack"
)

//go:embed sql/queue_depth.sql
var queueDepthSQL string

// writeHistogram is the name of the Agent API's ingest write-duration
// histogram (internal/cloud/ingest metrics: one batch's database
// transaction, by endpoint).
const writeHistogram = "ingest_write_seconds"

// gatherWrites sums the replicas' write-duration histogram over
// replicas and label sets.
func gatherWrites(st *stack.Stack) (stack.Histogram, error) {
	fams, err := st.Gather()
	if err != nil {
		return stack.Histogram{}, fmt.Errorf("scenario: %s: %w", writeHistogram, err)
	}
	return fams.Histogram(writeHistogram), nil
}

// queueDepth counts the commands not yet finished, from the database.
func queueDepth(ctx context.Context, db *pgxpool.Pool) (int64, error) {
	var n int64
	if err := db.QueryRow(ctx, queueDepthSQL).Scan(&n); err != nil {
		return 0, fmt.Errorf("scenario: queue depth: %w", err)
	}
	return n, nil
}

// gaugeValue reads the gauge name (summed over its series) from reg; ok
// false when it is not there.
func gaugeValue(reg prometheus.Gatherer, name string) (v float64, ok bool, err error) {
	fams, err := stack.Gather(reg)
	if err != nil {
		return 0, false, fmt.Errorf("scenario: %s: %w", name, err)
	}
	return fams.Sum(name), fams.Has(name), nil
}
