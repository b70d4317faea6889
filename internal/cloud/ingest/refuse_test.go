package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// TestDataErrorsArePermanentAndNotStoreFailures: SQLSTATE classes 22 and
// 23 are data errors (answered 422, never counted towards the fallback
// switch); connection, resource, shutdown, serialisation and deadlock
// errors are not (answered 503).
func TestDataErrorsArePermanentAndNotStoreFailures(t *testing.T) {
	t.Parallel()
	pe := func(code, msg string) error {
		return fmt.Errorf("insert active_window: %w", &pgconn.PgError{Code: code, Message: msg})
	}
	tests := []struct {
		name         string
		err          error
		data, noPart bool
	}{
		{"NUL in text", pe("22021", `invalid byte sequence for encoding "UTF8": 0x00`), true, false},
		{"value too long", pe("22001", "value too long for type character varying(20)"), true, false},
		{"numeric out of range", pe("22003", "integer out of range"), true, false},
		{"no partition", pe("23514", `no partition of relation "active_windows" found for row`), true, true},
		{"check constraint", pe("23514", `new row for relation "x" violates check constraint "y"`), true, false},
		{"not null", pe("23502", `null value in column "title"`), true, false},
		{"connection lost", pe("08006", "connection failure"), false, false},
		{"too many connections", pe("53300", "too many connections"), false, false},
		{"admin shutdown", pe("57P01", "terminating connection due to administrator command"), false, false},
		{"serialization failure", pe("40001", "could not serialize access"), false, false},
		{"deadlock", pe("40P01", "deadlock detected"), false, false},
		{"permission denied", pe("42501", "permission denied"), false, false},
		{"network", &net.OpError{Op: "read", Err: errors.New("reset")}, false, false},
		{"timeout", context.DeadlineExceeded, false, false},
	}
	for _, tt := range tests {
		_, data := dataError(tt.err)
		if data != tt.data {
			t.Errorf("%s: data error = %v, want %v", tt.name, data, tt.data)
		}
		if data && timeseries.IsStoreFailure(tt.err) {
			t.Errorf("%s: a data error counts as a store failure (would switch to fallback)", tt.name)
		}
		if got := noPartition(tt.err); got != tt.noPart {
			t.Errorf("%s: no partition = %v, want %v", tt.name, got, tt.noPart)
		}
	}
}

// TestSharedTextRuleRefusesWhatPostgreSQLRefuses: the cloud relies on
// protocol's text rule (no second pass of its own) for every stored field.
func TestSharedTextRuleRefusesWhatPostgreSQLRefuses(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want bool
	}{{"", false}, {"plain", false}, {"Ünïcødé ✓ 😀", false}, {"a\x00b", true}, {"\x00", true}, {"bad\xffutf8", true}, {"\uFFFD", false}} {
		if got := protocol.CheckText("f", tt.in, false, 1000) != nil; got != tt.want {
			t.Errorf("CheckText(%q) refuses = %v, want %v", tt.in, got, tt.want)
		}
	}
}
