package e2e_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi/agentapitest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/policy"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/edge/config"
	"github.com/staffcontrol/staffcontrol/internal/edge/devices"
	"github.com/staffcontrol/staffcontrol/internal/edge/devices/vendors"
	"github.com/staffcontrol/staffcontrol/internal/edge/devices/zkteco"
	"github.com/staffcontrol/staffcontrol/internal/edge/gateway"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/sim/agentsim"
	"github.com/staffcontrol/staffcontrol/internal/sim/zksim"
	"github.com/staffcontrol/staffcontrol/internal/tracing"
	"github.com/staffcontrol/staffcontrol/internal/tracing/otlpreceiver"
)

// traceWorld is a gateway and an Agent API, each with its own tracer
// provider exporting over OTLP/HTTP to one in-process receiver, as two
// services exporting to Tempo would.
type traceWorld struct {
	rcv      *otlpreceiver.Receiver
	gwTP     *tracing.Provider
	apiTP    *tracing.Provider
	agentTP  *tracing.Provider // the simulated agents'
	dashPool *pgxpool.Pool
	api      *agentapitest.API
	g        *gateway.Gateway
	secret   string
	orgID    int64
	gwID     uuid.UUID
	adminURL string
}

// traceWorldOptions adds to a trace world's gateway: its environment
// (gateway.yml's devices) and the shipped device adapters.
type traceWorldOptions struct {
	env     map[string]string
	devices bool
}

func newTraceWorld(t *testing.T) *traceWorld {
	t.Helper()
	return newTraceWorldWith(t, traceWorldOptions{})
}

func newTraceWorldWith(t *testing.T, o traceWorldOptions) *traceWorld {
	t.Helper()
	ctx := context.Background()
	w := &traceWorld{}
	var err error
	if w.rcv, err = otlpreceiver.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.rcv.Close() })
	newTP := func(service string) *tracing.Provider {
		p, err := tracing.FromEnv(ctx, func(k string) string {
			return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": w.rcv.BaseURL(), "OTEL_SERVICE_NAME": service}[k]
		}, "unused")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
		return p
	}
	w.gwTP, w.apiTP, w.agentTP = newTP("gateway"), newTP("agent-api"), newTP("agent")

	db := pg.NewDatabase(t)
	w.adminURL = db.AdminURL
	logger := logtest.New(t)
	ingPool, err := postgres.Connect(ctx, db.IngestURL, 10, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ingPool.Close)
	w.api = agentapitest.Start(t, ingPool, agentapitest.Options{Logger: logger, TracerProvider: w.apiTP})
	dash, err := postgres.Connect(ctx, db.DashboardURL, 2, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dash.Close)
	w.dashPool = dash
	acc := accounts.New(pg.Pool(t, db.PlatformAdminURL, 2), time.Now)
	admin := accounts.Actor{Name: "e2e", Tenant: postgres.Tenant{Role: postgres.AppAdmin}}
	org, err := acc.CreateOrganization(ctx, admin, "Traced", "")
	if err != nil {
		t.Fatal(err)
	}
	w.orgID = org.ID
	w.secret = newEnrolmentSecret(t, dash, org.ID)
	regn, err := acc.RegisterGateway(ctx, admin, org.ID, "GW-TRACE", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	w.gwID = regn.GatewayID
	dir := t.TempDir()
	env := map[string]string{
		"STAFF_GATEWAY_SERVER_URL":                      w.api.URL,
		"STAFF_GATEWAY_ORGANIZATION_ID":                 strconv.FormatInt(org.ID, 10),
		"STAFF_GATEWAY_ORGANIZATION_PROVISIONING_TOKEN": regn.ProvisioningToken,
		"STAFF_GATEWAY_GATEWAY_SERIAL":                  "GW-TRACE",
		"STAFF_GATEWAY_GATEWAY_LISTEN":                  "127.0.0.1:0",
		"STAFF_GATEWAY_GATEWAY_GRPC_LISTEN":             "off",
		"STAFF_GATEWAY_BUFFER_PATH":                     filepath.Join(dir, "buffer.sqlite"),
		"STAFF_GATEWAY_UPLINK_FLUSH_INTERVAL":           "100ms",
		"STAFF_GATEWAY_UPLINK_BACKOFF_INITIAL":          "20ms",
		"STAFF_GATEWAY_UPLINK_BACKOFF_MAX":              "200ms",
	}
	for k, v := range o.env {
		env[k] = v
	}
	cfg, err := config.Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	deps := gateway.Deps{Logger: logger, Version: "e2e", TracerProvider: w.gwTP}
	if o.devices {
		deps.DeviceFactories = vendors.Factories(logger)
	}
	w.g, err = gateway.New(ctx, cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.g.Stop(sctx)
	})
	return w
}

