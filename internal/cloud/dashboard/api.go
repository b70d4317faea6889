package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/dashboard/dashboarddb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/devicecmd"
	"github.com/staffcontrol/staffcontrol/internal/cloud/liveevents"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/report"
	"github.com/staffcontrol/staffcontrol/internal/cloud/signin"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/jsondecode"
)

// maxBody bounds every request body the API reads (a sign-in, an employee
// with its identities, a policy): larger is refused with 413 before it is
// decoded.
const maxBody = 1 << 20

// api is what every route needs: the two pools (the dashboard role for
// organisation users, the platform-admin role for ADMIN), the token
// issuer, the session check, the routes table and the metrics.
type api struct {
	db      *pgxpool.Pool
	adminDB *pgxpool.Pool
	tokens  *accesstoken.Issuer
	// sessionActive reports whether a token's refresh family is still
	// live (a logout, "log out everywhere" or a password change ends it
	// before the token expires). Nil: tokens live until they expire.
	sessionActive  func(ctx context.Context, sessionID string) (bool, error)
	signin         *signin.Service
	sessionRecheck time.Duration
	hub            *liveevents.Hub
	trustedProxies []netip.Prefix
	logger         *slog.Logger
	decoder        *jsondecode.Decoder
	mux            *http.ServeMux
	routes         []route
	violations     *prometheus.CounterVec
	// pol are the policy services over each pool (policies.go).
	pol *policyServices
	// queue is the gateway command queue (commands.go).
	queue *commandqueue.Queue
	// devices sends device commands and device lists through the queue
	// (devicecommands.go).
	devices *devicecmd.Service
	// orgReports and adminReports compute the reports over the dashboard
	// role's pools and the platform administrator's (nil without
	// AdminDB); reports.go.
	orgReports, adminReports *report.Engine
	// tsDB and adminTSDB are the separate time-series store as the
	// dashboard and platform-admin roles (nil: the time series live in
	// the main database); screenshots.go.
	tsDB, adminTSDB *pgxpool.Pool
	// files signs download URLs valid for fileURLTTL (nil: not
	// configured, the download routes answer 503).
	files      storage.Signer
	fileURLTTL time.Duration
}

// route is one entry of the routes table: what the OpenAPI conformance
// test compares with the document.
type route struct {
	Method, Path string
	// Public routes need no access token.
	Public bool
	// Roles may call the route (empty and not Public: every role).
	Roles []postgres.AppRole
}

// caller is an authenticated request's principal: the verified token,
// the tenant context it maps to and the pool that context is served by.
type caller struct {
	claims accesstoken.Claims
	tenant postgres.Tenant
	db     *pgxpool.Pool
}

// handlerFunc is a route's handler: it answers or returns an error the
// route writes in the one error shape.
type handlerFunc func(w http.ResponseWriter, r *http.Request, c *caller) error

// Role sets for the routes table.
var (
	everyone     = []postgres.AppRole(nil)
	orgManagers  = []postgres.AppRole{postgres.AppAdmin, postgres.AppOrgAdmin}
	peopleAdmins = []postgres.AppRole{postgres.AppAdmin, postgres.AppOrgAdmin, postgres.AppHR}
	platformOnly = []postgres.AppRole{postgres.AppAdmin}
)

// handle adds an authenticated route that roles may call (nil: any
// signed-in user; what they then see is row-level security's business).
func (a *api) handle(method, path string, roles []postgres.AppRole, h handlerFunc) {
	a.routes = append(a.routes, route{Method: method, Path: path, Roles: roles})
	a.mux.HandleFunc(method+" "+path, func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		// The web console's in-process calls (consoleAPI) come with the
		// caller its session check resolved; any other request authenticates.
		c, ok := r.Context().Value(consoleCallerKey{}).(*caller)
		if !ok {
			var err error
			if c, err = a.authenticate(r); err != nil {
				a.writeError(w, r, err)
				return
			}
		}
		if roles != nil && !slices.Contains(roles, c.tenant.Role) {
			a.deny(r, c, "role", fmt.Sprintf("role %s may not %s %s", c.tenant.Role, method, path))
			a.writeError(w, r, apperr.New(apperr.Forbidden, "", "your role (%s) may not do this", c.tenant.Role))
			return
		}
		if err := h(w, r, c); err != nil {
			if isRLSRefusal(err) {
				a.deny(r, c, "rls", err.Error())
				err = apperr.Wrap(apperr.Forbidden, err, "your role may not make this change")
			}
			a.writeError(w, r, err)
		}
	})
}

