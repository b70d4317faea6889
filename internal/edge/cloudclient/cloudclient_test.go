package cloudclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/cloudclient"
	"github.com/staffcontrol/staffcontrol/internal/edge/enroll"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// answering is a real HTTP server answering every request with status,
// body and headers, and recording the requests it got.
type answering struct {
	*httptest.Server
	mu   sync.Mutex
	seen []*http.Request
	body [][]byte
}

func newAnswering(t *testing.T, status int, body string, header http.Header) *answering {
	t.Helper()
	a := &answering{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.seen = append(a.seen, r.Clone(context.Background()))
		a.body = append(a.body, b)
		a.mu.Unlock()
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *answering) last() (*http.Request, []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[len(a.seen)-1], a.body[len(a.body)-1]
}

func errorBody(code, field, msg string) string {
	b, _ := json.Marshal(protocol.ErrorResponse{Error: code, Field: field, Message: msg})
	return string(b)
}

// TestStatusClassification: which answers a retry can fix, which refuse
// the key, and what the error carries.
func TestStatusClassification(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status       int
		retryable    bool
		unauthorized bool
	}{
		{http.StatusBadRequest, false, false},
		{http.StatusUnauthorized, false, true},
		{http.StatusForbidden, false, true},
		{http.StatusNotFound, false, false},
		{http.StatusRequestTimeout, true, false},
		{http.StatusConflict, false, false},
		{http.StatusRequestEntityTooLarge, false, false},
		{http.StatusUnprocessableEntity, false, false},
		{http.StatusTooEarly, true, false},
		{http.StatusTooManyRequests, true, false},
		{http.StatusInternalServerError, true, false},
		{http.StatusBadGateway, true, false},
		{http.StatusServiceUnavailable, true, false},
		{http.StatusGatewayTimeout, true, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			t.Parallel()
			srv := newAnswering(t, tt.status, errorBody("some_code", "events[3].user_sid", "why"), nil)
			c := cloudclient.New(cloudclient.Options{BaseURL: srv.URL + "/", APIKey: func() string { return "k" }})
			_, err := c.Do(context.Background(), cloudclient.Request{Method: http.MethodPost, Path: protocol.PathIngestLogs, Body: []byte("{}")})
			se := cloudclient.Status(err)
			if se == nil {
				t.Fatalf("err = %v, want a *StatusError", err)
			}
			if se.Status != tt.status || se.Retryable() != tt.retryable || cloudclient.Retryable(err) != tt.retryable ||
				se.Unauthorized() != tt.unauthorized {
				t.Fatalf("status %d: retryable %v (func %v), unauthorized %v; want %v, %v", se.Status, se.Retryable(),
					cloudclient.Retryable(err), se.Unauthorized(), tt.retryable, tt.unauthorized)
			}
			want := protocol.ErrorResponse{Error: "some_code", Field: "events[3].user_sid", Message: "why"}
			if se.Body != want || se.Method != http.MethodPost || se.Path != protocol.PathIngestLogs {
				t.Fatalf("error %+v", se)
			}
			msg := fmt.Sprintf("POST %s: %d %s: some_code: events[3].user_sid: why", protocol.PathIngestLogs, tt.status, http.StatusText(tt.status))
			if err.Error() != msg {
				t.Fatalf("message %q, want %q", err.Error(), msg)
			}
			wrapped := fmt.Errorf("step: %w", err)
			if cloudclient.Status(wrapped) != se || cloudclient.Retryable(wrapped) != tt.retryable {
				t.Fatal("the classification does not survive wrapping")
			}
		})
	}
}

// TestErrorBodyNotJSON: an answer that is not the cloud's error document
// (a proxy's page) still gives its text.
func TestErrorBodyNotJSON(t *testing.T) {
	t.Parallel()
	srv := newAnswering(t, http.StatusBadGateway, "  upstream unreachable\n", nil)
	_, err := cloudclient.New(cloudclient.Options{BaseURL: srv.URL}).Do(context.Background(), cloudclient.Request{Path: protocol.PathGatewayPing})
	se := cloudclient.Status(err)
	if se == nil || se.Body.Message != "upstream unreachable" || se.Body.Error != "" || !se.Retryable() {
		t.Fatalf("err = %#v", err)
	}
	if err.Error() != "GET /v2/gateway/ping: 502 Bad Gateway: upstream unreachable" {
		t.Fatalf("message %q", err)
	}
}

