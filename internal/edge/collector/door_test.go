package collector

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/protocol/agentpb"
)

// rawEvent is a valid event as raw JSON with one member's value replaced by
// raw (already JSON-encoded), so that escapes like \u0000 and \ud800 reach
// the decoder as an agent would send them.
func rawEvent(typ, member, raw string) string {
	fields := map[string]string{
		"type": `"` + typ + `"`, "user_sid": `"S-1-5-21-1"`, "datetime": `"` + validEvent()["datetime"].(string) + `"`,
	}
	switch typ {
	case protocol.TypeActiveWindow:
		fields["process_name"], fields["window_title"] = `"code.exe"`, `"main.go"`
	case protocol.TypeVisitedSite:
		fields["url"], fields["title"] = `"https://example.com/"`, `"Example"`
	case protocol.TypeUserSession:
		fields["session_type"] = `"login"`
	}
	fields[member] = raw
	var b strings.Builder
	b.WriteString("{")
	first := true
	for k, v := range fields {
		if !first {
			b.WriteString(",")
		}
		first = false
		b.WriteString(`"` + k + `":` + v)
	}
	b.WriteString("}")
	return b.String()
}

func TestEveryTextFieldRefusesNULAtTheDoor(t *testing.T) {
	f, _ := newRegistryFixture(t, 0)
	tests := []struct {
		typ, member string
	}{
		{protocol.TypeActiveWindow, "agent_uid"},
		{protocol.TypeActiveWindow, "computer_name"},
		{protocol.TypeActiveWindow, "user_sid"},
		{protocol.TypeActiveWindow, "process_name"},
		{protocol.TypeActiveWindow, "window_title"},
		{protocol.TypeActiveWindow, "url"},
		{protocol.TypeVisitedSite, "url"},
		{protocol.TypeVisitedSite, "title"},
		{protocol.TypeUserSession, "session_type"},
	}
	for _, tt := range tests {
		t.Run(tt.typ+"."+tt.member, func(t *testing.T) {
			ev := rawEvent(tt.typ, tt.member, `"x\u0000y"`)
			body := `{"agent_uid":"a1","computer_name":"PC","events":[` + rawEvent(protocol.TypeUserSession, "user_sid", `"S-1"`) + `,` + ev + `]}`
			resp, er, raw := f.post(t, protocol.PathAgentEvents, "application/json", []byte(body), nil)
			if resp.StatusCode != 400 || er.Field != "events[1]."+tt.member || !strings.Contains(er.Message, "NUL") {
				t.Fatalf("%d %s, want 400 naming events[1].%s", resp.StatusCode, raw, tt.member)
			}
		})
	}
	t.Run("batch agent_uid", func(t *testing.T) {
		body := `{"agent_uid":"a\u0000","computer_name":"PC","events":[` + rawEvent(protocol.TypeUserSession, "agent_uid", `"a1"`) + `]}`
		resp, er, raw := f.post(t, protocol.PathAgentEvents, "application/json", []byte(body), nil)
		if resp.StatusCode != 400 || er.Field != "agent_uid" {
			t.Fatalf("%d %s", resp.StatusCode, raw)
		}
	})
	if n, _ := f.buf.Stats(context.Background()); n.Bytes != 0 {
		t.Fatalf("refused requests left %d bytes", n.Bytes)
	}
}

func TestLoneSurrogateEscapesAreRefusedNamingTheField(t *testing.T) {
	f, _ := newRegistryFixture(t, 0)
	// A lone surrogate escape cannot become UTF-8 text: the decoder refuses
	// it, and the answer names the value.
	body := `{"agent_uid":"a1","computer_name":"PC","events":[` + rawEvent(protocol.TypeActiveWindow, "window_title", `"\ud800 and \udfff"`) + `]}`
	resp, er, raw := f.post(t, protocol.PathAgentEvents, "application/json", []byte(body), nil)
	if resp.StatusCode != 400 || er.Field != "events[0].window_title" {
		t.Fatalf("%d %s, want 400 naming events[0].window_title", resp.StatusCode, raw)
	}
}

func TestScreenshotMetadataRefusesNUL(t *testing.T) {
	f, reg := newRegistryFixture(t, 0)
	img := []byte("png bytes")
	for _, member := range []string{"user_sid", "computer_name", "agent_uid"} {
		meta := shotMeta(img)
		meta[member] = "x\x00"
		body, ct := screenshotBody(t, meta, img, false)
		resp, er, raw := f.post(t, protocol.PathAgentScreenshot, ct, body, nil)
		if resp.StatusCode != 400 || er.Field != member {
			t.Fatalf("%s: %d %s", member, resp.StatusCode, raw)
		}
	}
	if got := counters(t, reg, "gateway_events_rejected_total", "reason")["validation"]; got != 3 {
		t.Fatalf("screenshot refusals counted %v events, want 3", got)
	}
}

func TestRegistrationRefusesNUL(t *testing.T) {
	f, _ := newRegistryFixture(t, 0)
	for _, path := range []string{protocol.PathAgentRegister, protocol.PathAgentHeartbeat} {
		for _, member := range []string{"agent_uid", "computer_name", "user_sid", "agent_version", "os_version", "policy_version"} {
			reg := map[string]any{"agent_uid": "a1", "computer_name": "PC"}
			reg[member] = "v\x00"
			resp, er, raw := f.post(t, path, "application/json", mustJSON(reg), map[string]string{protocol.HeaderAuthorization: f.creds.bearer(t, "a1")})
			if resp.StatusCode != 400 || er.Field != member {
				t.Fatalf("%s %s: %d %s", path, member, resp.StatusCode, raw)
			}
		}
	}
	// Only a1's enrolment registered it; no refused registration changed it.
	if l := f.c.Agents().List(10); len(l) != 1 || l[0].AgentUID != "a1" || l[0].ComputerName != "PC-a1" || l[0].AgentVersion != "" {
		t.Fatalf("refused registrations left %+v", l)
	}
}

func grpcField(t *testing.T, err error) (codes.Code, string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("not a status: %v", err)
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.FieldViolations) > 0 {
			return st.Code(), br.FieldViolations[0].Field
		}
	}
	return st.Code(), ""
}

func TestGRPCRefusesNULNamingTheField(t *testing.T) {
	f, _ := newRegistryFixture(t, 0)
	cl := grpcClient(t, f)
	ctx := context.Background()
	_, err := cl.Register(ctx, &agentpb.AgentRegistration{AgentUid: "g1", ComputerName: "PC\x00"})
	if code, field := grpcField(t, err); code != codes.InvalidArgument || field != "computer_name" {
		t.Fatalf("register: %v", err)
	}
	stream, err := cl.StreamEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ok := pbEvent("")
	bad := pbEvent("")
	bad.WindowTitle = "t\x00"
	if err := stream.Send(&agentpb.EventBatch{AgentUid: "g1", ComputerName: "PC", Events: []*agentpb.Event{ok, bad}}); err != nil {
		t.Fatal(err)
	}
	_, err = stream.CloseAndRecv()
	if code, field := grpcField(t, err); code != codes.InvalidArgument || field != "events[1].window_title" {
		t.Fatalf("stream: %v", err)
	}
	if n, _ := f.buf.Stats(ctx); n.Bytes != 0 {
		t.Fatalf("%d bytes stored", n.Bytes)
	}

}
