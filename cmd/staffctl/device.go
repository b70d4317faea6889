package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/devicecmd"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

const deviceUsage = `usage: staffctl device <subcommand> [flags]

subcommands:
  open-door       open a door (--door N, default the device's first)
  close-door      close a door
  always-open     keep a door open
  always-closed   keep a door closed
  reboot          reboot the device
  info            read the device's information
  sync-time       set the device's clock
  sync            resend a gateway's device list (--gateway ID)

A device command goes through the device's gateway (a device_command in its
queue); with --wait, staffctl waits for the gateway's answer and prints the
command as JSON, exiting non-zero unless the device carried it out.
`

// deviceOps maps the subcommands to device operations.
var deviceOps = map[string]string{
	"open-door":     protocol.DeviceOpenDoor,
	"close-door":    protocol.DeviceCloseDoor,
	"always-open":   protocol.DeviceDoorAlwaysOpen,
	"always-closed": protocol.DeviceDoorAlwaysClosed,
	"reboot":        protocol.DeviceReboot,
	"info":          protocol.DeviceGetInfo,
	"sync-time":     protocol.DeviceSyncTime,
}

func runDevice(ctx context.Context, e env, args []string) error {
	sub, rest, err := subcommand(e, args, deviceUsage, "open-door", "close-door", "always-open", "always-closed", "reboot", "info", "sync-time", "sync")
	if err != nil {
		return err
	}
	if sub == "sync" {
		return runDeviceSync(ctx, e, rest)
	}
	return runDeviceCommand(ctx, e, sub, rest)
}

// runDeviceCommand sends one command through devicecmd (as the Dashboard
// API does) and, with --wait, polls its row until it is final.
func runDeviceCommand(ctx context.Context, e env, sub string, args []string) error {
	fs, dbURL := newFlags(e, "device "+sub, "device "+sub+" --org ID|SLUG --device ID [--door N] [--params JSON] [--expires 60s] [--wait 30s] [--database-url URL]")
	org := fs.String("org", "", "organisation id or slug the device belongs to (required)")
	device := fs.Int64("device", 0, "device id (required)")
	door := fs.Int("door", 0, "door number (door operations; 0: the device's first)")
	params := fs.String("params", "", "operation-specific arguments (a JSON object)")
	expires := fs.Duration("expires", devicecmd.DefaultTTL, "how long the command may wait for the gateway (1s to 24h)")
	wait := fs.Duration("wait", 0, "wait this long for the result (0: do not wait)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *device <= 0 {
		return usagef("device %s: --device is required (a device id)", sub)
	}
	if *wait < 0 || *wait > time.Hour {
		return usagef("device %s: --wait must be between 0 and 1h", sub)
	}
	req := devicecmd.Request{DeviceID: *device, Command: deviceOps[sub], Door: *door, TTL: *expires, CreatedBy: "staffctl"}
	if *params != "" {
		req.Params = json.RawMessage(*params)
	}
	if err := req.Check(); err != nil {
		return usagef("device %s: %s", sub, flagOf(err))
	}
	pool, actor, err := orgScope(ctx, e, *dbURL, *org)
	if err != nil {
		return err
	}
	defer pool.Close()
	q, err := commandQueue(pool)
	if err != nil {
		return err
	}
	svc := devicecmd.New(pool, q)
	var c devicecmd.Command
	err = postgres.InTenant(ctx, pool, actor.Tenant, func(tx pgx.Tx) error {
		var err error
		c, err = svc.SendTx(ctx, tx, req)
		if err == nil && c.OrganizationID != actor.Tenant.OrganizationID {
			err = devicecmd.ErrNotFound // another organisation's: never sent
		}
		return err
	})
	if errors.Is(err, devicecmd.ErrNotFound) {
		return &apperr.FieldError{Field: "device", Message: fmt.Sprintf("no device %d in organisation %s", *device, *org)}
	}
	if err != nil {
		return err
	}
	if *wait > 0 {
		c, err = waitForDeviceCommand(ctx, svc, actor, c, *wait)
		if err != nil {
			return err
		}
	}
	if err := printJSON(e, c); err != nil {
		return err
	}
	switch {
	case *wait == 0:
		return nil
	case !c.Final():
		return fmt.Errorf("device command %s: still %s after %v", c.ID, c.Status, *wait)
	case c.Status != devicecmd.StatusCompleted:
		reason := c.Status
		if c.Error != nil {
			reason += ": " + *c.Error
		}
		return fmt.Errorf("device command %s %s", c.ID, reason)
	}
	return nil
}

// waitForDeviceCommand polls c's row until it is final or wait has passed.
func waitForDeviceCommand(ctx context.Context, svc *devicecmd.Service, actor accounts.Actor, c devicecmd.Command, wait time.Duration) (devicecmd.Command, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for !c.Final() {
		select {
		case <-ctx.Done():
			return c, nil
		case <-time.After(200 * time.Millisecond):
		}
		now, err := svc.Get(ctx, actor.Tenant, c.ID)
		if ctx.Err() != nil {
			return c, nil
		}
		if err != nil {
			return c, err
		}
		c = now
	}
	return c, nil
}

// runDeviceSync resends a gateway's whole device list.
func runDeviceSync(ctx context.Context, e env, args []string) error {
	fs, dbURL := newFlags(e, "device sync", "device sync --org ID|SLUG --gateway ID [--database-url URL]")
	org := fs.String("org", "", "organisation id or slug the gateway belongs to (required)")
	gw := fs.String("gateway", "", "gateway id (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	id, err := uuid.Parse(*gw)
	if err != nil {
		return usagef("device sync: --gateway: %q is not a gateway id", *gw)
	}
	pool, actor, err := orgScope(ctx, e, *dbURL, *org)
	if err != nil {
		return err
	}
	defer pool.Close()
	belongs, err := accounts.New(pool, time.Now).GatewayInOrganization(ctx, actor.Tenant, actor.Tenant.OrganizationID, id)
	if err != nil {
		return err
	}
	if !belongs {
		return &apperr.FieldError{Field: "gateway", Message: fmt.Sprintf("no gateway %s in organisation %s", id, *org)}
	}
	q, err := commandQueue(pool)
	if err != nil {
		return err
	}
	c, err := devicecmd.New(pool, q).SyncGateway(ctx, actor.Tenant, id, "staffctl")
	if errors.Is(err, devicecmd.ErrNotFound) {
		return &apperr.FieldError{Field: "gateway", Message: fmt.Sprintf("no gateway %s (or it is revoked)", id)}
	}
	if err != nil {
		return err
	}
	var p protocol.DevicesPayload
	if err := json.Unmarshal(c.Payload, &p); err != nil {
		return fmt.Errorf("device sync: read the list back: %w", err)
	}
	fmt.Fprintf(e.stdout, "command %s queued: gateway %s gets its list of %d devices (version %d)\n", c.ID, id, len(p.Devices), p.Version)
	return nil
}

// flagOf renames a devicecmd field error after the flag that set it.
func flagOf(err error) string {
	e := apperr.As(err)
	if e == nil {
		return err.Error()
	}
	flag := map[string]string{"expires_in_seconds": "expires", "command": "command", "door": "door", "params": "params"}[e.Field]
	if flag == "" {
		return err.Error()
	}
	msg := e.Message
	if e.Field == "expires_in_seconds" {
		msg = "must be from 1s to " + strconv.Itoa(int(devicecmd.MaxTTL/time.Hour)) + "h"
	}
	return "--" + flag + " " + msg
}

func printJSON(e env, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", b)
	return err
}
