// Package stack starts the cloud side of Staff Control on one machine for
// the whole-pipeline benchmarks and the demo (issue 17): PostgreSQL (a
// throwaway cluster unless an administrator's URL is given), the
// migrations, the tenant context key, N Agent API replicas in this process
// over one database — each with its own pool, as separate processes would
// have — and a round-robin balancer in front of them (WebSocket upgrades
// included), as a deployment puts a load balancer before its replicas; and
// the fixtures a run needs (an organisation with an agent enrolment secret,
// registered gateways) and in-process Agent Gateways provisioned into it.
package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi"
	"github.com/staffcontrol/staffcontrol/internal/cloud/enrolment"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgcluster"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/edge/config"
	"github.com/staffcontrol/staffcontrol/internal/edge/gateway"
)

// Options configures Start. Zero fields take the defaults.
type Options struct {
	// DatabaseURL is an administrator's URL of an existing database (it is
	// migrated); empty starts a throwaway cluster, removed by Close.
	DatabaseURL string
	// Replicas is the number of Agent API replicas (default 2).
	Replicas int
	// PoolSize is each replica's PostgreSQL pool (default 20).
	PoolSize int32
	// Agent is the replicas' configuration (Addr and Storage are set
	// here: a free loopback port each, one shared local file store).
	Agent agentapi.Config
	// Logger receives the services' logs (nil: discarded).
	Logger *slog.Logger
	// Addr is the balancer's listen address (default 127.0.0.1:0, a free
	// loopback port).
	Addr string
	// FilesDir is the replicas' local file store (default: a temporary
	// directory removed by Close).
	FilesDir string
	// ContextKey signs tenant contexts; the zero key means a fresh one.
	// Either way it is installed in the database.
	ContextKey postgres.ContextKey
	// IngestURL is the URL the replicas connect with (default: the
	// administrator's URL with the ingest role as its user).
	IngestURL string
}

// Replica is one started Agent API.
type Replica struct {
	// URL is its own base URL (bypassing the balancer).
	URL string
	// Registry holds its metrics.
	Registry *prometheus.Registry
	// Server is the started server.
	Server *agentapi.Server
	// Requests counts the requests the balancer sent it.
	Requests atomic.Int64
	pool     *pgxpool.Pool
}

// Stack is a started cloud side. Close stops it.
type Stack struct {
	// AdminURL is the administrator's URL of the database.
	AdminURL string
	// IngestURL is the ingest role's URL (what the replicas use).
	IngestURL string
	// URL is the balancer's base URL: what gateways are given.
	URL string
	// Replicas are the Agent APIs behind the balancer.
	Replicas []*Replica

	log      *slog.Logger
	cluster  *pgcluster.Cluster
	admin    *pgxpool.Pool
	balancer *http.Server
	dir      string
}

