// Package vendors lists the door-terminal adapters the gateway ships: the
// one explicit list of factories its device registry is built from
// (cmd/gateway, staffctl up and the end-to-end tests use it).
package vendors

import (
	"log/slog"

	"github.com/staffcontrol/staffcontrol/internal/edge/devices"
	"github.com/staffcontrol/staffcontrol/internal/edge/devices/hikvision"
	"github.com/staffcontrol/staffcontrol/internal/edge/devices/zkteco"
)

// Factories returns the shipped adapters: Hikvision ISAPI and ZKTeco.
func Factories(log *slog.Logger) []devices.Factory {
	return []devices.Factory{hikvision.Factory(), zkteco.Factory(log)}
}
