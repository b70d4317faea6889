package service

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/logging/planted"
)

// The logger the Agent API, the Dashboard API and staffctl up build
// (NewLogger) keeps every planted secret out (issue 19's scrubber test).
func TestNewLoggerScrubsPlantedSecrets(t *testing.T) {
	for _, svc := range []string{"agent-api", "dashboard-api", "staffctl-up"} {
		t.Run(svc, func(t *testing.T) {
			var buf bytes.Buffer
			planted.Log(NewLogger(&buf, slog.LevelDebug, svc))
			planted.Check(t, buf.String(), false)
			if got := strings.Count(buf.String(), `"service":"`+svc+`"`); got != planted.Lines {
				t.Errorf("service on %d of %d lines:\n%s", got, planted.Lines, buf.String())
			}
		})
	}
}

// A record logged with a request's context carries its request id.
func TestLoggerCarriesRequestID(t *testing.T) {
	var buf bytes.Buffer
	log := NewLogger(&buf, slog.LevelInfo, "agent-api")
	h := RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.InfoContext(r.Context(), "handled")
	}))
	req := httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/x", nil)
	req.Header.Set(HeaderRequestID, "proxy-id-7")
	h.ServeHTTP(httptest.NewRecorder(), req)
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if m["request_id"] != "proxy-id-7" {
		t.Fatalf("request_id = %v in %s", m["request_id"], buf.String())
	}
}
