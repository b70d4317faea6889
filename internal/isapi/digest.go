package isapi

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
)

// MaxHeaderLen bounds a WWW-Authenticate or Authorization value the parsers
// accept; a longer one is refused unread.
const MaxHeaderLen = 4096

// Digest algorithm names as they appear on the wire.
const (
	AlgMD5    = "MD5"
	AlgSHA256 = "SHA-256"
)

// ErrBadChallenge is returned (wrapped) for a WWW-Authenticate or
// Authorization value that is not a usable Digest header.
var ErrBadChallenge = errors.New("isapi: bad digest header")

// Challenge is a parsed `WWW-Authenticate: Digest …` header (RFC 7616).
type Challenge struct {
	Realm     string
	Nonce     string
	Opaque    string
	Domain    string
	Algorithm string // canonical: AlgMD5 or AlgSHA256 ("" read as MD5)
	QOP       []string
	// Stale is true when the server refused only the nonce: the
	// credentials were right, so the client recomputes with the new nonce
	// without counting a failed login.
	Stale bool
}

// String renders the challenge as a WWW-Authenticate value, in the order
// Hikvision firmwares use.
func (c Challenge) String() string {
	var b strings.Builder
	b.WriteString("Digest ")
	if len(c.QOP) > 0 {
		fmt.Fprintf(&b, "qop=%s, ", quoted(strings.Join(c.QOP, ",")))
	}
	fmt.Fprintf(&b, "realm=%s, nonce=%s", quoted(c.Realm), quoted(c.Nonce))
	if c.Opaque != "" {
		fmt.Fprintf(&b, ", opaque=%s", quoted(c.Opaque))
	}
	if c.Algorithm != "" {
		fmt.Fprintf(&b, ", algorithm=%s", quoted(c.Algorithm))
	}
	if c.Stale {
		b.WriteString(`, stale="TRUE"`)
	} else {
		b.WriteString(`, stale="FALSE"`)
	}
	return b.String()
}

// ParseChallenge parses a WWW-Authenticate value. Only the Digest scheme
// is accepted; qop, when offered, must include "auth" (auth-int is not
// supported); the algorithm must be MD5 or SHA-256 (Hikvision's "SHA256"
// spelling is accepted).
func ParseChallenge(h string) (Challenge, error) {
	params, err := parseDigestParams(h)
	if err != nil {
		return Challenge{}, err
	}
	c := Challenge{
		Realm:  params["realm"],
		Nonce:  params["nonce"],
		Opaque: params["opaque"],
		Domain: params["domain"],
		Stale:  strings.EqualFold(params["stale"], "true"),
	}
	if c.Nonce == "" {
		return Challenge{}, fmt.Errorf("%w: challenge without a nonce", ErrBadChallenge)
	}
	if c.Algorithm, err = canonicalAlg(params["algorithm"]); err != nil {
		return Challenge{}, err
	}
	if q, ok := params["qop"]; ok {
		for _, v := range strings.Split(q, ",") {
			if v = strings.TrimSpace(v); v != "" {
				c.QOP = append(c.QOP, v)
			}
		}
		if !c.offers("auth") {
			return Challenge{}, fmt.Errorf("%w: qop %q does not offer auth", ErrBadChallenge, q)
		}
	}
	return c, nil
}

func (c Challenge) offers(qop string) bool {
	for _, q := range c.QOP {
		if q == qop {
			return true
		}
	}
	return false
}

func canonicalAlg(a string) (string, error) {
	switch strings.ToUpper(a) {
	case "", "MD5":
		return AlgMD5, nil
	case "SHA-256", "SHA256":
		return AlgSHA256, nil
	}
	return "", fmt.Errorf("%w: unsupported algorithm %q", ErrBadChallenge, a)
}

// Authorization is a Digest `Authorization` header's fields.
type Authorization struct {
	Username  string
	Realm     string
	Nonce     string
	URI       string
	Algorithm string
	QOP       string // "auth" or "" (RFC 2069 compatibility)
	NC        string // 8 hex digits
	CNonce    string
	Opaque    string
	Response  string
}

// Respond computes the Authorization for one request under challenge c:
// response = H(H(user:realm:password):nonce:nc:cnonce:qop:H(method:uri))
// with qop "auth" (or H(HA1:nonce:HA2) when the challenge offers no qop).
func Respond(c Challenge, username, password, method, uri, cnonce string, nc uint32) Authorization {
	a := Authorization{
		Username: username, Realm: c.Realm, Nonce: c.Nonce, URI: uri,
		Algorithm: c.Algorithm, Opaque: c.Opaque,
	}
	if a.Algorithm == "" {
		a.Algorithm = AlgMD5
	}
	if len(c.QOP) > 0 {
		a.QOP, a.NC, a.CNonce = "auth", fmt.Sprintf("%08x", nc), cnonce
	}
	a.Response = a.expected(password, method)
	return a
}