// TestRetryAfter: the pause the cloud asks for, in seconds or as an
// HTTP-date, is on the error.
func TestRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		header string
		lo, hi time.Duration
	}{
		{"seconds", "7", 7 * time.Second, 7 * time.Second},
		{"HTTP-date", time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat), 28 * time.Second, 30 * time.Second},
		{"date in the past", time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat), 0, 0},
		{"garbage", "soon", 0, 0},
		{"none", "", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			if tt.header != "" {
				h.Set(protocol.HeaderRetryAfter, tt.header)
			}
			srv := newAnswering(t, http.StatusServiceUnavailable, errorBody(protocol.ErrCodeUnavailable, "", "busy"), h)
			_, err := cloudclient.New(cloudclient.Options{BaseURL: srv.URL}).Do(context.Background(), cloudclient.Request{Path: "/x"})
			se := cloudclient.Status(err)
			if se == nil || se.RetryAfter < tt.lo || se.RetryAfter > tt.hi {
				t.Fatalf("Retry-After %q: err %v, want a pause in [%v, %v]", tt.header, err, tt.lo, tt.hi)
			}
		})
	}
}

// TestNetworkErrorIsRetryable: no answer at all is worth a retry, and the
// error names the request.
func TestNetworkErrorIsRetryable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := cloudclient.New(cloudclient.Options{BaseURL: url}).Do(context.Background(), cloudclient.Request{Path: protocol.PathGatewayPing})
	if err == nil || cloudclient.Status(err) != nil || !cloudclient.Retryable(err) || !strings.HasPrefix(err.Error(), "GET /v2/gateway/ping: ") {
		t.Fatalf("err = %v", err)
	}
	if cloudclient.Retryable(nil) {
		t.Fatal("nil is retryable")
	}
}

// TestKeyReadAtEachRequest: after the keyring rotates, the very next
// request carries the new key; a request may name its own key.
func TestKeyReadAtEachRequest(t *testing.T) {
	t.Parallel()
	srv := newAnswering(t, http.StatusOK, `{"gateway_id":"g"}`, nil)
	path := filepath.Join(t.TempDir(), enroll.FileName)
	creds := &enroll.Credentials{GatewayID: "g", APIKey: "scgw_old"}
	if err := enroll.Save(path, creds); err != nil {
		t.Fatal(err)
	}
	ring, err := enroll.NewKeyring(path, creds)
	if err != nil {
		t.Fatal(err)
	}
	c := cloudclient.New(cloudclient.Options{BaseURL: srv.URL, APIKey: ring.APIKey})
	ctx := context.Background()
	sent := func() string {
		t.Helper()
		r, _ := srv.last()
		return r.Header.Get(protocol.HeaderAPIKey)
	}
	var ping protocol.PingResponse
	if err := c.Call(ctx, cloudclient.Request{Path: protocol.PathGatewayPing}, &ping); err != nil || ping.GatewayID != "g" {
		t.Fatalf("ping %+v, %v", ping, err)
	}
	if k := sent(); k != "scgw_old" {
		t.Fatalf("sent %q before the rotation", k)
	}
	if err := ring.Replace("scgw_new"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(ctx, cloudclient.Request{Path: protocol.PathGatewayPing}); err != nil {
		t.Fatal(err)
	}
	if k := sent(); k != "scgw_new" || c.APIKey() != "scgw_new" || c.Header().Get(protocol.HeaderAPIKey) != "scgw_new" {
		t.Fatalf("sent %q after the rotation (APIKey %q)", k, c.APIKey())
	}
	if _, err := c.Do(ctx, cloudclient.Request{Method: http.MethodPost, Path: protocol.PathGatewayKeyRotate, Key: "scgw_old"}); err != nil {
		t.Fatal(err)
	}
	if k := sent(); k != "scgw_old" {
		t.Fatalf("sent %q, want the key the request named", k)
	}
}

// TestRequestBuilding: body, type, encoding, Idempotency-Key, the gateway
// id; no key header without a key.
func TestRequestBuilding(t *testing.T) {
	t.Parallel()
	srv := newAnswering(t, http.StatusOK, `{}`, nil)
	ctx := context.Background()
	c := cloudclient.New(cloudclient.Options{BaseURL: srv.URL, GatewayID: "gw-1", APIKey: func() string { return "k" }})
	if _, err := c.Do(ctx, cloudclient.Request{Method: http.MethodPost, Path: protocol.PathIngestLogs, Body: []byte("gz"),
		ContentType: "application/json", ContentEncoding: "gzip", IdempotencyKey: "tok"}); err != nil {
		t.Fatal(err)
	}
	r, body := srv.last()
	if r.Method != http.MethodPost || r.URL.Path != protocol.PathIngestLogs || string(body) != "gz" ||
		r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Content-Encoding") != "gzip" ||
		r.Header.Get(protocol.HeaderIdempotencyKey) != "tok" || r.Header.Get(protocol.HeaderGatewayID) != "gw-1" ||
		r.Header.Get(protocol.HeaderAPIKey) != "k" {
		t.Fatalf("request %s %s %q %v", r.Method, r.URL, body, r.Header)
	}

	anon := cloudclient.New(cloudclient.Options{BaseURL: srv.URL})
	req := protocol.ProvisionRequest{OrganizationID: 7, ProvisioningToken: "t"}
	if err := anon.Call(ctx, cloudclient.Request{Method: http.MethodPost, Path: protocol.PathGatewayProvision, JSON: req}, nil); err != nil {
		t.Fatal(err)
	}
	r, body = srv.last()
	var got protocol.ProvisionRequest
	if err := json.Unmarshal(body, &got); err != nil || got != req || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("JSON body %q (%v), type %q", body, err, r.Header.Get("Content-Type"))
	}
	if len(r.Header.Values(protocol.HeaderAPIKey)) != 0 {
		t.Fatal("an API key header without a key")
	}
	if len(r.Header.Values(protocol.HeaderGatewayID)) != 0 {
		t.Fatal("a gateway id header without a gateway id")
	}
	if r.ContentLength != int64(len(body)) {
		t.Fatalf("content length %d for %d bytes", r.ContentLength, len(body))
	}
}

