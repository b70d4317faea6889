package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi/agentapitest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/devicecmd"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/edge/config"
	"github.com/staffcontrol/staffcontrol/internal/edge/devices"
	"github.com/staffcontrol/staffcontrol/internal/edge/devices/vendors"
	"github.com/staffcontrol/staffcontrol/internal/edge/gateway"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/sim/hiksim"
	"github.com/staffcontrol/staffcontrol/internal/sim/zksim"
)

// BenchmarkDoorOpenRoundTrip: open_door through the whole system, one
// command at a time: devicecmd.Send (the Dashboard API's call: a
// device_commands row and its gateway command, in one transaction) → the
// real Agent API (command queue, NOTIFY, the control channel's WebSocket)
// → a gateway provisioned as in production (its device list from
// devicecmd.SyncGateway) → the adapter → the simulated terminal on
// loopback, and back until the device_commands row is completed, as
// devicecmd.Get sees it (polled every 2 ms, the measurement's resolution).
// b.N opens per vendor; p50 and p99 reported. Side by side, the baseline
// path=adapter: the same open straight through an adapter.
func BenchmarkDoorOpenRoundTrip(b *testing.B) {
	ctx := context.Background()
	db := pg.NewDatabase(b)
	logger := logtest.New(b)
	ingPool, err := postgres.Connect(ctx, db.IngestURL, 10, pg.ContextKey())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(ingPool.Close)
	api := agentapitest.Start(b, ingPool, agentapitest.Options{Logger: logger})
	acc := accounts.New(pg.Pool(b, db.PlatformAdminURL, 2), time.Now)
	admin := accounts.Actor{Name: "bench", Tenant: postgres.Tenant{Role: postgres.AppAdmin}}
	org, err := acc.CreateOrganization(ctx, admin, "Doors", "")
	if err != nil {
		b.Fatal(err)
	}
	regn, err := acc.RegisterGateway(ctx, admin, org.ID, "GW-DOORS", "", time.Hour)
	if err != nil {
		b.Fatal(err)
	}

	// One terminal of each vendor, and their devices rows.
	hik := hiksim.New(hiksim.Options{Location: time.UTC})
	if err := hik.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { hik.Close() })
	zk := zksim.New(zksim.Options{Records: -1, CommKey: 4711})
	if err := zk.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { zk.Close() })
	conn, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	ids := map[string]int64{}
	for _, d := range []struct{ kind, addr, config string }{
		{"hikvision", hik.Addr(), `{"username":"admin","password":"Admin12345","time_zone":"UTC"}`},
		{"zkteco", zk.Addr(), `{"comm_key":4711,"time_zone":"UTC"}`},
	} {
		i := strings.LastIndexByte(d.addr, ':')
		port, _ := strconv.Atoi(d.addr[i+1:])
		var id int64
		if err := conn.QueryRow(ctx, `INSERT INTO devices (organization_id, gateway_id, name, adapter_type, host, port, config)
			VALUES ($1, $2, $3, $3, $4, $5, $6) RETURNING id`, org.ID, regn.GatewayID, d.kind, d.addr[:i], port, d.config).Scan(&id); err != nil {
			b.Fatal(err)
		}
		ids[d.kind] = id
	}
	dash, err := postgres.Connect(ctx, db.DashboardURL, 4, pg.ContextKey())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(dash.Close)
	q, err := commandqueue.New(dash, commandqueue.Options{}, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	svc := devicecmd.New(dash, q)
	tenant := postgres.Tenant{OrganizationID: org.ID, Role: postgres.AppOrgAdmin, Actor: "bench"}
	if _, err := svc.SyncGateway(ctx, tenant, regn.GatewayID, "bench"); err != nil {
		b.Fatal(err)
	}

	// The gateway, configured as the install script does.
	env := map[string]string{
		"STAFF_GATEWAY_SERVER_URL":                      api.URL,
		"STAFF_GATEWAY_ORGANIZATION_ID":                 strconv.FormatInt(org.ID, 10),
		"STAFF_GATEWAY_ORGANIZATION_PROVISIONING_TOKEN": regn.ProvisioningToken,
		"STAFF_GATEWAY_GATEWAY_SERIAL":                  "GW-DOORS",
		"STAFF_GATEWAY_GATEWAY_LISTEN":                  "127.0.0.1:0",
		"STAFF_GATEWAY_GATEWAY_GRPC_LISTEN":             "off",
		"STAFF_GATEWAY_BUFFER_PATH":                     filepath.Join(b.TempDir(), "buffer.sqlite"),
	}
	cfg, err := config.Load("", func(k string) string { return env[k] })
	if err != nil {
		b.Fatal(err)
	}
	g, err := gateway.New(ctx, cfg, gateway.Deps{Logger: logger, Version: "bench", DeviceFactories: vendors.Factories(logger)})
	if err != nil {
		b.Fatal(err)
	}
	if err := g.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.Stop(sctx)
	})

	open := func(device int64, wait time.Duration) (time.Duration, error) {
		start := time.Now()
		c, err := svc.Send(ctx, tenant, devicecmd.Request{DeviceID: device, Command: protocol.DeviceOpenDoor, Door: 1, TTL: time.Minute, CreatedBy: "bench"})
		if err != nil {
			return 0, err
		}
		for deadline := start.Add(wait); !c.Final(); time.Sleep(2 * time.Millisecond) {
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("open_door %s still %s after %v", c.ID, c.Status, wait)
			}
			if c, err = svc.Get(ctx, tenant, c.ID); err != nil {
				return 0, err
			}
		}
		if c.Status != devicecmd.StatusCompleted {
			msg := ""
			if c.Error != nil {
				msg = *c.Error
			}
			return 0, fmt.Errorf("open_door %s %s: %s", c.ID, c.Status, msg)
		}
		return time.Since(start), nil
	}
	// Warm-up: the first open waits for provisioning, the device list and
	// the sessions (retried: a device still connecting may refuse it).
	for _, kind := range []string{"hikvision", "zkteco"} {
		var err error
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if _, err = open(ids[kind], 30*time.Second); err == nil {
				break
			}
		}
		if err != nil {
			b.Fatalf("%s: first open: %v", kind, err)
		}
	}

	// The baseline, side by side: the same open_door straight through a
	// second adapter of the same type on the same simulator (no cloud, no
	// queue, no control channel, no supervisor).
	addrs := map[string]string{"hikvision": hik.Addr(), "zkteco": zk.Addr()}
	settings := map[string]string{"hikvision": `{"username":"admin","password":"Admin12345","time_zone":"UTC"}`, "zkteco": `{"comm_key":4711,"time_zone":"UTC"}`}
	for _, f := range vendors.Factories(logger) {
		b.Run("path=adapter/vendor="+f.Type, func(b *testing.B) {
			i := strings.LastIndexByte(addrs[f.Type], ':')
			port, _ := strconv.Atoi(addrs[f.Type][i+1:])
			a, err := f.New(devices.Config{Name: "direct", Type: f.Type, Host: addrs[f.Type][:i], Port: port, Settings: json.RawMessage(settings[f.Type])})
			if err != nil {
				b.Fatal(err)
			}
			if err := a.Connect(ctx); err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			unlocks := len(zk.Unlocks())
			lat := make([]time.Duration, 0, b.N)
			for range b.N {
				start := time.Now()
				if _, err := a.Execute(ctx, devices.Command{Type: devices.CmdOpenDoor, Door: 1}); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			if n := len(zk.Unlocks()) - unlocks; f.Type == "zkteco" && n != b.N {
				b.Fatalf("the ZKTeco simulator saw %d unlocks, want %d", n, b.N)
			}
			reportLatency(b, lat)
		})
	}
	for _, kind := range []string{"hikvision", "zkteco"} {
		b.Run("path=cloud/vendor="+kind, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for range b.N {
				d, err := open(ids[kind], 30*time.Second)
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, d)
			}
			reportLatency(b, lat)
		})
	}
	if n := len(zk.Unlocks()); n == 0 {
		b.Errorf("the ZKTeco simulator saw no unlock")
	}
}

// reportLatency reports the median and the 99th percentile of lat (of
// 100 samples, the 100th slowest is the maximum; the 99th is reported).
func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[(len(lat)-1)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
}
