// Package agentapi is the Agent API (:3001): the cloud end of the
// gateways' data and control paths. It owns the HTTP routes table and the
// assembly of its parts (New, Start, Stop); the work behind each route
// lives in the packages it is given.
package agentapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/control"
	"github.com/staffcontrol/staffcontrol/internal/cloud/enrolment"
	"github.com/staffcontrol/staffcontrol/internal/cloud/ingest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/policy"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/jsondecode"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/throttle"
)

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
	// Checks are dependencies beside DB (checked as "postgres") reported
	// by dependency_up and /health/ready: the time-series store, the file
	// store.
	Checks []service.Check
}

// NewServer returns the Agent API's HTTP handler: its routes table.
func NewServer(d Deps) http.Handler {
	if d.Throttle == nil {
		d.Throttle, _ = throttle.New(throttle.Config{}, throttle.Deps{Logger: d.Logger})
	}
	mux := http.NewServeMux()
	service.HealthRoutes(mux, d.Registry, append([]service.Check{service.PingCheck("postgres", d.DB)}, d.Checks...)...)
	gw := func(h http.HandlerFunc) http.Handler {
		return auth.RequireGateway(d.Gateways, d.Throttle, d.TrustedProxies, d.Logger, h)
	}
	// Every pattern, for the RED metrics' series before the first request.
	patterns := service.HealthPatterns()
	handle := func(pattern string, h http.Handler) {
		mux.Handle(pattern, h)
		patterns = append(patterns, pattern)
	}
	handle("POST "+protocol.PathGatewayProvision, provisionHandler(d))
	handle("GET "+protocol.PathGatewayPing, gw(ping))
	handle("POST "+protocol.PathGatewayKeyRotate, gw(rotateKeyHandler(d.Gateways, d.Logger)))
	handle("POST "+protocol.PathGatewayKeyConfirm, gw(confirmKeyHandler(d.Gateways, d.Logger)))
	handle("POST "+protocol.PathIngestLogs, gw(d.Ingest.HandleLogs))
	handle("POST "+protocol.PathIngestScreenshots, gw(d.Ingest.HandleScreenshots))
	handle("POST "+protocol.PathIngestDeviceEvents, gw(d.Ingest.HandleDeviceEvents))
	// A released version never changes: one read per replica per minute
	// serves a whole fleet's fetches during a release.
	handle("GET "+protocol.PathGatewayPolicy, gw(policyHandler(policy.NewReleasedCache(d.DB, time.Minute, 1024))))
	if d.Enrolment == nil {
		d.Enrolment = enrolment.New(d.DB)
	}
	handle("GET "+protocol.PathGatewayEnrolment, gw(enrolmentHandler(d.Enrolment, d.Logger)))
	handle("POST "+protocol.PathGatewayAgents, gw(agentEnrolledHandler(d.Enrolment, d.Logger)))
	handle("GET "+protocol.PathGatewaySocket, gw(d.Control.ServeSocket))
	handle("GET "+protocol.PathGatewayCommands, gw(d.Control.ServeCommands))
	handle("POST "+protocol.PathGatewayCommandAck, gw(d.Control.ServeAck))
	h, err := service.Instrument(mux, d.Registry, patterns...)
	if err != nil {
		// A second server on one registry: its first server counts.
		if d.Logger != nil {
			d.Logger.Warn("agent api: routes served without RED metrics", "err", err)
		}
		return mux
	}
	return h
}

// provisionHandler exchanges a one-time provisioning token for an API key.
func provisionHandler(d Deps) http.HandlerFunc {
	// encoding/json decoded this body before jsondecode: Lenient keeps what
	// it accepted (duplicate names, invalid UTF-8 replaced).
	body := jsondecode.New(jsondecode.IgnoreUnknownFields(), jsondecode.CaseInsensitiveNames(), jsondecode.Lenient())
	return func(w http.ResponseWriter, r *http.Request) {
		var req protocol.ProvisionRequest
		if err := body.Decode(http.MaxBytesReader(w, r.Body, 64<<10), &req); err != nil {
			service.WriteError(w, err)
			return
		}
		if req.OrganizationID <= 0 {
			service.WriteError(w, apperr.Field("organization_id", "is required"))
			return
		}
		// The same text rules as every other field the cloud stores: a NUL
		// or invalid UTF-8 is refused here, never a database error (503).
		for _, f := range []struct{ name, v string }{{"provisioning_token", req.ProvisioningToken}, {"serial", req.Serial},
			{"hostname", req.Hostname}, {"version", req.Version}} {
			required := f.name == "provisioning_token" || f.name == "serial"
			if err := protocol.CheckText(f.name, f.v, required, protocol.MaxShortField); err != nil {
				service.WriteError(w, err)
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
			service.WriteError(w, apperr.New(apperr.Unauthenticated, "provisioning_token",
				"unknown, expired or already used provisioning token, or it does not match this organisation and serial"))
			return
		}
		// A spent token is worth nothing: the attempt ends without being
		// remembered as verified.
		d.Throttle.Done(att)
		if err != nil {
			d.Logger.ErrorContext(r.Context(), "provisioning failed", "err", err)
			service.WriteError(w, unavailable())
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

// unavailable is the answer to a failure a retry may cure (logged by the
// caller).
func unavailable() error {
	return apperr.New(apperr.Unavailable, "", "temporarily unavailable; retry")
}