// Start brings the cloud side up; on error nothing is left running.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	if opts.Replicas <= 0 {
		opts.Replicas = 2
	}
	if opts.PoolSize <= 0 {
		opts.PoolSize = 20
	}
	s := &Stack{log: opts.Logger, AdminURL: opts.DatabaseURL}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	defer func() {
		if err != nil {
			s.Close(context.WithoutCancel(ctx))
		}
	}()
	if s.dir, err = os.MkdirTemp("", "staffcontrol-stack-"); err != nil {
		return nil, fmt.Errorf("stack: %w", err)
	}
	if s.AdminURL == "" {
		if s.cluster, err = pgcluster.Start(ctx, pgcluster.Options{}); err != nil {
			return nil, fmt.Errorf("stack: PostgreSQL: %w", err)
		}
		s.AdminURL = s.cluster.URL("postgres")
	}
	if _, err = postgres.MigrateUp(ctx, s.AdminURL, s.log); err != nil {
		return nil, fmt.Errorf("stack: migrate: %w", err)
	}
	key := opts.ContextKey
	if key == (postgres.ContextKey{}) {
		if key, err = postgres.GenerateContextKey("bench"); err != nil {
			return nil, err
		}
	}
	if err = postgres.InstallContextKey(ctx, s.AdminURL, key); err != nil {
		return nil, fmt.Errorf("stack: context key: %w", err)
	}
	adminRole, err := postgres.WithUser(s.AdminURL, postgres.RoleAdmin, "")
	if err != nil {
		return nil, err
	}
	if s.admin, err = postgres.Connect(ctx, adminRole, 4, key); err != nil {
		return nil, fmt.Errorf("stack: connect as %s: %w", postgres.RoleAdmin, err)
	}
	if s.IngestURL = opts.IngestURL; s.IngestURL == "" {
		if s.IngestURL, err = postgres.WithUser(s.AdminURL, postgres.RoleIngest, ""); err != nil {
			return nil, err
		}
	}
	files := opts.FilesDir
	if files == "" {
		files = filepath.Join(s.dir, "files")
	}
	for i := range opts.Replicas {
		pool, err := postgres.Connect(ctx, s.IngestURL, opts.PoolSize, key)
		if err != nil {
			return nil, fmt.Errorf("stack: replica %d: connect: %w", i, err)
		}
		cfg := opts.Agent
		cfg.Addr = "127.0.0.1:0"
		cfg.ContextKey = key
		cfg.Storage = storage.Config{BasePath: files}
		reg := prometheus.NewRegistry()
		srv, err := agentapi.New(ctx, cfg, agentapi.ServerDeps{Logger: s.log.With("service", "agent-api", "replica", i), DB: pool, Registry: reg})
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("stack: replica %d: %w", i, err)
		}
		if err := srv.Start(ctx); err != nil {
			pool.Close()
			return nil, fmt.Errorf("stack: replica %d: start: %w", i, err)
		}
		r := &Replica{URL: "http://" + srv.Addr().String(), Registry: reg, Server: srv, pool: pool}
		s.Replicas = append(s.Replicas, r)
	}
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("stack: balancer: %w", err)
	}
	s.URL = "http://" + loopback(ln.Addr())
	handler, err := roundRobin(s.Replicas, s.log)
	if err != nil {
		return nil, err
	}
	s.balancer = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.With("component", "balancer").Handler(), slog.LevelDebug)}
	go func() { _ = s.balancer.Serve(ln) }()
	return s, nil
}

// roundRobin is the balancer: each request (a WebSocket's upgrade too)
// goes to the next replica. Its errors (mostly clients that went away
// mid-request, at the end of every run) are logged at debug level.
func roundRobin(replicas []*Replica, log *slog.Logger) (http.Handler, error) {
	targets := make([]*url.URL, len(replicas))
	for i, r := range replicas {
		u, err := url.Parse(r.URL)
		if err != nil {
			return nil, fmt.Errorf("stack: replica URL: %w", err)
		}
		targets[i] = u
	}
	var next atomic.Uint64
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	return &httputil.ReverseProxy{
		Transport: tr,
		ErrorLog:  slog.NewLogLogger(log.With("component", "balancer").Handler(), slog.LevelDebug),
		Rewrite: func(r *httputil.ProxyRequest) {
			i := (next.Add(1) - 1) % uint64(len(targets))
			replicas[i].Requests.Add(1)
			r.SetURL(targets[i])
			r.Out.Host = r.In.Host
		},
	}, nil
}

