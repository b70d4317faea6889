package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// TestDeviceCommands: staffctl device sends through devicecmd; with --wait
// it prints the final row and exits non-zero unless the device carried
// the command out (a gateway answers here through the command queue as the
// control channel does); device sync resends the list; another
// organisation's device and bad flags are refused.
func TestDeviceCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	env := map[string]string{"DATABASE_URL": db.AdminURL}
	must := mustStaffctl(t, env)
	must("org", "create", "--name", "Acme")
	must("org", "create", "--name", "Other")
	out := must("gateway", "register", "--org", "acme", "--serial", "GW-1")
	gw := uuid.MustParse(regexp.MustCompile(`gateway ([0-9a-f-]{36}) registered`).FindStringSubmatch(out)[1])
	conn, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var org, device int64
	if err := conn.QueryRow(ctx, `INSERT INTO devices (organization_id, gateway_id, name, adapter_type, host, port)
		SELECT organization_id, id, 'Front door', 'hikvision', '10.0.0.5', 80 FROM gateway_instances WHERE id = $1
		RETURNING organization_id, id`, gw).Scan(&org, &device); err != nil {
		t.Fatal(err)
	}
	dev := strconv.FormatInt(device, 10)

	var c struct {
		ID, Status, Command string
		Error               *string
		Response            json.RawMessage
	}
	if err := json.Unmarshal([]byte(must("device", "open-door", "--org", "acme", "--device", dev, "--door", "2")), &c); err != nil ||
		c.Status != "pending" || c.Command != "open_door" {
		t.Fatalf("open-door: %+v (%v)", c, err)
	}

	// A gateway answering through the queue: claim, received, finished.
	pool := pg.Pool(t, db.IngestURL, 2)
	q, err := commandqueue.New(pool, commandqueue.Options{}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	gateway := func(result string) chan error {
		done := make(chan error, 1)
		go func() {
			tenant := postgres.Tenant{OrganizationID: org}
			for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				cs, err := q.Claim(ctx, tenant, gw, 10)
				if err != nil {
					done <- err
					return
				}
				for _, cmd := range cs {
					if err := q.Received(ctx, tenant, gw, cmd.ID); err != nil {
						done <- err
						return
					}
					done <- q.Finish(ctx, tenant, gw, cmd.ID, true, json.RawMessage(result), "")
					return
				}
			}
			done <- context.DeadlineExceeded
		}()
		return done
	}
	// The pending open-door is delivered first; answer it, then the next.
	if err := <-gateway(`{"status":"ok"}`); err != nil {
		t.Fatal(err)
	}
	done := gateway(`{"status":"ok","data":{"model":"DS-K1T"}}`)
	out = must("device", "info", "--org", "acme", "--device", dev, "--wait", "20s")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &c); err != nil || c.Status != "completed" || !strings.Contains(string(c.Response), "DS-K1T") {
		t.Fatalf("info --wait: %s (%v)", out, err)
	}
	done = gateway(`{"status":"failed","message":"door is locked down"}`)
	out, _, err = staffctl(t, env, "device", "open-door", "--org", "acme", "--device", dev, "--wait", "20s")
	if e := <-done; e != nil {
		t.Fatal(e)
	}
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "failed: door is locked down") || !strings.Contains(out, `"status": "failed"`) {
		t.Fatalf("a refused open-door --wait: %v, %s", err, out)
	}

	out = must("device", "sync", "--org", "acme", "--gateway", gw.String())
	if !regexp.MustCompile(`command [0-9a-f-]{36} queued: gateway ` + gw.String() + ` gets its list of 1 devices \(version \d+\)`).MatchString(out) {
		t.Fatalf("sync: %s", out)
	}

	bad := []struct {
		args []string
		want string
		code int
	}{
		{[]string{"device", "reboot", "--org", "other", "--device", dev}, "no device " + dev + " in organisation other", 1},
		{[]string{"device", "reboot", "--org", "acme", "--device", "999999"}, "no device 999999", 1},
		{[]string{"device", "reboot", "--org", "acme"}, "--device is required", 2},
		{[]string{"device", "reboot", "--device", dev}, "--org is required", 2},
		{[]string{"device", "open-door", "--org", "acme", "--device", dev, "--door", "99"}, "--door must be", 2},
		{[]string{"device", "open-door", "--org", "acme", "--device", dev, "--expires", "48h"}, "--expires must be", 2},
		{[]string{"device", "open-door", "--org", "acme", "--device", dev, "--params", "[1]"}, "--params must be a JSON object", 2},
		{[]string{"device", "sync", "--org", "other", "--gateway", gw.String()}, "no gateway " + gw.String() + " in organisation other", 1},
		{[]string{"device", "sync", "--org", "acme", "--gateway", "x"}, `"x" is not a gateway id`, 2},
		{[]string{"device", "explode"}, "unknown subcommand", 2},
	}
	for _, b := range bad {
		_, _, err := staffctl(t, env, b.args...)
		if err == nil || !strings.Contains(err.Error(), b.want) || exitCode(err) != b.code {
			t.Errorf("%v: err = %v (exit %d), want %q with exit %d", b.args, err, exitCode(err), b.want, b.code)
		}
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*)::int FROM device_commands`).Scan(&n); err != nil || n != 3 {
		t.Errorf("%d device commands recorded, want 3 (%v)", n, err)
	}
}
