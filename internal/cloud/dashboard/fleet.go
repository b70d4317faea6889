package dashboard

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/dashboard/dashboarddb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// The fleet: gateways (registration with a one-time provisioning token,
// status, key rotation, revocation), the agents enrolled through them,
// devices behind them (devices.go), the device-adapter catalogue and the
// gateway command queue (commands.go). People administrators read, the
// organisation's administrators change.

// fleetRoutes adds the fleet's routes to the routes table.
func (a *api) fleetRoutes() {
	a.handle("GET", "/api/v2/gateways", peopleAdmins, a.listGateways)
	a.handle("POST", "/api/v2/gateways", orgManagers, a.registerGateway)
	a.handle("GET", "/api/v2/gateways/{id}", peopleAdmins, a.getGateway)
	a.handle("POST", "/api/v2/gateways/{id}/rotate-key", orgManagers, a.rotateGatewayKey)
	a.handle("POST", "/api/v2/gateways/{id}/revoke", orgManagers, a.revokeGateway)
	a.handle("GET", "/api/v2/gateways/{id}/commands", peopleAdmins, a.listCommands)
	a.handle("POST", "/api/v2/gateways/{id}/commands", orgManagers, a.sendCommand)
	a.handle("GET", "/api/v2/commands/{id}", peopleAdmins, a.getCommand)
	a.handle("POST", "/api/v2/commands/{id}/cancel", orgManagers, a.cancelCommand)
	a.handle("GET", "/api/v2/agents", peopleAdmins, a.listAgents)
	a.handle("GET", "/api/v2/agents/{id}", peopleAdmins, a.getAgent)
	a.handle("GET", "/api/v2/devices", peopleAdmins, a.listDevices)
	a.handle("POST", "/api/v2/devices", orgManagers, a.createDevice)
	a.handle("GET", "/api/v2/devices/{id}", peopleAdmins, a.getDevice)
	a.handle("PUT", "/api/v2/devices/{id}", orgManagers, a.updateDevice)
	a.handle("DELETE", "/api/v2/devices/{id}", orgManagers, a.deleteDevice)
	a.handle("POST", "/api/v2/devices/{id}/commands", peopleAdmins, a.sendDeviceCommand)
	a.handle("GET", "/api/v2/devices/{id}/commands", peopleAdmins, a.listDeviceCommands)
	a.handle("GET", "/api/v2/device-commands/{id}", peopleAdmins, a.getDeviceCommand)
	a.handle("GET", "/api/v2/device-adapters", peopleAdmins, a.listDeviceAdapters)
}

