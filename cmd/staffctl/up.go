package main

import (
	"context"
	"crypto/rand"
	"embed"
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

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/bench/stack"
	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/dashboard"
	"github.com/staffcontrol/staffcontrol/internal/cloud/enrolment"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgcluster"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/edge/devices/vendors"
	"github.com/staffcontrol/staffcontrol/internal/edge/gateway"
	"github.com/staffcontrol/staffcontrol/internal/sim/agentsim"

	"github.com/staffcontrol/staffcontrol/internal/cloud/sqlfile"
)

// demoSlug names the demo organisation `up` creates.
const demoSlug = "demo"

// runUp brings the whole system up on this machine: PostgreSQL (a
// throwaway cluster unless DATABASE_URL is set), the migrations, the Agent
// API and the Dashboard API, a demo organisation, an Agent Gateway
// provisioned into it, simulated agents feeding the gateway and a simulated
// door terminal of each vendor as its devices (--devices); it prints
// where everything listens and stops cleanly when ctx ends (Ctrl-C). With
// --timescale-url the time series go to that separate database (migrated
// here, checked and said to be TimescaleDB or native partitions), and the
// main database keeps the fallback.
func runUp(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("staffctl up", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	agentAddr := fs.String("agent-addr", ":3001", "Agent API listen address (the balancer in front of the replicas)")
	replicas := fs.Int("replicas", 2, "Agent API replicas behind the balancer (1 to 16)")
	dashAddr := fs.String("dashboard-addr", ":3000", "Dashboard API listen address")
	dbURL := fs.String("database-url", "", "administrator's PostgreSQL URL (default: $DATABASE_URL; empty: a throwaway cluster)")
	tsURL := fs.String("timescale-url", "", "administrator's URL of a separate time-series database (TimescaleDB): migrated, given the tenant\n"+
		"context key and used by the Agent API as its TIMESCALE_URL (as staff_ingest, or $TIMESCALE_URL when set);\n"+
		"the main database keeps the fallback. Empty: the time series live in the main database")
	logLevel := fs.String("log-level", "warn", "log level of the services: debug, info, warn or error")
	gwAddr := fs.String("gateway-addr", ":3003", "Agent Gateway listen address for agents (empty: no gateway)")
	agents := fs.Int("agents", 20, "simulated desktop agents sending to the gateway, each with an employee (0: none; at most 1000)")
	agentRate := fs.Float64("agent-rate", 2, "events per second per simulated agent")
	withDevices := fs.Bool("devices", true, "run a simulated door terminal of each vendor (Hikvision, ZKTeco) as devices of the gateway")
	badgeRate := fs.Float64("badge-rate", 0.2, "badges per second on each simulated door terminal")
	quiet := fs.Bool("quiet", false, "print the endpoints and wait, without the live summary")
	statusEvery := fs.Duration("status-every", 5*time.Second, "when stdout is not a terminal: how often the status line is printed (at least 1s)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: staffctl up [flags]\n\nRuns PostgreSQL (a throwaway cluster unless --database-url/DATABASE_URL is given),\n"+
			"applies the migrations (to the separate time-series database too, with --timescale-url),\n"+
			"starts the Agent API (--replicas replicas behind a round-robin balancer on --agent-addr)\n"+
			"and the Dashboard API, creates a demo organisation with departments, one employee per\n"+
			"simulated agent (identified by the agent's Windows SID) and a policy released and\n"+
			"distributed to the gateway, runs an Agent Gateway provisioned into it with simulated\n"+
			"agents feeding it and a simulated door terminal of each vendor (Hikvision, ZKTeco) as\n"+
			"its devices, prints where everything listens and then a live summary (events/s in,\n"+
			"buffer depth, gateways online, policy applied, last command, last door event: redrawn\n"+
			"every second on a terminal, a status line every --status-every otherwise; none with\n"+
			"--quiet) until Ctrl-C.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *badgeRate < 0 || *badgeRate > 1000 {
		return usagef("--badge-rate must be from 0 to 1000")
	}
	if *replicas < 1 || *replicas > 16 {
		return usagef("--replicas must be from 1 to 16")
	}
	if *agents < 0 || *agents > 1000 {
		return usagef("--agents must be from 0 to 1000")
	}
	if *statusEvery < time.Second {
		return usagef("--status-every must be at least 1s")
	}
	level, err := service.ParseLevel(*logLevel)
	if err != nil {
		return usagef("--log-level: %v", err)
	}
	logger := service.NewLogger(e.stderr, level, "staffctl-up")
	if *tsURL == "" && e.getenv("TIMESCALE_URL") != "" {
		return usagef("TIMESCALE_URL is set but --timescale-url is not: up migrates the separate time-series database and needs its administrator's URL (--timescale-url); TIMESCALE_URL then names the ingest role's URL on it")
	}

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
	if *tsURL != "" {
		if same, err := sameDatabase(admin, *tsURL); err != nil {
			return err
		} else if same {
			return usagef("--timescale-url names the main database: the separate time-series store must be another database (leave --timescale-url empty to keep the time series in the main one)")
		}
	}
	steps, err := postgres.MigrateUp(ctx, admin, logger)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	fmt.Fprintf(e.stdout, "migrations: %d applied\n", len(steps))
	// The key that signs tenant contexts: TENANT_CONTEXT_KEY, or a fresh
	// one for this run; installed in the database and given to both
	// services.
	contextKey, err := upContextKey(e)
	if err != nil {
		return err
	}
	if err := postgres.InstallContextKey(ctx, admin, contextKey); err != nil {
		return err
	}
	// Where the time series live, and whether they are TimescaleDB: said
	// at start, so that nobody mistakes native partitions for hypertables.
	tsLine := ""
	var store timescaleStore
	if *tsURL != "" {
		if store, err = prepareTimescaleStore(ctx, *tsURL, e.getenv("TIMESCALE_URL"), contextKey); err != nil {
			return err
		}
		tsLine = fmt.Sprintf("%s (separate store; the fallback in the main database): %s", redacted(store.adminURL), store.info)
	} else {
		info, err := describeStore(ctx, admin)
		if err != nil {
			return err
		}
		tsLine = fmt.Sprintf("in the main database: %s", info)
	}
	fmt.Fprintf(e.stdout, "time series: %s\n", tsLine)
	if store.adminURL != "" && store.info.Kind != kindTimescale {
		logger.WarnContext(ctx, "the separate time-series database is not TimescaleDB", "why", store.info.Why)
	}

	ingestURL, dashURL := e.getenv("AGENT_API_DATABASE_URL"), e.getenv("DASHBOARD_DATABASE_URL")
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
	// The Agent API: --replicas replicas in this process, each with its
	// own pool, behind a round-robin balancer on --agent-addr.
	cloud, err := stack.Start(ctx, stack.Options{DatabaseURL: admin, IngestURL: ingestURL, Replicas: *replicas, Logger: logger,
		Addr: *agentAddr, FilesDir: files, ContextKey: contextKey,
		Agent: agentapi.Config{Config: service.Config{LogLevel: level}, TimescaleURL: store.ingestURL}})
	if err != nil {
		return fmt.Errorf("agent-api: %w", err)
	}
	defer cloud.Close(context.WithoutCancel(ctx))
	for i, r := range cloud.Replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-ctx.Done():
			case <-r.Server.Failed():
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("agent-api replica %d stopped serving", i)
				}
				mu.Unlock()
				cancel()
			}
		}()
	}
	// The Dashboard API signs access tokens with a key made for this run
	// and serves platform administrators through the admin role.
	tokenKey, err := accesstoken.GenerateKey("up")
	if err != nil {
		return err
	}
	platformURL, err := postgres.WithUser(admin, postgres.RoleAdmin, "")
	if err != nil {
		return err
	}
	// It hands out download URLs of the Agent API's files, signed with a
	// key made for this run and served by itself at /files.
	urlKey := make([]byte, storage.MinURLSecret)
	if _, err := rand.Read(urlKey); err != nil {
		return err
	}
	dashFiles := storage.Config{BasePath: files, URLKey: urlKey, PublicURL: "http://" + hostPort(*dashAddr) + "/files", URLTTL: storage.DefaultURLTTL}
	start("dashboard-api", func(ctx context.Context, c service.Config, l *slog.Logger, ready func(net.Addr)) error {
		return dashboard.Run(ctx, dashboard.Config{Config: c, TokenKeys: []accesstoken.Key{tokenKey}, AdminDatabaseURL: platformURL, Storage: dashFiles}, l, ready)
	}, service.Config{Addr: *dashAddr, DatabaseURL: dashURL, ContextKey: contextKey, LogLevel: level})

	addrs := map[string]string{"agent-api": strings.TrimPrefix(cloud.URL, "http://")}
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

	// The demo's people and policy: departments, an employee per
	// simulated agent, the demo policy released and distributed to this
	// run's gateway. The pool stays open for the live summary's reads.
	pool, err := connectAdmin(ctx, admin, 4)
	if err != nil {
		cancel()
		wg.Wait()
		return err
	}
	defer pool.Close()
	tenant := postgres.Tenant{OrganizationID: demo.orgID, Role: postgres.AppAdmin, Actor: "staffctl up"}
	simAgents := *agents
	if *gwAddr == "" {
		simAgents = 0 // no gateway, no agents
	}
	people, err := ensureDemoDirectory(ctx, pool, tenant, simAgents)
	if err != nil {
		cancel()
		wg.Wait()
		return err
	}
	var release demoRelease
	if *gwAddr != "" {
		if release, err = releaseDemoPolicy(ctx, pool, tenant, demo.gatewayID); err != nil {
			cancel()
			wg.Wait()
			return err
		}
	}

	gwLine := ""
	var gw *runningGateway
	if *gwAddr != "" {
		// The simulated door terminals first: the gateway finds its
		// device list waiting in its command queue once provisioned.
		var devs demoDevices
		if *withDevices {
			if devs, err = startDemoDevices(ctx, logger, admin, demo, *badgeRate); err != nil {
				cancel()
				wg.Wait()
				return fmt.Errorf("door terminals: %w", err)
			}
			defer devs.stop()
		}
		g, stopGateway, err := startDemoGateway(ctx, logger, cloud, demo, *gwAddr, *agents, *agentRate)
		if err != nil {
			cancel()
			wg.Wait()
			return fmt.Errorf("gateway: %w", err)
		}
		defer stopGateway()
		gw = g
		gwURL := g.url
		gwLine = fmt.Sprintf("  Agent Gateway   %s   (agents: POST /v1/events; GET /health/details, /metrics; operator token %s)\n", gwURL, g.token)
		if *agents > 0 {
			gwLine += fmt.Sprintf("  Agents          %d simulated agents sending %.1f events/s each, as employees %s to %s\n",
				*agents, *agentRate, demoAgentNumber(0), demoAgentNumber(*agents-1))
		}
		gwLine += fmt.Sprintf("  Policy          %q (policy %d) version %s distributed to the gateway (distribution %s)\n",
			demoPolicyName, release.policyID, release.version, release.distribution)
		gwLine += devs.notes(admin, *badgeRate)
	}

	replicaURLs := make([]string, len(cloud.Replicas))
	for i, r := range cloud.Replicas {
		replicaURLs[i] = r.URL
	}
	banner := fmt.Sprintf(`
Staff Control is up.
  PostgreSQL      %s%s
  Time series     %s
  Agent API       http://%s   (GET /health, /health/ready, /metrics)
  Replicas        %d behind that round-robin balancer: %s
  Dashboard API   http://%s   (POST /api/auth/login, /api/v2/…, GET /api/openapi.json, /health, /metrics)
  Web console     http://%s/console/
%s  Demo organisation %d (slug %q)
  Demo directory    %d departments; %d employees created for the agents, %d reused
%s`, redacted(admin), pgNote, tsLine, hostPort(addrs["agent-api"]), len(cloud.Replicas), strings.Join(replicaURLs, ", "),
		hostPort(addrs["dashboard-api"]), hostPort(addrs["dashboard-api"]), gwLine, demo.orgID, demoSlug, people.departments, people.created, people.reused, demo.notes)
	fmt.Fprint(e.stdout, banner+"\nPress Ctrl-C to stop.\n")

	if !*quiet {
		var tsPool *pgxpool.Pool
		if store.adminURL != "" {
			if tsPool, err = connectAdmin(ctx, store.adminURL, 2); err != nil {
				cancel()
				wg.Wait()
				return fmt.Errorf("the separate time-series store: %w", err)
			}
			defer tsPool.Close()
		}
		src, err := newUpSources(pool, tsPool, tenant, demo.gatewayID, release.distribution, cloud, gw)
		if err != nil {
			cancel()
			wg.Wait()
			return err
		}
		// The admin login is shown once, in the banner above: the screen
		// redrawn on a terminal keeps it, the status lines do not repeat it.
		showSummary(ctx, e.stdout, isTerminal(e.stdout), &upReader{src: src}, banner, *statusEvery)
	}
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
	orgID     int64
	notes     string
	serial    string    // a gateway registered for this run
	gatewayID uuid.UUID // its id
	token     string    // its one-time provisioning token
	secret    string    // the organisation's agent enrolment secret, new for this run
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
			// The demo existed: its administrator gets a new password, so
			// that every run prints a login that works.
			pw, err := auth.NewPassword()
			if err != nil {
				return err
			}
			u, err := svc.ResetPassword(ctx, adminActor(), "admin@demo.local", pw)
			if err != nil {
				return fmt.Errorf("reset the demo admin's password: %w", err)
			}
			st.notes = fmt.Sprintf("  Demo admin        %s / %s (new for this run; the demo organisation existed already)\n", u.Email, pw)
		}
		st.orgID = o.ID
		// A fresh gateway for this run's in-process gateway.
		st.serial = fmt.Sprintf("DEMO-RUN-%d", time.Now().UnixNano())
		r, err := svc.RegisterGateway(ctx, adminActor(), o.ID, st.serial, "Demo run", time.Hour)
		if err != nil {
			return err
		}
		st.token = r.ProvisioningToken
		st.gatewayID = r.GatewayID
		return nil
	})
	if err != nil {
		return st, err
	}
	// A fresh agent enrolment secret for this run's simulated agents (the
	// gateway fetches its verifier from the Agent API).
	pool, err := connectAdmin(ctx, admin, 2)
	if err != nil {
		return st, err
	}
	defer pool.Close()
	svc := enrolment.New(pool)
	if st.secret, _, err = svc.Rotate(ctx, postgres.Tenant{OrganizationID: st.orgID, Role: postgres.AppAdmin}, st.orgID); err != nil {
		return st, err
	}
	st.notes += fmt.Sprintf("  Agent enrolment   %s (this run's; staffctl org enrolment-secret %s rotates it)\n", st.secret, demoSlug)
	return st, nil
}

