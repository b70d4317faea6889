// Command gateway is the Staff Control Agent Gateway: it collects data from
// desktop agents on the customer LAN, keeps it in a SQLite buffer and
// uploads it to the cloud Agent API.
package main

import "github.com/staffcontrol/staffcontrol/internal/cli"

func main() { cli.Main("gateway", run, exitCode) }
