package policy

import (
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// Canonical returns the canonical form of JSON content (the wire
// contract's protocol.CanonicalJSON): two contents with the same canonical
// form are the same policy, whatever their formatting.
func Canonical(content []byte) ([]byte, error) { return protocol.CanonicalJSON(content) }

// Checksum is the lower-case hex SHA-256 of the canonical form.
func Checksum(content []byte) (string, error) { return protocol.PolicyChecksum(content) }
