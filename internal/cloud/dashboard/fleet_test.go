package dashboard_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
)

// The fleet routes: gateways, agents, commands, devices, adapters.

// fleetRoles are tokens for acme's roles.
type fleetRoles struct{ admin, hr, lead, employee, platform string }

func (e *apiEnv) fleetRoles(s pgtest.Seeded) fleetRoles {
	return fleetRoles{
		admin:    e.orgAdmin(s),
		hr:       e.token(accesstoken.Claims{UserID: s.UserID, OrganizationID: s.OrganizationID, Role: "HR"}),
		lead:     e.token(accesstoken.Claims{UserID: s.UserID, OrganizationID: s.OrganizationID, Role: "DEPARTMENT_LEAD", DepartmentID: s.DepartmentID}),
		employee: e.token(accesstoken.Claims{UserID: s.UserID, OrganizationID: s.OrganizationID, Role: "EMPLOYEE", EmployeeID: s.EmployeeID}),
		platform: e.token(accesstoken.Claims{UserID: 1, Role: "ADMIN"}),
	}
}

// want fails the test unless a answered status; it returns a.
func want(t *testing.T, what string, a answer, status int) answer {
	t.Helper()
	if a.Status != status {
		t.Fatalf("%s: %d, want %d: %s", what, a.Status, status, a.Body)
	}
	return a
}

// wantField fails the test unless a answered status naming field.
func wantField(t *testing.T, what string, a answer, status int, field string) {
	t.Helper()
	if _, f := a.errorCode(t); a.Status != status || f != field {
		t.Errorf("%s: %d field %q, want %d field %q: %s", what, a.Status, f, status, field, a.Body)
	}
}

type gatewayJSON struct {
	ID             string  `json:"id"`
	OrganizationID int64   `json:"organization_id"`
	Serial         string  `json:"serial"`
	Status         string  `json:"status"`
	RevokedAt      *string `json:"revoked_at"`
}

