package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
)

// TestDependencyHealth: dependency_up follows each check at every scrape;
// a failing optional check leaves the service ready (listed as degraded),
// a failing required one does not.
func TestDependencyHealth(t *testing.T) {
	t.Parallel()
	var dbDown, storeDown atomic.Bool
	check := func(down *atomic.Bool) func(context.Context) error {
		return func(context.Context) error {
			if down.Load() {
				return errors.New("down")
			}
			return nil
		}
	}
	reg := service.NewRegistry()
	mux := http.NewServeMux()
	service.HealthRoutes(mux, reg, service.Check{Name: "postgres", Run: check(&dbDown)},
		service.Check{Name: "storage", Run: check(&storeDown), Optional: true})
	h, err := service.Instrument(mux, reg, service.HealthPatterns()...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		db, store   bool
		ready       int
		degraded    bool
		pg, storage string
	}{
		{false, false, 200, false, "1", "1"},
		{false, true, 200, true, "1", "0"},
		{true, false, 503, false, "0", "1"},
	} {
		dbDown.Store(c.db)
		storeDown.Store(c.store)
		code, body := get("/health/ready")
		if code != c.ready {
			t.Errorf("db down %v, store down %v: ready %d %s, want %d", c.db, c.store, code, body, c.ready)
		}
		var v map[string]any
		_ = json.Unmarshal([]byte(body), &v)
		if _, ok := v["degraded"]; ok != c.degraded {
			t.Errorf("db down %v, store down %v: degraded in %s: %v", c.db, c.store, body, ok)
		}
		_, metrics := get("/metrics")
		for dep, want := range map[string]string{"postgres": c.pg, "storage": c.storage} {
			if line := `dependency_up{dependency="` + dep + `"} ` + want; !strings.Contains(metrics, line) {
				t.Errorf("db down %v, store down %v: /metrics lacks %s", c.db, c.store, line)
			}
		}
		// The health routes' own series: the ready route counted by its
		// pattern, with the 503 series there from the start.
		for _, line := range []string{`http_requests_total{code="503",method="GET",route="/health/ready"}`,
			`http_request_duration_seconds_count{method="GET",route="/metrics"}`} {
			if !strings.Contains(metrics, line) {
				t.Errorf("/metrics lacks %s", line)
			}
		}
	}
	// A second Instrument on the same registry is refused, not a panic.
	if _, err := service.Instrument(http.NewServeMux(), reg); err == nil {
		t.Error("a second Instrument on one registry succeeded")
	}
}
