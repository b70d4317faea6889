package service

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
)

// OwnedPools are the database pools a server opened itself rather than was
// given: Close closes them, once (from the server's Stop, or when its New
// fails part-way).
type OwnedPools struct {
	once  sync.Once
	pools []*pgxpool.Pool
}

// Own adds p to the pools Close closes and returns it.
func (o *OwnedPools) Own(p *pgxpool.Pool) *pgxpool.Pool {
	o.pools = append(o.pools, p)
	return p
}

// Close closes the owned pools; later calls do nothing.
func (o *OwnedPools) Close() {
	o.once.Do(func() {
		for _, p := range o.pools {
			p.Close()
		}
	})
}

// RunUntil is a server's Run after New: it starts s, waits for ctx to end
// or failed to close (the listener stopped serving on its own), and stops s
// within stopTimeout (a context of its own: ctx may have ended). When Start
// fails, s is stopped at once — a failed Start leaves nothing running, so
// this only releases what New opened — and the failure is returned.
func RunUntil(ctx context.Context, s lifecycle.Service, failed <-chan struct{}, stopTimeout time.Duration) error {
	stop := func() error {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
		defer cancel()
		return s.Stop(stopCtx)
	}
	if err := s.Start(ctx); err != nil {
		_ = stop()
		return err
	}
	select {
	case <-ctx.Done():
	case <-failed:
	}
	return stop()
}
