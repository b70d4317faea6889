package apperr

import (
	"errors"
	"fmt"
	"testing"
)

func TestCodeOf(t *testing.T) {
	cause := errors.New("connection refused")
	tests := []struct {
		name string
		err  error
		want Code
	}{
		{"nil", nil, ""},
		{"plain", cause, ""},
		{"coded", New(NotFound, "id", "no such command"), NotFound},
		{"wrapped coded", fmt.Errorf("step: %w", Wrap(Unavailable, cause, "retry")), Unavailable},
		{"field error", Field("name", "is required"), Invalid},
		{"wrapped field error", fmt.Errorf("create: %w", &FieldError{"slug", "taken"}), Invalid},
		{"field errors", FieldErrors{Field("a", "x"), Field("b", "y")}, Invalid},
		{"joined", errors.Join(cause, New(Conflict, "", "in flight")), Conflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CodeOf(tt.err); got != tt.want {
				t.Fatalf("CodeOf(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestErrorIsAs(t *testing.T) {
	cause := errors.New("disk full")
	err := fmt.Errorf("store: %w", &Error{Code: Unavailable, Reason: "buffer_full", Message: "retry later", Err: cause})
	if !errors.Is(err, &Error{Code: Unavailable}) || !errors.Is(err, &Error{Code: Unavailable, Reason: "buffer_full"}) {
		t.Fatal("errors.Is by code and reason")
	}
	if errors.Is(err, &Error{Code: NotFound}) || errors.Is(err, &Error{Code: Unavailable, Reason: "shedding"}) {
		t.Fatal("errors.Is matched another code or reason")
	}
	if !errors.Is(err, cause) {
		t.Fatal("the cause is not in the chain")
	}
	if e := As(err); e == nil || e.Reason != "buffer_full" {
		t.Fatalf("As: %v", e)
	}
	if got, want := err.Error(), "store: unavailable buffer_full: retry later: disk full"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	fe := As(fmt.Errorf("x: %w", Field("events[3].type", "is required")))
	if fe == nil || fe.Code != Invalid || fe.Field != "events[3].type" || fe.Message != "is required" {
		t.Fatalf("As(FieldError) = %+v", fe)
	}
	if As(cause) != nil {
		t.Fatal("As of an uncoded error")
	}
}

func TestFieldErrors(t *testing.T) {
	var l FieldErrors
	if l.Err() != nil {
		t.Fatal("empty list is an error")
	}
	l = append(l, Field("a", "is required"), Field("b[1]", "is too long"))
	err := fmt.Errorf("validate: %w", l.Err())
	if got, want := err.Error(), "validate: a: is required; b[1]: is too long"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "a" {
		t.Fatalf("errors.As finds the first field: %v", fe)
	}
}
