// Package dashboard is the Dashboard API (:3000) used by HR, department
// leads and administrators. Every request that touches tenant data runs in
// one transaction with the caller's organisation, role, user and scope set
// from their verified access token (postgres.InTenant); row-level security
// does the filtering, so another organisation's row is not found (404),
// never forbidden.
//
// New assembles the API without starting anything; Start starts its parts
// as a lifecycle.Group (today the HTTP listener alone), Stop stops them in
// reverse; Run is New + Start + wait + Stop.
package dashboard

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/console"
	"github.com/staffcontrol/staffcontrol/internal/cloud/devicecmd"
	"github.com/staffcontrol/staffcontrol/internal/cloud/directory"
	"github.com/staffcontrol/staffcontrol/internal/cloud/liveevents"
	"github.com/staffcontrol/staffcontrol/internal/cloud/report"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/cloud/signin"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storagehttp"
	"github.com/staffcontrol/staffcontrol/internal/jsondecode"
)

// Deps are the dependencies of the Dashboard API's routes.
type Deps struct {
	// TracerProvider gives every request a span (service.Traced), so the
	// commands a request enqueues carry its trace (issue 19); nil: none.
	TracerProvider trace.TracerProvider
	// DB is the database as the dashboard role: every organisation user's
	// requests.
	DB *pgxpool.Pool
	// AdminDB is the database as the platform-admin role, the only login
	// under which an ADMIN context sees every organisation; nil: platform
	// administrators are refused (403) by this instance.
	AdminDB *pgxpool.Pool
	// Tokens verifies (and, at sign-in, issues) access tokens.
	Tokens *accesstoken.Issuer
	// SignIn signs users in and keeps their sessions; nil: the sign-in
	// routes answer 503 and tokens are checked by signature and expiry
	// alone (tests of other routes).
	SignIn *signin.Service
	// TrustedProxies are the peers whose X-Forwarded-For names the client
	// (TRUSTED_PROXIES), for the per-address sign-in limit.
	TrustedProxies []netip.Prefix
	// SessionRecheck is how often an open live-event stream checks its
	// session (0: DefaultSessionRecheck).
	SessionRecheck time.Duration
	Logger         *slog.Logger
	Registry       *prometheus.Registry
	// CORSOrigins are the browser origins allowed to call the API.
	CORSOrigins []string
	// Events configures the live updates (zero fields: liveevents'
	// defaults).
	Events liveevents.Config
	// Queue is the command queue policy distributions enqueue through;
	// nil: one over DB, its metrics registered in Registry.
	Queue *commandqueue.Queue
	// Reports tunes the report engines (Logger defaults to Logger; the
	// rollups are used unless DisableReportRollups).
	Reports report.Options
	// DisableReportRollups computes every report day from the raw rows.
	DisableReportRollups bool
	// TimeseriesDB is a separate time-series store as the dashboard role
	// (nil: the time series live in DB); AdminTimeseriesDB the same store
	// as the platform-admin role, required when both it and AdminDB are
	// set. Screenshots are read from both it and DB (fallback rows).
	TimeseriesDB, AdminTimeseriesDB *pgxpool.Pool
	// Files signs the screenshots' download URLs (nil: the routes that
	// hand them out answer 503); FileURLTTL is their lifetime (0:
	// storage.DefaultURLTTL).
	Files      storage.Signer
	FileURLTTL time.Duration
	// FilesMount, when set, is the path at which the API serves Files'
	// signed URLs itself (storagehttp.Handler): Files must then be a
	// *storage.Local whose BaseURL ends in this path.
	FilesMount string
}

// Route is one entry of the API's routes table.
type Route struct {
	// Method and Path are the route's pattern, as in the OpenAPI document
	// ("GET", "/api/v2/employees/{id}").
	Method, Path string
	// Public routes need no access token.
	Public bool
	// Roles may call the route; empty (and not Public): any signed-in user.
	Roles []string
}

// API is the Dashboard API's HTTP handler and its routes table.
type API struct {
	handler http.Handler
	routes  []Route
	hub     *liveevents.Hub
}

