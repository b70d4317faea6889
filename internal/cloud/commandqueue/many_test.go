package commandqueue_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// TestEnqueueManyTx: one command per gateway in one statement, returned in
// the order asked, each claimable and each waking its gateway's listener;
// the same validation as EnqueueTx; a gateway of another organisation, a
// revoked one or a duplicate answers ErrNotFound and the transaction rolls
// back with nothing queued.
func TestEnqueueManyTx(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFixture(t, commandqueue.Options{})
	// Two more gateways in alpha.
	var gws []uuid.UUID
	for _, serial := range []string{"many-1", "many-2"} {
		var id uuid.UUID
		if err := f.admin.QueryRow(ctx, `INSERT INTO gateway_instances (organization_id, serial, api_key_hash, status)
			VALUES ($1, $2, sha256(convert_to($2, 'UTF8')), 'online') RETURNING id`, f.a.OrganizationID, serial).Scan(&id); err != nil {
			t.Fatal(err)
		}
		gws = append(gws, id)
	}
	gws = append(gws, f.a.GatewayID)
	woke := make(chan uuid.UUID, 10)
	go f.q.Listen(ctx, func(id uuid.UUID) { woke <- id })
	time.Sleep(300 * time.Millisecond) // let LISTEN start

	var cs []commandqueue.Command
	err := postgresInTenant(ctx, f, f.ta, func(tx pgx.Tx) (err error) {
		cs, err = f.enq.EnqueueManyTx(ctx, tx, commandqueue.NewCommand{Type: protocol.CommandPolicyUpdate, Payload: []byte(`{"v":1}`), Priority: 7}, gws)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != len(gws) {
		t.Fatalf("%d commands, want %d", len(cs), len(gws))
	}
	seen := map[uuid.UUID]bool{}
	for i, c := range cs {
		if c.GatewayID != gws[i] || c.ID == uuid.Nil || seen[c.ID] || c.Status != commandqueue.StatusPending || c.MaxAttempts != 3 || c.Priority != 7 {
			t.Fatalf("command %d: %+v (gateway want %s)", i, c, gws[i])
		}
		seen[c.ID] = true
		got, err := f.q.Claim(ctx, f.ta, gws[i], 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].ID != c.ID || string(got[0].Payload) != `{"v": 1}` {
			t.Fatalf("claim for gateway %d: %+v, want command %s", i, got, c.ID)
		}
	}
	notified := map[uuid.UUID]bool{}
	deadline := time.After(5 * time.Second)
	for len(notified) < len(gws) {
		select {
		case id := <-woke:
			notified[id] = true
		case <-deadline:
			t.Fatalf("notified %v within 5 s, want all of %v", notified, gws)
		}
	}

	revoked := gws[0]
	if _, err := f.admin.Exec(ctx, `UPDATE gateway_instances SET revoked_at = now() WHERE id = $1`, revoked); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		c        commandqueue.NewCommand
		gateways []uuid.UUID
		field    string // a FieldError on this field; "" for ErrNotFound
	}{
		{"other organisation", commandqueue.NewCommand{Type: protocol.CommandRestartAgent}, []uuid.UUID{f.a.GatewayID, f.b.GatewayID}, ""},
		{"revoked", commandqueue.NewCommand{Type: protocol.CommandRestartAgent}, []uuid.UUID{f.a.GatewayID, revoked}, ""},
		{"duplicate", commandqueue.NewCommand{Type: protocol.CommandRestartAgent}, []uuid.UUID{f.a.GatewayID, f.a.GatewayID}, ""},
		{"bad type", commandqueue.NewCommand{Type: "reboot"}, []uuid.UUID{f.a.GatewayID}, "type"},
		{"bad payload", commandqueue.NewCommand{Type: protocol.CommandRestartAgent, Payload: []byte(`[1]`)}, []uuid.UUID{f.a.GatewayID}, "payload"},
		{"bad ttl", commandqueue.NewCommand{Type: protocol.CommandRestartAgent, TTL: time.Millisecond}, []uuid.UUID{f.a.GatewayID}, "ttl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := postgresInTenant(ctx, f, f.ta, func(tx pgx.Tx) error {
				_, err := f.enq.EnqueueManyTx(ctx, tx, tc.c, tc.gateways)
				return err
			})
			var fe *apperr.FieldError
			switch {
			case tc.field == "" && !errors.Is(err, commandqueue.ErrNotFound):
				t.Fatalf("err %v, want ErrNotFound", err)
			case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
				t.Fatalf("err %v, want a FieldError on %s", err, tc.field)
			}
			var n int
			if err := f.admin.QueryRow(ctx, `SELECT count(*) FROM gateway_commands WHERE type = 'restart_agent'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Fatalf("%d restart_agent commands queued after a refused batch, want 0", n)
			}
		})
	}
}

// TestClaimManyAndAckManyTx: one claim for several gateways returns each
// gateway's due commands up to the limit, highest priority first, never
// another organisation's (the tenant's RLS) and never a command twice; the
// acknowledgements of several gateways in one transaction record what
// Received and Finish would and report the rest (a wrong gateway, a
// finished command) as not recorded.
func TestClaimManyAndAckManyTx(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, commandqueue.Options{})
	var other uuid.UUID
	if err := f.admin.QueryRow(ctx, `INSERT INTO gateway_instances (organization_id, serial, api_key_hash, status)
		VALUES ($1, 'claim-many', sha256(convert_to('claim-many', 'UTF8')), 'online') RETURNING id`, f.a.OrganizationID).Scan(&other); err != nil {
		t.Fatal(err)
	}
	enq := func(tenant postgres.Tenant, gw uuid.UUID, prio int) uuid.UUID {
		c, err := f.enq.Enqueue(ctx, tenant, commandqueue.NewCommand{GatewayID: gw, Type: protocol.CommandRestartAgent, Priority: prio})
		if err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	low, high, third := enq(f.ta, f.a.GatewayID, 1), enq(f.ta, f.a.GatewayID, 9), enq(f.ta, f.a.GatewayID, 5)
	mine := enq(f.ta, other, 0)
	foreign := enq(f.tb, f.b.GatewayID, 0)

	got, err := f.q.ClaimMany(ctx, f.ta, []uuid.UUID{f.a.GatewayID, other, f.b.GatewayID, other}, 2)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(cs []commandqueue.Command) []uuid.UUID {
		var out []uuid.UUID
		for _, c := range cs {
			if c.Status != commandqueue.StatusDelivered || c.Attempts != 1 {
				t.Fatalf("claimed %+v", c)
			}
			out = append(out, c.ID)
		}
		return out
	}
	for _, tc := range []struct {
		gw   uuid.UUID
		want []uuid.UUID
	}{{f.a.GatewayID, []uuid.UUID{high, third}}, {other, []uuid.UUID{mine}}, {f.b.GatewayID, nil}} {
		if g := ids(got[tc.gw]); !slices.Equal(g, tc.want) {
			t.Fatalf("gateway %s: claimed %v, want %v", tc.gw, g, tc.want)
		}
	}
	if again, err := f.q.ClaimMany(ctx, f.ta, []uuid.UUID{f.a.GatewayID, other}, 10); err != nil || !slices.Equal(ids(again[f.a.GatewayID]), []uuid.UUID{low}) || len(again[other]) != 0 {
		t.Fatalf("second claim: %v %v", again, err)
	}
	if c, _ := f.enq.Get(ctx, f.tb, foreign); c.Status != commandqueue.StatusPending {
		t.Fatalf("another organisation's command: %s", c.Status)
	}

	var recorded []bool
	err = postgresInTenant(ctx, f, f.ta, func(tx pgx.Tx) (err error) {
		recorded, err = f.q.AckManyTx(ctx, tx, []commandqueue.Ack{
			{GatewayID: f.a.GatewayID, ID: high, Phase: protocol.AckReceived},
			{GatewayID: f.a.GatewayID, ID: third, Phase: protocol.AckCompleted, Result: []byte(`{"ok":true}`)},
			{GatewayID: other, ID: mine, Phase: protocol.AckFailed, Error: "broke"},
			{GatewayID: other, ID: low, Phase: protocol.AckCompleted}, // not its command
		})
		return err
	})
	if err != nil || !slices.Equal(recorded, []bool{true, true, true, false}) {
		t.Fatalf("ack many: %v %v", recorded, err)
	}
	for _, tc := range []struct {
		id       uuid.UUID
		status   string
		received bool
	}{{high, commandqueue.StatusDelivered, true}, {third, commandqueue.StatusCompleted, true}, {mine, commandqueue.StatusFailed, true},
		{low, commandqueue.StatusDelivered, false}} {
		c, err := f.enq.Get(ctx, f.ta, tc.id)
		if err != nil || c.Status != tc.status || (c.ReceivedAt != nil) != tc.received {
			t.Fatalf("command %s: %+v %v, want %s received=%v", tc.id, c, err, tc.status, tc.received)
		}
	}
	if c, _ := f.enq.Get(ctx, f.ta, mine); c.Error == nil || *c.Error != "broke" || c.Result != nil {
		t.Fatalf("failed ack's error and result: %+v", c)
	}
	if c, _ := f.enq.Get(ctx, f.ta, third); string(c.Result) != `{"ok": true}` || c.Error != nil {
		t.Fatalf("completed ack's result and error: %s %v", c.Result, c.Error)
	}
	// A finished command's ack is not recorded again.
	err = postgresInTenant(ctx, f, f.ta, func(tx pgx.Tx) (err error) {
		recorded, err = f.q.AckManyTx(ctx, tx, []commandqueue.Ack{{GatewayID: f.a.GatewayID, ID: third, Phase: protocol.AckFailed}})
		return err
	})
	if err != nil || !slices.Equal(recorded, []bool{false}) {
		t.Fatalf("ack of a finished command: %v %v", recorded, err)
	}
}
