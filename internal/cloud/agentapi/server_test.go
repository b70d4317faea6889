package agentapi_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle/lifecycletest"
)

// TestServerConformance: the assembled Agent API keeps the lifecycle
// contract (it opens its own pool here, which Stop closes).
func TestServerConformance(t *testing.T) {
	t.Parallel()
	lifecycletest.Conformance(t, func(t *testing.T) lifecycle.Service {
		db := pg.NewDatabase(t)
		s, err := agentapi.New(context.Background(), agentapi.Config{Config: service.Config{Addr: "127.0.0.1:0", DatabaseURL: db.IngestURL,
			ContextKey: pg.ContextKey()}, Storage: storage.Config{BasePath: t.TempDir()}}, agentapi.ServerDeps{Logger: discard(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Stop(context.Background()) })
		return s
	})
}

// TestServerStartServesStopCloses: after Start the listener answers at
// Addr; after Stop it no longer does.
func TestServerStartServesStopCloses(t *testing.T) {
	t.Parallel()
	db := pg.NewDatabase(t)
	ctx := context.Background()
	s, err := agentapi.New(ctx, agentapi.Config{Config: service.Config{Addr: "127.0.0.1:0", DatabaseURL: db.IngestURL,
		ContextKey: pg.ContextKey()}, Storage: storage.Config{BasePath: t.TempDir()}}, agentapi.ServerDeps{Logger: discard(t)})
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr() != nil {
		t.Errorf("Addr before Start = %v, want nil", s.Addr())
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	url := "http://" + s.Addr().String() + "/health"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /health = %d", resp.StatusCode)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.Get(url); err == nil {
		resp.Body.Close()
		t.Errorf("GET /health after Stop answered %d, want a refused connection", resp.StatusCode)
	}
}
