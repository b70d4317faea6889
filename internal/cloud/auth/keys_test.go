package auth_test

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

// keyWorld is a database with two organisations, each with one
// provisioned gateway.
type keyWorld struct {
	db     *pgtest.Database
	gws    *auth.Gateways // as the ingest role, like the Agent API
	ingest *pgxpool.Pool
	dash   *pgxpool.Pool
	admin  *pgx.Conn
	queue  *commandqueue.Queue // as the dashboard role, like staffctl and the dashboard
	a, b   keyGateway
}

type keyGateway struct {
	gw  auth.Gateway
	key string
}

func (g keyGateway) tenant() postgres.Tenant {
	return postgres.Tenant{OrganizationID: g.gw.OrganizationID, Role: postgres.AppOrgAdmin}
}

func newKeyWorld(t *testing.T) *keyWorld {
	t.Helper()
	ctx := context.Background()
	w := &keyWorld{db: pg.NewDatabase(t)}
	var err error
	if w.ingest, err = postgres.Connect(ctx, w.db.IngestURL, 16, pg.ContextKey()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.ingest.Close)
	if w.dash, err = postgres.Connect(ctx, w.db.DashboardURL, 4, pg.ContextKey()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.dash.Close)
	if w.admin, err = pgx.Connect(ctx, w.db.AdminURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.admin.Close(context.Background()) })
	if w.queue, err = commandqueue.New(w.dash, commandqueue.Options{}, service.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	w.gws = auth.NewGateways(w.ingest)
	acc := accounts.New(pg.Pool(t, w.db.PlatformAdminURL, 2), time.Now)
	admin := accounts.Actor{Name: "test", Tenant: postgres.Tenant{Role: postgres.AppAdmin}}
	for i, g := range []*keyGateway{&w.a, &w.b} {
		o, err := acc.CreateOrganization(ctx, admin, []string{"Alpha", "Beta"}[i], "")
		if err != nil {
			t.Fatal(err)
		}
		r, err := acc.RegisterGateway(ctx, admin, o.ID, "GW-1", "", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		gw, key, err := w.gws.Provision(ctx, o.ID, "GW-1", r.ProvisioningToken)
		if err != nil {
			t.Fatal(err)
		}
		*g = keyGateway{gw: gw, key: key}
	}
	return w
}

// authOK authenticates key and checks it is gateway g's.
func (w *keyWorld) authOK(t *testing.T, what, key string, g keyGateway) {
	t.Helper()
	got, err := w.gws.Authenticate(context.Background(), key)
	if err != nil {
		t.Fatalf("%s: Authenticate: %v", what, err)
	}
	if got.ID != g.gw.ID || got.OrganizationID != g.gw.OrganizationID {
		t.Fatalf("%s: authenticated as %v/%d, want %v/%d", what, got.ID, got.OrganizationID, g.gw.ID, g.gw.OrganizationID)
	}
}

func (w *keyWorld) authRefused(t *testing.T, what, key string) {
	t.Helper()
	if _, err := w.gws.Authenticate(context.Background(), key); !errors.Is(err, auth.ErrUnauthorized) {
		t.Fatalf("%s: Authenticate = %v, want ErrUnauthorized", what, err)
	}
}

func (w *keyWorld) enqueueRotate(t *testing.T, g keyGateway) uuid.UUID {
	t.Helper()
	c, err := w.queue.Enqueue(context.Background(), g.tenant(), commandqueue.NewCommand{GatewayID: g.gw.ID, Type: protocol.CommandRotateAPIKey,
		Payload: json.RawMessage(`{"overlap_seconds": 600}`)})
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func (w *keyWorld) pending(t *testing.T, g keyGateway) (hash []byte, cmd *uuid.UUID) {
	t.Helper()
	if err := w.admin.QueryRow(context.Background(), `SELECT pending_key_hash, pending_command_id FROM gateway_instances WHERE id = $1`, g.gw.ID).Scan(&hash, &cmd); err != nil {
		t.Fatal(err)
	}
	return hash, cmd
}

// TestRotateThenFirstUsePromotes: after RotateKey both keys work as long as
// the new one is unused; the first request with the new key promotes it,
// revokes the old one and completes the command; ConfirmKey reports it.
func TestRotateThenFirstUsePromotes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newKeyWorld(t)
	cmd := w.enqueueRotate(t, w.a)
	rot, err := w.gws.RotateKey(ctx, w.a.gw, w.a.key, cmd, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if rot.Rotated || rot.APIKey == "" || rot.APIKey == w.a.key || rot.KeyPrefix != auth.KeyPrefix(rot.APIKey) || len(rot.KeyPrefix) != 9 {
		t.Fatalf("rotation = %+v, want a new pending key with its 9-character prefix", rot)
	}
	if d := time.Until(rot.ExpiresAt); d < 9*time.Minute || d > 11*time.Minute {
		t.Fatalf("overlap ends in %v, want about 10 minutes", d)
	}
	// Only the hash is stored.
	hash, pcmd := w.pending(t, w.a)
	if string(hash) != string(auth.HashSecret(rot.APIKey)) || pcmd == nil || *pcmd != cmd {
		t.Fatalf("pending hash/command not stored as expected (command %v)", pcmd)
	}
	var stored int
	if err := w.admin.QueryRow(ctx, `SELECT count(*) FROM gateway_instances g, gateway_commands c
		WHERE g.pending_key_prefix = $1 AND (c.payload::text LIKE '%' || $2 || '%' OR g::text LIKE '%' || $2 || '%')`, rot.KeyPrefix, rot.APIKey[5:]).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != 0 {
		t.Fatal("the plaintext key is stored somewhere")
	}
	// Old key: still valid while the new one is unused; confirming with it
	// is a conflict (the gateway has not switched).
	for i := 0; i < 3; i++ {
		w.authOK(t, "old key during the overlap", w.a.key, w.a)
	}
	if _, err := w.gws.ConfirmKey(ctx, w.a.gw, w.a.key); !errors.Is(err, auth.ErrKeyConflict) {
		t.Fatalf("ConfirmKey with the old key = %v, want ErrKeyConflict", err)
	}
	// First use of the new key promotes it.
	w.authOK(t, "new key", rot.APIKey, w.a)
	w.authRefused(t, "old key after the new key's first use", w.a.key)
	w.authOK(t, "new key again", rot.APIKey, w.a)
	if h, _ := w.pending(t, w.a); h != nil {
		t.Fatal("a pending key remains after promotion")
	}
	c, err := w.gws.ConfirmKey(ctx, w.a.gw, rot.APIKey)
	if err != nil {
		t.Fatal(err)
	}
	if c.KeyPrefix != rot.KeyPrefix || c.CommandID != cmd || time.Since(c.RotatedAt) > time.Minute {
		t.Fatalf("confirmation = %+v, want prefix %s, command %s, just now", c, rot.KeyPrefix, cmd)
	}
	// The command is completed with the prefix, never the key.
	got, err := w.queue.Get(ctx, w.a.tenant(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		KeyPrefix string    `json:"key_prefix"`
		RotatedAt time.Time `json:"rotated_at"`
	}
	if got.Status != commandqueue.StatusCompleted || json.Unmarshal(got.Result, &res) != nil || res.KeyPrefix != rot.KeyPrefix || res.RotatedAt.IsZero() {
		t.Fatalf("command = %s %s, want completed with key_prefix %s", got.Status, got.Result, rot.KeyPrefix)
	}
	// A re-run of the same command (the gateway crashed before recording
	// it) issues no new key; a new command does.
	again, err := w.gws.RotateKey(ctx, w.a.gw, rot.APIKey, cmd, 0)
	if err != nil || !again.Rotated || again.APIKey != "" || again.KeyPrefix != rot.KeyPrefix {
		t.Fatalf("re-run of a completed rotation = %+v, %v; want Rotated with the same prefix and no key", again, err)
	}
	next, err := w.gws.RotateKey(ctx, w.a.gw, rot.APIKey, w.enqueueRotate(t, w.a), 0)
	if err != nil || next.Rotated || next.APIKey == "" {
		t.Fatalf("a second command = %+v, %v; want a new pending key", next, err)
	}
	if d := time.Until(next.ExpiresAt); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("default overlap ends in %v, want about an hour", d)
	}
}

// TestRotateAgainReplacesThePendingKey: a second rotation (a redelivered
// command after a crash before the key was saved) replaces the pending
// key; the first one never works.
func TestRotateAgainReplacesThePendingKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newKeyWorld(t)
	cmd := w.enqueueRotate(t, w.a)
	first, err := w.gws.RotateKey(ctx, w.a.gw, w.a.key, cmd, 0)
	if err != nil {
		t.Fatal(err)
	}
	second, err := w.gws.RotateKey(ctx, w.a.gw, w.a.key, cmd, 0)
	if err != nil || second.Rotated || second.APIKey == first.APIKey {
		t.Fatalf("second rotation = %+v, %v; want another pending key", second, err)
	}
	w.authRefused(t, "replaced pending key", first.APIKey)
	w.authOK(t, "old key", w.a.key, w.a)
	w.authOK(t, "second pending key", second.APIKey, w.a)
	w.authRefused(t, "old key after promotion", w.a.key)
	// Rotating with a key that is no longer current is a conflict, as the
	// middleware would have refused it anyway.
	if _, err := w.gws.RotateKey(ctx, w.a.gw, w.a.key, uuid.Nil, 0); !errors.Is(err, auth.ErrKeyConflict) {
		t.Fatalf("rotate with the revoked key = %v, want ErrKeyConflict", err)
	}
	// Overlap bounds.
	for _, d := range []time.Duration{time.Second, 8 * 24 * time.Hour} {
		if _, err := w.gws.RotateKey(ctx, w.a.gw, second.APIKey, uuid.Nil, d); err == nil {
			t.Errorf("overlap %v accepted", d)
		}
	}
}

// TestPendingKeyExpiry: once the overlap has passed, the first request
// made with the old key discards the pending key (the gateway never saved
// it). A gateway silent since the rotation may hold the new key, which
// therefore still works until the old key is heard from.
func TestPendingKeyExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newKeyWorld(t)
	expire := func(g keyGateway) {
		t.Helper()
		if _, err := w.admin.Exec(ctx, `UPDATE gateway_instances SET pending_key_expires_at = now() - interval '1 second' WHERE id = $1`, g.gw.ID); err != nil {
			t.Fatal(err)
		}
	}
	// The gateway kept its old key (crash before saving the new one).
	cmd := w.enqueueRotate(t, w.a)
	rot, err := w.gws.RotateKey(ctx, w.a.gw, w.a.key, cmd, 0)
	if err != nil {
		t.Fatal(err)
	}
	expire(w.a)
	w.authOK(t, "old key after the overlap", w.a.key, w.a)
	if h, c := w.pending(t, w.a); h != nil || c != nil {
		t.Fatal("the expired pending key was not discarded by the old key's use")
	}
	w.authRefused(t, "expired pending key", rot.APIKey)
	w.authOK(t, "old key stays valid", w.a.key, w.a)
	if got, _ := w.queue.Get(ctx, w.a.tenant(), cmd); got.Status == commandqueue.StatusCompleted {
		t.Fatal("an expired rotation completed its command")
	}

	// The gateway saved the new key and was silent past the overlap: the
	// new key still works and is promoted; it is never locked out.
	rot2, err := w.gws.RotateKey(ctx, w.b.gw, w.b.key, uuid.Nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	expire(w.b)
	w.authOK(t, "new key of a gateway silent past the overlap", rot2.APIKey, w.b)
	w.authRefused(t, "old key after promotion", w.b.key)
	if c, err := w.gws.ConfirmKey(ctx, w.b.gw, rot2.APIKey); err != nil || c.CommandID != uuid.Nil || c.KeyPrefix != rot2.KeyPrefix {
		t.Fatalf("confirm without a command = %+v, %v", c, err)
	}
	// Confirming a key that was never rotated is a conflict.
	if _, err := w.gws.ConfirmKey(ctx, w.a.gw, w.a.key); !errors.Is(err, auth.ErrKeyConflict) {
		t.Fatalf("confirm a never-rotated key = %v, want ErrKeyConflict", err)
	}
}

// TestConcurrentFirstUses: many requests made with the new key at once
// (uplink streams, the control socket, the confirmation) all authenticate.
func TestConcurrentFirstUses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newKeyWorld(t)
	rot, err := w.gws.RotateKey(ctx, w.a.gw, w.a.key, uuid.Nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := w.gws.Authenticate(ctx, rot.APIKey)
			if err == nil && got.ID != w.a.gw.ID {
				err = errors.New("wrong gateway")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent first use: %v", err)
		}
	}
	w.authRefused(t, "old key", w.a.key)
}

