package service

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

func TestErrorResponse(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		want   protocol.ErrorResponse
	}{
		{"field error", fmt.Errorf("check: %w", apperr.Field("events[3].type", "is required")), 422,
			protocol.ErrorResponse{Error: protocol.ErrCodeValidation, Field: "events[3].type", Message: "is required"}},
		{"malformed", apperr.New(apperr.Malformed, "Content-Encoding", "body is not valid gzip"), 400,
			protocol.ErrorResponse{Error: protocol.ErrCodeMalformed, Field: "Content-Encoding", Message: "body is not valid gzip"}},
		{"reason replaces the wire code", apperr.New(apperr.Conflict, protocol.HeaderIdempotencyKey, "in flight").WithReason(protocol.ErrCodeIdemInFlight), 409,
			protocol.ErrorResponse{Error: protocol.ErrCodeIdemInFlight, Field: protocol.HeaderIdempotencyKey, Message: "in flight"}},
		{"too large", apperr.New(apperr.TooLarge, "", "body exceeds 10 bytes"), 413, protocol.ErrorResponse{Error: protocol.ErrCodeTooLarge, Message: "body exceeds 10 bytes"}},
		{"unsupported", apperr.New(apperr.UnsupportedType, "Content-Type", "must be application/json"), 415,
			protocol.ErrorResponse{Error: protocol.ErrCodeUnsupportedType, Field: "Content-Type", Message: "must be application/json"}},
		{"unauthenticated", apperr.New(apperr.Unauthenticated, protocol.HeaderAPIKey, "not authenticated"), 401,
			protocol.ErrorResponse{Error: protocol.ErrCodeUnauthorized, Field: protocol.HeaderAPIKey, Message: "not authenticated"}},
		{"not found", apperr.New(apperr.NotFound, "id", "no such policy version"), 404, protocol.ErrorResponse{Error: protocol.ErrCodeNotFound, Field: "id", Message: "no such policy version"}},
		{"unavailable", apperr.Wrap(apperr.Unavailable, errors.New("db down"), "retry"), 503, protocol.ErrorResponse{Error: protocol.ErrCodeUnavailable, Message: "retry"}},
		{"uncoded hides its text", errors.New("secret detail"), 500, protocol.ErrorResponse{Error: protocol.ErrCodeInternal, Message: "internal error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, got := ErrorResponse(tt.err)
			if status != tt.status || got != tt.want {
				t.Fatalf("got %d %+v, want %d %+v", status, got, tt.status, tt.want)
			}
		})
	}
}

func TestWriteErrorRetryAfter(t *testing.T) {
	w := httptest.NewRecorder()
	WriteError(w, &apperr.Error{Code: apperr.Unavailable, Message: "retry", RetryAfter: 4500 * time.Millisecond})
	if w.Code != 503 || w.Header().Get(protocol.HeaderRetryAfter) != "5" || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %v", w.Code, w.Header())
	}
}
