// Package agentapi is the Agent API (:3001): the cloud end of the
// gateways' data and control paths. It owns the HTTP routes table; the work
// behind each route lives in the packages it is given.
package agentapi

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/control"
	"github.com/staffcontrol/staffcontrol/internal/cloud/dispatch"
	"github.com/staffcontrol/staffcontrol/internal/cloud/enrolment"
	"github.com/staffcontrol/staffcontrol/internal/cloud/ingest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/policy"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/throttle"
)

// Config is the Agent API's configuration.
type Config struct {
	service.Config
	// StoragePath is the directory of the local file store
	// (STORAGE_BASE_PATH).
	StoragePath string
	// TimescaleURL, when set, is a separate time-series database (as the
	// ingest role) with fallback to the main database (TIMESCALE_URL).
	TimescaleURL string
	// ProbeInterval is how often a fallen-back store is probed
	// (TIMESCALE_PROBE_INTERVAL, default 60 s).
	ProbeInterval time.Duration
	// TLS is the optional (mutual) TLS of the listener.
	TLS service.TLSConfig
	// Throttle limits failed API keys and provisioning tokens
	// (THROTTLE_*, TRUSTED_PROXIES).
	Throttle service.ThrottleConfig
}

// Deps are the Agent API's dependencies.
type Deps struct {
	DB       *pgxpool.Pool // as the ingest role
	Logger   *slog.Logger
	Registry *prometheus.Registry
	Gateways *auth.Gateways
	Ingest   *ingest.Service
	Control  *control.Hub
	// Enrolment serves agent enrolment verifiers and records (nil: built
	// over DB).
	Enrolment *enrolment.Service
	// Throttle counts failed API keys and provisioning tokens and refuses
	// (429) sources and prefixes with too many; nil means a default
	// limiter without metrics.
	Throttle *throttle.Limiter
	// TrustedProxies are the peers whose X-Forwarded-For names the client.
	TrustedProxies []netip.Prefix
}

// NewServer returns the Agent API's HTTP handler: its routes table.
func NewServer(d Deps) http.Handler {
	if d.Throttle == nil {
		d.Throttle, _ = throttle.New(throttle.Config{}, throttle.Deps{Logger: d.Logger})
	}
	mux := http.NewServeMux()
	service.HealthRoutes(mux, d.Registry, service.PingCheck("postgres", d.DB))
	gw := func(h http.HandlerFunc) http.Handler {
		return auth.RequireGateway(d.Gateways, d.Throttle, d.TrustedProxies, d.Logger, h)
	}
	mux.Handle("POST "+protocol.PathGatewayProvision, provisionHandler(d))
	mux.Handle("GET "+protocol.PathGatewayPing, gw(ping))
	mux.Handle("POST "+protocol.PathGatewayKeyRotate, gw(rotateKeyHandler(d.Gateways, d.Logger)))
	mux.Handle("POST "+protocol.PathGatewayKeyConfirm, gw(confirmKeyHandler(d.Gateways, d.Logger)))
	mux.Handle("POST "+protocol.PathIngestLogs, gw(d.Ingest.HandleLogs))
	mux.Handle("POST "+protocol.PathIngestScreenshots, gw(d.Ingest.HandleScreenshots))
	mux.Handle("POST "+protocol.PathIngestDeviceEvents, gw(d.Ingest.HandleDeviceEvents))
	mux.Handle("GET "+protocol.PathGatewayPolicy, gw(policyHandler(d.DB)))
	if d.Enrolment == nil {
		d.Enrolment = enrolment.New(d.DB)
	}
	mux.Handle("GET "+protocol.PathGatewayEnrolment, gw(enrolmentHandler(d.Enrolment, d.Logger)))
	mux.Handle("POST "+protocol.PathGatewayAgents, gw(agentEnrolledHandler(d.Enrolment, d.Logger)))
	mux.Handle("GET "+protocol.PathGatewaySocket, gw(d.Control.ServeSocket))
	mux.Handle("GET "+protocol.PathGatewayCommands, gw(d.Control.ServeCommands))
	mux.Handle("POST "+protocol.PathGatewayCommandAck, gw(d.Control.ServeAck))
	return mux
}