// TestPromotionNotifiesRevocation: promotion changes api_key_hash, so the
// gateway_revoked NOTIFY fires and the replica holding a socket made with
// the old key closes it. Issuing a pending key does not.
func TestPromotionNotifiesRevocation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newKeyWorld(t)
	listener, err := pgx.Connect(ctx, w.db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(ctx)
	if _, err := listener.Exec(ctx, `LISTEN gateway_revoked`); err != nil {
		t.Fatal(err)
	}
	rot, err := w.gws.RotateKey(ctx, w.a.gw, w.a.key, uuid.Nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	if n, err := listener.WaitForNotification(wctx); err == nil {
		t.Fatalf("issuing a pending key notified %s", n.Payload)
	}
	cancel()
	w.authOK(t, "new key", rot.APIKey, w.a)
	wctx, cancel = context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := listener.WaitForNotification(wctx)
	if err != nil || n.Payload != w.a.gw.ID.String() {
		t.Fatalf("notification after promotion = %v, %v; want gateway_revoked %s", n, err, w.a.gw.ID)
	}
}

// TestKeyRotationTwoOrganisations: a gateway of organisation B cannot
// rotate for A's command, confirm A's key, or see A's pending key; A's
// rotation is untouched by all of it.
func TestKeyRotationTwoOrganisations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newKeyWorld(t)
	cmdA := w.enqueueRotate(t, w.a)
	rotA, err := w.gws.RotateKey(ctx, w.a.gw, w.a.key, cmdA, 0)
	if err != nil {
		t.Fatal(err)
	}
	// B executes "A's command": not found, like a missing one.
	if _, err := w.gws.RotateKey(ctx, w.b.gw, w.b.key, cmdA, 0); !errors.Is(err, auth.ErrCommandNotFound) {
		t.Fatalf("B rotating for A's command = %v, want ErrCommandNotFound", err)
	}
	if _, err := w.gws.RotateKey(ctx, w.b.gw, w.b.key, uuid.New(), 0); !errors.Is(err, auth.ErrCommandNotFound) {
		t.Fatalf("B rotating for an unknown command = %v, want ErrCommandNotFound", err)
	}
	// B presenting A's keys as if they were its own: refused.
	for _, k := range []string{w.a.key, rotA.APIKey} {
		if _, err := w.gws.RotateKey(ctx, w.b.gw, k, uuid.Nil, 0); !errors.Is(err, auth.ErrKeyConflict) {
			t.Fatalf("B rotating with A's key = %v, want ErrKeyConflict", err)
		}
		if _, err := w.gws.ConfirmKey(ctx, w.b.gw, k); !errors.Is(err, auth.ErrKeyConflict) {
			t.Fatalf("B confirming A's key = %v, want ErrKeyConflict", err)
		}
	}
	// A gateway whose tenant context is B's but whose id is A's (a forged
	// context) finds no row at all.
	forged := auth.Gateway{ID: w.a.gw.ID, OrganizationID: w.b.gw.OrganizationID}
	if _, err := w.gws.RotateKey(ctx, forged, w.a.key, uuid.Nil, 0); !errors.Is(err, auth.ErrUnauthorized) {
		t.Fatalf("rotate under another organisation's context = %v, want ErrUnauthorized", err)
	}
	if _, err := w.gws.ConfirmKey(ctx, forged, rotA.APIKey); !errors.Is(err, auth.ErrUnauthorized) {
		t.Fatalf("confirm under another organisation's context = %v, want ErrUnauthorized", err)
	}
	// B's own rotation leaves A's pending key in place.
	rotB, err := w.gws.RotateKey(ctx, w.b.gw, w.b.key, w.enqueueRotate(t, w.b), 0)
	if err != nil {
		t.Fatal(err)
	}
	if h, c := w.pending(t, w.a); string(h) != string(auth.HashSecret(rotA.APIKey)) || c == nil || *c != cmdA {
		t.Fatal("B's rotation changed A's pending key")
	}
	// Pending keys are invisible across organisations, to both runtime roles.
	for _, pool := range []*pgxpool.Pool{w.dash, w.ingest} {
		for _, self := range []keyGateway{w.a, w.b} {
			err := postgres.InTenant(ctx, pool, self.tenant(), func(tx pgx.Tx) error {
				var own, foreign int
				if err := tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE organization_id = $1), count(*) FILTER (WHERE organization_id <> $1)
					FROM gateway_instances WHERE pending_key_hash IS NOT NULL`, self.gw.OrganizationID).Scan(&own, &foreign); err != nil {
					return err
				}
				if own != 1 || foreign != 0 {
					return errors.New("sees pending keys of another organisation, or not its own")
				}
				tag, err := tx.Exec(ctx, `UPDATE gateway_instances SET pending_key_hash = NULL, pending_key_expires_at = NULL WHERE organization_id <> $1`, self.gw.OrganizationID)
				if err != nil {
					return err
				}
				if tag.RowsAffected() != 0 {
					return errors.New("cleared another organisation's pending key")
				}
				return nil
			})
			if err != nil {
				t.Errorf("org %d: %v", self.gw.OrganizationID, err)
			}
		}
	}
	// Each key still authenticates only its own gateway.
	w.authOK(t, "A's new key", rotA.APIKey, w.a)
	w.authOK(t, "B's new key", rotB.APIKey, w.b)
	w.authRefused(t, "A's old key", w.a.key)
	w.authRefused(t, "B's old key", w.b.key)
	// A's command was completed by A's promotion; B's by B's.
	if got, _ := w.queue.Get(ctx, w.a.tenant(), cmdA); got.Status != commandqueue.StatusCompleted {
		t.Fatalf("A's command is %s", got.Status)
	}
	if _, err := w.queue.Get(ctx, w.b.tenant(), cmdA); !errors.Is(err, commandqueue.ErrNotFound) {
		t.Fatalf("B reads A's command: %v", err)
	}
}

// TestRotateRefusesFinishedOrForeignCommands: only a pending or delivered
// rotate_api_key command of the gateway starts a rotation.
func TestRotateRefusesFinishedOrForeignCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newKeyWorld(t)
	cancelled := w.enqueueRotate(t, w.a)
	if err := w.queue.Cancel(ctx, w.a.tenant(), cancelled); err != nil {
		t.Fatal(err)
	}
	if _, err := w.gws.RotateKey(ctx, w.a.gw, w.a.key, cancelled, 0); !errors.Is(err, auth.ErrKeyConflict) {
		t.Fatalf("rotate for a cancelled command = %v, want ErrKeyConflict", err)
	}
	other, err := w.queue.Enqueue(ctx, w.a.tenant(), commandqueue.NewCommand{GatewayID: w.a.gw.ID, Type: protocol.CommandRestartAgent, Payload: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.gws.RotateKey(ctx, w.a.gw, w.a.key, other.ID, 0); !errors.Is(err, auth.ErrCommandNotFound) {
		t.Fatalf("rotate for a restart_agent command = %v, want ErrCommandNotFound", err)
	}
	if h, _ := w.pending(t, w.a); h != nil {
		t.Fatal("a refused rotation left a pending key")
	}
	// A revoked gateway can neither rotate nor use a pending key.
	rot, err := w.gws.RotateKey(ctx, w.a.gw, w.a.key, uuid.Nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.admin.Exec(ctx, `UPDATE gateway_instances SET revoked_at = now(), status = 'revoked' WHERE id = $1`, w.a.gw.ID); err != nil {
		t.Fatal(err)
	}
	w.authRefused(t, "pending key of a revoked gateway", rot.APIKey)
	w.authRefused(t, "old key of a revoked gateway", w.a.key)
	if _, err := w.gws.RotateKey(ctx, w.a.gw, w.a.key, uuid.Nil, 0); !errors.Is(err, auth.ErrUnauthorized) {
		t.Fatalf("rotate on a revoked gateway = %v, want ErrUnauthorized", err)
	}
}

// BenchmarkAuthenticate measures the gateway lookup every Agent API request
// makes (one round trip to PostgreSQL), with no rotation and with a key
// pending (the old key then also checks the pending key's expiry).
func BenchmarkAuthenticate(b *testing.B) {
	ctx := context.Background()
	db := pg.NewDatabase(b)
	ing, err := postgres.Connect(ctx, db.IngestURL, 4, pg.ContextKey())
	if err != nil {
		b.Fatal(err)
	}
	defer ing.Close()
	dash, err := postgres.Connect(ctx, db.DashboardURL, 2, pg.ContextKey())
	if err != nil {
		b.Fatal(err)
	}
	defer dash.Close()
	gws := auth.NewGateways(ing)
	acc := accounts.New(pg.Pool(b, db.PlatformAdminURL, 2), time.Now)
	admin := accounts.Actor{Name: "bench", Tenant: postgres.Tenant{Role: postgres.AppAdmin}}
	o, err := acc.CreateOrganization(ctx, admin, "Bench", "")
	if err != nil {
		b.Fatal(err)
	}
	r, err := acc.RegisterGateway(ctx, admin, o.ID, "GW", "", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	gw, key, err := gws.Provision(ctx, o.ID, "GW", r.ProvisioningToken)
	if err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B) {
		for b.Loop() {
			if _, err := gws.Authenticate(ctx, key); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("current", run)
	if _, err := gws.RotateKey(ctx, gw, key, uuid.Nil, 0); err != nil {
		b.Fatal(err)
	}
	b.Run("old-key-while-pending", run)
}

// TestReprovisioningVoidsAPendingKey: a key set other than by promotion
// (here a fresh provisioning token) voids the pending key.
func TestReprovisioningVoidsAPendingKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newKeyWorld(t)
	rot, err := w.gws.RotateKey(ctx, w.a.gw, w.a.key, w.enqueueRotate(t, w.a), 0)
	if err != nil {
		t.Fatal(err)
	}
	token, hash, err := auth.NewSecret(auth.PrefixProvisioningToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.admin.Exec(ctx, `INSERT INTO provisioning_tokens (organization_id, gateway_id, token_hash, expires_at, created_by)
		VALUES ($1, $2, $3, now() + interval '1 hour', 'test')`, w.a.gw.OrganizationID, w.a.gw.ID, hash); err != nil {
		t.Fatal(err)
	}
	_, fresh, err := w.gws.Provision(ctx, w.a.gw.OrganizationID, "GW-1", token)
	if err != nil {
		t.Fatal(err)
	}
	if h, c := w.pending(t, w.a); h != nil || c != nil {
		t.Fatal("the pending key survived re-provisioning")
	}
	w.authRefused(t, "pending key after re-provisioning", rot.APIKey)
	w.authRefused(t, "key before re-provisioning", w.a.key)
	w.authOK(t, "re-provisioned key", fresh, w.a)
}
