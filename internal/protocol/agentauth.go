package protocol

import (
	"strings"
	"time"
)

// Agent enrolment and authentication (issue 11). An agent enrols once with
// its organisation's enrolment secret (delivered with the installer) and
// receives its own credential, shown once; it then presents the credential
// on every collector request as "Authorization: Bearer <credential>" (gRPC:
// the "authorization" metadata key, same value). The gateway stores only a
// hash of each credential and learns how to verify the enrolment secret
// from the cloud (PathGatewayEnrolment), never the secret itself.
const (
	// PathAgentEnroll exchanges the enrolment secret for an agent credential:
	// POST, AgentEnrollRequest → 201 AgentEnrollResponse.
	PathAgentEnroll = "/v1/agents/enroll"
	// PathGatewayEnrolment gives a gateway its organisation's enrolment
	// verifier: GET (API key) → 200 EnrolmentVerifier.
	PathGatewayEnrolment = "/v2/gateway/enrolment"
	// PathGatewayAgents tells the cloud an agent enrolled at the gateway:
	// POST (API key), AgentEnrolled → 204.
	PathGatewayAgents = "/v2/gateway/agents"
	// HeaderAuthorization carries an agent's credential.
	HeaderAuthorization = "Authorization"
	// GRPCAuthorizationKey is the gRPC metadata key carrying the credential.
	GRPCAuthorizationKey = "authorization"
	// AgentCredentialPrefix starts every agent credential.
	AgentCredentialPrefix = "sca_"
	// EnrolmentSecretPrefix starts every organisation enrolment secret.
	EnrolmentSecretPrefix = "sce_"
	// VerifierSHA256 prefixes a verifier that is the hex SHA-256 of the
	// secret (the secret holds 256 random bits, so its hash cannot be
	// reversed by search).
	VerifierSHA256 = "sha256:"
	// ErrCodeForbidden refuses an authenticated agent acting as another.
	ErrCodeForbidden = "forbidden"
	// ErrCodeNotEnrollable answers an enrolment while the gateway does not
	// yet know its organisation's enrolment verifier (503, retry).
	ErrCodeNotEnrollable = "enrolment_unavailable"
)

// AgentEnrollRequest is the body of PathAgentEnroll.
type AgentEnrollRequest struct {
	// EnrolmentSecret is the organisation's secret from the installer.
	EnrolmentSecret string `json:"enrolment_secret"`
	AgentUID        string `json:"agent_uid"`
	ComputerName    string `json:"computer_name"`
	AgentVersion    string `json:"agent_version,omitempty"`
	OSVersion       string `json:"os_version,omitempty"`
}

// AgentEnrollResponse answers PathAgentEnroll. Credential is shown once;
// it replaces (revokes) any credential the agent had.
type AgentEnrollResponse struct {
	AgentUID   string `json:"agent_uid"`
	Credential string `json:"credential"`
	GatewayID  string `json:"gateway_id,omitempty"`
}

// EnrolmentVerifier answers PathGatewayEnrolment. Verifier is "" while the
// organisation has no enrolment secret (agents cannot enrol).
type EnrolmentVerifier struct {
	OrganizationID int64      `json:"organization_id"`
	Verifier       string     `json:"verifier"`
	RotatedAt      *time.Time `json:"rotated_at,omitempty"`
}

// AgentEnrolled is the body of PathGatewayAgents.
type AgentEnrolled struct {
	AgentUID     string    `json:"agent_uid"`
	ComputerName string    `json:"computer_name"`
	EnrolledAt   time.Time `json:"enrolled_at"`
}

// RevokeAgentPayload is the payload of a revoke_agent gateway command: the
// gateway drops the agent's credential; its next request gets 401.
type RevokeAgentPayload struct {
	AgentUID string `json:"agent_uid"`
}

// BearerToken returns the token of an "Authorization: Bearer <token>"
// value ("" when the value is not a bearer token).
func BearerToken(header string) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}
