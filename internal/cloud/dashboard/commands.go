package dashboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// Gateway commands through the command queue staffctl uses too: send,
// list (per gateway), get, cancel, and the key rotation.

// command is a queued gateway command on the wire.
type command struct {
	ID          uuid.UUID       `json:"id"`
	GatewayID   uuid.UUID       `json:"gateway_id"`
	Type        string          `json:"type"`
	Payload     json.RawMessage `json:"payload"`
	Priority    int             `json:"priority"`
	Status      string          `json:"status"`
	Attempts    int             `json:"attempts"`
	MaxAttempts int             `json:"max_attempts"`
	ExpiresAt   time.Time       `json:"expires_at"`
	CreatedAt   time.Time       `json:"created_at"`
	DeliveredAt *time.Time      `json:"delivered_at"`
	ReceivedAt  *time.Time      `json:"received_at"`
	CompletedAt *time.Time      `json:"completed_at"`
	Result      json.RawMessage `json:"result"`
	Error       *string         `json:"error"`
}

func commandOf(c commandqueue.Command) command {
	out := command{ID: c.ID, GatewayID: c.GatewayID, Type: c.Type, Payload: c.Payload, Priority: c.Priority, Status: c.Status,
		Attempts: c.Attempts, MaxAttempts: c.MaxAttempts, ExpiresAt: c.ExpiresAt, CreatedAt: c.CreatedAt, DeliveredAt: c.DeliveredAt,
		ReceivedAt: c.ReceivedAt, CompletedAt: c.CompletedAt, Result: c.Result, Error: c.Error}
	if len(out.Result) == 0 {
		out.Result = json.RawMessage("null")
	}
	return out
}

// commandStatuses are the statuses the command list filters by.
var commandStatuses = []string{commandqueue.StatusPending, commandqueue.StatusDelivered, commandqueue.StatusCompleted,
	commandqueue.StatusFailed, commandqueue.StatusExpired, commandqueue.StatusCancelled}

// Bounds of a command's settings in a request.
const (
	maxCommandTTL      = 30 * 24 * 3600
	maxCommandPriority = 1000
)

// newCommand is the body of POST /api/v2/gateways/{id}/commands.
type newCommand struct {
	Type        string          `json:"type"`
	Payload     json.RawMessage `json:"payload,omitempty"`
	Priority    int             `json:"priority,omitempty"`
	TTLSeconds  *int64          `json:"ttl_seconds,omitempty"`
	MaxAttempts int             `json:"max_attempts,omitempty"`
}

// ttlOf reads an optional ttl_seconds (0: the queue's default).
func ttlOf(v *int64) (time.Duration, error) {
	if v == nil {
		return 0, nil
	}
	if *v < 1 || *v > maxCommandTTL {
		return 0, apperr.New(apperr.Invalid, "ttl_seconds", "must be from 1 to %d seconds (30 days)", maxCommandTTL)
	}
	return time.Duration(*v) * time.Second, nil
}

