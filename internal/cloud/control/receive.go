package control

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// Heartbeat bounds: what the gateway_status_snapshots and
// gateway_instances columns store.
const (
	maxVersions      = 32 // entries in a heartbeat's versions
	maxVersionKey    = 64 // characters
	maxVersionValue  = 50 // characters (gateway_instances.version)
	maxAckError      = 4000
	maxHeartbeatInts = math.MaxInt32 // queue_depth and connected_agents are PostgreSQL integers
)

// receive handles one inbound message and returns the error frame that
// answers it when it is refused, or nil when it was accepted.
func (h *Hub) receive(ctx context.Context, gw auth.Gateway, data []byte) *protocol.ControlError {
	var env protocol.Envelope
	if err := h.json.Unmarshal(data, &env); err != nil {
		msg := err.Error()
		if e := apperr.As(err); e != nil {
			msg = e.Message
		}
		return errorFrame("", "", apperr.New(apperr.Malformed, "", "not a JSON envelope: %s", msg))
	}
	refuse := func(field, msg string) *protocol.ControlError {
		return errorFrame(env.Type, "", apperr.Field(field, "%s", msg))
	}
	if env.V != protocol.ControlVersion {
		return refuse("v", fmt.Sprintf("unsupported envelope version %d; this server speaks %d", env.V, protocol.ControlVersion))
	}
	switch env.Type {
	case protocol.MsgHeartbeat:
		var hb protocol.Heartbeat
		if ce := h.decodeData(env, &hb); ce != nil {
			return ce
		}
		if field, msg := validateHeartbeat(&hb); field != "" {
			return refuse(field, msg)
		}
		h.heartbeat.Inc()
		if err := h.record(ctx, gw, &hb); err != nil {
			return h.dbRefusal(ctx, gw, env.Type, "", "record heartbeat", err)
		}
		return nil
	case protocol.MsgCommandAck:
		var a protocol.CommandAck
		if ce := h.decodeData(env, &a); ce != nil {
			return ce
		}
		if field, msg := validateAck(a); field != "" {
			ce := refuse(field, msg)
			ce.CommandID = a.CommandID
			return ce
		}
		if err := h.recordAck(ctx, gw, a); err != nil {
			if errors.Is(err, commandqueue.ErrNotFound) {
				return errorFrame(env.Type, a.CommandID, apperr.New(apperr.NotFound, "data.command_id", "no such command for this gateway"))
			}
			return h.dbRefusal(ctx, gw, env.Type, a.CommandID, "acknowledge command", err)
		}
		return nil
	case "":
		return refuse("type", "is required")
	}
	return refuse("type", fmt.Sprintf("unknown message type %q (this server accepts %s and %s)", env.Type, protocol.MsgHeartbeat, protocol.MsgCommandAck))
}

// decodeData decodes an envelope's data into v, naming the field at fault
// (data.<path>) when the decoder names one.
func (h *Hub) decodeData(env protocol.Envelope, v any) *protocol.ControlError {
	if len(env.Data) == 0 || bytes.Equal(env.Data, []byte("null")) {
		return errorFrame(env.Type, "", apperr.Field("data", "is required"))
	}
	if err := h.json.Unmarshal(env.Data, v); err != nil {
		e := apperr.As(err)
		if e == nil {
			e = &apperr.Error{Message: err.Error()}
		}
		if e.Field != "" && e.Field != "(body)" {
			return errorFrame(env.Type, "", apperr.Field("data."+e.Field, "%s", e.Message))
		}
		return errorFrame(env.Type, "", apperr.Field("data", "is not a valid %s: %s", env.Type, e.Message))
	}
	return nil
}

// errorFrame is the control channel's one mapping from a coded error to the
// error frame that answers a refused message: the same codes as the HTTP
// answers (a FieldError is validation_failed; Reason, when set, replaces
// the Code's wire code), retryable only when Unavailable.
func errorFrame(typ, commandID string, err error) *protocol.ControlError {
	e := apperr.As(err)
	if e == nil {
		e = &apperr.Error{Code: apperr.Internal, Message: "internal error"}
	}
	ce := &protocol.ControlError{Type: typ, CommandID: commandID, Field: e.Field, Message: e.Message}
	switch e.Code {
	case apperr.Invalid:
		ce.Code = protocol.ErrCodeValidation
	case apperr.Malformed:
		ce.Code = protocol.ErrCodeMalformed
	case apperr.TooLarge:
		ce.Code = protocol.ErrCodeTooLarge
	case apperr.NotFound:
		ce.Code = protocol.ErrCodeNotFound
	case apperr.Unavailable:
		ce.Code, ce.Retryable = protocol.ErrCodeUnavailable, true
	default:
		ce.Code = protocol.ErrCodeInternal
	}
	if e.Reason != "" {
		ce.Code = e.Reason
	}
	return ce
}