// Events is the live updates' hub: a lifecycle.Service to start after the
// listener (so that Stop ends the streams before the listener drains).
func (a *API) Events() *liveevents.Hub { return a.hub }

// NewAPI returns the Dashboard API: its routes table behind the
// request-id, security-header and CORS middleware.
func NewAPI(d Deps) (*API, error) {
	if d.Tokens == nil {
		return nil, errors.New("dashboard: no access-token issuer")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Registry == nil {
		d.Registry = service.NewRegistry()
	}
	doc, err := OpenAPI()
	if err != nil {
		return nil, err
	}
	a := &api{
		db: d.DB, adminDB: d.AdminDB, tokens: d.Tokens, signin: d.SignIn, trustedProxies: d.TrustedProxies,
		logger:  d.Logger,
		decoder: jsondecode.New(),
		mux:     http.NewServeMux(),
		violations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rls_violations_total",
			Help: "Accesses the Dashboard API refused by role or that the database refused by row-level security, by reason (role, rls).",
		}, []string{"reason"}),
	}
	if err := d.Registry.Register(a.violations); err != nil {
		return nil, err
	}
	// The command queue's statements run in the caller's transaction
	// (…Tx), so one queue serves both pools.
	if a.queue = d.Queue; a.queue == nil {
		if a.queue, err = commandqueue.New(d.DB, commandqueue.Options{Logger: d.Logger}, d.Registry); err != nil {
			return nil, fmt.Errorf("dashboard: command queue: %w", err)
		}
	}
	// Device commands and lists run in the caller's transaction too.
	a.devices = devicecmd.New(d.DB, a.queue)
	service.HealthRoutes(a.mux, d.Registry, service.PingCheck("postgres", d.DB))
	if d.SignIn != nil {
		a.sessionActive = d.SignIn.SessionActive
	}
	if a.sessionRecheck = d.SessionRecheck; a.sessionRecheck <= 0 {
		a.sessionRecheck = DefaultSessionRecheck
	}
	// Every refusal of a stream names a query parameter or header.
	writeStreamError := func(w http.ResponseWriter, r *http.Request, err error) { a.writeError(w, r, inParams(err)) }
	a.hub = liveevents.New(d.Events, liveevents.Deps{DB: d.DB, Logger: d.Logger, WriteError: writeStreamError, Registerer: d.Registry})
	if a.pol, err = newPolicyServices(d, a.queue); err != nil {
		return nil, err
	}
	if d.TimeseriesDB != nil && d.AdminDB != nil && d.AdminTimeseriesDB == nil {
		return nil, errors.New("dashboard: a separate time-series store needs its platform-admin pool too (AdminTimeseriesDB)")
	}
	a.tsDB, a.adminTSDB, a.files, a.fileURLTTL = d.TimeseriesDB, d.AdminTimeseriesDB, d.Files, d.FileURLTTL
	ropts := d.Reports
	ropts.UseRollups = !d.DisableReportRollups
	if ropts.Logger == nil {
		ropts.Logger = d.Logger
	}
	a.orgReports = report.New(cmp.Or(a.tsDB, a.db), a.db, ropts)
	if a.adminDB != nil {
		a.adminReports = report.New(cmp.Or(a.adminTSDB, a.adminDB), a.adminDB, ropts)
	}
	if a.fileURLTTL <= 0 {
		a.fileURLTTL = storage.DefaultURLTTL
	}
	if a.fileURLTTL > storage.MaxURLExpiry {
		return nil, fmt.Errorf("dashboard: FileURLTTL %v: at most %v", a.fileURLTTL, storage.MaxURLExpiry)
	}
	if d.FilesMount != "" {
		local, ok := d.Files.(*storage.Local)
		if !ok {
			return nil, errors.New("dashboard: FilesMount needs Files to be a local store (storage.Local)")
		}
		// Public: the URL's signature is the credential.
		a.mux.Handle("GET "+d.FilesMount, storagehttp.Handler(local, d.Logger))
	}
	a.handlePublic("GET", "/api/openapi.json", serveOpenAPI(doc))
	a.routesTable()
	// The web console: pages on the same sign-in and tenant context,
	// outside the API's routes table (not part of the OpenAPI document).
	con, err := console.New(console.Deps{SignIn: d.SignIn, Authenticate: a.consolePrincipal, Client: a.client, OverTLS: a.overTLS,
		Directory: directory.New(), API: a.consoleAPI, Logger: d.Logger})
	if err != nil {
		return nil, err
	}
	a.mux.Handle(console.Prefix, con)
	// Every answer carries a request id (the error shape's request_id)
	// and the API's security headers.
	// The RED metrics wrap the mux itself (the route is the pattern it
	// matched), the routes table's series created up front.
	patterns := service.HealthPatterns()
	for _, r := range a.routes {
		patterns = append(patterns, r.Method+" "+r.Path)
	}
	instrumented, err := service.Instrument(a.mux, d.Registry, patterns...)
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	h := service.Traced(d.TracerProvider, "dashboard-api")(service.RequestID(service.SecurityHeaders(service.CORS(d.CORSOrigins)(instrumented))))
	out := &API{handler: h, hub: a.hub}
	for _, r := range a.routes {
		rt := Route{Method: r.Method, Path: r.Path, Public: r.Public}
		for _, role := range r.Roles {
			rt.Roles = append(rt.Roles, string(role))
		}
		out.routes = append(out.routes, rt)
	}
	return out, nil
}

