package protocol

import (
	"net/http"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
)

// ErrorFor is the wire answer to a coded error, from gateway and cloud
// alike: the HTTP status of its Code and the ErrorResponse — the Code's
// wire code (the error's Reason replaces it when set), its field and
// message. invalid is the status of apperr.Invalid, the one that differs by
// server: 422 from the cloud, 400 from the gateway's collector. A code
// without a status of its own (apperr.Internal) is 500 internal.
func ErrorFor(e *apperr.Error, invalid int) (int, ErrorResponse) {
	status, wire := errorStatus(e.Code, invalid)
	if e.Reason != "" {
		wire = e.Reason
	}
	return status, ErrorResponse{Error: wire, Field: e.Field, Message: e.Message}
}

// errorStatus is a Code's HTTP status and default wire code.
func errorStatus(c apperr.Code, invalid int) (int, string) {
	switch c {
	case apperr.Invalid:
		return invalid, ErrCodeValidation
	case apperr.Malformed:
		return http.StatusBadRequest, ErrCodeMalformed
	case apperr.TooLarge:
		return http.StatusRequestEntityTooLarge, ErrCodeTooLarge
	case apperr.UnsupportedType:
		return http.StatusUnsupportedMediaType, ErrCodeUnsupportedType
	case apperr.Unauthenticated:
		return http.StatusUnauthorized, ErrCodeUnauthorized
	case apperr.Forbidden:
		return http.StatusForbidden, ErrCodeForbidden
	case apperr.NotFound:
		return http.StatusNotFound, ErrCodeNotFound
	case apperr.Conflict:
		return http.StatusConflict, string(apperr.Conflict)
	case apperr.Throttled:
		return http.StatusTooManyRequests, ErrCodeThrottled
	case apperr.Unavailable:
		return http.StatusServiceUnavailable, ErrCodeUnavailable
	}
	return http.StatusInternalServerError, ErrCodeInternal
}
