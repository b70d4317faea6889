// Command dashboard-api runs the Dashboard API (:3000): organisations, employees,
// gateways, devices, policies and reports. Configuration comes from the
// environment; see docs/operations.md.
package main

import "github.com/staffcontrol/staffcontrol/internal/cli"

func main() { cli.Main("dashboard-api", run, nil) }