func writeError(w http.ResponseWriter, code int, e protocol.ErrorResponse) {
	service.WriteJSON(w, code, e)
}

// provisionHandler exchanges a one-time provisioning token for an API key.
func provisionHandler(d Deps) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req protocol.ProvisionRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		if err := dec.Decode(&req); err != nil {
			var te *json.UnmarshalTypeError
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeError(w, http.StatusRequestEntityTooLarge, protocol.ErrorResponse{Error: protocol.ErrCodeTooLarge,
					Message: fmt.Sprintf("body exceeds %d bytes", mbe.Limit)})
				return
			}
			if errors.As(err, &te) {
				writeError(w, http.StatusUnprocessableEntity, protocol.ErrorResponse{Error: protocol.ErrCodeValidation, Field: te.Field, Message: "has the wrong type"})
				return
			}
			writeError(w, http.StatusBadRequest, protocol.ErrorResponse{Error: protocol.ErrCodeMalformed, Message: "body is not valid JSON"})
			return
		}
		if req.OrganizationID <= 0 {
			writeError(w, http.StatusUnprocessableEntity, protocol.ErrorResponse{Error: protocol.ErrCodeValidation, Field: "organization_id", Message: "is required"})
			return
		}
		// The same text rules as every other field the cloud stores: a NUL
		// or invalid UTF-8 is refused here, never a database error (503).
		for _, f := range []struct{ name, v string }{{"provisioning_token", req.ProvisioningToken}, {"serial", req.Serial},
			{"hostname", req.Hostname}, {"version", req.Version}} {
			required := f.name == "provisioning_token" || f.name == "serial"
			if err := protocol.CheckText(f.name, f.v, required, protocol.MaxShortField); err != nil {
				var fe *protocol.FieldError
				errors.As(err, &fe)
				writeError(w, http.StatusUnprocessableEntity, protocol.ErrorResponse{Error: protocol.ErrCodeValidation, Field: fe.Field, Message: fe.Message})
				return
			}
		}
		// Failed tokens count per source and per registration they aim at
		// (organisation and serial: the token is bound to both).
		att := throttle.Attempt{Kind: auth.KindProvisioningToken, Source: throttle.Source(r, d.TrustedProxies),
			Prefix: fmt.Sprintf("%d/%s", req.OrganizationID, req.Serial), Credential: auth.HashSecret(req.ProvisioningToken)}
		if dec := d.Throttle.Check(att); !dec.OK {
			throttle.WriteRefusal(w, dec, "provisioning_token")
			return
		}
		gw, key, err := d.Gateways.Provision(r.Context(), req.OrganizationID, req.Serial, req.ProvisioningToken)
		if errors.Is(err, auth.ErrUnauthorized) {
			reason := auth.ReasonUnknown
			if !strings.HasPrefix(req.ProvisioningToken, auth.PrefixProvisioningToken) || len(req.ProvisioningToken) > 128 {
				reason = auth.ReasonMalformed
			}
			d.Throttle.Fail(att, reason)
			writeError(w, http.StatusUnauthorized, protocol.ErrorResponse{Error: protocol.ErrCodeUnauthorized, Field: "provisioning_token",
				Message: "unknown, expired or already used provisioning token, or it does not match this organisation and serial"})
			return
		}
		// A spent token is worth nothing: the attempt ends without being
		// remembered as verified.
		d.Throttle.Done(att)
		if err != nil {
			d.Logger.ErrorContext(r.Context(), "provisioning failed", "err", err)
			writeError(w, http.StatusServiceUnavailable, protocol.ErrorResponse{Error: protocol.ErrCodeUnavailable, Message: "temporarily unavailable; retry"})
			return
		}
		d.Logger.InfoContext(r.Context(), "gateway provisioned", "gateway", gw.ID, "organization", gw.OrganizationID)
		service.WriteJSON(w, http.StatusCreated, protocol.ProvisionResponse{GatewayID: gw.ID.String(), OrganizationID: gw.OrganizationID, APIKey: key})
	}
}

func ping(w http.ResponseWriter, r *http.Request) {
	gw, _ := auth.GatewayFrom(r.Context())
	service.WriteJSON(w, http.StatusOK, protocol.PingResponse{GatewayID: gw.ID.String(), OrganizationID: gw.OrganizationID, ServerTime: time.Now().UTC()})
}

