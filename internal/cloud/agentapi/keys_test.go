package agentapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi/agentapitest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

type keysAPI struct {
	url   string
	queue *commandqueue.Queue
	admin *pgx.Conn
	orgs  [2]postgres.Tenant
	gws   [2]string // gateway ids
	keys  [2]string
}

func newKeysAPI(t *testing.T) *keysAPI {
	t.Helper()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	logger := discard(t)
	ing, err := postgres.Connect(ctx, db.IngestURL, 8, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ing.Close)
	dash, err := postgres.Connect(ctx, db.DashboardURL, 4, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dash.Close)
	api := agentapitest.Start(t, ing, agentapitest.Options{Logger: logger})
	a := &keysAPI{url: api.URL}
	if a.queue, err = commandqueue.New(dash, commandqueue.Options{}, service.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	if a.admin, err = pgx.Connect(ctx, db.AdminURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.admin.Close(context.Background()) })
	acc := accounts.New(pg.Pool(t, db.PlatformAdminURL, 2), time.Now)
	actor := accounts.Actor{Name: "test", Tenant: postgres.Tenant{Role: postgres.AppAdmin}}
	for i, name := range []string{"Alpha", "Beta"} {
		o, err := acc.CreateOrganization(ctx, actor, name, "")
		if err != nil {
			t.Fatal(err)
		}
		r, err := acc.RegisterGateway(ctx, actor, o.ID, "GW", "", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		gw, key, err := api.Gateways.Provision(ctx, o.ID, "GW", r.ProvisioningToken)
		if err != nil {
			t.Fatal(err)
		}
		a.orgs[i], a.gws[i], a.keys[i] = postgres.Tenant{OrganizationID: o.ID, Role: postgres.AppOrgAdmin}, gw.ID.String(), key
	}
	return a
}

// call makes a request with key and decodes a JSON answer into out.
func (a *keysAPI) call(t *testing.T, method, path, key, body string, out any) (int, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, a.url+path, bytes.NewReader([]byte(body)))
	req.Header.Set(protocol.HeaderAPIKey, key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		_ = json.Unmarshal(b, out)
	}
	return resp.StatusCode, resp.Header
}

