// Package enroll gives the gateway its cloud identity: it exchanges the
// one-time provisioning token for an API key (POST /v2/gateway/provision),
// keeps the result in a key file (mode 0600) beside the buffer so later
// starts reuse it, and checks a key against the cloud (GET /v2/gateway/ping).
package enroll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/cloudclient"
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

// EnrolmentVerifier fetches the verifier of the gateway's organisation's
// agent enrolment secret ("" when the organisation has none).
func EnrolmentVerifier(ctx context.Context, c *cloudclient.Client) (string, error) {
	var resp protocol.EnrolmentVerifier
	if err := c.Call(ctx, cloudclient.Request{Path: protocol.PathGatewayEnrolment}, &resp); err != nil {
		return "", fmt.Errorf("enroll: %w", err)
	}
	return resp.Verifier, nil
}

// ReportAgent tells the cloud an agent enrolled at this gateway.
func ReportAgent(ctx context.Context, c *cloudclient.Client, a protocol.AgentEnrolled) error {
	if err := c.Call(ctx, cloudclient.Request{Method: http.MethodPost, Path: protocol.PathGatewayAgents, JSON: a}, nil); err != nil {
		return fmt.Errorf("enroll: report agent: %w", err)
	}
	return nil
}

// Provision exchanges a provisioning token for credentials. It sends no
// API key: there is none yet.
func Provision(ctx context.Context, client *http.Client, serverURL string, req protocol.ProvisionRequest) (*Credentials, error) {
	c := cloudclient.New(cloudclient.Options{BaseURL: serverURL, HTTP: client})
	var resp protocol.ProvisionResponse
	if err := c.Call(ctx, cloudclient.Request{Method: http.MethodPost, Path: protocol.PathGatewayProvision, JSON: req}, &resp); err != nil {
		return nil, fmt.Errorf("enroll: provision: %w", err)
	}
	if resp.APIKey == "" || resp.GatewayID == "" {
		return nil, errors.New("enroll: provisioning answer lacks api_key or gateway_id")
	}
	return &Credentials{GatewayID: resp.GatewayID, OrganizationID: resp.OrganizationID, APIKey: resp.APIKey,
		ServerURL: serverURL, ProvisionedAt: time.Now().UTC()}, nil
}

// Ping checks the client's API key against the cloud (without a key, the
// cloud's reachability: it answers 401).
func Ping(ctx context.Context, c *cloudclient.Client) (*protocol.PingResponse, error) {
	var resp protocol.PingResponse
	if err := c.Call(ctx, cloudclient.Request{Path: protocol.PathGatewayPing}, &resp); err != nil {
		return nil, fmt.Errorf("enroll: ping: %w", err)
	}
	return &resp, nil
}
