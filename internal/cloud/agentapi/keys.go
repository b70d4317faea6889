package agentapi

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/jsondecode"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// rotateKeyHandler serves POST /v2/gateway/keys/rotate: a new pending key
// for the gateway that asks with its current key. The answer carries the
// key once; only its hash is stored.
func rotateKeyHandler(gws *auth.Gateways, logger *slog.Logger) http.HandlerFunc {
	dec := jsondecode.New(jsondecode.IgnoreUnknownFields(), jsondecode.CaseInsensitiveNames(), jsondecode.Lenient())
	return func(w http.ResponseWriter, r *http.Request) {
		gw, _ := auth.GatewayFrom(r.Context())
		var req protocol.KeyRotateRequest
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
		if err != nil {
			service.WriteError(w, apperr.New(apperr.TooLarge, "", "body over 64 KiB"))
			return
		}
		if len(strings.TrimSpace(string(body))) > 0 {
			if err := dec.Unmarshal(body, &req); err != nil {
				service.WriteError(w, err)
				return
			}
		}
		commandID := uuid.Nil
		if req.CommandID != "" {
			if commandID, err = uuid.Parse(req.CommandID); err != nil {
				service.WriteError(w, apperr.Field("command_id", "must be a command id (UUID)"))
				return
			}
		}
		overlap := time.Duration(req.OverlapSeconds) * time.Second
		if req.OverlapSeconds != 0 && (overlap < auth.MinKeyOverlap || overlap > auth.MaxKeyOverlap) {
			service.WriteError(w, apperr.Field("overlap_seconds", "must be between 60 and 604800"))
			return
		}
		rot, err := gws.RotateKey(r.Context(), gw, r.Header.Get(protocol.HeaderAPIKey), commandID, overlap)
		if err != nil {
			writeKeyError(w, r, logger, "rotate", err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		if rot.Rotated {
			service.WriteJSON(w, http.StatusOK, protocol.KeyRotateResponse{Status: protocol.KeyStatusRotated, KeyPrefix: rot.KeyPrefix})
			return
		}
		logger.InfoContext(r.Context(), "gateway api key rotation: pending key issued", "gateway", gw.ID, "organization", gw.OrganizationID,
			"key_prefix", rot.KeyPrefix, "expires_at", rot.ExpiresAt, "command", req.CommandID)
		exp := rot.ExpiresAt.UTC()
		service.WriteJSON(w, http.StatusOK, protocol.KeyRotateResponse{Status: protocol.KeyStatusPending, APIKey: rot.APIKey, KeyPrefix: rot.KeyPrefix, ExpiresAt: &exp})
	}
}

// confirmKeyHandler serves POST /v2/gateway/keys/confirm, made with the new
// key: authenticating it promoted the key (the old one is revoked from
// then on); this answers which key is current.
func confirmKeyHandler(gws *auth.Gateways, logger *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		gw, _ := auth.GatewayFrom(r.Context())
		_, _ = io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 64<<10))
		c, err := gws.ConfirmKey(r.Context(), gw, r.Header.Get(protocol.HeaderAPIKey))
		if err != nil {
			writeKeyError(w, r, logger, "confirm", err)
			return
		}
		resp := protocol.KeyConfirmResponse{GatewayID: gw.ID.String(), KeyPrefix: c.KeyPrefix, RotatedAt: c.RotatedAt.UTC()}
		if c.CommandID != uuid.Nil {
			resp.CommandID = c.CommandID.String()
		}
		logger.InfoContext(r.Context(), "gateway api key rotation confirmed", "gateway", gw.ID, "organization", gw.OrganizationID,
			"key_prefix", c.KeyPrefix, "command", resp.CommandID)
		service.WriteJSON(w, http.StatusOK, resp)
	}
}

func writeKeyError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, step string, err error) {
	switch {
	case errors.Is(err, auth.ErrUnauthorized):
		err = apperr.New(apperr.Unauthenticated, protocol.HeaderAPIKey, "unknown or revoked API key")
	case errors.Is(err, auth.ErrCommandNotFound):
		err = apperr.New(apperr.NotFound, "command_id", "no such rotate_api_key command for this gateway")
	case errors.Is(err, auth.ErrKeyConflict):
		err = apperr.New(apperr.Conflict, "", "%s", strings.TrimPrefix(err.Error(), auth.ErrKeyConflict.Error()+": ")).WithReason(protocol.ErrCodeKeyConflict)
	default:
		logger.ErrorContext(r.Context(), "gateway api key rotation failed", "step", step, "err", err)
		err = &apperr.Error{Code: apperr.Unavailable, Message: "temporarily unavailable; retry", RetryAfter: 5 * time.Second, Err: err}
	}
	service.WriteError(w, err)
}
