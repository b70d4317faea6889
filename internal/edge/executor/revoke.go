package executor

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// RevokeAgentResult is the result of a revoke_agent command: whether the
// gateway held a credential for the agent (false is still success: the
// agent never enrolled here, or was revoked before).
type RevokeAgentResult struct {
	AgentUID string `json:"agent_uid"`
	Revoked  bool   `json:"revoked"`
}

// RevokeAgentHandler executes revoke_agent ({"agent_uid": "..."}): revoke
// drops the agent's credential, so its next collector request gets 401.
func RevokeAgentHandler(revoke func(ctx context.Context, agentUID string) (bool, error)) Handler {
	return func(ctx context.Context, cmd protocol.Command) (json.RawMessage, error) {
		var p protocol.RevokeAgentPayload
		if err := json.Unmarshal(cmd.Payload, &p); err != nil {
			return nil, fmt.Errorf("revoke_agent: payload: %w", err)
		}
		if err := protocol.CheckText("agent_uid", p.AgentUID, true, protocol.MaxShortField); err != nil {
			return nil, fmt.Errorf("revoke_agent: payload: %w", err)
		}
		ok, err := revoke(ctx, p.AgentUID)
		if err != nil {
			return nil, fmt.Errorf("revoke_agent: %w", err)
		}
		return json.Marshal(RevokeAgentResult{AgentUID: p.AgentUID, Revoked: ok})
	}
}
