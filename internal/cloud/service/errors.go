package service

import (
	"math"
	"net/http"
	"strconv"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// cloudStatus is a Code's HTTP status and default wire code in the cloud's
// services (the Agent API, its ingest handlers, the Dashboard API). An
// error's Reason, when set, replaces the wire code.
func cloudStatus(c apperr.Code) (int, string) {
	switch c {
	case apperr.Invalid:
		return http.StatusUnprocessableEntity, protocol.ErrCodeValidation
	case apperr.Malformed:
		return http.StatusBadRequest, protocol.ErrCodeMalformed
	case apperr.TooLarge:
		return http.StatusRequestEntityTooLarge, protocol.ErrCodeTooLarge
	case apperr.UnsupportedType:
		return http.StatusUnsupportedMediaType, protocol.ErrCodeUnsupportedType
	case apperr.Unauthenticated:
		return http.StatusUnauthorized, protocol.ErrCodeUnauthorized
	case apperr.Forbidden:
		return http.StatusForbidden, protocol.ErrCodeForbidden
	case apperr.NotFound:
		return http.StatusNotFound, protocol.ErrCodeNotFound
	case apperr.Conflict:
		return http.StatusConflict, string(apperr.Conflict)
	case apperr.Throttled:
		return http.StatusTooManyRequests, protocol.ErrCodeThrottled
	case apperr.Unavailable:
		return http.StatusServiceUnavailable, protocol.ErrCodeUnavailable
	}
	return http.StatusInternalServerError, protocol.ErrCodeInternal
}

// ErrorResponse is the one mapping of the cloud's services from an error to
// an HTTP status and the wire's protocol.ErrorResponse: a coded error
// (apperr.Error, apperr.FieldError) by its Code, Reason, field and message;
// any other error is 500 internal, its text not shown (the caller logs it).
func ErrorResponse(err error) (int, protocol.ErrorResponse) {
	e := apperr.As(err)
	if e == nil {
		e = &apperr.Error{Code: apperr.Internal, Message: "internal error"}
	}
	status, wire := cloudStatus(e.Code)
	if e.Reason != "" {
		wire = e.Reason
	}
	return status, protocol.ErrorResponse{Error: wire, Field: e.Field, Message: e.Message}
}

// WriteError answers err as ErrorResponse maps it, with Retry-After (whole
// seconds, rounded up) when the error carries one.
func WriteError(w http.ResponseWriter, err error) int {
	status, body := ErrorResponse(err)
	if e := apperr.As(err); e != nil && e.RetryAfter > 0 {
		w.Header().Set(protocol.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
	WriteJSON(w, status, body)
	return status
}
