package deploycheck_test

import (
	"bufio"
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/bench/stack"
	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
	"github.com/staffcontrol/staffcontrol/internal/cloud/dashboard"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/edge/gateway"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/sim/agentsim"
)

// TestRulesAndDashboardsNameExportedMetrics: every metric a rule or a
// dashboard panel names is exported by a service. What the services
// export is read from their /metrics after they ran: an Agent API (behind
// bench/stack, on real PostgreSQL), a provisioned gateway with HTTP and
// gRPC intake that simulated agents sent events through, and a Dashboard
// API. Series that appear only under conditions a test run does not reach
// (TimescaleDB's jobs, fallback, a refusal of a kind) count when the
// metric is declared in the services' code (a prometheus …Opts Name or
// NewDesc literal under internal/, tests excluded): those are logged.
func TestRulesAndDashboardsNameExportedMetrics(t *testing.T) {
	rules := loadRules(t)
	uses := append(ruleUses(rules), dashboardUses(t)...)
	if len(uses) < 50 {
		t.Fatalf("only %d metric uses found: the readers are broken", len(uses))
	}
	live := liveNames(t)
	for _, want := range []string{"http_requests_total", "http_request_duration_seconds", "dependency_up", "grpc_server_handled_total",
		"gateway_buffer_usage_ratio", "control_connected_gateways", "ingest_events_total", "gateway_uplink_batches_total",
		"command_queue_depth", "command_queue_oldest_seconds"} {
		if !live[want] {
			t.Errorf("%s is not exported by the running services", want)
		}
	}
	declared := declaredNames(t)
	exported := map[string]bool{}
	for n := range live {
		exported[n] = true
	}
	for n := range declared {
		exported[n] = true
	}
	if ms := missing(uses, exported, recordedNames(rules)); len(ms) > 0 {
		t.Errorf("rules or dashboards name metrics no service exports:\n%s", report(ms))
	}
	if conditional := missing(uses, live, recordedNames(rules)); len(conditional) > 0 {
		t.Logf("declared in code, not seen in this run (conditional series):\n%s", report(conditional))
	}
}

// liveNames starts the services, drives a little traffic and reads the
// metric families of their /metrics.
func liveNames(t *testing.T) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	logger := logtest.New(t)
	s, err := stack.Start(ctx, stack.Options{Replicas: 1, PoolSize: 4, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	org, err := s.NewOrganization(ctx, "Deploy Check", "deploy-check")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := s.RegisterGateway(ctx, org.ID, "GW-DEPLOYCHECK-1")
	if err != nil {
		t.Fatal(err)
	}
	env := s.GatewayEnv(reg, t.TempDir(), "127.0.0.1:0")
	env["STAFF_GATEWAY_UPLINK_FLUSH_INTERVAL"] = "100ms"
	env["STAFF_GATEWAY_GATEWAY_GRPC_LISTEN"] = "127.0.0.1:0"
	g, err := stack.StartGateway(ctx, env, gateway.Deps{Logger: logger, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = g.Stop(context.Background()) }()
	if _, err := agentsim.Run(ctx, agentsim.Options{GatewayURL: "http://" + g.Addr(), EnrolmentSecret: org.EnrolmentSecret,
		Agents: 1, BatchSize: 20, MaxEvents: 40}); err != nil {
		t.Fatal(err)
	}
	// The gateway uploads what the agents sent (the ingest's series appear
	// with the first stored batch).
	for deadline := time.Now().Add(time.Minute); !scrape(t, s.Replicas[0].URL+"/metrics")["ingest_events_total"]; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the gateway's upload did not reach the Agent API within a minute")
		}
	}
	key, err := accesstoken.GenerateKey("deploycheck")
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := accesstoken.New(accesstoken.Config{Issuer: "deploycheck", Audience: "deploycheck", Keys: []accesstoken.Key{key}})
	if err != nil {
		t.Fatal(err)
	}
	api, err := dashboard.NewAPI(dashboard.Deps{DB: s.Admin(), Tokens: tokens, Logger: logger, Registry: service.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	dash := httptest.NewServer(api)
	defer dash.Close()
	// A refused request, so the Dashboard API's routes see traffic too.
	if resp, err := http.Get(dash.URL + "/api/v2/me"); err == nil {
		resp.Body.Close()
	}
	names := map[string]bool{}
	for _, u := range []string{s.Replicas[0].URL + "/metrics", "http://" + g.Addr() + "/metrics", dash.URL + "/metrics"} {
		for n := range scrape(t, u) {
			names[n] = true
		}
	}
	return names
}

// scrape reads the series names of a /metrics answer (from its # TYPE
// lines: a family with series has one).
func scrape(t *testing.T, url string) map[string]bool {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	out := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			addSeries(out, f[2], f[3])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("GET %s: no metric families", url)
	}
	return out
}

// declaredNames are the metric names declared in the non-test code under
// internal/: the Name of a prometheus CounterOpts, GaugeOpts,
// HistogramOpts or SummaryOpts literal and the first argument of
// prometheus.NewDesc, when they are string literals.
func declaredNames(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(filepath.Join(root, "internal"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CompositeLit:
				sel, ok := n.Type.(*ast.SelectorExpr)
				if !ok || !isPkg(sel.X, "prometheus") || !strings.HasSuffix(sel.Sel.Name, "Opts") {
					return true
				}
				typ := strings.TrimSuffix(strings.ToLower(strings.TrimSuffix(sel.Sel.Name, "Opts")), "vec")
				for _, e := range n.Elts {
					if kv, ok := e.(*ast.KeyValueExpr); ok && isIdent(kv.Key, "Name") {
						if s, ok := stringLit(kv.Value); ok {
							addSeries(out, s, typ)
						}
					}
				}
			case *ast.CallExpr:
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok && isPkg(sel.X, "prometheus") && sel.Sel.Name == "NewDesc" && len(n.Args) > 0 {
					if s, ok := stringLit(n.Args[0]); ok {
						out[s] = true
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 50 {
		t.Fatalf("only %d declared metric names found: the scan is broken", len(out))
	}
	return out
}

func isPkg(e ast.Expr, name string) bool { id, ok := e.(*ast.Ident); return ok && id.Name == name }

func isIdent(e ast.Expr, name string) bool { id, ok := e.(*ast.Ident); return ok && id.Name == name }

func stringLit(e ast.Expr) (string, bool) {
	bl, ok := e.(*ast.BasicLit)
	if !ok || bl.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(bl.Value)
	return s, err == nil
}
