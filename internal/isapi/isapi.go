// Package isapi is the Hikvision ISAPI wire format shared by the gateway's
// Hikvision adapter and the ISAPI simulator: the Digest exchange (challenge
// parsing, response computation for MD5 and SHA-256, qop auth, nc, stale;
// a client that retries once per fresh challenge and never loops), the
// ResponseStatus envelope, deviceInfo, RemoteControl door, the AcsEvent
// search, EventNotificationAlert, userCheck (the lockout), and a bounded
// reader of the alertStream's multipart/mixed body.
//
// Every decoder takes bounded input and answers bad input with an error,
// never a panic. Documents come in XML (namespace-agnostic: firmwares use
// both the isapi.org and hikvision.com namespaces) or JSON; Decode* sniff
// the first non-space byte. See ../shared/reference/device-protocols.md §1.
package isapi

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
)

// MaxDocument bounds one XML or JSON document a decoder accepts.
const MaxDocument = 1 << 20

// Namespace is the XML namespace current firmwares write.
const Namespace = "http://www.isapi.org/ver20/XMLSchema"

// ErrMalformed is returned (wrapped) for a document that cannot be decoded.
var ErrMalformed = errors.New("isapi: malformed document")

// isJSON reports whether body's first non-space byte opens a JSON object;
// it fails for a body that is neither JSON nor XML.
func isJSON(body []byte) (bool, error) {
	if len(body) > MaxDocument {
		return false, fmt.Errorf("%w: %d bytes (limit %d)", ErrMalformed, len(body), MaxDocument)
	}
	t := bytes.TrimLeft(body, " \t\r\n\ufeff")
	if len(t) == 0 {
		return false, fmt.Errorf("%w: empty body", ErrMalformed)
	}
	switch t[0] {
	case '{':
		return true, nil
	case '<':
		return false, nil
	}
	return false, fmt.Errorf("%w: neither XML nor JSON (starts with %q)", ErrMalformed, t[:min(len(t), 16)])
}

// decode reads body as JSON into j or as XML into x.
func decode(what string, body []byte, j, x any) error {
	js, err := isJSON(body)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if js {
		err = json.Unmarshal(body, j)
	} else {
		err = xml.Unmarshal(body, x)
	}
	if err != nil {
		return fmt.Errorf("%s: %w: %v", what, ErrMalformed, err)
	}
	return nil
}

// EncodeXML renders v (a type of this package) as an XML document with
// its declaration.
func EncodeXML(v any) []byte {
	b, err := xml.Marshal(v)
	if err != nil {
		// Only this package's types are passed; they always marshal.
		panic(fmt.Sprintf("isapi: encode %T: %v", v, err))
	}
	return append([]byte(xml.Header), b...)
}

// EncodeJSON renders v (a type of this package) as JSON.
func EncodeJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("isapi: encode %T: %v", v, err))
	}
	return b
}