// cleanText reports why s cannot be stored as PostgreSQL text: invalid
// UTF-8, NUL, or more than max characters. "" when it can.
func cleanText(s string, max int) string {
	switch {
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case strings.ContainsRune(s, 0):
		return "contains a NUL character"
	case utf8.RuneCountInString(s) > max:
		return fmt.Sprintf("is longer than %d characters", max)
	}
	return ""
}

// validateHeartbeat returns the field and reason of what the database
// would refuse, or "" when it stores the heartbeat. Percentages out of
// 0..100 are clamped, not refused.
func validateHeartbeat(hb *protocol.Heartbeat) (field, msg string) {
	for _, f := range []struct {
		name string
		v    int
	}{{"queue_depth", hb.QueueDepth}, {"connected_agents", hb.ConnectedAgents}} {
		if f.v < 0 || f.v > maxHeartbeatInts {
			return "data." + f.name, fmt.Sprintf("must be between 0 and %d", maxHeartbeatInts)
		}
	}
	if len(hb.Versions) > maxVersions {
		return "data.versions", fmt.Sprintf("has more than %d entries", maxVersions)
	}
	for k, v := range hb.Versions {
		if why := cleanText(k, maxVersionKey); why != "" || k == "" {
			if why == "" {
				why = "is empty"
			}
			return "data.versions", "a name " + why
		}
		if why := cleanText(v, maxVersionValue); why != "" {
			return "data.versions." + k, why
		}
	}
	if len(hb.Devices) > protocol.MaxDevicesPerGateway {
		return "data.devices", fmt.Sprintf("has more than %d entries", protocol.MaxDevicesPerGateway)
	}
	for i, d := range hb.Devices {
		path := fmt.Sprintf("data.devices[%d].", i)
		switch {
		case d.ID <= 0:
			return path + "id", "must be a device id (positive)"
		case !slices.Contains(protocol.DeviceStatuses(), d.Status):
			return path + "status", fmt.Sprintf("must be one of %v", protocol.DeviceStatuses())
		}
		if why := cleanText(d.Serial, protocol.MaxShortField); why != "" {
			return path + "serial", why
		}
	}
	return "", ""
}

// validateAck returns the field and reason of what cannot be recorded, or
// "" when the acknowledgement is well formed.
func validateAck(a protocol.CommandAck) (field, msg string) {
	if _, err := uuid.Parse(a.CommandID); err != nil {
		return "data.command_id", "must be a command id (UUID)"
	}
	switch a.Phase {
	case protocol.AckReceived, protocol.AckCompleted, protocol.AckFailed:
	default:
		return "data.phase", "must be received, completed or failed"
	}
	if why := cleanText(a.Error, maxAckError); why != "" {
		return "data.error", why
	}
	if bytes.Contains(a.Result, []byte(`\u0000`)) {
		return "data.result", "contains a NUL character (\\u0000), which the database cannot store"
	}
	return "", ""
}

// isDataError reports whether err is the database refusing the data itself
// (SQLSTATE class 22, data exception, or 23, integrity constraint
// violation): sending the same again will fail again.
func isDataError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23"))
}

// dbRefusal is the error frame for a message the database did not record:
// validation_failed when it refused the data (never retryable), else
// unavailable and retryable. Either is logged.
func (h *Hub) dbRefusal(ctx context.Context, gw auth.Gateway, typ, commandID, what string, err error) *protocol.ControlError {
	var pe *pgconn.PgError
	if isDataError(err) && errors.As(err, &pe) {
		field := "data"
		if pe.ColumnName != "" {
			field = "data." + pe.ColumnName
		}
		h.logger.WarnContext(ctx, what+": refused by the database", "gateway", gw.ID, "sqlstate", pe.Code, "err", err)
		return errorFrame(typ, commandID, apperr.Field(field, "the database refused it: %s", pe.Message))
	}
	h.logger.ErrorContext(ctx, what+" failed", "gateway", gw.ID, "err", err)
	return errorFrame(typ, commandID, apperr.Wrap(apperr.Unavailable, err, "could not be recorded just now; send it again later"))
}
