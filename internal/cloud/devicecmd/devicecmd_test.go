package devicecmd_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/devicecmd"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

// fixture: organisations A and B seeded, the service over the dashboard
// role, and the queue as the ingest role acknowledges through it (the
// control channel's calls).
type fixture struct {
	ctx    context.Context
	admin  *pgx.Conn
	dash   *pgxpool.Pool
	svc    *devicecmd.Service
	ingest *commandqueue.Queue
	a, b   pgtest.Seeded
	ta, tb postgres.Tenant
}

func newFixture(t *testing.T, opts commandqueue.Options) *fixture {
	t.Helper()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	f := &fixture{ctx: ctx, admin: admin}
	if f.a, err = pgtest.SeedOrganization(ctx, admin, "alpha"); err != nil {
		t.Fatal(err)
	}
	if f.b, err = pgtest.SeedOrganization(ctx, admin, "beta"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, `DELETE FROM gateway_commands`); err != nil {
		t.Fatal(err)
	}
	f.ta = postgres.Tenant{OrganizationID: f.a.OrganizationID, Role: postgres.AppOrgAdmin, Actor: "test"}
	f.tb = postgres.Tenant{OrganizationID: f.b.OrganizationID, Role: postgres.AppOrgAdmin, Actor: "test"}
	f.dash = pg.Pool(t, db.DashboardURL, 8)
	q, err := commandqueue.New(f.dash, opts, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	f.svc = devicecmd.New(f.dash, q)
	if f.ingest, err = commandqueue.New(pg.Pool(t, db.IngestURL, 4), opts, prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := f.admin.Exec(f.ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func (f *fixture) get(t *testing.T, id uuid.UUID) devicecmd.Command {
	t.Helper()
	c, err := f.svc.Get(f.ctx, f.ta, id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// claim delivers A's gateway's due commands as the control channel does.
func (f *fixture) claim(t *testing.T) []commandqueue.Command {
	t.Helper()
	cs, err := f.ingest.Claim(f.ctx, postgres.Tenant{OrganizationID: f.a.OrganizationID}, f.a.GatewayID, 10)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func gatewayTenant(o pgtest.Seeded) postgres.Tenant {
	return postgres.Tenant{OrganizationID: o.OrganizationID}
}

// TestDeviceCommandFollowsItsGatewayCommand: the device_commands row moves
// with its gateway command in the database, whatever moves the command:
// the gateway's acknowledgements through the queue (delivered, completed
// with an ok or a failed result, failed), a cancellation, the sweep
// (attempts exhausted). A final row never changes again.
func TestDeviceCommandFollowsItsGatewayCommand(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commandqueue.Options{AckTimeout: time.Millisecond, Backoff: time.Millisecond})
	ok := json.RawMessage(`{"status":"ok","device_serial":"DS-1","message":"opened"}`)
	refused := json.RawMessage(`{"status":"failed","message":"door is locked down"}`)
	for _, tc := range []struct {
		name      string
		finish    func(t *testing.T, c devicecmd.Command)
		status    string
		errText   string
		response  json.RawMessage
		delivered bool
	}{
		{"completed ok", func(t *testing.T, c devicecmd.Command) {
			f.ack(t, c, true, ok, "")
		}, devicecmd.StatusCompleted, "", ok, true},
		{"completed, the device refused", func(t *testing.T, c devicecmd.Command) {
			f.ack(t, c, true, refused, "")
		}, devicecmd.StatusFailed, "door is locked down", refused, true},
		{"failed by the gateway", func(t *testing.T, c devicecmd.Command) {
			f.ack(t, c, false, nil, "no device 7 on this gateway")
		}, devicecmd.StatusFailed, "no device 7 on this gateway", nil, true},
		{"cancelled", func(t *testing.T, c devicecmd.Command) {
			if err := f.ingest.Cancel(f.ctx, gatewayTenant(f.a), *c.GatewayCommandID); err != nil {
				t.Fatal(err)
			}
		}, devicecmd.StatusCancelled, "cancelled", nil, false},
		{"attempts exhausted", func(t *testing.T, c devicecmd.Command) {
			for i := 0; i < 2; i++ { // maxAttempts deliveries, none acknowledged
				time.Sleep(5 * time.Millisecond) // past the 1 ms redelivery backoff
				if len(f.claim(t)) != 1 {
					t.Fatalf("delivery %d: not claimed", i+1)
				}
				if got := f.get(t, c.ID); got.Status != devicecmd.StatusDelivered || got.DeliveredAt == nil {
					t.Fatalf("delivery %d: row %s", i+1, got.Status)
				}
				time.Sleep(5 * time.Millisecond) // past the 1 ms acknowledgement deadline
				if _, err := f.ingest.Sweep(f.ctx); err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					if got := f.get(t, c.ID); got.Status != devicecmd.StatusPending {
						t.Fatalf("after a missed acknowledgement: row %s, want pending (redelivery)", got.Status)
					}
				}
			}
		}, devicecmd.StatusFailed, "not acknowledged after 2 attempts", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := f.svc.Send(f.ctx, f.ta, devicecmd.Request{DeviceID: f.a.DeviceID, Command: protocol.DeviceOpenDoor, Door: 2,
				Params: json.RawMessage(`{"seconds":5}`), CreatedBy: "test"})
			if err != nil {
				t.Fatal(err)
			}
			if c.Status != devicecmd.StatusPending || c.GatewayCommandID == nil || c.GatewayID != f.a.GatewayID || c.ExpiresAt == nil {
				t.Fatalf("sent: %+v", c)
			}
			tc.finish(t, c)
			got := f.get(t, c.ID)
			if got.Status != tc.status || got.CompletedAt == nil {
				t.Fatalf("status %s (completed_at %v), want %s", got.Status, got.CompletedAt, tc.status)
			}
			if e := deref(got.Error); e != tc.errText {
				t.Errorf("error %q, want %q", e, tc.errText)
			}
			if !sameJSON(got.Response, tc.response) {
				t.Errorf("response %s, want %s", got.Response, tc.response)
			}
			if (got.DeliveredAt != nil) != tc.delivered {
				t.Errorf("delivered_at %v", got.DeliveredAt)
			}
			// A final row stays: a later status change of the gateway
			// command (by hand, as nothing in the queue does it) is not
			// followed.
			f.exec(t, `UPDATE gateway_commands SET status = 'pending' WHERE id = $1`, *got.GatewayCommandID)
			if again := f.get(t, c.ID); again.Status != tc.status {
				t.Errorf("final row moved to %s", again.Status)
			}
			f.exec(t, `UPDATE gateway_commands SET status = 'cancelled' WHERE id = $1`, *got.GatewayCommandID)
		})
	}
}

// ack acknowledges c's gateway command as the gateway does: claimed
// (the row says delivered), received, then finished.
func (f *fixture) ack(t *testing.T, c devicecmd.Command, ok bool, result json.RawMessage, errMsg string) {
	t.Helper()
	cs := f.claim(t)
	if len(cs) != 1 || cs[0].ID != *c.GatewayCommandID || cs[0].Type != protocol.CommandDeviceCommand {
		t.Fatalf("claimed %+v", cs)
	}
	var p protocol.DeviceCommandPayload
	if err := json.Unmarshal(cs[0].Payload, &p); err != nil || p.Validate() != nil || p.DeviceCommandID != c.ID.String() ||
		p.DeviceID != f.a.DeviceID || p.Command != protocol.DeviceOpenDoor || p.Door != 2 || !sameJSON(p.Params, json.RawMessage(`{"seconds":5}`)) {
		t.Fatalf("payload %s (%v)", cs[0].Payload, err)
	}
	if got := f.get(t, c.ID); got.Status != devicecmd.StatusDelivered || got.DeliveredAt == nil {
		t.Fatalf("after the claim: %s", got.Status)
	}
	gt := gatewayTenant(f.a)
	if err := f.ingest.Received(f.ctx, gt, f.a.GatewayID, cs[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := f.ingest.Finish(f.ctx, gt, f.a.GatewayID, cs[0].ID, ok, result, errMsg); err != nil {
		t.Fatal(err)
	}
	// A redelivered acknowledgement changes nothing.
	if err := f.ingest.Finish(f.ctx, gt, f.a.GatewayID, cs[0].ID, !ok, nil, "late"); err != nil {
		t.Fatal(err)
	}
}

// TestCommandForAGatewayThatNeverConnectsExpires: nobody claims it; after
// its expiry the sweep expires the gateway command and the row says
// expired, with the reason.
func TestCommandForAGatewayThatNeverConnectsExpires(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commandqueue.Options{})
	c, err := f.svc.Send(f.ctx, f.ta, devicecmd.Request{DeviceID: f.a.DeviceID, Command: protocol.DeviceReboot, TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ingest.Sweep(f.ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.get(t, c.ID); got.Status != devicecmd.StatusPending {
		t.Fatalf("before its expiry: %s", got.Status)
	}
	time.Sleep(time.Until(*c.ExpiresAt) + 50*time.Millisecond)
	swept, err := f.ingest.Sweep(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(swept) != 1 || swept[0].ID != *c.GatewayCommandID || swept[0].Status != commandqueue.StatusExpired {
		t.Fatalf("swept %+v", swept)
	}
	got := f.get(t, c.ID)
	if got.Status != devicecmd.StatusExpired || deref(got.Error) != "expired before delivery" || got.CompletedAt == nil || got.DeliveredAt != nil {
		t.Fatalf("row %+v", got)
	}
}

// TestSendRefuses: each refusal names its field; another organisation's
// device is not found; nothing is left behind by a refusal.
func TestSendRefuses(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commandqueue.Options{})
	var loose int64
	if err := f.admin.QueryRow(f.ctx, `INSERT INTO devices (organization_id, name, adapter_type) VALUES ($1, 'Loose', 'zkteco') RETURNING id`,
		f.a.OrganizationID).Scan(&loose); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		req   devicecmd.Request
		field string
	}{
		{"unknown operation", devicecmd.Request{DeviceID: f.a.DeviceID, Command: "self_destruct"}, "command"},
		{"no operation", devicecmd.Request{DeviceID: f.a.DeviceID}, "command"},
		{"door too high", devicecmd.Request{DeviceID: f.a.DeviceID, Command: protocol.DeviceOpenDoor, Door: protocol.MaxDoor + 1}, "door"},
		{"negative door", devicecmd.Request{DeviceID: f.a.DeviceID, Command: protocol.DeviceOpenDoor, Door: -1}, "door"},
		{"params not an object", devicecmd.Request{DeviceID: f.a.DeviceID, Command: protocol.DeviceOpenDoor, Params: json.RawMessage(`[1]`)}, "params"},
		{"expiry too long", devicecmd.Request{DeviceID: f.a.DeviceID, Command: protocol.DeviceReboot, TTL: 25 * time.Hour}, "expires_in_seconds"},
		{"expiry too short", devicecmd.Request{DeviceID: f.a.DeviceID, Command: protocol.DeviceReboot, TTL: time.Millisecond}, "expires_in_seconds"},
		{"device without a gateway", devicecmd.Request{DeviceID: loose, Command: protocol.DeviceReboot}, "device_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.Send(f.ctx, f.ta, tc.req)
			e := apperr.As(err)
			if e == nil || e.Code != apperr.Invalid || e.Field != tc.field {
				t.Fatalf("err %v, want invalid %s", err, tc.field)
			}
		})
	}
	if _, err := f.svc.Send(f.ctx, f.ta, devicecmd.Request{DeviceID: f.b.DeviceID, Command: protocol.DeviceReboot}); !errors.Is(err, devicecmd.ErrNotFound) {
		t.Errorf("B's device from A: %v", err)
	}
	f.exec(t, `UPDATE gateway_instances SET revoked_at = now(), status = 'revoked' WHERE id = $1`, f.a.GatewayID)
	if _, err := f.svc.Send(f.ctx, f.ta, devicecmd.Request{DeviceID: f.a.DeviceID, Command: protocol.DeviceReboot}); apperr.As(err) == nil || apperr.As(err).Field != "device_id" {
		t.Errorf("revoked gateway: %v", err)
	}
	var n int
	if err := f.admin.QueryRow(f.ctx, `SELECT (SELECT count(*) FROM gateway_commands) + (SELECT count(*) FROM device_commands WHERE gateway_command_id IS NOT NULL)`).Scan(&n); err != nil || n != 0 {
		t.Errorf("refusals left %d rows (%v)", n, err)
	}
}

// TestRolesAndOrganisations: HR sends (device commands are theirs too); a
// department lead sees no device; B sees none of A's commands.
func TestRolesAndOrganisations(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commandqueue.Options{})
	hr := postgres.Tenant{OrganizationID: f.a.OrganizationID, Role: postgres.AppHR, Actor: "hr"}
	c, err := f.svc.Send(f.ctx, hr, devicecmd.Request{DeviceID: f.a.DeviceID, Command: protocol.DeviceGetInfo, CreatedBy: "hr"})
	if err != nil {
		t.Fatalf("HR: %v", err)
	}
	lead := postgres.Tenant{OrganizationID: f.a.OrganizationID, Role: postgres.AppDepartmentLead, Scope: "department:" + itoa(f.a.DepartmentID)}
	if _, err := f.svc.Send(f.ctx, lead, devicecmd.Request{DeviceID: f.a.DeviceID, Command: protocol.DeviceGetInfo}); !errors.Is(err, devicecmd.ErrNotFound) {
		t.Errorf("lead: %v", err)
	}
	if _, err := f.svc.Get(f.ctx, lead, c.ID); !errors.Is(err, devicecmd.ErrNotFound) {
		t.Errorf("lead reads: %v", err)
	}
	if _, err := f.svc.Get(f.ctx, f.tb, c.ID); !errors.Is(err, devicecmd.ErrNotFound) {
		t.Errorf("B reads A's: %v", err)
	}
	if l, err := f.svc.List(f.ctx, f.tb, devicecmd.Page{DeviceID: f.a.DeviceID}); err != nil || len(l) != 0 {
		t.Errorf("B lists A's device: %d, %v", len(l), err)
	}
	// HR may insert device_command gateway commands only, whatever the SQL.
	err = postgres.InTenant(f.ctx, f.dash, hr, func(tx pgx.Tx) error {
		_, err := tx.Exec(f.ctx, `INSERT INTO gateway_commands (organization_id, gateway_id, type, payload) VALUES ($1, $2, 'restart_agent', '{}')`,
			f.a.OrganizationID, f.a.GatewayID)
		return err
	})
	var pe interface{ SQLState() string }
	if !errors.As(err, &pe) || pe.SQLState() != "42501" {
		t.Errorf("HR inserting a restart_agent: %v", err)
	}
}

// TestListPagesNewestFirst: keyset pages of a device's commands.
func TestListPagesNewestFirst(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commandqueue.Options{})
	var sent []uuid.UUID
	for i := 0; i < 5; i++ {
		c, err := f.svc.Send(f.ctx, f.ta, devicecmd.Request{DeviceID: f.a.DeviceID, Command: protocol.DeviceSyncTime})
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, c.ID)
	}
	var got []uuid.UUID
	p := devicecmd.Page{DeviceID: f.a.DeviceID, Limit: 2}
	for i := 0; i < 5; i++ {
		page, err := f.svc.List(f.ctx, f.ta, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page {
			if c.CommandType == protocol.DeviceSyncTime {
				got = append(got, c.ID)
			}
		}
		if len(page) < p.Limit {
			break
		}
		p.BeforeAt, p.BeforeID = page[len(page)-1].CreatedAt, page[len(page)-1].ID
	}
	if len(got) != 5 {
		t.Fatalf("paged %d, want 5", len(got))
	}
	for i := range got {
		if got[i] != sent[len(sent)-1-i] {
			t.Fatalf("order %v, sent %v", got, sent)
		}
	}
}

// TestSyncGatewayNumbersListsAndCancelsOlderOnes: each list has a higher
// version than the last and the gateway's whole reachable list; a newer
// list cancels the pending older ones (a delivered one is left to the
// gateway, which ignores it by version); concurrent changes serialise so
// the last list has both.
func TestSyncGatewayNumbersListsAndCancelsOlderOnes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, commandqueue.Options{})
	f.exec(t, `UPDATE devices SET host = '10.0.0.5', port = 80, serial = 'DS-1', config = '{"username":"admin"}' WHERE id = $1`, f.a.DeviceID)
	f.exec(t, `INSERT INTO devices (organization_id, gateway_id, name, adapter_type, host, port) VALUES ($1, $2, 'Gate', 'zkteco', '10.0.0.6', 4370)`,
		f.a.OrganizationID, f.a.GatewayID)
	f.exec(t, `INSERT INTO devices (organization_id, gateway_id, name, adapter_type) VALUES ($1, $2, 'No address yet', 'zkteco')`,
		f.a.OrganizationID, f.a.GatewayID)
	var ids []uuid.UUID
	var last int64
	for i := 0; i < 3; i++ {
		c, err := f.svc.SyncGateway(f.ctx, f.ta, f.a.GatewayID, "test")
		if err != nil {
			t.Fatal(err)
		}
		p := payload(t, c.Payload)
		if p.Version <= last {
			t.Fatalf("version %d after %d", p.Version, last)
		}
		last = p.Version
		if len(p.Devices) != 2 || p.Devices[0].ID != f.a.DeviceID || p.Devices[0].Host != "10.0.0.5" || p.Devices[0].Serial != "DS-1" ||
			!sameJSON(p.Devices[0].Config, json.RawMessage(`{"username":"admin"}`)) || p.Devices[1].Name != "Gate" || p.Devices[1].Port != 4370 {
			t.Fatalf("list %s", c.Payload)
		}
		ids = append(ids, c.ID)
	}
	f.wantStatuses(t, ids, commandqueue.StatusCancelled, commandqueue.StatusCancelled, commandqueue.StatusPending)
	if cs := f.claim(t); len(cs) != 1 || cs[0].ID != ids[2] {
		t.Fatalf("claimed %+v", cs)
	}
	c, err := f.svc.SyncGateway(f.ctx, f.ta, f.a.GatewayID, "test")
	if err != nil {
		t.Fatal(err)
	}
	f.wantStatuses(t, append(ids, c.ID), commandqueue.StatusCancelled, commandqueue.StatusCancelled, commandqueue.StatusDelivered,
		commandqueue.StatusPending)
	if _, err := f.svc.SyncGateway(f.ctx, f.ta, f.b.GatewayID, "test"); !errors.Is(err, devicecmd.ErrNotFound) {
		t.Errorf("B's gateway from A: %v", err)
	}

	// Two transactions each add a device and send the list: the second
	// waits for the first, so its list (the last, the highest version)
	// has both devices.
	tx1, err := f.dash.Begin(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx1.Rollback(f.ctx)
	addAndSync := func(tx pgx.Tx, name string) (commandqueue.Command, error) {
		if err := postgres.SetTenant(f.ctx, tx, f.ta); err != nil {
			return commandqueue.Command{}, err
		}
		if _, err := tx.Exec(f.ctx, `INSERT INTO devices (organization_id, gateway_id, name, adapter_type, host, port) VALUES ($1, $2, $3, 'zkteco', 'h', 1)`,
			f.a.OrganizationID, f.a.GatewayID, name); err != nil {
			return commandqueue.Command{}, err
		}
		return f.svc.SyncGatewayTx(f.ctx, tx, f.a.GatewayID, "test")
	}
	first, err := addAndSync(tx1, "First")
	if err != nil {
		t.Fatal(err)
	}
	type res struct {
		c   commandqueue.Command
		err error
	}
	done := make(chan res, 1)
	go func() {
		var r res
		r.err = postgres.InTenant(f.ctx, f.dash, f.ta, func(tx pgx.Tx) error {
			var err error
			r.c, err = addAndSync(tx, "Second")
			return err
		})
		done <- r
	}()
	select {
	case r := <-done:
		t.Fatalf("the second list did not wait for the first: %+v", r)
	case <-time.After(200 * time.Millisecond): // it must wait; 200 ms is ample for it to have got this far
	}
	if err := tx1.Commit(f.ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	p1, p2 := payload(t, first.Payload), payload(t, r.c.Payload)
	if p2.Version <= p1.Version || len(p2.Devices) != len(p1.Devices)+1 || p2.Devices[len(p2.Devices)-1].Name != "Second" ||
		p2.Devices[len(p2.Devices)-2].Name != "First" {
		t.Fatalf("first %s, second %s", first.Payload, r.c.Payload)
	}
	f.wantStatuses(t, []uuid.UUID{first.ID, r.c.ID}, commandqueue.StatusCancelled, commandqueue.StatusPending)
}

func (f *fixture) wantStatuses(t *testing.T, ids []uuid.UUID, want ...string) {
	t.Helper()
	for i, id := range ids {
		var s string
		if err := f.admin.QueryRow(f.ctx, `SELECT status FROM gateway_commands WHERE id = $1`, id).Scan(&s); err != nil {
			t.Fatal(err)
		}
		if s != want[i] {
			t.Errorf("list %d: %s, want %s", i, s, want[i])
		}
	}
}

func payload(t *testing.T, raw json.RawMessage) protocol.DevicesPayload {
	t.Helper()
	var p protocol.DevicesPayload
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return p
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func sameJSON(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return string(ja) == string(jb)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
