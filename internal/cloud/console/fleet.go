package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/console/consoledb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// The fleet's pages: gateways (list, detail with the latest snapshot, the
// agents and the key rotation) and devices (list, detail, "open door"
// with its result polled live). They read and act through the Dashboard
// API's own routes (callAPI), so what each role sees and may do is
// exactly what the API allows it.

// fleetLimit is how many rows a page of a fleet list shows.
const fleetLimit = 50

// apiList is a page of an API list.
type apiList[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// gatewayRow is a gateway as the API answers it.
type gatewayRow struct {
	ID           uuid.UUID  `json:"id"`
	Serial       string     `json:"serial"`
	Name         *string    `json:"name"`
	Status       string     `json:"status"`
	Version      *string    `json:"version"`
	LastSeenAt   *time.Time `json:"last_seen_at"`
	APIKeyPrefix *string    `json:"api_key_prefix"`
	KeyRotatedAt *time.Time `json:"key_rotated_at"`
	CreatedAt    time.Time  `json:"created_at"`
	RevokedAt    *time.Time `json:"revoked_at"`
}

// gatewaySnapshot is a gateway's latest heartbeat snapshot.
type gatewaySnapshot struct {
	Timestamp       time.Time `json:"timestamp"`
	CPUUsage        *float64  `json:"cpu_usage"`
	MemoryUsage     *float64  `json:"memory_usage"`
	DiskUsage       *float64  `json:"disk_usage"`
	BufferUsage     *float64  `json:"buffer_usage"`
	QueueDepth      *int32    `json:"queue_depth"`
	ConnectedAgents *int32    `json:"connected_agents"`
}

// agentRow is a desktop agent as the API answers it.
type agentRow struct {
	ID            uuid.UUID  `json:"id"`
	AgentUID      string     `json:"agent_uid"`
	ComputerName  *string    `json:"computer_name"`
	Status        string     `json:"status"`
	LastSeenAt    *time.Time `json:"last_seen_at"`
	PolicyVersion *string    `json:"policy_version"`
	Version       *string    `json:"version"`
}

// gatewayDetail is a gateway with its latest snapshot and agents.
type gatewayDetail struct {
	gatewayRow
	LatestStatus *gatewaySnapshot `json:"latest_status"`
	Agents       []agentRow       `json:"agents"`
}

// commandRow is a gateway command as the API answers it.
type commandRow struct {
	ID          uuid.UUID  `json:"id"`
	GatewayID   uuid.UUID  `json:"gateway_id"`
	Type        string     `json:"type"`
	Status      string     `json:"status"`
	Attempts    int        `json:"attempts"`
	CreatedAt   time.Time  `json:"created_at"`
	CompletedAt *time.Time `json:"completed_at"`
	Error       *string    `json:"error"`
}

// listData is a keyset-paged list: its rows, the filter and the cursors.
type listData[T any] struct {
	Items  []T
	Filter url.Values
	Next   string
	Paged  bool
	Base   string
	// Flash is a message of the action that led here (empty: none).
	Flash string
}

// NextURL is the link to the next page (the same filter).
func (d listData[T]) NextURL() string {
	q := url.Values{}
	for k, v := range d.Filter {
		q[k] = v
	}
	q.Set("cursor", d.Next)
	return d.Base + "?" + q.Encode()
}

// FirstURL is the link to the first page of the same filter.
func (d listData[T]) FirstURL() string {
	if len(d.Filter) == 0 {
		return d.Base
	}
	return d.Base + "?" + d.Filter.Encode()
}

// FilterValue is the filter's value of name.
func (d listData[T]) FilterValue(name string) string { return d.Filter.Get(name) }

// copyFilter keeps the non-empty query values of names from r.
func copyFilter(r *http.Request, names ...string) url.Values {
	out := url.Values{}
	for _, n := range names {
		if v := r.URL.Query().Get(n); v != "" {
			out.Set(n, v)
		}
	}
	return out
}

// pageQuery is filter with the page's limit and r's cursor.
func pageQuery(r *http.Request, filter url.Values, limit int) url.Values {
	q := url.Values{}
	for k, v := range filter {
		q[k] = v
	}
	q.Set("limit", strconv.Itoa(limit))
	if cur := r.URL.Query().Get("cursor"); cur != "" {
		q.Set("cursor", cur)
	}
	return q
}

// zone is the caller's organisation's time zone (UTC for a platform
// administrator): one statement.
func (c *Console) zone(r *http.Request, p Principal) (*time.Location, error) {
	if p.Tenant.OrganizationID == 0 {
		return time.UTC, nil
	}
	var name string
	err := postgres.InTenant(r.Context(), p.DB, p.Tenant, func(tx pgx.Tx) error {
		var err error
		name, err = consoledb.New(tx).OrganizationTimeZone(r.Context(), p.Tenant.OrganizationID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("organisation time zone: %w", err)
	}
	return orgLocation(name), nil
}

// gateways lists the gateways the caller sees (GET /api/v2/gateways),
// filtered by status, a keyset page at a time.
func (c *Console) gateways(w http.ResponseWriter, r *http.Request, p Principal) error {
	d := listData[gatewayRow]{Filter: copyFilter(r, "status"), Paged: r.URL.Query().Get("cursor") != "", Base: Prefix + "gateways"}
	var l apiList[gatewayRow]
	if err := c.callAPI(r, p, http.MethodGet, "/api/v2/gateways", pageQuery(r, d.Filter, fleetLimit), nil, &l); err != nil {
		return err
	}
	loc, err := c.zone(r, p)
	if err != nil {
		return err
	}
	d.Items, d.Next = l.Items, l.NextCursor
	v := c.newView(w, r, &p, "gateways.title")
	v.Loc, v.Data = loc, d
	c.render(w, r, http.StatusOK, "gateways", v, nil)
	return nil
}

// gatewayData is a gateway's page's data.
type gatewayData struct {
	Gateway  gatewayDetail
	Commands []commandRow
	// Queued is the id of the rotation just queued (empty: none).
	Queued string
}

// gatewayCommandsShown is how many of a gateway's latest commands its page
// shows.
const gatewayCommandsShown = 10

// gateway shows one gateway (GET /api/v2/gateways/{id}): its status, the
// latest snapshot, its agents, its latest commands and, for those who may,
// the key rotation button.
func (c *Console) gateway(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return apperr.New(apperr.NotFound, "", "no such gateway")
	}
	var d gatewayData
	if err := c.callAPI(r, p, http.MethodGet, "/api/v2/gateways/"+id.String(), nil, nil, &d.Gateway); err != nil {
		return err
	}
	var cmds apiList[commandRow]
	q := url.Values{"limit": {strconv.Itoa(gatewayCommandsShown)}}
	if err := c.callAPI(r, p, http.MethodGet, "/api/v2/gateways/"+id.String()+"/commands", q, nil, &cmds); err != nil {
		return err
	}
	d.Commands = cmds.Items
	if qd, err := uuid.Parse(r.URL.Query().Get("queued")); err == nil {
		d.Queued = qd.String()
	}
	loc, err := c.zone(r, p)
	if err != nil {
		return err
	}
	v := c.newView(w, r, &p, "gateway.title")
	v.Loc, v.Data = loc, d
	c.render(w, r, http.StatusOK, "gateway", v, nil)
	return nil
}

// rotateGatewayKey queues a key rotation through the API's own route
// (POST /api/v2/gateways/{id}/rotate-key: its role check, queue and
// audit) and goes back to the gateway's page, which names the command.
func (c *Console) rotateGatewayKey(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return apperr.New(apperr.NotFound, "", "no such gateway")
	}
	var cmd commandRow
	if err := c.callAPI(r, p, http.MethodPost, "/api/v2/gateways/"+id.String()+"/rotate-key", nil, nil, &cmd); err != nil {
		return err
	}
	http.Redirect(w, r, Prefix+"gateways/"+id.String()+"?queued="+cmd.ID.String(), http.StatusSeeOther)
	return nil
}

// deviceRow is a device as the API answers it.
type deviceRow struct {
	ID          int64           `json:"id"`
	GatewayID   *uuid.UUID      `json:"gateway_id"`
	Name        string          `json:"name"`
	AdapterType string          `json:"adapter_type"`
	Host        *string         `json:"host"`
	Port        *int32          `json:"port"`
	Serial      *string         `json:"serial"`
	Status      string          `json:"status"`
	LastSeenAt  *time.Time      `json:"last_seen_at"`
	Config      json.RawMessage `json:"config"`
	UpdatedAt   time.Time       `json:"updated_at"`
}

// deviceCommandRow is a device command as the API answers it.
type deviceCommandRow struct {
	ID          uuid.UUID       `json:"id"`
	DeviceID    int64           `json:"device_id"`
	Command     string          `json:"command"`
	Status      string          `json:"status"`
	Response    json.RawMessage `json:"response"`
	Error       *string         `json:"error"`
	CreatedBy   *string         `json:"created_by"`
	CreatedAt   time.Time       `json:"created_at"`
	CompletedAt *time.Time      `json:"completed_at"`
}

// Final reports whether the command has reached a final state (as
// devicecmd.Command.Final: neither pending nor delivered).
func (d deviceCommandRow) Final() bool { return d.Status != "pending" && d.Status != "delivered" }

// devices lists the devices the caller sees (GET /api/v2/devices).
func (c *Console) devices(w http.ResponseWriter, r *http.Request, p Principal) error {
	d := listData[deviceRow]{Filter: copyFilter(r, "gateway_id"), Paged: r.URL.Query().Get("cursor") != "", Base: Prefix + "devices"}
	var l apiList[deviceRow]
	if err := c.callAPI(r, p, http.MethodGet, "/api/v2/devices", pageQuery(r, d.Filter, fleetLimit), nil, &l); err != nil {
		return err
	}
	loc, err := c.zone(r, p)
	if err != nil {
		return err
	}
	d.Items, d.Next = l.Items, l.NextCursor
	v := c.newView(w, r, &p, "devices.title")
	v.Loc, v.Data = loc, d
	c.render(w, r, http.StatusOK, "devices", v, nil)
	return nil
}

// deviceData is a device's page's data.
type deviceData struct {
	Device   deviceRow
	Commands []deviceCommandRow
	// Sent is the command just sent, its status polled (nil: none).
	Sent *deviceCommandRow
	// Events are the device's latest events.
	Events []deviceEvent
}

// deviceCommandsShown is how many of a device's latest commands its page
// shows.
const deviceCommandsShown = 10

// device shows one device (GET /api/v2/devices/{id}), its latest
// commands and the "open door" form; after a send (?sent=) the command's
// status, polled every second by htmx until it is final.
func (c *Console) device(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return apperr.New(apperr.NotFound, "", "no such device")
	}
	var d deviceData
	path := "/api/v2/devices/" + strconv.FormatInt(id, 10)
	if err := c.callAPI(r, p, http.MethodGet, path, nil, nil, &d.Device); err != nil {
		return err
	}
	var cmds apiList[deviceCommandRow]
	if err := c.callAPI(r, p, http.MethodGet, path+"/commands", url.Values{"limit": {strconv.Itoa(deviceCommandsShown)}}, nil, &cmds); err != nil {
		return err
	}
	d.Commands = cmds.Items
	if d.Events, err = c.loadDeviceEvents(r, p, id); err != nil {
		return err
	}
	if sent, err := uuid.Parse(r.URL.Query().Get("sent")); err == nil {
		var cmd deviceCommandRow
		if err := c.callAPI(r, p, http.MethodGet, "/api/v2/device-commands/"+sent.String(), nil, nil, &cmd); err == nil && cmd.DeviceID == id {
			d.Sent = &cmd
		}
	}
	loc, err := c.zone(r, p)
	if err != nil {
		return err
	}
	v := c.newView(w, r, &p, "device.title")
	v.Loc, v.Data = loc, d
	c.render(w, r, http.StatusOK, "device", v, nil)
	return nil
}