// ServeHTTP serves the API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.handler.ServeHTTP(w, r) }

// Routes is the routes table (the health and metrics routes aside).
func (a *API) Routes() []Route { return slices.Clone(a.routes) }

// routesTable is the API's one routes table.
func (a *api) routesTable() {
	a.handle("GET", "/api/v2/me", everyone, a.getMe)
	a.handle("GET", "/api/v2/organizations", everyone, a.listOrganizations)
	a.handle("POST", "/api/v2/organizations", platformOnly, a.createOrganization)
	a.handle("GET", "/api/v2/organizations/{id}", everyone, a.getOrganization)
	a.handle("PATCH", "/api/v2/organizations/{id}", orgManagers, a.renameOrganization)
	a.authRoutes()
	a.directoryRoutes()
	a.eventRoutes()
	a.v1Routes()
	a.policyRoutes()
	a.userRoutes()
	a.auditLogRoutes()
	a.reportRoutes()
	a.fleetRoutes()
	a.screenshotRoutes()
}

// consolePrincipal is the web console's check of its session cookie: the
// API's own token check and tenant mapping.
func (a *api) consolePrincipal(ctx context.Context, token string) (console.Principal, error) {
	c, err := a.authenticateToken(ctx, token)
	if err != nil {
		return console.Principal{}, err
	}
	return console.Principal{Tenant: c.tenant, DB: c.db, SessionID: c.claims.SessionID, Caller: c}, nil
}

// consoleCallerKey is the request-context key of the caller of a console
// page's in-process API call.
type consoleCallerKey struct{}

// consoleAPI serves a console page's in-process call of an API route as
// the page's signed-in caller (resolved by consolePrincipal): the route's
// own role check, validation, queries and audit.
func (a *api) consoleAPI(w http.ResponseWriter, r *http.Request, p console.Principal) {
	c, ok := p.Caller.(*caller)
	if !ok || c == nil {
		a.writeError(w, r, apperr.New(apperr.Unauthenticated, "", "sign in first"))
		return
	}
	a.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), consoleCallerKey{}, c)))
}

// overTLS reports whether the browser reached r over TLS: this listener's
// own, or a trusted proxy's (TRUSTED_PROXIES) saying so in
// X-Forwarded-Proto.
func (a *api) overTLS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if !strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		return false
	}
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	for _, p := range a.trustedProxies {
		if p.Contains(peer.Addr().Unmap()) {
			return true
		}
	}
	return false
}
