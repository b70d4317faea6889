package postgres

import (
	"context"
	"embed"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/sqlfile"
)

// Listen receives PostgreSQL notifications on channels and calls fn for
// each, until ctx ends. The LISTEN runs on a connection taken out of the
// pool for good (hijacked, then closed), so that no pooled connection ever
// carries LISTEN state. After a lost connection it reconnects within a
// second and calls missed, because notifications sent meanwhile are gone.
func Listen(ctx context.Context, db *pgxpool.Pool, channels []string, fn func(channel, payload string), missed func(err error)) {
	for ctx.Err() == nil {
		err := listenOnce(ctx, db, channels, fn)
		if ctx.Err() != nil {
			return
		}
		missed(err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// LISTEN, hand-written (sql/raw/listen.sql says why).
//
//go:embed sql/raw/listen.sql
var rawSQL embed.FS

func listenOnce(ctx context.Context, db *pgxpool.Pool, channels []string, fn func(channel, payload string)) error {
	var listen string
	if err := sqlfile.Load(rawSQL, "sql/raw/listen.sql", map[string]*string{"Listen": &listen}); err != nil {
		return err
	}
	conn, err := db.Acquire(ctx)
	if err != nil {
		return err
	}
	pc := conn.Hijack()
	defer pc.Close(context.WithoutCancel(ctx))
	for _, ch := range channels {
		if _, err := pc.Exec(ctx, fmt.Sprintf(listen, pgx.Identifier{ch}.Sanitize())); err != nil {
			return fmt.Errorf("listen %s: %w", ch, err)
		}
	}
	for {
		n, err := pc.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(n.Channel, n.Payload)
	}
}
