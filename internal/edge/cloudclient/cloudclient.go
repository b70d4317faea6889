// Package cloudclient is the gateway's one client of the Agent API: the
// base URL, the API key read at each request (so a rotated key is used at
// once everywhere), the TLS client (CA bundle, mTLS client certificate),
// request building (a body with its type and encoding, JSON, an
// Idempotency-Key) and one error for a non-2xx answer, StatusError, which
// says whether a retry can fix it.
//
// The uplink, the control channel (its REST fallback, and the headers and
// TLS of its WebSocket dial), the executor's policy fetch, key rotation and
// enrolment (provisioning, ping, the enrolment verifier, agent reports) all
// talk to the cloud through it.
package cloudclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/backoff"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/tracing"
)

// DefaultTimeout bounds one request of a Client built without an HTTP
// client.
const DefaultTimeout = 60 * time.Second

// DefaultMaxAnswer bounds how much of an answer is read when a Request
// does not say.
const DefaultMaxAnswer = 1 << 20

// TLSFiles names the PEM files of the TLS client: an optional CA bundle
// (else the system's roots) and an optional client certificate and key
// (mutual TLS).
type TLSFiles struct {
	CAFile   string
	CertFile string
	KeyFile  string
}

// LoadTLS builds the TLS client configuration: TLS 1.2+, the CA bundle and
// the client certificate when named.
func LoadTLS(files TLSFiles) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if files.CAFile != "" {
		pem, err := os.ReadFile(files.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cloud client: read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cloud client: CA file %s holds no PEM certificate", files.CAFile)
		}
		cfg.RootCAs = pool
	}
	if files.CertFile != "" || files.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cloud client: load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// NewHTTPClient builds the HTTP client towards the cloud from TLS files
// (see LoadTLS and HTTPClient).
func NewHTTPClient(files TLSFiles, timeout time.Duration) (*http.Client, error) {
	cfg, err := LoadTLS(files)
	if err != nil {
		return nil, err
	}
	return HTTPClient(cfg, timeout), nil
}

// HTTPClient builds an HTTP client over a TLS configuration (nil: the
// defaults) whose requests, answer headers included, time out after
// timeout. The configuration is cloned: net/http adds "h2" to the one it
// is given, which must not leak into a WebSocket dial sharing it.
func HTTPClient(cfg *tls.Config, timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg != nil {
		tr.TLSClientConfig = cfg.Clone()
	}
	tr.MaxIdleConnsPerHost = 8
	tr.ResponseHeaderTimeout = timeout
	return &http.Client{Transport: tr, Timeout: timeout}
}

// TLSConfig returns the TLS configuration of an HTTP client's transport,
// or nil when it has none of its own.
func TLSConfig(hc *http.Client) *tls.Config {
	if hc == nil {
		return nil
	}
	if tr, ok := hc.Transport.(*http.Transport); ok {
		return tr.TLSClientConfig
	}
	return nil
}

// Options configure a Client.
type Options struct {
	// BaseURL is the Agent API (https://host); a trailing slash is ignored.
	BaseURL string
	// APIKey returns the key sent with each request; it is called for
	// every request, so a rotated key is used at once. nil (or "") sends
	// no key (provisioning).
	APIKey func() string
	// GatewayID, when set, is sent as X-Gateway-Id (informational).
	GatewayID string
	// HTTP sends the requests; nil builds one without TLS files and with
	// DefaultTimeout.
	HTTP *http.Client
}

// Client sends requests to the Agent API. It is safe for concurrent use.
type Client struct {
	base      string
	key       func() string
	gatewayID string
	hc        *http.Client
}

// New returns a Client.
func New(opts Options) *Client {
	hc := opts.HTTP
	if hc == nil {
		hc = HTTPClient(nil, DefaultTimeout)
	}
	key := opts.APIKey
	if key == nil {
		key = func() string { return "" }
	}
	return &Client{base: strings.TrimRight(opts.BaseURL, "/"), key: key, gatewayID: opts.GatewayID, hc: hc}
}

// BaseURL is the Agent API's base URL, without a trailing slash.
func (c *Client) BaseURL() string { return c.base }

// APIKey is the current API key ("" when there is none).
func (c *Client) APIKey() string { return c.key() }

// HTTPClient is the HTTP client the requests go through.
func (c *Client) HTTPClient() *http.Client { return c.hc }

// TLSConfig is the TLS configuration of the client's transport, or nil.
func (c *Client) TLSConfig() *tls.Config { return TLSConfig(c.hc) }

// Header returns the authentication headers of a request built elsewhere
// (the control channel's WebSocket dial): the current API key and the
// gateway id when known.
func (c *Client) Header() http.Header {
	h := http.Header{}
	c.authenticate(h, "")
	return h
}

func (c *Client) authenticate(h http.Header, key string) {
	if key == "" {
		key = c.key()
	}
	if key != "" {
		h.Set(protocol.HeaderAPIKey, key)
	}
	if c.gatewayID != "" {
		h.Set(protocol.HeaderGatewayID, c.gatewayID)
	}
}

