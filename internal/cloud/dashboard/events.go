package dashboard

import (
	"context"
	"net/http"
	"time"
)

// Live updates: GET /api/v2/events streams Server-Sent Events (the
// liveevents Hub does the work), scoped like everything else by the
// caller's tenant context in the database. A stream ends when the access
// token it was opened with expires, or soon after its session ends (a
// logout, a password change, the user disabled or their role changed: the
// session is checked every DefaultSessionRecheck); the client reconnects
// with a fresh token and Last-Event-ID and misses nothing.

// DefaultSessionRecheck is how often an open stream checks that its
// session is still live (Deps.SessionRecheck).
const DefaultSessionRecheck = 30 * time.Second

func (a *api) eventRoutes() {
	a.handle("GET", "/api/v2/events", everyone, a.events)
}

func (a *api) events(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx, cancel := context.WithDeadline(r.Context(), c.claims.ExpiresAt)
	defer cancel()
	if a.sessionActive != nil {
		go a.watchSession(ctx, cancel, c.claims.SessionID)
	}
	a.hub.Serve(w, r.WithContext(ctx), c.db, c.tenant)
	return nil
}

// watchSession ends a stream (cancel) once its session is no longer live.
// A failed check keeps the stream: the next one decides.
func (a *api) watchSession(ctx context.Context, cancel context.CancelFunc, sessionID string) {
	t := time.NewTicker(a.sessionRecheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if live, err := a.sessionActive(ctx, sessionID); err == nil && !live {
				cancel()
				return
			}
		}
	}
}