// handlePublic adds a route that needs no access token (sign-in, the
// OpenAPI document).
func (a *api) handlePublic(method, path string, h func(w http.ResponseWriter, r *http.Request) error) {
	a.routes = append(a.routes, route{Method: method, Path: path, Public: true})
	a.mux.HandleFunc(method+" "+path, func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		if err := h(w, r); err != nil {
			a.writeError(w, r, err)
		}
	})
}

// authenticate verifies the bearer token and maps its claims to a tenant
// context. Role, organisation, user and scope come from the verified
// token only, never from the request.
func (a *api) authenticate(r *http.Request) (*caller, error) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if h == "" {
		return nil, apperr.New(apperr.Unauthenticated, "", "sign in first: send Authorization: Bearer <access token>")
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, apperr.New(apperr.Unauthenticated, "", "the Authorization header must be Bearer <access token>")
	}
	return a.authenticateToken(r.Context(), token)
}

// authenticateToken verifies an access token, checks its session is
// live and maps its claims to the caller: the API's bearer tokens and the
// web console's session cookie alike.
func (a *api) authenticateToken(ctx context.Context, token string) (*caller, error) {
	claims, err := a.tokens.Verify(token)
	if err != nil {
		return nil, err
	}
	if a.sessionActive != nil {
		live, err := a.sessionActive(ctx, claims.SessionID)
		if err != nil {
			return nil, fmt.Errorf("check session: %w", err)
		}
		if !live {
			return nil, apperr.New(apperr.Unauthenticated, "", "this session has ended (signed out, or the password changed): sign in again")
		}
	}
	t, err := tenantOf(claims)
	if err != nil {
		return nil, err
	}
	c := &caller{claims: claims, tenant: t, db: a.db}
	if t.Role == postgres.AppAdmin {
		if a.adminDB == nil {
			return nil, apperr.New(apperr.Forbidden, "", "this API instance does not serve platform administrators (DASHBOARD_ADMIN_DATABASE_URL is not set)")
		}
		c.db = a.adminDB
	}
	return c, nil
}

// tenantOf maps verified claims to the tenant context the database
// enforces: a department lead is scoped to their department's subtree, an
// employee to their own record. A lead or employee token without the id
// its scope needs gets an empty scope, which the database treats as
// seeing nothing.
func tenantOf(c accesstoken.Claims) (postgres.Tenant, error) {
	role, err := postgres.ParseAppRole(c.Role)
	if err != nil {
		return postgres.Tenant{}, apperr.New(apperr.Unauthenticated, "", "the access token names an unknown role")
	}
	if (role == postgres.AppAdmin) != (c.OrganizationID == 0) {
		return postgres.Tenant{}, apperr.New(apperr.Unauthenticated, "", "the access token's organisation does not fit its role")
	}
	t := postgres.Tenant{OrganizationID: c.OrganizationID, Role: role, UserID: c.UserID, Actor: "user:" + strconv.FormatInt(c.UserID, 10)}
	switch role {
	case postgres.AppDepartmentLead:
		if c.DepartmentID > 0 {
			t.Scope = "department:" + strconv.FormatInt(c.DepartmentID, 10)
		}
	case postgres.AppEmployee:
		if c.EmployeeID > 0 {
			t.Scope = "employee:" + strconv.FormatInt(c.EmployeeID, 10)
		}
	}
	return t, nil
}

// inTenant runs fn in one transaction with the caller's tenant context.
func (c *caller) inTenant(ctx context.Context, fn func(pgx.Tx) error) error {
	return postgres.InTenant(ctx, c.db, c.tenant, fn)
}

// deny records a refused access: an audit row (who, what, why) and
// rls_violations_total. Failing to audit is logged, never hidden from
// the caller's answer.
func (a *api) deny(r *http.Request, c *caller, reason, detail string) {
	a.violations.WithLabelValues(reason).Inc()
	ctx := context.WithoutCancel(r.Context())
	err := c.inTenant(ctx, func(tx pgx.Tx) error {
		details, err := json.Marshal(map[string]string{"reason": reason, "detail": truncate(detail, 500)})
		if err != nil {
			return err
		}
		return dashboarddb.New(tx).AuditDenied(ctx, dashboarddb.AuditDeniedParams{
			Action:       truncate(r.Method+" "+r.Pattern, 100),
			ResourceType: "api",
			ResourceID:   truncate(r.URL.Path, 255),
			Details:      details,
		})
	})
	if err != nil {
		a.logger.Warn("audit a denied access", "err", err, "path", r.URL.Path)
	}
}

// isRLSRefusal reports whether err is the database refusing a write by
// row-level security or privilege (SQLSTATE 42501).
func isRLSRefusal(err error) bool {
	var pe interface{ SQLState() string }
	return errors.As(err, &pe) && pe.SQLState() == "42501"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