// runningGateway is the in-process gateway of a run, as the live summary
// reads it.
type runningGateway struct {
	url      string               // base URL (agents, health)
	token    string               // its health.operator_token, new for the run
	registry *prometheus.Registry // its metrics
}

// startDemoGateway runs an Agent Gateway in this process, provisioned
// through the stack's balancer with the demo token, its buffer in a
// temporary directory, and simulated agents sending to it (fetching the
// policy every 10 s). The returned function stops them.
func startDemoGateway(ctx context.Context, logger *slog.Logger, cloud *stack.Stack, demo demoState, addr string, agents int, rate float64) (*runningGateway, func(), error) {
	token, err := randomHex(16)
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "staffcontrol-gateway-")
	if err != nil {
		return nil, nil, err
	}
	env := cloud.GatewayEnv(stack.Registration{OrganizationID: demo.orgID, Serial: demo.serial, ID: demo.gatewayID.String(), Token: demo.token}, dir, addr)
	env["STAFF_GATEWAY_UPLINK_FLUSH_INTERVAL"] = "2s"
	env["STAFF_GATEWAY_HEALTH_OPERATOR_TOKEN"] = token
	g, err := stack.StartGateway(ctx, env, gateway.Deps{Logger: logger.With("service", "gateway"), Version: "dev",
		DeviceFactories: vendors.Factories(logger.With("service", "gateway", "component", "devices"))})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	url := "http://" + hostPort(g.Addr())
	simCtx, stopSim := context.WithCancel(ctx)
	simDone := make(chan struct{})
	go func() {
		defer close(simDone)
		if agents <= 0 {
			return
		}
		_, _ = agentsim.Run(simCtx, agentsim.Options{GatewayURL: url, EnrolmentSecret: demo.secret, Agents: agents, Rate: rate, BatchSize: 10,
			ScreenshotEvery: 30, ScreenshotBytes: 32 << 10, Control: true, PolicyInterval: 10 * time.Second, Logger: logger.With("service", "agents")})
	}()
	return &runningGateway{url: url, token: token, registry: g.Registry()}, func() {
		stopSim()
		<-simDone
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = g.Stop(sctx)
		os.RemoveAll(dir)
	}, nil
}

// CREATE DATABASE, hand-written (sql/raw/create_database.sql says why).
//
//go:embed sql/raw/*.sql
var rawSQL embed.FS

func createDatabase(ctx context.Context, adminURL, name string) error {
	var create string
	if err := sqlfile.Load(rawSQL, "sql/raw/create_database.sql", map[string]*string{"CreateDatabase": &create}); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, fmt.Sprintf(create, pgx.Identifier{name}.Sanitize())); err != nil {
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

// upContextKey is TENANT_CONTEXT_KEY when set, else a new random key.
func upContextKey(e env) (postgres.ContextKey, error) {
	if v := e.getenv(service.KeyContextKey); v != "" {
		k, err := postgres.ParseContextKey(v)
		if err != nil {
			return k, fmt.Errorf("%s: %w", service.KeyContextKey, err)
		}
		return k, nil
	}
	return postgres.GenerateContextKey("up")
}