// TestKeyRotationEndpoints drives rotate and confirm over HTTP: validation,
// the two steps, 401 for the old key afterwards, and another
// organisation's command answering 404.
func TestKeyRotationEndpoints(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newKeysAPI(t)
	oldKey := a.keys[0]
	cmdA, err := a.queue.Enqueue(ctx, a.orgs[0], commandqueue.NewCommand{GatewayID: mustUUID(t, a.gws[0]), Type: protocol.CommandRotateAPIKey, Payload: json.RawMessage(`{"overlap_seconds":600}`)})
	if err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		key, body string
		status    int
		code      string
		field     string
	}{
		{"", `{}`, 401, protocol.ErrCodeUnauthorized, protocol.HeaderAPIKey},
		{"scgw_nope", `{}`, 401, protocol.ErrCodeUnauthorized, protocol.HeaderAPIKey},
		{oldKey, `{"overlap_seconds": 5}`, 422, protocol.ErrCodeValidation, "overlap_seconds"},
		{oldKey, `{"overlap_seconds": "1h"}`, 422, protocol.ErrCodeValidation, "overlap_seconds"},
		{oldKey, `{"command_id": "nope"}`, 422, protocol.ErrCodeValidation, "command_id"},
		{oldKey, `{"command_id": `, 400, protocol.ErrCodeMalformed, ""},
		// B's gateway executing A's command: as absent as a missing one.
		{a.keys[1], `{"command_id": "` + cmdA.ID.String() + `"}`, 404, protocol.ErrCodeNotFound, "command_id"},
	}
	for _, b := range bad {
		var e protocol.ErrorResponse
		if code, _ := a.call(t, "POST", protocol.PathGatewayKeyRotate, b.key, b.body, &e); code != b.status || e.Error != b.code || e.Field != b.field {
			t.Errorf("rotate %s: %d %+v, want %d %s field %q", b.body, code, e, b.status, b.code, b.field)
		}
	}
	// Confirming a key that was never rotated is a conflict.
	var e protocol.ErrorResponse
	if code, _ := a.call(t, "POST", protocol.PathGatewayKeyConfirm, oldKey, "", &e); code != 409 || e.Error != protocol.ErrCodeKeyConflict {
		t.Fatalf("confirm before any rotation: %d %+v, want 409 key_conflict", code, e)
	}

	var rot protocol.KeyRotateResponse
	code, h := a.call(t, "POST", protocol.PathGatewayKeyRotate, oldKey, `{"command_id": "`+cmdA.ID.String()+`", "overlap_seconds": 600}`, &rot)
	if code != 200 || rot.Status != protocol.KeyStatusPending || rot.APIKey == "" || rot.KeyPrefix != auth.KeyPrefix(rot.APIKey) || rot.ExpiresAt == nil {
		t.Fatalf("rotate: %d %+v", code, rot)
	}
	if h.Get("Cache-Control") != "no-store" {
		t.Errorf("rotate answer Cache-Control = %q, want no-store", h.Get("Cache-Control"))
	}
	if d := time.Until(*rot.ExpiresAt); d < 9*time.Minute || d > 11*time.Minute {
		t.Errorf("expires in %v, want ~10 min", d)
	}
	// The old key works during the overlap, but cannot confirm.
	if code, _ := a.call(t, "GET", protocol.PathGatewayPing, oldKey, "", nil); code != 200 {
		t.Fatalf("old key during the overlap: %d", code)
	}
	if code, _ := a.call(t, "POST", protocol.PathGatewayKeyConfirm, oldKey, "", &e); code != 409 || e.Error != protocol.ErrCodeKeyConflict {
		t.Fatalf("confirm with the old key: %d %+v, want 409", code, e)
	}
	// Confirm with the new key: promoted; the old key is refused at once.
	var conf protocol.KeyConfirmResponse
	if code, _ := a.call(t, "POST", protocol.PathGatewayKeyConfirm, rot.APIKey, "", &conf); code != 200 || conf.KeyPrefix != rot.KeyPrefix ||
		conf.CommandID != cmdA.ID.String() || conf.GatewayID != a.gws[0] || time.Since(conf.RotatedAt) > time.Minute {
		t.Fatalf("confirm: %d %+v", code, conf)
	}
	for _, p := range []struct{ method, path string }{{"GET", protocol.PathGatewayPing}, {"POST", protocol.PathGatewayKeyRotate}, {"POST", protocol.PathGatewayKeyConfirm}} {
		if code, _ := a.call(t, p.method, p.path, oldKey, "", &e); code != 401 {
			t.Errorf("old key on %s after confirm: %d, want 401", p.path, code)
		}
	}
	var ping protocol.PingResponse
	if code, _ := a.call(t, "GET", protocol.PathGatewayPing, rot.APIKey, "", &ping); code != 200 || ping.GatewayID != a.gws[0] {
		t.Fatalf("new key ping: %d %+v", code, ping)
	}
	// Confirm again (a retry after a lost answer) and re-run the command:
	// same answer, no new key.
	if code, _ := a.call(t, "POST", protocol.PathGatewayKeyConfirm, rot.APIKey, "", &conf); code != 200 || conf.KeyPrefix != rot.KeyPrefix {
		t.Fatalf("second confirm: %d %+v", code, conf)
	}
	var again protocol.KeyRotateResponse
	if code, _ := a.call(t, "POST", protocol.PathGatewayKeyRotate, rot.APIKey, `{"command_id": "`+cmdA.ID.String()+`"}`, &again); code != 200 ||
		again.Status != protocol.KeyStatusRotated || again.APIKey != "" || again.KeyPrefix != rot.KeyPrefix {
		t.Fatalf("re-run rotate: %d %+v, want status rotated without a key", code, again)
	}
	got, err := a.queue.Get(ctx, a.orgs[0], cmdA.ID)
	if err != nil || got.Status != commandqueue.StatusCompleted || !bytes.Contains(got.Result, []byte(rot.KeyPrefix)) || bytes.Contains(got.Result, []byte(rot.APIKey)) {
		t.Fatalf("command after rotation: %+v, %v", got, err)
	}
	// B was not touched.
	if code, _ := a.call(t, "GET", protocol.PathGatewayPing, a.keys[1], "", nil); code != 200 {
		t.Fatalf("B's key after A's rotation: %d", code)
	}
}

func mustUUID(t *testing.T, s string) uuid.UUID {
	t.Helper()
	id, err := uuid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
