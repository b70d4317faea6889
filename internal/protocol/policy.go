package protocol

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// PathGatewayPolicy serves a policy version's content to a gateway after a
// policy_update command: GET /v2/gateway/policies/{id}?version=1.2.0.
const PathGatewayPolicy = "/v2/gateway/policies/{id}"

// PolicyDocument answers GET /v2/gateway/policies/{id}. Checksum is the
// SHA-256 of the canonical form of Content (PolicyChecksum); the ETag
// header carries it too, and If-None-Match with it answers 304.
type PolicyDocument struct {
	PolicyID        int64           `json:"policy_id"`
	Version         string          `json:"version"`
	Checksum        string          `json:"checksum"`
	RequiresRestart bool            `json:"requires_restart"`
	Content         json.RawMessage `json:"content"`
}

// DecodeJSONValue decodes the one JSON value content holds, numbers as
// written (json.Number); content that is not JSON, or holds more than one
// value, is an error.
func DecodeJSONValue(content []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(content))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("content is not valid JSON: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("content holds more than one JSON value")
	}
	return v, nil
}

// CanonicalJSON returns the canonical form of JSON content: object keys
// sorted, no insignificant whitespace, numbers as written, no HTML
// escaping. Both ends compute policy checksums over it.
func CanonicalJSON(content []byte) ([]byte, error) {
	v, err := DecodeJSONValue(content)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // encoding/json sorts map keys
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// PolicyChecksum is the lower-case hex SHA-256 of CanonicalJSON(content).
func PolicyChecksum(content []byte) (string, error) {
	c, err := CanonicalJSON(content)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(c)
	return hex.EncodeToString(sum[:]), nil
}
