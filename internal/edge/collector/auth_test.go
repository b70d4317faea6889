package collector

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/protocol/agentpb"
)

// route is one agent-facing HTTP request, built for an agent uid and a
// fresh event id, so a test can tell what it wrote.
type route struct {
	name   string
	method string
	path   func(uid, cmdID string) string
	body   func(t *testing.T, uid, eventID string) ([]byte, string)
}

func jsonBody(v any) func(*testing.T, string, string) ([]byte, string) {
	return func(*testing.T, string, string) ([]byte, string) { return mustJSON(v), "application/json" }
}

// routes lists every collector route but enrolment.
func routes() []route {
	fixed := func(p string) func(string, string) string { return func(string, string) string { return p } }
	return []route{
		{name: "events", method: "POST", path: fixed(protocol.PathAgentEvents), body: func(t *testing.T, uid, id string) ([]byte, string) {
			e := validEvent()
			e["event_id"] = id
			e["agent_uid"] = uid
			return mustJSON(map[string]any{"agent_uid": uid, "computer_name": "PC-X", "events": []any{e}}), "application/json"
		}},
		{name: "event of another agent in an own batch", method: "POST", path: fixed(protocol.PathAgentEvents), body: func(t *testing.T, uid, id string) ([]byte, string) {
			e := validEvent()
			e["event_id"] = id
			e["agent_uid"] = uid
			return mustJSON(map[string]any{"computer_name": "PC-X", "events": []any{e}}), "application/json"
		}},
		{name: "screenshots", method: "POST", path: fixed(protocol.PathAgentScreenshot), body: func(t *testing.T, uid, id string) ([]byte, string) {
			img := []byte("\x89PNG fake image")
			meta := shotMeta(img)
			meta["agent_uid"], meta["event_id"] = uid, id
			return screenshotBody(t, meta, img, false)
		}},
		{name: "register", method: "POST", path: fixed(protocol.PathAgentRegister), body: func(t *testing.T, uid, _ string) ([]byte, string) {
			return mustJSON(map[string]any{"agent_uid": uid, "computer_name": "CEO-LAPTOP"}), "application/json"
		}},
		{name: "heartbeat", method: "POST", path: fixed(protocol.PathAgentHeartbeat), body: func(t *testing.T, uid, _ string) ([]byte, string) {
			return mustJSON(map[string]any{"agent_uid": uid, "computer_name": "CEO-LAPTOP"}), "application/json"
		}},
		{name: "policy", method: "GET", path: fixed(protocol.PathAgentPolicy)},
		{name: "commands", method: "GET", path: func(uid, _ string) string { return "/v1/agents/" + uid + "/commands" }},
		{name: "command ack", method: "POST", path: func(uid, cmd string) string { return "/v1/agents/" + uid + "/commands/" + cmd + "/ack" },
			body: jsonBody(map[string]any{"status": "completed", "policy_version": "6.6.6"})},
	}
}

// authFixture is a collector with a real buffer and registry, a policy, and
// a command queued for the victim agent.
type authFixture struct {
	*fixture
	reg    *prometheus.Registry
	victim string // enrolled, with a pending command
	cmdID  string
	acked  <-chan protocol.AgentCommandAck
}

func newAuthFixture(t *testing.T) *authFixture {
	t.Helper()
	f, reg := newRegistryFixture(t, 0)
	f.c.opts.Policy = func() *AgentPolicy {
		return &AgentPolicy{Version: "1.0.0", Checksum: testChecksum, Content: json.RawMessage(`{}`)}
	}
	af := &authFixture{fixture: f, reg: reg, victim: "victim-agent"}
	f.creds.of(t, af.victim)
	id, acked, err := f.c.AgentCommands().Enqueue(af.victim, protocol.AgentCmdRestart, nil)
	if err != nil {
		t.Fatal(err)
	}
	af.cmdID, af.acked = id, acked
	return af
}