// openDoor sends "open_door" to a device through the API's own route
// (POST /api/v2/devices/{id}/commands: devicecmd.Send, its checks and
// audit) and goes back to the device's page, which polls the result.
func (c *Console) openDoor(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return apperr.New(apperr.NotFound, "", "no such device")
	}
	door := 1
	if s := r.PostFormValue("door"); s != "" {
		if door, err = strconv.Atoi(s); err != nil {
			return apperr.New(apperr.Invalid, "door", "door: must be a whole number")
		}
	}
	var cmd deviceCommandRow
	body := map[string]any{"command": "open_door", "door": door}
	if err := c.callAPI(r, p, http.MethodPost, "/api/v2/devices/"+strconv.FormatInt(id, 10)+"/commands", nil, body, &cmd); err != nil {
		return err
	}
	http.Redirect(w, r, fmt.Sprintf("%sdevices/%d?sent=%s", Prefix, id, cmd.ID), http.StatusSeeOther)
	return nil
}

// deviceCommandStatus is the fragment htmx polls: a device command's
// status (GET /api/v2/device-commands/{id}); while it is not final the
// fragment asks to be polled again in a second, once final it does not.
func (c *Console) deviceCommandStatus(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return apperr.New(apperr.NotFound, "", "no such command")
	}
	var cmd deviceCommandRow
	if err := c.callAPI(r, p, http.MethodGet, "/api/v2/device-commands/"+id.String(), nil, nil, &cmd); err != nil {
		return err
	}
	loc, err := c.zone(r, p)
	if err != nil {
		return err
	}
	v := c.newView(w, r, &p, "device.title")
	v.Loc, v.Data = loc, deviceData{Sent: &cmd}
	c.renderFragment(w, "device", "sent", v)
	return nil
}
