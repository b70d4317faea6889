package protocol

// Gateway command types: the "type" of a command the cloud queues
// (internal/cloud/commandqueue) and a gateway executes (internal/edge/executor
// and its handlers). The one list both sides use; docs/protocol.md describes
// each payload and result.
const (
	// CommandPolicyUpdate makes the gateway fetch, verify and apply a policy
	// version (payload {"version", "sha256"}).
	CommandPolicyUpdate = "policy_update"
	// CommandRestartAgent makes the gateway ask agents to restart and wait
	// for their confirmations.
	CommandRestartAgent = "restart_agent"
	// CommandDeviceCommand is a command for a door terminal behind the
	// gateway (such as opening a door).
	CommandDeviceCommand = "device_command"
	// CommandRotateAPIKey is the command type that rotates a gateway's key
	// (see PathGatewayKeyRotate).
	CommandRotateAPIKey = "rotate_api_key"
	// CommandReplayDeadLetters is the command type that moves a gateway's
	// dead letters back into their upload streams under new sequence
	// numbers. Payload: ReplayDeadLettersPayload; result:
	// ReplayDeadLettersResult.
	CommandReplayDeadLetters = "replay_dead_letters"
	// CommandRevokeAgent is the gateway command type that revokes an agent's
	// credential (payload RevokeAgentPayload).
	CommandRevokeAgent = "revoke_agent"
)
