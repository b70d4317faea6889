// Package enroll gives the gateway its cloud identity: it exchanges the
// one-time provisioning token for an API key (POST /v2/gateway/provision),
// keeps the result in a key file (mode 0600) beside the buffer so later
// starts reuse it, and checks a key against the cloud (GET /v2/gateway/ping).
package enroll

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// FileName is the key file's name in the buffer directory.
const FileName = "gateway-key.json"

// Credentials are the gateway's cloud identity.
type Credentials struct {
	GatewayID      string    `json:"gateway_id"`
	OrganizationID int64     `json:"organization_id"`
	APIKey         string    `json:"api_key"`
	ServerURL      string    `json:"server_url"`
	ProvisionedAt  time.Time `json:"provisioned_at"`
}

// Load reads a key file. It returns (nil, nil) when the file does not exist.
func Load(path string) (*Credentials, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("enroll: read key file: %w", err)
	}
	var c Credentials
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("enroll: key file %s is corrupt: %w", path, err)
	}
	if c.APIKey == "" {
		return nil, fmt.Errorf("enroll: key file %s holds no api_key", path)
	}
	return &c, nil
}

// Save writes a key file atomically with mode 0600, durably: the file and
// its directory are synced.
func Save(path string, c *Credentials) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("enroll: encode key file: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".gateway-key-*")
	if err != nil {
		return fmt.Errorf("enroll: create key file: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("enroll: chmod key file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("enroll: write key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("enroll: sync key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("enroll: close key file: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("enroll: place key file: %w", err)
	}
	// The rename survives a power cut only once the directory is synced:
	// before, the previous key file (or none) may come back.
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("enroll: sync key file directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("enroll: sync key file directory: %w", err)
	}
	return nil
}

// StatusError is a non-2xx answer from the cloud.
type StatusError struct {
	Status int
	Body   protocol.ErrorResponse
}

// Error implements error.
func (e *StatusError) Error() string {
	msg := e.Body.Message
	if e.Body.Field != "" {
		msg = e.Body.Field + ": " + msg
	}
	return fmt.Sprintf("cloud answered %d %s: %s", e.Status, http.StatusText(e.Status), msg)
}

// Permanent reports whether retrying the same request cannot succeed
// (4xx other than 408, 409 and 429).
func (e *StatusError) Permanent() bool {
	return e.Status >= 400 && e.Status < 500 && e.Status != 408 && e.Status != 409 && e.Status != 429
}

func do(ctx context.Context, client *http.Client, req *http.Request, out any) error {
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("enroll: %s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("enroll: read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		se := &StatusError{Status: resp.StatusCode}
		_ = json.Unmarshal(body, &se.Body)
		if se.Body.Message == "" {
			se.Body.Message = strings.TrimSpace(string(body))
		}
		return se
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("enroll: decode answer of %s: %w", req.URL.Path, err)
	}
	return nil
}

// EnrolmentVerifier fetches the verifier of the gateway's organisation's
// agent enrolment secret ("" when the organisation has none).
func EnrolmentVerifier(ctx context.Context, client *http.Client, serverURL, apiKey string) (string, error) {
	hr, err := http.NewRequest(http.MethodGet, strings.TrimRight(serverURL, "/")+protocol.PathGatewayEnrolment, nil)
	if err != nil {
		return "", fmt.Errorf("enroll: build enrolment request: %w", err)
	}
	hr.Header.Set(protocol.HeaderAPIKey, apiKey)
	var resp protocol.EnrolmentVerifier
	if err := do(ctx, client, hr, &resp); err != nil {
		return "", err
	}
	return resp.Verifier, nil
}

// ReportAgent tells the cloud an agent enrolled at this gateway.
func ReportAgent(ctx context.Context, client *http.Client, serverURL, apiKey string, a protocol.AgentEnrolled) error {
	body, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("enroll: encode agent report: %w", err)
	}
	hr, err := http.NewRequest(http.MethodPost, strings.TrimRight(serverURL, "/")+protocol.PathGatewayAgents, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("enroll: build agent report: %w", err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set(protocol.HeaderAPIKey, apiKey)
	return do(ctx, client, hr, nil)
}

// Provision exchanges a provisioning token for credentials.
func Provision(ctx context.Context, client *http.Client, serverURL string, req protocol.ProvisionRequest) (*Credentials, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("enroll: encode provision request: %w", err)
	}
	hr, err := http.NewRequest(http.MethodPost, strings.TrimRight(serverURL, "/")+protocol.PathGatewayProvision, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("enroll: build provision request: %w", err)
	}
	hr.Header.Set("Content-Type", "application/json")
	var resp protocol.ProvisionResponse
	if err := do(ctx, client, hr, &resp); err != nil {
		return nil, err
	}
	if resp.APIKey == "" || resp.GatewayID == "" {
		return nil, errors.New("enroll: provisioning answer lacks api_key or gateway_id")
	}
	return &Credentials{GatewayID: resp.GatewayID, OrganizationID: resp.OrganizationID, APIKey: resp.APIKey,
		ServerURL: serverURL, ProvisionedAt: time.Now().UTC()}, nil
}

// Ping checks an API key against the cloud.
func Ping(ctx context.Context, client *http.Client, serverURL, apiKey string) (*protocol.PingResponse, error) {
	hr, err := http.NewRequest(http.MethodGet, strings.TrimRight(serverURL, "/")+protocol.PathGatewayPing, nil)
	if err != nil {
		return nil, fmt.Errorf("enroll: build ping: %w", err)
	}
	if apiKey != "" {
		hr.Header.Set(protocol.HeaderAPIKey, apiKey)
	}
	var resp protocol.PingResponse
	if err := do(ctx, client, hr, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}