// gateway is a gateway on the wire.
type gateway struct {
	ID             uuid.UUID  `json:"id"`
	OrganizationID int64      `json:"organization_id"`
	Serial         string     `json:"serial"`
	Name           *string    `json:"name"`
	Status         string     `json:"status"`
	Version        *string    `json:"version"`
	LastSeenAt     *time.Time `json:"last_seen_at"`
	APIKeyPrefix   *string    `json:"api_key_prefix"`
	KeyRotatedAt   *time.Time `json:"key_rotated_at"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	RevokedAt      *time.Time `json:"revoked_at"`
}

func gatewayOf(g dashboarddb.GetGatewayRow) gateway {
	return gateway{ID: g.ID, OrganizationID: g.OrganizationID, Serial: g.Serial, Name: g.Name, Status: g.Status, Version: g.Version,
		LastSeenAt: g.LastSeenAt, APIKeyPrefix: g.ApiKeyPrefix, KeyRotatedAt: g.KeyRotatedAt, CreatedAt: g.CreatedAt, UpdatedAt: g.UpdatedAt,
		RevokedAt: g.RevokedAt}
}

// agentOf maps any of the agent queries' rows (the same columns).
func agentOf(g dashboarddb.GetAgentRow) agent {
	return agent{ID: g.ID, GatewayID: g.GatewayID, AgentUID: g.AgentUid, ComputerName: g.ComputerName, Status: g.Status,
		LastSeenAt: g.LastSeenAt, PolicyVersion: g.PolicyVersion, Version: g.Version, CreatedAt: g.CreatedAt, EnrolledAt: g.EnrolledAt,
		RevokedAt: g.RevokedAt}
}

// gatewayStatus is a gateway's latest heartbeat snapshot.
type gatewayStatus struct {
	Timestamp       time.Time       `json:"timestamp"`
	CPUUsage        *float64        `json:"cpu_usage"`
	MemoryUsage     *float64        `json:"memory_usage"`
	DiskUsage       *float64        `json:"disk_usage"`
	BufferUsage     *float64        `json:"buffer_usage"`
	QueueDepth      *int32          `json:"queue_depth"`
	ConnectedAgents *int32          `json:"connected_agents"`
	Versions        json.RawMessage `json:"versions"`
	NetworkStatus   json.RawMessage `json:"network_status"`
}

// gatewayDetail is one gateway with its latest status and its agents.
type gatewayDetail struct {
	gateway
	LatestStatus *gatewayStatus `json:"latest_status"`
	Agents       []agent        `json:"agents"`
}

// agent is a desktop agent on the wire.
type agent struct {
	ID            uuid.UUID  `json:"id"`
	GatewayID     uuid.UUID  `json:"gateway_id"`
	AgentUID      string     `json:"agent_uid"`
	ComputerName  *string    `json:"computer_name"`
	Status        string     `json:"status"`
	LastSeenAt    *time.Time `json:"last_seen_at"`
	PolicyVersion *string    `json:"policy_version"`
	Version       *string    `json:"version"`
	CreatedAt     time.Time  `json:"created_at"`
	EnrolledAt    *time.Time `json:"enrolled_at"`
	RevokedAt     *time.Time `json:"revoked_at"`
}

// maxGatewayAgents bounds the agents a gateway's detail lists (the rest
// are a page of GET /api/v2/agents?gateway_id=).
const maxGatewayAgents = 200

// Statuses the list filters accept.
var (
	gatewayStatuses = []string{"provisioning", "online", "offline", "revoked"}
	agentStatuses   = []string{"online", "offline"}
)

// keyCursor is the opaque cursor of a list in (created_at, id) order.
type keyCursor struct {
	At time.Time `json:"t"`
	ID string    `json:"id"`
}

// badCursor answers a cursor this API did not issue.
func badCursor() error {
	return inParams(apperr.New(apperr.Invalid, "cursor", "the cursor is not one this API issued: start again without it"))
}

// timeCursor reads a (created_at, uuid) cursor: an absent one is a zero
// time and a nil id.
func timeCursor(s string) (pgtype.Timestamptz, *uuid.UUID, error) {
	if s == "" {
		return pgtype.Timestamptz{}, nil, nil
	}
	var k keyCursor
	if err := decodeCursor(s, &k); err != nil {
		return pgtype.Timestamptz{}, nil, err
	}
	id, err := uuid.Parse(k.ID)
	if err != nil || k.At.IsZero() {
		return pgtype.Timestamptz{}, nil, badCursor()
	}
	return pgtype.Timestamptz{Time: k.At, Valid: true}, &id, nil
}

// queryEnum reads an optional query parameter that must be one of allowed.
func queryEnum(r *http.Request, name string, allowed []string) (*string, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return nil, nil
	}
	for _, s := range allowed {
		if v == s {
			return &v, nil
		}
	}
	return nil, inParams(apperr.New(apperr.Invalid, name, "%s must be one of %s", name, strings.Join(allowed, ", ")))
}

// queryUUID reads an optional id from the query.
func queryUUID(r *http.Request, name string) (*uuid.UUID, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return nil, nil
	}
	id, err := uuid.Parse(v)
	if err != nil {
		return nil, inParams(apperr.New(apperr.Invalid, name, "%s must be an id (a UUID)", name))
	}
	return &id, nil
}

// pathUUID reads a UUID id from the path; one that cannot name a row
// answers 404 like a row the caller may not see.
func pathUUID(r *http.Request, name, what string) (uuid.UUID, error) {
	id, err := uuid.Parse(r.PathValue(name))
	if err != nil {
		return uuid.Nil, apperr.New(apperr.NotFound, "", "no such %s", what)
	}
	return id, nil
}

// organizationFor is the organisation a new row of the caller's belongs
// to: their own; a platform ADMIN names it (given), and another user may
// name only their own.
func organizationFor(c *caller, given *int64) (int64, error) {
	if c.tenant.Role == postgres.AppAdmin {
		if given == nil || *given <= 0 {
			return 0, apperr.New(apperr.Invalid, "organization_id", "a platform administrator names the organisation")
		}
		return *given, nil
	}
	if given != nil && *given != c.tenant.OrganizationID {
		return 0, apperr.New(apperr.Invalid, "organization_id", "you may act only in your own organisation (leave organization_id out)")
	}
	return c.tenant.OrganizationID, nil
}

// auditTx records a change the caller made to a resource of org.
func auditTx(r *http.Request, tx pgx.Tx, org int64, action, resource, id string, details map[string]any) error {
	b, err := json.Marshal(details)
	if err != nil {
		return err
	}
	return dashboarddb.New(tx).AuditAllowed(r.Context(), dashboarddb.AuditAllowedParams{OrganizationID: &org, Action: action,
		ResourceType: resource, ResourceID: id, Details: b})
}

// renameField renames the field of a service's field error (the service
// says "ttl", the body has "ttl_seconds").
func renameField(err error, from, to string) error {
	var fe *apperr.FieldError
	if errors.As(err, &fe) && fe.Field == from {
		return &apperr.FieldError{Field: to, Message: fe.Message}
	}
	return err
}

func (a *api) listGateways(w http.ResponseWriter, r *http.Request, c *caller) error {
	p, err := pageOf(r)
	if err != nil {
		return err
	}
	status, err := queryEnum(r, "status", gatewayStatuses)
	if err != nil {
		return err
	}
	at, id, err := timeCursor(p.Cursor)
	if err != nil {
		return err
	}
	var rows []dashboarddb.ListGatewaysRow
	err = c.inTenant(r.Context(), func(tx pgx.Tx) error {
		rows, err = dashboarddb.New(tx).ListGateways(r.Context(), dashboarddb.ListGatewaysParams{Status: status, AfterAt: at, AfterID: id,
			MaxRows: int32(p.Limit + 1)})
		return err
	})
	if err != nil {
		return err
	}
	rows, next := trimPage(rows, p.Limit, func(last dashboarddb.ListGatewaysRow) any { return keyCursor{At: last.CreatedAt, ID: last.ID.String()} })
	out := make([]gateway, 0, len(rows))
	for _, g := range rows {
		out = append(out, gatewayOf(dashboarddb.GetGatewayRow(g)))
	}
	writeJSON(w, http.StatusOK, newList(out, next))
	return nil
}

// gatewayTx reads a gateway the caller may see (404 otherwise).
func gatewayTx(r *http.Request, tx pgx.Tx, id uuid.UUID) (dashboarddb.GetGatewayRow, error) {
	g, err := dashboarddb.New(tx).GetGateway(r.Context(), id)
	if errors.Is(err, pgx.ErrNoRows) {
		return g, apperr.New(apperr.NotFound, "", "no such gateway")
	}
	return g, err
}

// activeGatewayTx reads a gateway the caller may see and that is not
// revoked (409: a revoked gateway takes no commands).
func activeGatewayTx(r *http.Request, tx pgx.Tx, id uuid.UUID) (dashboarddb.GetGatewayRow, error) {
	g, err := gatewayTx(r, tx, id)
	if err == nil && g.RevokedAt != nil {
		return g, apperr.New(apperr.Conflict, "", "gateway %s is revoked: it takes no commands", id)
	}
	return g, err
}

func (a *api) getGateway(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathUUID(r, "id", "gateway")
	if err != nil {
		return err
	}
	var d gatewayDetail
	err = c.inTenant(r.Context(), func(tx pgx.Tx) error {
		g, err := gatewayTx(r, tx, id)
		if err != nil {
			return err
		}
		d.gateway = gatewayOf(g)
		q := dashboarddb.New(tx)
		s, err := q.LatestGatewaySnapshot(r.Context(), id)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return err
		default:
			st := gatewayStatus{Timestamp: s.Timestamp, CPUUsage: s.CpuUsage, MemoryUsage: s.MemoryUsage, DiskUsage: s.DiskUsage,
				BufferUsage: s.BufferUsage, QueueDepth: s.QueueDepth, ConnectedAgents: s.ConnectedAgents, Versions: s.Versions,
				NetworkStatus: s.NetworkStatus}
			d.LatestStatus = &st
		}
		agents, err := q.GatewayAgents(r.Context(), dashboarddb.GatewayAgentsParams{GatewayID: id, MaxRows: maxGatewayAgents})
		if err != nil {
			return err
		}
		d.Agents = make([]agent, 0, len(agents))
		for _, ag := range agents {
			d.Agents = append(d.Agents, agentOf(dashboarddb.GetAgentRow(ag)))
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// newGateway is the body of POST /api/v2/gateways.
type newGateway struct {
	Serial string `json:"serial"`
	Name   string `json:"name,omitempty"`
	// TTLSeconds is how long the provisioning token stays valid (default
	// one day).
	TTLSeconds     *int64 `json:"ttl_seconds,omitempty"`
	OrganizationID *int64 `json:"organization_id,omitempty"`
}

// registration answers POST /api/v2/gateways: the gateway and its
// one-time provisioning token, shown once.
type registration struct {
	Gateway                    gateway   `json:"gateway"`
	ProvisioningToken          string    `json:"provisioning_token"`
	ProvisioningTokenExpiresAt time.Time `json:"provisioning_token_expires_at"`
}

func (a *api) registerGateway(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in newGateway
	if err := a.decode(r, &in); err != nil {
		return err
	}
	org, err := organizationFor(c, in.OrganizationID)
	if err != nil {
		return err
	}
	ttl := 24 * time.Hour
	if in.TTLSeconds != nil {
		if *in.TTLSeconds < 60 || *in.TTLSeconds > 30*24*3600 {
			return apperr.New(apperr.Invalid, "ttl_seconds", "must be from 60 to 2592000 seconds (30 days)")
		}
		ttl = time.Duration(*in.TTLSeconds) * time.Second
	}
	reg, err := a.accounts(c).RegisterGateway(r.Context(), c.actor(), org, in.Serial, in.Name, ttl)
	if err != nil {
		return renameField(renameField(err, "organization", "organization_id"), "ttl", "ttl_seconds")
	}
	var out registration
	err = c.inTenant(r.Context(), func(tx pgx.Tx) error {
		g, err := gatewayTx(r, tx, reg.GatewayID)
		out.Gateway = gatewayOf(g)
		return err
	})
	if err != nil {
		return err
	}
	out.ProvisioningToken, out.ProvisioningTokenExpiresAt = reg.ProvisioningToken, reg.ExpiresAt
	w.Header().Set("Location", "/api/v2/gateways/"+reg.GatewayID.String())
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (a *api) revokeGateway(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathUUID(r, "id", "gateway")
	if err != nil {
		return err
	}
	_, err = a.accounts(c).RevokeGateway(r.Context(), c.actor(), id)
	switch {
	case errors.Is(err, accounts.ErrNotFound):
		return apperr.New(apperr.NotFound, "", "no such gateway")
	case errors.Is(err, accounts.ErrRevoked):
		return apperr.New(apperr.Conflict, "", "gateway %s is revoked already", id)
	case err != nil:
		return err
	}
	var out gateway
	err = c.inTenant(r.Context(), func(tx pgx.Tx) error {
		g, err := gatewayTx(r, tx, id)
		out = gatewayOf(g)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *api) listAgents(w http.ResponseWriter, r *http.Request, c *caller) error {
	p, err := pageOf(r)
	if err != nil {
		return err
	}
	gw, err := queryUUID(r, "gateway_id")
	if err != nil {
		return err
	}
	status, err := queryEnum(r, "status", agentStatuses)
	if err != nil {
		return err
	}
	at, id, err := timeCursor(p.Cursor)
	if err != nil {
		return err
	}
	var rows []dashboarddb.ListAgentsRow
	err = c.inTenant(r.Context(), func(tx pgx.Tx) error {
		rows, err = dashboarddb.New(tx).ListAgents(r.Context(), dashboarddb.ListAgentsParams{GatewayID: gw, Status: status, AfterAt: at,
			AfterID: id, MaxRows: int32(p.Limit + 1)})
		return err
	})
	if err != nil {
		return err
	}
	rows, next := trimPage(rows, p.Limit, func(last dashboarddb.ListAgentsRow) any { return keyCursor{At: last.CreatedAt, ID: last.ID.String()} })
	out := make([]agent, 0, len(rows))
	for _, ag := range rows {
		out = append(out, agentOf(dashboarddb.GetAgentRow(ag)))
	}
	writeJSON(w, http.StatusOK, newList(out, next))
	return nil
}

func (a *api) getAgent(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathUUID(r, "id", "agent")
	if err != nil {
		return err
	}
	var out agent
	err = c.inTenant(r.Context(), func(tx pgx.Tx) error {
		ag, err := dashboarddb.New(tx).GetAgent(r.Context(), id)
		if errors.Is(err, pgx.ErrNoRows) {
			return apperr.New(apperr.NotFound, "", "no such agent")
		}
		out = agentOf(ag)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
