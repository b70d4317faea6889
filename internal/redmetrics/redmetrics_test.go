package redmetrics_test

import (
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/staffcontrol/staffcontrol/internal/redmetrics"
)

// TestHTTP serves a real mux on loopback and checks the labels: the
// pattern, never the raw path; the status written, or 200 when none was;
// 101 for an upgrade; unmatched for a path no pattern takes; OTHER for an
// unknown method.
func TestHTTP(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := redmetrics.NewHTTP(reg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.PathValue("id")) })
	mux.HandleFunc("POST /items", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	mux.HandleFunc("GET /quiet", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		f, ok := w.(http.Flusher)
		if !ok {
			t.Error("the recorder hides http.Flusher")
			return
		}
		_, _ = io.WriteString(w, "data: x\n\n")
		f.Flush()
	})
	up := websocket.Upgrader{}
	mux.HandleFunc("GET /socket", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		_ = c.Close()
	})
	m.Init("GET /items/{id}", "POST /items", "/no-method")
	srv := httptest.NewServer(m.Handler(mux))
	defer srv.Close()

	// Before any request: the initialised series exist at zero.
	if got := value(t, reg, "http_requests_total", map[string]string{"route": "/items", "method": "POST", "code": "503"}); got != 0 {
		t.Fatalf("pre-initialised 503 = %v, want 0", got)
	}
	for _, req := range []struct{ method, path string }{
		{"GET", "/items/1"}, {"GET", "/items/2"}, {"POST", "/items"}, {"GET", "/quiet"}, {"GET", "/stream"},
		{"GET", "/nowhere/42"}, {"BREW", "/items"},
	} {
		r, _ := http.NewRequest(req.method, srv.URL+req.path, nil)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/socket", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _, _ = ws.ReadMessage()
	ws.Close()

	for _, c := range []struct {
		route, method, code string
		want                float64
	}{
		{"/items/{id}", "GET", "200", 2},
		{"/items", "POST", "503", 1},
		{"/quiet", "GET", "200", 1},
		{"/stream", "GET", "200", 1},
		{redmetrics.Unmatched, "GET", "404", 1},
		{redmetrics.Unmatched, "OTHER", "405", 1},
		{"/socket", "GET", "101", 1},
		{"/items/{id}", "GET", "500", 0},
	} {
		if got := value(t, reg, "http_requests_total", map[string]string{"route": c.route, "method": c.method, "code": c.code}); got != c.want {
			t.Errorf("http_requests_total{route=%q,method=%q,code=%q} = %v, want %v", c.route, c.method, c.code, got, c.want)
		}
	}
	// No raw path became a label.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if strings.Contains(l.GetValue(), "/items/1") || strings.Contains(l.GetValue(), "/nowhere") || l.GetValue() == "/no-method" {
					t.Errorf("%s has label %s=%q", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// value is the counter's value of the series with exactly these labels,
// or -1 when there is none.
func value(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, mt := range mf.GetMetric() {
			if len(mt.GetLabel()) != len(labels) {
				continue
			}
			for _, p := range mt.GetLabel() {
				if labels[p.GetName()] != p.GetValue() {
					continue series
				}
			}
			return mt.GetCounter().GetValue()
		}
	}
	return -1
}

// series counts the series of a metric family.
func series(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

func TestRouteAndMethod(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, route string }{
		{"", redmetrics.Unmatched}, {"GET /a/{id}", "/a/{id}"}, {"/console/", "/console/"}, {"POST example.com/x", "example.com/x"},
	} {
		if got := redmetrics.Route(c.in); got != c.route {
			t.Errorf("Route(%q) = %q, want %q", c.in, got, c.route)
		}
	}
	for _, c := range []struct{ in, want string }{{"GET", "GET"}, {"PATCH", "PATCH"}, {"get", "OTHER"}, {"PROPFIND", "OTHER"}} {
		if got := redmetrics.Method(c.in); got != c.want {
			t.Errorf("Method(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	for _, c := range []struct{ in, svc, meth string }{
		{"/staffcontrol.agent.v1.Collector/StreamEvents", "staffcontrol.agent.v1.Collector", "StreamEvents"}, {"bad", "unknown", "bad"},
	} {
		if s, m := redmetrics.SplitMethod(c.in); s != c.svc || m != c.meth {
			t.Errorf("SplitMethod(%q) = %q, %q", c.in, s, m)
		}
	}
}

// TestGRPC serves the standard health service on loopback: unary calls
// and a stream are counted with their status codes, and Init creates every
// method's series before a call.
func TestGRPC(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := redmetrics.NewGRPC(reg)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(m.ServerOptions()...)
	hs := health.NewServer()
	hs.SetServingStatus("ok", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	m.Init(s)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	defer s.Stop()
	const svc = "grpc.health.v1.Health"
	if n := series(t, reg, "grpc_server_handling_seconds"); n < 2 {
		t.Fatalf("after Init: %d histogram series, want one per method", n)
	}
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := healthpb.NewHealthClient(conn)
	ctx := context.Background()
	if _, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: "ok"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: "missing"}); err == nil {
		t.Fatal("want NotFound")
	}
	wctx, cancel := context.WithCancel(ctx)
	st, err := c.Watch(wctx, &healthpb.HealthCheckRequest{Service: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	want := map[string]float64{"Check/OK": 1, "Check/NotFound": 1, "Watch/Canceled": 1}
	for _, m := range []string{"Check", "Watch", "List"} {
		for _, code := range []string{"Internal", "Unavailable"} {
			want[m+"/"+code] = 0
		}
	}
	// The stream's end reaches the server a moment after the cancel.
	var got map[string]float64
	for range 100 {
		got = map[string]float64{}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "grpc_server_handled_total" {
				continue
			}
			for _, mt := range mf.GetMetric() {
				l := map[string]string{}
				for _, p := range mt.GetLabel() {
					l[p.GetName()] = p.GetValue()
				}
				if l["grpc_service"] != svc {
					t.Errorf("grpc_service %q", l["grpc_service"])
				}
				got[l["grpc_method"]+"/"+l["grpc_code"]] = mt.GetCounter().GetValue()
			}
		}
		if maps.Equal(got, want) {
			return
		}
		waitABit()
	}
	t.Fatalf("grpc_server_handled_total = %v, want %v", got, want)
}

func waitABit() { <-time.After(20 * time.Millisecond) }