func (af *authFixture) send(t *testing.T, r route, uid, eventID, authz string) (int, protocol.ErrorResponse) {
	t.Helper()
	var body []byte
	ctype := ""
	if r.body != nil {
		body, ctype = r.body(t, uid, eventID)
	}
	req, _ := http.NewRequest(r.method, af.srv.URL+r.path(uid, af.cmdID), strings.NewReader(string(body)))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if authz != "" {
		req.Header.Set(protocol.HeaderAuthorization, authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var er protocol.ErrorResponse
	_ = json.NewDecoder(resp.Body).Decode(&er)
	return resp.StatusCode, er
}

// assertNothingWritten checks that eventID is not buffered, the buffer is
// empty, the victim's command is still pending and undelivered, and the
// registry holds only enrolled agents with their enrolled names.
func (af *authFixture) assertNothingWritten(t *testing.T, eventID string) {
	t.Helper()
	if ok, err := af.buf.HasEvent(context.Background(), eventID); err != nil || ok {
		t.Fatalf("event %s buffered (%v)", eventID, err)
	}
	for _, s := range []buffer.Stream{buffer.StreamLogs, buffer.StreamScreenshots} {
		if rows, _ := af.buf.Unclaimed(s); rows != 0 {
			t.Fatalf("%d %s rows written", rows, s)
		}
	}
	if n := af.c.AgentCommands().Pending(); n != 1 {
		t.Fatalf("%d commands pending, want the victim's 1", n)
	}
	select {
	case a := <-af.acked:
		t.Fatalf("the victim's command was acknowledged: %+v", a)
	default:
	}
	for _, a := range af.c.Agents().List(100) {
		if a.ComputerName == "CEO-LAPTOP" || a.PolicyVersion == "6.6.6" || a.AgentUID == "" {
			t.Fatalf("a refused request changed the registry: %+v", a)
		}
	}
}

// TestEveryRouteRefusesUnauthenticated sends each route without a
// credential, with a malformed one, a forged one, another scheme, and a
// revoked one: 401 naming Authorization, with a Bearer challenge, and
// nothing written.
func TestEveryRouteRefusesUnauthenticated(t *testing.T) {
	af := newAuthFixture(t)
	revoked := af.creds.of(t, "revoked-agent")
	if ok, err := af.c.opts.Auth.Revoke(context.Background(), "revoked-agent"); err != nil || !ok {
		t.Fatalf("revoke: %v %v", ok, err)
	}
	cases := map[string]string{
		"none":             "",
		"empty bearer":     "Bearer ",
		"not a credential": "Bearer hello",
		"forged":           "Bearer " + protocol.AgentCredentialPrefix + strings.Repeat("A", 43),
		"basic scheme":     "Basic " + af.creds.of(t, af.victim),
		"revoked":          "Bearer " + revoked,
	}
	for _, r := range routes() {
		for name, authz := range cases {
			t.Run(r.name+"/"+name, func(t *testing.T) {
				id := uuid.Must(uuid.NewV7()).String()
				code, er := af.send(t, r, af.victim, id, authz)
				if code != http.StatusUnauthorized || er.Error != protocol.ErrCodeUnauthorized || er.Field != protocol.HeaderAuthorization || er.Message == "" {
					t.Fatalf("%d %+v, want 401 naming Authorization", code, er)
				}
				af.assertNothingWritten(t, id)
			})
		}
	}
	if got := counters(t, af.reg, "gateway_agent_auth_failures_total", "reason"); got["missing"] != 3*8 || got["invalid"] != 3*8 {
		t.Fatalf("failures not counted: %v", got)
	}
}

// TestEveryRouteRefusesAnotherAgent sends each route with a valid
// credential of an attacker's agent, naming the victim: 403 (the
// credential fixes who the agent is), nothing written.
func TestEveryRouteRefusesAnotherAgent(t *testing.T) {
	af := newAuthFixture(t)
	attacker := af.creds.bearer(t, "attacker")
	for _, r := range routes() {
		if r.name == "policy" {
			continue // names no agent
		}
		t.Run(r.name, func(t *testing.T) {
			id := uuid.Must(uuid.NewV7()).String()
			code, er := af.send(t, r, af.victim, id, attacker)
			if code != http.StatusForbidden || er.Error != protocol.ErrCodeForbidden || !strings.Contains(er.Field, "agent_uid") {
				t.Fatalf("%d %+v, want 403 naming agent_uid", code, er)
			}
			af.assertNothingWritten(t, id)
		})
	}
	if got := counters(t, af.reg, "gateway_agent_auth_failures_total", "reason"); got["wrong_agent"] != 7 {
		t.Fatalf("wrong_agent counted %v, want 7", got)
	}
	// The same requests as the victim itself pass.
	for _, r := range routes() {
		if code, er := af.send(t, r, af.victim, uuid.Must(uuid.NewV7()).String(), af.creds.bearer(t, af.victim)); code/100 != 2 {
			t.Fatalf("%s as the victim: %d %+v", r.name, code, er)
		}
	}
}

// TestAnotherAgentsCommandCannotBeReadOrAcknowledged: the attacker, with
// its own valid credential on its own path, neither sees the victim's
// command nor acknowledges it by id (404); the victim then can.
func TestAnotherAgentsCommandCannotBeReadOrAcknowledged(t *testing.T) {
	af := newAuthFixture(t)
	attacker := af.creds.bearer(t, "attacker")
	resp, body := do(t, "GET", af.srv.URL+"/v1/agents/attacker/commands", "", map[string]string{protocol.HeaderAuthorization: attacker})
	var l protocol.AgentCommandList
	if err := json.Unmarshal(body, &l); resp.StatusCode != 200 || err != nil || len(l.Commands) != 0 {
		t.Fatalf("attacker's poll: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "POST", af.srv.URL+"/v1/agents/attacker/commands/"+af.cmdID+"/ack", `{"status":"completed","policy_version":"6.6.6"}`,
		map[string]string{protocol.HeaderAuthorization: attacker, "Content-Type": "application/json"})
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("attacker's ack of the victim's command: %d %s", resp.StatusCode, body)
	}
	af.assertNothingWritten(t, uuid.NewString())
	victim := map[string]string{protocol.HeaderAuthorization: af.creds.bearer(t, af.victim), "Content-Type": "application/json"}
	resp, body = do(t, "GET", af.srv.URL+"/v1/agents/"+af.victim+"/commands", "", victim)
	if err := json.Unmarshal(body, &l); resp.StatusCode != 200 || err != nil || len(l.Commands) != 1 || l.Commands[0].ID != af.cmdID {
		t.Fatalf("victim's poll: %d %s", resp.StatusCode, body)
	}
	resp, _ = do(t, "POST", af.srv.URL+"/v1/agents/"+af.victim+"/commands/"+af.cmdID+"/ack", `{"status":"completed","policy_version":"1.0.0"}`, victim)
	if a := <-af.acked; resp.StatusCode != http.StatusNoContent || a.PolicyVersion != "1.0.0" {
		t.Fatalf("victim's ack: %d %+v", resp.StatusCode, a)
	}
}

// TestEnrolment: a wrong secret is 401 naming enrolment_secret (counted)
// and issues nothing; re-enrolling replaces (revokes) the old credential;
// a revoked agent is refused until it enrols again.
func TestEnrolment(t *testing.T) {
	af := newAuthFixture(t)
	enrol := func(secret, uid string) (int, protocol.AgentEnrollResponse, protocol.ErrorResponse) {
		t.Helper()
		resp, body := do(t, "POST", af.srv.URL+protocol.PathAgentEnroll, string(mustJSON(protocol.AgentEnrollRequest{EnrolmentSecret: secret, AgentUID: uid, ComputerName: "PC-" + uid})),
			map[string]string{"Content-Type": "application/json", protocol.HeaderAuthorization: ""})
		var ok protocol.AgentEnrollResponse
		var er protocol.ErrorResponse
		json.Unmarshal(body, &ok)
		json.Unmarshal(body, &er)
		return resp.StatusCode, ok, er
	}
	if code, ok, er := enrol(testSecret+"x", "a-1"); code != 401 || ok.Credential != "" || er.Field != "enrolment_secret" {
		t.Fatalf("wrong secret: %d %+v %+v", code, ok, er)
	}
	if code, _, er := enrol("", "a-1"); code != 400 || er.Field != "enrolment_secret" {
		t.Fatalf("no secret: %d %+v", code, er)
	}
	if code, _, er := enrol(testSecret, ""); code != 400 || er.Field != "agent_uid" {
		t.Fatalf("no agent uid: %d %+v", code, er)
	}
	if n, _ := af.buf.AgentCredentialCount(context.Background()); n != 1 {
		t.Fatalf("%d credentials after refused enrolments, want the victim's 1", n)
	}
	code, first, _ := enrol(testSecret, "a-1")
	if code != 201 || !strings.HasPrefix(first.Credential, protocol.AgentCredentialPrefix) || len(first.Credential) < 4+43 || first.AgentUID != "a-1" {
		t.Fatalf("enrol: %d %+v", code, first)
	}
	heartbeat := func(cred string) int {
		resp, _ := do(t, "POST", af.srv.URL+protocol.PathAgentHeartbeat, `{"agent_uid":"a-1","computer_name":"PC"}`,
			map[string]string{"Content-Type": "application/json", protocol.HeaderAuthorization: "Bearer " + cred})
		return resp.StatusCode
	}
	if c := heartbeat(first.Credential); c != 200 {
		t.Fatalf("first credential: %d", c)
	}
	_, second, _ := enrol(testSecret, "a-1")
	if second.Credential == first.Credential || heartbeat(first.Credential) != 401 || heartbeat(second.Credential) != 200 {
		t.Fatal("re-enrolment did not replace the old credential")
	}
	if ok, err := af.c.opts.Auth.Revoke(context.Background(), "a-1"); !ok || err != nil {
		t.Fatalf("revoke: %v %v", ok, err)
	}
	if c := heartbeat(second.Credential); c != 401 {
		t.Fatalf("revoked credential: %d", c)
	}
	got := counters(t, af.reg, "gateway_agent_enrolments_total", "result")
	if got["bad_secret"] != 1 || got["invalid"] != 2 || got["ok"] != 3 {
		t.Fatalf("enrolments counted %v", got)
	}
	// One of the three replaced a credential (a-1's second enrolment).
	if n := gauge(t, af.reg, "gateway_agent_reenrolments_total"); n != 1 {
		t.Fatalf("re-enrolments counted %v, want 1", n)
	}
}

// TestEnrolmentWithoutVerifier: before the gateway knows its
// organisation's verifier, enrolment answers 503 with Retry-After.
func TestEnrolmentWithoutVerifier(t *testing.T) {
	f := newFixture(t, 0)
	f.c.opts.Auth.SetVerifier(context.Background(), "")
	resp, body := do(t, "POST", f.srv.URL+protocol.PathAgentEnroll, string(mustJSON(protocol.AgentEnrollRequest{EnrolmentSecret: testSecret, AgentUID: "a", ComputerName: "PC"})),
		map[string]string{"Content-Type": "application/json", protocol.HeaderAuthorization: ""})
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), protocol.ErrCodeNotEnrollable) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

// TestGRPCAuthentication: every gRPC call without a valid credential is
// UNAUTHENTICATED, and naming another agent PERMISSION_DENIED, with
// nothing written; Enroll issues a working credential.
func TestGRPCAuthentication(t *testing.T) {
	af := newAuthFixture(t)
	ln := grpcListen(t, af.fixture)
	dial := func(cred string) agentpb.CollectorClient {
		opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		if cred != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(bearerCreds(cred)))
		}
		conn, err := grpc.NewClient(ln, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return agentpb.NewCollectorClient(conn)
	}
	ctx := context.Background()
	calls := func(cl agentpb.CollectorClient, id string) map[string]error {
		out := map[string]error{}
		_, out["register"] = cl.Register(ctx, &agentpb.AgentRegistration{AgentUid: af.victim, ComputerName: "CEO-LAPTOP"})
		_, out["heartbeat"] = cl.Heartbeat(ctx, &agentpb.AgentRegistration{AgentUid: af.victim, ComputerName: "CEO-LAPTOP"})
		ev := pbEvent(id)
		ev.AgentUid = af.victim
		stream, err := cl.StreamEvents(ctx)
		if err == nil {
			_ = stream.Send(&agentpb.EventBatch{ComputerName: "PC", Events: []*agentpb.Event{ev}})
			_, err = stream.CloseAndRecv()
		}
		out["events"] = err
		return out
	}
	for name, c := range map[string]struct {
		cred string
		want codes.Code
	}{
		"none":     {"", codes.Unauthenticated},
		"forged":   {protocol.AgentCredentialPrefix + strings.Repeat("B", 43), codes.Unauthenticated},
		"attacker": {af.creds.of(t, "attacker"), codes.PermissionDenied},
	} {
		id := uuid.Must(uuid.NewV7()).String()
		for call, err := range calls(dial(c.cred), id) {
			if status.Code(err) != c.want {
				t.Fatalf("%s %s: %v, want %v", name, call, err, c.want)
			}
		}
		af.assertNothingWritten(t, id)
	}
	enrolled, err := dial("").Enroll(ctx, &agentpb.EnrollRequest{EnrolmentSecret: testSecret + "x", AgentUid: "g-1", ComputerName: "PC"})
	if status.Code(err) != codes.Unauthenticated || enrolled != nil {
		t.Fatalf("gRPC enrol with a wrong secret: %v", err)
	}
	enrolled, err = dial("").Enroll(ctx, &agentpb.EnrollRequest{EnrolmentSecret: testSecret, AgentUid: af.victim, ComputerName: "PC"})
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.Must(uuid.NewV7()).String()
	for call, err := range calls(dial(enrolled.Credential), id) {
		if err != nil {
			t.Fatalf("%s with the enrolled credential: %v", call, err)
		}
	}
	if ok, _ := af.buf.HasEvent(ctx, id); !ok {
		t.Fatal("the enrolled agent's event was not buffered")
	}
	// The HTTP credential of the same agent was replaced by the gRPC enrolment.
	if code, _ := af.send(t, routes()[4], af.victim, "", af.creds.bearer(t, af.victim)); code != 401 {
		t.Fatalf("old credential after re-enrolment: %d", code)
	}
}

