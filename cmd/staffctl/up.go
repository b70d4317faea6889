package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/dashboard"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgcluster"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
)

// demoSlug names the demo organisation `up` creates.
const demoSlug = "demo"

// runUp brings the whole system up on this machine: PostgreSQL (a
// throwaway cluster unless DATABASE_URL is set), the migrations, the Agent
// API and the Dashboard API, and a demo organisation; it prints where
// everything listens and stops cleanly when ctx ends (Ctrl-C).
func runUp(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("staffctl up", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	agentAddr := fs.String("agent-addr", ":3001", "Agent API listen address")
	dashAddr := fs.String("dashboard-addr", ":3000", "Dashboard API listen address")
	dbURL := fs.String("database-url", "", "administrator's PostgreSQL URL (default: $DATABASE_URL; empty: a throwaway cluster)")
	logLevel := fs.String("log-level", "warn", "log level of the services: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: staffctl up [flags]\n\nRuns PostgreSQL (a throwaway cluster unless --database-url/DATABASE_URL is given),\n"+
			"applies the migrations, starts the Agent API and the Dashboard API, creates a demo organisation,\n"+
			"prints where everything listens and runs until Ctrl-C.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	level, err := service.ParseLevel(*logLevel)
	if err != nil {
		return usagef("--log-level: %v", err)
	}
	logger := service.NewLogger(e.stderr, level, "staffctl-up")

	admin := *dbURL
	if admin == "" {
		admin = e.getenv("DATABASE_URL")
	}
	pgNote := ""
	if admin == "" {
		fmt.Fprintln(e.stdout, "starting a throwaway PostgreSQL cluster…")
		cluster, err := pgcluster.Start(ctx, pgcluster.Options{})
		if err != nil {
			return err
		}
		defer cluster.Close()
		if err := createDatabase(ctx, cluster.URL("postgres"), "staffcontrol"); err != nil {
			return err
		}
		admin = cluster.URL("staffcontrol")
		pgNote = " (throwaway cluster, removed on exit)"
	}
	steps, err := postgres.MigrateUp(ctx, admin, logger)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	fmt.Fprintf(e.stdout, "migrations: %d applied\n", len(steps))

	ingestURL, dashURL := e.getenv("AGENT_API_DATABASE_URL"), e.getenv("DASHBOARD_DATABASE_URL")
	if ingestURL == "" {
		if ingestURL, err = postgres.WithUser(admin, postgres.RoleIngest, ""); err != nil {
			return err
		}
	}
	if dashURL == "" {
		if dashURL, err = postgres.WithUser(admin, postgres.RoleDashboard, ""); err != nil {
			return err
		}
	}

	demo, err := ensureDemo(ctx, admin)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		ready    = make(chan string, 2)
	)
	start := func(name string, fn func(context.Context, service.Config, *slog.Logger, func(net.Addr)) error, cfg service.Config) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := fn(ctx, cfg, logger.With("service", name), func(a net.Addr) { ready <- name + " " + a.String() })
			if err != nil && ctx.Err() == nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("%s: %w", name, err)
				}
				mu.Unlock()
				cancel()
			}
		}()
	}
	files := e.getenv("STORAGE_BASE_PATH")
	if files == "" {
		dir, err := os.MkdirTemp("", "staffcontrol-files-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		files = dir
	}
	start("agent-api", func(ctx context.Context, c service.Config, l *slog.Logger, ready func(net.Addr)) error {
		return agentapi.Run(ctx, agentapi.Config{Config: c, StoragePath: files}, l, ready)
	}, service.Config{Addr: *agentAddr, DatabaseURL: ingestURL, LogLevel: level})
	start("dashboard-api", dashboard.Run, service.Config{Addr: *dashAddr, DatabaseURL: dashURL, LogLevel: level})

	addrs := map[string]string{}
	for len(addrs) < 2 {
		select {
		case r := <-ready:
			name, addr, _ := strings.Cut(r, " ")
			addrs[name] = addr
		case <-ctx.Done():
			wg.Wait()
			if firstErr != nil {
				return firstErr
			}
			return nil
		case <-time.After(60 * time.Second):
			cancel()
			wg.Wait()
			return errors.New("services did not start within 60 s")
		}
	}

	fmt.Fprintf(e.stdout, `
Staff Control is up.
  PostgreSQL      %s%s
  Agent API       http://%s   (GET /health, /health/ready, /metrics)
  Dashboard API   http://%s   (GET /health, /health/ready, /metrics)
  Demo organisation %d (slug %q)
%s
Press Ctrl-C to stop.
`, redacted(admin), pgNote, hostPort(addrs["agent-api"]), hostPort(addrs["dashboard-api"]), demo.orgID, demoSlug, demo.notes)

	<-ctx.Done()
	fmt.Fprintln(e.stdout, "stopping…")
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil {
		return firstErr
	}
	fmt.Fprintln(e.stdout, "stopped cleanly")
	return nil
}

type demoState struct {
	orgID int64
	notes string
}

// ensureDemo creates the demo organisation, its administrator and a
// registered gateway, unless they exist already.
func ensureDemo(ctx context.Context, admin string) (demoState, error) {
	var st demoState
	err := withAccounts(ctx, admin, func(svc *accounts.Service) error {
		o, err := svc.OrganizationBySlug(ctx, adminActor(), demoSlug)
		if errors.Is(err, accounts.ErrNotFound) {
			o, err = svc.CreateOrganization(ctx, adminActor(), "Demo Organisation", demoSlug)
			if err != nil {
				return err
			}
			var b strings.Builder
			pw, err := auth.NewPassword()
			if err != nil {
				return err
			}
			u, err := svc.CreateUser(ctx, adminActor(), accounts.NewUser{OrganizationID: o.ID, Email: "admin@demo.local", Role: "ORG_ADMIN", Password: pw})
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "  Demo admin        %s / %s (shown once)\n", u.Email, pw)
			r, err := svc.RegisterGateway(ctx, adminActor(), o.ID, "DEMO-GW-1", "Demo site", 24*time.Hour)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "  Demo gateway      %s, provisioning token %s (one-time, expires %s)\n", r.GatewayID, r.ProvisioningToken, r.ExpiresAt.Format(time.RFC3339))
			st.notes = b.String()
		} else if err != nil {
			return err
		} else {
			st.notes = "  (demo organisation existed already; its credentials were shown when it was created)\n"
		}
		st.orgID = o.ID
		return nil
	})
	return st, err
}

func createDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// hostPort turns a wildcard listen address into one a browser can open.
func hostPort(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// redacted hides the password of a database URL.
func redacted(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(database URL)"
	}
	return u.Redacted()
}
