package control

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/control/controldb"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
)

// Sweeper is the control channel's periodic upkeep across organisations, a
// lifecycle.Service of its own (it was a ticker inside the hub): every
// Options.SweepInterval it runs the command queue's sweep (redelivery after
// a backoff, exhaustion, expiry) and marks offline the gateways silent for 3
// heartbeat intervals. It lives in control, not commandqueue, because the
// offline check is the control channel's (it follows the heartbeat
// interval the hub tells gateways) and the queue knows nothing of
// heartbeats; one replica or all may run it (both steps are idempotent).
type Sweeper struct {
	db     *pgxpool.Pool // as the ingest role
	queue  *commandqueue.Queue
	logger *slog.Logger
	opts   Options
	// offline counts the gateways the offline check marked offline.
	offline prometheus.Counter
	*lifecycle.Loop
}

// NewSweeper returns the Sweeper of queue over db, with the hub's timings
// (zero fields take the hub's defaults). A nil logger discards; its
// metric (control_gateways_marked_offline_total) is registered with reg
// unless reg is nil.
func NewSweeper(db *pgxpool.Pool, queue *commandqueue.Queue, logger *slog.Logger, reg prometheus.Registerer, opts Options) (*Sweeper, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Sweeper{db: db, queue: queue, logger: logger, opts: opts.withDefaults(),
		offline: prometheus.NewCounter(prometheus.CounterOpts{Name: "control_gateways_marked_offline_total",
			Help: "Gateways the offline check marked offline (silent for 3 heartbeat intervals)."})}
	if reg != nil {
		if err := reg.Register(s.offline); err != nil {
			return nil, fmt.Errorf("control: sweeper metrics: %w", err)
		}
	}
	s.Loop = lifecycle.NewLoop("command sweeper", logger, func(ctx context.Context) error {
		return lifecycle.Every(ctx, s.opts.SweepInterval, false, func(ctx context.Context) { s.Sweep(ctx) })
	})
	return s, nil
}

// Sweep runs the command sweep and the offline check once, logging
// failures (the next run retries).
func (s *Sweeper) Sweep(ctx context.Context) {
	if _, err := s.queue.Sweep(ctx); err != nil && ctx.Err() == nil {
		s.logger.ErrorContext(ctx, "command sweep failed", "err", err)
	}
	silence := fmt.Sprintf("%d milliseconds", (3 * s.opts.HeartbeatInterval).Milliseconds())
	ids, err := controldb.New(s.db).MarkOffline(ctx, silence)
	if err != nil && ctx.Err() == nil {
		s.logger.ErrorContext(ctx, "offline sweep failed", "err", err)
	}
	s.offline.Add(float64(len(ids)))
}