// TestEnrolmentThrottling: 500 wrong secrets from one address are answered
// 401 a few times, then 429 with Retry-After (counted), without each
// reaching the verifier; the right secret keeps working: from the same
// address once it was verified there, and from a clean address although
// the guesses aimed at its prefix.
func TestEnrolmentThrottling(t *testing.T) {
	f, reg := newRegistryFixture(t, 0)
	enrol := func(client *http.Client, secret, uid string) (int, string) {
		t.Helper()
		body := mustJSON(protocol.AgentEnrollRequest{EnrolmentSecret: secret, AgentUID: uid, ComputerName: "PC"})
		resp, err := client.Post(f.srv.URL+protocol.PathAgentEnroll, "application/json", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	attacker := http.DefaultClient
	if code, _ := enrol(attacker, testSecret, "genuine"); code != 201 {
		t.Fatalf("right secret before the attack: %d", code)
	}
	codes := map[int]int{}
	for i := range 500 {
		wrong := testSecret[:8] + strings.Repeat("x", 20) + strconv.Itoa(i)
		code, ra := enrol(attacker, wrong, "attacker")
		codes[code]++
		if code == http.StatusTooManyRequests && ra == "" {
			t.Fatal("429 without Retry-After")
		}
	}
	if codes[http.StatusUnauthorized] > 10 || codes[http.StatusTooManyRequests] < 490 || codes[201] != 0 {
		t.Fatalf("answers to 500 wrong secrets: %v", codes)
	}
	got := counters(t, reg, "gateway_agent_enrolments_total", "result")
	if got["bad_secret"] != float64(codes[http.StatusUnauthorized]) {
		t.Fatalf("%v secrets verified, want only the %d not throttled", got["bad_secret"], codes[http.StatusUnauthorized])
	}
	if rej := counters(t, reg, "gateway_requests_rejected_total", "reason"); rej["throttled"] != float64(codes[http.StatusTooManyRequests]) {
		t.Fatalf("throttled requests counted %v, want %d", rej["throttled"], codes[http.StatusTooManyRequests])
	}
	// The right secret, verified before from this address, still enrols.
	if code, _ := enrol(attacker, testSecret, "genuine-2"); code != 201 {
		t.Fatalf("right secret from the attacked address: %d", code)
	}
	// A clean address (127.0.0.2) with the right secret passes the locked
	// prefix; the limiter forgets the verified secret first, so this is the
	// clean-source rule at work.
	f.c.throttle.Fail(throttleAttempt(testSecret, "127.0.0.9"), "unknown")
	clean := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	if code, _ := enrol(clean, testSecret, "clean"); code != 201 {
		t.Fatalf("right secret from a clean address: %d", code)
	}
	if code, _ := enrol(clean, testSecret[:8]+"guess", "clean-guess"); code != 401 {
		t.Fatalf("a clean address's first wrong secret: %d, want 401 (it passes the locked prefix once)", code)
	}
}

// TestWithoutAuthorityFailsClosed: a collector built without an Authority
// refuses every request (401) and enrolment (503), writing nothing.
func TestWithoutAuthorityFailsClosed(t *testing.T) {
	f := newFixture(t, 0)
	f.c.opts.Auth = nil
	id := uuid.Must(uuid.NewV7()).String()
	e := validEvent()
	e["event_id"] = id
	resp, er, _ := f.post(t, protocol.PathAgentEvents, "application/json", mustJSON(batchBody(e)), map[string]string{protocol.HeaderAuthorization: "Bearer " + protocol.AgentCredentialPrefix + "x"})
	if resp.StatusCode != 401 || er.Field != protocol.HeaderAuthorization {
		t.Fatalf("events: %d %+v", resp.StatusCode, er)
	}
	if ok, _ := f.buf.HasEvent(context.Background(), id); ok {
		t.Fatal("event buffered")
	}
	resp, _, _ = f.post(t, protocol.PathAgentEnroll, "application/json", mustJSON(protocol.AgentEnrollRequest{EnrolmentSecret: testSecret, AgentUID: "a", ComputerName: "PC"}), map[string]string{protocol.HeaderAuthorization: ""})
	if resp.StatusCode != 503 {
		t.Fatalf("enrol: %d", resp.StatusCode)
	}
}