// Run starts the Agent API with cfg and serves until ctx ends: it migrates
// when configured to, connects as the ingest role (refusing a role that
// bypasses row-level security), keeps the time-series partitions ahead of
// time, and calls listening with the bound address once it accepts.
func Run(ctx context.Context, cfg Config, logger *slog.Logger, listening func(net.Addr)) error {
	if cfg.StoragePath == "" {
		return errors.New("STORAGE_BASE_PATH is required: the directory where screenshots are stored")
	}
	files, err := storage.NewLocal(cfg.StoragePath)
	if err != nil {
		return fmt.Errorf("STORAGE_BASE_PATH: %w", err)
	}
	db, err := service.OpenDatabase(ctx, cfg.Config, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	reg := service.NewRegistry()
	maint := timeseries.NewMaintainer(db, logger, reg, 8, 3)
	// The partitions before serving; the TimescaleDB policies (compression
	// can take minutes) in the background maintenance below.
	if _, err := maint.RunPartitions(ctx); err != nil {
		return err
	}
	tsPool := db
	if cfg.TimescaleURL != "" {
		// Not pinged: the Agent API starts while the store is down, and
		// writes fall back after three failures.
		if tsPool, err = postgres.ConnectLazy(ctx, cfg.TimescaleURL, 0, cfg.ContextKey); err != nil {
			return fmt.Errorf("TIMESCALE_URL: %w", err)
		}
		defer tsPool.Close()
		// The store's partitions and TimescaleDB jobs are maintained too.
		maint.UseStore(tsPool)
	}
	store := timeseries.NewStore(timeseries.StoreConfig{Main: db, TS: tsPool, ProbeInterval: cfg.ProbeInterval, Logger: logger, Registry: reg})
	ing, err := ingest.New(ingest.Deps{Store: store, Files: files, Logger: logger, Registry: reg})
	if err != nil {
		return err
	}
	queue, err := dispatch.New(db, dispatch.Options{Logger: logger}, reg)
	if err != nil {
		return err
	}
	hub := control.New(db, auth.NewGateways(db), queue, logger, reg, control.Options{})
	dist := policy.NewDistributor(db, queue)
	lim, err := throttle.New(cfg.Throttle.Limits, throttle.Deps{Logger: logger, Registerer: reg})
	if err != nil {
		return err
	}
	l, err := service.Listen(cfg.Addr, "AGENT_API_ADDR")
	if err != nil {
		return err
	}
	if cfg.TLS.Enabled() {
		tc, err := cfg.TLS.Build()
		if err != nil {
			l.Close()
			return err
		}
		l = tls.NewListener(l, tc)
	}
	var wg sync.WaitGroup
	wg.Add(5)
	// Orphan screenshot files (an upload whose outcome was unknown, rows
	// that retention deleted) are removed hourly once an hour old: far past
	// any upload in flight, which writes its files just before its rows.
	go func() { defer wg.Done(); ing.RunScreenshotSweep(ctx, time.Hour, time.Hour) }()
	go func() { defer wg.Done(); advanceDistributions(ctx, dist, logger, 2*time.Second) }()
	go func() { defer wg.Done(); maint.Run(ctx, time.Hour) }()
	go func() { defer wg.Done(); store.Run(ctx) }()
	go func() { defer wg.Done(); hub.Run(ctx) }()
	defer wg.Wait()
	if listening != nil {
		listening(l.Addr())
	}
	logger.InfoContext(ctx, "agent api listening", "addr", l.Addr().String())
	return service.Serve(ctx, l, NewServer(Deps{DB: db, Logger: logger, Registry: reg, Gateways: auth.NewGateways(db), Ingest: ing, Control: hub,
		Throttle: lim, TrustedProxies: cfg.Throttle.TrustedProxies}), logger, cfg.HTTP)
}

// advanceDistributions moves every active policy distribution on, every
// interval, until ctx ends.
func advanceDistributions(ctx context.Context, d *policy.Distributor, logger *slog.Logger, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := d.AdvanceAll(ctx); err != nil && ctx.Err() == nil {
			logger.ErrorContext(ctx, "advance policy distributions", "err", err)
		}
	}
}
