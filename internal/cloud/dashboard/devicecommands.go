package dashboard

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/devicecmd"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// Device commands (open a door, reboot, read the device's info, …) through
// devicecmd, which staffctl device uses too: each is a device_commands row
// and the device_command gateway command that carries it, created in one
// transaction; the database moves the row with its gateway command. People
// administrators (ADMIN, ORG_ADMIN, HR) send and read them.

// newDeviceCommand is the body of POST /api/v2/devices/{id}/commands.
type newDeviceCommand struct {
	Command string          `json:"command"`
	Door    int             `json:"door,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	// ExpiresInSeconds bounds the wait for the gateway (default 60).
	ExpiresInSeconds *int64 `json:"expires_in_seconds,omitempty"`
}

func (a *api) sendDeviceCommand(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathID(r, "id")
	if err != nil {
		return apperr.New(apperr.NotFound, "", "no such device")
	}
	var in newDeviceCommand
	if err := a.decode(r, &in); err != nil {
		return err
	}
	if in.Command == "" {
		return apperr.New(apperr.Invalid, "command", "is required")
	}
	req := devicecmd.Request{DeviceID: id, Command: in.Command, Door: in.Door, Params: in.Params, CreatedBy: c.tenant.Actor}
	if in.ExpiresInSeconds != nil {
		if *in.ExpiresInSeconds < 1 || *in.ExpiresInSeconds > int64(devicecmd.MaxTTL/time.Second) {
			return apperr.New(apperr.Invalid, "expires_in_seconds", "must be from 1 to %d seconds", int64(devicecmd.MaxTTL/time.Second))
		}
		req.TTL = time.Duration(*in.ExpiresInSeconds) * time.Second
	}
	if err := req.Check(); err != nil {
		return err
	}
	var out devicecmd.Command
	err = c.inTenant(r.Context(), func(tx pgx.Tx) error {
		out, err = a.devices.SendTx(r.Context(), tx, req)
		if errors.Is(err, devicecmd.ErrNotFound) {
			return apperr.New(apperr.NotFound, "", "no such device")
		}
		if err != nil {
			return err
		}
		return auditTx(r, tx, out.OrganizationID, "send", protocol.CommandDeviceCommand, out.ID.String(),
			map[string]any{"device_id": id, "command": out.CommandType, "gateway_id": out.GatewayID})
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v2/device-commands/"+out.ID.String())
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (a *api) listDeviceCommands(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathID(r, "id")
	if err != nil {
		return apperr.New(apperr.NotFound, "", "no such device")
	}
	p, err := pageOf(r)
	if err != nil {
		return err
	}
	pg := devicecmd.Page{DeviceID: id, Limit: p.Limit + 1}
	if at, cid, err := timeCursor(p.Cursor); err != nil {
		return err
	} else if cid != nil {
		pg.BeforeAt, pg.BeforeID = at.Time, *cid
	}
	var cmds []devicecmd.Command
	err = c.inTenant(r.Context(), func(tx pgx.Tx) error {
		if _, err := deviceTx(r, tx, id); err != nil {
			return err
		}
		cmds, err = a.devices.ListTx(r.Context(), tx, pg)
		return err
	})
	if err != nil {
		return err
	}
	cmds, next := trimPage(cmds, p.Limit, func(last devicecmd.Command) any { return keyCursor{At: last.CreatedAt, ID: last.ID.String()} })
	writeJSON(w, http.StatusOK, newList(cmds, next))
	return nil
}

func (a *api) getDeviceCommand(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathUUID(r, "id", "device command")
	if err != nil {
		return err
	}
	var out devicecmd.Command
	err = c.inTenant(r.Context(), func(tx pgx.Tx) error {
		out, err = a.devices.GetTx(r.Context(), tx, id)
		if errors.Is(err, devicecmd.ErrNotFound) {
			return apperr.New(apperr.NotFound, "", "no such device command")
		}
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// syncGatewaysTx sends the device lists of the gateways a device change
// touched (the old and the new one, nil: none) in the change's
// transaction. A gateway no longer visible (revoked since) is skipped: it
// will never run a list again.
func (a *api) syncGatewaysTx(r *http.Request, tx pgx.Tx, c *caller, gateways ...*uuid.UUID) error {
	done := map[uuid.UUID]bool{}
	for _, g := range gateways {
		if g == nil || done[*g] {
			continue
		}
		done[*g] = true
		_, err := a.devices.SyncGatewayTx(r.Context(), tx, *g, c.tenant.Actor)
		if errors.Is(err, devicecmd.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}
