package dashboard_test

import (
	"context"
	"net"
	"net/http"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/cloud/dashboard"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle/lifecycletest"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

// TestServerKeepsTheLifecycleContract: an assembled Dashboard API, given
// its pool or opening its own, is a lifecycle.Service.
func TestServerKeepsTheLifecycleContract(t *testing.T) {
	db := pg.NewDatabase(t)
	for _, tc := range []struct {
		name    string
		givenDB bool
	}{{"pool given", true}, {"pool opened", false}} {
		t.Run(tc.name, func(t *testing.T) {
			lifecycletest.Conformance(t, func(t *testing.T) lifecycle.Service {
				deps := dashboard.ServerDeps{Logger: logtest.New(t)}
				if tc.givenDB {
					deps.DB = pg.Pool(t, db.DashboardURL, 2)
				}
				cfg := dashboard.Config{Config: service.Config{Addr: "127.0.0.1:0", DatabaseURL: db.DashboardURL, ContextKey: pg.ContextKey()}}
				s, err := dashboard.New(context.Background(), cfg, deps)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = s.Stop(context.Background()) })
				return s
			})
		})
	}
}

// TestServerServesUntilStopped: New binds nothing; Start returns once the
// listener accepts (Listening reports its address) and the health routes
// answer; after Stop the address refuses connections.
func TestServerServesUntilStopped(t *testing.T) {
	ctx := context.Background()
	db := pg.NewDatabase(t)
	var reported net.Addr
	s, err := dashboard.New(ctx, dashboard.Config{Config: service.Config{Addr: "127.0.0.1:0"}},
		dashboard.ServerDeps{DB: pg.Pool(t, db.DashboardURL, 2), Logger: logtest.New(t), Listening: func(a net.Addr) { reported = a }})
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr() != nil || reported != nil {
		t.Fatalf("New bound %v (reported %v); it must start nothing", s.Addr(), reported)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if reported == nil || reported.String() != s.Addr().String() {
		t.Fatalf("Listening reported %v, Addr is %v", reported, s.Addr())
	}
	for _, path := range []string{"/health", "/health/ready"} {
		resp, err := http.Get("http://" + s.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", path, resp.StatusCode)
		}
		// Every answer has a request id and the API's security headers.
		if resp.Header.Get("X-Request-ID") == "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" ||
			resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: headers %v lack the request id or the security headers", path, resp.Header)
		}
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", s.Addr().String()); err == nil {
		c.Close()
		t.Fatal("the listener still accepts after Stop")
	}
}

// TestRunStopsWhenItsContextEnds: Run serves until its context ends, then
// stops and returns nil.
func TestRunStopsWhenItsContextEnds(t *testing.T) {
	db := pg.NewDatabase(t)
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- dashboard.Run(ctx, dashboard.Config{Config: service.Config{Addr: "127.0.0.1:0", DatabaseURL: db.DashboardURL, ContextKey: pg.ContextKey()}},
			logtest.New(t), func(a net.Addr) { addrs <- a })
	}()
	var addr net.Addr
	select {
	case addr = <-addrs:
	case err := <-done:
		cancel()
		t.Fatalf("Run returned before listening: %v", err)
	}
	resp, err := http.Get("http://" + addr.String() + "/health")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
