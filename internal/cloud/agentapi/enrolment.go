package agentapi

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/enrolment"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/jsondecode"
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
			service.WriteError(w, unavailable())
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		service.WriteJSON(w, http.StatusOK, v)
	}
}

// agentEnrolledHandler serves POST /v2/gateway/agents: the gateway reports
// an agent enrolled at it (204); 422 names a bad field.
func agentEnrolledHandler(e *enrolment.Service, log *slog.Logger) http.HandlerFunc {
	body := jsondecode.New(jsondecode.IgnoreUnknownFields(), jsondecode.CaseInsensitiveNames(), jsondecode.Lenient())
	return func(w http.ResponseWriter, r *http.Request) {
		gw, _ := auth.GatewayFrom(r.Context())
		var a protocol.AgentEnrolled
		if err := body.Decode(http.MaxBytesReader(w, r.Body, 16<<10), &a); err != nil {
			// This route answers every decode failure but size 400
			// malformed_body, a wrong type included.
			if e := apperr.As(err); e != nil && e.Code != apperr.TooLarge {
				err = &apperr.Error{Code: apperr.Malformed, Field: e.Field, Message: "body is not a valid agent report: " + e.Message, Err: err}
			}
			service.WriteError(w, err)
			return
		}
		for _, f := range []struct {
			name, v  string
			required bool
		}{{"agent_uid", a.AgentUID, true}, {"computer_name", a.ComputerName, false}} {
			if err := protocol.CheckText(f.name, f.v, f.required, protocol.MaxShortField); err != nil {
				service.WriteError(w, apperr.Field(f.name, "%s", err.Error()))
				return
			}
		}
		if a.EnrolledAt.IsZero() || a.EnrolledAt.After(time.Now().Add(time.Hour)) {
			service.WriteError(w, apperr.Field("enrolled_at", "must be a time not in the future"))
			return
		}
		if err := e.RecordAgent(r.Context(), gw.OrganizationID, gw.ID, a); err != nil {
			log.ErrorContext(r.Context(), "record agent enrolment", "err", err, "gateway", gw.ID)
			service.WriteError(w, unavailable())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}
