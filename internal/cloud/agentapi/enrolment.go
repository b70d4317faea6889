package agentapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/enrolment"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// enrolmentHandler serves GET /v2/gateway/enrolment: the verifier of the
// gateway's organisation's agent enrolment secret (never the secret).
func enrolmentHandler(e *enrolment.Service, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		gw, _ := auth.GatewayFrom(r.Context())
		v, err := e.Verifier(r.Context(), gw.OrganizationID)
		if err != nil {
			log.ErrorContext(r.Context(), "enrolment verifier", "err", err, "gateway", gw.ID)
			writeError(w, http.StatusServiceUnavailable, protocol.ErrorResponse{Error: protocol.ErrCodeUnavailable, Message: "temporarily unavailable; retry"})
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		service.WriteJSON(w, http.StatusOK, v)
	}
}

// agentEnrolledHandler serves POST /v2/gateway/agents: the gateway reports
// an agent enrolled at it (204); 422 names a bad field.
func agentEnrolledHandler(e *enrolment.Service, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		gw, _ := auth.GatewayFrom(r.Context())
		var a protocol.AgentEnrolled
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10)).Decode(&a); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeError(w, http.StatusRequestEntityTooLarge, protocol.ErrorResponse{Error: protocol.ErrCodeTooLarge, Message: fmt.Sprintf("body exceeds %d bytes", mbe.Limit)})
				return
			}
			writeError(w, http.StatusBadRequest, protocol.ErrorResponse{Error: protocol.ErrCodeMalformed, Message: "body is not a valid agent report: " + err.Error()})
			return
		}
		for _, f := range []struct {
			name, v  string
			required bool
		}{{"agent_uid", a.AgentUID, true}, {"computer_name", a.ComputerName, false}} {
			if err := protocol.CheckText(f.name, f.v, f.required, protocol.MaxShortField); err != nil {
				writeError(w, http.StatusUnprocessableEntity, protocol.ErrorResponse{Error: protocol.ErrCodeValidation, Field: f.name, Message: err.Error()})
				return
			}
		}
		if a.EnrolledAt.IsZero() || a.EnrolledAt.After(time.Now().Add(time.Hour)) {
			writeError(w, http.StatusUnprocessableEntity, protocol.ErrorResponse{Error: protocol.ErrCodeValidation, Field: "enrolled_at", Message: "must be a time not in the future"})
			return
		}
		if err := e.RecordAgent(r.Context(), gw.OrganizationID, gw.ID, a); err != nil {
			log.ErrorContext(r.Context(), "record agent enrolment", "err", err, "gateway", gw.ID)
			writeError(w, http.StatusServiceUnavailable, protocol.ErrorResponse{Error: protocol.ErrCodeUnavailable, Message: "temporarily unavailable; retry"})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}
