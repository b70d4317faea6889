package lifecycle

import (
	"context"
	"fmt"
	"time"
)

// EveryOrWake is Every that also calls fn when wake receives (a part that
// works on a schedule and at once when something asks it to: the buffer's
// maintenance when usage rises, the gateway's enrolment sync when an agent
// enrols). A wake does not move the schedule. It returns ctx's error.
func EveryOrWake(ctx context.Context, interval time.Duration, immediately bool, wake <-chan struct{}, fn func(ctx context.Context)) error {
	if interval <= 0 {
		return fmt.Errorf("lifecycle: every: interval %v is not positive", interval)
	}
	if immediately {
		fn(ctx)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-wake:
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fn(ctx)
	}
}
