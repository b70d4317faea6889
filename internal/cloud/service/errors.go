package service

import (
	"math"
	"net/http"
	"strconv"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// ErrorResponse is the one mapping of the cloud's services from an error to
// an HTTP status and the wire's protocol.ErrorResponse: a coded error
// (apperr.Error, apperr.FieldError) by its Code, Reason, field and message;
// any other error is 500 internal, its text not shown (the caller logs it).
func ErrorResponse(err error) (int, protocol.ErrorResponse) {
	e := apperr.As(err)
	if e == nil {
		e = &apperr.Error{Code: apperr.Internal, Message: "internal error"}
	}
	return protocol.ErrorFor(e, http.StatusUnprocessableEntity)
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
