package service

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/redmetrics"
)

// Instrument wraps mux with the RED metrics of every route
// (http_requests_total{route,method,code}, http_request_duration_seconds
// {route,method}; see internal/redmetrics) registered on reg, the series
// of patterns created before the first request. It must wrap the mux
// itself: other middleware goes outside it.
func Instrument(mux *http.ServeMux, reg prometheus.Registerer, patterns ...string) (http.Handler, error) {
	m, err := redmetrics.NewHTTP(reg)
	if err != nil {
		return nil, fmt.Errorf("http metrics: %w", err)
	}
	m.Init(patterns...)
	return m.Handler(mux), nil
}

var dependencyUpDesc = prometheus.NewDesc("dependency_up",
	"1 when the dependency answered the service's check at this scrape (within 2 s), else 0.", []string{"dependency"}, nil)

// dependencyCollector runs the checks at each scrape, concurrently, under
// one timeout: dependency health is as fresh as the scrape.
type dependencyCollector struct{ checks []Check }

// Describe sends the one descriptor.
func (d *dependencyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- dependencyUpDesc }

// Collect runs the checks.
func (d *dependencyCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range d.checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			up := 1.0
			if err := c.Run(ctx); err != nil {
				up = 0
			}
			if m, err := prometheus.NewConstMetric(dependencyUpDesc, prometheus.GaugeValue, up, c.Name); err == nil {
				ch <- m
			}
		}()
	}
	wg.Wait()
}
