package commandqueue_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// TestListPageTxPagesNewestFirst: keyset pages of one gateway's commands,
// newest first, filtered by status; another organisation's gateway has
// none; GetTx and CancelTx in the caller's transaction (ErrNotFound
// across organisations, ErrFinished for a finished command).
func TestListPageTxPagesNewestFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, commandqueue.Options{})
	var sent []uuid.UUID
	for i := 0; i < 5; i++ {
		c, err := f.enq.Enqueue(ctx, f.ta, commandqueue.NewCommand{GatewayID: f.a.GatewayID, Type: protocol.CommandRestartAgent})
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, c.ID)
	}
	if _, err := f.enq.Enqueue(ctx, f.tb, commandqueue.NewCommand{GatewayID: f.b.GatewayID, Type: protocol.CommandRestartAgent}); err != nil {
		t.Fatal(err)
	}
	var got []uuid.UUID
	filter := commandqueue.PageFilter{GatewayID: f.a.GatewayID, Limit: 2}
	for i := 0; i < 5; i++ {
		var page []commandqueue.Command
		err := postgresInTenant(ctx, f, f.ta, func(tx pgx.Tx) (err error) {
			page, err = f.enq.ListPageTx(ctx, tx, filter)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page {
			got = append(got, c.ID)
		}
		if len(page) < filter.Limit {
			break
		}
		last := page[len(page)-1]
		filter.BeforeAt, filter.BeforeID = last.CreatedAt, last.ID
	}
	if len(got) != 5 {
		t.Fatalf("paged %d commands, want 5", len(got))
	}
	seen := map[uuid.UUID]bool{}
	for _, id := range got {
		if seen[id] {
			t.Fatalf("%s on two pages", id)
		}
		seen[id] = true
	}
	err := postgresInTenant(ctx, f, f.ta, func(tx pgx.Tx) error {
		other, err := f.enq.ListPageTx(ctx, tx, commandqueue.PageFilter{GatewayID: f.b.GatewayID, Limit: 10})
		if err != nil || len(other) != 0 {
			t.Errorf("another organisation's gateway: %d commands, %v", len(other), err)
		}
		c, err := f.enq.CancelTx(ctx, tx, sent[0])
		if err != nil || c.Status != commandqueue.StatusCancelled {
			t.Errorf("cancel: %+v, %v", c, err)
		}
		if c, err := f.enq.CancelTx(ctx, tx, sent[0]); !errors.Is(err, commandqueue.ErrFinished) || c.Status != commandqueue.StatusCancelled {
			t.Errorf("cancel again: %+v, %v", c, err)
		}
		if _, err := f.enq.CancelTx(ctx, tx, uuid.New()); !errors.Is(err, commandqueue.ErrNotFound) {
			t.Errorf("cancel a missing command: %v", err)
		}
		pending, err := f.enq.ListPageTx(ctx, tx, commandqueue.PageFilter{GatewayID: f.a.GatewayID, Status: commandqueue.StatusPending, Limit: 10})
		if err != nil || len(pending) != 4 {
			t.Errorf("pending: %d, %v", len(pending), err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = postgresInTenant(ctx, f, f.tb, func(tx pgx.Tx) error {
		if _, err := f.enq.GetTx(ctx, tx, sent[1]); !errors.Is(err, commandqueue.ErrNotFound) {
			t.Errorf("another organisation's command: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRotateKeyCommand: the one rotate_api_key command, its overlap
// checked and named.
func TestRotateKeyCommand(t *testing.T) {
	t.Parallel()
	gw := uuid.New()
	for _, tc := range []struct {
		overlap time.Duration
		want    int
		field   string
	}{
		{0, protocol.DefaultKeyOverlapSeconds, ""},
		{10 * time.Minute, 600, ""},
		{time.Second, 0, "overlap_seconds"},
		{8 * 24 * time.Hour, 0, "overlap_seconds"},
		{90*time.Second + time.Millisecond, 0, "overlap_seconds"},
	} {
		c, err := commandqueue.RotateKey(gw, tc.overlap, time.Hour, "test")
		if tc.field != "" {
			var fe *apperr.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Errorf("overlap %v: %v, want a field error on %s", tc.overlap, err, tc.field)
			}
			continue
		}
		if err != nil || c.Type != protocol.CommandRotateAPIKey || c.GatewayID != gw || c.TTL != time.Hour ||
			string(c.Payload) != `{"overlap_seconds":`+itoa(tc.want)+`}` {
			t.Errorf("overlap %v: %+v %s, %v", tc.overlap, c, c.Payload, err)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// postgresInTenant runs fn in a tenant transaction on the dashboard pool.
func postgresInTenant(ctx context.Context, f *fixture, t postgres.Tenant, fn func(pgx.Tx) error) error {
	return postgres.InTenant(ctx, f.dash, t, fn)
}