// enqueue queues nc for the gateway in the path in one transaction with
// the checks (visible: else 404; not revoked: else 409) and the audit row,
// and answers the command 202.
func (a *api) enqueue(w http.ResponseWriter, r *http.Request, c *caller, gw uuid.UUID, nc commandqueue.NewCommand, action string) error {
	var out commandqueue.Command
	err := c.inTenant(r.Context(), func(tx pgx.Tx) error {
		g, err := activeGatewayTx(r, tx, gw)
		if err != nil {
			return err
		}
		out, err = a.queue.EnqueueTx(r.Context(), tx, nc)
		if errors.Is(err, commandqueue.ErrNotFound) {
			return apperr.New(apperr.NotFound, "", "no such gateway")
		}
		if err != nil {
			return renameField(err, "ttl", "ttl_seconds")
		}
		return auditTx(r, tx, g.OrganizationID, action, "gateway_command", out.ID.String(),
			map[string]any{"gateway_id": gw, "type": nc.Type})
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v2/commands/"+out.ID.String())
	writeJSON(w, http.StatusAccepted, commandOf(out))
	return nil
}

func (a *api) sendCommand(w http.ResponseWriter, r *http.Request, c *caller) error {
	gw, err := pathUUID(r, "id", "gateway")
	if err != nil {
		return err
	}
	var in newCommand
	if err := a.decode(r, &in); err != nil {
		return err
	}
	if in.Type == "" {
		return apperr.New(apperr.Invalid, "type", "is required")
	}
	switch in.Type {
	case protocol.CommandDeviceCommand:
		// Its result belongs in a device_commands row, which only the
		// device routes create with it.
		return apperr.New(apperr.Invalid, "type", "a device command is sent with POST /api/v2/devices/{id}/commands")
	case protocol.CommandDevicesUpdate:
		// The list is the devices rows'; a hand-made one would replace it.
		return apperr.New(apperr.Invalid, "type", "the device list is sent by the device routes whenever a device changes")
	}
	if in.Priority < -maxCommandPriority || in.Priority > maxCommandPriority {
		return apperr.New(apperr.Invalid, "priority", "must be from %d to %d", -maxCommandPriority, maxCommandPriority)
	}
	ttl, err := ttlOf(in.TTLSeconds)
	if err != nil {
		return err
	}
	if len(in.Payload) > 0 && string(in.Payload) == "null" {
		in.Payload = nil
	}
	return a.enqueue(w, r, c, gw, commandqueue.NewCommand{GatewayID: gw, Type: in.Type, Payload: in.Payload, Priority: in.Priority,
		TTL: ttl, MaxAttempts: in.MaxAttempts, CreatedBy: c.tenant.Actor}, "send")
}

// rotateKey is the (optional) body of POST /api/v2/gateways/{id}/rotate-key.
type rotateKey struct {
	OverlapSeconds int64  `json:"overlap_seconds,omitempty"`
	TTLSeconds     *int64 `json:"ttl_seconds,omitempty"`
}

// rotateGatewayKey queues a rotate_api_key command, as staffctl gateway
// rotate-key does (commandqueue.RotateKey): the gateway fetches its new
// key itself, so no key travels in the command or this answer.
func (a *api) rotateGatewayKey(w http.ResponseWriter, r *http.Request, c *caller) error {
	gw, err := pathUUID(r, "id", "gateway")
	if err != nil {
		return err
	}
	// The body is optional: none (or an empty one) takes the defaults.
	var in rotateKey
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		r.Body = io.NopCloser(bytes.NewReader(raw))
		if err := a.decode(r, &in); err != nil {
			return err
		}
	}
	ttl, err := ttlOf(in.TTLSeconds)
	if err != nil {
		return err
	}
	nc, err := commandqueue.RotateKey(gw, time.Duration(in.OverlapSeconds)*time.Second, ttl, c.tenant.Actor)
	if err != nil {
		return err
	}
	return a.enqueue(w, r, c, gw, nc, "rotate_key")
}

func (a *api) listCommands(w http.ResponseWriter, r *http.Request, c *caller) error {
	gw, err := pathUUID(r, "id", "gateway")
	if err != nil {
		return err
	}
	p, err := pageOf(r)
	if err != nil {
		return err
	}
	status, err := queryEnum(r, "status", commandStatuses)
	if err != nil {
		return err
	}
	f := commandqueue.PageFilter{GatewayID: gw, Limit: p.Limit + 1}
	if status != nil {
		f.Status = *status
	}
	if at, id, err := timeCursor(p.Cursor); err != nil {
		return err
	} else if id != nil {
		f.BeforeAt, f.BeforeID = at.Time, *id
	}
	var cmds []commandqueue.Command
	err = c.inTenant(r.Context(), func(tx pgx.Tx) error {
		if _, err := gatewayTx(r, tx, gw); err != nil {
			return err
		}
		cmds, err = a.queue.ListPageTx(r.Context(), tx, f)
		return err
	})
	if err != nil {
		return err
	}
	cmds, next := trimPage(cmds, p.Limit, func(last commandqueue.Command) any { return keyCursor{At: last.CreatedAt, ID: last.ID.String()} })
	out := make([]command, 0, len(cmds))
	for _, cmd := range cmds {
		out = append(out, commandOf(cmd))
	}
	writeJSON(w, http.StatusOK, newList(out, next))
	return nil
}

func (a *api) getCommand(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathUUID(r, "id", "command")
	if err != nil {
		return err
	}
	var out commandqueue.Command
	err = c.inTenant(r.Context(), func(tx pgx.Tx) error {
		out, err = a.queue.GetTx(r.Context(), tx, id)
		if errors.Is(err, commandqueue.ErrNotFound) {
			return apperr.New(apperr.NotFound, "", "no such command")
		}
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, commandOf(out))
	return nil
}

func (a *api) cancelCommand(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathUUID(r, "id", "command")
	if err != nil {
		return err
	}
	var out commandqueue.Command
	err = c.inTenant(r.Context(), func(tx pgx.Tx) error {
		out, err = a.queue.CancelTx(r.Context(), tx, id)
		switch {
		case errors.Is(err, commandqueue.ErrNotFound):
			return apperr.New(apperr.NotFound, "", "no such command")
		case errors.Is(err, commandqueue.ErrFinished):
			return apperr.New(apperr.Conflict, "", "the command is %s already: only a pending or delivered command can be cancelled", out.Status)
		case err != nil:
			return err
		}
		g, err := gatewayTx(r, tx, out.GatewayID)
		if err != nil {
			return err
		}
		return auditTx(r, tx, g.OrganizationID, "cancel", "gateway_command", id.String(), map[string]any{"gateway_id": out.GatewayID, "type": out.Type})
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, commandOf(out))
	return nil
}
