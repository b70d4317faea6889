package dashboard

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// errorBody is the one error shape of the Dashboard API, for every 4xx and
// 5xx: a stable code, a message for people, the field at fault and the
// request's id (also in X-Request-ID) for support.
type errorBody struct {
	// Code is a stable machine code (validation_failed, not_found, …).
	Code string `json:"code"`
	// Message says what went wrong and, where it can, what to do.
	Message string `json:"message"`
	// Field is a JSON Pointer (RFC 6901) to the member of the request body
	// at fault ("/identities/2/value"), or the name of the query parameter
	// or header at fault ("cursor", "If-Match"); absent when no one field is.
	Field string `json:"field,omitempty"`
	// RequestID identifies the request in the logs.
	RequestID string `json:"request_id"`
}

// paramError marks an error whose field names a query parameter or
// header, not a member of the body: writeError keeps its name as it is.
type paramError struct{ err error }

func (p paramError) Error() string { return p.err.Error() }
func (p paramError) Unwrap() error { return p.err }

// inParams marks err's field, if any, as a query parameter's or header's.
func inParams(err error) error {
	if err == nil {
		return nil
	}
	return paramError{err}
}

// Codes the shared mapping (protocol.ErrorFor) has no word for.
const (
	codePreconditionFailed   = "precondition_failed"
	codePreconditionRequired = "precondition_required"
)

// writeError answers err in the one error shape. A coded error answers
// its status; anything else is a 500 whose text is logged, not shown.
func (a *api) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		err = apperr.New(apperr.TooLarge, "", "the request body is over %d bytes", tooBig.Limit)
	}
	e := apperr.As(err)
	if e == nil {
		a.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err,
			"request_id", service.RequestIDFrom(r.Context()))
		e = &apperr.Error{Code: apperr.Internal, Message: "internal error"}
	}
	status, wire := protocol.ErrorFor(e, http.StatusUnprocessableEntity)
	switch e.Reason {
	case codePreconditionFailed:
		status = http.StatusPreconditionFailed
	case codePreconditionRequired:
		status = http.StatusPreconditionRequired
	}
	if status >= 500 && e.Code != apperr.Internal {
		a.logger.Warn("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	field := wire.Field
	var pe paramError
	if field != "" && !errors.As(err, &pe) {
		field = jsonPointer(field)
	}
	if e.RetryAfter > 0 {
		w.Header().Set(protocol.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="staffcontrol"`)
	}
	service.WriteJSON(w, status, errorBody{Code: wire.Error, Message: wire.Message, Field: field,
		RequestID: service.RequestIDFrom(r.Context())})
}

// jsonPointer turns the field names the services use ("email",
// "identities[2].value", "identities/2/value", "events.3.user_sid") into
// a JSON Pointer ("/identities/2/value"), escaping "~" in a member name as
// RFC 6901 says ("/" always separates). A name already starting with "/" is
// kept.
func jsonPointer(field string) string {
	if strings.HasPrefix(field, "/") {
		return field
	}
	segs := strings.FieldsFunc(field, func(r rune) bool { return r == '.' || r == '/' || r == '[' || r == ']' })
	var b strings.Builder
	for _, seg := range segs {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(seg, "~", "~0"))
	}
	return b.String()
}
