package agentapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/enrolment"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// TestEnrolmentEndpoints: a gateway gets only its own organisation's
// verifier (never a secret), and its agent reports land in its own
// organisation and gateway; bad reports are refused naming the field.
func TestEnrolmentEndpoints(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	a, err := pgtest.SeedOrganization(ctx, admin, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := pgtest.SeedOrganization(ctx, admin, "b")
	if err != nil {
		t.Fatal(err)
	}
	// Real API keys for the seeded gateways.
	keyA, keyB := auth.PrefixAPIKey+"enrolment-test-a", auth.PrefixAPIKey+"enrolment-test-b"
	for gw, key := range map[string]string{a.GatewayID.String(): keyA, b.GatewayID.String(): keyB} {
		if _, err := admin.Exec(ctx, `UPDATE gateway_instances SET api_key_hash = $2 WHERE id = $1`, gw, auth.HashSecret(key)); err != nil {
			t.Fatal(err)
		}
	}
	dash, err := postgres.Connect(ctx, db.DashboardURL, 2, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	defer dash.Close()
	secretA, _, err := enrolment.New(dash).Rotate(ctx, postgres.Tenant{OrganizationID: a.OrganizationID, Role: postgres.AppAdmin}, a.OrganizationID)
	if err != nil {
		t.Fatal(err)
	}
	ing, err := postgres.Connect(ctx, db.IngestURL, 4, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	defer ing.Close()
	srv := httptest.NewServer(agentapi.NewServer(agentapi.Deps{DB: ing, Logger: discard(t), Registry: service.NewRegistry(), Gateways: auth.NewGateways(ing)}))
	defer srv.Close()
	do := func(method, path, key, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if key != "" {
			req.Header.Set(protocol.HeaderAPIKey, key)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}

	if code, _ := do("GET", protocol.PathGatewayEnrolment, "", ""); code != 401 {
		t.Fatalf("verifier without a key: %d", code)
	}
	h := sha256.Sum256([]byte(secretA))
	for _, c := range []struct {
		key, verifier string
		org           int64
	}{{keyA, protocol.VerifierSHA256 + hex.EncodeToString(h[:]), a.OrganizationID}, {keyB, "", b.OrganizationID}} {
		code, raw := do("GET", protocol.PathGatewayEnrolment, c.key, "")
		var v protocol.EnrolmentVerifier
		if err := json.Unmarshal([]byte(raw), &v); code != 200 || err != nil || v.Verifier != c.verifier || v.OrganizationID != c.org {
			t.Fatalf("%s: %d %s, want verifier %q of organisation %d", c.key, code, raw, c.verifier, c.org)
		}
		if strings.Contains(raw, secretA) {
			t.Fatal("the secret itself was sent")
		}
	}

	report := func(uid, computer string, at time.Time) string {
		b, _ := json.Marshal(protocol.AgentEnrolled{AgentUID: uid, ComputerName: computer, EnrolledAt: at})
		return string(b)
	}
	now := time.Now().UTC()
	if code, raw := do("POST", protocol.PathGatewayAgents, keyB, report("agent-7", "PC-7", now)); code != 204 {
		t.Fatalf("report: %d %s", code, raw)
	}
	var org int64
	var gw string
	if err := admin.QueryRow(ctx, `SELECT organization_id, gateway_id::text FROM agent_instances WHERE agent_uid = 'agent-7' AND enrolled_at IS NOT NULL`).Scan(&org, &gw); err != nil ||
		org != b.OrganizationID || gw != b.GatewayID.String() {
		t.Fatalf("recorded in %d/%s (%v), want %d/%s", org, gw, err, b.OrganizationID, b.GatewayID)
	}
	for _, c := range []struct {
		key, body string
		code      int
		field     string
	}{
		{"", report("x", "PC", now), 401, "X-API-Key"},
		{keyA, report("", "PC", now), 422, "agent_uid"},
		{keyA, report("a\x00", "PC", now), 422, "agent_uid"},
		{keyA, report("x", strings.Repeat("p", 256), now), 422, "computer_name"},
		{keyA, report("x", "PC", now.Add(48*time.Hour)), 422, "enrolled_at"},
		{keyA, report("x", "PC", time.Time{}), 422, "enrolled_at"},
		{keyA, `{"agent_uid":`, 400, ""},
		{keyA, `{"agent_uid":"` + strings.Repeat("x", 20<<10) + `"}`, 413, ""},
	} {
		code, raw := do("POST", protocol.PathGatewayAgents, c.key, c.body)
		var er protocol.ErrorResponse
		_ = json.Unmarshal([]byte(raw), &er)
		if code != c.code || er.Field != c.field {
			t.Errorf("%.60s: %d %s, want %d naming %q", c.body, code, raw, c.code, c.field)
		}
	}
	var n int
	_ = admin.QueryRow(ctx, `SELECT count(*) FROM agent_instances WHERE enrolled_at IS NOT NULL`).Scan(&n)
	if n != 1 {
		t.Fatalf("%d agents recorded, want 1 (refused reports write nothing)", n)
	}
}
