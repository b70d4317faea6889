package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// gatewayDetails is what the live summary takes from the gateway's
// /health/details (read with its operator token, so that the agents are
// listed): the policy the gateway applied and the policy each listed agent
// reports running.
type gatewayDetails struct {
	Control *struct {
		PolicyVersion string `json:"policy_version"`
	} `json:"control"`
	Agents struct {
		Connected int `json:"connected"`
		Recent    []struct {
			PolicyVersion string `json:"policy_version"`
		} `json:"recent"`
	} `json:"agents"`
}

// maxDetailsBytes bounds the /health/details body read.
const maxDetailsBytes = 4 << 20

// parseGatewayDetails decodes a /health/details body.
func parseGatewayDetails(b []byte) (gatewayDetails, error) {
	var d gatewayDetails
	if err := json.Unmarshal(b, &d); err != nil {
		return gatewayDetails{}, fmt.Errorf("gateway details: %w", err)
	}
	return d, nil
}

// agentsOnPolicy is the gateway's applied policy version and how many of
// the listed agents report running it.
func (d gatewayDetails) agentsOnPolicy() (version string, on, listed int) {
	if d.Control != nil {
		version = d.Control.PolicyVersion
	}
	for _, a := range d.Agents.Recent {
		if version != "" && a.PolicyVersion == version {
			on++
		}
	}
	return version, on, len(d.Agents.Recent)
}

// fetchGatewayDetails GETs url's /health/details with the operator token.
func fetchGatewayDetails(ctx context.Context, client *http.Client, url, token string) (gatewayDetails, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/health/details", nil)
	if err != nil {
		return gatewayDetails{}, fmt.Errorf("gateway details: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return gatewayDetails{}, fmt.Errorf("gateway details: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxDetailsBytes))
	if err != nil {
		return gatewayDetails{}, fmt.Errorf("gateway details: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return gatewayDetails{}, fmt.Errorf("gateway details: %s", resp.Status)
	}
	return parseGatewayDetails(b)
}
