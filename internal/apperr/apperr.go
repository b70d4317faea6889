// Package apperr is the one error vocabulary of edge and cloud: a coded
// Error (what went wrong, as a Code each server maps to its status once),
// and FieldError, bad input naming the field at fault. It imports only the
// standard library, so both sides use it without joining each other.
//
// Code that does the work returns these errors (storage code included: no
// HTTP status is chosen inside a transaction); each server turns them into
// a status and a protocol.ErrorResponse in one function.
package apperr

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Code says what kind of failure an Error is, independently of transport.
// Each server maps a Code to one HTTP status (the Agent API and the
// collector differ only for Invalid: 422 and 400).
type Code string

// The codes. Retryable: Unavailable (and Throttled after its delay); every
// other code is permanent for the same request.
const (
	// Invalid is well-formed input that breaks a rule (a FieldError's code).
	Invalid Code = "invalid"
	// Malformed is input that cannot be read: not JSON, not gzip, a bad
	// header value.
	Malformed Code = "malformed"
	// TooLarge is input over a size or count limit.
	TooLarge Code = "too_large"
	// UnsupportedType is a Content-Type or Content-Encoding not served.
	UnsupportedType Code = "unsupported_type"
	// Unauthenticated is a missing, unknown or revoked credential.
	Unauthenticated Code = "unauthenticated"
	// Forbidden is an authenticated caller acting beyond its rights.
	Forbidden Code = "forbidden"
	// NotFound is a row that does not exist or is not visible to the caller.
	NotFound Code = "not_found"
	// Conflict is a request that does not fit the current state (a key in
	// flight, a rotation step out of order, a duplicate name).
	Conflict Code = "conflict"
	// Throttled is a caller refused for a while (RetryAfter says how long).
	Throttled Code = "throttled"
	// Unavailable is a temporary failure a retry may cure.
	Unavailable Code = "unavailable"
	// Internal is a bug or an unexpected failure.
	Internal Code = "internal"
)

// Error is a coded failure: the Code decides the status, Reason (when set)
// is the stable machine code the wire carries instead of the Code's
// default (e.g. buffer_full, idempotency_key_reused), Field names the input
// at fault and Message explains. Err is the cause, if any (not shown to
// clients; errors.Is and errors.As see it).
type Error struct {
	Code       Code
	Reason     string
	Field      string
	Message    string
	RetryAfter time.Duration // a retry's earliest time, for Unavailable and Throttled
	Err        error
}

// New returns an Error of code with a message made from format and a.
func New(code Code, field, format string, a ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, a...)}
}

// WithReason sets the wire's machine code of e (e.g. buffer_full) and
// returns e.
func (e *Error) WithReason(reason string) *Error {
	e.Reason = reason
	return e
}

// Wrap returns an Error of code whose cause is err.
func Wrap(code Code, err error, message string) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// Error implements error: "code[ reason]: [field: ]message[: cause]".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(string(e.Code))
	if e.Reason != "" {
		b.WriteString(" " + e.Reason)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Message)
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error of the same Code (and of the same
// Reason when target names one), so errors.Is(err, &apperr.Error{Code:
// apperr.NotFound}) matches any not-found error.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Reason == "" || t.Reason == e.Reason)
}

// FieldError is input that breaks a rule, naming the field at fault by its
// JSON path (events[3].user_sid, payload.overlap_seconds). Its Code is
// Invalid.
type FieldError struct {
	Field   string
	Message string
}

// Field returns a FieldError with a message made from format and a.
func Field(field, format string, a ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, a...)}
}

// Error implements error: "field: message".
func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// FieldErrors is several fields at fault at once, in the order found. Its
// Code is Invalid; errors.As finds each *FieldError in it.
type FieldErrors []*FieldError

// Error implements error: the fields' errors joined by "; ".
func (l FieldErrors) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "; ")
}

// Unwrap returns the FieldErrors as errors.
func (l FieldErrors) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// Err returns l as an error, or nil when l is empty.
func (l FieldErrors) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// CodeOf returns the Code of the first coded error in err's chain: an
// Error's Code, Invalid for a FieldError or FieldErrors, "" for an error
// that carries none (the server's answer to those is its Internal or
// Unavailable default).
func CodeOf(err error) Code {
	for err != nil {
		switch e := err.(type) {
		case *Error:
			return e.Code
		case *FieldError, FieldErrors:
			return Invalid
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if c := CodeOf(e); c != "" {
					return c
				}
			}
			return ""
		default:
			return ""
		}
	}
	return ""
}

// As returns err as an *Error: the first *Error in its chain, or a
// FieldError's equivalent (Code Invalid, its field and message); nil when
// err carries no code.
func As(err error) *Error {
	var e *Error
	var fe *FieldError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e):
		return e
	case errors.As(err, &fe):
		return &Error{Code: Invalid, Field: fe.Field, Message: fe.Message, Err: err}
	}
	return nil
}