// Close stops everything Start started, the balancer first, and removes
// the throwaway cluster and the files.
func (s *Stack) Close(ctx context.Context) {
	if s.balancer != nil {
		_ = s.balancer.Close()
	}
	for _, r := range s.Replicas {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := r.Server.Stop(sctx); err != nil {
			s.log.WarnContext(ctx, "stack: stopping a replica", "err", err)
		}
		cancel()
		r.pool.Close()
	}
	if s.admin != nil {
		s.admin.Close()
	}
	if s.cluster != nil {
		s.cluster.Close()
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// Admin is a pool as the platform administrator role (staff_admin), for
// fixtures and checks; it is Stack's and closed by Close.
func (s *Stack) Admin() *pgxpool.Pool { return s.admin }

// Actor is who the stack acts as: the platform administrator.
func Actor() accounts.Actor {
	return accounts.Actor{Name: "bench", Tenant: postgres.Tenant{Role: postgres.AppAdmin, Actor: "bench"}}
}

// Organization is a created organisation.
type Organization struct {
	// ID is its id.
	ID int64
	// EnrolmentSecret is its agent enrolment secret (new).
	EnrolmentSecret string
}

// NewOrganization creates an organisation and gives it an agent enrolment
// secret.
func (s *Stack) NewOrganization(ctx context.Context, name, slug string) (Organization, error) {
	svc := accounts.New(s.admin, time.Now)
	o, err := svc.CreateOrganization(ctx, Actor(), name, slug)
	if err != nil {
		return Organization{}, fmt.Errorf("stack: organisation %s: %w", slug, err)
	}
	secret, _, err := enrolment.New(s.admin).Rotate(ctx, postgres.Tenant{OrganizationID: o.ID, Role: postgres.AppAdmin}, o.ID)
	if err != nil {
		return Organization{}, fmt.Errorf("stack: enrolment secret of %s: %w", slug, err)
	}
	return Organization{ID: o.ID, EnrolmentSecret: secret}, nil
}

// Registration is a registered gateway, not yet provisioned.
type Registration struct {
	// OrganizationID is its organisation.
	OrganizationID int64
	// Serial is its serial number.
	Serial string
	// ID is its gateway id.
	ID string
	// Token is its one-time provisioning token.
	Token string
}

// RegisterGateway registers a gateway of org with a provisioning token
// valid for an hour.
func (s *Stack) RegisterGateway(ctx context.Context, org int64, serial string) (Registration, error) {
	r, err := accounts.New(s.admin, time.Now).RegisterGateway(ctx, Actor(), org, serial, "bench", time.Hour)
	if err != nil {
		return Registration{}, fmt.Errorf("stack: register gateway %s: %w", serial, err)
	}
	return Registration{OrganizationID: org, Serial: serial, ID: r.GatewayID.String(), Token: r.ProvisioningToken}, nil
}

// GatewayEnv is the environment (STAFF_GATEWAY_*) of a gateway provisioned
// with reg against the stack, its buffer in dir, listening for agents on
// listen (HTTP; gRPC off). Callers add or override keys (e.g. the uplink's
// flush interval) and load it with config.Load, in this process or in a
// gateway process of their own.
func (s *Stack) GatewayEnv(reg Registration, dir, listen string) map[string]string {
	return map[string]string{
		"STAFF_GATEWAY_SERVER_URL":                      s.URL,
		"STAFF_GATEWAY_ORGANIZATION_ID":                 fmt.Sprint(reg.OrganizationID),
		"STAFF_GATEWAY_ORGANIZATION_PROVISIONING_TOKEN": reg.Token,
		"STAFF_GATEWAY_GATEWAY_SERIAL":                  reg.Serial,
		"STAFF_GATEWAY_GATEWAY_LISTEN":                  listen,
		"STAFF_GATEWAY_GATEWAY_GRPC_LISTEN":             "off",
		"STAFF_GATEWAY_BUFFER_PATH":                     filepath.Join(dir, "buffer.sqlite"),
	}
}

// StartGateway runs an Agent Gateway in this process with env (see
// GatewayEnv) and deps; Stop it with its Stop.
func StartGateway(ctx context.Context, env map[string]string, deps gateway.Deps) (*gateway.Gateway, error) {
	cfg, err := config.Load("", func(k string) string { return env[k] })
	if err != nil {
		return nil, fmt.Errorf("stack: gateway config: %w", err)
	}
	g, err := gateway.New(ctx, cfg, deps)
	if err != nil {
		return nil, fmt.Errorf("stack: gateway: %w", err)
	}
	if err := g.Start(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("stack: gateway start: %w", err), g.Stop(context.WithoutCancel(ctx)))
	}
	return g, nil
}

// loopback turns a wildcard listen address into one a client can dial.
func loopback(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