// expected is the response a's fields and password give for method.
func (a Authorization) expected(password, method string) string {
	h := hasher(a.Algorithm)
	ha1 := h(a.Username + ":" + a.Realm + ":" + password)
	ha2 := h(method + ":" + a.URI)
	if a.QOP == "" {
		return h(ha1 + ":" + a.Nonce + ":" + ha2)
	}
	return h(ha1 + ":" + a.Nonce + ":" + a.NC + ":" + a.CNonce + ":" + a.QOP + ":" + ha2)
}

// Verify reports whether a's response is the one password gives for
// method (constant-time comparison). The caller checks the nonce, realm
// and user separately.
func (a Authorization) Verify(password, method string) bool {
	want := a.expected(password, method)
	return subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(a.Response))) == 1
}

func hasher(alg string) func(string) string {
	var newH func() hash.Hash = md5.New
	if alg == AlgSHA256 {
		newH = sha256.New
	}
	return func(s string) string {
		h := newH()
		h.Write([]byte(s))
		return hex.EncodeToString(h.Sum(nil))
	}
}

// String renders a as an Authorization header value.
func (a Authorization) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Digest username=%s, realm=%s, nonce=%s, uri=%s", quoted(a.Username), quoted(a.Realm), quoted(a.Nonce), quoted(a.URI))
	if a.Algorithm != "" {
		fmt.Fprintf(&b, ", algorithm=%s", a.Algorithm)
	}
	if a.QOP != "" {
		fmt.Fprintf(&b, ", qop=%s, nc=%s, cnonce=%s", a.QOP, a.NC, quoted(a.CNonce))
	}
	if a.Opaque != "" {
		fmt.Fprintf(&b, ", opaque=%s", quoted(a.Opaque))
	}
	fmt.Fprintf(&b, ", response=%s", quoted(a.Response))
	return b.String()
}

// ParseAuthorization parses a Digest Authorization header value (the
// server side of the exchange).
func ParseAuthorization(h string) (Authorization, error) {
	p, err := parseDigestParams(h)
	if err != nil {
		return Authorization{}, err
	}
	a := Authorization{
		Username: p["username"], Realm: p["realm"], Nonce: p["nonce"], URI: p["uri"],
		QOP: p["qop"], NC: p["nc"], CNonce: p["cnonce"], Opaque: p["opaque"], Response: p["response"],
	}
	if a.Algorithm, err = canonicalAlg(p["algorithm"]); err != nil {
		return Authorization{}, err
	}
	if a.Username == "" || a.Nonce == "" || a.URI == "" || a.Response == "" {
		return Authorization{}, fmt.Errorf("%w: authorization lacks username, nonce, uri or response", ErrBadChallenge)
	}
	if a.QOP != "" && (a.QOP != "auth" || len(a.NC) != 8 || a.CNonce == "") {
		return Authorization{}, fmt.Errorf("%w: qop %q needs nc (8 hex digits) and cnonce", ErrBadChallenge, a.QOP)
	}
	return a, nil
}

// parseDigestParams splits `Digest k=v, k="v", …` into lower-cased keys
// and unquoted values.
func parseDigestParams(h string) (map[string]string, error) {
	if len(h) > MaxHeaderLen {
		return nil, fmt.Errorf("%w: header of %d bytes", ErrBadChallenge, len(h))
	}
	h = strings.TrimSpace(h)
	scheme, rest, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Digest") {
		return nil, fmt.Errorf("%w: scheme %q is not Digest", ErrBadChallenge, scheme)
	}
	params := map[string]string{}
	s := rest
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			break
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("%w: parameter without a value", ErrBadChallenge)
		}
		key := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(s); i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
					b.WriteByte(s[i])
					continue
				}
				if s[i] == '"' {
					break
				}
				b.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("%w: unterminated quoted value of %s", ErrBadChallenge, key)
			}
			val, s = b.String(), s[i+1:]
		} else {
			end := strings.IndexByte(s, ',')
			if end < 0 {
				end = len(s)
			}
			val, s = strings.TrimSpace(s[:end]), s[end:]
		}
		if _, dup := params[key]; dup {
			return nil, fmt.Errorf("%w: parameter %s given twice", ErrBadChallenge, key)
		}
		params[key] = val
	}
	return params, nil
}

// quoted renders v as an HTTP quoted-string (RFC 9110 §5.6.4): a backslash
// before '"' and '\', every other byte as is — what the parser reads back.
// (Go's %q escapes differently: \x.. and \u.. are not HTTP's, and a
// device would read a realm or nonce other than the one it sent.)
func quoted(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}
