package agentapi_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

func discard(t testing.TB) *slog.Logger { return logtest.New(t) }

func TestRunRefusesARoleThatBypassesRLS(t *testing.T) {
	t.Parallel()
	db := pg.NewDatabase(t)
	err := agentapi.Run(context.Background(), agentapi.Config{Config: service.Config{Addr: "127.0.0.1:0", DatabaseURL: db.AdminURL, ContextKey: pg.ContextKey()}, Storage: storage.Config{BasePath: t.TempDir()}}, discard(t), nil)
	if err == nil || !strings.Contains(err.Error(), "DATABASE_URL") || !strings.Contains(err.Error(), "superuser or BYPASSRLS") {
		t.Fatalf("err = %v, want a refusal naming DATABASE_URL", err)
	}
}

func TestRunServesHealthAndStops(t *testing.T) {
	t.Parallel()
	db := pg.NewDatabase(t)
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- agentapi.Run(ctx, agentapi.Config{Config: service.Config{Addr: "127.0.0.1:0", DatabaseURL: db.IngestURL, ContextKey: pg.ContextKey()}, Storage: storage.Config{BasePath: t.TempDir()}}, discard(t), func(a net.Addr) { addrs <- a })
	}()
	var addr net.Addr
	select {
	case addr = <-addrs:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("not listening after 30 s")
	}
	for path, want := range map[string]string{"/health": "ok", "/health/ready": "ready", "/metrics": "timeseries_partitions_created_total"} {
		resp, err := http.Get("http://" + addr.String() + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("GET %s = %d, body lacks %q", path, resp.StatusCode, want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v after cancel", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not stop")
	}
}

// TestRunRefusesAContextKeyTheDatabaseDoesNotHold: a TENANT_CONTEXT_KEY the
// database cannot verify would make every tenant query match nothing; the
// service refuses to start, naming the key.
func TestRunRefusesAContextKeyTheDatabaseDoesNotHold(t *testing.T) {
	t.Parallel()
	db := pg.NewDatabase(t)
	other, err := postgres.GenerateContextKey(pg.ContextKey().ID())
	if err != nil {
		t.Fatal(err)
	}
	err = agentapi.Run(context.Background(), agentapi.Config{Config: service.Config{Addr: "127.0.0.1:0", DatabaseURL: db.IngestURL, ContextKey: other}, Storage: storage.Config{BasePath: t.TempDir()}}, discard(t), nil)
	if err == nil || !strings.Contains(err.Error(), "TENANT_CONTEXT_KEY") || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("err = %v, want a refusal naming TENANT_CONTEXT_KEY", err)
	}
}
