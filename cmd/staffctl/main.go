// Command staffctl is the Staff Control administration tool: database
// migrations, organisations, users, gateway registration, the one-machine
// demo stack and load simulators.
package main

import "github.com/staffcontrol/staffcontrol/internal/cli"

func main() { cli.Main("staffctl", run, exitCode) }
