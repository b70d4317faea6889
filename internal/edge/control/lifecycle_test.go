package control

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle/lifecycletest"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

func TestClientKeepsTheLifecycleContract(t *testing.T) {
	// A cloud that refuses every dial: the client keeps reconnecting
	// until it is stopped.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	lifecycletest.Conformance(t, func(t *testing.T) lifecycle.Service {
		return New(Options{SocketURL: "ws" + strings.TrimPrefix(srv.URL, "http"), BaseURL: srv.URL, APIKey: func() string { return "k" },
			Heartbeat: func() protocol.Heartbeat { return protocol.Heartbeat{} },
			Config:    Config{BackoffInitial: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}, Logger: logtest.New(t)})
	})
}
