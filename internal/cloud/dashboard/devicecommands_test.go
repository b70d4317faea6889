package dashboard_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
)

type deviceCommandJSON struct {
	ID               string          `json:"id"`
	DeviceID         int64           `json:"device_id"`
	GatewayID        string          `json:"gateway_id"`
	GatewayCommandID *string         `json:"gateway_command_id"`
	Command          string          `json:"command"`
	Payload          json.RawMessage `json:"payload"`
	Status           string          `json:"status"`
	CreatedBy        *string         `json:"created_by"`
}

// TestDeviceCommands: people administrators send a device command (a row
// and its device_command gateway command, in one transaction) and read
// them, newest first in pages; refusals name the field; leads and
// employees are refused (403); another organisation's device and
// commands are not found (404), for HR and organisation administrators
// alike.
func TestDeviceCommands(t *testing.T) {
	e := newAPIEnv(t)
	tok := e.fleetRoles(e.orgA)
	tokB := e.fleetRoles(e.orgB)
	path := fmt.Sprintf("/api/v2/devices/%d/commands", e.orgA.DeviceID)

	var sent []deviceCommandJSON
	for _, c := range []struct{ who, token string }{{"HR", tok.hr}, {"ORG_ADMIN", tok.admin}, {"ADMIN", tok.platform}} {
		var d deviceCommandJSON
		a := want(t, "send as "+c.who, e.call("POST", path, c.token,
			map[string]any{"command": "open_door", "door": 1, "params": map[string]any{"seconds": 3}, "expires_in_seconds": 30}), http.StatusCreated)
		a.JSON(t, &d)
		if d.Status != "pending" || d.DeviceID != e.orgA.DeviceID || d.GatewayID != e.orgA.GatewayID.String() || d.GatewayCommandID == nil ||
			a.Header.Get("Location") != "/api/v2/device-commands/"+d.ID || d.CreatedBy == nil || *d.CreatedBy == "" {
			t.Fatalf("sent as %s: %s", c.who, a.Body)
		}
		var typ, payload string
		e.scan(&typ, `SELECT type FROM gateway_commands WHERE id = $1`, *d.GatewayCommandID)
		e.scan(&payload, `SELECT payload->>'device_command_id' FROM gateway_commands WHERE id = $1`, *d.GatewayCommandID)
		if typ != "device_command" || payload != d.ID {
			t.Fatalf("gateway command: %s, device_command_id %s", typ, payload)
		}
		sent = append(sent, d)
	}
	e.assertAudit("send", 3)

	for _, tc := range []struct {
		name  string
		body  any
		field string
	}{
		{"no command", map[string]any{}, "/command"},
		{"unknown command", map[string]any{"command": "self_destruct"}, "/command"},
		{"door too high", map[string]any{"command": "open_door", "door": 65}, "/door"},
		{"params not an object", map[string]any{"command": "reboot", "params": []int{1}}, "/params"},
		{"expiry zero", map[string]any{"command": "reboot", "expires_in_seconds": 0}, "/expires_in_seconds"},
		{"expiry too long", map[string]any{"command": "reboot", "expires_in_seconds": 86401}, "/expires_in_seconds"},
	} {
		wantField(t, tc.name, e.call("POST", path, tok.hr, tc.body), http.StatusUnprocessableEntity, tc.field)
	}
	wantField(t, "unknown member", e.call("POST", path, tok.hr, map[string]any{"command": "reboot", "colour": "red"}), http.StatusUnprocessableEntity, "/colour")
	var loose int64
	e.scan(&loose, `INSERT INTO devices (organization_id, name, adapter_type) VALUES ($1, 'Loose', 'zkteco') RETURNING id`, e.orgA.OrganizationID)
	wantField(t, "device without a gateway", e.call("POST", fmt.Sprintf("/api/v2/devices/%d/commands", loose), tok.hr,
		map[string]any{"command": "reboot"}), http.StatusUnprocessableEntity, "/device_id")

	for _, role := range []struct{ who, token string }{{"lead", tok.lead}, {"employee", tok.employee}} {
		want(t, "send as "+role.who, e.call("POST", path, role.token, map[string]any{"command": "reboot"}), http.StatusForbidden)
		want(t, "list as "+role.who, e.call("GET", path, role.token, nil), http.StatusForbidden)
		want(t, "get as "+role.who, e.call("GET", "/api/v2/device-commands/"+sent[0].ID, role.token, nil), http.StatusForbidden)
	}
	for _, role := range []struct{ who, token string }{{"B's HR", tokB.hr}, {"B's ORG_ADMIN", tokB.admin}} {
		want(t, role.who+" sends to A's device", e.call("POST", path, role.token, map[string]any{"command": "reboot"}), http.StatusNotFound)
		want(t, role.who+" lists A's device", e.call("GET", path, role.token, nil), http.StatusNotFound)
		want(t, role.who+" reads A's command", e.call("GET", "/api/v2/device-commands/"+sent[0].ID, role.token, nil), http.StatusNotFound)
	}
	want(t, "not a uuid", e.call("GET", "/api/v2/device-commands/x", tok.hr, nil), http.StatusNotFound)
	want(t, "no such command", e.call("GET", "/api/v2/device-commands/"+uuid.NewString(), tok.hr, nil), http.StatusNotFound)
	want(t, "no such device", e.call("POST", "/api/v2/devices/999999/commands", tok.hr, map[string]any{"command": "reboot"}), http.StatusNotFound)

	var got deviceCommandJSON
	want(t, "get", e.call("GET", "/api/v2/device-commands/"+sent[1].ID, tok.hr, nil), http.StatusOK).JSON(t, &got)
	if got.ID != sent[1].ID || got.Command != "open_door" {
		t.Fatalf("get: %+v", got)
	}
	mine := map[string]bool{}
	for _, d := range sent {
		mine[d.ID] = true
	}
	var ids []string
	cursor := ""
	for i := 0; i < 5; i++ {
		var p listJSON[deviceCommandJSON]
		want(t, "page", e.call("GET", path+"?limit=1&cursor="+cursor, tok.hr, nil), http.StatusOK).JSON(t, &p)
		for _, c := range p.Items {
			if mine[c.ID] { // the seed has one too
				ids = append(ids, c.ID)
			}
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if want := []string{sent[2].ID, sent[1].ID, sent[0].ID}; strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Fatalf("pages %v, want newest first %v", ids, want)
	}
}

// TestDeviceChangesSendTheGatewayList: creating, updating (moving to
// another gateway: both lists) and deleting a device each queue a
// devices_update with the gateway's whole list, in the same transaction;
// a newer list cancels the older one not yet delivered.
func TestDeviceChangesSendTheGatewayList(t *testing.T) {
	e := newAPIEnv(t)
	tok := e.fleetRoles(e.orgA)
	e.exec(`INSERT INTO device_adapters (type, vendor, version, config_schema) VALUES ('door', 'Acme Doors', '1.0', $1)`, doorSchema)
	var gw2 string
	e.scan(&gw2, `INSERT INTO gateway_instances (organization_id, serial, api_key_hash, status) VALUES ($1, 'GW-2', sha256('k2'), 'online') RETURNING id::text`,
		e.orgA.OrganizationID)
	gw1 := e.orgA.GatewayID.String()
	// lists returns the names in gateway gw's pending list (and how many
	// lists are pending: one at most).
	lists := func(gw string) (string, int) {
		t.Helper()
		var n int
		e.scan(&n, `SELECT count(*)::int FROM gateway_commands WHERE gateway_id = $1 AND type = 'devices_update' AND status = 'pending'`, gw)
		if n == 0 {
			return "", 0
		}
		var names string
		e.scan(&names, `SELECT coalesce(string_agg(d->>'name', ',' ORDER BY (d->>'id')::bigint), '') FROM gateway_commands c,
			jsonb_array_elements(c.payload->'devices') d WHERE c.gateway_id = $1 AND c.type = 'devices_update' AND c.status = 'pending'`, gw)
		return names, n
	}
	body := map[string]any{"name": "Front door", "adapter_type": "door", "gateway_id": gw1, "host": "10.0.0.5", "port": 8000,
		"config": map[string]any{"username": "admin"}}
	var d struct {
		ID int64 `json:"id"`
	}
	a := want(t, "create", e.call("POST", "/api/v2/devices", tok.admin, body), http.StatusCreated)
	a.JSON(t, &d)
	if names, n := lists(gw1); names != "Front door" || n != 1 {
		t.Fatalf("after create: %q (%d lists)", names, n)
	}
	body["name"] = "Back door"
	want(t, "create another", e.call("POST", "/api/v2/devices", tok.admin, body), http.StatusCreated)
	if names, n := lists(gw1); names != "Front door,Back door" || n != 1 {
		t.Fatalf("after the second create: %q (%d lists)", names, n)
	}
	body["name"], body["gateway_id"] = "Front door", gw2
	path := fmt.Sprintf("/api/v2/devices/%d", d.ID)
	etag := want(t, "get", e.call("GET", path, tok.admin, nil), http.StatusOK).Header.Get("ETag")
	a = want(t, "move", e.call("PUT", path, tok.admin, body, "If-Match", etag), http.StatusOK)
	if names, n := lists(gw1); names != "Back door" || n != 1 {
		t.Fatalf("the old gateway after the move: %q (%d lists)", names, n)
	}
	if names, n := lists(gw2); names != "Front door" || n != 1 {
		t.Fatalf("the new gateway after the move: %q (%d lists)", names, n)
	}
	want(t, "delete", e.call("DELETE", path, tok.admin, nil, "If-Match", a.Header.Get("ETag")), http.StatusNoContent)
	if names, n := lists(gw2); names != "" || n != 1 {
		t.Fatalf("after the delete: %q (%d lists)", names, n)
	}
	var cancelled int
	e.scan(&cancelled, `SELECT count(*)::int FROM gateway_commands WHERE type = 'devices_update' AND status = 'cancelled'`)
	if cancelled != 3 {
		t.Errorf("%d superseded lists cancelled, want 3", cancelled)
	}
}