// spans flushes both providers and waits until the receiver holds a span of
// each name, returning the spans by name (the last of a name wins).
func (w *traceWorld) spans(t *testing.T, names ...string) map[string]otlpreceiver.Span {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_ = w.gwTP.ForceFlush(context.Background())
		_ = w.apiTP.ForceFlush(context.Background())
		_ = w.agentTP.ForceFlush(context.Background())
		by := map[string]otlpreceiver.Span{}
		for _, s := range w.rcv.Spans() {
			by[s.Name] = s
		}
		missing := ""
		for _, n := range names {
			if _, ok := by[n]; !ok {
				missing = n
			}
		}
		if missing == "" {
			if errs := w.rcv.Errors(); len(errs) > 0 {
				t.Fatalf("the receiver refused exports: %v", errs)
			}
			return by
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s span among %d received: %+v", missing, len(w.rcv.Spans()), w.rcv.Spans())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// One agent event's spans form a single trace across the agent, the
// gateway and the cloud: the agent's batch (its W3C traceparent on the
// request) → collector → upload (gateway) → ingest → insert (Agent API), each
// the parent of the next, exported over OTLP to a real receiver; the spans
// carry ids, never the event's window title or URL (issue 19).
func TestOneEventIsOneTraceAcrossGatewayAndCloud(t *testing.T) {
	t.Parallel()
	w := newTraceWorld(t)
	ctx := context.Background()
	var acked []string
	if _, err := agentsim.Run(ctx, agentsim.Options{GatewayURL: "http://" + w.g.Addr(), EnrolmentSecret: w.secret, Agents: 1, BatchSize: 1, MaxEvents: 1,
		Logger: logtest.New(t), TracerProvider: w.agentTP, Observe: func(ids []string, o agentsim.Outcome) {
			if o == agentsim.Acked {
				acked = append(acked, ids...)
			}
		}}); err != nil {
		t.Fatal(err)
	}
	if len(acked) != 1 {
		t.Fatalf("acknowledged %d events, want 1", len(acked))
	}
	conn, err := pgx.Connect(ctx, w.adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// The stored row's personal data, which no span may carry.
	var private []string
	deadline := time.Now().Add(30 * time.Second)
	for len(private) == 0 {
		rows, err := conn.Query(ctx, `SELECT coalesce(window_title, ''), coalesce(url, ''), coalesce(process_name, '') FROM monitoring.active_windows WHERE id = $1
			UNION ALL SELECT coalesce(title, ''), coalesce(url, ''), '' FROM monitoring.visited_sites WHERE id = $1
			UNION ALL SELECT coalesce(user_sid, ''), coalesce(session_type, ''), '' FROM monitoring.user_sessions WHERE id = $1`, acked[0])
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var a, b, c string
			if err := rows.Scan(&a, &b, &c); err != nil {
				t.Fatal(err)
			}
			private = append(private, "stored")
			for _, v := range []string{a, b, c} {
				if v != "" {
					private = append(private, v)
				}
			}
		}
		rows.Close()
		if time.Now().After(deadline) {
			t.Fatalf("event %s not stored", acked[0])
		}
		if len(private) == 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	private = private[1:]

	by := w.spans(t, "agent.send_batch", "collector.accept_events", "uplink.upload", "ingest.batch", "ingest.insert")
	agent, col, up, batch, ins := by["agent.send_batch"], by["collector.accept_events"], by["uplink.upload"], by["ingest.batch"], by["ingest.insert"]
	for _, c := range []struct {
		span          otlpreceiver.Span
		service       string
		parent        string
		parentService string
	}{
		// The agent's traceparent: the collector continues its trace.
		{agent, "agent", "", ""},
		{col, "gateway", agent.SpanID, "agent.send_batch"},
		{up, "gateway", col.SpanID, "collector.accept_events"},
		{batch, "agent-api", up.SpanID, "uplink.upload"},
		{ins, "agent-api", batch.SpanID, "ingest.batch"},
	} {
		if c.span.TraceID != col.TraceID {
			t.Errorf("%s is in trace %s, want %s (the agent batch's)", c.span.Name, c.span.TraceID, col.TraceID)
		}
		if c.span.Service != c.service {
			t.Errorf("%s exported by %q, want %q", c.span.Name, c.span.Service, c.service)
		}
		if c.span.ParentSpanID != c.parent {
			t.Errorf("%s's parent is %s, want %s (%s)", c.span.Name, c.span.ParentSpanID, c.parent, c.parentService)
		}
	}
	if ins.Attributes[tracing.AttrOrganization] != strconv.FormatInt(w.orgID, 10) || ins.Attributes[tracing.AttrGateway] == "" ||
		ins.Attributes[tracing.AttrBatch] == "" || ins.Attributes[tracing.AttrBatch] != up.Attributes[tracing.AttrBatch] {
		t.Errorf("insert span attributes %v, upload's %v: want the organisation, gateway and the same batch id", ins.Attributes, up.Attributes)
	}
	for _, s := range w.rcv.Spans() {
		for k, v := range s.Attributes {
			for _, p := range private {
				if len(p) >= 4 && strings.Contains(v, p) {
					t.Errorf("span %s attribute %s carries the event's %q", s.Name, k, p)
				}
			}
		}
	}
	t.Logf("trace %s: %d spans, private values checked: %q", col.TraceID, len(w.rcv.Spans()), private)
}

// A command is one trace from its enqueue to its recorded result: the
// enqueuer's span (here a stand-in for the Dashboard API's request) →
// the gateway's control.command → executor.execute, and the Agent API's
// control.record_result under the gateway's span, whose acknowledgement
// carried it (issue 19).
func TestCommandIsOneTraceFromEnqueueToResult(t *testing.T) {
	t.Parallel()
	w := newTraceWorld(t)
	ctx, enqueue := w.apiTP.Tracer("e2e").Start(context.Background(), "dashboard.enqueue", trace.WithSpanKind(trace.SpanKindServer))
	tenant := postgres.Tenant{OrganizationID: w.orgID}
	cmd, err := w.api.Queue.Enqueue(ctx, tenant, commandqueue.NewCommand{GatewayID: w.gwID, Type: protocol.CommandReplayDeadLetters,
		Payload: []byte(`{}`), CreatedBy: "e2e"})
	enqueue.End()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := w.api.Queue.Get(context.Background(), tenant, cmd.ID)
		if err != nil {
			t.Fatal(err)
		}
		if c.Status == commandqueue.StatusCompleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("command still %s", c.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	by := w.spans(t, "dashboard.enqueue", "control.command", "executor.execute", "control.record_result")
	enq, ctl, exe, rec := by["dashboard.enqueue"], by["control.command"], by["executor.execute"], by["control.record_result"]
	for _, c := range []struct {
		span    otlpreceiver.Span
		service string
		parent  string
	}{
		{ctl, "gateway", enq.SpanID},
		{exe, "gateway", ctl.SpanID},
		{rec, "agent-api", ctl.SpanID},
	} {
		if c.span.TraceID != enq.TraceID || c.span.ParentSpanID != c.parent || c.span.Service != c.service {
			t.Errorf("%s: trace %s parent %s service %s, want trace %s parent %s service %s", c.span.Name,
				c.span.TraceID, c.span.ParentSpanID, c.span.Service, enq.TraceID, c.parent, c.service)
		}
	}
	if ctl.Attributes[tracing.AttrCommand] != cmd.ID.String() || rec.Attributes[tracing.AttrCommand] != cmd.ID.String() ||
		rec.Attributes[tracing.AttrOrganization] != strconv.FormatInt(w.orgID, 10) {
		t.Errorf("command attributes: gateway %v, cloud %v", ctl.Attributes, rec.Attributes)
	}
}

// flush exports what every provider of the world holds.
func (w *traceWorld) flush() {
	_ = w.gwTP.ForceFlush(context.Background())
	_ = w.apiTP.ForceFlush(context.Background())
	_ = w.agentTP.ForceFlush(context.Background())
}

// find waits until the receiver holds a span named name that match accepts
// (any when nil) and returns it.
func (w *traceWorld) find(t *testing.T, name string, match func(otlpreceiver.Span) bool) otlpreceiver.Span {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		w.flush()
		for _, s := range w.rcv.Spans() {
			if s.Name == name && (match == nil || match(s)) {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no matching %s span among %d received: %+v", name, len(w.rcv.Spans()), w.rcv.Spans())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// childOf waits for a span named name that is parent's child in its trace.
func (w *traceWorld) childOf(t *testing.T, parent otlpreceiver.Span, name string) otlpreceiver.Span {
	t.Helper()
	return w.find(t, name, func(s otlpreceiver.Span) bool { return s.TraceID == parent.TraceID && s.ParentSpanID == parent.SpanID })
}

// checkNoValues fails when a span attribute's value is one of values (the
// personal data the traced path carried).
func (w *traceWorld) checkNoValues(t *testing.T, values []string) {
	t.Helper()
	for _, s := range w.rcv.Spans() {
		for k, v := range s.Attributes {
			if slices.Contains(values, v) {
				t.Errorf("span %s attribute %s carries %q", s.Name, k, v)
			}
		}
	}
}

// A screenshot is one trace from the agent to the stored row: the agent's
// upload (its traceparent on the request) → collector.accept_screenshot →
// the gateway's upload of the screenshot stream (the buffer kept the
// collector's context with the row) → ingest.batch → ingest.insert.
func TestScreenshotIsOneTraceFromAgentToRow(t *testing.T) {
	t.Parallel()
	w := newTraceWorld(t)
	res, err := agentsim.Run(context.Background(), agentsim.Options{GatewayURL: "http://" + w.g.Addr(), EnrolmentSecret: w.secret, Agents: 1,
		BatchSize: 1, MaxEvents: 2, ScreenshotEvery: 1, ScreenshotBytes: 8 << 10, Logger: logtest.New(t), TracerProvider: w.agentTP})
	if err != nil {
		t.Fatal(err)
	}
	if res.Screenshots != 1 {
		t.Fatalf("%d screenshots acknowledged, want 1", res.Screenshots)
	}
	shot := w.find(t, "agent.send_screenshot", nil)
	col := w.childOf(t, shot, "collector.accept_screenshot")
	up := w.childOf(t, col, "uplink.upload")
	batch := w.childOf(t, up, "ingest.batch")
	ins := w.childOf(t, batch, "ingest.insert")
	if up.Attributes[tracing.AttrStream] != "screenshots" || col.Service != "gateway" || batch.Service != "agent-api" {
		t.Errorf("upload stream %q, collector service %q, ingest service %q", up.Attributes[tracing.AttrStream], col.Service, batch.Service)
	}
	if ins.Attributes[tracing.AttrOrganization] != strconv.FormatInt(w.orgID, 10) || ins.Attributes[tracing.AttrBatch] != up.Attributes[tracing.AttrBatch] {
		t.Errorf("insert attributes %v, upload's %v", ins.Attributes, up.Attributes)
	}
	t.Logf("trace %s: agent → collector → upload → ingest → insert", shot.TraceID)
}

// A door terminal's events are one trace from the gateway's append to the
// stored rows: devices.append_events (a ZKTeco simulator's log, read by
// the catch-up) → uplink.upload of the device stream → ingest.batch →
// ingest.insert; no card or employee number in any attribute.
func TestDeviceEventsAreOneTraceFromAppendToRow(t *testing.T) {
	t.Parallel()
	zk := startZK(t, zksim.Options{Records: 3})
	raw, err := json.Marshal([]devices.Config{localDevice(t, "zk-trace", zkteco.Type, zk.Addr(), zkSettings())})
	if err != nil {
		t.Fatal(err)
	}
	w := newTraceWorldWith(t, traceWorldOptions{devices: true, env: map[string]string{
		"STAFF_GATEWAY_DEVICES":                 string(raw),
		"STAFF_GATEWAY_DEVICE_CALL_TIMEOUT":     "3s",
		"STAFF_GATEWAY_DEVICE_CATCHUP_INTERVAL": "2s",
		"STAFF_GATEWAY_DEVICE_BACKOFF_INITIAL":  "100ms",
		"STAFF_GATEWAY_DEVICE_BACKOFF_MAX":      "1s",
	}})
	app := w.find(t, "devices.append_events", nil)
	up := w.childOf(t, app, "uplink.upload")
	batch := w.childOf(t, up, "ingest.batch")
	ins := w.childOf(t, batch, "ingest.insert")
	if app.Service != "gateway" || app.Attributes[tracing.AttrAdapterType] != zkteco.Type || app.Attributes[tracing.AttrEvents] == "" {
		t.Errorf("append span %s attributes %v", app.Service, app.Attributes)
	}
	if up.Attributes[tracing.AttrStream] != "device-events" || ins.Attributes[tracing.AttrOrganization] != strconv.FormatInt(w.orgID, 10) {
		t.Errorf("upload attributes %v, insert's %v", up.Attributes, ins.Attributes)
	}
	var private []string
	for _, r := range zk.Records() {
		private = append(private, r.UserID)
	}
	w.checkNoValues(t, private)
	t.Logf("trace %s: append → upload → ingest → insert; user ids checked: %v", app.TraceID, private)
}

// A policy release is one trace to every command it causes: the release
// request's span (a stand-in for the Dashboard API's) → Distribute
// enqueues policy_update, and the Agent API's advancer, in its own loop,
// enqueues restart_agent once the gateway applied the version (the
// distribution kept the request's traceparent, 00042); the gateway's
// control.command spans of both are the release span's children.
func TestPolicyReleaseIsOneTraceToEveryCommand(t *testing.T) {
	t.Parallel()
	w := newTraceWorld(t)
	ctx := context.Background()
	pol, err := policy.New(w.dashPool)
	if err != nil {
		t.Fatal(err)
	}
	actor := accounts.Actor{Name: "hr", Tenant: postgres.Tenant{OrganizationID: w.orgID, Role: postgres.AppOrgAdmin}}
	p, err := pol.Create(ctx, actor, "Traced", []byte(`{"screenshots":{"enabled":true,"interval_seconds":300}}`))
	if err != nil {
		t.Fatal(err)
	}
	v, err := pol.Release(ctx, actor, p.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	q, err := commandqueue.New(w.dashPool, commandqueue.Options{}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	rctx, release := w.apiTP.Tracer("e2e").Start(ctx, "dashboard.release", trace.WithSpanKind(trace.SpanKindServer))
	if _, err := policy.NewDistributor(w.dashPool, q).Distribute(rctx, actor, p.ID, v.Version, nil, 0); err != nil {
		t.Fatal(err)
	}
	release.End()
	rel := w.spans(t, "dashboard.release")["dashboard.release"]
	conn, err := pgx.Connect(ctx, w.adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	ids := map[string]string{}
	waitUntil(t, "the advancer's restart_agent", 60*time.Second, func() bool {
		rows, err := conn.Query(ctx, `SELECT type, id::text FROM gateway_commands WHERE organization_id = $1`, w.orgID)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var typ, id string
			if err := rows.Scan(&typ, &id); err != nil {
				t.Fatal(err)
			}
			ids[typ] = id
		}
		return ids[protocol.CommandRestartAgent] != ""
	})
	for _, typ := range []string{protocol.CommandPolicyUpdate, protocol.CommandRestartAgent} {
		id := ids[typ]
		ctl := w.find(t, "control.command", func(s otlpreceiver.Span) bool { return s.Attributes[tracing.AttrCommand] == id })
		if ctl.TraceID != rel.TraceID || ctl.ParentSpanID != rel.SpanID || ctl.Service != "gateway" {
			t.Errorf("%s %s: control.command in trace %s under %s (%s), want trace %s under the release span %s",
				typ, id, ctl.TraceID, ctl.ParentSpanID, ctl.Service, rel.TraceID, rel.SpanID)
		}
	}
}

// An agent's batch over gRPC continues the agent's trace too: its
// traceparent travels in the StreamEvents call's metadata.
func TestGRPCAgentBatchContinuesTheAgentsTrace(t *testing.T) {
	t.Parallel()
	w := newTraceWorldWith(t, traceWorldOptions{env: map[string]string{"STAFF_GATEWAY_GATEWAY_GRPC_LISTEN": "127.0.0.1:0"}})
	res, err := agentsim.Run(context.Background(), agentsim.Options{GatewayURL: "http://" + w.g.Addr(), GRPCAddr: w.g.GRPCAddr(), Transport: "grpc",
		EnrolmentSecret: w.secret, Agents: 1, BatchSize: 1, MaxEvents: 1, Logger: logtest.New(t), TracerProvider: w.agentTP})
	if err != nil {
		t.Fatal(err)
	}
	if res.Acked != 1 {
		t.Fatalf("%d events acknowledged over gRPC, want 1", res.Acked)
	}
	agent := w.find(t, "agent.send_batch", nil)
	col := w.childOf(t, agent, "collector.accept_events")
	up := w.childOf(t, col, "uplink.upload")
	w.childOf(t, up, "ingest.batch")
	if agent.Service != "agent" || col.Service != "gateway" {
		t.Errorf("services %q, %q", agent.Service, col.Service)
	}
}