// TestAnswerBoundsAndDecoding: an answer is read up to MaxAnswer, and an
// answer that is not the JSON expected is an error naming the request.
func TestAnswerBoundsAndDecoding(t *testing.T) {
	t.Parallel()
	srv := newAnswering(t, http.StatusOK, strings.Repeat("x", 5000), nil)
	c := cloudclient.New(cloudclient.Options{BaseURL: srv.URL})
	a, err := c.Do(context.Background(), cloudclient.Request{Path: "/big", MaxAnswer: 100})
	if err != nil || len(a.Body) != 100 || a.Status != http.StatusOK {
		t.Fatalf("answer %v, %v", a, err)
	}
	var v struct{}
	err = c.Call(context.Background(), cloudclient.Request{Path: "/big"}, &v)
	if err == nil || !strings.HasPrefix(err.Error(), "GET /big: decode answer: ") || !cloudclient.Retryable(err) {
		t.Fatalf("err = %v", err)
	}
	var syn *json.SyntaxError
	if !errors.As(err, &syn) {
		t.Fatalf("err %v does not wrap the decode error", err)
	}
}

func TestNewHTTPClientRejectsBadFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not pem"), 0o600)
	for _, f := range []cloudclient.TLSFiles{{CAFile: bad}, {CAFile: filepath.Join(dir, "missing.pem")}, {CertFile: bad, KeyFile: bad}} {
		if _, err := cloudclient.NewHTTPClient(f, time.Second); err == nil {
			t.Errorf("%+v: no error", f)
		}
	}
}

// TestHTTPClientOwnsItsTLSConfig: the transport gets a copy, so net/http
// adding "h2" to it cannot reach the configuration a WebSocket dial uses.
func TestHTTPClientOwnsItsTLSConfig(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	given := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	given.NextProtos = nil
	hc := cloudclient.HTTPClient(given, 5*time.Second)
	c := cloudclient.New(cloudclient.Options{BaseURL: srv.URL, HTTP: hc})
	a, err := c.Do(context.Background(), cloudclient.Request{Path: "/"})
	if err != nil {
		t.Fatal(err)
	}
	if string(a.Body) != "HTTP/2.0" {
		t.Fatalf("spoke %s; the test needs HTTP/2", a.Body)
	}
	if len(given.NextProtos) != 0 {
		t.Fatalf("the given configuration was changed: NextProtos %v", given.NextProtos)
	}
	if cfg := c.TLSConfig(); cfg == nil || cfg == given {
		t.Fatalf("TLSConfig %p (given %p)", cfg, given)
	}
	if cloudclient.TLSConfig(nil) != nil || cloudclient.TLSConfig(&http.Client{}) != nil {
		t.Fatal("a TLS configuration from a client without one")
	}
}
