package dashboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/dashboard/dashboarddb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// Devices (door terminals behind a gateway) and the device-adapter
// catalogue whose JSON Schemas validate a device's config. A device's
// ETag is its row_version.

// device is a device on the wire.
type device struct {
	ID             int64           `json:"id"`
	OrganizationID int64           `json:"organization_id"`
	GatewayID      *uuid.UUID      `json:"gateway_id"`
	Name           string          `json:"name"`
	AdapterType    string          `json:"adapter_type"`
	Host           *string         `json:"host"`
	Port           *int32          `json:"port"`
	Serial         *string         `json:"serial"`
	Config         json.RawMessage `json:"config"`
	Status         string          `json:"status"`
	LastSeenAt     *time.Time      `json:"last_seen_at"`
	Version        int64           `json:"version"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
}

func deviceOf(d dashboarddb.Device) device {
	return device{ID: d.ID, OrganizationID: d.OrganizationID, GatewayID: d.GatewayID, Name: d.Name, AdapterType: d.AdapterType,
		Host: d.Host, Port: d.Port, Serial: d.Serial, Config: d.Config, Status: d.Status, LastSeenAt: d.LastSeenAt,
		Version: d.RowVersion, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
}

// deviceVersion is the version an ETag names.
func deviceVersion(d dashboarddb.Device) int64 { return d.RowVersion }

// deviceBody is the body of POST /api/v2/devices and PUT
// /api/v2/devices/{id} (a PUT replaces every setting; organization_id
// only on POST, by a platform administrator).
type deviceBody struct {
	Name           string          `json:"name"`
	AdapterType    string          `json:"adapter_type"`
	GatewayID      *string         `json:"gateway_id,omitempty"`
	Host           *string         `json:"host,omitempty"`
	Port           *int32          `json:"port,omitempty"`
	Serial         *string         `json:"serial,omitempty"`
	Config         json.RawMessage `json:"config,omitempty"`
	OrganizationID *int64          `json:"organization_id,omitempty"`
}

// deviceSettings are a body's checked settings.
type deviceSettings struct {
	name, adapterType string
	gateway           *uuid.UUID
	host, serial      *string
	port              *int32
	config            json.RawMessage
}

// check validates what needs no database, naming the member at fault.
func (b deviceBody) check() (deviceSettings, error) {
	s := deviceSettings{name: strings.TrimSpace(b.Name), adapterType: strings.TrimSpace(b.AdapterType), port: b.Port}
	switch {
	case s.name == "":
		return s, apperr.New(apperr.Invalid, "name", "is required")
	case utf8.RuneCountInString(s.name) > 255:
		return s, apperr.New(apperr.Invalid, "name", "must be at most 255 characters")
	case s.adapterType == "":
		return s, apperr.New(apperr.Invalid, "adapter_type", "is required (a type from GET /api/v2/device-adapters)")
	case utf8.RuneCountInString(s.adapterType) > 100:
		return s, apperr.New(apperr.Invalid, "adapter_type", "must be at most 100 characters")
	case b.Port != nil && (*b.Port < 1 || *b.Port > 65535):
		return s, apperr.New(apperr.Invalid, "port", "must be from 1 to 65535")
	}
	opt := func(v *string, field string) (*string, error) {
		if v == nil || strings.TrimSpace(*v) == "" {
			return nil, nil
		}
		t := strings.TrimSpace(*v)
		if utf8.RuneCountInString(t) > 255 {
			return nil, apperr.New(apperr.Invalid, field, "must be at most 255 characters")
		}
		return &t, nil
	}
	var err error
	if s.host, err = opt(b.Host, "host"); err != nil {
		return s, err
	}
	if s.serial, err = opt(b.Serial, "serial"); err != nil {
		return s, err
	}
	if b.GatewayID != nil {
		id, err := uuid.Parse(*b.GatewayID)
		if err != nil {
			return s, apperr.New(apperr.Invalid, "gateway_id", "must be a gateway's id (a UUID)")
		}
		s.gateway = &id
	}
	s.config = b.Config
	if len(s.config) == 0 || string(s.config) == "null" {
		s.config = json.RawMessage("{}")
	}
	if s.config[0] != '{' {
		return s, apperr.New(apperr.Invalid, "config", "must be a JSON object")
	}
	return s, nil
}

// checkTx validates what needs the database: the gateway (visible, not
// revoked, of the device's organisation org; 0: any, the device takes the
// gateway's) and the config against the adapter's schema. It returns the
// organisation.
func (s deviceSettings) checkTx(r *http.Request, tx pgx.Tx, org int64) (int64, error) {
	q := dashboarddb.New(tx)
	if s.gateway != nil {
		g, err := q.DeviceGateway(r.Context(), *s.gateway)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return 0, apperr.New(apperr.Invalid, "gateway_id", "no such gateway")
		case err != nil:
			return 0, err
		case g.RevokedAt != nil:
			return 0, apperr.New(apperr.Invalid, "gateway_id", "the gateway is revoked")
		case org != 0 && g.OrganizationID != org:
			return 0, apperr.New(apperr.Invalid, "gateway_id", "the gateway belongs to another organisation")
		}
		org = g.OrganizationID
	}
	ad, err := q.ActiveAdapter(r.Context(), s.adapterType)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, apperr.New(apperr.Invalid, "adapter_type", "no active device adapter of type %q (see GET /api/v2/device-adapters)", s.adapterType)
	}
	if err != nil {
		return 0, err
	}
	return org, validateConfig(ad, s.config)
}

// validateConfig checks config against the adapter's JSON Schema; an
// error names the member as a pointer into the body ("/config/port").
func validateConfig(ad dashboarddb.ActiveAdapterRow, config json.RawMessage) error {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(ad.ConfigSchema))
	if err != nil {
		return errors.New("device adapter " + ad.Type + " " + ad.Version + ": its config schema is not JSON")
	}
	url := "adapter:" + ad.ID.String() + ".json"
	c := jsonschema.NewCompiler()
	if err := c.AddResource(url, doc); err != nil {
		return errors.New("device adapter " + ad.Type + " " + ad.Version + ": " + err.Error())
	}
	sch, err := c.Compile(url)
	if err != nil {
		return errors.New("device adapter " + ad.Type + " " + ad.Version + ": its config schema does not compile: " + err.Error())
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(config))
	if err != nil {
		return apperr.New(apperr.Invalid, "config", "is not valid JSON")
	}
	err = sch.Validate(inst)
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		leaf := ve
		for len(leaf.Causes) > 0 {
			leaf = leaf.Causes[0]
		}
		ptr := "/config"
		for _, tok := range leaf.InstanceLocation {
			ptr += "/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(tok)
		}
		msg := leaf.Error()
		if i := strings.LastIndex(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
		return apperr.New(apperr.Invalid, ptr, "%s (device adapter %s %s)", msg, ad.Type, ad.Version)
	}
	if err != nil {
		return apperr.New(apperr.Invalid, "config", "%s", err.Error())
	}
	return nil
}

func (a *api) listDevices(w http.ResponseWriter, r *http.Request, c *caller) error {
	p, err := pageOf(r)
	if err != nil {
		return err
	}
	gw, err := queryUUID(r, "gateway_id")
	if err != nil {
		return err
	}
	var after int64
	if p.Cursor != "" {
		var k struct {
			ID int64 `json:"id"`
		}
		if err := decodeCursor(p.Cursor, &k); err != nil {
			return err
		}
		if k.ID <= 0 {
			return badCursor()
		}
		after = k.ID
	}
	var rows []dashboarddb.Device
	var secrets deviceSecrets
	err = c.inTenant(r.Context(), func(tx pgx.Tx) error {
		if secrets, err = secretsTx(r.Context(), tx); err != nil {
			return err
		}
		rows, err = dashboarddb.New(tx).ListDevices(r.Context(), dashboarddb.ListDevicesParams{GatewayID: gw, AfterID: after,
			MaxRows: int32(p.Limit + 1)})
		return err
	})
	if err != nil {
		return err
	}
	rows, next := trimPage(rows, p.Limit, func(last dashboarddb.Device) any {
		return struct {
			ID int64 `json:"id"`
		}{last.ID}
	})
	out := make([]device, 0, len(rows))
	for _, d := range rows {
		out = append(out, secrets.device(d))
	}
	writeJSON(w, http.StatusOK, newList(out, next))
	return nil
}

// deviceTx reads a device the caller may see (404 otherwise).
func deviceTx(r *http.Request, tx pgx.Tx, id int64) (dashboarddb.Device, error) {
	d, err := dashboarddb.New(tx).GetDevice(r.Context(), id)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, apperr.New(apperr.NotFound, "", "no such device")
	}
	return d, err
}

func (a *api) getDevice(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathID(r, "id")
	if err != nil {
		return apperr.New(apperr.NotFound, "", "no such device")
	}
	var d dashboarddb.Device
	var secrets deviceSecrets
	err = c.inTenant(r.Context(), func(tx pgx.Tx) error {
		if secrets, err = secretsTx(r.Context(), tx); err != nil {
			return err
		}
		d, err = deviceTx(r, tx, id)
		return err
	})
	if err != nil {
		return err
	}
	writeVersioned(w, http.StatusOK, deviceVersion(d), secrets.device(d))
	return nil
}

func (a *api) createDevice(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in deviceBody
	if err := a.decode(r, &in); err != nil {
		return err
	}
	s, err := in.check()
	if err != nil {
		return err
	}
	// A platform administrator names the organisation, or attaches the
	// device to a gateway, whose organisation it takes.
	var org int64
	if c.tenant.Role != postgres.AppAdmin || in.OrganizationID != nil || s.gateway == nil {
		if org, err = organizationFor(c, in.OrganizationID); err != nil {
			return err
		}
	}
	var d dashboarddb.Device
	var secrets deviceSecrets
	err = c.inTenant(r.Context(), func(tx pgx.Tx) error {
		if secrets, err = secretsTx(r.Context(), tx); err != nil {
			return err
		}
		org, err := s.checkTx(r, tx, org)
		if err != nil {
			return err
		}
		d, err = dashboarddb.New(tx).CreateDevice(r.Context(), dashboarddb.CreateDeviceParams{OrganizationID: org, GatewayID: s.gateway,
			Name: s.name, AdapterType: s.adapterType, Host: s.host, Port: s.port, Serial: s.serial, Config: s.config})
		if isForeignKeyViolation(err) {
			return apperr.New(apperr.Invalid, "organization_id", "no such organisation")
		}
		if err != nil {
			return err
		}
		if err := a.syncGatewaysTx(r, tx, c, d.GatewayID); err != nil {
			return err
		}
		return auditTx(r, tx, d.OrganizationID, "create", "device", strconv.FormatInt(d.ID, 10),
			map[string]any{"name": d.Name, "adapter_type": d.AdapterType, "gateway_id": d.GatewayID})
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v2/devices/"+itoa(d.ID))
	writeVersioned(w, http.StatusCreated, deviceVersion(d), secrets.device(d))
	return nil
}

func (a *api) updateDevice(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathID(r, "id")
	if err != nil {
		return apperr.New(apperr.NotFound, "", "no such device")
	}
	version, err := ifMatch(r)
	if err != nil {
		return err
	}
	var in deviceBody
	if err := a.decode(r, &in); err != nil {
		return err
	}
	if in.OrganizationID != nil {
		return apperr.New(apperr.Invalid, "organization_id", "a device stays in its organisation: leave organization_id out")
	}
	s, err := in.check()
	if err != nil {
		return err
	}
	var d dashboarddb.Device
	var secrets deviceSecrets
	err = c.inTenant(r.Context(), func(tx pgx.Tx) error {
		if secrets, err = secretsTx(r.Context(), tx); err != nil {
			return err
		}
		old, err := deviceTx(r, tx, id)
		if err != nil {
			return err
		}
		if deviceVersion(old) != version {
			return stale("device")
		}
		if old.AdapterType == s.adapterType {
			// Write-only settings are never answered back: one left out is
			// kept, not erased.
			s.config = secrets.keep(s.adapterType, s.config, old.Config)
		}
		if _, err := s.checkTx(r, tx, old.OrganizationID); err != nil {
			return err
		}
		d, err = dashboarddb.New(tx).UpdateDevice(r.Context(), dashboarddb.UpdateDeviceParams{ID: id, RowVersion: version,
			GatewayID: s.gateway, Name: s.name, AdapterType: s.adapterType, Host: s.host, Port: s.port, Serial: s.serial, Config: s.config})
		if errors.Is(err, pgx.ErrNoRows) {
			return stale("device")
		}
		if err != nil {
			return err
		}
		if err := a.syncGatewaysTx(r, tx, c, old.GatewayID, d.GatewayID); err != nil {
			return err
		}
		return auditTx(r, tx, d.OrganizationID, "update", "device", strconv.FormatInt(d.ID, 10),
			map[string]any{"name": d.Name, "adapter_type": d.AdapterType, "gateway_id": d.GatewayID})
	})
	if err != nil {
		return err
	}
	writeVersioned(w, http.StatusOK, deviceVersion(d), secrets.device(d))
	return nil
}

func (a *api) deleteDevice(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathID(r, "id")
	if err != nil {
		return apperr.New(apperr.NotFound, "", "no such device")
	}
	version, err := ifMatch(r)
	if err != nil {
		return err
	}
	err = c.inTenant(r.Context(), func(tx pgx.Tx) error {
		old, err := deviceTx(r, tx, id)
		if err != nil {
			return err
		}
		if deviceVersion(old) != version {
			return stale("device")
		}
		org, err := dashboarddb.New(tx).DeleteDevice(r.Context(), dashboarddb.DeleteDeviceParams{ID: id, RowVersion: version})
		if errors.Is(err, pgx.ErrNoRows) {
			return stale("device")
		}
		if err != nil {
			return err
		}
		if err := a.syncGatewaysTx(r, tx, c, old.GatewayID); err != nil {
			return err
		}
		return auditTx(r, tx, org, "delete", "device", strconv.FormatInt(id, 10), map[string]any{"name": old.Name})
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deviceAdapter is an entry of the device-adapter catalogue.
type deviceAdapter struct {
	ID           uuid.UUID       `json:"id"`
	Type         string          `json:"type"`
	Vendor       string          `json:"vendor"`
	Version      string          `json:"version"`
	ConfigSchema json.RawMessage `json:"config_schema"`
	IsActive     bool            `json:"is_active"`
	CreatedAt    time.Time       `json:"created_at"`
}

// listDeviceAdapters answers the whole (platform-wide, small) catalogue
// in one page.
func (a *api) listDeviceAdapters(w http.ResponseWriter, r *http.Request, c *caller) error {
	var rows []dashboarddb.DeviceAdapter
	err := c.inTenant(r.Context(), func(tx pgx.Tx) error {
		var err error
		rows, err = dashboarddb.New(tx).ListAdapters(r.Context())
		return err
	})
	if err != nil {
		return err
	}
	out := make([]deviceAdapter, 0, len(rows))
	for _, d := range rows {
		out = append(out, deviceAdapter(d))
	}
	writeJSON(w, http.StatusOK, newList(out, ""))
	return nil
}

// isForeignKeyViolation reports whether err is SQLSTATE 23503.
func isForeignKeyViolation(err error) bool {
	var pe interface{ SQLState() string }
	return errors.As(err, &pe) && pe.SQLState() == "23503"
}
