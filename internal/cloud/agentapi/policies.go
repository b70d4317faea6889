package agentapi

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/policy"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// policyHandler serves GET /v2/gateway/policies/{id}[?version=X]: a
// released version of a policy of the gateway's organisation (the latest
// when no version is named), with its checksum as ETag.
func policyHandler(docs *policy.ReleasedCache) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		gw, _ := auth.GatewayFrom(r.Context())
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil || id <= 0 {
			service.WriteError(w, apperr.New(apperr.Malformed, "id", "must be a policy id").WithReason(protocol.ErrCodeValidation))
			return
		}
		version := r.URL.Query().Get("version")
		doc, err := docs.Released(r.Context(), postgres.Tenant{OrganizationID: gw.OrganizationID}, id, version)
		if errors.Is(err, policy.ErrNotFound) {
			// Another organisation's policy is as absent as a missing one.
			service.WriteError(w, apperr.New(apperr.NotFound, "id", "no such policy version"))
			return
		}
		if err != nil {
			service.WriteError(w, apperr.New(apperr.Unavailable, "", "temporarily unavailable"))
			return
		}
		etag := `"` + doc.Checksum + `"`
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		service.WriteJSON(w, http.StatusOK, doc)
	}
}
