// Command agent-api runs the Agent API (:3001): batch ingest from gateways,
// the control channel and policy distribution. Configuration comes from the
// environment; see docs/operations.md.
package main

import "github.com/staffcontrol/staffcontrol/internal/cli"

func main() { cli.Main("agent-api", run, nil) }
