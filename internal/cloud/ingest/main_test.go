package ingest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/ingest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

// env is one test's Agent API on loopback with two organisations, each with
// a provisioned gateway.
type env struct {
	t         testing.TB
	ingestURL string
	ownerURL  string // the owner role: raw COPY baselines (COPY FROM is refused under the ingest role's RLS)
	srv       *httptest.Server
	admin     *pgx.Conn
	files     string
	registry  *prometheus.Registry
	acc       *accounts.Service
	svc       *ingest.Service
	a, b      gatewayCreds
}

type gatewayCreds struct {
	org    int64
	id     string
	key    string
	serial string
}

func newEnv(t testing.TB, limits ingest.Limits) *env {
	t.Helper()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	pool, err := postgres.Connect(ctx, db.IngestURL, 8, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	files := t.TempDir()
	store, err := storage.NewLocal(files)
	if err != nil {
		t.Fatal(err)
	}
	logger := logtest.New(t)
	reg := service.NewRegistry()
	ts := timeseries.NewStore(timeseries.StoreConfig{Main: pool, Logger: logger, Registry: reg})
	svc, err := ingest.New(ingest.Deps{Store: ts, Files: store, Logger: logger, Registry: reg, Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(agentapi.NewServer(agentapi.Deps{DB: pool, Logger: logger, Registry: reg, Gateways: auth.NewGateways(pool), Ingest: svc}))
	t.Cleanup(srv.Close)
	admin, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	e := &env{t: t, ingestURL: db.IngestURL, ownerURL: db.OwnerURL, srv: srv, admin: admin, files: files, registry: reg, svc: svc}
	dash, err := postgres.Connect(ctx, db.DashboardURL, 2, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dash.Close)
	acc := accounts.New(pg.Pool(t, db.PlatformAdminURL, 2), time.Now)
	e.acc = acc
	actor := accounts.Actor{Name: "test", Tenant: postgres.Tenant{Role: postgres.AppAdmin}}
	for _, g := range []*gatewayCreds{&e.a, &e.b} {
		o, err := acc.CreateOrganization(ctx, actor, "Org "+uuid.NewString()[:8], "")
		if err != nil {
			t.Fatal(err)
		}
		g.org, g.serial = o.ID, "GW-1"
		reg, err := acc.RegisterGateway(ctx, actor, o.ID, g.serial, "", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		var resp protocol.ProvisionResponse
		code := e.postJSON(protocol.PathGatewayProvision, "", "", protocol.ProvisionRequest{OrganizationID: o.ID, ProvisioningToken: reg.ProvisioningToken, Serial: g.serial}, &resp)
		if code != http.StatusCreated {
			t.Fatalf("provision: %d", code)
		}
		g.id, g.key = resp.GatewayID, resp.APIKey
	}
	return e
}

// postJSON sends v as JSON (uncompressed) and decodes the answer into out.
func (e *env) postJSON(path, apiKey, idemKey string, v any, out any) int {
	e.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.post(path, apiKey, idemKey, "application/json", "", b, out)
}

// postGzip sends v as gzip-compressed JSON, as a gateway does.
func (e *env) postGzip(path string, g gatewayCreds, idemKey string, v any, out any) int {
	e.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.post(path, g.key, idemKey, "application/json", "gzip", gz(b), out)
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

func (e *env) post(path, apiKey, idemKey, contentType, encoding string, body []byte, out any) int {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	if apiKey != "" {
		req.Header.Set(protocol.HeaderAPIKey, apiKey)
	}
	if idemKey != "" {
		req.Header.Set(protocol.HeaderIdempotencyKey, idemKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		_ = json.Unmarshal(raw, out)
	}
	return resp.StatusCode
}

func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.admin.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return n
}