// Request is one request to the Agent API.
type Request struct {
	// Method is the HTTP method; "" is GET.
	Method string
	// Path is the path below the base URL, with its query.
	Path string
	// Body is sent as is with ContentType and ContentEncoding.
	Body            []byte
	ContentType     string
	ContentEncoding string
	// JSON, when not nil, is encoded as the body (application/json) in
	// place of Body.
	JSON any
	// IdempotencyKey, when set, is sent as Idempotency-Key.
	IdempotencyKey string
	// Key, when set, is sent instead of the current API key (key rotation
	// asks for a new key with the one it replaces).
	Key string
	// MaxAnswer bounds how much of the answer is read (DefaultMaxAnswer).
	MaxAnswer int64
}

// Answer is a 2xx answer.
type Answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends a request. A non-2xx answer is a *StatusError; a request that
// got no answer (network, TLS, timeout) is an error naming the method and
// path.
func (c *Client) Do(ctx context.Context, r Request) (*Answer, error) {
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	body, ctype := r.Body, r.ContentType
	if r.JSON != nil {
		b, err := json.Marshal(r.JSON)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encode request: %w", method, r.Path, err)
		}
		body, ctype = b, "application/json"
	}
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+r.Path, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: build request: %w", method, r.Path, err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if r.ContentEncoding != "" {
		req.Header.Set("Content-Encoding", r.ContentEncoding)
	}
	if r.IdempotencyKey != "" {
		req.Header.Set(protocol.HeaderIdempotencyKey, r.IdempotencyKey)
	}
	if tp := tracing.Traceparent(ctx); tp != "" {
		// The caller's span continues in the cloud (docs/protocol.md).
		req.Header.Set(tracing.Header, tp)
	}
	c.authenticate(req.Header, r.Key)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, r.Path, err)
	}
	defer resp.Body.Close()
	limit := r.MaxAnswer
	if limit <= 0 {
		limit = DefaultMaxAnswer
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if resp.StatusCode/100 != 2 {
		// A truncated error body still says what the status says.
		return nil, newStatusError(method, r.Path, resp, data)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, r.Path, err)
	}
	return &Answer{Status: resp.StatusCode, Header: resp.Header, Body: data}, nil
}

// Call sends a request and decodes a 2xx answer's JSON into out (nil: the
// answer is not decoded).
func (c *Client) Call(ctx context.Context, r Request, out any) error {
	a, err := c.Do(ctx, r)
	if err != nil || out == nil {
		return err
	}
	if err := json.Unmarshal(a.Body, out); err != nil {
		method := r.Method
		if method == "" {
			method = http.MethodGet
		}
		return fmt.Errorf("%s %s: decode answer: %w", method, r.Path, err)
	}
	return nil
}

// StatusError is a non-2xx answer of the cloud.
type StatusError struct {
	// Method and Path name the request.
	Method, Path string
	// Status is the HTTP status code.
	Status int
	// Body is the cloud's error document; when the answer was not one,
	// Body.Message holds its text.
	Body protocol.ErrorResponse
	// RetryAfter is the pause the cloud asked for (Retry-After), or 0.
	RetryAfter time.Duration
}

func newStatusError(method, path string, resp *http.Response, data []byte) *StatusError {
	se := &StatusError{Method: method, Path: path, Status: resp.StatusCode,
		RetryAfter: backoff.ParseRetryAfter(resp.Header.Get(protocol.HeaderRetryAfter), time.Now())}
	if json.Unmarshal(data, &se.Body) != nil || (se.Body.Error == "" && se.Body.Message == "") {
		se.Body = protocol.ErrorResponse{Message: strings.TrimSpace(string(data))}
	}
	return se
}

// ResponseError is the StatusError of an answer read elsewhere (the
// WebSocket handshake's), reading at most 64 KiB of its body.
func ResponseError(method, path string, resp *http.Response) *StatusError {
	var data []byte
	if resp.Body != nil {
		data, _ = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	}
	return newStatusError(method, path, resp, data)
}

// Error implements error: "POST /v2/gateway/keys/rotate: 409 Conflict:
// key_conflict: …".
func (e *StatusError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.Body.Error != "" {
		b.WriteString(": " + e.Body.Error)
	}
	if e.Body.Field != "" {
		b.WriteString(": " + e.Body.Field)
	}
	if e.Body.Message != "" {
		b.WriteString(": " + e.Body.Message)
	}
	return b.String()
}

// Retryable reports whether sending the same request again can succeed:
// 408, 425, 429 and every 5xx. Any other 4xx is the cloud's final word on
// this request.
func (e *StatusError) Retryable() bool {
	switch e.Status {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return e.Status >= 500
}

// Unauthorized reports whether the cloud refused the API key (401, 403).
func (e *StatusError) Unauthorized() bool {
	return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
}

// Retryable reports whether a failed request may succeed if sent again:
// a StatusError says so itself; any other error (network, TLS, timeout, an
// answer cut short) is retryable.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.Retryable()
	}
	return true
}

// Status returns the StatusError in err's chain, or nil.
func Status(err error) *StatusError {
	var se *StatusError
	if errors.As(err, &se) {
		return se
	}
	return nil
}