type listJSON[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// TestFleetGateways: list (filter, cursor pages, one organisation's
// only), get with the latest status and agents, register with a one-time
// token, revoke; 404 across organisations, 403 for roles that may not.
func TestFleetGateways(t *testing.T) {
	e := newAPIEnv(t)
	tok := e.fleetRoles(e.orgA)
	gwA, gwB := e.orgA.GatewayID.String(), e.orgB.GatewayID.String()

	var page listJSON[gatewayJSON]
	want(t, "list as HR", e.call("GET", "/api/v2/gateways", tok.hr, nil), http.StatusOK).JSON(t, &page)
	if len(page.Items) != 1 || page.Items[0].ID != gwA {
		t.Fatalf("acme's gateways: %+v", page.Items)
	}
	for _, role := range []string{tok.lead, tok.employee} {
		want(t, "list as lead/employee", e.call("GET", "/api/v2/gateways", role, nil), http.StatusForbidden)
	}
	wantField(t, "bad status", e.call("GET", "/api/v2/gateways?status=asleep", tok.hr, nil), http.StatusUnprocessableEntity, "status")
	wantField(t, "bad cursor", e.call("GET", "/api/v2/gateways?cursor=xyz", tok.hr, nil), http.StatusUnprocessableEntity, "cursor")

	// Register: the token is shown once; serial validated and unique.
	var reg struct {
		Gateway           gatewayJSON `json:"gateway"`
		ProvisioningToken string      `json:"provisioning_token"`
	}
	a := want(t, "register", e.call("POST", "/api/v2/gateways", tok.admin, map[string]any{"serial": "GW-2", "name": "Branch"}), http.StatusCreated)
	a.JSON(t, &reg)
	if reg.ProvisioningToken == "" || reg.Gateway.Status != "provisioning" || reg.Gateway.OrganizationID != e.orgA.OrganizationID ||
		a.Header.Get("Location") != "/api/v2/gateways/"+reg.Gateway.ID {
		t.Fatalf("registration: %s", a.Body)
	}
	wantField(t, "duplicate serial", e.call("POST", "/api/v2/gateways", tok.admin, map[string]any{"serial": "GW-2"}), http.StatusUnprocessableEntity, "/serial")
	wantField(t, "no serial", e.call("POST", "/api/v2/gateways", tok.admin, map[string]any{"serial": " "}), http.StatusUnprocessableEntity, "/serial")
	wantField(t, "bad ttl", e.call("POST", "/api/v2/gateways", tok.admin, map[string]any{"serial": "GW-3", "ttl_seconds": 5}), http.StatusUnprocessableEntity, "/ttl_seconds")
	wantField(t, "other organisation", e.call("POST", "/api/v2/gateways", tok.admin,
		map[string]any{"serial": "GW-3", "organization_id": e.orgB.OrganizationID}), http.StatusUnprocessableEntity, "/organization_id")
	wantField(t, "ADMIN without organisation", e.call("POST", "/api/v2/gateways", tok.platform, map[string]any{"serial": "GW-3"}),
		http.StatusUnprocessableEntity, "/organization_id")
	want(t, "ADMIN registers in globex", e.call("POST", "/api/v2/gateways", tok.platform,
		map[string]any{"serial": "GW-3", "organization_id": e.orgB.OrganizationID}), http.StatusCreated)
	want(t, "register as HR", e.call("POST", "/api/v2/gateways", tok.hr, map[string]any{"serial": "GW-4"}), http.StatusForbidden)
	var everyGateway listJSON[gatewayJSON]
	want(t, "list as ADMIN", e.call("GET", "/api/v2/gateways", tok.platform, nil), http.StatusOK).JSON(t, &everyGateway)
	if len(everyGateway.Items) != 4 {
		t.Fatalf("ADMIN sees %d gateways, want 4 (two per organisation)", len(everyGateway.Items))
	}

	// Pages of one: two gateways in acme, then the end.
	var seen []string
	cursor := ""
	for i := 0; i < 5; i++ {
		var p listJSON[gatewayJSON]
		want(t, "page", e.call("GET", "/api/v2/gateways?limit=1&cursor="+cursor, tok.admin, nil), http.StatusOK).JSON(t, &p)
		for _, g := range p.Items {
			seen = append(seen, g.ID)
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if len(seen) != 2 || seen[0] != gwA || seen[1] != reg.Gateway.ID {
		t.Fatalf("pages: %v", seen)
	}
	var prov listJSON[gatewayJSON]
	want(t, "filter", e.call("GET", "/api/v2/gateways?status=provisioning", tok.admin, nil), http.StatusOK).JSON(t, &prov)
	if len(prov.Items) != 1 || prov.Items[0].ID != reg.Gateway.ID {
		t.Fatalf("provisioning gateways: %+v", prov.Items)
	}

	// Get: status snapshot and agents; globex's is not found.
	var d struct {
		gatewayJSON
		LatestStatus *struct {
			CPUUsage *float64 `json:"cpu_usage"`
		} `json:"latest_status"`
		Agents []struct {
			AgentUID string `json:"agent_uid"`
		} `json:"agents"`
	}
	want(t, "get", e.call("GET", "/api/v2/gateways/"+gwA, tok.hr, nil), http.StatusOK).JSON(t, &d)
	if d.LatestStatus == nil || d.LatestStatus.CPUUsage == nil || *d.LatestStatus.CPUUsage != 1.5 || len(d.Agents) != 1 || d.Agents[0].AgentUID != "agent-1" {
		t.Fatalf("detail: %+v", d)
	}
	var fresh struct {
		LatestStatus any   `json:"latest_status"`
		Agents       []any `json:"agents"`
	}
	want(t, "get a new one", e.call("GET", "/api/v2/gateways/"+reg.Gateway.ID, tok.hr, nil), http.StatusOK).JSON(t, &fresh)
	if fresh.LatestStatus != nil || fresh.Agents == nil || len(fresh.Agents) != 0 {
		t.Fatalf("a new gateway's detail: %+v", fresh)
	}
	for _, id := range []string{gwB, "not-a-uuid", "00000000-0000-0000-0000-000000000000"} {
		want(t, "get "+id, e.call("GET", "/api/v2/gateways/"+id, tok.admin, nil), http.StatusNotFound)
	}
	want(t, "get as ADMIN", e.call("GET", "/api/v2/gateways/"+gwB, tok.platform, nil), http.StatusOK)

	// Revoke: once; globex's is not found; HR may not.
	want(t, "revoke globex's", e.call("POST", "/api/v2/gateways/"+gwB+"/revoke", tok.admin, nil), http.StatusNotFound)
	want(t, "revoke as HR", e.call("POST", "/api/v2/gateways/"+gwA+"/revoke", tok.hr, nil), http.StatusForbidden)
	var rev gatewayJSON
	want(t, "revoke", e.call("POST", "/api/v2/gateways/"+gwA+"/revoke", tok.admin, nil), http.StatusOK).JSON(t, &rev)
	if rev.Status != "revoked" || rev.RevokedAt == nil {
		t.Fatalf("revoked: %+v", rev)
	}
	want(t, "revoke again", e.call("POST", "/api/v2/gateways/"+gwA+"/revoke", tok.admin, nil), http.StatusConflict)
	var pending int
	e.scan(&pending, `SELECT count(*) FROM gateway_commands WHERE gateway_id = $1 AND status IN ('pending', 'delivered')`, e.orgA.GatewayID)
	if pending != 0 {
		t.Fatalf("%d unfinished commands of a revoked gateway", pending)
	}
	var audited int
	e.scan(&audited, `SELECT count(*) FROM audit_log WHERE action = 'revoke' AND resource_type = 'gateway' AND resource_id = $1`, gwA)
	if audited != 1 {
		t.Fatalf("%d audit rows of the revocation", audited)
	}
	e.assertDenials(4)
}

type commandJSON struct {
	ID        string         `json:"id"`
	GatewayID string         `json:"gateway_id"`
	Type      string         `json:"type"`
	Status    string         `json:"status"`
	Payload   map[string]any `json:"payload"`
}

// TestFleetCommands: send (validated as the queue does), list with
// cursor pages, get, cancel, rotate the key; 404 across organisations.
func TestFleetCommands(t *testing.T) {
	e := newAPIEnv(t)
	tok := e.fleetRoles(e.orgA)
	gwA, gwB := e.orgA.GatewayID.String(), e.orgB.GatewayID.String()

	var c commandJSON
	a := want(t, "send", e.call("POST", "/api/v2/gateways/"+gwA+"/commands", tok.admin,
		map[string]any{"type": "restart_agent", "priority": 5}), http.StatusAccepted)
	a.JSON(t, &c)
	if c.Status != "pending" || c.GatewayID != gwA || a.Header.Get("Location") != "/api/v2/commands/"+c.ID {
		t.Fatalf("sent: %s", a.Body)
	}
	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"type": "self_destruct"}, "/type"},
		{map[string]any{}, "/type"},
		{map[string]any{"type": "rotate_api_key", "payload": map[string]any{"api_key": "x"}}, "/payload/api_key"},
		{map[string]any{"type": "restart_agent", "ttl_seconds": 0}, "/ttl_seconds"},
		{map[string]any{"type": "restart_agent", "max_attempts": 1000}, "/max_attempts"},
		{map[string]any{"type": "restart_agent", "priority": 5000}, "/priority"},
		{map[string]any{"type": "restart_agent", "colour": "red"}, "/colour"},
		// The device routes own these (their rows, the list).
		{map[string]any{"type": "device_command", "payload": map[string]any{"device_id": 1, "command": "open_door"}}, "/type"},
		{map[string]any{"type": "devices_update", "payload": map[string]any{"version": 99, "devices": []any{}}}, "/type"},
	} {
		wantField(t, fmt.Sprint(tc.body), e.call("POST", "/api/v2/gateways/"+gwA+"/commands", tok.admin, tc.body), http.StatusUnprocessableEntity, tc.field)
	}
	want(t, "send to globex", e.call("POST", "/api/v2/gateways/"+gwB+"/commands", tok.admin, map[string]any{"type": "restart_agent"}), http.StatusNotFound)
	want(t, "send as HR", e.call("POST", "/api/v2/gateways/"+gwA+"/commands", tok.hr, map[string]any{"type": "restart_agent"}), http.StatusForbidden)

	// Rotate: a rotate_api_key command holding only the overlap.
	var rot commandJSON
	want(t, "rotate", e.call("POST", "/api/v2/gateways/"+gwA+"/rotate-key", tok.admin, map[string]any{"overlap_seconds": 600}), http.StatusAccepted).JSON(t, &rot)
	if rot.Type != "rotate_api_key" || rot.Payload["overlap_seconds"] != float64(600) || len(rot.Payload) != 1 {
		t.Fatalf("rotation: %+v", rot)
	}
	want(t, "rotate without a body", e.call("POST", "/api/v2/gateways/"+gwA+"/rotate-key", tok.admin, nil), http.StatusAccepted)
	wantField(t, "bad overlap", e.call("POST", "/api/v2/gateways/"+gwA+"/rotate-key", tok.admin, map[string]any{"overlap_seconds": 5}),
		http.StatusUnprocessableEntity, "/overlap_seconds")
	want(t, "rotate globex's", e.call("POST", "/api/v2/gateways/"+gwB+"/rotate-key", tok.admin, nil), http.StatusNotFound)
	want(t, "rotate as HR", e.call("POST", "/api/v2/gateways/"+gwA+"/rotate-key", tok.hr, nil), http.StatusForbidden)

	// List: the seeded command and the three sent, newest first, in pages.
	var all []commandJSON
	cursor := ""
	for i := 0; i < 10; i++ {
		var p listJSON[commandJSON]
		want(t, "list", e.call("GET", "/api/v2/gateways/"+gwA+"/commands?limit=3&cursor="+cursor, tok.hr, nil), http.StatusOK).JSON(t, &p)
		all = append(all, p.Items...)
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if len(all) != 4 || all[3].Type != "restart_agent" || all[3].ID == c.ID {
		t.Fatalf("commands: %+v", all)
	}
	var rotations listJSON[commandJSON]
	want(t, "filter", e.call("GET", "/api/v2/gateways/"+gwA+"/commands?status=pending", tok.hr, nil), http.StatusOK).JSON(t, &rotations)
	if len(rotations.Items) != 4 {
		t.Fatalf("pending: %+v", rotations.Items)
	}
	want(t, "list globex's", e.call("GET", "/api/v2/gateways/"+gwB+"/commands", tok.admin, nil), http.StatusNotFound)
	wantField(t, "bad status", e.call("GET", "/api/v2/gateways/"+gwA+"/commands?status=done", tok.admin, nil), http.StatusUnprocessableEntity, "status")

	// Get and cancel; globex's command is not found.
	var globexCmd string
	e.scan(&globexCmd, `SELECT id::text FROM gateway_commands WHERE gateway_id = $1`, e.orgB.GatewayID)
	want(t, "get", e.call("GET", "/api/v2/commands/"+c.ID, tok.hr, nil), http.StatusOK)
	want(t, "get globex's", e.call("GET", "/api/v2/commands/"+globexCmd, tok.admin, nil), http.StatusNotFound)
	want(t, "cancel globex's", e.call("POST", "/api/v2/commands/"+globexCmd+"/cancel", tok.admin, nil), http.StatusNotFound)
	want(t, "cancel as HR", e.call("POST", "/api/v2/commands/"+c.ID+"/cancel", tok.hr, nil), http.StatusForbidden)
	var cancelled commandJSON
	want(t, "cancel", e.call("POST", "/api/v2/commands/"+c.ID+"/cancel", tok.admin, nil), http.StatusOK).JSON(t, &cancelled)
	if cancelled.Status != "cancelled" {
		t.Fatalf("cancelled: %+v", cancelled)
	}
	want(t, "cancel again", e.call("POST", "/api/v2/commands/"+c.ID+"/cancel", tok.admin, nil), http.StatusConflict)
	want(t, "get as ADMIN", e.call("GET", "/api/v2/commands/"+globexCmd, tok.platform, nil), http.StatusOK)

	// A revoked gateway takes no commands.
	want(t, "revoke", e.call("POST", "/api/v2/gateways/"+gwA+"/revoke", tok.admin, nil), http.StatusOK)
	want(t, "send to a revoked gateway", e.call("POST", "/api/v2/gateways/"+gwA+"/commands", tok.admin, map[string]any{"type": "restart_agent"}), http.StatusConflict)
}

// TestFleetAgents: list (per gateway, cursor), get; 404 across
// organisations.
func TestFleetAgents(t *testing.T) {
	e := newAPIEnv(t)
	tok := e.fleetRoles(e.orgA)
	e.exec(`INSERT INTO agent_instances (organization_id, gateway_id, agent_uid, status) VALUES ($1, $2, 'agent-2', 'online')`,
		e.orgA.OrganizationID, e.orgA.GatewayID)
	type agentJSON struct {
		ID       string `json:"id"`
		AgentUID string `json:"agent_uid"`
	}
	var all []agentJSON
	cursor := ""
	for i := 0; i < 5; i++ {
		var p listJSON[agentJSON]
		want(t, "list", e.call("GET", "/api/v2/agents?limit=1&gateway_id="+e.orgA.GatewayID.String()+"&cursor="+cursor, tok.hr, nil), http.StatusOK).JSON(t, &p)
		all = append(all, p.Items...)
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if len(all) != 2 || all[0].AgentUID != "agent-1" || all[1].AgentUID != "agent-2" {
		t.Fatalf("agents: %+v", all)
	}
	var online listJSON[agentJSON]
	want(t, "online", e.call("GET", "/api/v2/agents?status=online", tok.hr, nil), http.StatusOK).JSON(t, &online)
	if len(online.Items) != 1 || online.Items[0].AgentUID != "agent-2" {
		t.Fatalf("online agents: %+v", online.Items)
	}
	var none listJSON[agentJSON]
	want(t, "globex's gateway", e.call("GET", "/api/v2/agents?gateway_id="+e.orgB.GatewayID.String(), tok.hr, nil), http.StatusOK).JSON(t, &none)
	if len(none.Items) != 0 {
		t.Fatalf("globex's agents seen: %+v", none.Items)
	}
	wantField(t, "bad gateway id", e.call("GET", "/api/v2/agents?gateway_id=x", tok.hr, nil), http.StatusUnprocessableEntity, "gateway_id")
	want(t, "get", e.call("GET", "/api/v2/agents/"+all[0].ID, tok.hr, nil), http.StatusOK)
	var globexAgent string
	e.scan(&globexAgent, `SELECT id::text FROM agent_instances WHERE gateway_id = $1`, e.orgB.GatewayID)
	want(t, "get globex's", e.call("GET", "/api/v2/agents/"+globexAgent, tok.admin, nil), http.StatusNotFound)
	want(t, "get as a lead", e.call("GET", "/api/v2/agents/"+all[0].ID, tok.lead, nil), http.StatusForbidden)
}

// doorSchema is a device adapter's config schema for the tests.
const doorSchema = `{"type": "object", "additionalProperties": false,
  "properties": {"port": {"type": "integer", "minimum": 1, "maximum": 65535}, "username": {"type": "string"}},
  "required": ["username"]}`

type deviceJSON struct {
	ID        int64          `json:"id"`
	Name      string         `json:"name"`
	GatewayID *string        `json:"gateway_id"`
	Config    map[string]any `json:"config"`
}

// TestFleetDevices: create with the config validated by the adapter's
// schema (errors point into the body), get, list, update and delete with
// If-Match (412 stale, 428 missing); 404 across organisations.
func TestFleetDevices(t *testing.T) {
	e := newAPIEnv(t)
	tok := e.fleetRoles(e.orgA)
	e.exec(`INSERT INTO device_adapters (type, vendor, version, config_schema) VALUES ('door', 'Acme Doors', '1.0', $1)`, doorSchema)
	e.exec(`INSERT INTO device_adapters (type, vendor, version, config_schema, is_active) VALUES ('old', 'Gone', '0.1', '{}', false)`)
	var adapters listJSON[struct {
		Type     string `json:"type"`
		IsActive bool   `json:"is_active"`
	}]
	want(t, "adapters", e.call("GET", "/api/v2/device-adapters", tok.hr, nil), http.StatusOK).JSON(t, &adapters)
	var types []string
	for _, a := range adapters.Items {
		types = append(types, fmt.Sprint(a.Type, " ", a.IsActive))
	}
	// Those of the test and the two the migrations seed (00031).
	if got := strings.Join(types, ", "); got != "door true, hikvision true, old false, zkteco true" {
		t.Fatalf("adapters: %s", got)
	}
	want(t, "adapters as an employee", e.call("GET", "/api/v2/device-adapters", tok.employee, nil), http.StatusForbidden)

	gwA := e.orgA.GatewayID.String()
	body := map[string]any{"name": "Front door", "adapter_type": "door", "gateway_id": gwA, "host": "10.0.0.5", "port": 8000,
		"config": map[string]any{"username": "admin", "port": 80}}
	var d deviceJSON
	a := want(t, "create", e.call("POST", "/api/v2/devices", tok.admin, body), http.StatusCreated)
	a.JSON(t, &d)
	etag := a.Header.Get("ETag")
	if etag == "" || d.GatewayID == nil || *d.GatewayID != gwA || d.Config["username"] != "admin" {
		t.Fatalf("created: %s (ETag %q)", a.Body, etag)
	}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range body {
			m[kk] = vv
		}
		m[k] = v
		return m
	}
	for _, tc := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"config port", with("config", map[string]any{"username": "a", "port": 0}), "/config/port"},
		{"config missing username", with("config", map[string]any{}), "/config"},
		{"config extra member", with("config", map[string]any{"username": "a", "colour": "red"}), "/config"},
		{"no name", with("name", ""), "/name"},
		{"unknown adapter", with("adapter_type", "teleporter"), "/adapter_type"},
		{"inactive adapter", with("adapter_type", "old"), "/adapter_type"},
		{"port", with("port", 70000), "/port"},
		{"globex's gateway", with("gateway_id", e.orgB.GatewayID.String()), "/gateway_id"},
		{"bad gateway id", with("gateway_id", "x"), "/gateway_id"},
		{"other organisation", with("organization_id", e.orgB.OrganizationID), "/organization_id"},
	} {
		wantField(t, tc.name, e.call("POST", "/api/v2/devices", tok.admin, tc.body), http.StatusUnprocessableEntity, tc.field)
	}
	want(t, "create as HR", e.call("POST", "/api/v2/devices", tok.hr, body), http.StatusForbidden)
	// A platform ADMIN's device takes its gateway's organisation.
	var globexDev deviceJSON
	want(t, "ADMIN creates in globex", e.call("POST", "/api/v2/devices", tok.platform,
		with("gateway_id", e.orgB.GatewayID.String())), http.StatusCreated).JSON(t, &globexDev)

	// List: acme's two devices (seeded and created), in pages.
	var ids []int64
	cursor := ""
	for i := 0; i < 5; i++ {
		var p listJSON[deviceJSON]
		want(t, "list", e.call("GET", "/api/v2/devices?limit=1&cursor="+cursor, tok.hr, nil), http.StatusOK).JSON(t, &p)
		for _, x := range p.Items {
			ids = append(ids, x.ID)
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if len(ids) != 2 || ids[0] != e.orgA.DeviceID || ids[1] != d.ID {
		t.Fatalf("devices: %v", ids)
	}
	path := fmt.Sprintf("/api/v2/devices/%d", d.ID)
	globexPath := fmt.Sprintf("/api/v2/devices/%d", e.orgB.DeviceID)
	a = want(t, "get", e.call("GET", path, tok.hr, nil), http.StatusOK)
	if a.Header.Get("ETag") != etag {
		t.Fatalf("get's ETag %q, create's %q", a.Header.Get("ETag"), etag)
	}
	want(t, "get globex's", e.call("GET", globexPath, tok.admin, nil), http.StatusNotFound)
	want(t, "get x", e.call("GET", "/api/v2/devices/x", tok.admin, nil), http.StatusNotFound)

	// Update with If-Match.
	upd := with("name", "Back door")
	delete(upd, "host")
	wantField(t, "update without If-Match", e.call("PUT", path, tok.admin, upd), http.StatusPreconditionRequired, "If-Match")
	want(t, "update globex's", e.call("PUT", globexPath, tok.admin, upd, "If-Match", etag), http.StatusNotFound)
	want(t, "update as HR", e.call("PUT", path, tok.hr, upd, "If-Match", etag), http.StatusForbidden)
	wantField(t, "update config", e.call("PUT", path, tok.admin, with("config", map[string]any{"username": 5}), "If-Match", etag),
		http.StatusUnprocessableEntity, "/config/username")
	a = want(t, "update", e.call("PUT", path, tok.admin, upd, "If-Match", etag), http.StatusOK)
	var u struct {
		deviceJSON
		Host *string `json:"host"`
	}
	a.JSON(t, &u)
	newTag := a.Header.Get("ETag")
	if u.Name != "Back door" || u.Host != nil || newTag == etag || newTag == "" {
		t.Fatalf("updated: %s (ETag %q, was %q)", a.Body, newTag, etag)
	}
	wantField(t, "stale update", e.call("PUT", path, tok.admin, upd, "If-Match", etag), http.StatusPreconditionFailed, "If-Match")

	// Delete with If-Match.
	want(t, "delete without If-Match", e.call("DELETE", path, tok.admin, nil), http.StatusPreconditionRequired)
	want(t, "stale delete", e.call("DELETE", path, tok.admin, nil, "If-Match", etag), http.StatusPreconditionFailed)
	want(t, "delete globex's", e.call("DELETE", globexPath, tok.admin, nil, "If-Match", newTag), http.StatusNotFound)
	want(t, "delete", e.call("DELETE", path, tok.admin, nil, "If-Match", newTag), http.StatusNoContent)
	want(t, "get deleted", e.call("GET", path, tok.admin, nil), http.StatusNotFound)

	var audits int
	e.scan(&audits, `SELECT count(*) FROM audit_log WHERE resource_type = 'device' AND outcome = 'allowed'`)
	if audits != 4 {
		t.Fatalf("%d device audit rows, want 4 (2 creates, update, delete)", audits)
	}
	if !strings.HasPrefix(etag, `"`) {
		t.Fatalf("ETag %q", etag)
	}
}

// TestFleetDeviceSecrets: the settings an adapter's schema marks writeOnly
// (Hikvision's password, from the catalogue the migrations seed) are kept
// in the device's config for the gateway but never answered back; a PUT
// that leaves one out keeps it, one that sends it replaces it.
func TestFleetDeviceSecrets(t *testing.T) {
	e := newAPIEnv(t)
	tok := e.fleetRoles(e.orgA)
	stored := func(id int64) map[string]any {
		t.Helper()
		var cfg map[string]any
		if err := e.admin.QueryRow(context.Background(), `SELECT config FROM devices WHERE id = $1`, id).Scan(&cfg); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	noPassword := func(what string, a answer) deviceJSON {
		t.Helper()
		var d deviceJSON
		a.JSON(t, &d)
		if _, has := d.Config["password"]; has || strings.Contains(string(a.Body), "s3cret") || d.Config["username"] != "admin" {
			t.Fatalf("%s answered the password or lost the username: %s", what, a.Body)
		}
		return d
	}
	body := map[string]any{"name": "Lobby", "adapter_type": "hikvision", "gateway_id": e.orgA.GatewayID.String(), "host": "10.0.0.9", "port": 80,
		"config": map[string]any{"username": "admin", "password": "s3cret"}}
	a := want(t, "create", e.call("POST", "/api/v2/devices", tok.admin, body), http.StatusCreated)
	d := noPassword("create", a)
	path := fmt.Sprintf("/api/v2/devices/%d", d.ID)
	if stored(d.ID)["password"] != "s3cret" {
		t.Fatalf("stored config: %v", stored(d.ID))
	}
	noPassword("get", want(t, "get", e.call("GET", path, tok.hr, nil), http.StatusOK))
	var list listJSON[deviceJSON]
	lst := want(t, "list", e.call("GET", "/api/v2/devices", tok.hr, nil), http.StatusOK)
	lst.JSON(t, &list)
	if strings.Contains(string(lst.Body), "s3cret") || len(list.Items) == 0 {
		t.Fatalf("list: %s", lst.Body)
	}
	// What a client read, sent back: the password stays.
	body["config"] = d.Config
	body["name"] = "Lobby door"
	a = want(t, "update without the password", e.call("PUT", path, tok.admin, body, "If-Match", a.Header.Get("ETag")), http.StatusOK)
	noPassword("update", a)
	if cfg := stored(d.ID); cfg["password"] != "s3cret" {
		t.Fatalf("the password was not kept: %v", cfg)
	}
	body["config"] = map[string]any{"username": "admin", "password": "n3w"}
	want(t, "update with a new password", e.call("PUT", path, tok.admin, body, "If-Match", a.Header.Get("ETag")), http.StatusOK)
	if cfg := stored(d.ID); cfg["password"] != "n3w" {
		t.Fatalf("the password was not replaced: %v", cfg)
	}
}
