package protocol

// ErrCodeThrottled (429, with Retry-After in seconds) refuses a credential
// attempt — an API key, a provisioning token, an enrolment secret, a login —
// before it is checked, because too many attempts failed recently from the
// same source address (Field names the credential, Message says "from this
// address") or aimed at the same credential prefix ("for this credential").
// A client waits Retry-After and tries again; a correct credential that was
// recently accepted, or one presented from an address with no failures, is
// never refused this way.
const ErrCodeThrottled = "throttled"
