package collector

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/protocol/agentpb"
	"github.com/staffcontrol/staffcontrol/internal/tracing"
)

// grpcService implements agentpb.CollectorServer on top of the Collector.
type grpcService struct {
	agentpb.UnimplementedCollectorServer
	c *Collector
}

// GRPCServer returns a gRPC server with the Collector service registered;
// one message is bounded like one HTTP request body. opts add to those
// (the gateway's timeouts and keepalive).
func (c *Collector) GRPCServer(opts ...grpc.ServerOption) *grpc.Server {
	s := grpc.NewServer(append([]grpc.ServerOption{grpc.MaxRecvMsgSize(int(c.opts.MaxBodyBytes)), grpc.MaxConcurrentStreams(1024)}, opts...)...)
	agentpb.RegisterCollectorServer(s, &grpcService{c: c})
	return s
}

// grpcError maps a collector refusal to a gRPC status with details: the
// offending field (BadRequest) and the retry delay (RetryInfo).
func grpcError(err error) error {
	re := apperr.As(err)
	if re == nil {
		if errors.Is(err, context.Canceled) {
			return status.Error(codes.Canceled, "canceled")
		}
		return status.Error(codes.Internal, "internal error")
	}
	code := codes.InvalidArgument
	switch re.Code {
	case apperr.TooLarge, apperr.Throttled:
		code = codes.ResourceExhausted
	case apperr.Unavailable:
		code = codes.Unavailable
	case apperr.Unauthenticated:
		code = codes.Unauthenticated
	case apperr.Forbidden:
		code = codes.PermissionDenied
	case apperr.NotFound:
		code = codes.NotFound
	case apperr.Internal:
		code = codes.Internal
	}
	_, body := errorResponse(re)
	msg := body.Error + ": " + re.Message
	if re.Field != "" {
		msg = body.Error + ": " + re.Field + ": " + re.Message
	}
	st := status.New(code, msg)
	if re.Field != "" {
		if d, derr := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: re.Field, Description: re.Message}}}); derr == nil {
			st = d
		}
	}
	if re.RetryAfter > 0 {
		if d, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(re.RetryAfter)}); derr == nil {
			st = d
		}
	}
	return st.Err()
}

// EventFromProto converts a protobuf event to the JSON contract's form.
func EventFromProto(p *agentpb.Event) protocol.Event {
	e := protocol.Event{EventID: p.GetEventId(), Type: p.GetType(), AgentUID: p.GetAgentUid(), ComputerName: p.GetComputerName(),
		UserSID: p.GetUserSid(), WindowTitle: p.GetWindowTitle(), ProcessName: p.GetProcessName(), URL: p.GetUrl(),
		Title: p.GetTitle(), SessionType: p.GetSessionType()}
	if p.Datetime != nil {
		e.Datetime = p.Datetime.AsTime()
	}
	if p.DurationSeconds != nil {
		d := p.GetDurationSeconds()
		e.DurationSeconds = &d
	}
	return e
}

// grpcToken returns the bearer token of a call's "authorization" metadata.
func grpcToken(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(protocol.GRPCAuthorizationKey); len(v) == 1 {
		return protocol.BearerToken(v[0])
	}
	return ""
}

// authGRPC authenticates a call before any message is read.
func (s *grpcService) authGRPC(ctx context.Context) (string, error) {
	return s.c.authenticate(ctx, grpcToken(ctx))
}

// Enroll exchanges the enrolment secret for an agent credential.
func (s *grpcService) Enroll(ctx context.Context, r *agentpb.EnrollRequest) (*agentpb.EnrollResponse, error) {
	var src netip.Addr
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		if ap, err := netip.ParseAddrPort(p.Addr.String()); err == nil {
			src = ap.Addr().Unmap()
		}
	}
	resp, err := s.c.Enroll(ctx, src, protocol.AgentEnrollRequest{EnrolmentSecret: r.GetEnrolmentSecret(), AgentUID: r.GetAgentUid(),
		ComputerName: r.GetComputerName(), AgentVersion: r.GetAgentVersion(), OSVersion: r.GetOsVersion()})
	if err != nil {
		return nil, grpcError(err)
	}
	return &agentpb.EnrollResponse{AgentUid: resp.AgentUID, Credential: resp.Credential, GatewayId: resp.GatewayID}, nil
}

// StreamEvents authenticates the agent, commits each received batch, then
// acknowledges them all.
func (s *grpcService) StreamEvents(stream grpc.ClientStreamingServer[agentpb.EventBatch, agentpb.StreamEventsResponse]) error {
	start := time.Now()
	resp := &agentpb.StreamEventsResponse{}
	code := "200"
	defer func() {
		s.c.m.requests.WithLabelValues("grpc_events", code).Inc()
		s.c.m.latency.WithLabelValues("grpc_events").Observe(time.Since(start).Seconds())
	}()
	uid, err := s.authGRPC(stream.Context())
	if err != nil {
		code = "401"
		return grpcError(err)
	}
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(resp)
		}
		if err != nil {
			code = "stream_error"
			return err
		}
		batch := protocol.EventBatch{AgentUID: msg.GetAgentUid(), ComputerName: msg.GetComputerName(),
			Events: make([]protocol.Event, len(msg.GetEvents()))}
		for i, e := range msg.GetEvents() {
			batch.Events[i] = EventFromProto(e)
		}
		ack, err := s.c.AcceptEvents(tracing.Extract(stream.Context(), incomingTraceparent(stream.Context())), uid, &batch)
		if err != nil {
			code = "error"
			if re := apperr.As(err); re != nil {
				httpStatus, _ := errorResponse(re)
				code = strconv.Itoa(httpStatus)
			}
			return grpcError(err)
		}
		resp.Accepted += int32(ack.Accepted)
		resp.Duplicates += int32(ack.Duplicates)
		for _, a := range ack.Events {
			resp.Events = append(resp.Events, &agentpb.EventAck{EventId: a.EventID, Seq: a.Seq, Duplicate: a.Duplicate})
		}
	}
}

func (s *grpcService) register(ctx context.Context, r *agentpb.AgentRegistration, full bool) (*agentpb.AgentRegistrationResponse, error) {
	uid, err := s.authGRPC(ctx)
	if err != nil {
		return nil, grpcError(err)
	}
	resp, err := s.c.Register(uid, protocol.AgentRegistration{AgentUID: r.GetAgentUid(), ComputerName: r.GetComputerName(),
		UserSID: r.GetUserSid(), AgentVersion: r.GetAgentVersion(), OSVersion: r.GetOsVersion(), PolicyVersion: r.GetPolicyVersion()}, full)
	if err != nil {
		return nil, grpcError(err)
	}
	return &agentpb.AgentRegistrationResponse{GatewayId: resp.GatewayID,
		HeartbeatIntervalSeconds: int32(resp.HeartbeatIntervalSeconds), BufferLevel: resp.BufferLevel}, nil
}

// Register records an agent registration.
func (s *grpcService) Register(ctx context.Context, r *agentpb.AgentRegistration) (*agentpb.AgentRegistrationResponse, error) {
	return s.register(ctx, r, true)
}

// Heartbeat records an agent heartbeat.
func (s *grpcService) Heartbeat(ctx context.Context, r *agentpb.AgentRegistration) (*agentpb.AgentRegistrationResponse, error) {
	return s.register(ctx, r, false)
}

// incomingTraceparent is the W3C traceparent a traced agent sent in the
// call's metadata ("" when none).
func incomingTraceparent(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(tracing.Header); len(v) > 0 {
		return v[0]
	}
	return ""
}
