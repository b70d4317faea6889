package protocol

// DropPersistentFailure: the cloud answered a server error (5xx) for a
// single event again and again while it accepted other batches; the gateway
// set the event aside as a dead letter (replayable with
// CommandReplayDeadLetters).
const DropPersistentFailure = "persistent_failure"

// ReplayDeadLettersPayload names the dead letters to replay; no ids (or an
// empty payload) means all of them.
type ReplayDeadLettersPayload struct {
	EventIDs []string `json:"event_ids,omitempty"`
}

// ReplayDeadLettersResult is how many dead letters went back into their
// streams.
type ReplayDeadLettersResult struct {
	Replayed int `json:"replayed"`
}
