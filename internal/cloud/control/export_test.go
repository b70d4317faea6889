package control

import (
	"context"

	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// RecordAck is the hub's batched acknowledgement (what a socket's reader
// calls), for the batcher's tests.
func RecordAck(h *Hub, ctx context.Context, gw auth.Gateway, a protocol.CommandAck) error {
	return h.recordAck(ctx, gw, a)
}

// RecordHeartbeat is the hub's batched heartbeat, for the batcher's tests.
func RecordHeartbeat(h *Hub, ctx context.Context, gw auth.Gateway, hb protocol.Heartbeat) error {
	return h.record(ctx, gw, &hb)
}
