package logtest

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

func TestCheckLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, line string
		ok         bool
	}{
		{"plain record", `{"time":"2026-01-01T00:00:00Z","level":"INFO","msg":"hi","n":1}`, true},
		{"nested groups", `{"level":"INFO","msg":"m","a":{"b":{"c":1,"d":2},"c":3}}`, true},
		{"same name in two objects", `{"a":{"x":1},"b":{"x":2}}`, true},
		{"duplicate at top", `{"level":"ERROR","msg":"m","level":"critical"}`, false},
		{"duplicate in a group", `{"msg":"m","g":{"k":1,"k":2}}`, false},
		{"duplicate inside an array", `{"msg":"m","xs":[{"k":1,"k":1}]}`, false},
		{"text handler line", `time=2026-01-01T00:00:00Z level=INFO msg=hi`, false},
		{"plain text", `gateway: config: bad key`, false},
		{"not an object", `["level","INFO"]`, false},
		{"truncated", `{"level":"INFO","msg":`, false},
		{"two objects", `{"a":1}{"b":2}`, false},
	}
	for _, tt := range tests {
		if err := CheckLine([]byte(tt.line)); (err == nil) != tt.ok {
			t.Errorf("%s: CheckLine(%s) = %v, want ok=%v", tt.name, tt.line, err, tt.ok)
		}
	}
}

// recorder is a testing.TB that keeps its errors instead of failing.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) Helper() {}

func (r *recorder) Failed() bool { r.mu.Lock(); defer r.mu.Unlock(); return len(r.errs) > 0 }

func (r *recorder) Logf(string, ...any) {}

func (r *recorder) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

func TestNewFailsOnARepeatedKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		log  func(*slog.Logger)
		bad  int
	}{
		{"clean records", func(l *slog.Logger) {
			l.Info("a", "n", 1)
			l.WithGroup("g").Warn("b", "n", 2, slog.Group("h", "n", 3))
		}, 0},
		{"a level attribute beside slog's level", func(l *slog.Logger) { l.Error("back-pressure", "level", "critical") }, 1},
		{"With and the call repeat a key", func(l *slog.Logger) { l.With("gateway", 1).Info("m", "gateway", 2) }, 1},
		{"repeat inside a group", func(l *slog.Logger) { l.Info("m", slog.Group("g", "k", 1, "k", 2)) }, 1},
		{"debug records are checked too", func(l *slog.Logger) { l.Debug("m", "msg", "again") }, 1},
	}
	for _, tt := range tests {
		rec := &recorder{TB: t}
		tt.log(New(rec))
		if got := rec.errors(); len(got) != tt.bad {
			t.Errorf("%s: %d errors %q, want %d", tt.name, len(got), got, tt.bad)
		}
	}
}

func TestWriterJoinsLinesSplitAcrossWrites(t *testing.T) {
	t.Parallel()
	rec := &recorder{TB: t}
	w := Writer(rec, "child stderr")
	stream := `{"level":"INFO","msg":"one"}` + "\n" + `{"level":"INFO","msg":"two","msg":"dup"}` + "\n" + `panic: boom` + "\n" + `{"msg":"three"}`
	for i := 0; i < len(stream); i += 7 { // odd chunks, as a pipe delivers them
		_, _ = w.Write([]byte(stream[i:min(i+7, len(stream))]))
	}
	if got := rec.errors(); len(got) != 2 || !strings.Contains(got[0], "line 2") || !strings.Contains(got[1], "panic: boom") {
		t.Fatalf("errors %q, want line 2 (duplicate msg) and line 3 (not JSON)", got)
	}
	// An unterminated last line (a process killed in mid-write) is not
	// checked.
	_, _ = w.Write([]byte(`{"msg":"cut`))
	w.(*checker).finish()
	if got := rec.errors(); len(got) != 2 {
		t.Fatalf("an unterminated last line was reported: %q", got)
	}
	_, _ = w.Write([]byte("not json after the end\n"))
	if got := rec.errors(); len(got) != 2 {
		t.Fatalf("a line after the test's end was reported: %q", got)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	rec := &recorder{TB: t}
	Check(rec, strings.NewReader("{\"a\":1}\n\n{\"a\":1,\"b\":{\"a\":2,\"a\":3}}\nagent-api: listen: bad\n"))
	if got := rec.errors(); len(got) != 2 || !strings.Contains(got[0], "line 3") || !strings.Contains(got[1], "line 4") {
		t.Fatalf("errors %q, want lines 3 and 4", got)
	}
}
