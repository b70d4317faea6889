package dashboard

import (
	"context"
	"net/http"
)

// Live updates: GET /api/v2/events streams Server-Sent Events (the
// liveevents Hub does the work), scoped like everything else by the
// caller's tenant context in the database. A stream ends when the access
// token it was opened with expires; the client reconnects with a fresh
// token and Last-Event-ID and misses nothing.

func (a *api) eventRoutes() {
	a.handle("GET", "/api/v2/events", everyone, a.events)
}

func (a *api) events(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx, cancel := context.WithDeadline(r.Context(), c.claims.ExpiresAt)
	defer cancel()
	a.hub.Serve(w, r.WithContext(ctx), c.db, c.tenant)
	return nil
}
