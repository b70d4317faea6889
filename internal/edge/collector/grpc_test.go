package collector

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/protocol/agentpb"
)

// grpcListen serves f's collector over gRPC and returns the address.
func grpcListen(t *testing.T, f *fixture) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := f.c.GRPCServer()
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

func grpcClient(t *testing.T, f *fixture) agentpb.CollectorClient {
	t.Helper()
	conn, err := grpc.NewClient(grpcListen(t, f), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearerCreds(f.creds.of(t, "g1"))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return agentpb.NewCollectorClient(conn)
}

func pbEvent(id string) *agentpb.Event {
	d := int64(4)
	return &agentpb.Event{EventId: id, Type: "active_window", UserSid: "S-1", Datetime: timestamppb.New(time.Now()),
		DurationSeconds: &d, ProcessName: "code.exe"}
}

func TestGRPCStreamCommitsEachBatch(t *testing.T) {
	f := newFixture(t, 0)
	cl := grpcClient(t, f)
	ctx := context.Background()
	if _, err := cl.Register(ctx, &agentpb.AgentRegistration{AgentUid: "g1", ComputerName: "PC"}); err != nil {
		t.Fatal(err)
	}
	stream, err := cl.StreamEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 3 {
		msg := &agentpb.EventBatch{AgentUid: "g1", ComputerName: "PC"}
		for range 10 {
			id := uuid.Must(uuid.NewV7()).String()
			ids = append(ids, id)
			msg.Events = append(msg.Events, pbEvent(id))
		}
		if err := stream.Send(msg); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	if resp.Accepted != 30 || len(resp.Events) != 30 || resp.Events[29].Seq != 30 || resp.Events[0].EventId != ids[0] {
		t.Fatalf("response %+v", resp)
	}
	if rows, _ := f.buf.Unclaimed(buffer.StreamLogs); rows != 30 {
		t.Fatalf("%d rows", rows)
	}
}

func TestGRPCInvalidEventNamesTheField(t *testing.T) {
	f := newFixture(t, 0)
	cl := grpcClient(t, f)
	stream, err := cl.StreamEvents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	bad := pbEvent("")
	bad.UserSid = ""
	stream.Send(&agentpb.EventBatch{AgentUid: "g1", ComputerName: "PC", Events: []*agentpb.Event{pbEvent(""), bad}})
	_, err = stream.CloseAndRecv()
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("code %v: %v", st.Code(), err)
	}
	var field string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			field = br.FieldViolations[0].Field
		}
	}
	if field != "events[1].user_sid" {
		t.Fatalf("field %q (%v)", field, err)
	}
	if rows, _ := f.buf.Unclaimed(buffer.StreamLogs); rows != 0 {
		t.Fatalf("%d rows written by a refused message", rows)
	}
	// Without agent_uid, a heartbeat is the credential's agent's.
	if _, err := cl.Heartbeat(context.Background(), &agentpb.AgentRegistration{ComputerName: "PC"}); err != nil {
		t.Fatalf("heartbeat without uid: %v", err)
	}
	if _, ok := f.c.Agents().Lookup("g1"); !ok {
		t.Fatal("heartbeat without uid not recorded as g1's")
	}
}
